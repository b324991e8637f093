#!/usr/bin/env python3
"""LoCoMo retrieval benchmark: memsy against two raw-turn baselines, same run.

    .venv/bin/python bench/locomo/locomo.py [--write-docs]

What it does (see the "LoCoMo retrieval" section of docs/BENCHMARKS.md):

1. Starts its own nats-server + redis-server + `memsy serve` (the e2e test
   fixture `memsy_stack`, binary from $MEMSY_BIN), or uses a running server
   given by --base-url/--api-key.
2. Ingests the 10 LoCoMo conversations through the memsy SDK: one actor per
   conversation, one session per LoCoMo session, each turn one
   `user_message` event "<speaker>: <text>" with ts = session date and
   metadata {"dia_id", "speaker"}; waits until no event is pending.
3. Asks every answerable question (categories 1-4) as an actor-scoped
   search; a hit at k when one of the top-k results has a source event whose
   dia_id is in the question's evidence.
4. Baselines over the same turn strings, candidates limited to the
   question's conversation: dense retrieval with the same embedding model
   (onnxruntime, the graph the server uses) and Okapi BM25.
5. Prints a Markdown report on stdout, writes JSON (default
   /tmp/locomo-results.json) and, with --write-docs, replaces the
   "## LoCoMo retrieval" section of docs/BENCHMARKS.md.

Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "locomo"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import episodic_fusion  # noqa: E402
from embedder_reference import embed_texts, load_session, load_tokenizer  # noqa: E402
from memsy import EventPayload, MemsyClient  # noqa: E402

# The dataset is not in the repository: by default it is in the `shared`
# folder beside the clone.
DATASET = Path(os.environ.get("LOCOMO_DIR", ROOT.parent / "shared" / "datasets" / "locomo"))
MODEL_DIR = ROOT / "models" / "all-minilm-l6-v2"
DOCS = ROOT / "docs" / "BENCHMARKS.md"
DOCS_HEADING = "## LoCoMo retrieval"

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
KS = (1, 5, 10)
INGEST_BATCH = 100  # the issue asks for batches of at most 100 events
TURN_SPACING_S = 5  # turns of one session are this far apart in `ts`
SYSTEMS = ("memsy", "dense raw turns", "BM25 raw turns")


def log(msg: str) -> None:
    print(f"[locomo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- dataset


@dataclass
class Turn:
    conv: str
    session: int
    index: int  # position within its session
    dia_id: str
    speaker: str
    content: str  # "<speaker>: <text>[ [shares a photo: …]]", what every system sees
    ts: datetime


@dataclass
class Question:
    conv: str
    category: int
    question: str
    answer: str
    evidence: set[str]


@dataclass
class Conversation:
    conv: str
    turns: list[Turn] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    sessions: int = 0


def parse_session_date(s: str) -> datetime:
    """'1:56 pm on 8 May, 2023' → an aware UTC datetime (the dataset gives no
    zone, so UTC is as good as any and keeps the order)."""
    return datetime.strptime(s.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=timezone.utc)


def turn_content(turn: dict) -> str:
    """The one string every system indexes for a turn: the speaker as a
    transcript prefix, and the photo caption when the turn shares an image
    (the caption is often the only place the fact lives)."""
    text = f"{turn['speaker']}: {turn['text'].strip()}"
    caption = (turn.get("blip_caption") or "").strip()
    if caption:
        text += f" [shares a photo: {caption}]"
    return text


_DIA = re.compile(r"D:?(\d+):0*(\d+)")


def normalise_evidence(raw: list[str]) -> set[str]:
    """Evidence ids as the turns spell them. A few entries in the files are
    malformed ('D8:6; D9:17', 'D:11:26', 'D30:05'): pull every 'D<s>:<t>'
    out of each entry and drop leading zeros."""
    out = set()
    for entry in raw:
        for s, t in _DIA.findall(entry):
            out.add(f"D{int(s)}:{int(t)}")
    return out


def load_conversation(path: Path) -> tuple[Conversation, int]:
    """One NN.json; also returns how many answerable questions were dropped
    because none of their evidence ids names a turn of the conversation."""
    data = json.loads(path.read_text(encoding="utf-8"))
    c = data.get("conversation", data)
    conv = Conversation(conv=path.stem)
    sessions = sorted(
        int(m.group(1)) for k in c if (m := re.fullmatch(r"session_(\d+)", k)) and isinstance(c[k], list)
    )
    for k in sessions:
        start = parse_session_date(c[f"session_{k}_date_time"])
        for i, t in enumerate(c[f"session_{k}"]):
            conv.turns.append(Turn(
                conv=conv.conv, session=k, index=i, dia_id=t["dia_id"], speaker=t["speaker"],
                content=turn_content(t), ts=start + timedelta(seconds=TURN_SPACING_S * i),
            ))
    conv.sessions = len(sessions)
    known = {t.dia_id for t in conv.turns}
    dropped = 0
    for q in data["qa"]:
        if q.get("category") not in CATEGORIES:
            continue
        ev = normalise_evidence(q.get("evidence") or []) & known
        if not ev:
            dropped += 1
            continue
        conv.questions.append(Question(conv.conv, q["category"], q["question"], str(q.get("answer", "")), ev))
    return conv, dropped


def load_dataset(root: Path) -> tuple[list[Conversation], int]:
    convs, dropped = [], 0
    for p in sorted(root.glob("*.json")):
        c, d = load_conversation(p)
        convs.append(c)
        dropped += d
    return convs, dropped


# ---------------------------------------------------------------- memsy


def actor_of(prefix: str, conv: str) -> str:
    return f"{prefix}-{conv}"


def to_event(t: Turn, actor_prefix: str) -> EventPayload:
    return EventPayload(
        actor_id=actor_of(actor_prefix, t.conv),
        session_id=f"{actor_of(actor_prefix, t.conv)}-s{t.session}",
        kind="user_message",
        content=t.content,
        ts=t.ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        metadata=json.dumps({"dia_id": t.dia_id, "speaker": t.speaker}),
    )


def ingest(client: MemsyClient, convs: list[Conversation], actor_prefix: str) -> dict[str, set[str]]:
    """All turns in dataset order, ≤ INGEST_BATCH per request. Returns
    event_id → dia_ids. A set, because the server folds a repeated (actor,
    session, kind, content) within 60 s into the first event's id, so one
    event can stand for two identical turns."""
    turns = [t for c in convs for t in c.turns]
    event_dias: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(turns), INGEST_BATCH):
        batch = turns[i:i + INGEST_BATCH]
        r = client.ingest([to_event(t, actor_prefix) for t in batch])
        for t, eid in zip(batch, r.event_ids, strict=True):
            event_dias[eid].add(t.dia_id)
    return dict(event_dias)


def wait_processed(client: MemsyClient, event_ids: list[str], timeout_s: float) -> dict[str, int]:
    """Poll /status (≤ 1000 ids a call) until no event is pending."""
    pending = list(event_ids)
    failed = 0
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while pending:
        still = []
        for i in range(0, len(pending), 1000):
            st = client.status(pending[i:i + 1000])
            still += st.pending_ids
            failed += len(st.failed_ids)
        pending = still
        if not pending:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} events still pending after {timeout_s} s")
        if time.monotonic() - last_report > 5:
            log(f"  {len(pending)} events pending")
            last_report = time.monotonic()
        time.sleep(0.5)
    return {"events": len(event_ids), "failed": failed}


def result_dias(result, event_dias: dict[str, set[str]]) -> set[str]:
    """The dia_ids a search result was derived from."""
    out: set[str] = set()
    for eid in result.source_event_ids:
        out |= event_dias.get(eid, set())
    return out


def memsy_rankings(client, convs, event_dias, actor_prefix) -> tuple[list[list[set[str]]], list[float], list[list[str]]]:
    """Per question (dataset order): the dia_ids behind each of the top-10
    results, the search latency in ms, and the top-10 result contents."""
    ranks, lat, tops = [], [], []
    qs = [q for c in convs for q in c.questions]
    for n, q in enumerate(qs):
        t0 = time.perf_counter()
        r = client.search(q.question, actor_id=actor_of(actor_prefix, q.conv), limit=10, threshold=0.0)
        lat.append((time.perf_counter() - t0) * 1000)
        ranks.append([result_dias(x, event_dias) for x in r.results])
        tops.append([x.content for x in r.results])
        if (n + 1) % 250 == 0:
            log(f"  {n + 1}/{len(qs)} searches")
    return ranks, lat, tops


def result_shape(ranks: list[list[set[str]]]) -> dict[str, float]:
    """How many turns stand behind memsy's results: per result (a baseline
    result is always exactly 1; more makes memsy's hit rule more lenient),
    and distinct turns per top 10 (baselines: 10; fewer means several
    results repeat the same turn)."""
    per_result = [len(d) for r in ranks for d in r]
    distinct = [len(set().union(*r)) if r else 0 for r in ranks]
    return {"turns_per_result": float(np.mean(per_result)) if per_result else 0.0,
            "distinct_turns_per_top10": float(np.mean(distinct)) if distinct else 0.0,
            "results_per_search": float(np.mean([len(r) for r in ranks])) if ranks else 0.0}


def memory_counts(client: MemsyClient, convs, actor_prefix: str) -> dict[str, int]:
    """Memories held for the benchmark's actors, any status (the console
    list's `total` with status=all), and how many of them are active."""
    total = active = 0
    for c in convs:
        a = actor_of(actor_prefix, c.conv)
        total += client.memories.list(actor_id=a, status="all", limit=1).total
        active += client.memories.list(actor_id=a, status="active", limit=1).total
    return {"total": total, "active": active}


