"""int8 inference at the model level: dense and convolution layers against a NumPy emulation of the same
quantized arithmetic (exact), static calibration (deterministic), dynamic quantization, every kernel path,
switching precision, and the bundled models near f32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_qgemm import PATHS, ref_quantize, ref_weights

import dlc
from dlc import _core
from dlc.calibration import calibrate
from dlc.int8 import activation_params

MODELS = Path(__file__).resolve().parent.parent / "models"


def kernels(program: dlc.Program, dims: dict[str, int]) -> list[str]:
    return [s.kernel for s in program.model.inference_plan(dims, training=False).steps]


def dynamic_params(x: np.ndarray) -> tuple[float, int]:
    return activation_params(float(x.min()), float(x.max()))


def ref_dense(x: np.ndarray, w: np.ndarray, b: np.ndarray, scale: float, zp: int) -> np.ndarray:
    q, ws = ref_weights(w)
    acc = (ref_quantize(x, scale, zp).astype(np.int64) - zp) @ q.T.astype(np.int64)
    return np.maximum(acc.astype(np.float32) * (np.float32(scale) * ws) + b, np.float32(0))


@pytest.mark.parametrize("path", PATHS)
def test_dense_layer_is_the_int8_reference(path: str) -> None:
    program = dlc.compile(source="input x: f32[N, 300]\noutput y = dense(x, 70) |> relu\n", precision="int8")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((9, 300)).astype(np.float32)
    w, b = program.params["y.weight"], program.params["y.bias"]
    _core.qgemm_force_isa(path)
    try:
        np.testing.assert_array_equal(program(x=x)["y"], ref_dense(x, w, b, *dynamic_params(x)))
        calibration = rng.standard_normal((40, 300)).astype(np.float32) * 0.5
        program.set_precision("int8", calibration={"x": calibration})
        static = dynamic_params(calibration)
        assert program.model.int8_scales == {"y": static}
        np.testing.assert_array_equal(program(x=x)["y"], ref_dense(x, w, b, *static))
    finally:
        _core.qgemm_force_isa("")
    assert kernels(program, {"N": 9}) == ["matmul_int8"]


def im2row(xq: np.ndarray, k: int, stride: int, pad: int, zp: int) -> np.ndarray:
    n, c, h, w = xq.shape
    padded = np.full((n, c, h + 2 * pad, w + 2 * pad), zp, np.int64)
    padded[:, :, pad:pad + h, pad:pad + w] = xq
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    rows = np.empty((n, ho * wo, c * k * k), np.int64)
    for i in range(ho):
        for j in range(wo):
            rows[:, i * wo + j] = padded[:, :, i * stride:i * stride + k, j * stride:j * stride + k].reshape(n, -1)
    return rows


def test_convolution_is_the_int8_reference() -> None:
    """Padding holds the zero point (a real 0), and the outputs land channels-first."""
    src = "input x: f32[N, 3, 9, 9]\noutput y = conv2d(x, 5, kernel_size=3, padding=1, stride=2)\n"
    rng = np.random.default_rng(2)
    calibration = rng.standard_normal((6, 3, 9, 9)).astype(np.float32) + 1.0
    program = dlc.compile(source=src, precision="int8", calibration={"x": calibration})
    scale, zp = program.model.int8_scales["y"]
    assert zp > 0
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w, b = program.params["y.weight"], program.params["y.bias"]
    q, ws = ref_weights(w.reshape(5, -1).T)
    acc = (im2row(ref_quantize(x, scale, zp), 3, 2, 1, zp) - zp) @ q.T.astype(np.int64)  # [N, P, O]
    want = acc.astype(np.float32) * (np.float32(scale) * ws) + b
    np.testing.assert_array_equal(program(x=x)["y"], want.transpose(0, 2, 1).reshape(2, 5, 5, 5))
    assert kernels(program, {"N": 2})[0] == "conv2d_int8"


def test_calibration_is_deterministic_and_min_max() -> None:
    program = dlc.compile(MODELS / "lenet.dlm")
    x = np.random.default_rng(3).standard_normal((37, 1, 28, 28)).astype(np.float32)
    first = calibrate(program.model, {"x": x}, batch_size=256)
    assert calibrate(program.model, {"x": x}, batch_size=5) == first
    assert calibrate(dlc.compile(MODELS / "lenet.dlm").model, {"x": x[::-1].copy()}) == first
    assert set(first) == {"c1", "c2", "f3", "f4", "logits"}
    assert first["c1"] == dynamic_params(x)
    with pytest.raises(ValueError, match="no array for input 'x'"):
        calibrate(program.model, {"images": x})
    with pytest.raises(ValueError, match="calibration data sets int8"):
        program.set_precision("bf16", calibration={"x": x})


def test_switching_precision_after_calls_takes_effect() -> None:
    """A plan cached for the call's shapes must not outlive a precision change (a regression: the f32 call
    after set_precision("f32") ran the int8 plan)."""
    program, reference = dlc.compile(MODELS / "mlp.dlm", precision="int8"), dlc.compile(MODELS / "mlp.dlm")
    x = np.random.default_rng(4).random((5, 784)).astype(np.float32)
    int8 = program(x=x)["logits"]
    program.set_precision("f32")
    np.testing.assert_array_equal(program(x=x)["logits"], reference(x=x)["logits"])
    program.set_precision("int8")
    np.testing.assert_array_equal(program(x=x)["logits"], int8)


@pytest.mark.parametrize("model", ["mlp", "gelu_mlp", "lenet", "resnet8", "transformer"])
def test_bundled_models_in_int8_stay_near_f32(model: str) -> None:
    program, reference = dlc.compile(MODELS / f"{model}.dlm", precision="int8"), dlc.compile(MODELS / f"{model}.dlm")
    rng = np.random.default_rng(5)
    x = {}
    for name in program.model.used_inputs():
        spec = program.inputs[name]
        shape = [4 if isinstance(d, str) else d for d in spec.shape]
        x[name] = (rng.standard_normal(shape).astype(np.float32) if spec.dtype == "f32"
                   else rng.integers(0, 10, shape).astype(np.int32))
    steps = kernels(program, {d: 4 for s in program.inputs.values() for d in s.shape if isinstance(d, str)})
    assert any(k.endswith("_int8") for k in steps)
    for name, want in reference(**x).items():
        got = program(**x)[name]
        assert np.abs(got - want).max() <= 0.1 * np.abs(want).max() + 1e-6, name


@pytest.mark.filterwarnings("ignore::dlc.errors.UntrainedWarning")
def test_artifact_stores_int8_weights_and_scales(tmp_path: Path) -> None:
    """Saved int8 with calibration: the file holds int8 weights, their scales and the activation scales, and the
    loaded program computes the saved one's bits without calibration data."""
    from safetensors import safe_open

    from dlc.artifact import save_artifact
    program = dlc.compile(MODELS / "lenet.dlm")
    x = np.random.default_rng(6).standard_normal((8, 1, 28, 28)).astype(np.float32)
    program.set_precision("int8", calibration={"x": x})
    save_artifact(program, tmp_path / "int8.dlc")
    save_artifact(dlc.compile(MODELS / "lenet.dlm"), tmp_path / "f32.dlc")
    with safe_open(str(tmp_path / "int8.dlc"), framework="np") as f:
        assert f.get_tensor("param/f3.weight").dtype == np.int8
        assert f.get_tensor("param/c1.weight").shape == (6, 1, 5, 5)
        assert f.get_tensor("scale/c1.weight").shape == (6,) and f.get_tensor("scale/f3.weight").shape == (120,)
    assert (tmp_path / "int8.dlc").stat().st_size < 0.35 * (tmp_path / "f32.dlc").stat().st_size
    loaded = dlc.load(tmp_path / "int8.dlc")
    assert loaded.precision == "int8" and loaded.model.int8_scales == program.model.int8_scales
    np.testing.assert_array_equal(loaded(x=x)["logits"], program(x=x)["logits"])


