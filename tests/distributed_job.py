"""Jobs that tests/test_distributed.py (and benchmarks/distributed.py) run under `mpirun -n R`, and the
one-process runs they are compared with.

    mpirun -n 2 python tests/distributed_job.py train OUT_DIR     # trained parameters and a checkpoint
    mpirun -n 2 python tests/distributed_job.py fault             # rank 1 raises inside its 3rd step
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import dlc
import dlc.distributed as dd
from dlc.data import digits, for_model
from dlc.distributed.training import shard_bounds, shard_of
from dlc.shard import Shard
from dlc.training.loop import batches

MODELS = Path(__file__).resolve().parents[1] / "models"
# name: (model, dtype, samples, global batch, epochs); 50 steps for the MLPs, short runs for the CNN (local
# batch-norm statistics, and synchronized ones for the cases named *_sync) and the GAN.
CASES = {
    "mlp_f64": ("digits_mlp", "f64", 640, 64, 5),
    "mlp_f32": ("digits_mlp", "f32", 640, 64, 5),
    "cnn_f64": ("digits_cnn", "f64", 128, 32, 1),
    "cnn_f32": ("digits_cnn", "f32", 128, 32, 1),
    "cnn_f64_sync": ("digits_cnn", "f64", 128, 32, 1),
    "cnn_f32_sync": ("digits_cnn", "f32", 128, 32, 1),
    # Two phases taking turns (a recipe with phases under the gradient hook) and a random op, normal([N, 16]),
    # whose draws must be the global batch's on every rank: 8 steps, 4 per phase.
    "gan_f64": ("digits_gan", "f64", 128, 32, 2),
    "gan_f32": ("digits_gan", "f32", 128, 32, 2),
}


def digits_for(program: dlc.Program, samples: int) -> dict[str, np.ndarray]:
    return {k: v[:samples] for k, v in for_model(program, *digits().train).items()}


def compile_case(case: str) -> tuple[dlc.Program, dict[str, np.ndarray], int, int]:
    model, dtype, samples, batch, epochs = CASES[case]  # *_sync: the same run with synchronized batch norm
    program = dlc.compile(MODELS / f"{model}.dlm", dtype=dtype, seed=0)
    return program, digits_for(program, samples), batch, epochs


def fit_per_shard(program: dlc.Program, data: dict[str, np.ndarray], batch: int, epochs: int,
                  shards: int) -> None:
    """One process training as `shards` ranks would: every global batch runs shard by shard (batch-norm
    statistics per shard), the gradients weighted by each shard's share are summed in the gradient region,
    and one update follows."""
    trainer = program.trainer
    spec = trainer.spec()
    n = len(next(iter(data.values())))
    for _ in range(epochs):
        epoch = trainer.epoch
        order = np.random.default_rng([trainer.seed, epoch]).permutation(n)
        for k, idx in enumerate(batches(n, batch, order)):
            earlier: list[np.ndarray] = []
            for r in range(shards):
                lo, hi = shard_bounds(len(idx), r, shards)
                weight = (hi - lo) / len(idx)
                trainer.compute_shard_gradients(shard_of(trainer, spec, data, idx, lo, hi, epoch, k),
                                                Shard(lo, hi - lo, weight))
                region = trainer.gradients
                region *= region.dtype.type(weight)
                earlier.append(region.copy())
            for g in earlier[:-1]:
                region += g
            trainer.apply_gradients()
        trainer.end_epoch()


def train(out: Path) -> None:
    world = dd.World()
    for case in CASES:
        program, data, batch, epochs = compile_case(case)
        dd.fit(program, data, epochs=epochs, batch_size=batch, verbose=False, world=world,
               sync_batch_norm=case.endswith("_sync"))
        np.savez(out / f"{case}_rank{world.rank}.npz", **program.params)
        if case == "mlp_f64":
            dd.save_checkpoint(program, str(out / "mlp_f64.ckpt"), world)
    again, data, batch, epochs = compile_case("mlp_f32")  # the same run twice: bit-identical
    dd.fit(again, data, epochs=epochs, batch_size=batch, verbose=False, world=world)
    np.savez(out / f"mlp_f32_again_rank{world.rank}.npz", **again.params)


def fault() -> None:
    world = dd.World()
    calls = [0]
    average = world.average_gradients

    def failing(region: np.ndarray, weight: float) -> None:
        calls[0] += 1
        if world.rank == 1 and calls[0] == 3:
            raise RuntimeError("injected failure in the third step")
        average(region, weight)

    world.average_gradients = failing  # type: ignore[method-assign]
    program, data, batch, epochs = compile_case("mlp_f32")
    dd.fit(program, data, epochs=epochs, batch_size=batch, verbose=False, world=world)


def hang() -> None:
    """Rank 1 sleeps before its third step's allreduce, far longer than the 3 s watchdog allows."""
    world = dd.World(timeout=3.0)
    calls = [0]
    average = world.average_gradients

    def sleepy(region: np.ndarray, weight: float) -> None:
        calls[0] += 1
        if world.rank == 1 and calls[0] == 3:
            time.sleep(600)
        average(region, weight)

    world.average_gradients = sleepy  # type: ignore[method-assign]
    program, data, batch, epochs = compile_case("mlp_f32")
    dd.fit(program, data, epochs=epochs, batch_size=batch, verbose=False, world=world)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "train":
        train(Path(sys.argv[2]))
    elif mode == "fault":
        fault()
    elif mode == "hang":
        hang()
    else:
        raise SystemExit(f"unknown mode {mode}")
