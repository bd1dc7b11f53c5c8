"""Reduced-precision inference, the plumbing (dlc/precision.py, passes/precision.py, lowering's kernel choice) and
bf16 at the model level: which kernels run, what stays f32, training in f32, per-layer overrides, artifacts that
store bf16 weights, the command line and imported ONNX models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save

import dlc
from dlc.artifact import _checksum, save_artifact
from dlc.errors import CheckpointError
from dlc.precision import bf16_bits, round_bf16

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def kernels(program: object, dims: dict[str, int]) -> list[str]:
    """The inference plan's kernels, of a Program or a LoadedProgram."""
    model = program.model  # type: ignore[attr-defined]
    return [s.kernel for s in model.inference_plan(dims, training=False).steps]


def inputs_for(program: dlc.Program, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in program.model.used_inputs():
        spec = program.inputs[name]
        shape = [n if isinstance(d, str) else d for d in spec.shape]
        out[name] = (rng.standard_normal(shape).astype(np.float32) if spec.dtype == "f32"
                     else rng.integers(0, 10, shape).astype(np.int32))
    return out


def test_a_dense_layer_is_the_bf16_reference() -> None:
    """y = x @ W + b with x and W rounded to bf16 and f32 sums: within K * 2^-24 * sum |x~| |W~| of the exact
    product of the rounded operands (docs/precision.md)."""
    program = dlc.compile(source="input x: f32[N, 300]\noutput y = dense(x, 70)\n", precision="bf16")
    x = np.random.default_rng(1).standard_normal((9, 300)).astype(np.float32)
    y = program(x=x)["y"]
    w, b = program.params["y.weight"], program.params["y.bias"]
    xr, wr = round_bf16(x).astype(np.float64), round_bf16(w).astype(np.float64)
    bound = 300 * 2.0 ** -24 * (np.abs(xr) @ np.abs(wr)) + 2.0 ** -23 * np.abs(xr @ wr + b)
    assert np.all(np.abs(y - (xr @ wr + b)) <= bound)
    assert kernels(program, {"N": 9}) == ["matmul_bf16"]


@pytest.mark.parametrize("model", ["mlp", "gelu_mlp", "lenet", "transformer", "resnet8", "lstm"])
def test_bundled_models_in_bf16_stay_near_f32(model: str) -> None:
    """The documented model-level bound: outputs within 2% of the largest f32 output (measured: at most 0.7%)."""
    f32 = dlc.compile(MODELS / f"{model}.dlm")
    bf16 = dlc.compile(MODELS / f"{model}.dlm", precision="bf16")
    x = inputs_for(f32, 4)
    a, b = f32(**x), bf16(**x)
    for name in a:
        assert np.max(np.abs(a[name] - b[name])) <= 0.02 * np.max(np.abs(a[name])), name
    names = kernels(bf16, {k: 4 for k in ("N",)})
    assert any(k.endswith("_bf16") for k in names)
    # Elementwise, softmax, layer norm, pooling and activation-by-activation products stay f32.
    assert not any(k.endswith("_bf16") and not k.startswith(("matmul", "conv2d")) for k in names)


def test_attention_products_of_activations_stay_f32() -> None:
    program = dlc.compile(MODELS / "transformer.dlm", precision="bf16")
    names = kernels(program, {"N": 2})
    assert names.count("matmul") == 2 and names.count("matmul_bf16") == 7  # q k^T and p v; the 7 weights


def test_precision_is_checked() -> None:
    with pytest.raises(ValueError, match="precision must be one of 'f32', 'bf16', 'int8', got 'fp8'"):
        dlc.compile(MODELS / "mlp.dlm", precision="fp8")
    with pytest.raises(ValueError, match="dtype='f64'"):
        dlc.compile(MODELS / "mlp.dlm", precision="bf16", dtype="f64")
    assert dlc.compile(MODELS / "mlp.dlm").precision == "f32"


def test_layers_kept_in_f32_and_switching_back() -> None:
    program = dlc.compile(MODELS / "mlp.dlm", precision="bf16")
    x = inputs_for(program, 3)
    program.set_precision("bf16", keep_f32=["logits"])
    assert kernels(program, {"N": 3}) == ["matmul_bf16", "matmul_bf16", "matmul"]
    program.set_precision("f32")
    reference = dlc.compile(MODELS / "mlp.dlm")
    np.testing.assert_array_equal(program(**x)["logits"], reference(**x)["logits"])


def test_training_runs_in_f32_and_inference_sees_the_trained_weights() -> None:
    program = dlc.compile(MODELS / "digits_mlp.dlm", precision="bf16")
    twin = dlc.compile(MODELS / "digits_mlp.dlm")
    rng = np.random.default_rng(0)
    batch = {"x": rng.random((32, 64), np.float32), "y": rng.integers(0, 10, 32).astype(np.int32)}
    before = program(x=batch["x"])["logits"].copy()
    for p in (program, twin):
        p.train_step(**batch)
    for name, value in twin.params.items():  # the same f32 step, bit for bit
        np.testing.assert_array_equal(program.params[name], value)
    assert not any(s.kernel.endswith("_bf16") for s in program.trainer.training_plan("step", {"N": 32})[0].steps)
    after = program(x=batch["x"])["logits"]
    assert not np.array_equal(after, before)
    assert np.max(np.abs(after - twin(x=batch["x"])["logits"])) <= 0.02 * np.max(np.abs(after))


def test_artifact_stores_bf16_weights_and_loads_them_exactly(tmp_path: Path) -> None:
    program = dlc.compile(MODELS / "lenet.dlm", precision="bf16")
    program.set_precision("bf16", keep_f32=["c1"])
    x = inputs_for(program, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_artifact(program, tmp_path / "m.dlc")
        f32 = dlc.compile(MODELS / "lenet.dlm")
        save_artifact(f32, tmp_path / "f.dlc")
        loaded = dlc.load(tmp_path / "m.dlc")
    with safe_open(str(tmp_path / "m.dlc"), framework="np") as f:
        meta = f.metadata()
        assert f.get_tensor("param/c2.weight").dtype == np.uint16  # bf16 bit patterns
        assert f.get_tensor("param/c1.weight").dtype == np.float32  # kept in f32
    assert json.loads(meta["stored"]) == {n: "bf16" for n in ("c2.weight", "f3.weight", "f4.weight", "logits.weight")}
    assert (tmp_path / "m.dlc").stat().st_size < 0.55 * (tmp_path / "f.dlc").stat().st_size
    assert loaded.precision == "bf16" and kernels(loaded, {"N": 2})[0] == "conv2d"
    np.testing.assert_array_equal(loaded(**x)["logits"], program(**x)["logits"])
    np.testing.assert_array_equal(loaded.params["c2.weight"], round_bf16(program.params["c2.weight"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        as_f32 = dlc.load(tmp_path / "f.dlc", precision="bf16")
    assert as_f32.precision == "bf16" and "matmul_bf16" in kernels(as_f32, {"N": 2})


def _rewrite(src: Path, dst: Path, meta_changes: dict[str, str], tensors: dict[str, np.ndarray]) -> None:
    with safe_open(str(src), framework="np") as f:
        meta = f.metadata()
        stored = {k: f.get_tensor(k) for k in f.keys()}
    meta.update(meta_changes)
    stored.update(tensors)
    meta["checksum"] = _checksum(meta, stored)  # a hand-edited file with a valid checksum
    dst.write_bytes(save(stored, metadata=meta))


@pytest.mark.parametrize("change,message", [
    ({"meta": {"precision": "fp4"}}, "precision must be one of"),
    ({"meta": {"stored": '{"h1.weight": "int4"}'}}, "'stored' must map"),
    ({"meta": {"stored": '{"nope.weight": "bf16"}'}}, "not a parameter"),
    ({"meta": {"keep_f32": '"h1"'}}, "'keep_f32' must be a list"),
    ({"tensors": {"param/h1.weight": np.zeros((784, 511), np.uint16)}}, "needs bf16 bits"),
    ({"tensors": {"param/h1.weight": np.zeros((784, 512), np.float32)}}, "needs bf16 bits"),
])
def test_a_bad_precision_entry_is_refused(tmp_path: Path, change: dict, message: str) -> None:
    program = dlc.compile(MODELS / "mlp.dlm", precision="bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_artifact(program, tmp_path / "m.dlc")
    _rewrite(tmp_path / "m.dlc", tmp_path / "bad.dlc", change.get("meta", {}), change.get("tensors", {}))
    with pytest.raises(CheckpointError, match=message):
        dlc.load(tmp_path / "bad.dlc")


def test_bf16_bits_round_like_the_kernels() -> None:
    values = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, 65504.0], np.float32)
    assert list(bf16_bits(values)) == [0x3F80, 0x3F82, 0xC020, 0x4780]


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlc.cli import main
    assert main(["compile", str(MODELS / "mlp.dlm"), "-D", "N=2", "--precision", "bf16", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["precision"] == "bf16" and [k["kernel"] for k in summary["kernels"]] == ["matmul_bf16"] * 3
    assert main(["bench", str(MODELS / "mlp.dlm"), "-D", "N=2", "--precision", "bf16", "--repeat", "2",
                 "--warmup", "1", "--json"]) == 0
    assert "matmul_bf16" in capsys.readouterr().out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["compile", str(MODELS / "mlp.dlm"), "--precision", "bf16", "--random-init",
                     "-o", str(tmp_path / "m.dlc")]) == 0
    capsys.readouterr()
    np.save(tmp_path / "x.npy", np.ones((2, 784), np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for precision in ([], ["--precision", "f32"]):
            assert main(["run", str(tmp_path / "m.dlc"), "--input", f"x={tmp_path / 'x.npy'}",
                         "-o", str(tmp_path / "y.npz"), *precision]) == 0


def test_imported_onnx_models_run_in_bf16(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from dlc.onnx import from_onnx, to_onnx
    program = dlc.compile(MODELS / "mlp.dlm")
    to_onnx(program, tmp_path / "mlp.onnx")
    imported = from_onnx(tmp_path / "mlp.onnx", precision="bf16")
    assert imported.precision == "bf16"
    x = inputs_for(program, 3)
    out = next(iter(imported(**x).values()))
    ref = program(**x)["logits"]
    assert np.max(np.abs(out - ref)) <= 0.02 * np.max(np.abs(ref))
    assert any(s.endswith("_bf16") for s in kernels(imported, {"N": 3}))


def test_version_3_artifacts_load_in_f32(tmp_path: Path) -> None:
    program = dlc.compile(MODELS / "mlp.dlm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        save_artifact(program, tmp_path / "m.dlc")
    with safe_open(str(tmp_path / "m.dlc"), framework="np") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in ("precision", "keep_f32", "stored")}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["version"] = "3"
    meta["checksum"] = _checksum(meta, tensors)
    (tmp_path / "v3.dlc").write_bytes(save(tensors, metadata=meta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert dlc.load(tmp_path / "v3.dlc").precision == "f32"
