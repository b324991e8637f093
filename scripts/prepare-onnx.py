#!/usr/bin/env python3
"""Builds ONNX models of all-MiniLM-L6-v2 straight from its safetensors weights,
without PyTorch.

    prepare-onnx.py MODEL_DIR [--out OUT_DIR] [--verify] [--reference JSON]

Reads MODEL_DIR/model.safetensors and MODEL_DIR/config.json and writes to
OUT_DIR (default MODEL_DIR/onnx):

* model.onnx      - the fp32 BERT encoder
* model_int8.onnx - the same encoder with every dense layer in int8 (see
                    build_encoder() for which int8 kernel each one uses)
* graph-version   - GRAPH_VERSION, written last; scripts/fetch-onnx.sh
                    rebuilds the models when it differs from this script's

The graph is written directly in the fused form ONNX Runtime's CPU provider
runs fastest (com.microsoft EmbedLayerNormalization, Attention/QAttention,
SkipLayerNormalization, BiasGelu): built from plain ONNX ops, ORT's pattern
matchers fuse almost nothing of it, and quantize_dynamic then quantises
op by op. So the models need ONNX Runtime; the Rust engine uses nothing else.

Graph contract (opset 17 + com.microsoft 1):

  inputs   input_ids        int64 [batch, seq]
           attention_mask   int64 [batch, seq]   1 = real token, 0 = padding,
                                                 padding on the right only
  output   sentence_embedding float32 [batch, hidden]

token_type_ids is not an input: sentence-transformers always passes zeros,
so token type embedding 0 is folded into the position embeddings. Mean
pooling over the attention mask and L2 normalisation happen inside the graph
(that is what sentence-transformers does after the encoder), so the output is
the finished sentence embedding. Sequences may be at most
max_position_embeddings (512) tokens; the tokenizer truncates to 256.

--verify runs both models with onnxruntime on the reference texts
(tokenised with tokenizer.json through the `tokenizers` package, truncation
256, as sentence-transformers does), prints the minimum cosine against the
reference embeddings for each, and exits 1 if fp32 < 0.999 or int8 < 0.98.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17
MS = "com.microsoft"
# Bump when the graphs change, so that fetch-onnx.sh rebuilds old copies.
GRAPH_VERSION = "3"
FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98
MAX_SEQ_LEN = 256  # sentence-transformers' max_seq_length for this model
# SmoothQuant migration strength for the int8 model (see smooth_factors()).
SMOOTH_ALPHA = 0.6
# Block length (along the input dimension) of the feed-forward output
# layer's int8 weights; see build_encoder().
FFN_OUT_BLOCK = 64


class Graph:
    """Collects nodes and initialisers, handing out unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, n_out: int = 1,
           domain: str = "", **attrs) -> str | list[str]:
        first = self.name(hint or op_type.lower())
        outs = [first] + [f"{first}_{i}" for i in range(1, n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=first, domain=domain, **attrs))
        return first if n_out == 1 else outs


# Weights of the uint8 x int8 kernels use 7 bits (-63..63). CPUs with AVX2
# but no VNNI multiply them with vpmaddubsw, which adds two uint8 x int8
# products into a saturating int16: 2 x 255 x 127 overflows it, 2 x 255 x 63
# does not. With full 8-bit weights the worst reference cosine fell to 0.965
# on such a CPU (0.990 with VNNI); 7 bits cost VNNI CPUs almost nothing.
INT8_WEIGHT_MAX = 63.0


