"""The workflow of a new model through the `docsync` command, on the embedded store: reindex,
eval --compare, switch, query (with the model the live generation names), switch --back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docsync.worker.cli import cli


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli(*args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_whole_workflow(
    env: Path, second_model_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"question": "How do I make a socket?", "path": "sockets.rst"}) + "\n"
    )
    assert run(capsys, "sync", str(env))[0] == 0
    code, _, err = run(capsys, "switch")
    assert code == 2 and "no built generation" in err
    code, out, err = run(capsys, "reindex", str(env), "--model", str(second_model_dir), "--json")
    built = json.loads(out)
    assert code == 0 and built["built"] and built["generation"] == "docsync--g2", err
    code, out, err = run(capsys, "eval", str(questions), "--compare")
    assert code == 0, err
    assert "live docsync--g1" in out and "next docsync--g2" in out and str(second_model_dir) in out
    code, out, err = run(capsys, "switch", "--keep")
    assert code == 0 and "docsync--g2 is live" in out, err
    code, out, err = run(capsys, "query", "socket", "--json")  # DOCSYNC_MODEL is the first
    assert code == 0 and json.loads(out), err
    code, out, err = run(capsys, "status", "--json")
    assert json.loads(out)["profile"]["model"] == str(second_model_dir)
    code, out, err = run(capsys, "switch", "--back", "--keep")
    assert code == 0 and "docsync--g1 is live" in out, err
    code, out, err = run(capsys, "switch", "--discard")
    assert code == 0 and "docsync--g2 deleted" in out, err
    assert run(capsys, "sync", str(env))[0] == 0  # the first model's sync goes on as before
