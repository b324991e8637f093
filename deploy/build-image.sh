#!/usr/bin/env bash
# Lays out memsy's container image under DEST: the release binary, the
# all-MiniLM-L6-v2 model with its ONNX graphs, and the ONNX Runtime library
# the default embedder (engine onnx) loads. deploy/Dockerfile runs it in its
# build stages and copies DEST onto the runtime image's root; tests/image
# runs it outside a container and starts memsy from DEST, so the recipe is
# exercised where there is no container engine.
#
#   deploy/build-image.sh [--only binary|model] DEST
#
# Layout, as paths of the image (each one below DEST here); the Dockerfile's
# ENV points memsy at the model and the library:
#   /usr/local/bin/memsy
#   /opt/memsy/models/all-minilm-l6-v2/   tokenizer.json, config.json, model.safetensors,
#                                         onnx/model_int8.onnx, onnx/model.onnx
#   /opt/memsy/lib/libonnxruntime.so      (the version scripts/fetch-onnx.sh pins)
#
# The binary comes from `cargo build --release --locked -p memsy` in
# CARGO_TARGET_DIR (default target/); the model, graphs and library from
# scripts/fetch-onnx.sh, which only does what is missing (a checkout that
# has prepared models/ before copies them from there).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

only=""
if [ "${1:-}" = --only ]; then
  only="${2:?--only takes binary or model}"
  shift 2
fi
case "$only" in "" | binary | model) ;; *) echo "build-image: --only binary or --only model" >&2; exit 2 ;; esac
dest="${1:?usage: deploy/build-image.sh [--only binary|model] DEST}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

# Paths inside the image.
bin_dir=/usr/local/bin
model_dir=/opt/memsy/models/all-minilm-l6-v2
lib_dir=/opt/memsy/lib

if [ "$only" != model ]; then
  target="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release --locked -p memsy)
  install -D -m 0755 "$target/release/memsy" "$dest$bin_dir/memsy"
fi

if [ "$only" != binary ]; then
  src_model="${MEMSY_MODEL_DIR:-$root/models/all-minilm-l6-v2}"
  # Its last line on stdout is the library's path.
  lib="$(MEMSY_MODEL_DIR="$src_model" "$root/scripts/fetch-onnx.sh" | tail -n 1)"
  [ -f "$lib" ] || { echo "build-image: scripts/fetch-onnx.sh named no library ($lib)" >&2; exit 1; }
  for f in tokenizer.json config.json model.safetensors onnx/model_int8.onnx onnx/model.onnx onnx/graph-version; do
    install -D -m 0644 "$src_model/$f" "$dest$model_dir/$f"
  done
  # A fixed name, so that the image's environment need not change with the
  # pinned ONNX Runtime version; the library is loaded by path.
  install -D -m 0644 "$lib" "$dest$lib_dir/libonnxruntime.so"
fi
echo "build-image: ${only:-binary and model} laid out under $dest" >&2