def int8_columns(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-column int8 (7-bit range, see INT8_WEIGHT_MAX):
    w [in, out] ~ q * scale[out]."""
    scale = np.maximum(np.abs(w).max(0) / INT8_WEIGHT_MAX, 1e-12).astype(np.float32)
    return np.clip(np.round(w / scale), -INT8_WEIGHT_MAX, INT8_WEIGHT_MAX).astype(np.int8), scale


def int8_blocks(w: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """MatMulNBits' 8-bit layout: for each output column, blocks of `block`
    input rows, each with its own scale; stored unsigned with the implied
    zero point 128. Returns (uint8 [out, in/block, block], scales [out*in/block])."""
    n_in, n_out = w.shape
    blocks = w.T.reshape(n_out, n_in // block, block)
    scale = np.maximum(np.abs(blocks).max(-1, keepdims=True) / 127.0, 1e-12)
    q = np.clip(np.round(blocks / scale), -127, 127).astype(np.int16) + 128
    return q.astype(np.uint8), scale.reshape(-1).astype(np.float32)


# The inputs of the dense layers, by the weight prefix of the layer(s)
# reading them: what smooth_factors() measures and scales.
DENSE_KINDS = ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")


def build_encoder(weights: dict[str, np.ndarray], cfg: dict, int8: bool = False,
                  smooth: dict[str, np.ndarray] | None = None,
                  probe: bool = False) -> onnx.ModelProto:
    """The encoder graph, fp32 or (int8) with every dense layer quantised.

    int8 kernels, chosen by measurement against the reference embeddings and
    for speed (ORT 1.31 CPU, short sentences): the query/key/value
    projection is QAttention and the attention output and feed-forward input
    layers DynamicQuantizeMatMul: int8 weights per output column, the input
    quantised per call to uint8 with one scale for the whole tensor (the
    fast VNNI kernels). One scale per tensor cannot cope with BERT's outlier
    channels (e.g. channel 99 of the layer-norm outputs reaches ~30 on [CLS]
    where the median is ~0.3), so with `smooth` (layer prefix -> per-channel
    factor s) each dense input is divided by s and the weight rows
    multiplied by s: the same function with the outliers moved into the
    weights (SmoothQuant). The feed-forward output layer reads the GELU
    output, whose outliers smoothing does not tame enough (worst reference
    cosine ~0.985 with it in DynamicQuantizeMatMul, batch-dependent); it is
    MatMulNBits with 8-bit weights in blocks of FFN_OUT_BLOCK and its input
    quantised per row and block (accuracy_level 4), which costs a little
    speed and keeps the worst cosine at ~0.99.

    With `probe`, every dense input also becomes a graph output named
    `probe:<layer prefix>`, so smooth_factors() can measure its range."""
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    layers = cfg["num_hidden_layers"]
    eps = float(cfg.get("layer_norm_eps", 1e-12))
    if cfg.get("hidden_act", "gelu") != "gelu":
        raise SystemExit(f"unsupported activation {cfg.get('hidden_act')}")

    def w(name: str) -> np.ndarray:
        # Some exports prefix every tensor with "bert."; accept both.
        for key in (name, "bert." + name):
            if key in weights:
                return weights[key].astype(np.float32)
        raise SystemExit(f"tensor {name} missing from model.safetensors")

    g = Graph()
    probes: list[str] = []

    def dense_input(x: str, prefix: str, weight: np.ndarray) -> tuple[str, np.ndarray]:
        """The input and [in, out] weight a dense layer multiplies, smoothed."""
        if probe:
            g.nodes.append(helper.make_node("Identity", [x], [f"probe:{prefix}"]))
            probes.append(f"probe:{prefix}")
        if smooth is None:
            return x, weight
        s = smooth[prefix]
        x = g.op("Mul", [x, g.const(f"{prefix}.inv_smooth", (1.0 / s).astype(np.float32))], "smooth")
        return x, (weight * s[:, None]).astype(np.float32)

    def dense(x: str, prefix: str, hint: str, kernel: str) -> str:
        """x @ W for the layer `prefix` (its bias is added by the next op)."""
        x, weight = dense_input(x, prefix, w(f"{prefix}.weight").T)
        if not int8:
            return g.op("MatMul", [x, g.const(f"{prefix}.weight_t", weight)], hint)
        if kernel == "dynamic":
            q, scale = int8_columns(weight)
            return g.op("DynamicQuantizeMatMul", [x, g.const(f"{prefix}.weight_q", q),
                                                  g.const(f"{prefix}.weight_scale", scale)],
                        hint, domain=MS)
        q, scale = int8_blocks(weight, FFN_OUT_BLOCK)
        return g.op("MatMulNBits", [x, g.const(f"{prefix}.weight_q", q), g.const(f"{prefix}.weight_scale", scale)],
                    hint, domain=MS, K=weight.shape[0], N=weight.shape[1], bits=8,
                    block_size=FFN_OUT_BLOCK, accuracy_level=4)

    # --- embeddings and mask -------------------------------------------------
    g.const("word_embeddings", w("embeddings.word_embeddings.weight"))
    # Token type is always 0: fold its embedding into the position table.
    pos = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    g.const("position_embeddings", pos)
    g.const("emb_ln_w", w("embeddings.LayerNorm.weight"))
    g.const("emb_ln_b", w("embeddings.LayerNorm.bias"))
    ids = g.op("Cast", ["input_ids"], "ids_i32", to=TensorProto.INT32)
    mask = g.op("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    # Also yields the real-token count per sequence: Attention's mask_index
    # for right padding.
    x, mask_index = g.op("EmbedLayerNormalization",
                         [ids, "", "word_embeddings", "position_embeddings", "", "emb_ln_w", "emb_ln_b", mask],
                         "emb_ln", n_out=2, domain=MS, epsilon=eps)

    def skip_ln(y: str, residual: str, dense_prefix: str, ln_prefix: str, hint: str) -> str:
        """LayerNorm(y + dense bias + residual)."""
        return g.op("SkipLayerNormalization",
                    [y, residual, g.const(f"{ln_prefix}.weight", w(f"{ln_prefix}.weight")),
                     g.const(f"{ln_prefix}.bias", w(f"{ln_prefix}.bias")),
                     g.const(f"{dense_prefix}.bias", w(f"{dense_prefix}.bias"))],
                    hint, domain=MS, epsilon=eps)

    for n in range(layers):
        p = f"encoder.layer.{n}"
        qkv_w = np.concatenate([w(f"{p}.attention.self.{t}.weight").T for t in ("query", "key", "value")], 1)
        qkv_b = g.const(f"{p}.qkv.bias", np.concatenate(
            [w(f"{p}.attention.self.{t}.bias") for t in ("query", "key", "value")]))
        a_in, qkv_w = dense_input(x, f"{p}.attention.self.query", qkv_w)
        if int8:
            q, scale = int8_columns(qkv_w)
            xq, xs, xz = g.op("DynamicQuantizeLinear", [a_in], f"l{n}_attn_in_q", n_out=3)
            ctx = g.op("QAttention", [xq, g.const(f"{p}.qkv.weight_q", q), qkv_b, xs,
                                      g.const(f"{p}.qkv.weight_scale", scale), mask_index, xz],
                       f"l{n}_attn", domain=MS, num_heads=heads)
        else:
            ctx = g.op("Attention", [a_in, g.const(f"{p}.qkv.weight", qkv_w), qkv_b, mask_index],
                       f"l{n}_attn", domain=MS, num_heads=heads)
        y = dense(ctx, f"{p}.attention.output.dense", f"l{n}_attn_out", "dynamic")
        x = skip_ln(y, x, f"{p}.attention.output.dense", f"{p}.attention.output.LayerNorm", f"l{n}_attn_ln")

        h = dense(x, f"{p}.intermediate.dense", f"l{n}_ffn_in", "dynamic")
        # Exact (erf) GELU, as BERT's "gelu".
        h = g.op("BiasGelu", [h, g.const(f"{p}.intermediate.dense.bias", w(f"{p}.intermediate.dense.bias"))],
                 f"l{n}_gelu", domain=MS)
        y = dense(h, f"{p}.output.dense", f"l{n}_ffn_out", "blocks")
        x = skip_ln(y, x, f"{p}.output.dense", f"{p}.output.LayerNorm", f"l{n}_ffn_ln")

    # --- mean pooling over the mask, then L2 normalisation -------------------
    g.const("axes_1", np.array([1], np.int64))
    g.const("axes_2", np.array([2], np.int64))
    g.const("tiny", np.array(1e-9, np.float32))
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)  # [B,S]
    m = g.op("Unsqueeze", [mask_f, "axes_2"], "pool_mask")  # [B,S,1]
    masked = g.op("Mul", [x, m], "pool_masked")
    total = g.op("ReduceSum", [masked, "axes_1"], "pool_sum", keepdims=0)  # [B,H]
    count = g.op("ReduceSum", [m, "axes_1"], "pool_count", keepdims=0)  # [B,1]
    count = g.op("Max", [count, "tiny"], "pool_count_clamped")
    mean = g.op("Div", [total, count], "pool_mean")
    g.nodes.append(helper.make_node("LpNormalization", [mean], ["sentence_embedding"],
                                    name="l2_normalize", axis=-1, p=2))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", hidden])]
        + [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "seq", None]) for name in probes],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS, 1)],
                              producer_name="memsy prepare-onnx.py")
    model.ir_version = 8  # opset 17 era; loadable by any recent onnxruntime
    onnx.checker.check_model(model, full_check=True)
    return model


# Calibration text for the SmoothQuant factors: varied, short and long, and
# deliberately not the reference texts that --verify checks against.
CALIBRATION_TEXTS = [
    "hello",
    "ok",
    "Remember that I am allergic to peanuts.",
    "The meeting with the design team moved to Thursday at 3pm.",
    "My sister lives in Lisbon and works as a nurse.",
    "cats",
    "What did I say about the budget last week?",
    "I usually go running before breakfast, around six in the morning, "
    "unless it rains, in which case I use the treadmill in the basement.",
    "Favourite programming language: Rust; second favourite: Python.",
    "Send the invoice to accounting@example.com by Friday.",
    "The quick brown fox jumps over the lazy dog.",
    "She said the restaurant on 5th Avenue closes at 10 p.m. on weekdays.",
    "project deadline",
    "Note to self: renew passport before the trip to Japan in March 2027.",
    "We adopted a kitten named Miso; she is grey with white paws.",
    "I don't like horror movies, but documentaries about space are great.",
    "Temperature in the server room reached 31 degrees Celsius yesterday.",
    "birthday",
    "Call mum on Sunday.",
    "The API returns a 429 status code when the rate limit is exceeded, "
    "so the client should back off exponentially and retry later.",
]


def smooth_factors(weights: dict[str, np.ndarray], cfg: dict, model_dir: str,
                   alpha: float) -> dict[str, np.ndarray]:
    """Per-channel SmoothQuant factors for every dense layer input,
    s = max|X|^alpha / max|W|^(1-alpha) (X: the activation ranges of the
    fp32 graph on CALIBRATION_TEXTS, each text alone; W: the weight rows),
    divided by their geometric mean so the input keeps its overall scale.
    Measured on the reference texts: alpha 0.6 gives the best worst cosine
    (0.5: outliers left; 0.7 and above: the weights' per-column int8 suffers)."""
    import onnxruntime as ort

    probe = build_encoder(weights, cfg, probe=True)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs() if o.name.startswith("probe:")]
    tok = make_tokenizer(model_dir)
    act_max: dict[str, np.ndarray] = {}
    for text in CALIBRATION_TEXTS:
        ids, mask = tokenize(tok, [text])
        for name, value in zip(names, sess.run(names, {"input_ids": ids, "attention_mask": mask})):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(0)
            act_max[name] = np.maximum(act_max.get(name, m), m)

    def weight(prefix: str) -> np.ndarray:
        return weights.get(prefix + ".weight", weights.get("bert." + prefix + ".weight"))

    factors = {}
    for name in names:
        prefix = name.removeprefix("probe:")
        # The query input is the key's and value's too.
        readers = [prefix.replace("query", t) for t in ("query", "key", "value")] if prefix.endswith("query") \
            else [prefix]
        w_max = np.max([np.abs(weight(p)).max(0) for p in readers], axis=0)  # per input channel
        s = np.power(np.maximum(act_max[name], 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
        s = s / np.exp(np.log(s).mean())
        factors[prefix] = np.clip(s, 1e-2, 1e2).astype(np.float32)
    return factors


# --- verification -------------------------------------------------------------

def load_reference(path: str) -> tuple[list[str], np.ndarray]:
    with open(path) as f:
        items = json.load(f)["items"]
    return [i["text"] for i in items], np.array([i["embedding"] for i in items], np.float32)


def tokenize(tokenizer, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encs = tokenizer.encode_batch(texts)
    seq = max(len(e.ids) for e in encs)
    ids = np.zeros((len(texts), seq), np.int64)
    mask = np.zeros((len(texts), seq), np.int64)
    for r, e in enumerate(encs):
        ids[r, : len(e.ids)] = e.ids
        mask[r, : len(e.ids)] = 1
    return ids, mask


def make_tokenizer(model_dir: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_SEQ_LEN)
    return tok


def session(path: str, threads: int = 0):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def min_cosine(sess, tokenizer, texts: list[str], expected: np.ndarray) -> float:
    worst = 1.0
    # The whole set as one padded batch, and each text alone.
    ids, mask = tokenize(tokenizer, texts)
    batch = sess.run(["sentence_embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    singles = []
    for t in texts:
        i, m = tokenize(tokenizer, [t])
        singles.append(sess.run(["sentence_embedding"], {"input_ids": i, "attention_mask": m})[0][0])
    for got in (batch, np.stack(singles)):
        cos = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
        worst = min(worst, float(cos.min()))
    return worst


def throughput(sess, tokenizer, rounds: int = 10) -> float:
    texts = [f"The user mentioned fact number {i} about their weekend plans." for i in range(32)]
    ids, mask = tokenize(tokenizer, texts)
    feed = {"input_ids": ids, "attention_mask": mask}
    sess.run(None, feed)
    start = time.perf_counter()
    for _ in range(rounds):
        sess.run(None, feed)
    return rounds * len(texts) / (time.perf_counter() - start)


def verify(model_dir: str, out_dir: str, reference: str) -> bool:
    texts, expected = load_reference(reference)
    tok = make_tokenizer(model_dir)
    ok = True
    for name, floor in (("model.onnx", FP32_MIN_COSINE), ("model_int8.onnx", INT8_MIN_COSINE)):
        sess = session(os.path.join(out_dir, name))
        worst = min_cosine(sess, tok, texts, expected)
        rate = throughput(sess, tok)
        good = worst >= floor
        ok &= good
        print(f"{name}: min cosine vs reference {worst:.6f} (need >= {floor}) "
              f"{'ok' if good else 'FAIL'}; {rate:.0f} texts/s (batch of 32 short sentences)")
    return ok


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", nargs="?")
    ap.add_argument("--out", help="output directory (default MODEL_DIR/onnx)")
    ap.add_argument("--verify", action="store_true",
                    help="check the written models against the reference embeddings")
    ap.add_argument("--verify-only", action="store_true", help="do not (re)build, only verify")
    ap.add_argument("--graph-version", action="store_true", help="print GRAPH_VERSION and exit")
    ap.add_argument("--reference", default=os.environ.get(
        "MEMSY_REFERENCE_EMBEDDINGS",
        os.path.join(root, "..", "shared", "reference", "minilm-l6-v2-embeddings.json")))
    args = ap.parse_args()
    if args.graph_version:
        print(GRAPH_VERSION)
        return 0
    if args.model_dir is None:
        ap.error("MODEL_DIR is required")
    out_dir = args.out or os.path.join(args.model_dir, "onnx")

    if not args.verify_only:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            cfg = json.load(f)
        weights = load_file(os.path.join(args.model_dir, "model.safetensors"))
        os.makedirs(out_dir, exist_ok=True)
        stamp = os.path.join(out_dir, "graph-version")
        if os.path.exists(stamp):
            os.remove(stamp)
        factors = smooth_factors(weights, cfg, args.model_dir, SMOOTH_ALPHA)
        paths = []
        for name, model in (("model.onnx", build_encoder(weights, cfg)),
                            ("model_int8.onnx", build_encoder(weights, cfg, int8=True, smooth=factors))):
            path = os.path.join(out_dir, name)
            # Write to a temporary name and rename, so an interrupted run
            # never leaves a half-written model that looks finished.
            onnx.save(model, path + ".part")
            os.replace(path + ".part", path)
            paths.append(path)
        with open(stamp, "w") as f:
            f.write(GRAPH_VERSION + "\n")
        print(" and ".join(f"wrote {p} ({os.path.getsize(p) >> 20} MiB)" for p in paths), file=sys.stderr)

    if args.verify or args.verify_only:
        return 0 if verify(args.model_dir, out_dir, args.reference) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
