"""The ONNX ops imported through dlc's gather and scatter_add: GatherND and ScatterND (dlc's graph networks,
scatter_add exported as ScatterND onto zeros, come back), Gather at computed indices, edge/reflect/wrap Pad and
negative-step Slice; each matches ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import dlc
from dlc.onnx import OnnxImportError, from_onnx
from dlc.onnx.importer import import_model


def test_graph_network_round_trips(tmp_path: Path) -> None:
    """Regression: a graph convolution (gather at src, scatter_add at dst) was export-only: the importer had no
    ScatterND. It imports as scatter_add again, N and E symbolic."""
    program = dlc.compile(source="input x: f32[N, 4]\ninput src: i32[E]\ninput dst: i32[E]\nparam w: f32[4, 3]\n"
                                 "output y = scatter_add(gather(x @ w, src), dst, N) |> relu\n", seed=0)
    program.to_onnx(str(tmp_path / "gcn.onnx"))
    text = import_model(tmp_path / "gcn.onnx").text
    assert "input x: f32[N, 4]" in text and "scatter_add(" in text, text
    back = from_onnx(str(tmp_path / "gcn.onnx"))
    rng = np.random.default_rng(0)
    for n, e in ((5, 9), (7, 3)):
        x = rng.standard_normal((n, 4)).astype(np.float32)
        src, dst = rng.integers(0, n, e).astype(np.int32), rng.integers(0, n, e).astype(np.int32)
        np.testing.assert_allclose(back(x=x, src=src, dst=dst)["y"], program(x=x, src=src, dst=dst)["y"],
                                   rtol=1e-6, atol=1e-6)


def _model(node: object, inputs: list, inits: list, opset: int = 18) -> bytes:
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _check(model: bytes, feeds: dict[str, np.ndarray]) -> None:
    import onnxruntime as ort
    expected = ort.InferenceSession(model).run(None, feeds)[0]
    got = from_onnx(model)(**feeds)["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reduction", ["none", "add"])
@pytest.mark.parametrize("computed", [False, True])
def test_scatter_nd_matches_onnxruntime(reduction: str, computed: bool) -> None:
    """Index tuples of length 2 into [4, 3, 5] (rows of 5), constant or a graph input, one negative."""
    idx = np.array([[0, 1], [3, -1], [2, 0]], np.int64)
    node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction=reduction)
    x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 3, 5])
    u_in = helper.make_tensor_value_info("u", TensorProto.FLOAT, [3, 5])
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((4, 3, 5)).astype(np.float32),
             "u": rng.standard_normal((3, 5)).astype(np.float32)}
    if computed:
        inputs, inits = [x_in, helper.make_tensor_value_info("i", TensorProto.INT64, [3, 2]), u_in], []
        feeds["i"] = np.where(idx < 0, idx + 3, idx)  # ONNX Runtime wants ScatterND's indices in range
    else:
        inputs, inits = [x_in, u_in], [helper.make_tensor("i", TensorProto.INT64, [3, 2], idx.reshape(-1))]
    _check(_model(node, inputs, inits), feeds)


@pytest.mark.parametrize("computed", [False, True])
def test_gather_nd_matches_onnxruntime(computed: bool) -> None:
    idx = np.array([[[1, 2]], [[0, -1]]], np.int64)  # [2, 1, 2] tuples into [3, 4, 2]
    node = helper.make_node("GatherND", ["x", "i"], ["y"])
    x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4, 2])
    feeds = {"x": np.random.default_rng(2).standard_normal((3, 4, 2)).astype(np.float32)}
    if computed:
        inputs, inits = [x_in, helper.make_tensor_value_info("i", TensorProto.INT64, [2, 1, 2])], []
        feeds["i"] = idx
    else:
        inputs, inits = [x_in], [helper.make_tensor("i", TensorProto.INT64, [2, 1, 2], idx.reshape(-1))]
    _check(_model(node, inputs, inits), feeds)


def test_scatter_nd_reductions_dlc_cannot_sum_are_refused() -> None:
    node = helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction="max", name="sc")
    model = _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                          helper.make_tensor_value_info("u", TensorProto.FLOAT, [1])],
                   [helper.make_tensor("i", TensorProto.INT64, [1, 1], [2])])
    with pytest.raises(OnnxImportError, match=r"node 'sc' \(ScatterND, opset 18\): ScatterND with reduction='max'"):
        import_model(model)


@pytest.mark.parametrize("computed", [False, True])
def test_gather_of_an_index_table_matches_onnxruntime(computed: bool) -> None:
    """Regression: Gather with indices of rank > 1, or computed by the graph, was refused; it is dlc's gather
    with the axis moved to the front and back (a negative index counts from the end)."""
    idx = np.array([[0, -1], [2, 1]], np.int64)
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3, 4)).astype(np.float32)}
    if computed:
        inputs, inits = [x_in, helper.make_tensor_value_info("i", TensorProto.INT64, [2, 2])], []
        feeds["i"] = idx
    else:
        inputs, inits = [x_in], [helper.make_tensor("i", TensorProto.INT64, [2, 2], idx.reshape(-1))]
    _check(_model(node, inputs, inits, opset=17), feeds)


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_modes_match_onnxruntime(mode: str) -> None:
    """Regression: only constant padding imported; the others read each axis at NumPy's padded positions
    (a negative pad crops)."""
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode=mode)
    pads = helper.make_tensor("p", TensorProto.INT64, [8], [0, 0, 2, -1, 0, 0, 1, 3])
    model = _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])], [pads])
    _check(model, {"x": np.random.default_rng(4).standard_normal((1, 2, 4, 5)).astype(np.float32)})


def test_negative_step_slices_match_onnxruntime() -> None:
    """Regression: torch.flip exports a Slice with step -1, which was refused."""
    node = helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"])
    inits = [helper.make_tensor("s", TensorProto.INT64, [2], [-1, 4]),
             helper.make_tensor("e", TensorProto.INT64, [2], [-(2 ** 63), 0]),
             helper.make_tensor("a", TensorProto.INT64, [2], [1, 2]),
             helper.make_tensor("st", TensorProto.INT64, [2], [-1, -2])]
    model = _model(node, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 6])], inits)
    _check(model, {"x": np.random.default_rng(5).standard_normal((2, 3, 6)).astype(np.float32)})
