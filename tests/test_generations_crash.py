"""`docsync reindex` killed with -9 at random moments (10 seeds), each run started again:
it goes on, never starts over, and nothing that was written is embedded again; the last
run builds the generation whole.

As in test_crash.py, each run is a process forked from a forkserver that imported torch
once; each logs the embedded texts' hashes as it embeds them (`logging_finish_vectors`)."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from docsync.plugin import schema
from docsync.plugin.encoder import Encoder
from docsync.plugin.stores import generations_of
from docsync.plugin.stores.edge import EdgeStore
from docsync.worker.embed import EmbedResult, VectorJob
from tests.conftest import CORPUS, HANG, QUERY_PREFIX, save_tiny_bert, state

SEEDS = range(10)
NEXT = "docsync--g2"


def reindex_logging(env: dict[str, str], log: str, embedded: str, *args: str) -> None:
    """The child: `docsync reindex ARGS`, appending each embedded text's hash to `embedded`."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    from docsync.worker import windows
    from docsync.worker.cli import cli

    finish = windows.finish_vectors

    def logging_finish_vectors(job: VectorJob, **kwargs: Any) -> EmbedResult:
        result = finish(job, **kwargs)
        with open(embedded, "a", encoding="utf-8") as out:
            out.write("".join(f"{h}\n" for h in job.inputs))
            out.flush()
            os.fsync(out.fileno())  # before these vectors can be written
        return result

    windows.finish_vectors = logging_finish_vectors  # type: ignore[assignment]
    os._exit(cli("reindex", *args))


def wait_for_lines(path: Path, count: int, proc: Any) -> bool:
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline and proc.is_alive():
        if path.exists() and path.read_text().count("\n") >= count:
            return True
        time.sleep(0.002)
    return False


def written(store_path: Path) -> set[str]:
    """The embedded texts of the points the next generation holds."""
    if not (store_path / NEXT / "shard").exists():
        return set()
    store = EdgeStore.connect(path=store_path, collection=NEXT, reading=True)
    try:
        return {
            str(p.payload[schema.EMBED_HASH]) for p in store.scroll({}, fields=[schema.EMBED_HASH])
        }
    finally:
        store.close()


def test_a_killed_reindex_goes_on_and_embeds_nothing_written_twice(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder
) -> None:

    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "howto", docs / "howto")
    shutil.copytree(CORPUS / "using", docs / "using")
    second = save_tiny_bert(tmp_path / "second", initializer_range=0.3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(
        DOCSYNC_MODEL=str(tiny_model_dir),
        DOCSYNC_QDRANT_PATH=str(tmp_path / "store"),
        DOCSYNC_BATCH_SIZE="16",  # small batches: more moments between writes to die at
        HF_HUB_OFFLINE="1",
    )
    live = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    try:
        from tests.conftest import run_sync

        assert run_sync(docs, live, tiny_encoder).ok
    finally:
        live.close()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["sentence_transformers", "docsync.worker.cli", "docsync.worker.generation_runs"]
    )
    log, embedded = tmp_path / "reindex.log", tmp_path / "embedded"
    args = (str(docs), "--model", str(second))
    killed = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        before = written(tmp_path / "store")
        embedded.unlink(missing_ok=True)
        proc = context.Process(target=reindex_logging, args=(env, str(log), str(embedded), *args))
        proc.start()
        try:
            # The random moment: once it embedded a random number of texts (in windows of
            # a few dozen), and a random instant more.
            started = wait_for_lines(embedded, rng.randint(1, 100), proc)
            assert started or proc.exitcode is not None, f"seed {seed}: {log.read_text()}"
            time.sleep(rng.uniform(0.0, 0.02))
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                killed += 1
        finally:
            proc.join(timeout=HANG)
        again = set(embedded.read_text().split()) if embedded.exists() else set()
        assert not again & before, (
            f"seed {seed}: {len(again & before)} written texts embedded again"
        )
        if proc.exitcode == 0:
            break
    assert killed >= 10, "most runs should have been killed mid-build"
    final = context.Process(target=reindex_logging, args=(env, str(log), str(embedded), *args))
    final.start()
    final.join(timeout=HANG)
    assert final.exitcode == 0, log.read_text()

    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    try:
        gens = generations_of(store)
        lineup = gens.lineup()
        assert lineup.other is not None and lineup.other.name == NEXT
        assert lineup.other.state == "built"
        built = gens.store(NEXT)
        try:
            got, points, profile = state(built), list(built.scroll({})), built.read_profile()
        finally:
            built.close()
        expected = state(store)  # the same chunker: the same chunks, other vectors
    finally:
        store.close()
    assert got == expected and len(points) == len(got)
    assert profile == Encoder.load(str(second), device="cpu", query_prefix=QUERY_PREFIX).profile()