@pytest.mark.filterwarnings("ignore::dlc.errors.UntrainedWarning")
def test_a_bad_int8_artifact_is_refused(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.numpy import save

    from dlc.artifact import _checksum, save_artifact
    from dlc.errors import CheckpointError
    program = dlc.compile(MODELS / "mlp.dlm", precision="int8")
    save_artifact(program, tmp_path / "a.dlc")
    with safe_open(str(tmp_path / "a.dlc"), framework="np") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for change, message in [({"scale/h1.weight": np.zeros(512, np.float32)}, "positive finite"),
                            ({"scale/h1.weight": np.ones(7, np.float32)}, "512 positive finite"),
                            ({"param/h1.weight": np.zeros((3, 3), np.int8)}, "needs int8\\[784, 512\\]")]:
        bad = {**tensors, **change}
        meta2 = {**meta, "checksum": _checksum({k: v for k, v in meta.items() if k != "checksum"}, bad)}
        (tmp_path / "b.dlc").write_bytes(save(bad, metadata=meta2))
        with pytest.raises(CheckpointError, match=message):
            dlc.load(tmp_path / "b.dlc")
    meta3 = {**meta, "int8_scales": '{"h1": [0.0, 3]}'}
    meta3["checksum"] = _checksum({k: v for k, v in meta3.items() if k != "checksum"}, tensors)
    (tmp_path / "c.dlc").write_bytes(save(tensors, metadata=meta3))
    with pytest.raises(CheckpointError, match="int8_scales"):
        dlc.load(tmp_path / "c.dlc")


@pytest.mark.filterwarnings("ignore::dlc.errors.UntrainedWarning")
def test_command_line_calibrates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlc.cli import main
    x = np.random.default_rng(7).random((20, 784)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    assert main(["compile", str(MODELS / "mlp.dlm"), "--precision", "int8", "--calibrate", str(tmp_path / "cal.npz"),
                 "--random-init", "-o", str(tmp_path / "m.dlc")]) == 0
    assert "calibrated 3 int8 layers on 20 samples" in capsys.readouterr().out
    loaded = dlc.load(tmp_path / "m.dlc")
    assert loaded.model.int8_scales == calibrate(dlc.compile(MODELS / "mlp.dlm").model, {"x": x})
    assert main(["compile", str(MODELS / "mlp.dlm"), "--calibrate", str(tmp_path / "cal.npz")]) != 0
    assert "give it with --precision int8" in capsys.readouterr().err


def test_qdq_models_import_as_int8(tmp_path: Path) -> None:
    """A QDQ model from onnxruntime's quantize_static: its weights come back as the same int8 values, its
    activation scales as the layers' static scales, and the result matches ONNX Runtime's."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from dlc.onnx import from_onnx, to_onnx
    rng = np.random.default_rng(8)
    to_onnx(dlc.compile(MODELS / "lenet.dlm"), tmp_path / "f32.onnx")
    samples = [{"x": rng.standard_normal((1, 1, 28, 28)).astype(np.float32)} for _ in range(8)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    quantize_static(str(tmp_path / "f32.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    program = from_onnx(tmp_path / "q.onnx", precision="int8")
    assert len(program.model.int8_scales) == 5 and all(0 <= z <= 255 for _, z in program.model.int8_scales.values())
    assert {k for k in kernels(program, {"N": 4}) if k.endswith("_int8")} == {"conv2d_int8", "matmul_int8"}
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    got = next(iter(program(**{next(iter(program.inputs)): x}).values()))
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()


def test_a_quantized_value_read_by_another_op_is_refused(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from dlc.onnx import from_onnx
    from dlc.onnx.loader import OnnxImportError
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("Cast", ["q"], ["y"], to=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.UINT8, [], [3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    with pytest.raises(OnnxImportError, match="read by other ops than DequantizeLinear"):
        from_onnx(tmp_path / "m.onnx")


@pytest.mark.parametrize("model,calibrated", [("lenet", True), ("mlp", False)])
def test_int8_programs_export_as_qdq_that_onnx_runtime_matches(tmp_path: Path, model: str, calibrated: bool) -> None:
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from dlc.onnx import to_onnx
    rng = np.random.default_rng(9)
    f32 = dlc.compile(MODELS / f"{model}.dlm")
    shape = [3 if isinstance(d, str) else d for d in f32.inputs["x"].shape]
    program = dlc.compile(MODELS / f"{model}.dlm", precision="int8",
                          calibration={"x": rng.standard_normal(shape).astype(np.float32)} if calibrated else None)
    to_onnx(program, tmp_path / "q.onnx")
    ops = {n.op_type for n in onnx.load(tmp_path / "q.onnx").graph.node}
    assert ("QuantizeLinear" if calibrated else "DynamicQuantizeLinear") in ops and "DequantizeLinear" in ops
    x = rng.standard_normal(shape).astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    want = session.run(None, {session.get_inputs()[0].name: x})[0]
    got = program(x=x)["logits"]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.abs(got - f32(x=x)["logits"]).max() > 1e-4 * np.abs(want).max()  # it is int8, not f32
