"""The wheel (what `pip install .` and the Docker image install) holds every package of the
source tree, sub-packages included."""

from __future__ import annotations

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
    for name in ("plugin", "worker"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    subprocess.run(
        [*build, "-w", str(tmp_path), str(tree)],
        check=True,
        capture_output=True,
        timeout=HANG,
    )
    (wheel,) = tmp_path.glob("docsync-*.whl")
    packaged = {n.rsplit("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    source = {
        str(init.parent.relative_to(ROOT))
        for top in ("plugin", "worker")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert {"plugin/stores", "plugin/embedding", "worker/formats"} <= source
    assert source <= packaged
