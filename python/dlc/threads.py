"""How many threads dlc's kernels use by default.

The kernels run on dlc's own thread pool (csrc/runtime/thread_pool.h), built for a CPU shared with other
programs: the caller of a parallel loop takes chunks itself and waits only for chunks another thread has
claimed, so a worker that the OS has descheduled before it took any work never stalls a kernel; idle workers
spin for a bounded time, then sleep. (A fork-join runtime such as OpenMP waits at the end of every region for
each thread of its team: beside one busy process a 1 ms call took 5-60 ms.)

The default thread count is the number of cores this process may run on (its affinity mask, e.g. as narrowed
by `taskset`), or `OMP_NUM_THREADS` when set; `dlc.set_num_threads` changes it for every later call.
"""

from __future__ import annotations

import os


def default_num_threads() -> int:
    """OMP_NUM_THREADS if it is a positive integer, else the number of CPUs in this process's affinity mask."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # platforms without affinity masks
        return max(1, os.cpu_count() or 1)
