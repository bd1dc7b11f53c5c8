"""Issue 25: layers imported from ONNX get readable names from PyTorch's module paths ("/conv/Conv" is the layer
`conv`, not "_.conv.Conv"), also when the exporter gave the weights anonymous names (onnx::Conv_5), and the
summary shows them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_module_paths_name_the_imported_layers(tmp_path: Path) -> None:
    # Imported here, not at collection: onnx brings ml_dtypes, which teaches NumPy bfloat16 for every later test.
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from dlc.onnx import from_onnx
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.random((4, 3, 3, 3), dtype=np.float32), "onnx::Conv_5"),
             numpy_helper.from_array(np.zeros(4, np.float32), "onnx::Conv_6"),
             numpy_helper.from_array(rng.random((4, 4, 1, 1), dtype=np.float32), "onnx::Conv_7")]
    nodes = [helper.make_node("Conv", ["x", "onnx::Conv_5", "onnx::Conv_6"], ["/conv/Conv_output_0"],
                              name="/conv/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["/conv/Conv_output_0"], ["/act/Relu_output_0"], name="/act/Relu"),
             helper.make_node("Conv", ["/act/Relu_output_0", "onnx::Conv_7"], ["y"], name="/blocks/0/proj/Conv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    program = from_onnx(str(path))
    assert set(program.params) == {"conv.weight", "conv.bias", "blocks.0.proj.weight"}
    summary = program.summary()
    assert "conv (conv2d)" in summary and "blocks.0.proj (conv2d)" in summary and "_.conv" not in summary
