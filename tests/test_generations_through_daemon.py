"""A new model without downtime while `docsync run` holds the embedded store: `docsync
reindex`, `docsync eval --compare` and `docsync switch` go through the daemon, which keeps
answering from the live generation (a reader asking in a loop sees every answer from exactly
one generation, with its own model) and brings the next one up to date before the switch;
and a daemon restarted with another model keeps serving the live generation with the model
it was written with while it builds the next one. Real subprocesses, tiny models."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from docsync.plugin.daemon_client import SOCKET_NAME, DaemonClient, ask_daemon
from tests.conftest import FEW_FILES, HANG, copy_files
from tests.test_daemon_process import DOCSYNC, Daemon, poll
from tests.test_generations import Asking

FILES = FEW_FILES
# Within one file that never changes: the late file a test writes leaves its answers alone.
QUESTION = {
    "q": "How do I create a socket?",
    "limit": "5",
    "mode": "dense",
    "path_prefix": "howto/sockets.rst",
}
Answer = tuple[tuple[str, int, int, float], ...]


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    return copy_files(tmp_path / "docs", FILES)


@pytest.fixture
def started(tmp_path: Path, docs: Path, tiny_model_dir: Path) -> Iterator[Daemon]:
    yield from running(tmp_path, docs, tiny_model_dir)


def running(work: Path, docs: Path, model: Path) -> Iterator[Daemon]:
    process = Daemon(work, docs, model)
    try:
        poll(lambda: process.get("/readyz")[0] == 200, what="ready")
        yield process
    finally:
        if process.proc.poll() is None:
            process.terminate()


def answer(client: DaemonClient) -> Answer:
    hits = client.ask("/search", QUESTION)
    return tuple((h["path"], h["start"], h["end"], round(h["score"], 5)) for h in hits)


class Reader(Asking):
    """A client of the daemon's socket asking the same question in a loop on a thread."""

    def __init__(self, socket_path: Path) -> None:
        self.client = DaemonClient(socket_path)
        super().__init__(lambda: answer(self.client))

    def stop(self) -> list[Answer]:
        answers = super().stop()
        self.client.close()
        return answers


