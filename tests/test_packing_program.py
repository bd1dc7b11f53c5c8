"""Weights packed once, through the Python API: the inference plans of a Program, a loaded artifact and an
imported ONNX model pack each weight their matrix products read once, keep it, and pack it again only after
a write of that weight (a training step, set_params, a checkpoint or parameter file loaded), so no call ever
answers from a stale packed copy. Each result is compared bit for bit with the same plan run unpacked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.artifact import LoadedProgram, save_artifact

# 96 rows: more than the GEMM's small-M limit (it streams B below that and packs nothing), so every dense
# layer reads a packed copy of its weight.
BATCH = 96
MODEL = """
input x: f32[N, 48]
input y: i32[N]
h1 = dense(x, 64) |> relu
h2 = dense(h1, 40) |> relu
output logits = dense(h2, 5)
train {
    loss = cross_entropy(logits, y)
    optimizer = adam(lr=0.05)
}
"""
PACKED = 3  # dense weights read packed: one per layer


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((BATCH, 48)).astype(np.float32),
            "y": rng.integers(0, 5, BATCH).astype(np.int32)}


def _plan(p: dlc.Program | LoadedProgram) -> object:
    return p.model.inference_plan({"N": BATCH}, training=False).plan


def _unpacked(p: dlc.Program, x: np.ndarray) -> np.ndarray:
    """The logits of a fresh program holding p's current parameters, its plan never packing."""
    fresh = dlc.compile(source=MODEL)
    fresh.set_params(p.params)
    _plan(fresh).set_weight_packing(False)
    return fresh(x=x)["logits"]


def test_a_program_packs_once_and_answers_bit_identically() -> None:
    p = dlc.compile(source=MODEL)
    x = _data()["x"]
    plan = _plan(p)
    assert plan.pack_count == PACKED  # packed when the plan was built, before any call
    first = p(x=x)["logits"]
    assert plan.pack_count == PACKED and plan.packed_bytes > 0
    np.testing.assert_array_equal(p(x=x)["logits"], first)
    np.testing.assert_array_equal(p.predict({"x": x})["logits"], first)
    assert plan.pack_count == PACKED
    np.testing.assert_array_equal(first, _unpacked(p, x))
    plan.set_weight_packing(False)  # reads no copy now, and says so
    assert plan.packed_bytes == 0 and not any(plan.packed_step_bytes)
    plan.set_weight_packing(True)


def test_a_training_step_then_a_call_answers_from_the_new_weights() -> None:
    p = dlc.compile(source=MODEL)
    data = _data()
    before = p(x=data["x"])["logits"]
    p.train_step(**data)
    after = p(x=data["x"])["logits"]
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, _unpacked(p, data["x"]))
    np.testing.assert_array_equal(p.predict({"x": data["x"]})["logits"], after)
    assert _plan(p).pack_count == 2 * PACKED  # every weight trained, each packed again once


def test_a_call_between_training_steps_repacks_only_what_changed() -> None:
    p = dlc.compile(source=MODEL).freeze("h1")
    data = _data()
    plan = _plan(p)
    p(x=data["x"])
    for step in range(3):
        p.train_step(**_data(step))
        out = p(x=data["x"])["logits"]
        assert plan.pack_count == PACKED + 2 * (step + 1)  # h2 and logits changed, h1 (frozen) did not
    np.testing.assert_array_equal(out, _unpacked(p, data["x"]))


def test_evaluation_between_training_steps_sees_each_step() -> None:
    p, q = dlc.compile(source=MODEL, seed=1), dlc.compile(source=MODEL, seed=1)
    for step in range(2):
        p.train_step(**_data(step))
        q.train_step(**_data(step))
        for plan in (lowered for lowered, _ in q.trainer._plans.values()):
            plan.plan.set_weight_packing(False)
        assert p.evaluate_batch(**_data(5)) == q.evaluate_batch(**_data(5))


def test_plans_over_one_model_share_its_packed_weights() -> None:
    """One copy per weight and layout, whatever the batch sizes compiled: a second batch size and evaluation
    pack nothing, a batch-1 plan (which streams) evicts nothing, and after a training step the first plan to run
    packs again while the others read that copy."""
    p = dlc.compile(source=MODEL)
    data = _data()
    big, other = _plan(p), p.model.inference_plan({"N": 80}, training=False).plan
    p.model.inference_plan({"N": 1}, training=False)
    p(x=data["x"][:1])
    assert big.pack_count == PACKED and other.pack_count == 0 and other.packed_bytes == big.packed_bytes
    p.evaluate_batch(**data)
    assert sum(lowered.plan.pack_count for lowered, _ in p.trainer._plans.values()) == 0
    p.train_step(**data)
    np.testing.assert_array_equal(p(x=data["x"][:80])["logits"], _unpacked(p, data["x"])[:80])
    np.testing.assert_array_equal(p(x=data["x"])["logits"], _unpacked(p, data["x"]))
    assert other.pack_count == PACKED and big.pack_count == PACKED


