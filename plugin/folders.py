"""Folders docsync creates for itself: owner-only, since they hold the documents' text (the
embedded store) or what is derived from it and from the model (the cache)."""

from __future__ import annotations

from pathlib import Path


def private_dirs(folder: Path) -> None:
    """Create `folder` and its missing parents owner-only (0700); existing ones are left as
    they are."""
    missing: list[Path] = []
    while not folder.is_dir():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)