# ---------------------------------------------------------------- baselines


def dense_rankings(convs, onnx_file: str) -> list[list[set[str]]]:
    """Cosine top-10 over the conversation's turns, with the graph the
    server embeds with (embedder_reference's loading, tokenisation and
    run; pooling and L2 normalisation are inside the graph)."""
    tok = load_tokenizer(str(MODEL_DIR))
    session = load_session(str(MODEL_DIR), onnx_file)

    def embed(texts: list[str]) -> np.ndarray:
        # Length-sorted batches of 32 keep padding (wasted work) small; the
        # masked mean pooling makes each vector independent of its batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            out[idx] = embed_texts(tok, session, [texts[j] for j in idx])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    ranks = []
    for c in convs:
        tv = embed([t.content for t in c.turns])
        qv = embed([q.question for q in c.questions])
        sims = qv @ tv.T
        for row in sims:
            top = np.argsort(-row, kind="stable")[:10]
            ranks.append([{c.turns[i].dia_id} for i in top])
        log(f"  dense: conversation {c.conv} done")
    return ranks


STOP_WORDS = frozenset("""
a an and are as at be been but by did do does for from had has have he her his how i if in into is it
its me my of on or our she so that the their them then there they this to was we were what when where
which who whom why will with would you your
""".split())


