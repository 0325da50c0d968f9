"""A shard's files read ahead of searches, within a budget (plugin/stores/preread.py)."""

from __future__ import annotations

from pathlib import Path

from docsync.plugin.stores.preread import available_memory, preread, preread_behind


def files(base: Path, sizes: dict[str, int]) -> Path:
    for name, size in sizes.items():
        path = base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return base


def test_every_file_is_read_once_when_all_fit(tmp_path: Path) -> None:
    folder = files(tmp_path / "shard", {"a": 10, "seg/b": 3_000_000, "seg/index/c": 5})
    assert preread(folder, budget=10**9) == 3_000_015


def test_the_budget_stops_it_smallest_files_first(tmp_path: Path) -> None:
    folder = files(tmp_path / "shard", {"vectors": 5000, "index": 300, "ids": 200})
    assert preread(folder, budget=600) == 500  # the two small ones; the vectors would not fit
    assert preread(folder, budget=0) == 0


def test_a_folder_that_is_gone_reads_nothing(tmp_path: Path) -> None:
    assert preread(tmp_path / "missing", budget=10**9) == 0


def test_available_memory_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  2048 kB\nMemAvailable:   1024 kB\n", encoding="ascii")
    assert available_memory(meminfo) == 1024 * 1024
    meminfo.write_text("MemTotal:  2048 kB\n", encoding="ascii")
    assert available_memory(meminfo) is None
    assert available_memory(tmp_path / "nothing") is None


def test_behind_runs_on_a_thread_of_its_own(tmp_path: Path) -> None:
    thread = preread_behind(files(tmp_path / "shard", {"a": 10}))
    thread.join(30)
    assert not thread.is_alive() and thread.name == "docsync-preread"
