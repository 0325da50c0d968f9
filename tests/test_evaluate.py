"""Scoring labelled questions (docsync.plugin.evaluate): the metrics, and clear errors for bad
files."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from docsync.plugin.errors import ConfigError
from docsync.plugin.evaluate import Question, load_questions, rank_of, score, table, unmatched


@dataclass
class FakeHit:
    path: str
    text: str


def test_scores_follow_the_first_relevant_rank() -> None:
    questions = [
        Question("q1", "a.md", "the answer"),  # rank 1
        Question("q2", "b.md", "needle"),  # rank 3 (rank 1 is the right file without it)
        Question("q3", "c.md"),  # no answer phrase: the right file is enough; rank 2
        Question("q4", "d.md", "absent"),  # not found
    ]
    hits = {
        "q1": [FakeHit("docs/a.md", "so THE\n answer is"), FakeHit("b.md", "x")],
        "q2": [FakeHit("b.md", "hay"), FakeHit("a.md", "needle"), FakeHit("b.md", "a needle")],
        "q3": [FakeHit("a.md", "x"), FakeHit("c.md", "anything")],
        "q4": [FakeHit("d.md", "nothing here")],
    }
    assert rank_of(hits["q1"], questions[0]) is None  # the phrase is case-sensitive
    marked = Question("q5", "e.md", "run `apt-get source` first")
    assert rank_of([FakeHit("e.md", "so run apt-get\nsource first")], marked) == 1
    plain = Question("q6", "e.md", "run apt-get source first")
    assert rank_of([FakeHit("e.md", "so run `apt-get source` first")], plain) == 1
    questions[0] = Question("q1", "a.md", "answer is")
    scores = score(questions, lambda q: hits[q])
    assert scores.questions == 4
    assert scores.hit_at_1 == 0.25 and scores.hit_at_5 == 0.75
    assert scores.file_at_5 == 1.0
    assert scores.mrr_at_10 == pytest.approx((1 + 1 / 3 + 1 / 2) / 4)
    assert scores.ndcg_at_10 == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 4)
    assert scores.p50_ms >= 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected an object"),
        ('{"path": "a.md"}', "'question' must be"),
        ('{"question": "q?", "path": ""}', "'path' must be"),
        ('{"question": "q?", "path": "a.md", "answer": 3}', "'answer' must be"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "ok?", "path": "a.md"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=f"q.jsonl:2: {message}"):
        load_questions(path)


def test_questions_load(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Why?", "path": "/howto/a.md", "answer": "because"}\n\n')
    assert load_questions(path) == [Question("Why?", "howto/a.md", "because")]
    path.write_text("\n")
    with pytest.raises(ConfigError, match="no questions"):
        load_questions(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_questions(tmp_path / "missing.jsonl")


def test_unmatched_paths_compare_as_same_file_does() -> None:
    stored = ["docs/howto/a.md", "b.md"]
    questions = [Question("q", "howto/a.md"), Question("q", "a.md"), Question("q", "b.md")]
    assert unmatched(questions, stored) == []
    wrong = [Question("q", "other/a.md"), Question("q", "docs/b.md"), Question("q", "b.md")]
    assert unmatched(wrong, stored) == wrong[:2]


def test_table_aligns_a_row_per_name() -> None:
    scores = score([Question("q", "a.md")], lambda q: [FakeHit("a.md", "x")])
    lines = table({"dense": scores, "hybrid": scores}).splitlines()
    assert lines[0].split() == [
        "mode",
        "Hit@1",
        "Hit@5",
        "File@5",
        "MRR@10",
        "nDCG@10",
        "p50",
        "ms",
    ]
    assert lines[1].split()[:6] == ["dense", "1.000", "1.000", "1.000", "1.000", "1.000"]
    assert len({len(line) for line in lines}) == 1