def bm25_tokens(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_WORDS]


class BM25:
    """Okapi BM25 (k1 = 1.2, b = 0.75) with the non-negative idf
    ln(1 + (N - df + 0.5) / (df + 0.5)) (Lucene's), so very common terms
    never subtract."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self.tfs = [Counter(bm25_tokens(d)) for d in docs]
        self.lens = np.array([sum(tf.values()) for tf in self.tfs], dtype=np.float64)
        self.avgdl = float(self.lens.mean()) if len(docs) else 0.0
        df = Counter(w for tf in self.tfs for w in tf)
        n = len(docs)
        self.idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for i, tf in enumerate(self.tfs):
            for w, f in tf.items():
                self.postings[w].append((i, f))

    def scores(self, query: str) -> np.ndarray:
        s = np.zeros(len(self.tfs))
        norm = self.k1 * (1 - self.b + self.b * self.lens / max(self.avgdl, 1e-9))
        for w in set(bm25_tokens(query)):
            for i, f in self.postings.get(w, ()):
                s[i] += self.idf[w] * f * (self.k1 + 1) / (f + norm[i])
        return s


def bm25_rankings(convs) -> list[list[set[str]]]:
    ranks = []
    for c in convs:
        index = BM25([t.content for t in c.turns])
        for q in c.questions:
            s = index.scores(q.question)
            top = np.argsort(-s, kind="stable")[:10]
            ranks.append([{c.turns[i].dia_id} for i in top])
    return ranks


# ---------------------------------------------------------------- scoring


def first_hit(ranking: list[set[str]], evidence: set[str]) -> int | None:
    """1-based rank of the first result derived from an evidence turn."""
    for r, dias in enumerate(ranking, 1):
        if dias & evidence:
            return r
    return None


def recall_table(questions: list[Question], hits: list[int | None]) -> dict:
    """recall@k per category and overall: {"1": {"n":…, "r@1":…, …}, …, "all": …}."""
    groups: dict[str, list[int | None]] = defaultdict(list)
    for q, h in zip(questions, hits, strict=True):
        groups[str(q.category)].append(h)
        groups["all"].append(h)
    out = {}
    for g in [str(c) for c in CATEGORIES] + ["all"]:
        hs = groups[g]
        out[g] = {"n": len(hs)} | {
            f"r@{k}": (sum(1 for h in hs if h is not None and h <= k) / len(hs) if hs else 0.0) for k in KS
        }
    return out


def percentile(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p)) if xs else 0.0


# ---------------------------------------------------------------- report


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "arch": platform.machine(), "cpu": cpu,
            "loadavg": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []}


def binary_info(path: str) -> str:
    """Which memsy ran: the binary's path and build (modification) time; the
    working tree can change under a copied binary, so this is the reliable part."""
    try:
        mtime = datetime.fromtimestamp(os.path.getmtime(path), timezone.utc)
        return f"`{path}` (file time {mtime:%Y-%m-%d %H:%M} UTC)"
    except OSError:
        return f"`{path}`"


def git_head() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + (" (plus uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


def markdown_table(tables: dict[str, dict]) -> str:
    """One row per system, one column per category (and overall); each cell
    is recall@1 / @5 / @10 in %, @10 (the acceptance figure) in bold."""
    cols = [str(c) for c in CATEGORIES] + ["all"]
    any_t = next(iter(tables.values()))
    head = ["system"] + [
        (f"{c} {CATEGORIES[int(c)]}" if c != "all" else "overall") + f" (n={any_t[c]['n']})" for c in cols
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(cols) + "|"]
    for sysname, t in tables.items():
        cells = [sysname] + [
            f"{100 * t[c]['r@1']:.1f} / {100 * t[c]['r@5']:.1f} / **{100 * t[c]['r@10']:.1f}**" for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(tables: dict[str, dict]) -> str:
    """Which groups memsy's recall@10 beats both baselines in (the acceptance test)."""
    cols = [str(c) for c in CATEGORIES] + ["all"]
    m = tables["memsy"]
    wins = [c for c in cols if all(m[c]["r@10"] > tables[b][c]["r@10"] for b in SYSTEMS[1:])]
    losses = [c for c in cols if c not in wins]
    label = lambda c: "overall" if c == "all" else f"{c} {CATEGORIES[int(c)]}"  # noqa: E731
    if not losses:
        return "memsy's recall@10 beats both raw-turn baselines in every category and overall."
    return ("memsy's recall@10 does **not** beat both raw-turn baselines in: "
            + ", ".join(label(c) for c in losses)
            + (f" (it does in: {', '.join(label(c) for c in wins)})." if wins else "."))


