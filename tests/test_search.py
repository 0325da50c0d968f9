"""Acceptance on real documents with a real model: the whole corpus (29 multi-section
Python HOWTOs and guides) synced by the real `docsync` command into the embedded store with
all-MiniLM-L6-v2; then questions about one section must find that section's passage first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CORPUS, HANG, minilm_dir

DOCSYNC = str(Path(sys.executable).with_name("docsync"))

# question -> (file, a phrase of the section that answers it)
QUESTIONS = {
    "How do I create a socket and connect to a web server?": (
        "howto/sockets.rst",
        "Creating a Socket",
    ),
    "How can I get the annotations dict of an object in Python 3.10 and newer?": (
        "howto/annotations.rst",
        "Accessing The Annotations Dict Of An Object In Python 3.10",
    ),
    "How do I install packages just for the current user?": (
        "installing.rst",
        "install packages just for the current user",
    ),
    "How can I add optional arguments with argparse?": (
        "howto/argparse.rst",
        "Introducing Optional arguments",
    ),
    "How do I send data to a URL with urllib?": ("howto/urllib2.rst", "Data\n----"),
    "What are windows and pads in curses?": ("howto/curses.rst", "Windows and Pads"),
    "What macros handle reference counting in C extensions?": (
        "extending/extending.rst",
        "Reference Counting in Python",
    ),
    "How do I make a regular expression more readable with re.VERBOSE?": (
        "howto/regex.rst",
        "Using re.VERBOSE",
    ),
}


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    work = tmp_path_factory.mktemp("acceptance")
    docs = work / "python-docs"
    shutil.copytree(CORPUS, docs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(
        DOCSYNC_MODEL=str(minilm_dir()),
        DOCSYNC_QUERY_PREFIX="",
        DOCSYNC_QDRANT_PATH=str(work / "store"),
        HF_HUB_OFFLINE="1",
    )
    result = subprocess.run(
        [DOCSYNC, "sync", str(docs), "--json"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["files_scanned"] == report["files_changed"] >= 20
    yield work, env


def docsync(synced: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    work, env = synced
    return subprocess.run(
        [DOCSYNC, *args], env=env, cwd=work, capture_output=True, text=True, timeout=HANG
    )


def test_second_sync_embeds_nothing(synced: tuple[Path, dict[str, str]]) -> None:
    result = docsync(synced, "sync", str(synced[0] / "python-docs"), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0
    assert (report["chunks_embedded"], report["points_upserted"], report["points_deleted"]) == (
        0,
        0,
        0,
    )


def test_cli_query_returns_the_section(synced: tuple[Path, dict[str, str]]) -> None:
    question = "How do I create a socket and connect to a web server?"
    result = docsync(synced, "query", question, "-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits[0]["path"] == "howto/sockets.rst"
    assert "Creating a Socket" in hits[0]["text"]
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    human = docsync(synced, "query", question, "-k", "1")
    assert "howto/sockets.rst" in human.stdout


def test_status_counts_the_corpus(synced: tuple[Path, dict[str, str]]) -> None:
    result = docsync(synced, "status", "--json")
    status = json.loads(result.stdout)
    assert status["files"] == len(list(CORPUS.rglob("*.rst")))
    assert status["profile"]["query_prefix"] == ""


@pytest.fixture(scope="module")
def searcher(synced: tuple[Path, dict[str, str]], minilm_encoder: Encoder) -> Iterator[Searcher]:
    work, _ = synced
    store = EdgeStore.connect(path=work / "store", collection="docsync")
    with Searcher(store, minilm_encoder) as s:
        yield s


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_question_finds_its_section(searcher: Searcher, question: str) -> None:
    path, phrase = QUESTIONS[question]
    top = searcher.search(question, limit=1)[0]
    assert top.path == path
    assert phrase in top.text


def test_path_prefix_limits_the_search(searcher: Searcher) -> None:
    hits = searcher.search("How do I install Python?", limit=10, path_prefix="using/")
    assert hits and all(h.path.startswith("using/") for h in hits)
    one = searcher.search("sockets", limit=3, path_prefix="howto/sockets.rst")
    assert {h.path for h in one} == {"howto/sockets.rst"}


def test_passages_are_exactly_the_file_text_they_cite(
    searcher: Searcher, synced: tuple[Path, dict[str, str]]
) -> None:
    """A hit grown with its neighbours is the file's own text from `start` to `end`, with
    the whitespace between the chunks as it was (code blocks keep their indentation)."""
    grown = 0
    for question in QUESTIONS:
        for hit in searcher.search(question, limit=5, context=512):
            source = (CORPUS / hit.path).read_text(encoding="utf-8")
            assert hit.text == source[hit.start : hit.end], (hit.path, hit.start)
            assert hit.start <= hit.match_start < hit.match_end <= hit.end
            grown += hit.match_start > hit.start or hit.match_end < hit.end
    assert grown >= len(QUESTIONS)  # most hits did grow: the joins were checked
