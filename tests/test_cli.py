"""The `docsync` command, called as `cli(*args)` in-process and once through the real console
script: JSON shapes, exit codes, and one clear line (no traceback) for every fatal error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import docsync.plugin.retry
import docsync.plugin.stores.qdrant
from docsync.plugin import device as device_module
from docsync.plugin.search import Hit
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.cli import cli
from docsync.worker.render import excerpt
from tests.conftest import CORPUS, HANG, CliSynced, copy_store, held_elsewhere

SYNC_KEYS = {
    "files_scanned",
    "files_changed",
    "files_deleted",
    "files_skipped",
    "chunks_embedded",
    "points_upserted",
    "points_deleted",
    "seconds",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli(*args)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, *fragments: str) -> None:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("docsync: error:")]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.fixture
def synced_env(env: Path, tmp_path: Path, cli_synced: CliSynced) -> Path:
    """`env` with its collection already synced (a copy of the session's store), for a test
    that only reads it; answers the documents' folder that the points' root names."""
    copy_store(cli_synced.store, tmp_path / "store")
    return cli_synced.docs


def test_sync_json_then_idempotent(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sync", str(env), "--json")
    first = json.loads(out)  # exactly one JSON document on stdout
    assert code == 0 and first.keys() >= SYNC_KEYS
    assert first["files_scanned"] == first["files_changed"] == 3
    assert first["chunks_embedded"] == first["points_upserted"] > 0
    code, out, _ = run(capsys, "sync", str(env), "--json")
    second = json.loads(out)
    assert code == 0
    assert (second["chunks_embedded"], second["points_upserted"], second["points_deleted"]) == (
        0,
        0,
        0,
    )


def test_sync_human_summary(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sync", str(env))
    assert code == 0
    assert out.startswith("3 files scanned: 3 changed, 0 deleted, 0 skipped")


def test_query_and_status(synced_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = synced_env
    code, out, _ = run(capsys, "query", "How do I create a socket?", "-k", "3", "--json")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 3
    for hit in hits:
        assert {"score", "path", "text", "start", "end"} <= hit.keys()
        source = (env / hit["path"]).read_text(encoding="utf-8")
        assert source[hit["start"] : hit["end"]] == hit["text"]
    code, out, _ = run(capsys, "query", "sockets", "--path-prefix", "enum.rst", "--json")
    assert {h["path"] for h in json.loads(out)} == {"enum.rst"}
    code, out, _ = run(capsys, "status", "--json")
    status = json.loads(out)
    assert code == 0
    assert status["collection"] == "docsync" and status["files"] == 3
    assert status["points"] > 3
    assert status["profile"]["dimension"] == 32
    code, out, _ = run(capsys, "status")
    assert code == 0 and "points" in out and "query_prefix" in out
    lines = {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[-1] for line in out.splitlines()}
    assert lines["distance"] == "cosine" and lines["dimension"] == "32"  # no Python reprs


def test_query_text_shows_each_passage_from_the_chunk_that_matched() -> None:
    passage = "Before the match.\n\n  The matched   chunk\nsays this.\n\nAfter it."
    start = 100
    at = start + passage.index("The matched")
    hit = Hit(score=1.0, text=passage, path="a.md", start=start, end=start + len(passage))
    assert excerpt(hit) == " ".join(passage.split())  # matched all of it: from its start
    grown = Hit(1.0, passage, "a.md", start, start + len(passage), match_start=at, match_end=at + 9)
    assert excerpt(grown) == "... The matched chunk says this. After it."
    assert excerpt(grown, width=20) == "... The matched c..."


def test_sync_lets_the_model_go_before_it_builds_the_index(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the engine's index is a large sync's memory peak: by then the model, which
    nothing needs any more, has been freed."""
    import weakref

    from docsync.plugin.encoder import Encoder

    models: list[weakref.ref[Any]] = []
    adopt = Encoder._adopt

    def recorded(self: Encoder, model: Any) -> None:  # every model an encoder takes on
        models.append(weakref.ref(model))
        adopt(self, model)

    alive_at_optimize: list[bool] = []
    optimize = EdgeStore.optimize

    def observed(self: EdgeStore) -> bool:
        alive_at_optimize.append(any(model() is not None for model in models))
        return optimize(self)

    monkeypatch.setattr(Encoder, "_adopt", recorded)
    monkeypatch.setattr(EdgeStore, "optimize", observed)
    code, _, err = run(capsys, "sync", str(env))
    assert code == 0, err
    assert models and alive_at_optimize == [False]


def test_missing_directory(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sync", str(env / "nope"))
    assert code == 2
    assert_one_error_line(err, "directory not found", "nope")


def test_model_that_cannot_load(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "sync", str(env), "--model", str(tmp_path / "no-model"))
    assert code == 2
    assert_one_error_line(err, "DOCSYNC_MODEL")


def test_hub_model_unavailable_offline(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sync", str(env), "--model", "srinivasanAI/bge-small-my-qna-model")
    assert code == 2
    assert_one_error_line(err, "could not load model", "DOCSYNC_MODEL", "local directory")
    assert ".." not in err  # the loader's sentence and ours are joined by one full stop


def test_store_held_by_another_process(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    EdgeStore.connect(path=tmp_path / "store", collection="docsync").close()  # make it
    with held_elsewhere(tmp_path / "store"):
        code, _, err = run(capsys, "sync", str(env))
    assert code == 2
    assert_one_error_line(err, "in use by another process")


def test_profile_mismatch(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(capsys, "sync", str(env))
    monkeypatch.setenv("DOCSYNC_QUERY_PREFIX", "query: ")
    (env / "new.md").write_text("# New\n\nMust not be written.\n")
    code, _, err = run(capsys, "sync", str(env), "--json")
    assert code == 2
    assert_one_error_line(err, "another embedding profile", "query_prefix")
    # A reader embeds questions as the collection's own profile says (issue 29).
    code, out, _ = run(capsys, "query", "anything")
    assert code == 0 and out
    monkeypatch.delenv("DOCSYNC_QUERY_PREFIX")
    code, out, _ = run(capsys, "status", "--json")
    assert json.loads(out)["files"] == 3  # nothing was written


def test_qdrant_unreachable(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every try, with the backoff's shape but not its seconds (3.5 s of sleeping here).
    real = docsync.plugin.retry.call_with_retry
    monkeypatch.setattr(
        docsync.plugin.stores.qdrant,
        "call_with_retry",
        lambda fn, *, attempts, **_: real(fn, attempts=attempts, initial=0.001, maximum=0.004),
    )
    code, _, err = run(capsys, "sync", str(env), "--qdrant-url", "http://127.0.0.1:9")
    assert code == 2
    assert_one_error_line(err, "unreachable", "127.0.0.1:9")


def test_query_before_any_sync(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "query", "hello")
    assert code == 2
    assert_one_error_line(err, "does not exist", "docsync sync")
    assert "loading model" not in err  # found out before the model is loaded
    for command in ("status", "export"):
        code, _, err = run(capsys, command)
        assert code == 2
        assert_one_error_line(err, "does not exist", "docsync sync")
    assert not (env.parent / "store").exists()  # reading left no empty store folder behind


def test_bad_setting(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCSYNC_DEVICE", "gpu")
    code, _, err = run(capsys, "status")
    assert code == 2
    assert_one_error_line(err, "DOCSYNC_DEVICE: must be auto, cpu, cuda")
    assert "Value error" not in err  # pydantic's prefix is not the user's business


def test_empty_question(synced_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for question in ("", "   "):
        code, out, err = run(capsys, "query", question)
        assert code == 2 and not out
        assert_one_error_line(err, "the question is empty")


def test_limit_that_is_not_a_number(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("query", "hello", "-k", "abc") == 2
    err = capsys.readouterr().err
    assert "-k/--limit: 'abc' is not a whole number" in err
    assert "_positive" not in err


def test_import_of_a_missing_file(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "import", str(env / "nowhere.jsonl"))
    assert code == 2
    assert_one_error_line(err, "cannot read", "nowhere.jsonl", "No such file")


def test_emptied_root_exits_nonzero(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "sync", str(env))
    for f in env.iterdir():
        f.unlink()
    code, out, err = run(capsys, "sync", str(env), "--json")
    assert code == 1 and json.loads(out)["protected_roots"]
    assert "not deleting" in err
    code, out, _ = run(capsys, "sync", str(env), "--json", "--allow-empty")
    assert code == 0 and json.loads(out)["files_deleted"] == 3


def test_rules_that_drop_most_files_exit_nonzero(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(CORPUS / "howto", env / "howto")
    assert run(capsys, "sync", str(env))[0] == 0
    monkeypatch.setenv("DOCSYNC_INCLUDE", "sockets.rst")
    code, out, err = run(capsys, "sync", str(env), "--json")
    assert (
        code == 1 and json.loads(out)["protected_roots"] and json.loads(out)["files_deleted"] == 0
    )
    assert "no longer select 16 of the 18 files" in err and "not deleting" in err
    code, out, _ = run(capsys, "sync", str(env), "--json", "--allow-mass-delete")
    assert code == 0 and json.loads(out)["files_deleted"] == 16


def test_a_skip_is_said_by_one_sync_of_many(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "blob.md").write_bytes(b"\x00\x01" * 100)
    code, out, err = run(capsys, "sync", str(env), "--json")
    assert code == 0 and "skipped" in err and "blob.md" in err
    for _ in range(2):
        code, out, err = run(capsys, "sync", str(env), "--json")
        assert code == 0 and json.loads(out)["files_skipped"] == {"binary": 1}
        assert "blob.md" not in err  # said by the first sync; unchanged since
    (env / "blob.md").write_bytes(b"\x00\x02" * 200)
    code, out, err = run(capsys, "sync", str(env))
    assert code == 0 and "skipped" in err and "blob.md" in err


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("docsync")
    for program in ([str(exe)], [sys.executable, "-m", "docsync.worker.cli"]):
        result = subprocess.run([*program, "--help"], capture_output=True, text=True, check=True)
        for command in ("sync", "query", "eval", "status"):
            assert command in result.stdout


def test_export_into_a_reader_that_stops_early(
    synced_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`docsync export --vectors | head -c 100`: the export stops quietly, with SIGPIPE's
    status, when its reader goes away."""
    exe = Path(sys.executable).with_name("docsync")
    export = subprocess.Popen(
        [str(exe), "export", "--vectors"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert export.stdout is not None and export.stderr is not None
    assert len(export.stdout.read(100)) == 100
    export.stdout.close()  # far more than a pipe's buffer is still to come
    err = export.stderr.read().decode()
    export.stderr.close()
    assert export.wait(timeout=HANG) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_polling_flag_overrides_the_setting_both_ways() -> None:
    from docsync.worker.cli import run as command

    def parse(*args: str) -> object:
        return command.make_context("run", list(args)).params["polling"]

    assert parse("docs") is None  # the setting decides
    assert parse("docs", "--polling") is True
    assert parse("docs", "--no-polling") is False


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("--version") == 0
    assert capsys.readouterr().out.startswith("docsync ")


def test_an_unknown_flag_shows_the_commands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("query", "--bogus", "a question") == 2
    err = capsys.readouterr().err
    assert "Usage: docsync query [OPTIONS] QUESTION" in err
    assert "Try 'docsync query --help' for help" in err
    assert "Error: No such option '--bogus'" in err


def test_the_question_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("query", "--help") == 0
    assert "the question, in quotes" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["", ",,,", "[]"])
def test_empty_include_rules_are_one_error_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("DOCSYNC_INCLUDE", value)
    code, _, err = run(capsys, "sync", str(env))
    assert code == 2
    assert_one_error_line(err, "DOCSYNC_INCLUDE", "nothing would ever be indexed")
    assert not (env.parent / "store").exists()  # refused before the store was touched


def test_an_absolute_path_prefix_is_explained(
    synced_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = synced_env  # the folder the points' root names
    code, _, err = run(capsys, "query", "sockets", "--path-prefix", str(env / "sockets.rst"))
    assert code == 2
    assert_one_error_line(err, "relative to a synced folder")
    code, out, _ = run(capsys, "query", "sockets", "--path-prefix", f"{env.name}/sockets.rst")
    assert code == 0 and "no hits" in out and "relative to a synced folder" in out
    code, out, _ = run(capsys, "query", "sockets", "--path-prefix", "sockets.rst", "--json")
    assert code == 0 and json.loads(out)


def test_chunk_tokens_above_the_models_limit_are_named_once(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCSYNC_CHUNK_TOKENS", "4096")
    code, _, err = run(capsys, "sync", str(env))
    assert code == 0
    assert err.count("DOCSYNC_CHUNK_TOKENS=4096 is above the model's limit of 256") == 1


def test_one_limit_for_every_client(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-k takes what HTTP /search and `Searcher.search` take: 1 to 100."""
    from docsync.plugin.search import MAX_LIMIT

    assert MAX_LIMIT == 100
    for k in ("101", "150"):
        assert cli("query", "hello", "-k", k) == 2
        assert "-k/--limit: must be between 1 and 100" in capsys.readouterr().err
    from docsync.worker.cli import query

    assert query.make_context("query", ["q", "-k", "100"]).params["limit"] == 100


def test_failed_import_creates_nothing(
    env: Path, synced_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, dump, _ = run(capsys, "export", "--vectors")
    header, first = dump.splitlines()[:2]
    shutil.rmtree(env.parent / "store")
    broken = env.parent / "broken.jsonl"
    for text, fragment in (
        (f"{header}\n{{not json\n{first}\n", "line 2 is not JSON"),
        ("garbage\n", "line 1 is not JSON"),
        (json.dumps({"docsync_export": 1, "profile": {"model": "m"}}) + "\n", "profile"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ):
        if isinstance(text, bytes):
            broken.write_bytes(text)
        else:
            broken.write_text(text)
        code, _, err = run(capsys, "import", str(broken))
        assert code == 2
        assert_one_error_line(err, fragment)
        assert not (env.parent / "store").exists()  # no store folder, no collection


def test_an_unreadable_model_file_is_one_error_line(
    env: Path,
    synced_env: Path,  # a collection for the query to open
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "modules.json"
    weights.chmod(0)
    if os.geteuid() == 0:  # root reads a mode-0 file: refuse it as the kernel would anyone else
        real_open = Path.open

        def refusing_open(self: Path, *args: Any, **kwargs: Any) -> Any:
            if self == weights:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refusing_open)
    for command in (("sync", str(env)), ("query", "hello")):
        code, _, err = run(capsys, *command, "--model", str(model))
        assert code == 2, err
        assert_one_error_line(err, "cannot read model file", str(weights), "Permission denied")


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--collection", "../../../escaped", "--collection: '../../../escaped' contains '/'"),
        ("--qdrant-url", "ftp://example", "--qdrant-url: 'ftp://example'"),
        ("--qdrant-url", "http://[bad", "--qdrant-url: 'http://[bad' is not a URL"),
    ],
)
def test_a_collection_or_url_that_escapes_is_one_error_line(
    env: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, fragment: str
) -> None:
    for command in (("sync", str(env)), ("query", "hello"), ("status",)):
        code, _, err = run(capsys, *command, flag, value)
        assert code == 2, err
        assert_one_error_line(err, fragment)
    assert not (env.parent / "escaped").exists() and not (env.parent / "store").exists()


def test_a_missing_cuda_device_is_refused_by_every_command(
    env: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A query embeds its question without the model, and a sync with nothing changed
    loads none: both took --device cuda and went on (on the CPU, the log said cuda)."""
    monkeypatch.setattr(device_module, "NVIDIA_GPUS", tmp_path / "no-nvidia-driver")
    assert run(capsys, "sync", str(env))[0] == 0
    for command in (("sync", str(env)), ("query", "socket"), ("status",)):
        code, out, err = run(capsys, *command, "--device", "cuda")
        assert code == 2 and not out, err
        assert_one_error_line(err, "DOCSYNC_DEVICE=cuda but no CUDA device is available")
        assert "loading model" not in err and "syncing" not in err


def test_a_refused_flag_is_named_as_the_flag_and_a_setting_as_the_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "status", "--collection", "a/b")
    assert code == 2
    assert_one_error_line(err, "--collection: 'a/b' contains '/'")
    assert "DOCSYNC_COLLECTION" not in err
    monkeypatch.setenv("DOCSYNC_COLLECTION", "a/b")
    code, _, err = run(capsys, "status")
    assert code == 2
    assert_one_error_line(err, "setting DOCSYNC_COLLECTION:")
