"""Which files a root offers: include/exclude globs, hidden folders, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from docsync.plugin.settings import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from docsync.worker.scan import Fold, Rules, scan_root

DEFAULTS = Rules(DEFAULT_INCLUDE, DEFAULT_EXCLUDE)


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"text of {name}")


def test_default_rules_pick_documents(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "a.md",
        "b.rst",
        "c.txt",
        "d.markdown",
        "e.py",
        "f.pdf",
        "h.html",
        "i.docx",
        "j.odg",
        "k.xlsx",
        "sub/g.md",
        ".hidden.md",
        ".git/x.md",
        ".obsidian/y.md",
        "node_modules/z.md",
        "sub/.cache/w.md",
    )
    scan = scan_root(tmp_path, DEFAULTS)
    assert [f.path for f in scan.files] == [
        "a.md",
        "b.rst",
        "c.txt",
        "d.markdown",
        "f.pdf",
        "h.html",
        "i.docx",
        "k.xlsx",
        "sub/g.md",
    ]
    assert scan.skipped == []


@pytest.mark.parametrize(
    ("include", "exclude", "expected"),
    [
        (["*.md"], ["drafts"], ["a.md", "docs/b.md", "docs/deep/c.md"]),
        (["docs/**/*.md"], [], ["docs/b.md", "docs/deep/c.md"]),
        (["*.md"], ["docs/deep"], ["a.md", "docs/b.md", "drafts/d.md"]),
        (["*.md"], ["**/c.md", "a.*"], ["docs/b.md", "drafts/d.md"]),
    ],
)
def test_globs(tmp_path: Path, include: list[str], exclude: list[str], expected: list[str]) -> None:
    touch(tmp_path, "a.md", "docs/b.md", "docs/deep/c.md", "drafts/d.md")
    scan = scan_root(tmp_path, Rules(include, exclude))
    assert [f.path for f in scan.files] == expected


def test_symlinks(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root, "real.md", "sub/inner.md")
    touch(outside, "secret.md")
    os.symlink(outside / "secret.md", root / "escape.md")
    os.symlink(root / "missing.md", root / "broken.md")
    os.symlink(root / "real.md", root / "alias.md")
    os.symlink(outside, root / "linkdir")
    scan = scan_root(root.resolve(), DEFAULTS)
    assert [f.path for f in scan.files] == ["real.md", "sub/inner.md"]
    assert scan.folded == [Fold("alias.md", "real.md")]  # indexed once, as real.md
    assert {(s.path, s.reason) for s in scan.skipped} == {
        ("escape.md", "outside_root"),
        ("broken.md", "broken_symlink"),
    }


def test_empty_include_is_refused() -> None:
    with pytest.raises(ValueError, match="include"):
        Rules([], [])
