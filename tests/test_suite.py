"""The test suite's own rules."""

from __future__ import annotations

import re
from pathlib import Path

# A wait with a number for its limit: `timeout=600`, `timeout: float = 30.0`,
# `time.monotonic() + 10`.
FIXED_WAIT = re.compile(r"timeout\s*[:=][^=\n]*?\b\d+(\.\d+)?\b|monotonic\(\) \+ \d")


def test_no_wait_fails_a_slow_machine() -> None:
    """A fixed limit on a child process, a thread or a condition fails a test on a slow but
    working machine (a sync under a 600 s limit errored 13 tests on a loaded one): tests
    wait up to `tests.conftest.HANG`, which only a hang reaches. A limit that is meant to
    fire, or that is retried, says so with `# fixed:` on its line or the line before."""
    offenders = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            code = line.split("#")[0]
            if not FIXED_WAIT.search(code) or "HANG" in code:
                continue
            if "# fixed:" in line or (number and "# fixed:" in lines[number - 1]):
                continue
            offenders.append(f"{path.name}:{number + 1}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
