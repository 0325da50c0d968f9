"""Startup benchmark: commands as a user runs them, whole processes timed from the shell's
side, against the baseline in the same run: `python -c "import sentence_transformers"`, the
import every process paid before model cards (and the floor of any command that loads the
model).

Timed, each the median of `--rounds` runs, after one first sync of the corpus (which embeds it
and writes the model's card into a fresh cache):

- `noop_sync_s`: `docsync sync` with nothing changed;
- `cold_query_s`: `docsync query` in a fresh process (the question embedded from the card);
- `model_query_s`: the same query in a process that has no card to use, so loads the model
  (what every query cost before); its first hit must equal the cold query's;
- `status_s`: `docsync status`.

The bound (issue 14): a no-op sync and a cold query each at most 0.25x the import's wall time.

    DOCSYNC_MODEL=/path/to/model python bench/startup.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import DEFAULT_CORPUS
from output import emit

QUESTION = "How do I create a socket and connect to a web server?"
BOUND = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docsync-startup-") as tmp:
        emit(measure(Path(tmp), ns.corpus, ns.rounds), as_json=ns.json)


def measure(work: Path, corpus: Path, rounds: int) -> dict[str, Any]:
    docs = work / "docs"
    shutil.copytree(corpus, docs)
    env = dict(os.environ)
    env.update(DOCSYNC_QDRANT_PATH=str(work / "store"), DOCSYNC_CACHE=str(work / "cache"))
    first_sync, out = timed(env, work, "sync", "--json", str(docs))
    points = json.loads(out)["points_upserted"]
    query = ("query", "--json", "-k", "1", QUESTION)
    result: dict[str, Any] = {"files": sum(1 for p in docs.rglob("*") if p.is_file())}
    result["points"] = points
    result["first_sync_s"] = round(first_sync, 2)
    samples: dict[str, list[float]] = {k: [] for k in ("import", "noop", "cold", "model", "status")}
    cold_hit = model_hit = None
    for round_ in range(rounds):
        samples["import"].append(timed_python("import sentence_transformers", env, work))
        seconds, out = timed(env, work, "sync", "--json", str(docs))
        assert json.loads(out)["chunks_embedded"] == 0, out
        samples["noop"].append(seconds)
        seconds, out = timed(env, work, *query)
        samples["cold"].append(seconds)
        cold_hit = first_hit(out)
        # No card in this cache: the model is loaded (the card it writes is thrown away).
        no_card = {**env, "DOCSYNC_CACHE": str(work / f"empty-cache-{round_}")}
        seconds, out = timed(no_card, work, *query)
        samples["model"].append(seconds)
        model_hit = first_hit(out)
        samples["status"].append(timed(env, work, "status")[0])
    median = {k: statistics.median(v) for k, v in samples.items()}
    result.update(
        import_sentence_transformers_s=round(median["import"], 2),
        noop_sync_s=round(median["noop"], 2),
        cold_query_s=round(median["cold"], 2),
        model_query_s=round(median["model"], 2),
        status_s=round(median["status"], 2),
        noop_sync_ratio=round(median["noop"] / median["import"], 3),
        cold_query_ratio=round(median["cold"] / median["import"], 3),
        cold_query_speedup=round(median["model"] / median["cold"], 1),
        same_first_hit=cold_hit == model_hit,
        first_hit=cold_hit,
        bound=BOUND,
    )
    result["ok"] = bool(
        result["same_first_hit"]
        and result["noop_sync_ratio"] <= BOUND
        and result["cold_query_ratio"] <= BOUND
    )
    return result


def docsync() -> list[str]:
    script = Path(sys.executable).with_name("docsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "docsync.worker.cli"]


def timed(env: dict[str, str], cwd: Path, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*docsync(), *args], env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"docsync {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def timed_python(code: str, env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, check=True)
    return time.perf_counter() - started


def first_hit(out: str) -> list[Any] | None:
    hits = json.loads(out)
    return [hits[0]["path"], hits[0]["start"], hits[0]["end"]] if hits else None


if __name__ == "__main__":
    main()
