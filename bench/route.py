"""What a running daemon's socket route adds to a search, paired: the same question asked of
one daemon per checkout (each `docsync run` on its own copy of a built store) and of a
`Searcher` in this process, in turn, question by question, so that a machine's moods touch
every side alike. Per checkout: the client's p50, the daemon's own time on an answer
(`Server-Timing`), the route's (HTTP both ways: the client's latency less the daemon's own),
and `adds_p50_ms`: the client's p50 less the in-process p50 of the same run.

    DOCSYNC_MODEL=/path/to/model python bench/route.py --store DIR [--checkout PATH]...
        [--questions N] [--json]

`--store`: a store `bench/query.py --cache` built (`<cache>/query-100000-<key>`, collection
`bench`). `--checkout`: a source tree whose docsync the daemon runs (`PYTHONPATH`), to compare
two versions in one run; by default, the one this script belongs to. The in-process side is
always this script's own docsync.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import RunningDaemon, socket_client
from output import emit
from query import QUESTIONS

from docsync.plugin.encoder import Encoder
from docsync.plugin.search import Searcher
from docsync.plugin.settings import Settings
from docsync.plugin.stores.edge import EdgeStore

WARM = 50  # questions asked of every side before any is measured
HERE = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a built bench store")
    parser.add_argument(
        "--checkout", type=Path, action="append", help="a source tree to run a daemon from"
    )
    parser.add_argument("--questions", type=int, default=600, help="asked of each side")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    checkouts = [c.resolve() for c in args.checkout or [HERE]]
    if not (args.store / "bench").is_dir():
        parser.error(f"{args.store} holds no bench store (bench/query.py --cache builds one)")
    with tempfile.TemporaryDirectory(prefix="docsync-route-") as tmp:
        work = Path(tmp)
        copies = [work / f"store{i}" for i in range(len(checkouts) + 1)]
        for copy in copies:
            shutil.copytree(args.store, copy, symlinks=True)
        daemons: list[RunningDaemon] = []
        try:
            for i, (checkout, copy) in enumerate(zip(checkouts, copies[:-1], strict=True)):
                daemons.append(_started(checkout, copy, work / f"daemon{i}"))
            result = _paired(daemons, copies[-1], checkouts, args.questions)
        finally:
            for daemon in daemons:
                daemon.close()
    emit(result, as_json=args.json, cpu=True)
    return 0


def _started(checkout: Path, store: Path, work: Path) -> RunningDaemon:
    work.mkdir()
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(checkout)  # the daemon's docsync: this checkout's
    try:
        return RunningDaemon(store, "bench", work)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before


def _paired(
    daemons: list[RunningDaemon], store: Path, checkouts: list[Path], questions: int
) -> dict[str, object]:
    encoder = Encoder.from_settings(Settings())
    encoder.warm()
    edge = EdgeStore.connect(path=store, collection="bench")
    edge.warm()
    searcher = Searcher(edge, encoder)
    asks = [socket_client(d.socket) for d in daemons]
    client: list[list[float]] = [[] for _ in daemons]
    own: list[list[float]] = [[] for _ in daemons]
    local: list[float] = []
    try:
        for i in range(WARM + questions):
            question = QUESTIONS[i % len(QUESTIONS)]
            turn = i % (len(daemons) + 1)  # who goes first moves round
            sides = list(range(len(daemons) + 1))
            for side in sides[turn:] + sides[:turn]:
                began = time.perf_counter()
                if side == len(daemons):
                    searcher.search(question, limit=5)
                    if i >= WARM:
                        local.append((time.perf_counter() - began) * 1000)
                    continue
                took = asks[side](question)
                if i >= WARM:
                    client[side].append((time.perf_counter() - began) * 1000)
                    own[side].append(took)
    finally:
        searcher.close()
    in_process = statistics.median(local)
    result: dict[str, object] = {"questions": questions, "in_process_p50_ms": round(in_process, 2)}
    for n, checkout in enumerate(checkouts):
        name = f"daemon{n}"
        route = [c - o for c, o in zip(client[n], own[n], strict=True)]
        result[f"{name}_checkout"] = str(checkout)
        result[f"{name}_client_p50_ms"] = round(statistics.median(client[n]), 2)
        result[f"{name}_own_p50_ms"] = round(statistics.median(own[n]), 2)
        result[f"{name}_route_p50_ms"] = round(statistics.median(route), 3)
        result[f"{name}_adds_p50_ms"] = round(statistics.median(client[n]) - in_process, 2)
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
