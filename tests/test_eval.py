"""`docsync eval QUESTIONS.jsonl`: labelled questions scored in every search mode, in-process
on a real embedded store synced with the tiny model, directly and through a daemon's socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docsync.plugin.choices import SEARCH_MODES
from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CliSynced, copy_store
from tests.test_cli import assert_one_error_line, run
from tests.test_serve import make_api, serving

QUESTIONS = [
    {"question": "How do I create a socket?", "path": "sockets.rst", "answer": "socket"},
    {"question": "How are enum members compared?", "path": "enum.rst"},
    {"question": "Best practice for __annotations__", "path": "annotations.rst"},
]
SCORES = {"questions", "hit@1", "hit@5", "file@5", "mrr@10", "ndcg@10", "p50_ms"}


@pytest.fixture
def synced(env: Path, tmp_path: Path, cli_synced: CliSynced) -> Path:
    """Three documents synced into an embedded store in tmp_path (a copy of the session's:
    eval only reads the store, never the documents); returns a questions file."""
    copy_store(cli_synced.store, tmp_path / "store")
    return write_questions(tmp_path / "questions.jsonl", QUESTIONS)


def write_questions(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_json_scores_every_mode(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "eval", str(synced), "--json")
    assert code == 0, err
    result = json.loads(out)  # exactly one JSON document on stdout
    assert result["collection"] == "docsync" and result["questions"] == 3
    assert result["model"] and result["fusion"] == "dbsf guard=1"  # the default fusion
    for mode in SEARCH_MODES:
        scores = result[mode]
        assert scores.keys() == SCORES and scores["questions"] == 3
        assert 0 <= scores["hit@1"] <= scores["hit@5"] <= scores["file@5"] <= 1
        assert 0 <= scores["mrr@10"] <= scores["ndcg@10"] <= 1
        assert scores["p50_ms"] > 0
    # Three files, ten hits: the answering file is always among them in some rank.
    assert result["keyword"]["hit@5"] > 0 and result["keyword"]["file@5"] == 1.0
    assert "not in the collection" not in err
    assert result["via_daemon"] is False  # the store was opened here


def test_table_has_a_row_per_mode(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "eval", str(synced))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("3 questions on collection 'docsync'")
    assert lines[1].split() == [
        "mode",
        "Hit@1",
        "Hit@5",
        "File@5",
        "MRR@10",
        "nDCG@10",
        "p50",
        "ms",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows.keys() == set(SEARCH_MODES)
    for cells in rows.values():
        assert len(cells) == 6 and all(0 <= float(c) <= 1 for c in cells[:5])


def test_one_mode_and_a_path_prefix(synced: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "eval", str(synced), "--mode", "keyword", "--path-prefix", "enum.rst", "--json"
    )
    result = json.loads(out)
    assert code == 0 and set(SEARCH_MODES) & result.keys() == {"keyword"}
    assert result["keyword"]["file@5"] == pytest.approx(1 / 3, abs=0.001)  # only enum.rst
    code, out, err = run(capsys, "eval", str(synced), "--path-prefix", "/docs/enum.rst")
    assert code == 2 and out == ""
    assert_one_error_line(err, "relative to a synced folder")


def test_paths_not_in_the_collection_are_one_warning(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{**row, "path": "howto/" + row["path"]} for row in QUESTIONS]
    rows[0]["path"] = "sockets.rst"
    code, out, err = run(capsys, "eval", str(write_questions(synced, rows)), "--json")
    assert code == 0 and json.loads(out)["dense"]["file@5"] <= 1 / 3
    warnings = [line for line in err.splitlines() if "not in the collection" in line]
    assert len(warnings) == 1 and "2 of 3 questions" in warnings[0]
    assert "howto/enum.rst" in warnings[0]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"question": "q", "path": "a.md"}\n{not json\n', "questions.jsonl:2: not JSON"),
        ('{"question": "q"}\n', "questions.jsonl:1: 'path' must be a non-empty string"),
        ("\n\n", "no questions"),
    ],
)
def test_a_bad_questions_file_is_one_error_line(
    synced: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    synced.write_text(text, encoding="utf-8")
    code, out, err = run(capsys, "eval", str(synced))
    assert code == 2 and out == ""
    assert_one_error_line(err, fragment)


def test_a_missing_questions_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "eval", str(tmp_path / "nowhere.jsonl"))
    assert code == 2 and out == ""
    assert_one_error_line(err, "cannot read", "nowhere.jsonl", "No such file")
    assert "loading model" not in err  # refused before the model's seconds of loading


def test_a_missing_collection_is_one_error_line(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "eval", str(synced), "--collection", "other")
    assert code == 2
    assert_one_error_line(err, "'other' does not exist")


def test_through_the_daemon_that_holds_the_store(
    synced: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a daemon holds the embedded store, eval asks it, as `docsync query` does."""
    settings = Settings()
    store = EdgeStore.connect(path=settings.qdrant_path, collection=settings.collection)
    searcher = Searcher(store, Encoder.from_settings(settings))
    try:
        with serving(make_api(searcher), socket_path=settings.qdrant_path / "daemon.sock"):
            code, out, err = run(capsys, "eval", str(synced), "--json")
    finally:
        store.close()
    assert code == 0, err
    result = json.loads(out)
    assert result["via_daemon"] is True  # the daemon's model answered
    assert result["model"] == settings.model
    assert all(result[mode]["questions"] == 3 for mode in SEARCH_MODES)
    assert result["keyword"]["file@5"] == 1.0
