"""What the machine under the tests is doing besides them."""

from __future__ import annotations

from pathlib import Path

STAT = Path("/proc/stat")


class CpuSteal:
    """The share of CPU time the hypervisor gave to others ("steal" in /proc/stat) since this
    object was made; 0 where the system does not report it."""

    def __init__(self, stat: Path = STAT) -> None:
        self._stat = stat
        self._start = self._read()

    def share(self) -> float:
        steal0, total0 = self._start
        steal1, total1 = self._read()
        return (steal1 - steal0) / (total1 - total0) if total1 > total0 else 0.0

    def _read(self) -> tuple[int, int]:
        try:
            fields = self._stat.read_text().split("\n", 1)[0].split()
        except OSError:
            return 0, 0
        if fields[:1] != ["cpu"] or len(fields) < 9:
            return 0, 0
        ticks = [int(f) for f in fields[1:]]
        # user nice system idle iowait irq softirq steal [guest guest_nice, counted in user]
        return ticks[7], sum(ticks[:8])
