"""Compiled artifacts: bit-exact round trips, the documented file layout, atomic writes, and a clean
CheckpointError for every kind of damaged or hand-edited file (validated before the C++ plan is built)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
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
    assert art.memory == prog.compile_plan({"N": 5}).memory_report()
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
    assert meta["format"] == "dlc-artifact" and meta["version"] == "4"
    assert sorted(tensors) == sorted(f"param/{n}" for n in prog.params)  # no plan, no constants: rebuilt on load
    for name, value in prog.params.items():
        np.testing.assert_array_equal(tensors[f"param/{name}"], value)
    assert "plan" not in meta and json.loads(meta["files"]) == {}
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
    ({"x": np.zeros((5, 3), np.int64), "k": np.zeros((5, 3), np.int32)}, r"input 'x': expected dtype f32 .* got int64"),
    ({"x": np.zeros((5, 3), np.float32), "k": np.full((5, 3), 2 ** 40)}, r"input 'k': values from .* do not fit i32"),
    ({"x": np.zeros((5, 3), np.float32), "k": np.zeros(15, np.int32)}, r"input 'k': expected rank 2"),
    ({"x": np.zeros((4, 3), np.float32), "k": np.zeros((5, 3), np.int32)},
     r"input 'x': expected shape \[5, 3\] .* got \[4, 3\]; dimension 0 is N, bound to 5 at compile time"),
])
def test_input_errors(saved: tuple[dlc.Program, Path], inputs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        dlc.load(saved[1])(**inputs)


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
    # In a fresh interpreter: importing onnx (another test file) registers bfloat16 with NumPy through
    # ml_dtypes, after which safetensors can read the tensor and this case is no longer the one tested.
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                         "__metadata__": {"format": "dlc-artifact"}}).encode()
    path = tmp_path / "bf16.dlc"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(4))
    code = ("import sys, dlc\n"
            "from dlc.artifact import load_artifact\n"
            "try:\n    load_artifact(sys.argv[1])\n"
            "except dlc.CheckpointError as e:\n    print(e)\n")
    run = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "not a readable safetensors file" in run.stdout


def test_flipped_data_byte_fails_checksum(saved: tuple[dlc.Program, Path]) -> None:
    path = saved[1]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's data
    path.write_bytes(bytes(data))
    with pytest.raises(dlc.CheckpointError, match="checksum mismatch"):
        load_artifact(path)


def _set(key: str, value: str) -> Callable[[dict[str, np.ndarray], dict[str, str]], None]:
    return lambda tensors, meta: meta.__setitem__(key, value)


@pytest.mark.parametrize("edit,pattern", [
    (_set("version", "5"), "version '5' is not supported"),
    (_set("inputs", "{not json"), "'inputs' entry is not valid JSON"),
    (_set("outputs", "[" * 100_000), "'outputs' entry is nested too deeply"),
    (lambda t, m: m.pop("persistent"), "no 'persistent' entry"),
    (lambda t, m: t.pop("param/h.dense.bias"), "tensor(s) missing: param/h.dense.bias"),
    (lambda t, m: t.__setitem__("param/h.dense.weight", np.zeros((2, 2), np.float32)),
     "'h.dense.weight' is stored as float32[2, 2] but the model needs float32[3, 4]"),
    (lambda t, m: t.__setitem__("param/h.dense.weight", np.zeros((3, 4), np.float64)), "stored as float64"),
    (lambda t, m: t.__setitem__("extra", np.zeros(1, np.float32)), "unexpected tensors in the file: extra"),
    (_set("persistent", '["h.dense.weight"]'), "are not the model's"),
    (_set("source", "input x: f32[N, 3]\noutput y = bogus(x)\n"), "the stored model does not compile"),
    (_set("source", INLINE.replace("dense(x * m, 4)", "dense(x * m, 5)")), "but the model needs float32[3, 5]"),
    (_set("dims", '{"N": 6}'), "differ from what the stored model compiles to"),
    (_set("dims", '{"N": -1}'), "dimension N must be an integer"),
    (_set("outputs", '[{"name": "y", "dtype": "f32", "shape": [5, 2, 2]}]'), "differ from what"),
    (_set("files", '{"a": 1}'), "'files' must map paths to texts"),
    (_set("source", 'import "lib.dlm"\n' + INLINE), "not among the stored files"),
    (_set("dtype", "f16"), "dtype must be f32 or f64"),
])
def test_hand_edited_file_is_rejected(saved: tuple[dlc.Program, Path], edit: Any, pattern: str) -> None:
    path = saved[1]
    rewrite(path, edit)
    with pytest.raises(dlc.CheckpointError) as info:
        load_artifact(path)
    assert pattern in str(info.value)
    assert str(info.value).startswith(str(path))


# ---- memory safety by construction (regressions: an edited, re-signed plan read past a bias and overwrote
# the caller's input) ----

def test_loading_rebuilds_the_plan_so_a_stored_plan_is_never_trusted(saved: tuple[dlc.Program, Path]) -> None:
    """A version-1 file (which stored its plan) with the plan edited to read past a tensor and to write an input
    loads by compiling its source: the edits are ignored and the outputs are the unedited model's."""
    prog, path = saved
    batch = inline_inputs()
    expected = prog(**batch)

    def as_version_1_with_hostile_plan(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
        meta["version"] = "1"
        meta["plan"] = json.dumps({"arena_bytes": 8, "num_inputs": 2, "num_consts": 1, "outputs": [0],
                                   "slots": [[2, 0, 0, [1 << 20]]], "steps": [["gemm", "x", [0], [0], [], []]]})
        tensors["const/0"] = np.zeros(1, np.float32)
        tensors["param/h.dense.bias"] = tensors["param/h.dense.bias"].copy()

    rewrite(path, as_version_1_with_hostile_plan)
    x_before = batch["x"].copy()
    batch["x"].setflags(write=False)
    got = dlc.load(path)(**batch)
    np.testing.assert_array_equal(batch["x"], x_before)
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])


