#!/usr/bin/env python3
"""Baseline for `bench-embedder`: the same ONNX graph through the onnxruntime
Python API, the way a Python user would run it.

    embedder_reference.py MODEL_DIR ONNX_FILE SENTENCES_JSON SIZES SECONDS

MODEL_DIR holds tokenizer.json and onnx/ONNX_FILE; SENTENCES_JSON is a JSON
list of strings (written by bench-embedder, so both sides embed the same
texts); SIZES is a comma-separated list of request sizes (texts per request);
SECONDS the minimum measuring time per size. Prints one JSON object on stdout:

    {"onnx_file": ..., "ort_version": ..., "texts_per_s": {"1": ..., ...},
     "first_vector": [...384 floats: sentence 0 of the list...]}

Session: CPU provider, intra_op_num_threads = 2, inter_op_num_threads = 1,
graph optimisation ALL (what the Rust engine asks for). Tokenisation: the
`tokenizers` package on tokenizer.json with its fixed 128 padding removed,
truncation at 256 word pieces, each request padded to its longest text
(one `session.run` per request).
"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def load_tokenizer(model_dir: str) -> Tokenizer:
    """tokenizer.json with its fixed padding removed, truncation at 256 word
    pieces, each batch padded to its longest text."""
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=256)
    tok.enable_padding()  # pad to the longest text of each batch
    return tok


def load_session(model_dir: str, onnx_file: str) -> ort.InferenceSession:
    """CPU session on MODEL_DIR/onnx/ONNX_FILE (or MODEL_DIR/ONNX_FILE)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = os.path.join(model_dir, "onnx", onnx_file)
    if not os.path.isfile(path):
        path = os.path.join(model_dir, onnx_file)
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def embed_texts(tok: Tokenizer, session: ort.InferenceSession, texts: list[str]) -> np.ndarray:
    """One `session.run` over TEXTS: the graph's `sentence_embedding` output
    (mean-pooled and normalised inside the graph), shape [len(texts), 384]."""
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
    (out,) = session.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})
    return out


def main() -> None:
    model_dir, onnx_file, sentences_path, sizes_arg, seconds_arg = sys.argv[1:6]
    sizes = [int(s) for s in sizes_arg.split(",")]
    seconds = float(seconds_arg)
    with open(sentences_path, encoding="utf-8") as f:
        sentences = json.load(f)

    tok = load_tokenizer(model_dir)
    session = load_session(model_dir, onnx_file)

    def embed(texts):
        return embed_texts(tok, session, texts)

    def request(start, size):
        n = len(sentences)
        return [sentences[(start + k) % n] for k in range(size)]

    first_vector = embed([sentences[0]])[0].astype(float).tolist()

    result = {}
    for size in sizes:
        # Warm-up: ~1 s or at least 3 requests.
        start, t0, reqs = 0, time.perf_counter(), 0
        while reqs < 3 or time.perf_counter() - t0 < 1.0:
            embed(request(start, size))
            start += size
            reqs += 1
        texts, t0 = 0, time.perf_counter()
        while True:
            embed(request(start, size))
            start += size
            texts += size
            elapsed = time.perf_counter() - t0
            if elapsed >= seconds:
                break
        result[str(size)] = texts / elapsed

    json.dump(
        {
            "onnx_file": onnx_file,
            "ort_version": ort.__version__,
            "texts_per_s": result,
            "first_vector": first_vector,
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
