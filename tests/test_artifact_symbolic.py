"""Issue 10, item 7: artifacts keep the dimensions left unbound at save time (any batch size, one plan per
binding, bounded like a Program's), keep the bound ones fixed, run with `dlc run model.dlc`, and convert NumPy's
default dtypes as a Program does (item 3), or refuse them under strict_dtypes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

import dlc
from dlc import cli
from dlc.artifact import _checksum, save_artifact
from dlc.plan_cache import DEFAULT_PLANS

# N is the batch, T a sequence length: a model with two symbolic dimensions and an integer input.
MODEL = """input x: f32[N, T, 3]
input k: i32[N, T]
m = cast(k > 1, "f32")
h = dense(x, 4) |> relu
output y = sum(h, axis=2) * m, z = dense(h, 2)
"""
RNG = np.random.default_rng(3)


def batch(n: int, t: int) -> dict[str, np.ndarray]:
    return {"x": RNG.standard_normal((n, t, 3)).astype(np.float32), "k": RNG.integers(0, 3, (n, t), dtype=np.int32)}


def saved(tmp_path: Path, dims: dict[str, int] | None = None) -> tuple[dlc.Program, Path]:
    program = dlc.compile(source=MODEL, seed=4)
    path = tmp_path / "m.dlc"
    save_artifact(program, path, dims)
    return program, path


def test_unbound_dimensions_stay_symbolic(tmp_path: Path) -> None:
    program, path = saved(tmp_path)
    with safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    assert meta["version"] == "4" and json.loads(meta["dims"]) == {} and json.loads(meta["memory"]) is None
    assert json.loads(meta["inputs"])[0] == {"name": "x", "dtype": "f32", "shape": ["N", "T", 3]}
    art = dlc.load(path)
    assert art.unbound == ["N", "T"] and art.inputs["k"] == dlc.TensorSpec("i32", ("N", "T"))
    with pytest.raises(ValueError, match="depends on N, T, which each call binds"):
        art.memory
    for n, t in [(1, 1), (5, 2), (3, 7)]:
        b = batch(n, t)
        got, expected = art(**b), program(**b)
        assert got["z"].shape == (n, t, 2)
        for name in expected:
            np.testing.assert_array_equal(got[name], expected[name])
    assert art.memory == program.compile_plan({"N": 3, "T": 7}, training=False).memory_report()


def test_plans_per_binding_are_bounded(tmp_path: Path) -> None:
    art = dlc.load(saved(tmp_path)[1])
    for n in range(1, DEFAULT_PLANS + 5):
        art(**batch(n, 2))
    assert len(art.model._plans) <= DEFAULT_PLANS


def test_dimensions_bound_at_save_time_stay_bound(tmp_path: Path) -> None:
    program, path = saved(tmp_path, {"T": 4})
    art = dlc.load(path)
    assert art.unbound == ["N"] and art.dims == {"T": 4} and art.inputs["x"].shape == ("N", 4, 3)
    b = batch(6, 4)
    np.testing.assert_array_equal(art(**b)["z"], program(**b)["z"])
    with pytest.raises(ValueError, match=r"input 'x': .* got \[6, 5, 3\]; dimension 1 is T, bound to 4"):
        art(**batch(6, 5))
    with pytest.raises(ValueError, match=r"input 'k': dimension 0 is N, bound to 6 by input 'x'"):
        art(x=b["x"], k=b["k"][:5])


def test_a_dimension_no_input_gives_must_be_bound_to_save(tmp_path: Path) -> None:
    """T sizes an output but only an input the outputs do not read has it: no call could bind it."""
    program = dlc.compile(source="input x: f32[N, 3]\ninput t: f32[T]\noutput y = x * 2, r = normal([T, 2])\n")
    with pytest.raises(ValueError, match=r"symbolic dimension T is unbound; bind with -D T=<size>"):
        save_artifact(program, tmp_path / "m.dlc")
    assert not (tmp_path / "m.dlc").exists()
    save_artifact(program, tmp_path / "m.dlc", {"T": 3})
    assert dlc.load(tmp_path / "m.dlc")(x=np.ones((2, 3), np.float32))["r"].shape == (3, 2)
    with pytest.raises(ValueError, match="T was bound to 3 at compile time; it cannot be saved as 4"):
        save_artifact(dlc.compile(source=MODEL, dims={"T": 3}), tmp_path / "m.dlc", {"T": 4})


def test_predict_runs_a_loaded_artifact_in_batches(tmp_path: Path) -> None:
    program, path = saved(tmp_path)
    data = batch(23, 3)
    got = dlc.load(path).predict(data, batch_size=5)
    expected = program.predict(data)
    assert got["y"].shape == (23, 3)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)


def test_numpy_defaults_are_converted_unless_strict(tmp_path: Path) -> None:
    program, path = saved(tmp_path)
    b = batch(4, 2)
    loose = {"x": b["x"].astype(np.float64), "k": b["k"].astype(np.int64)}  # rng.random, rng.integers
    np.testing.assert_array_equal(dlc.load(path)(**loose)["z"], program(**b)["z"])
    np.testing.assert_array_equal(dlc.load(path)(x=b["x"].astype(np.float16), k=b["k"])["y"].shape, (4, 2))
    with pytest.raises(ValueError, match=r"input 'k': values from 4294967296 to 4294967296 do not fit i32"):
        dlc.load(path)(x=b["x"], k=np.full((4, 2), 2 ** 32))
    with pytest.raises(ValueError, match=r"input 'x': expected dtype f32 .*strict_dtypes=True refuses"):
        dlc.load(path, strict_dtypes=True)(**loose)


def test_a_symbol_that_is_not_a_name_is_rejected(tmp_path: Path) -> None:
    """Shapes in the file are compared with what the compiler gives, never used; text that is not a dimension
    name is refused before that."""
    _, path = saved(tmp_path)
    with safe_open(str(path), framework="np") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    for shape, pattern in [('["N", "T; rm -rf", 3]', "must be an integer"), ('["M", "T", 3]', "differ from")]:
        edited = {**meta, "inputs": meta["inputs"].replace('["N", "T", 3]', shape)}
        edited["checksum"] = _checksum(edited, tensors)
        save_file(tensors, str(path), metadata=edited)
        with pytest.raises(dlc.CheckpointError, match=pattern):
            dlc.load(path)


def test_version_2_files_still_load(tmp_path: Path) -> None:
    program, path = saved(tmp_path, {"N": 2, "T": 3})
    with safe_open(str(path), framework="np") as f:
        meta, tensors = dict(f.metadata()), {k: f.get_tensor(k) for k in f.keys()}
    meta["version"] = "2"
    meta["checksum"] = _checksum(meta, tensors)
    save_file(tensors, str(path), metadata=meta)
    b = batch(2, 3)
    np.testing.assert_array_equal(dlc.load(path)(**b)["z"], program(**b)["z"])


# ---- the command line ----

def test_dlc_compile_without_dims_writes_an_artifact_for_any_batch(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    code = cli.main(["compile", str(model), "-o", str(tmp_path / "m.dlc"), "--random-init"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "N, T left unbound: the artifact binds them from its inputs at each call" in out
    assert cli.main(["compile", str(model), "-o", str(tmp_path / "m.dlc"), "--json", "--random-init"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["unbound"] == ["N", "T"] and summary["plan"] is None and summary["params"] == 3 * 4 + 4 + 4 * 2 + 2
    program = dlc.compile(model)
    for n in (2, 9):
        b = batch(n, 3)
        np.save(tmp_path / "x.npy", b["x"].astype(np.float64))  # np.save keeps NumPy's default float64
        np.save(tmp_path / "k.npy", b["k"].astype(np.int64))
        code = cli.main(["run", str(tmp_path / "m.dlc"), "--input", f"x={tmp_path / 'x.npy'}",
                         "--input", f"k={tmp_path / 'k.npy'}", "-o", str(tmp_path / "out.npz")])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert f"z: f32[{n}, 3, 2]" in out
        with np.load(tmp_path / "out.npz") as saved_out:
            np.testing.assert_array_equal(saved_out["z"], program(**b)["z"])


def test_dlc_run_names_the_bound_dimension_a_wrong_input_misses(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "m.dlm"
    model.write_text(MODEL)
    assert cli.main(["compile", str(model), "-D", "T=3", "-o", str(tmp_path / "m.dlc"), "--random-init"]) == 0
    b = batch(2, 4)
    np.save(tmp_path / "x.npy", b["x"])
    np.save(tmp_path / "k.npy", b["k"])
    capsys.readouterr()
    code = cli.main(["run", str(tmp_path / "m.dlc"), "--input", f"x={tmp_path / 'x.npy'}",
                     "--input", f"k={tmp_path / 'k.npy'}"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "dlc: error: input 'x': expected shape [2, 3, 3]" in err and "dimension 1 is T, bound to 3" in err
