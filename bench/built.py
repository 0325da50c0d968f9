"""A built benchmark store kept between runs: building a million points takes many minutes,
so `--cache DIR` keeps the store in `DIR/query-<points>-<key>` and a later run with the same
points, model and build code (`key`) opens it instead. Without a cache the store is built in
a temporary folder, as before."""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

DONE = "built"  # written once the build has finished: a half-built folder is built again


def key(build: Callable[..., object], model: str) -> str:
    """What the store depends on: the build function's code and the model."""
    text = inspect.getsource(build) + "\n" + model
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@contextlib.contextmanager
def store_folder(cache: Path | None, points: int, built_by: str) -> Iterator[tuple[Path, bool]]:
    """(the store's folder, whether it must be built)."""
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="docsync-query-") as tmp:
            yield Path(tmp), True
        return
    folder = cache / f"query-{points}-{built_by}"
    fresh = not (folder / DONE).exists()
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yield folder, fresh


def mark_built(folder: Path) -> None:
    (folder / DONE).write_text("ok\n")
