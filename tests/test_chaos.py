"""The soak and chaos run (bench/chaos.py, DESIGN.md invariants 1, 4 and 12), bounded for CI:
a real `docsync run` under steady edits, renames and deletes, `kill -9` of its children (shard
host, index builder, reader) every two seconds or so, a full disk for a while (as root), and
searches over its socket and HTTP. Afterwards the daemon has never exited, its collection
equals a from-scratch sync, and every search was answered or refused with one line.

`DOCSYNC_CHAOS_MINUTES=30 pytest tests/test_chaos.py` turns the same test into a soak. The
harness polls with deadlines of minutes (ready, idle), so a slow machine only makes it longer;
no figure here depends on speed but the counts of kills, which scale with the minutes run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "chaos.py"


def test_the_daemon_outlives_chaos_and_its_collection_equals_a_fresh_sync(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    minutes = os.environ.get("DOCSYNC_CHAOS_MINUTES")
    args = [
        "--json",
        "--model",
        str(tiny_model_dir),
        "--full-disk",
        "--keep",
        str(tmp_path / "run"),
    ]
    # 45 s of chaos with a kill every 2 s or so (each kind is killed several times; the index
    # builder at once, as the first build follows the initial sync) and a full disk for 10 s
    # from 16 s in: its backoffs (1, 2, 4, 8 s) are over before the chaos ends, so the daemon
    # goes idle in seconds. `--short` (75 s, 20 s full) only added kills of the same kinds.
    short = ["--minutes", "0.75", "--kill-every", "2", "--full-disk-seconds", "10"]
    args += ["--minutes", minutes, "--seed", "1"] if minutes else [*short, "--seed", "1"]
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True)
    assert done.returncode in (0, 1), done.stderr[-3000:]  # 2: the harness itself failed
    result = json.loads(done.stdout.splitlines()[-1])
    report = json.dumps(result, indent=1)

    # the daemon never exited, went idle, and stops cleanly
    assert result["daemon_alive"] and result["exits"] == [], report
    assert result["idle_after_s"] is not None and result["stop_code"] == 0, report
    # its collection is exactly what a fresh sync of the same folder makes
    assert result["fresh_sync_code"] == 0, report
    assert (result["missing"], result["stale"], result["duplicates"]) == (0, 0, 0), report
    assert result["points"] == result["fresh_points"], report
    # every search was answered or refused with one clear line, none hung
    assert result["searches_answered"] > 0, report
    assert result["searches_failed_badly"] == 0 and result["hung_threads"] == 0, report
    assert all("\n" not in message for message in result["refusals"]), report
    assert result["ok"] and result["failed"] == [], report
    # and the chaos happened: every kind of child was killed, several times
    kills = result["kills"]
    assert kills.get("shard_host", 0) >= 3 and kills.get("reader", 0) >= 3, report
    assert kills.get("index_builder", 0) >= 1, report
    assert result["full_disk"].get("skipped") or result["full_disk"].get("ballast_mb"), report
