"""docsync beside its peers: LangChain's `index()` and LlamaIndex's `IngestionPipeline` (set up
as `bench/peer_tools.py` says) and `docsync sync`, on copies of one folder, with one model, in
one run.

Every step runs in a process of its own, as a user runs it, and costs what that process and
its children spent on the CPU (user + sys from rusage, children included: docsync's reader
and index children count): CPU seconds, not wall time, because the machine may be shared.
Steps, for each tool, on its own copy of the folder and a fresh store:
- first: the first sync; `cpu_s_per_chunk` is its CPU seconds over the chunks it embedded;
- noop: the same folder again, nothing changed;
- edits: `--edits` lines edited at random places (the same edits in every copy);
- rename: one file moved to another folder, its text unchanged.
docsync's first sync runs twice: with an empty model-card cache (`first_empty_cache`: the
card is made in that run) and, on a fresh store, with the card made (`first`).
`*_embedded` is how many chunks a step embedded.

    DOCSYNC_MODEL=/path/to/model python bench/peers.py [--json] [--corpus DIR] [--tools ...]

The peers run as their users run them: with OpenMP's default waits, which spin long on a
busy CPU (docsync's threads spin briefly, then sleep: `plugin/device.py`'s `SPIN_TURNS`).
`GOMP_SPINCOUNT=30000 python bench/peers.py` gives the peers docsync's waits too.

A peer whose packages are missing is skipped, said in one line (the packages:
`bench/peer_tools.py`'s docstring, or `pip install 'docsync-qdrant[bench]'`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from output import emit
from peer_tools import MODULES, SUFFIXES

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent / "tests" / "corpus" / "python-docs"
TOOLS = ("docsync", "langchain", "llamaindex")
Step = Callable[[], dict[str, int]]


def cpu_of(step: Step) -> dict[str, Any]:
    """Run `step` (which runs one child process and waits for it) and add the CPU seconds
    that child and the children it waited for spent, and the wall time."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    result: dict[str, Any] = dict(step())
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.update(cpu_s=round(cpu, 2), wall_s=round(time.perf_counter() - started, 2))
    return result


def child(command: list[str], *, cwd: Path, env: dict[str, str]) -> Any:
    """The JSON object `command` prints on stdout; its stderr's tail in the error if it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])}... failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def docsync_step(folder: Path, work: Path, cache: Path, model: str) -> Step:
    env = dict(os.environ, DOCSYNC_MODEL=model, DOCSYNC_CACHE=str(cache))
    env["DOCSYNC_QDRANT_PATH"] = str(work / "store")
    command = [sys.executable, "-m", "docsync", "sync", "--json", "--log-level", "WARNING"]

    def step() -> dict[str, int]:
        report = child([*command, str(folder)], cwd=work, env=env)
        return {"embedded": int(report["chunks_embedded"])}

    return step


def peer_step(tool: str, folder: Path, work: Path, model: str) -> Step:
    command = [sys.executable, str(HERE / "peer_tools.py"), tool, str(folder), str(work), model]

    def step() -> dict[str, int]:
        return dict(child(command, cwd=work, env=dict(os.environ)))

    return step


def edit(folder: Path, count: int, seed: int) -> None:
    """`count` lines changed at random places: a word added at the end of each."""
    rng = random.Random(seed)
    paths = sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES)
    for n in range(count):
        path = rng.choice(paths)
        lines = path.read_text(encoding="utf-8").split("\n")
        at = rng.randrange(len(lines))
        lines[at] += f" edited{n}"
        path.write_text("\n".join(lines), encoding="utf-8")


def rename(folder: Path, seed: int) -> None:
    """One file, chosen at random, moved into a new folder under a new name."""
    rng = random.Random(seed)
    path = rng.choice(sorted(p for p in folder.rglob("*") if p.suffix in SUFFIXES))
    target = folder / "moved" / f"renamed-{path.name}"
    target.parent.mkdir(exist_ok=True)
    path.rename(target)


def run_tool(
    tool: str, corpus: Path, scratch: Path, model: str, args: argparse.Namespace
) -> dict[str, Any]:
    folder, work = scratch / tool / "docs", scratch / tool / "work"
    shutil.copytree(corpus, folder)
    work.mkdir()
    result: dict[str, Any] = {}
    if tool == "docsync":
        cache, first_work = scratch / "cache", scratch / tool / "work-empty-cache"
        cache.mkdir()
        first_work.mkdir()
        result["first_empty_cache"] = cpu_of(docsync_step(folder, first_work, cache, model))
        step = docsync_step(folder, work, cache, model)
    else:
        step = peer_step(tool, folder, work, model)
    result["first"] = cpu_of(step)
    result["noop"] = cpu_of(step)
    edit(folder, args.edits, args.seed)
    result["edits"] = cpu_of(step)
    rename(folder, args.seed)
    result["rename"] = cpu_of(step)
    return result


def summary(tool: str, steps: dict[str, Any]) -> dict[str, Any]:
    chunks = steps["first"]["embedded"]
    row: dict[str, Any] = {"chunks": chunks}
    for name in ("first_empty_cache", "first"):
        if name in steps:
            row[f"{name}_cpu_s"] = steps[name]["cpu_s"]
            row[f"{name}_cpu_s_per_chunk"] = round(steps[name]["cpu_s"] / max(1, chunks), 4)
    for name in ("noop", "edits", "rename"):
        row[f"{name}_cpu_s"] = steps[name]["cpu_s"]
        row[f"{name}_embedded"] = steps[name]["embedded"]
    row["first_wall_s"] = steps["first"]["wall_s"]
    return row


def cpu_flags() -> str:
    """The CPU's model and the flags that decide its fastest precision."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    info = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = set(info.get("flags\t\t", "").split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    model = info.get("model name\t", "?").strip()
    return f"{model}; {' '.join(f for f in wanted if f in flags) or 'no avx512/amx'}"


def missing(tool: str) -> list[str]:
    absent = []
    for module in MODULES.get(tool, ()):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            absent.append(module)
    return absent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS))
    parser.add_argument("--edits", type=int, default=20, help="lines edited (default 20)")
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args(argv)
    model = os.environ.get("DOCSYNC_MODEL")
    if not model:
        parser.error("set DOCSYNC_MODEL to the model every tool uses (a local folder)")
    result: dict[str, Any] = {"cpu": cpu_flags(), "cpus": os.cpu_count(), "model": model}
    with tempfile.TemporaryDirectory(prefix="docsync-peers-") as scratch:
        for tool in args.tools:
            absent = missing(tool)
            if absent:
                print(f"skipping {tool}: missing {', '.join(absent)}", file=sys.stderr)
                continue
            steps = run_tool(tool, args.corpus.resolve(), Path(scratch), model, args)
            result[tool] = summary(tool, steps)
    result.update(ratios(result))
    emit(result, as_json=args.json)
    return 0


def ratios(result: dict[str, Any]) -> dict[str, float]:
    """docsync's CPU seconds per chunk over each peer's, first sync (card made, and not)."""
    ours = result.get("docsync")
    out: dict[str, float] = {}
    for peer in ("langchain", "llamaindex"):
        theirs = result.get(peer)
        if not ours or not theirs:
            continue
        for name in ("first", "first_empty_cache"):
            ratio = ours[f"{name}_cpu_s_per_chunk"] / theirs["first_cpu_s_per_chunk"]
            out[f"docsync_{name}_per_chunk_vs_{peer}"] = round(ratio, 3)
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
