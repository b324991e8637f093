#!/usr/bin/env bash
# Lays out memsy's container image under DEST: the release binary, the
# all-MiniLM-L6-v2 model with its ONNX graphs, and the ONNX Runtime library
# the default embedder loads. deploy/Dockerfile runs this in its build stage
# and copies DEST into the runtime image; tests/image runs it outside a
# container and starts memsy from the result, so the recipe is exercised
# where no container engine is.
#
#   deploy/build-image.sh DEST
#
# Layout (image paths; the Dockerfile's ENV points memsy at them):
#   DEST/usr/local/bin/memsy
#   DEST/opt/memsy/models/all-minilm-l6-v2/{model.safetensors,tokenizer.json,config.json,onnx/*.onnx}
#   DEST/opt/memsy/lib/libonnxruntime.so.<version>
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:?usage: deploy/build-image.sh DEST}"
target="${CARGO_TARGET_DIR:-$root/target}"

cargo build --release --locked -p memsy --manifest-path "$root/Cargo.toml"
# The model, its ONNX graphs and the ONNX Runtime library (idempotent).
"$root/scripts/fetch-onnx.sh" >/dev/null
lib="$(cat "$root/models/onnxruntime.path")"
model="$root/models/all-minilm-l6-v2"

mkdir -p "$dest/usr/local/bin" "$dest/opt/memsy/lib" "$dest/opt/memsy/models/all-minilm-l6-v2/onnx"
install -m 0755 "$target/release/memsy" "$dest/usr/local/bin/memsy"
install -m 0644 "$lib" "$dest/opt/memsy/lib/$(basename "$lib")"
for f in model.safetensors tokenizer.json config.json; do
  install -m 0644 "$model/$f" "$dest/opt/memsy/models/all-minilm-l6-v2/$f"
done
for f in model.onnx model_int8.onnx graph-version; do
  install -m 0644 "$model/onnx/$f" "$dest/opt/memsy/models/all-minilm-l6-v2/onnx/$f"
done
echo "image laid out in $dest" >&2
