"""The labelled questions of bench/questions.jsonl (issue 12) stay well-formed: each names a
file of the corpus and an answer phrase found verbatim in it, on one line."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.conftest import CORPUS

QUESTIONS = Path(__file__).resolve().parents[1] / "bench" / "questions.jsonl"


def test_every_question_names_a_file_and_an_answer_in_it() -> None:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    texts = {p.relative_to(CORPUS).as_posix(): p for p in CORPUS.rglob("*.rst")}
    for row in rows:
        assert set(row) == {"question", "path", "answer"}, row
        assert row["path"] in texts, row
        assert "\n" not in row["answer"], row
        assert row["answer"] in texts[row["path"]].read_text(encoding="utf-8"), row
    asked = Counter(row["question"].strip().lower() for row in rows)
    assert max(asked.values()) == 1
    assert set(Counter(row["path"] for row in rows)) == set(texts)  # every file is asked about
