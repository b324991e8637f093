#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (each starts its own
# nats-server and redis-server on free ports), then the end-to-end tests
# that drive `memsy serve` through the memsy Python SDK.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked -p memsy
cargo test --release --locked --workspace
MEMSY_BIN="$CARGO_TARGET_DIR/release/memsy" .venv/bin/python -m pytest -v tests/e2e