def test_no_plan_may_write_an_input_or_a_constant() -> None:
    lowered = dlc.compile(source="input x: f32[2, 3]\noutput y = relu(x) * 2\n").compile_plan(training=False)
    recipe = lowered.recipe
    inputs = [i for i, slot in enumerate(recipe.slots) if slot[0] == 2]
    key, label, ins, outs, ints, floats = recipe.steps[0]
    recipe.steps[0] = (key, label, ins, [inputs[0]], ints, floats)
    with pytest.raises(ValueError, match="would write an input"):
        recipe.build()


def test_model_with_imports_loads_from_the_artifact_alone(tmp_path: Path) -> None:
    lib, main = tmp_path / "src" / "lib.dlm", tmp_path / "src" / "main.dlm"
    lib.parent.mkdir()
    lib.write_text("block twice(t) {\n  return dense(t, 3) * 2\n}\n")
    main.write_text('import "lib.dlm" as lib\ninput x: f32[2, 3]\noutput y = lib.twice(x)\n')
    prog = dlc.compile(main)
    save_artifact(prog, tmp_path / "m.dlc")
    lib.write_text("this file changed after saving\n")  # loading must not read it
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(dlc.load(tmp_path / "m.dlc")(x=x)["y"], prog(x=x)["y"])


def test_save_removes_temporary_files_a_killed_writer_left(saved: tuple[dlc.Program, Path]) -> None:
    prog, path = saved
    stale, fresh = path.parent / f".{path.name}.0123abcd.tmp", path.parent / f".{path.name}.4567ef01.tmp"
    stale.write_bytes(b"half a file")
    fresh.write_bytes(b"a concurrent writer's")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    save_artifact(prog, path, {"N": 5})
    assert not stale.exists() and fresh.exists()
