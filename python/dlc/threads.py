"""How dlc's kernels use the CPU's cores on a machine they may share with other programs.

The kernels run on OpenMP (libgomp). Its default wait policy spins a finished worker for up to 300,000
iterations (milliseconds) before it sleeps: on an idle machine that saves a wake-up per kernel, but beside
other busy processes the spinning threads take the cores that the stalled ones need, and a call that takes
1 ms alone took 5-60 ms. So dlc bounds the spin (`GOMP_SPINCOUNT`, a few tens of microseconds: long enough to
bridge the gap between consecutive kernels of one call, short enough that an idle worker yields its core
soon after) unless the user chose a policy. libgomp reads it once, when it is loaded, so `configure_openmp`
must run before the extension module is imported. The parallel loops take dynamic chunks, so a thread the
OS has descheduled holds back only the chunk it holds.

The default thread count is the number of cores this process may run on (its affinity mask), or
`OMP_NUM_THREADS` when set; `dlc.set_num_threads` changes it for every later call.
"""

from __future__ import annotations

import os

# Spin iterations before a waiting OpenMP thread sleeps (about 10 ns each on current x86 cores).
DEFAULT_SPINCOUNT = 3000


def configure_openmp(environ: dict[str, str] | None = None) -> None:
    """Bounds libgomp's spin-wait unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is already set."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = str(DEFAULT_SPINCOUNT)


def default_num_threads() -> int:
    """OMP_NUM_THREADS if it is a positive integer, else the number of CPUs in this process's affinity mask."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without affinity masks
        return max(1, os.cpu_count() or 1)
