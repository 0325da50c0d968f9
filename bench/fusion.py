"""How hybrid search fuses its two rankings, measured on labelled questions: RRF with several
k, weighted RRF, DBSF, each with and without the guard (`docsync.plugin.guard`), against
dense and keyword alone, per format (the answering file's suffix).

    DOCSYNC_MODEL=/path/to/model DOCSYNC_QUERY_PREFIX= python bench/fusion.py [--json]
        [--questions Q.jsonl --corpus DIR] [--context 256 128 ...] [--growth alternate]
        [--only WORD ...] [--ranks FILE]

Besides Hit@5 and MRR@10, each variant's `dropped`: the questions whose answer dense alone
or keyword alone ranks first (its first passage answers) that the variant does not have in
its first five passages: the strong single-ranker hits a fusion must keep (issue 28).
The corpus is synced once into a fresh embedded store.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from corpus import DEFAULT_CORPUS
from output import emit

from docsync.plugin import passages, schema
from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS
from docsync.plugin.encoder import Encoder
from docsync.plugin.evaluate import DEPTH, Question, load_questions, rank_of
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Fusion
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.pipeline import sync

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"

NO_GUARD = {"guard": 0}
VARIANTS: dict[str, Fusion | None] = {
    "dense": None,
    "keyword": None,
    "rrf k=60": Fusion("rrf", 60, **NO_GUARD),
    "rrf k=20": Fusion("rrf", 20, **NO_GUARD),
    "rrf k=60 w=1:2": Fusion("rrf", 60, (1.0, 2.0), **NO_GUARD),
    "dbsf": Fusion("dbsf", **NO_GUARD),
    "dbsf guard 1/5": Fusion("dbsf", guard=1, within=5),
    "dbsf guard 2/5": Fusion("dbsf", guard=2, within=5),
    "rrf k=60 guard 1/5": Fusion("rrf", 60, guard=1, within=5),
    "rrf k=20 guard 1/5": Fusion("rrf", 20, guard=1, within=5),
}


def alternate(payload: Mapping[str, Any], budget: int) -> list[tuple[int, str]] | None:
    """`passages.named` as it was before issue 28: the next chunk and the previous one in
    turn while each fits (the walk `--growth alternate` measures)."""
    tokens, after, before = (payload.get(k) for k in (schema.TOKENS, schema.NEXT, schema.PREVIOUS))
    if not isinstance(tokens, int) or not isinstance(after, list) or not isinstance(before, list):
        return None
    chosen: list[tuple[int, str]] = []
    sides = {1: after, -1: before}
    growing = {1: True, -1: True}
    for distance in range(1, schema.REACH + 1):
        for direction in (1, -1):
            side = sides[direction]
            if not growing[direction] or distance > len(side):
                growing[direction] = False
                continue
            pid, cost = side[distance - 1]
            if tokens + int(cost) > budget:
                growing[direction] = False
                continue
            chosen.append((direction * distance, str(pid)))
            tokens += int(cost)
    return chosen


def kind(path: str) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"htm": "html", "markdown": "md"}.get(suffix, suffix or "none")


def scores(ranks: Sequence[int | None]) -> dict[str, float]:
    count = max(len(ranks), 1)
    found = [r for r in ranks if r is not None]
    return {
        "n": len(ranks),
        "hit@5": round(sum(1 for r in found if r <= 5) / count, 3),
        "mrr@10": round(sum(1 / r for r in found) / count, 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument(
        "--context",
        type=int,
        nargs="+",
        default=[DEFAULT_CONTEXT_TOKENS],
        help="passage sizes: every variant at the first, the default fusion at the others",
    )
    parser.add_argument(
        "--growth",
        choices=("after", "alternate"),
        default="after",
        help="how passages grow: the rest of the section first (docsync's), or the walk "
        "before it (next and previous in turn), for comparison",
    )
    parser.add_argument("--only", nargs="+", help="variants naming these (and dense, keyword)")
    parser.add_argument("--ranks", type=Path, help="write each variant's ranks (JSON) here")
    args = parser.parse_args(argv)
    questions: list[Question] = load_questions(args.questions)
    if args.growth == "alternate":
        passages.named = alternate  # type: ignore[assignment]
    runs = [(name, fusion, args.context[0]) for name, fusion in VARIANTS.items()]
    runs += [(f"default context={c}", Fusion(), c) for c in args.context[1:]]
    encoder = Encoder.from_settings(Settings())
    ranks: dict[str, list[int | None]] = {}
    with tempfile.TemporaryDirectory(prefix="docsync-fusion-") as tmp:
        store = EdgeStore(Path(tmp), "fusion")
        report = sync([args.corpus], store=store, encoder=encoder)
        if not report.ok:
            raise SystemExit(f"sync failed: {report.failures}")
        store.optimize()
        first = None
        try:
            for name, fusion, context in runs:
                wanted = not args.only or name in ("dense", "keyword") or "context=" in name
                if not wanted and not any(word in name for word in args.only):
                    continue
                mode = name if fusion is None else "hybrid"
                searcher = Searcher(store, encoder, mode=mode, fusion=fusion, context=context)
                first = first or searcher
                ranks[name] = [
                    rank_of(searcher.search(q.question, limit=DEPTH), q) for q in questions
                ]
                print(name, scores(ranks[name]), file=sys.stderr, flush=True)
        finally:
            if first is not None:
                first.close()
    strong = [i for i, _ in enumerate(questions) if 1 in (ranks["dense"][i], ranks["keyword"][i])]
    formats = sorted({kind(q.path) for q in questions})
    result: dict[str, Any] = {"strong": len(strong)}
    for name, found in ranks.items():
        row: dict[str, Any] = {"all": scores(found)}
        for fmt in formats:
            row[fmt] = scores(
                [r for r, q in zip(found, questions, strict=True) if kind(q.path) == fmt]
            )
        row["dropped"] = sum(1 for i in strong if found[i] is None or found[i] > 5)  # type: ignore[operator]
        result[name] = row
    if args.ranks:
        args.ranks.write_text(json.dumps(ranks), encoding="utf-8")
    emit(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
