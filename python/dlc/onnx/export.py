"""dlc program -> ONNX: the inference graph, checked by onnx.checker with full shape inference."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np

from ..ir import Graph
from . import export_ops, export_recurrent  # noqa: F401  (register the op exporters)
from .export_core import OPSET, ONNX_TYPES, Exporter, OnnxExportError

def export_graph(graph: Graph, params: dict[str, np.ndarray], opset: int | None = None,
                 name: str = "dlc") -> Any:
    """The ONNX ModelProto of an inference graph."""
    from onnx import helper

    ex = Exporter(graph, params, opset or OPSET)
    for name, v in graph.inputs:
        ex.names[v] = name
    ex.run()
    def value_info(name: str, v: int) -> Any:
        t = graph.values[v]
        dims = [d if isinstance(d, int) else str(d) for d in t.shape]
        return helper.make_tensor_value_info(name, ONNX_TYPES[t.dtype], dims)
    inputs = [value_info(name, v) for name, v in graph.inputs]
    outputs = []
    for oname, v in graph.outputs:
        src = ex.name(v)
        if src != oname:
            ex.add("Identity", [src], [oname])
        outputs.append(value_info(oname, v))
    _prune(ex, [o for o, _ in graph.outputs])
    onnx_graph = helper.make_graph(ex.nodes, name, inputs, outputs, ex.inits)
    return helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", ex.opset)],
                             producer_name="dlc")


def _prune(ex: Exporter, outputs: list[str]) -> None:
    """Drops nodes and initializers no output depends on (a zero state left out of an LSTM, say)."""
    needed = set(outputs)
    kept = []
    for node in reversed(ex.nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    ex.nodes = kept[::-1]
    ex.inits = [t for t in ex.inits if t.name in needed]


def export_program(program: Any, path: str | os.PathLike[str] | None, opset: int | None = None) -> Any:
    """Writes `program`'s inference graph as ONNX at `path` (None: only returns the ModelProto), checked by
    onnx.checker with full shape inference."""
    import onnx

    from ..passes import PassContext, run_pipeline
    # The precision pass marks the layers an int8 program runs in int8: they are written as QDQ (export_quant.py).
    graph = run_pipeline(program.graph, PassContext(training=False, fuse=False, optimize=False,
                                                    precision=program.model.precision_policy))
    used = {v for nd in graph.nodes for v in nd.inputs} | {v for _, v in graph.outputs}
    graph = replace(graph, inputs=tuple((n, v) for n, v in graph.inputs if v in used))
    params = {k: np.asarray(v) for k, v in program.params.items()}
    model = export_graph(graph, params, opset)
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # the checker's own error types; a failure here is a bug in this exporter
        raise OnnxExportError(f"the exported model does not pass onnx.checker: {e}") from None
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
