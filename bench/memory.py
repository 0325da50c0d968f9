"""Memory benchmark: the peak resident memory of `docsync sync` on one 10 KB file, on one
10 MB file, and on a folder of 20,000 small files, each a fresh process syncing into a fresh
embedded store.

The inputs are real text: the Markdown and reStructuredText of the test corpus, copied over
and over with a few words changed in every copy (so that no two chunks are alike and every
one is embedded, as in a real document). The 10 KB case is the baseline: what the
interpreter, the libraries and the model take before any document is large. What one large
file costs is the 10 MB figure less that one, which the issue bounds at 300 MB.

    DOCSYNC_MODEL=/path/to/model python bench/memory.py [--json] [--model PATH] [--tiny-model]

`--tiny-model` syncs with a one-layer random BERT that has the real tokenizer (built in the
temporary folder; needs the test extra): the memory is docsync's, the minutes of embedding
10 MB with a real model are saved. Honours the DOCSYNC_* settings; the store goes to a
temporary folder.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for tests.conftest
from corpus import DEFAULT_CORPUS, SUFFIXES
from output import emit

ROOT = Path(__file__).resolve().parents[1]
SMALL_BYTES = 10_000
LARGE_BYTES = 10_000_000
SMALL_FILES = 20_000
LIMIT_MB = 300
# Share of the words changed in each copy of the corpus: enough that no paragraph repeats,
# few enough that the text still reads like the original.
CHANGED_WORDS = 0.05
_WORD = re.compile(r"[A-Za-z]{4,}")


def corpus_text(corpus: Path) -> str:
    paths = sorted(p for p in corpus.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return "\n\n".join(p.read_text(encoding="utf-8") for p in paths)


def copies(text: str, seed: int = 0) -> Iterator[str]:
    """Endless variants of `text`: in each, one word in twenty (of four letters or more) is
    swapped for another word of the corpus."""
    rng = random.Random(seed)
    words = sorted(set(_WORD.findall(text)))
    while True:
        yield _WORD.sub(lambda m: rng.choice(words) if rng.random() < CHANGED_WORDS else m[0], text)


def document(source: Iterator[str], size: int) -> str:
    """Varied corpus text of at most `size` UTF-8 bytes (the default file limit is in
    bytes), ending at a paragraph."""
    parts: list[bytes] = []
    length = 0
    while length < size:
        part = next(source).encode("utf-8")
        parts.append(part)
        length += len(part) + 2
    data = b"\n\n".join(parts)
    cut = data.rfind(b"\n\n", 0, size)
    return data[:cut].decode("utf-8") + "\n"


def small_files(source: Iterator[str], count: int) -> Iterator[str]:
    """`count` texts of one to three paragraphs each, in the order the copies give them."""
    rng = random.Random(1)
    made = 0
    for text in source:
        paragraphs = [p for p in text.split("\n\n") if p.strip()]
        i = 0
        while i < len(paragraphs) and made < count:
            take = rng.randint(1, 3)
            yield "\n\n".join(paragraphs[i : i + take]) + "\n"
            i += take
            made += 1
        if made >= count:
            return


def make_inputs(work: Path, corpus: Path) -> dict[str, Path]:
    text = corpus_text(corpus)
    folders = {name: work / name for name in ("small", "large", "many")}
    for folder in folders.values():
        folder.mkdir()
    source = copies(text)
    (folders["small"] / "notes.md").write_text(document(source, SMALL_BYTES), encoding="utf-8")
    (folders["large"] / "notes.md").write_text(document(source, LARGE_BYTES), encoding="utf-8")
    for i, body in enumerate(small_files(source, SMALL_FILES)):
        sub = folders["many"] / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"note-{i:05d}.md").write_text(body, encoding="utf-8")
    return folders


def peak_rss_mb(folder: Path, store: Path, model: str | None) -> float:
    """Peak resident memory, in MB, of one `docsync sync` of `folder` into a new store."""
    env = dict(os.environ, DOCSYNC_QDRANT_PATH=str(store), HF_HUB_OFFLINE="1")
    env.pop("DOCSYNC_QDRANT_URL", None)
    if model:
        env["DOCSYNC_MODEL"] = model
    command = [sys.executable, "-m", "docsync.worker.cli", "sync", "--json", str(folder)]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"docsync sync {folder.name} exited with {child.returncode}")
    return usage.ru_maxrss / 1024  # kilobytes on Linux


def tiny_model(work: Path) -> str:
    """A one-layer random BERT saved under `work`, made in a child process: this one must
    not import torch, or every sync it starts would inherit torch's pages in its peak RSS
    (a forked child's high-water mark starts at its parent's)."""
    code = (
        "import sys; from pathlib import Path; from tests.conftest import save_tiny_bert; "
        "print(save_tiny_bert(Path(sys.argv[1])))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(work / "tiny-bert")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--model", help="model directory or name (default: DOCSYNC_MODEL)")
    parser.add_argument(
        "--tiny-model", action="store_true", help="a one-layer random BERT (fast; test extra)"
    )
    parser.add_argument("--skip-many", action="store_true", help="leave out the 20,000 files")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="docsync-memory-") as tmp:
        work = Path(tmp)
        model = args.model
        if args.tiny_model:
            model = tiny_model(work)
        folders = make_inputs(work, args.corpus)
        cases = ["small", "large"] if args.skip_many else ["small", "large", "many"]
        peaks = {case: peak_rss_mb(folders[case], work / f"store-{case}", model) for case in cases}
    over = peaks["large"] - peaks["small"]
    result: dict[str, object] = {
        "peak_rss_mb_10kb_file": round(peaks["small"], 1),
        "peak_rss_mb_10mb_file": round(peaks["large"], 1),
        "peak_rss_mb_20000_files": round(peaks["many"], 1) if "many" in peaks else None,
        "10mb_over_10kb_mb": round(over, 1),
        "limit_mb": LIMIT_MB,
        "ok": over <= LIMIT_MB,
        "model": model or os.environ.get("DOCSYNC_MODEL", "default"),
    }
    emit(result, as_json=args.json)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
