"""Large-tree benchmark: `docsync sync` of a folder of many small files once nothing has
changed, as whole processes: wall time and peak resident memory, at two sizes in one run, so
that what each file costs (`mb_per_10k_files`) is seen apart from what any process takes.

The files are real text (bench/memory.py's varied copies of the corpus), a thousand to a
folder. Each size is synced once first (its model card written then, into a temporary
cache), then synced again, unchanged: the measured run.

    DOCSYNC_MODEL=/path/to/model python bench/tree.py [--files 100000] [--json] [--tiny-model]
        [--whole]

`--whole`: the no-op sync again with every root listed whole (as before a large root was
listed a folder at a time), for the ratios `noop_time_ratio` and `peak_ratio`.

`--tiny-model`: the first sync embeds with a one-layer random BERT that has the real
tokenizer (needs the test extra): minutes of embedding saved, the no-op sync the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # for tests.conftest
from corpus import DEFAULT_CORPUS
from memory import copies, corpus_text, small_files, tiny_model
from output import emit

ROOT = Path(__file__).resolve().parents[1]
PER_FOLDER = 1000


def make_tree(folder: Path, count: int) -> None:
    for i, body in enumerate(small_files(copies(corpus_text(DEFAULT_CORPUS)), count)):
        sub = folder / f"{i // PER_FOLDER:03d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note-{i:06d}.md").write_text(body, encoding="utf-8")


# `docsync sync` with every root listed whole, as before folder-at-a-time listings: the
# baseline of `--whole`.
WHOLE = (
    "import sys; from docsync.worker import scopes; from docsync.worker.cli import main; "
    "scopes.WHOLE_LISTING_POINTS = 1 << 62; sys.argv[0] = 'docsync'; main()"
)


def sync(
    folder: Path, env: dict[str, str], *, whole: bool = False
) -> tuple[dict[str, Any], float, float]:
    """One `docsync sync --json`: its report, wall seconds and peak RSS in MB."""
    start = ["-c", WHOLE] if whole else ["-m", "docsync.worker.cli"]
    command = [sys.executable, *start, "sync", "--json", str(folder)]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"docsync sync {folder} failed")
    return json.loads(out), seconds, usage.ru_maxrss / 1024


def measure(work: Path, count: int, model: str | None, whole: bool) -> dict[str, float]:
    folder = work / f"tree-{count}"
    make_tree(folder, count)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.update(DOCSYNC_QDRANT_PATH=str(work / f"store-{count}"), DOCSYNC_CACHE=str(work / "cache"))
    env.pop("DOCSYNC_QDRANT_URL", None)
    if model:
        env["DOCSYNC_MODEL"] = model
    _, first_s, _ = sync(folder, env)
    report, seconds, peak = sync(folder, env)
    assert report["files_scanned"] == count and report["chunks_embedded"] == 0, report
    result = {"first_sync_s": round(first_s, 1), "noop_sync_s": round(seconds, 2), "peak_mb": peak}
    if whole:
        report, seconds, peak = sync(folder, env, whole=True)
        assert report["chunks_embedded"] == 0, report
        result.update(whole_noop_sync_s=round(seconds, 2), whole_peak_mb=peak)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tiny-model", action="store_true")
    parser.add_argument(
        "--whole", action="store_true", help="also time the no-op sync with whole listings"
    )
    args = parser.parse_args(argv)
    small = max(1000, args.files // 10)
    with tempfile.TemporaryDirectory(prefix="docsync-tree-") as tmp:
        work = Path(tmp)
        model = None
        if args.tiny_model:
            model = tiny_model(work)
        few = measure(work, small, model, args.whole)
        many = measure(work, args.files, model, args.whole)
    per_10k = (many["peak_mb"] - few["peak_mb"]) / ((args.files - small) / 10_000)
    result = {
        "files": args.files,
        "noop_sync_s": many["noop_sync_s"],
        "peak_rss_mb": round(many["peak_mb"], 1),
        f"noop_sync_s_{small}_files": few["noop_sync_s"],
        f"peak_rss_mb_{small}_files": round(few["peak_mb"], 1),
        "mb_per_10k_files": round(per_10k, 1),
        "first_sync_s": many["first_sync_s"],
    }
    if args.whole:
        result["whole_noop_sync_s"] = many["whole_noop_sync_s"]
        result["whole_peak_rss_mb"] = round(many["whole_peak_mb"], 1)
        result["noop_time_ratio"] = round(many["noop_sync_s"] / many["whole_noop_sync_s"], 3)
        result["peak_ratio"] = round(many["peak_mb"] / many["whole_peak_mb"], 3)
    emit(result, as_json=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
