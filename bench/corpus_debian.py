"""The second labelled set's corpus: manuals of other software than Python, as HTML pages
and as PDFs, from Debian 12 (bookworm) documentation packages pinned by exact version.

The corpus is not committed (tens of MB of packages): this fetches the packages with
`apt-get download NAME=VERSION`, unpacks each with `dpkg -x` into a cache folder, and copies
the chosen files (gunzipped where Debian ships `.pdf.gz`) into `<dest>/corpus/<package>/...`,
the relative paths bench/questions_debian.jsonl names. It is idempotent: a package already
downloaded, unpacked or copied is not fetched again.

    python bench/corpus_debian.py [--dest DIR]   # prints the corpus folder

Licenses (from each package's copyright file): graphviz-doc EPL-1.0; glpk-doc GFDL-1.3+
(manuals); gnuplot-doc the gnuplot license (free, modified copies distributed as patches);
bash-doc GFDL-1.3+ (the reference manual); gnu-standards GFDL-1.3+; xfig-doc the xfig
license (MIT-like); sqlite3-doc public domain; debian-reference-en GPL-2+.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DEST = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "docsync-bench"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    license: str
    folder: str  # the corpus folder its files go into
    files: tuple[tuple[str, str], ...]  # (path inside the package, name in the folder)


def _in(prefix: str, *names: str) -> tuple[tuple[str, str], ...]:
    """Files under one folder of a package, each keeping its name (less a `.gz`)."""
    return tuple((f"{prefix}/{name}", name.removesuffix(".gz")) for name in names)


PACKAGES = (
    Package(
        "graphviz-doc",
        "2.42.2-7+deb12u1",
        "EPL-1.0",
        "graphviz",
        _in("usr/share/doc/graphviz/pdf", "dotguide.pdf.gz", "neatoguide.pdf.gz"),
    ),
    Package("glpk-doc", "5.0-1", "GFDL-1.3+", "glpk", _in("usr/share/doc/glpk-doc", "gmpl.pdf")),
    Package(
        "gnuplot-doc",
        "5.4.4+dfsg1-2",
        "gnuplot license",
        "gnuplot",
        _in("usr/share/doc/gnuplot", "gnuplot.pdf"),
    ),
    Package("bash-doc", "5.2.15-2", "GFDL-1.3+", "bash", _in("usr/share/doc/bash", "bashref.pdf")),
    Package(
        "gnu-standards",
        "2022.03.23-0.1",
        "GFDL-1.3+",
        "gnu-standards",
        _in("usr/share/doc/gnu-standards", "maintain.pdf.gz"),
    ),
    Package("xfig-doc", "1:3.2.8b-2", "xfig", "xfig", _in("usr/share/doc/xfig", "xfig-howto.pdf")),
    Package(
        "sqlite3-doc",
        "3.40.1-2+deb12u2",
        "public domain",
        "sqlite",
        _in(
            "usr/share/doc/sqlite3",
            "wal.html",
            "atomiccommit.html",
            "datatype3.html",
            "foreignkeys.html",
            "autoinc.html",
            "lang_datefunc.html",
            "faq.html",
            "cli.html",
            "quirks.html",
            "lang_corefunc.html",
            "withoutrowid.html",
            "lockingv3.html",
        ),
    ),
    Package(
        "debian-reference-en",
        "2.100",
        "GPL-2+",
        "debian-reference",
        _in("usr/share/debian-reference", "ch02.en.html", "ch05.en.html"),
    ),
)


def fetch(dest: Path = DEFAULT_DEST) -> Path:
    """The corpus folder under `dest`, fetched, unpacked and copied where missing."""
    corpus = dest / "corpus"
    for package in PACKAGES:
        wanted = [(source, corpus / package.folder / name) for source, name in package.files]
        if all(target.is_file() for _, target in wanted):
            continue
        root = _unpacked(package, dest)
        for source, target in wanted:
            _copy(root / source, target)
    return corpus


def _unpacked(package: Package, dest: Path) -> Path:
    root = dest / "root" / f"{package.name}_{package.version.replace(':', '%3a')}"
    if root.is_dir():
        return root
    deb = _downloaded(package, dest / "debs")
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        _run(["dpkg", "-x", str(deb), tmp], "dpkg")
        os.replace(tmp, root)
        os.mkdir(tmp)  # for the context manager to remove
    return root


def _downloaded(package: Package, folder: Path) -> Path:
    prefix = f"{package.name}_{package.version.replace(':', '%3a')}_"
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(prefix + "*.deb"))
    if not found:
        _run(["apt-get", "download", f"{package.name}={package.version}"], "apt-get", folder)
        found = sorted(folder.glob(prefix + "*.deb"))
    if not found:
        raise SystemExit(f"apt-get download {package.name}={package.version} left no .deb")
    return found[0]


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    if source.suffix == ".gz":
        with gzip.open(source, "rb") as reader, partial.open("wb") as writer:
            shutil.copyfileobj(reader, writer)
    else:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def _run(command: list[str], tool: str, cwd: Path | None = None) -> None:
    if shutil.which(tool) is None:
        raise SystemExit(
            f"{tool} not found: the Debian corpus is fetched with apt-get and dpkg "
            "(a Debian or Ubuntu machine with bookworm's sources)"
        )
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise SystemExit(f"{' '.join(command)} failed: {last}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="cache folder")
    args = parser.parse_args(argv)
    print(fetch(args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
