"""Crash safety (DESIGN.md invariant 4), the way Qdrant's crash tester checks it: `kill -9`
at random moments of `docsync sync` processes, 20 seeds, each followed by a restart; then no
point may be missing, stale or duplicated.

Each sync runs in its own process, forked from a forkserver that imported torch and
transformers once (importing them takes ~5 s here, which would be most of the test's time
and none of what it tests); SIGKILL ends it with no cleanup at all, as `kill -9` does."""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.edge import EdgeStore
from tests.conftest import CORPUS, HANG, state
from tests.test_sync import fresh_state

SEEDS = range(20)
SPARE = sorted((CORPUS / "extending").glob("*.rst"))


def mutate(docs: Path, rng: random.Random) -> None:
    """A few edits of the kinds users make: edit, append, truncate, delete, rename, create."""
    for _ in range(rng.randint(2, 5)):
        files = sorted(p for p in docs.rglob("*.rst") if p.is_file())
        target = rng.choice(files)
        text = target.read_text(encoding="utf-8")
        action = rng.choice(["edit", "append", "truncate", "delete", "rename", "create"])
        if action == "edit":
            cut = rng.randrange(len(text))
            target.write_text(text[:cut] + f"\n\nEdited by seed {rng.random()}.\n\n" + text[cut:])
        elif action == "append":
            target.write_text(text + f"\n\nAppendix {rng.random()}\n=========\n\nMore.\n")
        elif action == "truncate":
            target.write_text(text[: rng.randrange(1, len(text))])
        elif action == "delete" and len(files) > 5:
            target.unlink()
        elif action == "rename":
            target.rename(target.with_name(f"r{rng.randrange(10**6)}-{target.name}"))
        else:
            shutil.copy(rng.choice(SPARE), docs / f"new-{rng.randrange(10**6)}.rst")


def run_cli(env: dict[str, str], log: str, *args: str) -> None:
    """The child: `docsync ARGS` with `env`, its stderr going to `log`."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 2)
    from docsync.worker.cli import cli

    os._exit(cli(*args))


def wait_for_text(path: Path, needle: str, proc: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.is_alive():
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.01)
    return False


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, tiny_model_dir: Path, tiny_encoder: Encoder
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS / "howto", docs / "howto")
    shutil.copytree(CORPUS / "using", docs / "using")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(
        DOCSYNC_MODEL=str(tiny_model_dir),
        DOCSYNC_QDRANT_PATH=str(tmp_path / "store"),
        HF_HUB_OFFLINE="1",
    )
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(
        ["sentence_transformers", "docsync.worker.cli", "docsync.worker.pipeline"]
    )
    log = tmp_path / "sync.log"
    killed_mid_sync = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        mutate(docs, rng)
        proc = context.Process(target=run_cli, args=(env, str(log), "sync", str(docs)))
        proc.start()
        try:
            started = wait_for_text(log, "syncing", proc, timeout=HANG)
            assert started or proc.exitcode == 0, f"seed {seed}: {log.read_text()}"
            time.sleep(rng.uniform(0.0, 1.0))  # the random moment of the crash
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
                killed_mid_sync += 1
        finally:
            proc.join(timeout=HANG)
    final = context.Process(target=run_cli, args=(env, str(log), "sync", str(docs)))
    final.start()
    final.join(timeout=HANG)
    assert final.exitcode == 0, log.read_text()
    assert killed_mid_sync >= 10  # most crashes hit a running sync, not a finished one

    store = EdgeStore.connect(path=tmp_path / "store", collection="docsync")
    try:
        got = state(store)
        points = list(store.scroll({}))
    finally:
        store.close()
    expected = fresh_state(docs, tiny_encoder)
    missing, stale = expected - got, got - expected
    duplicates = len(points) - len(got)
    assert not missing, f"{len(missing)} missing points"
    assert not stale, f"{len(stale)} stale points"
    assert duplicates == 0, f"{duplicates} duplicated points"
