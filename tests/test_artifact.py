"""Compiled artifacts: bit-exact round trips, the documented file layout, atomic writes, and a clean
CheckpointError for every kind of damaged or hand-edited file (validated before the C++ plan is built)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save, save_file

import dlc
from dlc.artifact import LoadedProgram, _checksum, load_artifact, save_artifact

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "models" / "mlp.dlm"
RNG = np.random.default_rng(7)

# Exercises an integer input, a constant (the 1 in k > 1), fusion, a layer with parameters and layer_norm.
INLINE = """input x: f32[N, 3]
input k: i32[N, 3]
m = cast(k > 1, "f32")
h = dense(x * m, 4) |> layer_norm
output y = h, z = relu(h) * 2
"""


def inline_inputs(n: int = 5) -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((n, 3)).astype(np.float32), "k": RNG.integers(0, 3, (n, 3), dtype=np.int32)}


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def rewrite(path: Path, edit: Callable[[dict[str, np.ndarray], dict[str, str]], None]) -> None:
    """Applies a hand edit and re-signs the file, so the loader's structural checks are what must catch it."""
    tensors, meta = read(path)
    edit(tensors, meta)
    meta["checksum"] = _checksum(meta, tensors)
    save_file(tensors, str(path), metadata=meta)


def edit_plan(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, np.ndarray], dict[str, str]], None]:
    def edit(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
        plan = json.loads(meta["plan"])
        change(plan)
        meta["plan"] = json.dumps(plan)
    return edit


@pytest.fixture
def saved(tmp_path: Path) -> tuple[dlc.Program, Path]:
    prog = dlc.compile(source=INLINE)
    path = tmp_path / "model.dlc"
    save_artifact(prog, path, {"N": 5})
    return prog, path


def test_round_trip_is_bit_exact(saved: tuple[dlc.Program, Path]) -> None:
    prog, path = saved
    art = dlc.load(path)
    assert isinstance(art, LoadedProgram)
    batch = inline_inputs()
    expected, got = prog(**batch), art(**batch)
    assert list(got) == ["y", "z"]
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    assert art.inputs == {"x": dlc.TensorSpec("f32", (5, 3)), "k": dlc.TensorSpec("i32", (5, 3))}
    assert art.outputs["z"] == dlc.TensorSpec("f32", (5, 4))
    assert art.memory == prog.compile_plan({"N": 5}).memory.as_dict()
    assert art.dims == {"N": 5} and art.dtype == "f32" and art.source == INLINE


def test_reference_model_round_trip(tmp_path: Path) -> None:
    if not MLP.is_file():
        pytest.skip("models/mlp.dlm is not there")
    prog = dlc.compile(MLP, dims={"N": 8})
    save_artifact(prog, tmp_path / "mlp.dlc")
    art = load_artifact(tmp_path / "mlp.dlc")
    assert list(art.inputs) == ["x"]  # the labels feed only the training recipe
    x = RNG.standard_normal((8, 784)).astype(np.float32)
    np.testing.assert_array_equal(art(x=x)["logits"], prog(x=x)["logits"])


def test_f64_round_trip(tmp_path: Path) -> None:
    prog = dlc.compile(source="input x: f32[N, 3]\noutput y = dense(x, 4) |> gelu |> layer_norm\n", dtype="f64",
                       dims={"N": 2})
    save_artifact(prog, tmp_path / "m.dlc")
    art = dlc.load(tmp_path / "m.dlc")
    x = RNG.standard_normal((2, 3))
    assert art.dtype == "f64" and art.params["y.dense.weight"].dtype == np.float64
    np.testing.assert_array_equal(art(x=x)["y"], prog(x=x)["y"])


def test_trained_program_saves_parameters_only(tmp_path: Path) -> None:
    if not MLP.is_file():
        pytest.skip("models/mlp.dlm is not there")
    prog = dlc.compile(MLP)
    x = RNG.standard_normal((4, 784)).astype(np.float32)
    prog.train_step(x=x, y=np.array([1, 2, 3, 4], np.int32))  # creates optimizer state in the persistent table
    save_artifact(prog, tmp_path / "m.dlc", {"N": 4})
    tensors, _ = read(tmp_path / "m.dlc")
    assert sorted(tensors) == sorted(f"param/{n}" for n in prog.params)
    np.testing.assert_array_equal(dlc.load(tmp_path / "m.dlc")(x=x)["logits"], prog(x=x)["logits"])


def test_file_layout(saved: tuple[dlc.Program, Path]) -> None:
    prog, path = saved
    tensors, meta = read(path)
    assert meta["format"] == "dlc-artifact" and meta["version"] == "1"
    assert sorted(tensors) == sorted([*(f"param/{n}" for n in prog.params), "const/0"])
    for name, value in prog.params.items():
        np.testing.assert_array_equal(tensors[f"param/{name}"], value)
    plan = json.loads(meta["plan"])
    assert {"arena_bytes", "slots", "steps", "outputs", "num_inputs", "num_consts"} <= set(plan)
    assert json.loads(meta["persistent"]) == list(prog.params)
    assert json.loads(meta["inputs"])[0] == {"name": "x", "dtype": "f32", "shape": [5, 3]}
    assert set(json.loads(meta["memory"])) == {"arena_bytes", "naive_bytes", "lower_bound_bytes"}
    assert meta["source"] == INLINE and json.loads(meta["dims"]) == {"N": 5}


def test_loaded_program_owns_read_only_params(saved: tuple[dlc.Program, Path]) -> None:
    prog, path = saved
    art = dlc.load(path)
    batch = inline_inputs()
    before = art(**batch)["y"]
    prog.set_params({"h.dense.weight": np.zeros((3, 4), np.float32)})
    np.testing.assert_array_equal(art(**batch)["y"], before)
    with pytest.raises(ValueError):
        art.params["h.dense.weight"][0, 0] = 1.0


@pytest.mark.parametrize("inputs,pattern", [
    ({"q": 1}, r"unknown input 'q'"),
    ({"x": np.zeros((5, 3), np.float32)}, r"missing input 'k' \(i32\[5, 3\]\)"),
    ({"x": np.zeros((5, 3)), "k": np.zeros((5, 3), np.int32)}, r"input 'x': expected dtype f32 .* got float64"),
    ({"x": np.zeros((5, 3), np.float32), "k": np.zeros(15, np.int32)}, r"input 'k': expected rank 2"),
    ({"x": np.zeros((4, 3), np.float32), "k": np.zeros((5, 3), np.int32)},
     r"input 'x': expected shape \[5, 3\] .* got \[4, 3\]; the artifact was compiled for N=5"),
])
def test_input_errors(saved: tuple[dlc.Program, Path], inputs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        dlc.load(saved[1])(**inputs)


def test_unbound_dimension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="N"):
        save_artifact(dlc.compile(source=INLINE), tmp_path / "m.dlc")
    assert list(tmp_path.iterdir()) == []


def test_write_is_atomic(saved: tuple[dlc.Program, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    prog, path = saved
    original = path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        save_artifact(prog, path, {"N": 7})
    assert path.read_bytes() == original
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# ---- damaged files ----

@pytest.mark.parametrize("damage", [
    lambda data: data[: len(data) // 2],
    lambda data: data[:-1],
    lambda data: b"",
    lambda data: b"\x00" * 64,
    lambda data: os.urandom(4096),
    lambda data: b"PK\x03\x04 not safetensors at all",
])
def test_truncated_or_garbage(saved: tuple[dlc.Program, Path], damage: Callable[[bytes], bytes]) -> None:
    path = saved[1]
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(dlc.CheckpointError, match=str(path)):
        load_artifact(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(dlc.CheckpointError, match="no such file"):
        dlc.load(tmp_path / "nope.dlc")


def test_not_an_artifact(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    path.write_bytes(save({"w": np.zeros(3, np.float32)}))
    with pytest.raises(dlc.CheckpointError, match="not a dlc artifact"):
        load_artifact(path)


def test_dtype_numpy_lacks(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                         "__metadata__": {"format": "dlc-artifact"}}).encode()
    path = tmp_path / "bf16.dlc"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    with pytest.raises(dlc.CheckpointError, match="not a readable safetensors file"):
        load_artifact(path)


def test_flipped_data_byte_fails_checksum(saved: tuple[dlc.Program, Path]) -> None:
    path = saved[1]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(dlc.CheckpointError, match="checksum mismatch"):
        load_artifact(path)


def _set(key: str, value: str) -> Callable[[dict[str, np.ndarray], dict[str, str]], None]:
    return lambda tensors, meta: meta.__setitem__(key, value)


def _set_slot(index: int, field: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(plan: dict[str, Any]) -> None:
        plan["slots"][index][field] = value
    return change


def _first(region: int) -> Callable[[dict[str, Any]], int]:
    return lambda plan: next(i for i, s in enumerate(plan["slots"]) if s[0] == region)


@pytest.mark.parametrize("edit,pattern", [
    (_set("version", "2"), "version '2' is not supported"),
    (_set("plan", "{not json"), "'plan' entry is not valid JSON"),
    (_set("plan", "[" * 100_000), "'plan' entry is nested too deeply"),
    (lambda t, m: m.pop("persistent"), "no 'persistent' entry"),
    (lambda t, m: t.pop("param/h.dense.bias"), "tensor 'param/h.dense.bias' is missing"),
    (lambda t, m: t.__setitem__("param/h.dense.weight", np.zeros((2, 2), np.float32)), "does not fit"),
    (lambda t, m: t.__setitem__("const/0", np.zeros((), np.int8)), "unsupported dtype"),
    (lambda t, m: t.__setitem__("extra", np.zeros(1, np.float32)), "unexpected tensors in the file: extra"),
    (edit_plan(lambda p: p.__setitem__("arena_bytes", 8)), "does not fit its storage"),
    (edit_plan(lambda p: p.__setitem__("num_inputs", 1)), "the plan takes 1 inputs but 2 are declared"),
    (edit_plan(lambda p: p.__setitem__("outputs", [9999])), "output slot must be an integer in"),
    (edit_plan(lambda p: p["steps"][0][2].append(-1)), "step 0 input slot"),
    (edit_plan(lambda p: p["steps"][0].__setitem__(0, "no_such_kernel")), "the plan cannot be built"),
    (edit_plan(lambda p: p["slots"].__setitem__(0, [7, 0, 0, [1]])), "slot 0 region"),
    (edit_plan(lambda p: p["slots"][0].__setitem__(2, 99)), "slot 0 dtype"),
    (edit_plan(lambda p: p["slots"][0].__setitem__(3, [2 ** 40, 2 ** 40])), "impossible shape"),
    (edit_plan(lambda p: _set_slot(_first(1)(p), 1, 50)(p)), "does not fit its storage (persistent 50"),
    (edit_plan(lambda p: _set_slot(_first(1)(p), 3, [100, 100])(p)), "does not fit its storage"),
    (edit_plan(lambda p: _set_slot(_first(3)(p), 3, [1000])(p)), "does not fit its storage (const 0"),
    (edit_plan(lambda p: _set_slot(_first(2)(p), 1, 2)(p)), "does not fit its storage (input 2"),
    (edit_plan(lambda p: _set_slot(_first(2)(p), 2, 1)(p)), "does not fit its storage"),
    (edit_plan(lambda p: _set_slot(p["outputs"][0], 3, [5, 2, 2])(p)), "output 'y' is declared"),
])
def test_hand_edited_file_is_rejected(saved: tuple[dlc.Program, Path], edit: Any, pattern: str) -> None:
    path = saved[1]
    rewrite(path, edit)
    with pytest.raises(dlc.CheckpointError) as info:
        load_artifact(path)
    assert pattern in str(info.value)
    assert str(info.value).startswith(str(path))
