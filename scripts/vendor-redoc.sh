#!/usr/bin/env bash
# Vendors Redoc's standalone bundle, which renders the browsable API page
# that the gateway serves at /docs, into services/memsy-gateway/assets/redoc/
# (committed, and embedded in the binary: the page loads nothing from
# another host). Run it to move to another version: change REDOC_VERSION,
# run, rebuild, and commit the changed files. Needs npm.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# Redoc 2: its 3.x bundle reports telemetry to its vendor.
REDOC_VERSION=2.5.4
dest="$root/services/memsy-gateway/assets/redoc"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "redoc@$REDOC_VERSION" >/dev/null)
tar -xzf "$tmp/redoc-$REDOC_VERSION.tgz" -C "$tmp"
mkdir -p "$dest"
# Without its source map comment: the map is not vendored, and a browser's
# developer tools would ask for it.
sed '/^\/\/# sourceMappingURL=/d' "$tmp/package/bundles/redoc.standalone.js" >"$dest/redoc.standalone.js"
cp "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" "$dest/redoc.standalone.js.LICENSE.txt"
cp "$tmp/package/LICENSE" "$dest/LICENSE"
echo "$REDOC_VERSION" >"$dest/VERSION"
echo "vendor-redoc: Redoc $REDOC_VERSION in ${dest#"$root"/}" >&2
