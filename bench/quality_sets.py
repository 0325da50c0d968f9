"""bench/quality.py's labelled sets, its naive baselines and its per-format scoring.

- Sets: `python` (bench/questions.jsonl over the Python docs' reStructuredText) and `debian`
  (bench/questions_debian.jsonl over Debian manuals of other software, PDFs and HTML pages,
  fetched by bench/corpus_debian.py).
- Naive baselines, as a tutorial ships them: each file's text by pypdf (PDF), BeautifulSoup's
  `get_text()` (HTML) or as it is, cut into 1,000-character windows overlapping by 200, no
  title; searched by exact cosine (`naive`) or by BM25 over the same windows (`naive bm25`).
- Scores: every question asked once; Hit@5 and the rest over all the set's questions and
  over each format's (`rst`, `pdf`, `html`... as docsync names a file's format).
"""

from __future__ import annotations

import logging
import math
import re
import statistics
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from corpus import DEFAULT_CORPUS, SUFFIXES

from docsync.plugin.encoder import Encoder
from docsync.plugin.evaluate import DEPTH, Question, Scores, score
from docsync.worker.formats import format_of

BENCH = Path(__file__).resolve().parent
NAIVE_CHARS = 1000
NAIVE_OVERLAP = 200
NAIVE_SUFFIXES = SUFFIXES | {".pdf", ".html", ".htm"}
ALL = "all"  # the key of the scores over every question of a set
Search = Callable[[str], Sequence[Any]]


@dataclass(frozen=True)
class LabelledSet:
    name: str
    questions: Path
    corpus: Callable[[], Path]  # fetched (or found) when the set is scored


def labelled_sets(
    python_questions: Path = BENCH / "questions.jsonl",
    python_corpus: Path = DEFAULT_CORPUS,
    debian_questions: Path = BENCH / "questions_debian.jsonl",
    debian_corpus: Path | None = None,
) -> dict[str, LabelledSet]:
    def debian() -> Path:
        if debian_corpus is not None:
            return debian_corpus
        from corpus_debian import fetch

        return fetch()

    return {
        "python": LabelledSet("python", python_questions, lambda: python_corpus),
        "debian": LabelledSet("debian", debian_questions, debian),
    }


@dataclass(frozen=True)
class Window:
    path: str
    text: str


def naive_text(path: Path) -> str:
    """A file's text as a tutorial's loader reads it."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)  # a line per font it cannot map
        return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    if suffix in {".html", ".htm"}:
        from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

        warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)  # XHTML pages
        return BeautifulSoup(path.read_bytes(), "lxml").get_text()
    return path.read_text(encoding="utf-8", errors="replace")


def naive_windows(corpus: Path) -> list[Window]:
    windows = []
    step = NAIVE_CHARS - NAIVE_OVERLAP
    for path in sorted(p for p in corpus.rglob("*") if p.suffix.lower() in NAIVE_SUFFIXES):
        if not path.is_file():
            continue
        text = naive_text(path)
        name = path.relative_to(corpus).as_posix()
        for start in range(0, max(len(text) - NAIVE_OVERLAP, 1), step):
            windows.append(Window(name, text[start : start + NAIVE_CHARS]))
    return windows


def naive_dense(encoder: Encoder, windows: list[Window]) -> Search:
    matrix = encoder.embed_passages([encoder.passage_input(w.text) for w in windows])

    def search(question: str) -> list[Window]:
        scores = matrix @ encoder.embed_query(question)
        return [windows[i] for i in np.argsort(-scores)[:DEPTH]]

    return search


_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def naive_bm25(windows: list[Window], k1: float = 1.2, b: float = 0.75) -> Search:
    """Okapi BM25 over the windows, words as lower-cased `\\w+` runs."""
    postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
    lengths = np.zeros(len(windows))
    for index, window in enumerate(windows):
        words = _words(window.text)
        lengths[index] = len(words)
        for word, count in Counter(words).items():
            postings[word].append((index, count))
    average = float(lengths.mean()) if len(windows) else 1.0
    norm = k1 * (1 - b + b * lengths / max(average, 1.0))

    def search(question: str) -> list[Window]:
        scores = np.zeros(len(windows))
        for word in set(_words(question)):
            hits = postings.get(word)
            if not hits:
                continue
            idf = math.log(1 + (len(windows) - len(hits) + 0.5) / (len(hits) + 0.5))
            rows = np.array([i for i, _ in hits])
            tf = np.array([c for _, c in hits], dtype=float)
            scores[rows] += idf * tf * (k1 + 1) / (tf + norm[rows])
        return [windows[i] for i in np.argsort(-scores)[:DEPTH]]

    return search


def by_format(questions: Sequence[Question]) -> dict[str, list[Question]]:
    """The questions of each format of their files, by docsync's name for it."""
    groups: dict[str, list[Question]] = defaultdict(list)
    for question in questions:
        groups[format_of(question.path)].append(question)
    return dict(sorted(groups.items()))


def score_by_format(questions: Sequence[Question], search: Search) -> dict[str, Scores]:
    """Each question asked once; the scores over all of them and over each format's."""
    hits: dict[str, list[Any]] = {}
    seconds: dict[str, float] = {}
    for question in questions:
        if question.question in hits:
            continue
        started = time.perf_counter()
        hits[question.question] = list(search(question.question))[:DEPTH]
        seconds[question.question] = time.perf_counter() - started

    def scored(group: Iterable[Question]) -> Scores:
        group = list(group)
        scores = score(group, hits.__getitem__)
        p50 = statistics.median(seconds[q.question] for q in group) * 1000
        return replace(scores, p50_ms=p50)

    result = {ALL: scored(questions)}
    result.update({name: scored(group) for name, group in by_format(questions).items()})
    return result
