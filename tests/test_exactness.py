"""Exactness as a property (DESIGN.md invariant 1): after any sequence of creates, edits,
appends, truncations, renames (across folders, over existing files), folder moves, deletes,
symlinks and permission changes, with syncs at random points in between, the collection
equals a from-scratch sync: no missing, no stale, no duplicate points.

Hypothesis draws the sequences (and shrinks a failing one to the shortest it can find). CI
runs a bounded number of them; `DOCSYNC_PROPERTY_EXAMPLES=500` runs a long mode.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docsync.plugin.encoder import Encoder
from docsync.plugin.stores.qdrant import QdrantClientStore
from tests.conftest import run_sync
from tests.test_sync import assert_exact

EXAMPLES = int(os.environ.get("DOCSYNC_PROPERTY_EXAMPLES", "25"))
FOLDERS = ("", "a", "b", "a/deep")
NAMES = ("one.md", "two.md", "three.txt", "four.rst", "notes.md")
# A small pool of paragraphs, so files share chunks (vector reuse across files and within
# one: repeated text) and edits re-use text that is stored elsewhere.
PARAGRAPHS = (
    "Sockets carry bytes between two programs, on one machine or across a network.",
    "A regular expression describes a set of strings; the engine tries to match it.",
    "The logging module routes records from loggers through handlers to their targets.",
    "Descriptors customise attribute lookup, storage and deletion on a class.",
    "An enumeration is a set of symbolic names bound to unique, constant values.",
    "Unicode maps every character of every script to a number, its code point.",
)

paths = st.tuples(st.sampled_from(FOLDERS), st.sampled_from(NAMES)).map(
    lambda fn: f"{fn[0]}/{fn[1]}" if fn[0] else fn[1]
)
texts = st.lists(st.sampled_from(PARAGRAPHS), min_size=0, max_size=8).flatmap(
    lambda body: st.sampled_from(("# Title\n\n", "Heading\n=======\n\n", "")).map(
        lambda head: head + "\n\n".join(body) + ("\n" if body else "")
    )
)


@dataclass(frozen=True)
class Op:
    kind: str
    path: str = ""
    other: str = ""
    text: str = ""
    mode: int = 0o644


ops = st.one_of(
    st.builds(Op, kind=st.just("write"), path=paths, text=texts),
    st.builds(Op, kind=st.just("append"), path=paths, text=st.sampled_from(PARAGRAPHS)),
    st.builds(Op, kind=st.just("truncate"), path=paths),
    st.builds(Op, kind=st.just("rename"), path=paths, other=paths),
    st.builds(
        Op,
        kind=st.just("move_folder"),
        path=st.sampled_from(FOLDERS[1:]),
        other=st.sampled_from((*FOLDERS[1:], "c", "a/new")),
    ),
    st.builds(Op, kind=st.just("delete"), path=paths),
    st.builds(Op, kind=st.just("symlink"), path=paths, other=paths),
    st.builds(Op, kind=st.just("chmod"), path=paths, mode=st.sampled_from((0o600, 0o400, 0o000))),
    st.just(Op(kind="sync")),
)


def apply(root: Path, op: Op) -> None:
    """Do `op` to the tree under `root`; an op that makes no sense there (renaming a file that
    is not there) does nothing, as a user's failed command would."""
    target, other = root / op.path, root / op.other
    try:
        if op.kind == "write":
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(op.text, encoding="utf-8")
        elif op.kind == "append" and target.is_file():
            with target.open("a", encoding="utf-8") as handle:
                handle.write("\n" + op.text + "\n")
        elif op.kind == "truncate" and target.is_file():
            with target.open("r+", encoding="utf-8") as handle:
                handle.truncate(target.stat().st_size // 2)
        elif op.kind in ("rename", "move_folder") and target.exists() and op.path != op.other:
            if other.is_relative_to(target):
                return  # a folder into itself
            other.parent.mkdir(parents=True, exist_ok=True)
            if other.is_dir() and not other.is_symlink():
                shutil.rmtree(other)
            os.replace(target, other)
        elif op.kind == "delete" and (target.is_file() or target.is_symlink()):
            target.unlink()
        elif op.kind == "symlink" and not target.exists() and not target.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.path.relpath(other, target.parent))  # may dangle, or loop
        elif op.kind == "chmod" and target.is_file() and not target.is_symlink():
            target.chmod(op.mode)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError):
        pass  # a path component is a file, or the like: the user's command fails


def populate(root: Path) -> None:
    """The tree each sequence starts from: most paths exist, so most operations act."""
    (root / "keep.md").write_text("# Keep\n\n" + PARAGRAPHS[0] + "\n", encoding="utf-8")
    for i, folder in enumerate(FOLDERS):
        for j, name in enumerate(NAMES[:3]):
            body = [PARAGRAPHS[(i + j + k) % len(PARAGRAPHS)] for k in range(1 + (i * j) % 4)]
            path = root / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# File {i}{j}\n\n" + "\n\n".join(body) + "\n", encoding="utf-8")


def readable_again(root: Path) -> None:
    """Undo the permission changes, so a fresh sync can read what the incremental one read
    (a file that can't be read keeps its old points by design: not comparable)."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o644)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=not os.environ.get("DOCSYNC_PROPERTY_EXAMPLES"),
)
@given(sequence=st.lists(ops, min_size=1, max_size=14))
def test_any_sequence_of_changes_ends_exact(sequence: list[Op], tiny_encoder: Encoder) -> None:
    from qdrant_client import QdrantClient

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "docs"
        root.mkdir()
        populate(root)
        store = QdrantClientStore(QdrantClient(location=":memory:"), "prop")
        try:
            run_sync(root, store, tiny_encoder)
            for op in sequence:
                if op.kind == "sync":
                    run_sync(root, store, tiny_encoder)
                else:
                    apply(root, op)
            readable_again(root)
            run_sync(root, store, tiny_encoder, allow_empty_roots=True)
            assert_exact(store, root, tiny_encoder, allow_empty_roots=True)
        finally:
            store.close()
