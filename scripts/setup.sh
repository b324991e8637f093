#!/usr/bin/env bash
# Installs what memsy needs on a fresh Debian machine with a Rust toolchain:
# nats-server and redis-server (if missing), the all-MiniLM-L6-v2 model, and
# a Python virtualenv (.venv) with the memsy SDK and pytest for the
# end-to-end tests. Idempotent: quick when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need_apt=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }

# The safetensors model, its ONNX builds and the ONNX Runtime library.
scripts/fetch-onnx.sh

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import memsy, pytest" 2>/dev/null; then
  echo "setup: installing the memsy SDK and pytest into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "memsy==0.3.5" "pytest>=7"
fi
