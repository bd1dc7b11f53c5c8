"""The data-parallel fit loop: Trainer.fit's batches and counters, with each rank running its shard of every
global batch through the trainer's split step (compute_gradients, the allreduce, apply_gradients).

Shards: rank r of R takes samples [floor(r b / R), floor((r + 1) b / R)) of a global batch of b samples, and
weights its gradients by its share of b before the sum, so a loss that is a mean over the batch gets the
gradient of the mean over the global batch. Dropout masks are those of the global batch (the plan is told
the shard's offset) and augmentation transforms the global batch before it is sliced, so R ranks compute
what one process does, up to the order of floating-point sums. Global batches with fewer samples than
ranks (a small last batch) are skipped on every rank. Batch-norm statistics are each shard's own, or with
sync_batch_norm those of the global batch (the kernels sum them across ranks); running statistics are
averaged across ranks at the end of every epoch, so all ranks (and checkpoints) hold one value.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..errors import DistributedError, NonFiniteError
from ..shard import Shard
from ..training.epochs import fit_epochs, global_batch
from ..training.loop import as_named
from ..training.trainer import Trainer
from .world import World, fingerprint

# Environment variables MPI launchers set in every rank (Open MPI; MPICH, Intel MPI and other PMI ones).
_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


def launched() -> bool:
    """True when this process is one of several ranks started by mpirun (checked without importing MPI)."""
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in _SIZE_VARIABLES)


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    return n * rank // size, n * (rank + 1) // size


def trainer_of(program: Any) -> Trainer:
    """A Program's trainer, or the Trainer itself."""
    return program if isinstance(program, Trainer) else program.trainer


def save_checkpoint(program: Any, path: str, world: World | None = None) -> None:
    """Rank 0 writes the checkpoint (atomically); the others wait until it is on disk."""
    world = world or World()
    with world.fail_together():
        if world.is_main:
            trainer_of(program).save_checkpoint(path)
        world.barrier()


def average_state(trainer: Trainer, world: World) -> None:
    """Running statistics (batch norm) averaged over ranks, in one allreduce; parameters are already equal."""
    params = trainer.params
    state = [p.name for p in trainer.model.graph.params if p.kind == "state"
             and np.issubdtype(params[p.name].dtype, np.floating)]
    if not state or world.size == 1:
        return
    total = world.sum(np.concatenate([params[n].ravel().astype(np.float64) for n in state]))
    out, at = {}, 0
    for name in state:
        a = params[name]
        out[name] = (total[at:at + a.size] / world.size).reshape(a.shape).astype(a.dtype)
        at += a.size
    trainer.set_params(out)


def evaluate(program: Any, data: Any, batch_size: int | None, world: World) -> dict[str, float]:
    """Trainer.evaluate over the whole set, each rank taking a contiguous slice; averaged over samples."""
    trainer = trainer_of(program)
    arrays = as_named(trainer.inputs, data)
    n = len(next(iter(arrays.values())))
    lo, hi = shard_bounds(n, world.rank, world.size)
    keys = ["loss"] + [name for name, _ in trainer.spec().metrics]
    local = trainer.evaluate({k: v[lo:hi] for k, v in arrays.items()}, batch_size) if hi > lo else {}
    totals = world.sum(np.array([local.get(k, 0.0) * (hi - lo) for k in keys]))
    return {k: float(t) / n for k, t in zip(keys, totals)}


def fit(program: Any, data: Any, *, epochs: int | None = None, batch_size: int | None = None,
        validation: Any = None, callbacks: list[Callable[..., Any]] | None = None, shuffle: bool = True,
        verbose: bool = True, world: World | None = None, sync_batch_norm: bool = False) -> dict[str, list[float]]:
    """Trainer.fit (of a Program or a Trainer), data-parallel over the ranks of `world` (MPI.COMM_WORLD by
    default). Every rank passes the same data, settings and starting parameters (checked at start); the
    history is the same on every rank; only rank 0 shows progress. Any failure on one rank ends the whole job
    (see world.py). sync_batch_norm: normalize with the global batch's statistics instead of each shard's."""
    world = world or World()
    with world.fail_together():
        return _fit(trainer_of(program), data, epochs, batch_size, validation, list(callbacks or []), shuffle,
                    verbose, world, sync_batch_norm)


