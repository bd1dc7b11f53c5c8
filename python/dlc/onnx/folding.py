"""Constant folding at import time: a node whose inputs are all known arrays is computed once, here.

The frequent cases (Constant, ConstantOfShape, Identity, Unsqueeze, Cast) are computed directly; any other op
goes through ONNX's reference evaluator, so folding follows ONNX's semantics for every opset.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .values import Node


# The most elements one folded output may have: 4M, or more where the model itself is larger. A constant
# computed here is allocated here, so a few bytes of file (ConstantOfShape of [2^40]) must not become gigabytes.
MIN_FOLD_LIMIT = 2 ** 22


def fold_node(node: "Node", ins: list[np.ndarray | None], limit: int = MIN_FOLD_LIMIT) -> list[np.ndarray]:
    from onnx import numpy_helper

    from .values import Unsupported
    size = predicted_elements(node, ins)
    if size is not None and size > limit:
        raise Unsupported(f"its constant output would have {size:,} elements, more than the {limit:,} this "
                          f"file justifies")
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


def predicted_elements(node: "Node", ins: list[np.ndarray | None]) -> int | None:
    """The element count of the node's largest output, from its constant inputs and before anything is
    allocated: directly for the ops that expand a small input, by ONNX's shape inference for the others;
    None where neither can tell (the inputs are inconsistent: the fold itself then reports them)."""
    try:
        if node.op == "ConstantOfShape" and ins and ins[0] is not None:
            return math.prod(int(d) for d in ins[0].reshape(-1))
        if node.op == "Expand" and len(ins) > 1 and ins[0] is not None and ins[1] is not None:
            return math.prod(np.broadcast_shapes(ins[0].shape, tuple(int(d) for d in ins[1].reshape(-1))))
        if node.op == "Tile" and len(ins) > 1 and ins[0] is not None and ins[1] is not None:
            return math.prod(int(d) * int(r) for d, r in zip(ins[0].shape, ins[1].reshape(-1)))
        if node.op == "Range" and len(ins) == 3 and all(v is not None and v.size == 1 for v in ins):
            start, limit, delta = (float(v.reshape(-1)[0]) for v in ins)  # type: ignore[union-attr]
            return max(math.ceil((limit - start) / delta), 0) if delta else None
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        return None
    if node.op in ("Constant", "Identity", "Cast", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Shape"):
        return None  # never larger than an input (or an attribute the file holds)
    return _inferred_elements(node, ins)


def _inferred_elements(node: "Node", ins: list[np.ndarray | None]) -> int | None:
    import onnx
    from onnx import helper, numpy_helper

    names = [f"i{k}" if a is not None else "" for k, a in enumerate(ins)]
    proto = onnx.NodeProto()
    proto.CopyFrom(node.proto)
    del proto.input[:]
    proto.input.extend(names)
    del proto.output[:]
    proto.output.extend(f"o{k}" for k in range(len(node.outputs)))
    small = sum(a.size for a in ins if a is not None) <= 2 ** 16  # values shape inference may read (pads, sizes)
    try:
        consts = [numpy_helper.from_array(a, n) for n, a in zip(names, ins) if a is not None and small]
        typed = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                 for n, a in zip(names, ins) if a is not None and not small]
        graph = helper.make_graph([proto], "size", typed, [helper.make_tensor_value_info(o, 0, None)
                                                           for o in proto.output], consts)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", node.opset)])
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # inference refuses what it cannot type: the fold reports the node
        return None
    sizes = []
    for vi in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim if vi.type.HasField("tensor_type") else []
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            sizes.append(math.prod(int(d.dim_value) for d in dims))
    return max(sizes, default=None)


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
