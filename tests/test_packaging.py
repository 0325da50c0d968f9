"""The wheel (what `pip install .` and the Docker image install) holds every package of the
source tree, sub-packages included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import HANG

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_package(tmp_path: Path) -> None:
    # Built from a clean copy: setuptools reuses a `build/` folder it finds in the tree.
    tree = tmp_path / "tree"
    for name in ("plugin", "worker", "docsync"):
        shutil.copytree(
            ROOT / name, tree / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    subprocess.run(
        [*build, "-w", str(tmp_path), str(tree)],
        check=True,
        capture_output=True,
        timeout=HANG,
    )
    (wheel,) = tmp_path.glob("docsync_qdrant-*.whl")
    packaged = {n.rsplit("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    source = {
        f"docsync/{init.parent.relative_to(ROOT)}"
        for top in ("plugin", "worker")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert {"docsync/plugin/stores", "docsync/plugin/embedding", "docsync/worker/formats"} <= source
    assert source | {"docsync"} == packaged
    # the web page's files, which are no Python (package-data in pyproject)
    static = {n.rsplit("/", 1)[1] for n in zipfile.ZipFile(wheel).namelist() if "/static/" in n}
    assert static == {p.name for p in (ROOT / "worker" / "web" / "static").iterdir()}
    # one name at the top of site-packages: no `plugin` or `worker` for another to shadow
    assert {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()} == {
        "docsync",
        "docsync_qdrant-0.1.0.dist-info",
    }


def test_a_hostile_working_directory_is_never_imported(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """`docsync sync` run from a project whose own `docsync/`, `plugin/` and `worker/` folders
    raise on import: the command and its child processes (the reader of PDF, HTML and Word
    files, the shard host) import the installed docsync, never those folders."""
    from tests.test_formats import make_docx

    hostile = tmp_path / "project"
    for name in ("docsync", "plugin", "worker"):
        (hostile / name).mkdir(parents=True)
        (hostile / name / "__init__.py").write_text(f"raise SystemExit('imported ./{name}')\n")
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("small.pdf", "library.html"):
        shutil.copy(ROOT / "tests" / "documents" / name, docs / name)
    make_docx(docs / "kettle.docx")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env |= {"DOCSYNC_MODEL": str(tiny_model_dir), "DOCSYNC_QDRANT_PATH": str(tmp_path / "s")}
    env.pop("PYTHONPATH", None)  # the installed docsync, as a user runs it
    done = subprocess.run(
        [str(Path(sys.executable).with_name("docsync")), "sync", "--json", str(docs)],
        cwd=hostile,
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files_changed"] == 3 and report["files_failed"] == 0, report
    assert not report["files_skipped"] and "imported ./" not in done.stderr
