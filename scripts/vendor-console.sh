#!/usr/bin/env bash
# Fetches the web console's one library, Preact (with its hooks) and htm,
# from the npm registry at pinned versions, checks each tarball against its
# pinned sha512 and copies the ES module builds with their licences into
# services/memsy-gateway/assets/console/vendor/, where they are committed and
# embedded in the binary. Needs npm; the build does not (it embeds the
# committed files). Rerunning it reproduces the committed files byte for byte.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/services/memsy-gateway/assets/console/vendor"
# name version sha512 (the registry's dist.integrity)
packages=(
  "preact 11.2.0 /HfHI/7N84e6GrWBJ3J280z3mLaRJiDcSvj/A+y/4AbLnND/1UlGHe1sR6oYuTGwId0nP7dqDU9OnLxMPZ7xBg=="
  "htm 3.1.1 983Vyg8NwUE7JkZ6NmOqpCZ+sh1bKv2iYTlUkzlWmA5JD2acKoxd4KVxbMmxX/85mtfdnDmTFoNKcg5DGAvxNQ=="
)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for entry in "${packages[@]}"; do
  read -r name version sha <<<"$entry"
  (cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$tmp/$name-$version.tgz"
  got="$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "$sha" ]; then
    echo "vendor-console: $name $version: sha512 $got, expected $sha" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  tar -xzf "$tarball" -C "$tmp/$name"
done
mkdir -p "$dest"
cp "$tmp/preact/package/dist/preact.mjs" "$dest/preact.mjs"
# The hooks import Preact by its bare name; the console loads no import map
# (its Content-Security-Policy allows no inline script), so point it at the file.
sed 's|from"preact"|from"./preact.mjs"|' "$tmp/preact/package/hooks/dist/hooks.mjs" >"$dest/hooks.mjs"
cp "$tmp/htm/package/dist/htm.module.js" "$dest/htm.mjs"
cp "$tmp/preact/package/LICENSE" "$dest/LICENSE-preact"
cp "$tmp/htm/package/LICENSE" "$dest/LICENSE-htm"
# The source-map comments name files that are not shipped.
sed -i '/^\/\/# sourceMappingURL=/d' "$dest/preact.mjs" "$dest/hooks.mjs" "$dest/htm.mjs"
echo "vendor-console: preact and htm in ${dest#"$root"/}"