def _fit(trainer: Trainer, data: Any, epochs: int | None, batch_size: int | None, validation: Any,
         callbacks: list[Callable[..., Any]], shuffle: bool, verbose: bool, world: World,
         sync_batch_norm: bool) -> dict[str, list[float]]:
    epochs, size = trainer.run_length(epochs, batch_size)
    trainer.apply_recipe_init()  # before the agreement: the ranks then compare the loaded parameters
    arrays = trainer.prepare_data(data, "fit data", new_classes=True)  # the check Trainer.fit makes
    n = len(next(iter(arrays.values())))
    world.agree(fingerprint(trainer, samples=n, batch_size=size, epochs=epochs, shuffle=shuffle,
                            validation=validation is not None, sync_batch_norm=sync_batch_norm))
    if size < world.size:
        raise DistributedError(f"the global batch ({size} samples) is smaller than the number of ranks "
                               f"({world.size}): every rank needs at least one sample")
    return fit_epochs(trainer, DataParallelStepper(trainer, arrays, world, sync_batch_norm), n, epochs, size,
                      validation=validation, callbacks=callbacks, shuffle=shuffle, verbose=verbose)


class DataParallelStepper:
    """This rank's part of every global batch: its shard's gradients, the weighted allreduce, one update that
    every rank applies alike (they hold the same averaged region, so they make the same finiteness decision)."""

    def __init__(self, trainer: Trainer, arrays: dict[str, np.ndarray], world: World, sync_batch_norm: bool):
        self.trainer, self.arrays, self.world, self.sync = trainer, arrays, world, sync_batch_norm
        self.spec = trainer.spec()
        self.shows_progress = world.is_main

    def step(self, k_batch: int, idx: np.ndarray, epoch: int) -> tuple[dict[str, float], int] | None:
        if len(idx) < self.world.size:  # a last batch too small to give every rank a sample: no step anywhere
            return {}, 0
        lo, hi = shard_bounds(len(idx), self.world.rank, self.world.size)
        weight = (hi - lo) / len(idx)
        shard = Shard(lo, hi - lo, weight, self.world.sum_in_place if self.sync else None)
        batch = shard_of(self.trainer, self.spec, self.arrays, idx, lo, hi, epoch, k_batch)
        out = self.trainer.compute_shard_gradients(batch, shard)
        self.world.step = self.trainer.step_count + 1  # what a watchdog message names (see world.py)
        self.world.average_gradients(self.trainer.gradients, weight)
        if not np.isfinite(self.trainer.gradients).all():
            if self.spec.on_nonfinite == "error":
                raise NonFiniteError(f"training step {self.trainer.step_count + 1}: the gradients averaged over "
                                     f"{self.world.size} ranks are not finite; the update was not applied")
            return None
        self.trainer.apply_gradients()
        return out, hi - lo

    def combine(self, totals: np.ndarray) -> np.ndarray:
        return self.world.sum(totals)

    def end_epoch(self) -> None:
        average_state(self.trainer, self.world)

    def validate(self, data: Any, batch_size: int) -> dict[str, float]:
        return evaluate(self.trainer, data, batch_size, self.world)


def shard_of(trainer: Trainer, spec: Any, arrays: dict[str, np.ndarray], idx: np.ndarray, lo: int, hi: int,
             epoch: int, k_batch: int) -> dict[str, np.ndarray]:
    """This rank's rows of global batch k_batch. Augmentation runs on the whole global batch (it draws per
    sample in batch order) and the shard is cut from the result; without it only the shard's rows are read."""
    if spec.augment is None or not spec.augment.active:
        return {k: v[idx[lo:hi]] for k, v in arrays.items()}
    batch = global_batch(arrays, idx, spec, trainer.seed, epoch, k_batch)
    return {k: np.ascontiguousarray(v[lo:hi]) for k, v in batch.items()}
