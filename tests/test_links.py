"""A symlink inside a root to a file in the same root (issue 25, item 18): the file is
indexed once, by its real path, whatever links name it; deleting or replacing either side
keeps the collection exact."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.store import Store
from tests.conftest import CORPUS, run_sync
from tests.test_sync import assert_exact

GUIDE = "packaging/debmake-guide.md"
LINK = "links/guide-link.md"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A guide, a link to it in another folder, and one more document."""
    root = (tmp_path / "docs").resolve()
    (root / "packaging").mkdir(parents=True)
    (root / "links").mkdir()
    shutil.copy(CORPUS / "howto" / "sockets.rst", root / GUIDE)
    shutil.copy(CORPUS / "howto" / "enum.rst", root / "enum.rst")
    (root / LINK).symlink_to("../" + GUIDE)
    return root


def paths(store: Store) -> set[str]:
    return {str(point.payload["path"]) for point in store.scroll({})}


def test_a_link_and_its_target_are_indexed_once(
    root: Path, memory_store: Store, tiny_encoder: Encoder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="docsync.sync"):
        report = run_sync(root, memory_store, tiny_encoder)
    assert report.ok and report.links_folded == 1 and report.files_changed == 2
    assert paths(memory_store) == {GUIDE, "enum.rst"}
    assert f"{LINK} -> {GUIDE}" in caplog.text
    hits = Searcher(memory_store, tiny_encoder).search("socket", limit=10)
    spans = [(hit.path, hit.start, hit.end) for hit in hits]
    texts = [hit.text for hit in hits]
    assert len(set(spans)) == len(spans) and len(set(texts)) == len(texts)  # no twin hits
    assert_exact(memory_store, root, tiny_encoder)
    again = run_sync(root, memory_store, tiny_encoder)  # idempotent: the fold is stable
    assert again.files_changed == again.files_deleted == again.points_upserted == 0


def test_deleting_or_replacing_either_side_stays_exact(
    root: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    run_sync(root, memory_store, tiny_encoder)
    # The link becomes a file of its own: indexed under its name.
    (root / LINK).unlink()
    (root / LINK).write_text("# Own\n\nThe link was replaced by a note of its own words.\n")
    run_sync(root, memory_store, tiny_encoder)
    assert paths(memory_store) == {GUIDE, LINK, "enum.rst"}
    assert_exact(memory_store, root, tiny_encoder)
    # ...and a link again: its own points go, the target keeps its one copy.
    (root / LINK).unlink()
    (root / LINK).symlink_to(root / GUIDE)
    run_sync(root, memory_store, tiny_encoder)
    assert paths(memory_store) == {GUIDE, "enum.rst"}
    assert_exact(memory_store, root, tiny_encoder)
    # The target deleted: the link is broken, nothing of the guide stays.
    (root / GUIDE).unlink()
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.files_skipped["broken_symlink"] == 1
    assert paths(memory_store) == {"enum.rst"}
    assert_exact(memory_store, root, tiny_encoder)


def test_a_link_to_a_file_no_rule_selects_is_indexed_under_its_name(
    tmp_path: Path, memory_store: Store, tiny_encoder: Encoder
) -> None:
    root = (tmp_path / "docs").resolve()
    root.mkdir()
    shutil.copy(CORPUS / "howto" / "enum.rst", root / "enum.rst.orig")
    (root / "enum.rst").symlink_to("enum.rst.orig")
    report = run_sync(root, memory_store, tiny_encoder)
    assert report.links_folded == 0 and paths(memory_store) == {"enum.rst"}
