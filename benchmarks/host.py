"""What every results table names: the host's processor (figures from different CPUs are not comparable)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The first `model name` of /proc/cpuinfo (what `lscpu` prints), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as the tables print them before a run."""
    try:
        return "load average before: " + " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "load average unknown"