def test_set_params_then_a_call_repacks_that_weight() -> None:
    p = dlc.compile(source=MODEL)
    x = _data()["x"]
    p(x=x)
    p.set_params({"h2.weight": np.full((64, 40), 0.01, np.float32)})
    out = p(x=x)["logits"]
    assert _plan(p).pack_count == PACKED + 1
    np.testing.assert_array_equal(out, _unpacked(p, x))


def test_load_checkpoint_and_load_params_then_a_call(tmp_path: Path) -> None:
    p = dlc.compile(source=MODEL)
    data = _data()
    start = p(x=data["x"])["logits"]
    p.save_checkpoint(str(tmp_path / "start.ckpt"))
    p.save_params(tmp_path / "start.safetensors")
    p.train_step(**data)
    trained = p(x=data["x"])["logits"]
    p.load_checkpoint(str(tmp_path / "start.ckpt"))
    np.testing.assert_array_equal(p(x=data["x"])["logits"], start)
    p.train_step(**data)
    np.testing.assert_array_equal(p(x=data["x"])["logits"], trained)  # Adam's state was restored too
    p.load_params(tmp_path / "start.safetensors")
    np.testing.assert_array_equal(p(x=data["x"])["logits"], start)


def test_a_failed_write_still_counts_as_one() -> None:
    p = dlc.compile(source=MODEL)
    x = _data()["x"]
    p(x=x)
    with pytest.raises(RuntimeError):
        with p.model.writing_params() as params:
            params["h1.weight"][:] = 0
            raise RuntimeError("interrupted")
    np.testing.assert_array_equal(p(x=x)["logits"], _unpacked(p, x))


def test_parameters_are_read_only_views() -> None:
    p = dlc.compile(source=MODEL)
    with pytest.raises(ValueError, match="read-only"):
        p.params["h1.weight"][0, 0] = 1.0


def test_a_loaded_artifact_packs_once(tmp_path: Path) -> None:
    p = dlc.compile(source=MODEL)
    p.train_step(**_data())
    path = tmp_path / "m.dlc"
    save_artifact(p, path, dims={"N": BATCH})
    loaded = dlc.load(path)
    plan = _plan(loaded)
    assert plan.pack_count == PACKED  # at load, before the first call
    x = _data(1)["x"]
    first = loaded(x=x)["logits"]
    np.testing.assert_array_equal(loaded(x=x)["logits"], first)
    assert plan.pack_count == PACKED
    np.testing.assert_array_equal(first, _unpacked(p, x))


def test_an_imported_onnx_model_packs_once(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from dlc.onnx import from_onnx
    p = dlc.compile(source=MODEL)
    p.train_step(**_data())
    p.to_onnx(str(tmp_path / "m.onnx"))
    imported = from_onnx(tmp_path / "m.onnx", dims={"N": BATCH})
    x = _data(1)["x"]
    first = next(iter(imported(x=x).values()))
    plan = imported.compile_plan().plan
    packs = plan.pack_count
    assert packs == PACKED
    np.testing.assert_array_equal(next(iter(imported(x=x).values())), first)
    assert plan.pack_count == packs
    plan.set_weight_packing(False)
    np.testing.assert_array_equal(next(iter(imported(x=x).values())), first)


def test_packed_memory_is_reported_beside_the_arena(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dlc import cli
    p = dlc.compile(source=MODEL)
    assert "packed weights" not in p.summary()  # no plan yet: a summary compiles nothing
    p(x=_data()["x"])
    plan = _plan(p)
    assert p.memory["packed_weights_bytes"] == plan.packed_bytes > 0
    assert p.memory["arena_bytes"] == p.compile_plan({"N": BATCH}).memory.arena_bytes  # the arena is unchanged
    line = p.summary().splitlines()[-1]
    assert line.startswith(f"inference plan (N={BATCH}): arena ") and "packed weights" in line
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    assert cli.main(["compile", str(model), "-D", f"N={BATCH}", "--json"]) == 0
    memory = json.loads(capsys.readouterr().out)["memory"]
    assert memory["packed_weights_bytes"] == plan.packed_bytes and memory["arena_bytes"] > 0
    assert cli.main(["compile", str(model), "-D", f"N={BATCH}", "--train", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memory"]["packed_weights_bytes"] == 0  # training packs none


def test_bench_shows_which_kernels_read_packed_weights(tmp_path: Path) -> None:
    from dlc.bench import format_bench, run_bench
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    result = run_bench(str(model), {"N": BATCH}, repeat=2, warmup=1)
    rows = result["fused"]["kernels"]
    assert sorted(r["kernel"] for r in rows if r["packed_bytes"]) == ["matmul"] * PACKED
    assert result["fused"]["memory"]["packed_weights_bytes"] == sum(r["packed_bytes"] for r in rows)
    text = format_bench(result)
    assert " thr pack " in text and "packed weights" in text
