#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (each starts its own
# nats-server and redis-server on free ports), then the end-to-end tests
# that drive `memsy` through the memsy Python SDK, the web console's browser
# tests (headless Chromium), the distributed topology
# and the repository checks. Tests that need a Qdrant server run when
# QDRANT_BIN (a qdrant binary to start) or QDRANT_URL is set, and say in one
# line that they were skipped otherwise.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --locked -p memsy
cargo test --release --locked --workspace
export MEMSY_BIN="$CARGO_TARGET_DIR/release/memsy"
.venv/bin/python -m pytest -v tests/repo
.venv/bin/python -m pytest -v tests/e2e
.venv/bin/python -m pytest -v tests/console
.venv/bin/python -m pytest -v -rs tests/helm
.venv/bin/python -m pytest -v tests/image
.venv/bin/python -m pytest -v -rs tests/topology
