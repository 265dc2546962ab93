"""Process measurements the benches share; stdlib only, so a bench's parent stays light."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int) -> float:
    """A process's resident memory now, in MiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
