"""The MPI world as the trainer sees it: rank and size, the gradient allreduce, small sums, the start-up
agreement check, and failing together.

Failures: an exception on one rank cannot be seen by the others, which would wait in the next allreduce
forever, so it is reported with the rank's number and the job is aborted (MPI_Abort ends every rank; mpirun
names the rank too). A rank that dies outright is detected by mpirun, which then ends the others.
A disagreement found at start is raised as DistributedError on every rank at once: nobody waits.

A rank that hangs without dying (a deadlock, a stalled file system, a debugger) would leave the others in the
step's allreduce forever. So before each step's allreduce every rank tells the others which step it reached
(a few bytes, point to point) and waits for the allreduce without blocking; a rank still waiting after
`timeout` seconds names the ranks whose arrival it has not seen, `rank R did not reach step S within T s`, and
aborts the job.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from ..errors import DistributedError


DEFAULT_TIMEOUT = 300.0  # seconds a rank waits in a step's allreduce for the others (DLC_RANK_TIMEOUT)
_ARRIVAL_TAG = 7301


def default_timeout() -> float:
    value = os.environ.get("DLC_RANK_TIMEOUT", "")
    try:
        timeout = float(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        raise DistributedError(f"DLC_RANK_TIMEOUT must be a number of seconds, got {value!r}") from None
    if not timeout > 0:
        raise DistributedError(f"the rank timeout must be positive, got {timeout:g} s")
    return timeout


class World:
    """A communicator: MPI.COMM_WORLD unless one is given (an mpi4py Intracomm). `timeout`: how long a rank
    waits in a step's allreduce for the others before it ends the job naming the missing ranks (default
    DLC_RANK_TIMEOUT, or 300 s)."""

    def __init__(self, comm: Any = None, timeout: float | None = None):
        try:
            from mpi4py import MPI
        except ImportError:
            raise DistributedError("data-parallel training needs mpi4py and an MPI library: "
                                   "pip install \".[distributed]\" (in the dlc checkout)") from None
        self._mpi = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank: int = self.comm.Get_rank()
        self.size: int = self.comm.Get_size()
        self.timeout = default_timeout() if timeout is None else float(timeout)
        if not self.timeout > 0:
            raise DistributedError(f"the rank timeout must be positive, got {self.timeout:g} s")
        self.step = 0  # the step the next gradient allreduce belongs to (set by the stepper), for messages

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints progress and writes files."""
        return self.rank == 0

    def average_gradients(self, region: np.ndarray, weight: float) -> None:
        """region <- sum over ranks of weight_r * region_r, in place, in one allreduce (weight_r: this rank's
        share of the global batch, so a mean loss gets the gradient of the global mean)."""
        if weight != 1.0:
            np.multiply(region, region.dtype.type(weight), out=region)
        if self.size == 1:
            return
        peers = [r for r in range(self.size) if r != self.rank]
        mine = np.array([self.step], np.int64)
        theirs = {r: np.full(1, -1, np.int64) for r in peers}
        received = {r: self.comm.Irecv(theirs[r], source=r, tag=_ARRIVAL_TAG) for r in peers}
        sent = [self.comm.Isend(mine, dest=r, tag=_ARRIVAL_TAG) for r in peers]
        reduce = self.comm.Iallreduce(self._mpi.IN_PLACE, region, op=self._mpi.SUM)
        self._wait(reduce, received)
        self._mpi.Request.Waitall([*received.values(), *sent])  # every peer joined, so every arrival was sent

    def _wait(self, request: Any, arrivals: dict[int, Any]) -> None:
        """Polls the allreduce (spinning briefly, then sleeping up to 1 ms between tests) until it completes
        or the timeout passes; then the ranks whose arrival message has not come are named and the job ends."""
        start = time.monotonic()
        pause = 0.0
        while not request.Test():
            if time.monotonic() - start > self.timeout:
                missing = [r for r, req in arrivals.items() if not req.Test()]
                who = ", ".join(str(r) for r in missing) or "another rank"
                sys.stderr.write(f"dlc: error: rank{'s' * (len(missing) > 1)} {who} did not reach step "
                                 f"{self.step} within {self.timeout:g} s (seen from rank {self.rank}); stopping "
                                 f"all {self.size} ranks (MPI_Abort from rank {self.rank})\n")
                sys.stderr.flush()
                self.comm.Abort(1)
            time.sleep(pause)
            pause = min(pause * 2 or 1e-5, 1e-3)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Elementwise sum over ranks of a small float64 vector (epoch totals, statistics)."""
        out = np.ascontiguousarray(values, dtype=np.float64).copy()
        self.comm.Allreduce(self._mpi.IN_PLACE, out, op=self._mpi.SUM)
        return out

    def sum_in_place(self, values: np.ndarray) -> None:
        """values <- their sum over ranks (float64; batch-norm statistics inside a step)."""
        self.comm.Allreduce(self._mpi.IN_PLACE, values, op=self._mpi.SUM)

    def barrier(self) -> None:
        self.comm.Barrier()

    def agree(self, facts: dict[str, str]) -> None:
        """Raises DistributedError on every rank unless all ranks hold the same facts; the message names the
        ranks and what differs."""
        everyone: list[dict[str, str]] = self.comm.allgather(facts)
        reference = everyone[0]
        problems = []
        for rank, theirs in enumerate(everyone[1:], start=1):
            differs = [f"{k} ({theirs.get(k)} vs {reference.get(k)})" for k in sorted(set(reference) | set(theirs))
                       if theirs.get(k) != reference.get(k)]
            if differs:
                problems.append(f"rank {rank} differs from rank 0 in " + ", ".join(differs))
        if problems:
            raise DistributedError(f"the {self.size} ranks do not run the same job: " + "; ".join(problems))

    @contextmanager
    def fail_together(self) -> Iterator[None]:
        """Runs the body; any exception but a DistributedError (which every rank raises together) is reported
        with this rank's number and ends the whole job."""
        try:
            yield
        except DistributedError:
            raise
        except BaseException as e:
            if self.size == 1:
                raise
            sys.stderr.write(f"dlc: error: rank {self.rank} of {self.size} failed: {type(e).__name__}: {e}\n")
            traceback.print_exc(file=sys.stderr)
            sys.stderr.write(f"dlc: stopping all {self.size} ranks (MPI_Abort from rank {self.rank})\n")
            sys.stderr.flush()
            self.comm.Abort(1)


def fingerprint(trainer: Any, **settings: Any) -> dict[str, str]:
    """What every rank must agree on before training (a Trainer's): the model (its graph, dtype and parameter
    count), the parameter values, the training counters, the recipe and the run's settings (samples, batch
    size...)."""
    params = trainer.params
    values = hashlib.sha256()
    for name in sorted(params):
        values.update(name.encode())
        values.update(np.ascontiguousarray(params[name]).tobytes())
    facts = {
        "model": hashlib.sha256(trainer.model.graph.dump().encode()).hexdigest()[:12],
        "dtype": trainer.model.dtype,
        "parameter count": str(sum(int(a.size) for a in params.values())),
        "parameter values": values.hexdigest()[:12],
        "step": str(trainer.step_count),
        "epoch": str(trainer.epoch),
        "seed": str(trainer.seed),
        "recipe": hashlib.sha256(repr(trainer.spec()).encode()).hexdigest()[:12],
    }
    facts.update({k.replace("_", " "): str(v) for k, v in settings.items()})
    return facts
