#!/usr/bin/env python3
"""Builds ONNX models of all-MiniLM-L6-v2 straight from its safetensors weights,
without PyTorch.

    prepare-onnx.py MODEL_DIR [--out OUT_DIR] [--verify] [--reference JSON]

Reads MODEL_DIR/model.safetensors and MODEL_DIR/config.json and writes to
OUT_DIR (default MODEL_DIR/onnx):

* model.onnx      - the fp32 BERT encoder, built node by node with onnx.helper
* model_int8.onnx - model.onnx with the attention projections (query, key,
                    value, output) quantised to int8 by
                    onnxruntime.quantization.quantize_dynamic (QInt8 weights,
                    per-channel, full 8-bit range); the feed-forward layers
                    stay fp32 unless --int8-ffn (see quantize() for why)

Graph contract (opset 17, standard ONNX ops only):

  inputs   input_ids        int64 [batch, seq]
           attention_mask   int64 [batch, seq]   1 = real token, 0 = padding
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
import math
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17
FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.98
MAX_SEQ_LEN = 256  # sentence-transformers' max_seq_length for this model


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

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build_encoder(weights: dict[str, np.ndarray], cfg: dict,
                  smooth: dict[str, np.ndarray] | None = None,
                  probe: bool = False,
                  consumers: dict[str, list[str]] | None = None) -> onnx.ModelProto:
    """The encoder graph. With `smooth` (dense-layer input name -> per-channel
    factor s), each dense layer's input is divided by s and its weight rows
    multiplied by s: the same function, but with activation outliers moved
    into the weights, which int8 quantisation handles far better
    (SmoothQuant). With `probe`, those inputs also become graph outputs, so
    their ranges can be measured."""
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    head_dim = hidden // heads
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
    # Shape constants.
    g.const("axes_0", np.array([0], np.int64))
    g.const("axes_1", np.array([1], np.int64))
    g.const("axes_2", np.array([2], np.int64))
    g.const("idx_1", np.array([1], np.int64))
    g.const("start_0", np.array([0], np.int64))
    g.const("split_heads", np.array([0, 0, heads, head_dim], np.int64))
    g.const("merge_heads", np.array([0, 0, hidden], np.int64))
    g.const("one_f", np.array(1.0, np.float32))
    g.const("neg_big", np.array(-10000.0, np.float32))
    g.const("half", np.array(0.5, np.float32))
    g.const("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), np.float32))
    g.const("tiny", np.array(1e-9, np.float32))

    # --- embeddings --------------------------------------------------------
    g.const("word_embeddings", w("embeddings.word_embeddings.weight"))
    # Token type is always 0: fold its embedding into the position table.
    pos = w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    g.const("position_embeddings", pos)
    g.const("emb_ln_w", w("embeddings.LayerNorm.weight"))
    g.const("emb_ln_b", w("embeddings.LayerNorm.bias"))

    words = g.op("Gather", ["word_embeddings", "input_ids"], "word_emb", axis=0)  # [B,S,H]
    ids_shape = g.op("Shape", ["input_ids"], "ids_shape")
    seq_len = g.op("Gather", [ids_shape, "idx_1"], "seq_len", axis=0)  # [1]
    positions = g.op("Slice", ["position_embeddings", "start_0", seq_len, "axes_0"], "pos_emb")  # [S,H]
    x = g.op("Add", [words, positions], "emb_sum")
    x = g.op("LayerNormalization", [x, "emb_ln_w", "emb_ln_b"], "emb_ln", axis=-1, epsilon=eps)

    # --- attention mask: 0 for real tokens, -10000 for padding ---------------
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)  # [B,S]
    inv = g.op("Sub", ["one_f", mask_f], "mask_inv")
    bias = g.op("Mul", [inv, "neg_big"], "mask_bias")
    bias = g.op("Unsqueeze", [bias, "axes_1"], "mask_bias_u1")  # [B,1,S]
    bias = g.op("Unsqueeze", [bias, "axes_1"], "mask_bias_u2")  # [B,1,1,S]

    scale = 1.0 / math.sqrt(head_dim)

    probes: list[str] = []
    smoothed: dict[str, str] = {}

    def dense(x: str, prefix: str, hint: str, factor: float = 1.0) -> str:
        weight = (w(f"{prefix}.weight").T * factor).astype(np.float32)  # [in, out]
        bias_v = (w(f"{prefix}.bias") * factor).astype(np.float32)
        if probe and x not in probes:
            probes.append(x)
        if consumers is not None:
            consumers.setdefault(x, []).append(prefix)
        if smooth is not None and x in smooth:
            s = smooth[x].astype(np.float32)
            weight = weight * s[:, None]
            if x not in smoothed:  # q, k and v share one scaled input
                smoothed[x] = g.op("Mul", [x, g.const(f"{x}_smooth", 1.0 / s)], hint + "_smooth")
            x = smoothed[x]
        wn = g.const(f"{prefix}.weight_t", weight)
        bn = g.const(f"{prefix}.bias", bias_v)
        y = g.op("MatMul", [x, wn], hint + "_mm")
        return g.op("Add", [y, bn], hint)

    for n in range(layers):
        p = f"encoder.layer.{n}"
        # The 1/sqrt(head_dim) scale (1/8: exact) is folded into the query.
        q = dense(x, f"{p}.attention.self.query", f"l{n}_q", scale)
        k = dense(x, f"{p}.attention.self.key", f"l{n}_k")
        v = dense(x, f"{p}.attention.self.value", f"l{n}_v")
        q = g.op("Reshape", [q, "split_heads"], f"l{n}_q_heads")
        k = g.op("Reshape", [k, "split_heads"], f"l{n}_k_heads")
        v = g.op("Reshape", [v, "split_heads"], f"l{n}_v_heads")
        q = g.op("Transpose", [q], f"l{n}_q_t", perm=[0, 2, 1, 3])  # [B,h,S,d]
        k = g.op("Transpose", [k], f"l{n}_k_t", perm=[0, 2, 3, 1])  # [B,h,d,S]
        v = g.op("Transpose", [v], f"l{n}_v_t", perm=[0, 2, 1, 3])  # [B,h,S,d]
        scores = g.op("MatMul", [q, k], f"l{n}_scores")  # [B,h,S,S]
        scores = g.op("Add", [scores, bias], f"l{n}_scores_masked")
        probs = g.op("Softmax", [scores], f"l{n}_probs", axis=-1)
        ctx = g.op("MatMul", [probs, v], f"l{n}_ctx")  # [B,h,S,d]
        ctx = g.op("Transpose", [ctx], f"l{n}_ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, "merge_heads"], f"l{n}_ctx_merged")
        attn = dense(ctx, f"{p}.attention.output.dense", f"l{n}_attn_out")
        attn = g.op("Add", [attn, x], f"l{n}_attn_res")
        x = g.op(
            "LayerNormalization",
            [attn, g.const(f"{p}.attention.output.LayerNorm.weight", w(f"{p}.attention.output.LayerNorm.weight")),
             g.const(f"{p}.attention.output.LayerNorm.bias", w(f"{p}.attention.output.LayerNorm.bias"))],
            f"l{n}_attn_ln", axis=-1, epsilon=eps)

        h = dense(x, f"{p}.intermediate.dense", f"l{n}_ffn_in")
        # Exact (erf) GELU: 0.5 * h * (1 + erf(h / sqrt 2)); ORT fuses it to Gelu.
        e = g.op("Mul", [h, "inv_sqrt2"], f"l{n}_gelu_div")
        e = g.op("Erf", [e], f"l{n}_gelu_erf")
        e = g.op("Add", [e, "one_f"], f"l{n}_gelu_add")
        e = g.op("Mul", [h, e], f"l{n}_gelu_mul")
        h = g.op("Mul", [e, "half"], f"l{n}_gelu")
        o = dense(h, f"{p}.output.dense", f"l{n}_ffn_out")
        o = g.op("Add", [o, x], f"l{n}_ffn_res")
        x = g.op(
            "LayerNormalization",
            [o, g.const(f"{p}.output.LayerNorm.weight", w(f"{p}.output.LayerNorm.weight")),
             g.const(f"{p}.output.LayerNorm.bias", w(f"{p}.output.LayerNorm.bias"))],
            f"l{n}_ffn_ln", axis=-1, epsilon=eps)

    # --- mean pooling over the mask, then L2 normalisation -------------------
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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
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
    """Per-channel SmoothQuant factors s = max|X|^alpha / max|W|^(1-alpha) for
    every dense layer input, from the activation ranges on CALIBRATION_TEXTS."""
    import onnxruntime as ort

    consumers: dict[str, list[str]] = {}
    probe = build_encoder(weights, cfg, probe=True, consumers=consumers)
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = list(consumers)
    tok = make_tokenizer(model_dir)
    act_max: dict[str, np.ndarray] = {}
    for text in CALIBRATION_TEXTS:
        ids, mask = tokenize(tok, [text])
        outs = sess.run(names, {"input_ids": ids, "attention_mask": mask})
        for name, value in zip(names, outs):
            m = np.abs(value.reshape(-1, value.shape[-1])).max(0)
            act_max[name] = np.maximum(act_max.get(name, m), m)

    def weight(prefix: str) -> np.ndarray:
        return weights.get(prefix + ".weight", weights.get("bert." + prefix + ".weight"))

    factors = {}
    for name, prefixes in consumers.items():
        w_max = np.max([np.abs(weight(p)).max(0) for p in prefixes], axis=0)  # per input channel
        s = np.power(np.maximum(act_max[name], 1e-5), alpha) / np.power(np.maximum(w_max, 1e-5), 1 - alpha)
        factors[name] = np.clip(s, 1e-2, 1e2).astype(np.float32)
    return factors


def quantize(fp32_path: str, int8_path: str, per_channel: bool, reduce_range: bool,
             ffn: bool) -> None:
    """Dynamic int8 quantisation of the dense layers (MatMul with a constant
    weight). The attention score/context MatMuls and the embedding Gather
    always stay fp32. Unless `ffn`, the feed-forward MatMuls stay fp32 too:
    measured on the reference texts, quantising them as well drops the
    worst cosine from ~0.991 to ~0.96 (2-4 token texts suffer most), and
    per-layer, per-kind exclusion or SmoothQuant did not recover it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(fp32_path, load_external_data=False)
    exclude = [] if ffn else [
        n.name for n in model.graph.node
        if n.op_type == "MatMul" and ("_ffn_in_mm" in n.name or "_ffn_out_mm" in n.name)
    ]
    quantize_dynamic(
        fp32_path,
        int8_path,
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=exclude,
        extra_options={"MatMulConstBOnly": True},
    )


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
    ap.add_argument("model_dir")
    ap.add_argument("--out", help="output directory (default MODEL_DIR/onnx)")
    ap.add_argument("--verify", action="store_true",
                    help="check the written models against the reference embeddings")
    ap.add_argument("--verify-only", action="store_true", help="do not (re)build, only verify")
    ap.add_argument("--reference", default=os.environ.get(
        "MEMSY_REFERENCE_EMBEDDINGS",
        os.path.join(root, "..", "shared", "reference", "minilm-l6-v2-embeddings.json")))
    ap.add_argument("--per-channel", action=argparse.BooleanOptionalAction, default=True,
                    help="per-channel weight scales in the int8 model (default: on)")
    ap.add_argument("--int8-ffn", action=argparse.BooleanOptionalAction, default=False,
                    help="also quantise the feed-forward layers (faster, but min cosine ~0.96)")
    ap.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=False,
                    help="7-bit weights in the int8 model (default: full 8 bits)")
    ap.add_argument("--smooth-alpha", type=float, default=0.0,
                    help="SmoothQuant migration strength for the int8 model (0 = off, the "
                         "default: 0.5 and 0.7 did not improve the worst cosine here)")
    args = ap.parse_args()
    out_dir = args.out or os.path.join(args.model_dir, "onnx")

    if not args.verify_only:
        with open(os.path.join(args.model_dir, "config.json")) as f:
            cfg = json.load(f)
        weights = load_file(os.path.join(args.model_dir, "model.safetensors"))
        model = build_encoder(weights, cfg)
        os.makedirs(out_dir, exist_ok=True)
        fp32 = os.path.join(out_dir, "model.onnx")
        int8 = os.path.join(out_dir, "model_int8.onnx")
        # Write to temporary names and rename, so an interrupted run never
        # leaves a half-written model that looks finished.
        onnx.save(model, fp32 + ".part")
        os.replace(fp32 + ".part", fp32)
        # The int8 model is quantised from a smoothed copy of the fp32 graph.
        source = fp32
        if args.smooth_alpha > 0:
            factors = smooth_factors(weights, cfg, args.model_dir, args.smooth_alpha)
            source = os.path.join(out_dir, "model_smoothed.onnx.tmp")
            onnx.save(build_encoder(weights, cfg, smooth=factors), source)
        try:
            quantize(source, int8 + ".part", args.per_channel, args.reduce_range, args.int8_ffn)
        finally:
            if source != fp32:
                os.remove(source)
        os.replace(int8 + ".part", int8)
        print(f"wrote {fp32} ({os.path.getsize(fp32) >> 20} MiB) and "
              f"{int8} ({os.path.getsize(int8) >> 20} MiB)", file=sys.stderr)

    if args.verify or args.verify_only:
        return 0 if verify(args.model_dir, out_dir, args.reference) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
