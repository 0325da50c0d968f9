"""Retrieval quality: the naive pipeline every tutorial ships against docsync, on two labelled
sets, per format, with the same model, in one run.

- python: the 229 questions of bench/questions.jsonl over the Python docs' reStructuredText
  (tests/corpus/python-docs);
- debian: the questions of bench/questions_debian.jsonl over Debian manuals of other software,
  PDFs and HTML pages (fetched by bench/corpus_debian.py into ~/.cache/docsync-bench).

Pipelines (bench/quality_sets.py): naive 1,000-character windows overlapping by 200 (pypdf,
BeautifulSoup, no title) searched by exact cosine and by BM25; docsync: the corpus synced into
a fresh embedded store, searched by `Searcher` in each mode (dense, keyword, hybrid with its
default fusion and with each fusion). Each is scored by `docsync.plugin.evaluate` (Hit@1,
Hit@5, File@5, MRR@10, nDCG@10; p50 latency) over all of a set's questions and per format.

    DOCSYNC_MODEL=/path/to/model DOCSYNC_QUERY_PREFIX= python bench/quality.py [--json]
        [--set python|debian|all] [--context 0 256 ...] [--chunk-tokens 128 256 ...]
        [--heading-path] [--only WORD ...]

`--chunk-tokens` and `--heading-path` sync the corpus once per variant (chunk limit; the
heading path embedded before each chunk instead of the document's title). `--questions` and
`--corpus` replace the python set's, `--debian-questions` and `--debian-corpus` the debian
set's.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from corpus import DEFAULT_CORPUS
from output import emit
from quality_sets import (
    ALL,
    BENCH,
    LabelledSet,
    Search,
    labelled_sets,
    naive_bm25,
    naive_dense,
    naive_windows,
    score_by_format,
)

from docsync.plugin.choices import DEFAULT_CONTEXT_TOKENS, DEFAULT_SEARCH_MODE
from docsync.plugin.encoder import Encoder
from docsync.plugin.evaluate import DEPTH, Question, Scores, load_questions, table
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.store import Fusion
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker import plan
from docsync.worker.chunk import clip_title
from docsync.worker.pipeline import SyncOptions, sync


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
    """One search per configuration: the default, each mode, hybrid with each fusion, each
    context. The searchers share one store: closing the first closes it."""
    store = EdgeStore(store_dir, "quality")
    with embedding_heading_paths(encoder, variant.heading_path):
        options = SyncOptions(chunk_tokens=variant.chunk_tokens)
        report = sync([corpus], store=store, encoder=encoder, options=options)
    if not report.ok:
        raise SystemExit(f"sync failed: {report.failures}")
    store.optimize()
    searchers = {
        f"{DEFAULT_SEARCH_MODE} default": Searcher(store, encoder),
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


def score_set(
    labelled: LabelledSet,
    encoder: Encoder,
    args: argparse.Namespace,
) -> dict[str, dict[str, Scores]]:
    """Every configuration's scores on one set: over all its questions and per format."""
    questions: list[Question] = load_questions(labelled.questions)
    corpus = labelled.corpus()
    results: dict[str, dict[str, Scores]] = {}

    def record(name: str, search: Search) -> None:
        results[name] = score_by_format(questions, search)
        print(labelled.name, name, results[name][ALL].to_dict(), file=sys.stderr, flush=True)

    windows = naive_windows(corpus)
    record("naive", naive_dense(encoder, windows))
    record("naive bm25", naive_bm25(windows))
    variants = [
        Variant(tokens, heading)
        for tokens in args.chunk_tokens
        for heading in ([False, True] if args.heading_path else [False])
    ]
    for variant in variants:
        with tempfile.TemporaryDirectory(prefix="docsync-quality-") as tmp:
            searcher, searches = docsync_searches(encoder, corpus, Path(tmp), args.context, variant)
            try:
                for name, search in searches.items():
                    if not args.only or any(word in name for word in args.only):
                        record(name, search)
            finally:
                searcher.close()
    return results


def print_tables(results: dict[str, dict[str, dict[str, Scores]]]) -> None:
    """One table per set and format: a line per configuration."""
    for set_name, configurations in results.items():
        formats = next(iter(configurations.values()), {})
        for fmt, first in formats.items():
            print(f"\n{set_name}, {fmt} ({first.questions} questions)")
            print(table({name: scores[fmt] for name, scores in configurations.items()}))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--set", choices=["python", "debian", "all"], default="all")
    parser.add_argument("--questions", type=Path, default=BENCH / "questions.jsonl")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--debian-questions", type=Path, default=BENCH / "questions_debian.jsonl")
    parser.add_argument(
        "--debian-corpus",
        type=Path,
        help="the debian set's corpus folder (default: fetched by bench/corpus_debian.py)",
    )
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
    sets = labelled_sets(args.questions, args.corpus, args.debian_questions, args.debian_corpus)
    chosen = list(sets) if args.set == "all" else [args.set]
    encoder = Encoder.from_settings(Settings())
    results = {name: score_set(sets[name], encoder, args) for name in chosen}
    if args.json:
        emit(
            {
                set_name: {
                    config: {fmt: scores.to_dict() for fmt, scores in by_fmt.items()}
                    for config, by_fmt in configurations.items()
                }
                for set_name, configurations in results.items()
            },
            as_json=True,
        )
    else:
        print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
