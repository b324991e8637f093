#!/usr/bin/env python3
"""What raw turns as a second, episodic source would add to memsy's search.

    .venv/bin/python bench/locomo/episodic_fusion.py /tmp/locomo-results.json

Reads the JSON of a `locomo.py` run (each question's memsy top 10 and BM25
top 10 over the raw turns, as turn ids) and fuses the two rankings by
reciprocal rank, as a search that also queried the raw events with BM25
would: a turn scores sum(w / (k + position)) over the lists it appears in
(memsy's results count once per turn they were derived from), and the 10
best turns are kept. Prints recall@10 by category for memsy alone, BM25
alone and a few fusion settings. A simulation over the same run's results,
not a server measurement: it answers whether building the source is worth
it before it is built.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def fuse(memsy: list[list[str]], bm25: list[list[str]], k: int, w_bm25: float, depth: int) -> list[str]:
    score: dict[str, float] = defaultdict(float)
    seen: set[str] = set()
    for pos, turns in enumerate(memsy):
        for t in turns:
            if t not in seen:
                seen.add(t)
                score[t] += 1 / (k + pos)
    for pos, turns in enumerate(bm25[:depth]):
        for t in turns:
            score[t] += w_bm25 / (k + pos)
    return [t for t, _ in sorted(score.items(), key=lambda x: -x[1])]


SETTINGS = {
    # name: (k, BM25 weight, BM25 depth); None = that system alone
    "memsy alone": None,
    "fusion k=60, equal weights, BM25 top 10": (60, 1.0, 10),
    "fusion k=60, equal weights, BM25 top 3": (60, 1.0, 3),
    "fusion k=60, BM25 weight 0.5, top 10": (60, 0.5, 10),
}


def table(res: dict) -> str:
    """Recall@10 (%) by category for memsy alone and each fusion setting, as Markdown."""
    lines = ["| memsy results | " + " | ".join(f"{c} {n}" for c, n in CATEGORIES.items()) + " | overall |",
             "|---|" + "---:|" * (len(CATEGORIES) + 1)]
    for name, setting in SETTINGS.items():
        hits: dict[int, list[bool]] = defaultdict(list)
        for q in res["questions"]:
            if setting is None:
                ranked = [t for turns in q["memsy_turns_top10"] for t in turns]
            else:
                ranked = fuse(q["memsy_turns_top10"], q["bm25_turns_top10"], *setting)
            hit = any(t in q["evidence"] for t in ranked[:10])
            hits[q["category"]].append(hit)
            hits[0].append(hit)
        cells = [f"{100 * sum(hits[c]) / len(hits[c]):.1f}" for c in [*CATEGORIES, 0]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    print(table(json.load(open(sys.argv[1] if len(sys.argv) > 1 else "/tmp/locomo-results.json", encoding="utf-8"))))


if __name__ == "__main__":
    main()