def render_section(res: dict) -> str:
    """The whole docs section, regenerated by every --write-docs run."""
    m = res["memsy"]
    mc = res["machine"]
    return f"""{DOCS_HEADING}

`bench/locomo/locomo.py` measures how well memsy finds the turns that answer a
question, on the public LoCoMo dataset (10 long conversations, 5,882 turns;
`shared/datasets/locomo/` beside the clone, or `$LOCOMO_DIR`), against two baselines over the raw turns
measured in the same run. Generated by the script (`--write-docs`); rerun it
rather than editing by hand.

- **Ingest**: every turn is one `user_message` event, content
  `"<speaker>: <text>"` (plus ` [shares a photo: <caption>]` when the turn has
  a BLIP caption), `ts` = the session's date (turns {TURN_SPACING_S} s apart),
  metadata `{{"dia_id", "speaker"}}`; one actor per conversation
  (`locomo-<NN>`), one session per LoCoMo session; batches of {INGEST_BATCH} through
  the SDK, then `status` until nothing is pending. Rules extraction (no LLM).
- **Questions**: categories 1–4 (answerable); {res['dropped_questions']} whose evidence names no
  turn of the conversation are left out. Each is one
  `search(question, actor_id=<conversation's actor>, limit=10, threshold=0)`.
- **Hit at k**: one of the top-k results was derived from an evidence turn
  (memsy: a `source_event_ids` entry whose event carries an evidence
  `dia_id`; baselines: the turn itself is an evidence turn).
- **Baselines**, over exactly the same turn strings, candidates limited to
  the question's conversation (as the actor scope limits memsy): *dense* =
  the server's embedding model and graph (`{res['onnx_file']}`, all-MiniLM-L6-v2, through
  onnxruntime in Python, `bench/embedder_reference.py`), cosine top 10;
  *BM25* = Okapi, k1 = 1.2, b = 0.75, lowercase alphanumeric tokens, a
  {len(STOP_WORDS)}-word English stop list.

### Run

- **Command** (from the repository root): `{res['command']}`
- **Date**: {res['date_utc']}
- **Machine**: `nproc` = {mc['nproc']}, `uname -m` = {mc['arch']}, CPU: {mc['cpu']};
  load average {' '.join(mc['loadavg'])} at the start (shared machine)
- **memsy**: {res['memsy_bin']}; repository HEAD at run time {res['git']}
- **Time**: ingest + pipeline (first ingest request → no event pending)
  {res['timing_s']['ingest_and_pipeline']:.1f} s for {res['turns']} events
  ({res['turns'] / max(res['timing_s']['ingest_and_pipeline'], 1e-9):.0f} events/s; the ingest requests alone
  {res['timing_s']['ingest_requests']:.1f} s); {len(res['questions'])} memsy searches
  {res['timing_s']['memsy_search']:.1f} s; dense baseline (embedding every turn and question)
  {res['timing_s']['dense']:.1f} s; BM25 {res['timing_s']['bm25']:.1f} s; whole run (stack start to stop)
  {res['timing_s'].get('total_with_stack', res['timing_s']['total']):.1f} s

### Recall (%) over answerable questions: R@1 / R@5 / **R@10**

{markdown_table(res['recall'])}

{verdict(res['recall'])}

- **Memories stored**: {m['memories']['total']} for {res['turns']} turns =
  **{m['memories_per_turn']:.2f} per turn** ({m['memories']['active']} active);
  events failed: {m['failed_events']}.
- **Search latency** (memsy, client-side through the SDK, sequential, {len(res['questions'])} searches):
  p50 **{m['search_ms']['p50']:.1f} ms**, p95 **{m['search_ms']['p95']:.1f} ms**.
- **What stands behind memsy's results**: {m['result_shape']['turns_per_result']:.2f} source turns per
  result (a baseline result is 1 turn, so above 1 memsy's hit rule is the more lenient);
  {m['result_shape']['distinct_turns_per_top10']:.1f} distinct turns in a top 10
  ({m['result_shape']['results_per_search']:.1f} results per search; the baselines always cover 10 turns).

### Raw turns as a second, episodic source?

memsy's search reads memories only. Would also querying the raw events (BM25 over each message, fused
with the memory results by reciprocal rank) help? `bench/locomo/episodic_fusion.py <this run's JSON>`
answers from this run's own rankings, before such a source is built (a simulation, not a server
measurement; recall@10 %, turns as the unit, so memsy alone can differ from the table above by a tenth):

{episodic_fusion.table(res)}
"""


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the section from DOCS_HEADING to the next level-2 heading (or
    the end); append it when absent. Other sections stay byte for byte."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == DOCS_HEADING), None)
    body = section.rstrip("\n") + "\n"
    if start is None:
        path.write_text(text.rstrip("\n") + "\n\n" + body, encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    path.write_text("".join(lines[:start]) + body + ("\n" + tail if tail else ""), encoding="utf-8")


def miss_examples(convs, qs, hits_m, hits_d, tops, per_category: int) -> dict[str, list[dict]]:
    """Per category, questions dense-raw finds within 10 and memsy does not:
    what the lead's extraction/retrieval work should fix first."""
    text_of = {(t.conv, t.dia_id): t.content for c in convs for t in c.turns}
    out: dict[str, list[dict]] = {}
    for cat in CATEGORIES:
        rows = []
        for q, hm, hd, top in zip(qs, hits_m, hits_d, tops, strict=True):
            if q.category == cat and hd is not None and hm is None:
                rows.append({
                    "conv": q.conv, "question": q.question, "answer": q.answer, "dense_rank": hd,
                    "evidence": {d: text_of[(q.conv, d)] for d in sorted(q.evidence)},
                    "memsy_top3": top[:3],
                })
        out[str(cat)] = {"count": len(rows), "examples": rows[:per_category]}
    return out


def render_misses(misses) -> str:
    lines = ["# LoCoMo: dense-raw hits at 10, memsy misses", ""]
    for cat, v in misses.items():
        lines.append(f"## Category {cat} {CATEGORIES[int(cat)]}: {v['count']} such questions")
        for e in v["examples"]:
            lines.append(f"- **Q** ({e['conv']}, dense rank {e['dense_rank']}): {e['question']}  (answer: {e['answer']})")
            for d, t in e["evidence"].items():
                lines.append(f"  - evidence {d}: {t}")
            for i, t in enumerate(e["memsy_top3"], 1):
                lines.append(f"  - memsy #{i}: {t}")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def run(args, base_url: str, api_key: str, memsy_bin: str) -> dict:
    t_run = time.monotonic()
    convs, dropped = load_dataset(args.dataset)
    qs = [q for c in convs for q in c.questions]
    turns = sum(len(c.turns) for c in convs)
    log(f"{len(convs)} conversations, {turns} turns, {len(qs)} answerable questions ({dropped} dropped)")

    client = MemsyClient(base_url=base_url, api_key=api_key, timeout=60)
    t0 = time.monotonic()
    log("ingesting")
    event_dias = ingest(client, convs, args.actor_prefix)
    t_ingest = time.monotonic() - t0
    log(f"ingested {len(event_dias)} distinct events in {t_ingest:.1f} s; waiting for the pipeline")
    st = wait_processed(client, list(event_dias), args.pipeline_timeout)
    t_pipeline = time.monotonic() - t0
    log(f"pipeline done in {t_pipeline:.1f} s ({st['failed']} failed)")
    mem = memory_counts(client, convs, args.actor_prefix)
    log(f"{mem['total']} memories ({mem['active']} active) for {turns} turns")

    log("memsy searches")
    t0 = time.monotonic()
    ranks_m, lat, tops = memsy_rankings(client, convs, event_dias, args.actor_prefix)
    t_search = time.monotonic() - t0
    client.close()

    log("dense baseline")
    t0 = time.monotonic()
    ranks_d = dense_rankings(convs, args.onnx_file)
    t_dense = time.monotonic() - t0
    log("BM25 baseline")
    t0 = time.monotonic()
    ranks_b = bm25_rankings(convs)
    t_bm25 = time.monotonic() - t0

    hits = {
        "memsy": [first_hit(r, q.evidence) for r, q in zip(ranks_m, qs, strict=True)],
        "dense raw turns": [first_hit(r, q.evidence) for r, q in zip(ranks_d, qs, strict=True)],
        "BM25 raw turns": [first_hit(r, q.evidence) for r, q in zip(ranks_b, qs, strict=True)],
    }
    misses = miss_examples(convs, qs, hits["memsy"], hits["dense raw turns"], tops, args.examples)
    return {
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": args.command,
        "machine": args.machine,
        "git": git_head(),
        "memsy_bin": memsy_bin,
        "onnx_file": args.onnx_file,
        "turns": turns,
        "dropped_questions": dropped,
        "questions": [{"conv": q.conv, "category": q.category, "question": q.question,
                       "evidence": sorted(q.evidence), "first_hit": {s: h[i] for s, h in hits.items()},
                       "memsy_top10": tops[i],
                       # Rankings as turn ids, for analyses of fusion with the baselines.
                       "memsy_turns_top10": [sorted(d) for d in ranks_m[i]],
                       "bm25_turns_top10": [sorted(d) for d in ranks_b[i]]}
                      for i, q in enumerate(qs)],
        "recall": {s: recall_table(qs, h) for s, h in hits.items()},
        "memsy": {
            "memories": mem,
            "memories_per_turn": mem["total"] / turns,
            "failed_events": st["failed"],
            "distinct_events": len(event_dias),
            "result_shape": result_shape(ranks_m),
            "search_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95), "max": max(lat)},
        },
        "timing_s": {"ingest_requests": t_ingest, "ingest_and_pipeline": t_pipeline, "memsy_search": t_search,
                     "dense": t_dense, "bm25": t_bm25, "total": time.monotonic() - t_run},
        "misses_dense_hit_memsy_miss": misses,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-url", help="a running server (…/v1); default: start a private stack")
    ap.add_argument("--api-key", help="key for --base-url (read,write)")
    ap.add_argument("--actor-prefix", default="locomo",
                    help="actor ids are <prefix>-<NN>; change it to rerun against the same org")
    ap.add_argument("--dataset", type=Path, default=DATASET)
    ap.add_argument("--onnx-file", default=os.environ.get("MEMSY__EMBEDDER__ONNX_FILE", "model_int8.onnx"),
                    help="graph for the dense baseline; the server's (default model_int8.onnx)")
    ap.add_argument("--json", type=Path, default=Path("/tmp/locomo-results.json"))
    ap.add_argument("--misses", type=Path, default=Path("/tmp/locomo-misses.md"))
    ap.add_argument("--examples", type=int, default=4, help="miss examples kept per category")
    ap.add_argument("--pipeline-timeout", type=float, default=1800)
    ap.add_argument("--from-json", type=Path,
                    help="render (and with --write-docs, write) the report of an earlier run's JSON; runs nothing")
    ap.add_argument("--write-docs", action="store_true", help=f"replace '{DOCS_HEADING}' in docs/BENCHMARKS.md")
    args = ap.parse_args()
    args.command = " ".join(shlex.quote(a) for a in
                            [".venv/bin/python", "bench/locomo/locomo.py", *sys.argv[1:]])
    args.machine = machine()
    t_all = time.monotonic()

    if args.from_json:
        res = json.loads(args.from_json.read_text(encoding="utf-8"))
        publish(res, args.write_docs)
        return
    if args.base_url:
        if not args.api_key:
            ap.error("--base-url needs --api-key")
        res = run(args, args.base_url, args.api_key, f"running server at {args.base_url}")
    else:
        from conftest import memsy_bin, memsy_stack  # the e2e fixture: private nats, redis, memsy

        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        os.environ.setdefault("MEMSY_BIN", str(Path(target) / "release" / "memsy"))
        log(f"starting a private stack ({os.environ['MEMSY_BIN']})")
        with memsy_stack() as server:
            org = "locomo-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
            key = server.create_key(org, "read,write", name="locomo")
            res = run(args, server.base_url, key, binary_info(memsy_bin()) + ", `memsy serve` in a private stack")
    res["timing_s"]["total_with_stack"] = time.monotonic() - t_all

    args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    args.misses.write_text(render_misses(res["misses_dense_hit_memsy_miss"]), encoding="utf-8")
    log(f"JSON: {args.json}; miss examples: {args.misses}")
    publish(res, args.write_docs)


def publish(res: dict, to_docs: bool) -> None:
    section = render_section(res)
    print(section)
    if to_docs:
        write_docs(section)
        log(f"updated '{DOCS_HEADING}' in {DOCS}")


if __name__ == "__main__":
    main()