def run_cli(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(daemon.env)
    return subprocess.run(
        [DOCSYNC, *args],
        env=env,
        cwd=daemon.work,
        capture_output=True,
        text=True,
        timeout=HANG,
    )


def keyword_paths(daemon: Daemon, words: str) -> set[str]:
    status, hits = daemon.get("/search", q=words, mode="keyword", limit="5")
    assert status == 200, hits
    return {hit["path"] for hit in hits}


def test_reindex_compare_and_switch_through_a_running_daemon(
    started: Daemon, docs: Path, tmp_path: Path, second_model_dir: Path
) -> None:
    socket_path = tmp_path / "store" / SOCKET_NAME
    reader = Reader(socket_path)
    reader.wait_for(3)
    before = reader.answers[-1]

    built = run_cli(started, "reindex", str(docs), "--model", str(second_model_dir))
    assert built.returncode == 0, built.stderr
    assert "docsync--g2 built" in built.stdout
    reader.wait_for(3)
    assert set(reader.answers) == {before}  # the live generation throughout the build

    # A file written after the build: the daemon syncs it into the live generation, and the
    # switch brings the next one up to date before it is made live.
    (docs / "howto" / "late.md").write_text("# Late\n\nA quokka arrived after the build.\n")
    poll(lambda: "howto/late.md" in keyword_paths(started, "quokka"), what="late file synced")

    questions = tmp_path / "questions.jsonl"
    row = {"question": "How do I create a socket?", "path": "howto/sockets.rst"}
    questions.write_text(json.dumps(row) + "\n")
    compared = run_cli(started, "eval", str(questions), "--compare")
    assert compared.returncode == 0, compared.stderr
    assert " live docsync--g1 " in compared.stdout, compared.stdout
    assert " next docsync--g2 " in compared.stdout, compared.stdout

    switched = run_cli(started, "switch", "--keep")
    assert switched.returncode == 0, switched.stderr
    assert "docsync--g2 is live (docsync--g1 kept" in switched.stdout
    assert "howto/late.md" in keyword_paths(started, "quokka")  # brought up to date
    reader.wait_for(3)
    after = reader.answers[-1]
    assert after != before
    status = ask_daemon(socket_path, "/status")
    assert status["profile"]["model"] == str(second_model_dir)
    assert status["collection"] == "docsync" and status["daemon"]["generation"] == "docsync--g2"

    back = run_cli(started, "switch", "--back")
    assert back.returncode == 0, back.stderr
    assert "docsync--g1 is live (docsync--g2 deleted)" in back.stdout
    reader.wait_for(3)
    answers = reader.stop()
    assert answers[-1] == before
    assert set(answers) <= {before, after}  # each from one generation, with its own model
    assert sorted(p.name for p in (tmp_path / "store").iterdir() if "--g" in p.name) == [
        "docsync--g1"
    ]
    again = run_cli(started, "switch")
    assert again.returncode == 2 and "has no built generation" in again.stderr
    assert started.get("/healthz")[0] == 200


def test_a_daemon_restarted_with_another_model_keeps_serving_and_builds_the_next_generation(
    started: Daemon, docs: Path, tmp_path: Path, second_model_dir: Path
) -> None:
    socket_path = tmp_path / "store" / SOCKET_NAME
    client = DaemonClient(socket_path)
    before = answer(client)
    code, _ = started.terminate()
    assert code == 0

    restarted = Daemon(tmp_path, docs, second_model_dir)
    try:
        poll(lambda: restarted.get("/readyz")[0] == 200, what="ready")
        assert restarted.get("/healthz")[0] == 200
        msgs = [r["message"][:200] for r in restarted.records()]
        assert answer(client) == before, msgs  # the live generation, with its own model
        poll(
            lambda: ask_daemon(socket_path, "/generations")["build"]["state"] != "building",
            what="the next generation built",
        )
        state = ask_daemon(socket_path, "/generations")
        assert state["build"]["state"] == "built", state
        assert state["other"] == {"name": "docsync--g2", "state": "built"}
        assert answer(client) == before  # still: only a switch makes it live
        switched = run_cli(restarted, "switch")
        assert switched.returncode == 0, switched.stderr
        assert answer(client) != before
        (docs / "howto" / "late.md").write_text("# Late\n\nA quokka arrived after the switch.\n")
        poll(lambda: "howto/late.md" in keyword_paths(restarted, "quokka"), what="synced")
        status = ask_daemon(socket_path, "/status")
        assert status["profile"]["model"] == str(second_model_dir)
        warned = [r for r in restarted.records() if "keeps searching and syncing" in r["message"]]
        assert len(warned) == 1
    finally:
        client.close()
        if restarted.proc.poll() is None:
            restarted.terminate()


def test_what_the_routes_refuse(started: Daemon, docs: Path, tmp_path: Path) -> None:
    from docsync.plugin.daemon_client import post_daemon

    socket_path = tmp_path / "store" / SOCKET_NAME
    status, body = post_daemon(socket_path, "/generations/reindex", {"roots": ["/elsewhere"]})
    assert status == 400 and "follows" in body["error"]
    status, body = post_daemon(socket_path, "/generations/compare", {"questions": "no"})
    assert status == 400 and "questions" in body["error"]
    status, body = post_daemon(socket_path, "/generations/switch", {"keep": "yes"})
    assert status == 400 and "'keep'" in body["error"]
    status, body = post_daemon(socket_path, "/generations/switch", {})
    assert status == 409 and "no built generation" in body["error"]
    # Only the socket answers them: the TCP endpoint has no such route.
    assert started.get("/generations")[0] == 404
