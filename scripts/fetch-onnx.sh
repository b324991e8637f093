#!/usr/bin/env bash
# Makes the ONNX versions of all-MiniLM-L6-v2 without PyTorch, idempotently:
#   models/all-minilm-l6-v2/onnx/model.onnx       fp32
#   models/all-minilm-l6-v2/onnx/model_int8.onnx  int8 dense layers
# and records where the ONNX Runtime library (libonnxruntime.so*, shipped in
# the onnxruntime wheel) is, in models/onnxruntime.path, which the embedder's
# OnnxEngine tests read (or set ORT_DYLIB_PATH to it). Needs the safetensors
# model from scripts/fetch-model.sh, which it runs first.
#
# Python packages go into the repo's virtualenv .venv (made if missing).
# The models are rebuilt when missing, when onnx/graph-version differs from
# prepare-onnx.py's GRAPH_VERSION (the graphs changed), or with
# MEMSY_ONNX_FORCE=1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model_dir="${MEMSY_MODEL_DIR:-$root/models/all-minilm-l6-v2}"
out_dir="$model_dir/onnx"
venv="$root/.venv"
py="$venv/bin/python"

MEMSY_MODEL_DIR="$model_dir" "$root/scripts/fetch-model.sh"

if [ ! -x "$py" ]; then
  python3 -m venv "$venv"
fi
# Pinned: onnxruntime 1.31 is the ONNX Runtime API the Rust `ort` crate
# (2.0.0-rc.15, api-31) is built against.
packages=(onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 safetensors==0.8.0 tokenizers==0.23.3)
if ! "$py" - "${packages[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for spec in sys.argv[1:]:
    name, want = spec.split("==")
    if version(name) != want:
        sys.exit(1)
PY
then
  "$py" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
fi

want_version="$("$py" "$root/scripts/prepare-onnx.py" --graph-version)"
have_version="$(cat "$out_dir/graph-version" 2>/dev/null || true)"
if [ "${MEMSY_ONNX_FORCE:-0}" = 1 ] || [ "$have_version" != "$want_version" ] \
  || [ ! -f "$out_dir/model.onnx" ] || [ ! -f "$out_dir/model_int8.onnx" ]; then
  "$py" "$root/scripts/prepare-onnx.py" "$model_dir" --out "$out_dir"
fi

capi="$("$py" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
lib="$(ls "$capi"/libonnxruntime.so* 2>/dev/null | grep -v providers | head -n1)"
if [ -z "$lib" ]; then
  echo "no libonnxruntime.so* in $capi" >&2
  exit 1
fi
echo "$lib" > "$root/models/onnxruntime.path.part"
mv "$root/models/onnxruntime.path.part" "$root/models/onnxruntime.path"
echo "ONNX models ready in $out_dir" >&2
echo "$lib"
