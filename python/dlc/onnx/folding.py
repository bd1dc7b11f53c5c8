"""Constant folding at import time: a node whose inputs are all known arrays is computed once, here.

The frequent cases (Constant, ConstantOfShape, Identity, Unsqueeze, Cast) are computed directly; any other op
goes through ONNX's reference evaluator, so folding follows ONNX's semantics for every opset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .values import Node


def fold_node(node: "Node", ins: list[np.ndarray | None]) -> list[np.ndarray]:
    from onnx import numpy_helper

    op = node.op
    if op == "Constant":
        return [_constant(node)]
    if op == "ConstantOfShape":
        value = node.attr("value")
        fill = numpy_helper.to_array(value).reshape(-1) if value is not None else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in ins[0]), fill[0], dtype=fill.dtype)]  # type: ignore[union-attr]
    if op == "Identity":
        return [ins[0]]  # type: ignore[list-item]
    if op == "GatherElements":  # ONNX's reference evaluator fails when the indices are smaller than the data
        return [_gather_elements(node, ins[0], ins[1])]  # type: ignore[arg-type]
    return _reference(node, ins)


def _gather_elements(node: "Node", data: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from .values import Unsupported
    axis = int(node.attr("axis", 0)) % max(data.ndim, 1)
    size = data.shape[axis]
    if data.ndim != idx.ndim or np.any(idx < -size) or np.any(idx >= size):
        raise Unsupported("GatherElements indices out of range or of another rank than the data")
    lead = tuple(slice(0, d) for d in idx.shape)
    lead = lead[:axis] + (slice(None),) + lead[axis + 1:]
    return np.take_along_axis(data[lead], np.where(idx < 0, idx + size, idx), axis=axis)


def _constant(node: "Node") -> np.ndarray:
    from onnx import numpy_helper

    from .values import Unsupported
    for key, value in node.attrs.items():
        if key == "value":
            return numpy_helper.to_array(value)
        if key in ("value_float", "value_int"):
            return np.array(value, dtype=np.float32 if key == "value_float" else np.int64)
        if key in ("value_floats", "value_ints"):
            return np.array(value, dtype=np.float32 if key == "value_floats" else np.int64)
        if key == "sparse_value":
            raise Unsupported("sparse constants are not supported")
    raise Unsupported(f"Constant with attribute(s) {', '.join(node.attrs) or 'none'} is not supported")


def _reference(node: "Node", ins: list[np.ndarray | None]) -> list[np.ndarray]:
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    from .values import Unsupported
    names = [f"i{k}" if name else "" for k, name in enumerate(node.inputs)]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.input[:]
    proto.input.extend(names)
    del proto.output[:]
    outs = [f"o{k}" if name else "" for k, name in enumerate(node.outputs)]
    proto.output.extend(outs)
    graph = helper.make_graph([proto], "fold", [], [helper.make_tensor_value_info(o, 0, None) for o in outs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", node.opset)])
    try:
        result = ReferenceEvaluator(model).run(None, {n: a for n, a in zip(names, ins) if n})
    except Exception as e:  # the reference evaluator raises many types; report, never crash
        raise Unsupported(f"cannot compute this node from its constant inputs ({type(e).__name__}: {e})") \
            from None
    arrays = iter(result)
    return [np.asarray(next(arrays)) if o else np.empty(0) for o in outs]
