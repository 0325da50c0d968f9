"""Retrieval quality: the naive pipeline every tutorial ships against docsync, on the
labelled questions of bench/questions.jsonl, with the same model, in one run.

- naive: fixed 1,000-character windows overlapping by 200, no title, exact cosine search;
- docsync: the corpus synced by docsync into a fresh embedded store, searched by `Searcher`.

Each is scored by `docsync.plugin.evaluate` (Hit@1, Hit@5, File@5, MRR@10, nDCG@10; p50 latency).

    DOCSYNC_MODEL=/path/to/model DOCSYNC_QUERY_PREFIX= python bench/quality.py [--json]
        [--context 0 256 ...] [--chunk-tokens 128 256 ...] [--heading-path] [--only WORD ...]

`--chunk-tokens` and `--heading-path` sync the corpus once per variant (chunk limit; the
heading path embedded before each chunk instead of the document's title).

Model, query prefix, device and the rest come from the DOCSYNC_* settings, as for docsync.

The questions were written from the documents before any tuning and are not edited to fit
results (see NOTES.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from corpus import DEFAULT_CORPUS, SUFFIXES
from output import emit

from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS
from docsync.plugin.encoder import Encoder
from docsync.plugin.evaluate import DEPTH, Question, Scores, load_questions, score
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Fusion
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker import plan
from docsync.worker.chunk import clip_title
from docsync.worker.pipeline import SyncOptions, sync

QUESTIONS = Path(__file__).resolve().parent / "questions.jsonl"
NAIVE_CHARS = 1000
NAIVE_OVERLAP = 200


@dataclass(frozen=True)
class Window:
    path: str
    text: str


def naive_windows(corpus: Path) -> list[Window]:
    windows = []
    for path in sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES and p.is_file()):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(corpus).as_posix()
        step = NAIVE_CHARS - NAIVE_OVERLAP
        for start in range(0, max(len(text) - NAIVE_OVERLAP, 1), step):
            windows.append(Window(name, text[start : start + NAIVE_CHARS]))
    return windows


def naive_search(encoder: Encoder, corpus: Path) -> Callable[[str], Sequence[Any]]:
    windows = naive_windows(corpus)
    matrix = encoder.embed_passages([encoder.passage_input(w.text) for w in windows])

    def search(question: str) -> list[Window]:
        scores = matrix @ encoder.embed_query(question)
        return [windows[i] for i in np.argsort(-scores)[:DEPTH]]

    return search


@dataclass(frozen=True)
class Variant:
    """How the corpus is synced: the chunk limit, and what stands before each chunk's text
    in the model's input (the document's title, as docsync does, or the chunk's heading
    path, for item 4 of the retrieval issue)."""

    chunk_tokens: int = SyncOptions.chunk_tokens
    heading_path: bool = False

    def label(self) -> str:
        parts = (
            [] if self.chunk_tokens == SyncOptions.chunk_tokens else [f"chunk={self.chunk_tokens}"]
        )
        return " ".join(parts + (["heading-path"] if self.heading_path else []))


@contextmanager
def embedding_heading_paths(encoder: Encoder, on: bool) -> Iterator[None]:
    """While on, each chunk is embedded after its heading path (clipped as titles are)
    instead of the document's title. A measurement, not a setting: the planner composes
    one model input per chunk, in order, and this hands each its chunk's path."""
    if not on:
        yield
        return
    original = plan._desired_points

    def desired(version: Any, compose: Callable[[str, str], str]) -> Any:
        sections = iter([c.section for c in version.chunks])

        def with_path(text: str, title: str) -> str:
            return compose(text, clip_title(next(sections), encoder) or title)

        return original(version, with_path)

    plan._desired_points = desired  # type: ignore[assignment]
    try:
        yield
    finally:
        plan._desired_points = original  # type: ignore[assignment]


def docsync_searches(
    encoder: Encoder,
    corpus: Path,
    store_dir: Path,
    contexts: Sequence[int],
    variant: Variant = Variant(),
) -> tuple[Searcher, dict[str, Callable[[str], Sequence[Any]]]]:
    """One search per configuration: each mode, hybrid with each fusion, each context."""
    store = EdgeStore(store_dir, "quality")
    with embedding_heading_paths(encoder, variant.heading_path):
        options = SyncOptions(chunk_tokens=variant.chunk_tokens)
        report = sync([corpus], store=store, encoder=encoder, options=options)
    if not report.ok:
        raise SystemExit(f"sync failed: {report.failures}")
    store.optimize()
    searchers = {
        "dense": Searcher(store, encoder, mode="dense"),
        "keyword": Searcher(store, encoder, mode="keyword"),
        "hybrid rrf": Searcher(store, encoder, mode="hybrid", fusion=Fusion("rrf")),
        "hybrid rrf k=10": Searcher(store, encoder, mode="hybrid", fusion=Fusion("rrf", 10)),
        "hybrid dbsf": Searcher(store, encoder, mode="hybrid", fusion=Fusion("dbsf")),
    }
    suffix = f" {variant.label()}" if variant.label() else ""
    searches: dict[str, Callable[[str], Sequence[Any]]] = {
        f"docsync {name} context={context}{suffix}": partial(
            searcher.search, limit=DEPTH, context=context
        )
        for name, searcher in searchers.items()
        for context in contexts
    }
    return searchers["dense"], searches


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
        help="passage sizes in tokens to score (default: the default)",
    )
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        nargs="+",
        default=[SyncOptions.chunk_tokens],
        help="chunk limits to sync the corpus with, one store each (default: the default)",
    )
    parser.add_argument(
        "--heading-path",
        action="store_true",
        help="also sync with each chunk's heading path embedded instead of the title",
    )
    parser.add_argument("--only", nargs="+", help="score only configurations naming these")
    args = parser.parse_args(argv)
    questions: list[Question] = load_questions(args.questions)
    encoder = Encoder.from_settings(Settings())
    results: dict[str, Scores] = {"naive": score(questions, naive_search(encoder, args.corpus))}
    print("naive", results["naive"].to_dict(), file=sys.stderr, flush=True)
    variants = [
        Variant(tokens, heading)
        for tokens in args.chunk_tokens
        for heading in ([False, True] if args.heading_path else [False])
    ]
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="docsync-quality-") as tmp:
            searcher, searches = docsync_searches(
                encoder, args.corpus, Path(tmp), args.context, variant
            )
            try:
                for name, search in searches.items():
                    if args.only and not any(word in name for word in args.only):
                        continue
                    results[name] = score(questions, search)
                    print(name, results[name].to_dict(), file=sys.stderr, flush=True)
            finally:
                searcher.close()
    emit({name: scores.to_dict() for name, scores in results.items()}, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
