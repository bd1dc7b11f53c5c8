"""Traces of a run (issue 25, item 8): `dlc.profile(...)` and `dlc bench --trace` write Chrome trace-event JSON
(what Perfetto and chrome://tracing open): one event per plan run holding one per kernel step, with the
kernel, its fusion group, the thread count, start and duration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dlc
from dlc import cli

ROOT = Path(__file__).resolve().parent.parent


def check_nesting(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every complete event well formed and every kernel inside a plan run on its track."""
    plans = [e for e in events if e.get("cat") == "plan"]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    for e in plans + kernels:
        assert e["ph"] == "X" and e["dur"] >= 0 and isinstance(e["ts"], float) and {"pid", "tid"} <= set(e)
    for k in kernels:
        assert any(p["pid"] == k["pid"] and p["tid"] == k["tid"] and p["ts"] <= k["ts"]
                   and k["ts"] + k["dur"] <= p["ts"] + p["dur"] + 1e-3 for p in plans)
    return plans, kernels


def test_profile_records_inference_and_training_steps(tmp_path: Path) -> None:
    program = dlc.compile(ROOT / "models" / "digits_cnn.dlm")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 1, 8, 8), np.float32), rng.integers(0, 10, 16).astype(np.int32)
    program(x=x)
    with dlc.profile(tmp_path / "run.json") as prof:
        program(x=x)
        program.train_step(x=x, y=y)
    program(x=x)  # after the profile ends: not recorded
    trace = json.loads((tmp_path / "run.json").read_text())
    assert trace["traceEvents"] == prof.events and trace["otherData"]["threads"] == dlc.get_num_threads()
    plans, kernels = check_nesting(trace["traceEvents"])
    assert [p["name"] for p in plans] == ["inference", "training (step 1)"]  # train_step is one fused plan
    inference = program.compile_plan({"N": 16}, training=False)
    assert plans[0]["args"]["kernels"] == len(inference.steps)
    first = kernels[:len(inference.steps)]
    assert [k["name"] for k in first] == [s.kernel for s in inference.steps]
    conv = next(k for k in first if k["args"]["layer"] == "c1.conv2d")
    assert conv["args"]["group"].startswith(("conv2d_core+", "conv2d_nchwc+")) and conv["args"]["fused_ops"] > 1
    step = program.trainer.training_plan("step", {"N": 16})[0]  # the plan the last run was
    assert [k["args"]["threads"] for k in kernels[-len(step.steps):]] == list(step.plan.step_threads)
    assert all(1 <= k["args"]["threads"] <= dlc.get_num_threads() for k in kernels)
    starts = [k["ts"] for k in first]
    assert starts == sorted(starts)  # steps run in plan order


def test_bench_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    code = cli.main(["bench", str(ROOT / "models" / "mlp.dlm"), "-D", "N=8", "--repeat", "3", "--warmup", "1",
                     "--trace", str(path)])
    out = capsys.readouterr().out
    assert code == 0 and f"wrote {path}" in out
    events = json.loads(path.read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert sorted(names.values()) == ["dlc bench: fused", "dlc bench: unfused"]
    plans, kernels = check_nesting(events)
    assert sorted(p["name"] for p in plans) == sorted(f"{v} run {i}" for v in ("fused", "unfused") for i in (1, 2, 3))
    fused = [k for k in kernels if names[k["pid"]] == "dlc bench: fused"]
    assert {k["args"]["group"] for k in fused} >= {"matmul+add+relu"}
