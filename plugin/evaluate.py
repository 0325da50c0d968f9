"""Retrieval measured on a user's own labelled questions: what `docsync eval` and
bench/quality.py report.

A question file is JSON Lines, one object per line: `question`, `path` (the answering file,
relative to its synced folder, as hits show it) and optionally `answer` (a phrase the
answering passage contains). A hit is *relevant* when it comes from that file and, if an
answer is given, its text contains the phrase (compared with whitespace runs collapsed, so
a passage joined from chunks still matches, and without Markdown's code marks, so a phrase
copied from the page matches text whose reader marked `code`). The scores, over the first
relevant hit's rank:
Hit@1, Hit@5, MRR@10, nDCG@10 (one relevant passage per question: 1/log2(rank+1)), and
File@5, the answering file among the first five hits whatever their text.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docsync.plugin.errors import ConfigError

DEPTH = 10  # hits asked for per question: what MRR@10 and nDCG@10 look at
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Question:
    question: str
    path: str
    answer: str = ""


@dataclass(frozen=True)
class Scores:
    questions: int
    hit_at_1: float
    hit_at_5: float
    file_at_5: float
    mrr_at_10: float
    ndcg_at_10: float
    p50_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "hit@1": round(self.hit_at_1, 3),
            "hit@5": round(self.hit_at_5, 3),
            "file@5": round(self.file_at_5, 3),
            "mrr@10": round(self.mrr_at_10, 3),
            "ndcg@10": round(self.ndcg_at_10, 3),
            "p50_ms": round(self.p50_ms, 1),
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Scores:
        """What `to_dict` gave (a daemon's comparison, over its socket)."""
        return cls(
            questions=int(row["questions"]),
            hit_at_1=float(row["hit@1"]),
            hit_at_5=float(row["hit@5"]),
            file_at_5=float(row["file@5"]),
            mrr_at_10=float(row["mrr@10"]),
            ndcg_at_10=float(row["ndcg@10"]),
            p50_ms=float(row["p50_ms"]),
        )


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSON Lines file; a bad line is a `ConfigError` naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    questions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: not JSON ({exc})") from None
        try:
            questions.append(question_of(row))
        except ValueError as exc:
            raise ConfigError(f"{path}:{number}: {exc}") from None
    if not questions:
        raise ConfigError(f"{path}: no questions")
    return questions


def question_of(row: object) -> Question:
    """One labelled question from its JSON object (a line of a question file, or one sent to
    a daemon); ValueError saying what is wrong with it."""
    if not isinstance(row, dict):
        raise ValueError("expected an object with question and path")
    question, file, answer = row.get("question"), row.get("path"), row.get("answer", "")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' must be a non-empty string")
    if not isinstance(file, str) or not file.strip():
        raise ValueError("'path' must be a non-empty string")
    if not isinstance(answer, str):
        raise ValueError("'answer' must be a string")
    return Question(question, file.strip().strip("/"), answer)


def relevant(hit: Any, question: Question) -> bool:
    """Whether `hit` (anything with `path` and `text`) answers `question`."""
    if not same_file(hit.path, question.path):
        return False
    return not question.answer or _flat(question.answer) in _flat(hit.text)


def same_file(hit_path: str, wanted: str) -> bool:
    """The hit's path is the wanted one, or ends with it (a folder synced one level up)."""
    return hit_path == wanted or hit_path.endswith("/" + wanted)


def unmatched(questions: Sequence[Question], paths: Iterable[str]) -> list[Question]:
    """The questions whose `path` names none of `paths` (the files of a collection), as
    `same_file` compares them."""
    tails = {tail for path in paths for tail in _tails(path)}
    return [q for q in questions if q.path not in tails]


def rank_of(hits: Sequence[Any], question: Question) -> int | None:
    """The 1-based rank of the first relevant hit, or None."""
    return next((i for i, hit in enumerate(hits, start=1) if relevant(hit, question)), None)


def score(questions: Sequence[Question], search: Callable[[str], Sequence[Any]]) -> Scores:
    """Ask `search` (a question in, hits best first out) every question and score it."""
    ranks: list[int | None] = []
    files: list[bool] = []
    seconds: list[float] = []
    for question in questions:
        started = time.perf_counter()
        hits = list(search(question.question))[:DEPTH]
        seconds.append(time.perf_counter() - started)
        ranks.append(rank_of(hits, question))
        files.append(any(same_file(hit.path, question.path) for hit in hits[:5]))
    count = len(questions)
    found = [r for r in ranks if r is not None]
    return Scores(
        questions=count,
        hit_at_1=sum(1 for r in found if r == 1) / count,
        hit_at_5=sum(1 for r in found if r <= 5) / count,
        file_at_5=sum(files) / count,
        mrr_at_10=sum(1 / r for r in found) / count,
        ndcg_at_10=sum(1 / math.log2(r + 1) for r in found) / count,
        p50_ms=statistics.median(seconds) * 1000 if seconds else 0.0,
    )


COLUMNS = (
    ("Hit@1", "hit@1"),
    ("Hit@5", "hit@5"),
    ("File@5", "file@5"),
    ("MRR@10", "mrr@10"),
    ("nDCG@10", "ndcg@10"),
    ("p50 ms", "p50_ms"),
)


def table(rows: Mapping[str, Scores]) -> str:
    """One aligned line per row (a search mode, say) under a header of the scores' names."""
    width = max(len("mode"), *map(len, rows))
    lines = [f"{'mode':<{width}}" + "".join(f"  {title:>7}" for title, _ in COLUMNS)]
    for name, scores in rows.items():
        values = scores.to_dict()
        cells = (
            f"  {values[key]:>7.1f}" if key == "p50_ms" else f"  {values[key]:>7.3f}"
            for _, key in COLUMNS
        )
        lines.append(f"{name:<{width}}" + "".join(cells))
    return "\n".join(lines)


def _tails(path: str) -> list[str]:
    """`a/b/c.md` gives `a/b/c.md`, `b/c.md`, `c.md`: what `same_file` accepts for it."""
    parts = path.split("/")
    return ["/".join(parts[i:]) for i in range(len(parts))]


def _flat(text: str) -> str:
    return _SPACE.sub(" ", text.replace("`", "")).strip()
