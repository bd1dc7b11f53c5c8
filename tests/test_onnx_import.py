"""ONNX import: the light ResNet-50 through `dlc import`/`dlc check`, layers recognized in the .dlm text,
symbolic shapes folded, every unsupported node reported at once, and ONNX's node conformance cases of every op
the importer claims to support."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.onnx import OnnxImportError, from_onnx
from dlc.onnx import conformance
from dlc.onnx.importer import import_model

# onnx is imported inside the tests, not at collection: importing it registers ml_dtypes' bfloat16 with
# NumPy, which other test modules rely on NumPy lacking.


def make_model(nodes, inputs, outputs, inits=(), opset=17) -> bytes:
    from onnx import helper
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def test_light_resnet50_imports_checks_and_matches_reference(tmp_path: Path, capsys) -> None:
    import onnx
    from onnx import numpy_helper
    LIGHT = conformance.data_folder() / "light"
    dlm = tmp_path / "resnet50.dlm"
    assert main(["import", str(LIGHT / "light_resnet50.onnx"), "-o", str(dlm)]) == 0
    text = dlm.read_text()
    assert "conv2d(" in text and "batch_norm(" in text and "dense(" in text
    assert main(["check", str(dlm)]) == 0
    assert "ok" in capsys.readouterr().out
    program = dlc.compile(dlm)
    program.load_checkpoint(str(dlm.with_suffix(".safetensors")))
    ref = numpy_helper.to_array(onnx.load_tensor(str(LIGHT / "light_resnet50_output_0.pb")))
    (name, spec), = program.inputs.items()
    out = next(iter(program(**{name: np.zeros(spec.shape, np.float32)}).values()))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


def test_dense_symbolic_batch_and_folded_shape_subgraph() -> None:
    """MatMul + Add becomes dense; Shape -> Gather -> Concat -> Reshape on a symbolic batch folds into
    reshape(x, [N, -1]); the batch stays symbolic."""
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(6, 2) / 10, "fc.weight")
    b = numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "fc.bias")
    idx = numpy_helper.from_array(np.array([0], np.int64), "zero")
    rest = numpy_helper.from_array(np.array([-1], np.int64), "minus_one")
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "minus_one"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("MatMul", ["flat", "fc.weight"], ["mm"]),
             helper.make_node("Add", ["mm", "fc.bias"], ["y"])]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])], [w, b, idx, rest])
    converted = import_model(model)
    assert "input x: f32[batch, 2, 3]" in converted.text
    assert "reshape(x, [batch, -1])" in converted.text
    assert 'dense(flat, 2, name="fc")' in converted.text
    assert set(converted.params) == {"fc.weight", "fc.bias"}
    program = from_onnx(model)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(program(x=x)["y"], x.reshape(5, 6) @ w_arr(w) + [0.5, -0.5], rtol=1e-5)


def w_arr(t) -> np.ndarray:
    from onnx import numpy_helper
    return numpy_helper.to_array(t)


def test_conv_batchnorm_become_layers() -> None:
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.ones(4, np.float32), "g"), numpy_helper.from_array(np.zeros(4, np.float32), "b"),
             numpy_helper.from_array(np.zeros(4, np.float32), "m"), numpy_helper.from_array(np.ones(4, np.float32), "v")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn1"),
             helper.make_node("Relu", ["bn"], ["y"])]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], inits)
    converted = import_model(model)
    assert 'conv2d(x, 4, kernel_size=[3, 3]' in converted.text and 'batch_norm(c, ' in converted.text
    assert set(converted.params) == {"conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                     "bn1.running_var"}
    program = from_onnx(model)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    import onnxruntime as ort
    expected = ort.InferenceSession(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(program(x=x)["y"], expected, rtol=1e-4, atol=1e-5)


def test_every_unsupported_node_is_listed_at_once() -> None:
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Hardmax", ["a"], ["b"], name="hm"),
             helper.make_node("Det", ["x"], ["c"], name="det"), helper.make_node("Add", ["b", "c"], ["y"])]
    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 3])  # noqa: E731
    with pytest.raises(OnnxImportError) as e:
        import_model(make_model(nodes, [vi("x")], [vi("y")], opset=13))
    msg = str(e.value)
    assert "cannot import 2 node(s)" in msg
    assert "node 'hm' (Hardmax, opset 13)" in msg and "node 'det' (Det, opset 13)" in msg


def test_conformance_cases_of_supported_ops_all_pass_or_are_rejected() -> None:
    """Every node case of every op with a converter: passed, or refused by the importer with its clear
    error; none imports and then computes something else."""
    ops = conformance.supported_ops()
    cases = conformance.node_cases(ops)
    assert len(cases) > 500
    results = [conformance.run_case(c) for c in cases]
    failed = [f"{r.case.name}: {r.detail}" for r in results if r.status == "failed"]
    assert not failed, "\n".join(failed)
    counts = conformance.summary(results)
    assert counts["passed"] > 250
    tested = {r.case.op for r in results if r.status == "passed"}
    for op in ("Conv", "ConvTranspose", "Gemm", "MatMul", "Relu", "MaxPool", "AveragePool", "BatchNormalization",
               "LayerNormalization", "Softmax", "LogSoftmax", "LSTM", "GRU", "RNN", "Dropout", "Reshape", "Flatten",
               "Transpose", "Concat", "Slice", "Gather", "Squeeze", "Unsqueeze", "ReduceMean", "LRN", "Pad", "Resize",
               "GatherND", "ScatterND", "Trilu"):
        assert op in tested, op


def test_imported_model_fine_tunes() -> None:
    """An imported model is an ordinary .dlm program: add a target and a train block, and it trains."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((3, 2)).astype(np.float32), "fc.weight")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "fc.bias")
    nodes = [helper.make_node("Gemm", ["x", "fc.weight", "fc.bias"], ["y"])]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [w, b])
    converted = import_model(model)
    text = converted.text + "input target: f32[N, 2]\ntrain {\n    loss = mse(y, target)\n    optimizer = sgd(lr=0.1)\n}\n"
    program = dlc.compile(source=text)
    program.set_params(converted.params)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    target = (x @ np.array([[1, 0], [0, 1], [1, 1]], np.float32)).astype(np.float32)
    losses = [program.train_step(x=x, target=target)["loss"] for _ in range(30)]
    assert losses[-1] < 0.1 * losses[0]


def test_scalar_constant_used_as_a_tensor_stays_0d() -> None:
    """Regression: a 0-d float constant that becomes a parameter (here an operand of Max) kept shape (), not
    (1,) as np.ascontiguousarray would make it, so set_params accepts it."""
    from onnx import TensorProto, helper, numpy_helper
    c = numpy_helper.from_array(np.array(0.5, np.float32), "c")
    nodes = [helper.make_node("Max", ["x", "c"], ["y"])]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [c])
    program = from_onnx(model)
    np.testing.assert_allclose(program(x=np.array([0.0, 1.0, 2.0], np.float32))["y"], [0.5, 1.0, 2.0])


def test_temporary_constants_are_never_confused() -> None:
    """Parameters are deduplicated by id(); the arrays are kept alive, so a later temporary array can never
    reuse an id and come back as an earlier parameter (an unrolled bidirectional GRU makes many temporaries)."""
    from dlc.onnx import conformance
    cases = conformance.node_cases({"GRU"})
    results = [conformance.run_case(c) for c in cases if c.name in ("test_gru_bidirectional", "test_gru_defaults")]
    assert [r.status for r in results] == ["passed", "passed"], [r.detail for r in results]
