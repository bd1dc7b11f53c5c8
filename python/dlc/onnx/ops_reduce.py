"""Reductions (ReduceSum, ReduceMean, ... with their opset-dependent axes) as dlc's sum/mean/max/min."""

from __future__ import annotations

from typing import Any

from .ops_shape import axes_of
from .registry import converts
from .values import Node, Unsupported, literal

# op -> (prologue applied to x, dlc reduction, epilogue applied to the result); {} stands for the operand.
_FORMS = {"ReduceSum": ("{}", "sum", "{}"), "ReduceMean": ("{}", "mean", "{}"), "ReduceMax": ("{}", "max", "{}"),
          "ReduceMin": ("{}", "min", "{}"), "ReduceSumSquare": ("square({})", "sum", "{}"),
          "ReduceL1": ("abs({})", "sum", "{}"), "ReduceL2": ("square({})", "sum", "sqrt({})"),
          "ReduceLogSum": ("{}", "sum", "log({})"), "ReduceLogSumExp": ("exp({})", "sum", "log({})")}
# The opset from which `axes` is an input instead of an attribute.
_AXES_INPUT_FROM = {"ReduceSum": 13}


@converts(*_FORMS)
def reduce(im: Any, node: Node) -> None:
    node.only("axes", "keepdims", "noop_with_empty_axes")
    source = x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64"):
        if node.op not in ("ReduceMax", "ReduceMin"):
            raise Unsupported(f"{node.op} of a {x.dtype} tensor (dlc reduces floating-point tensors)")
        x = im.typed(im.temp(f"cast({x.name}, \"f64\")", "wide"))  # integers and booleans: exact in f64
    axes = axes_of(im, node, 1, _AXES_INPUT_FROM.get(node.op, 18))
    keep = bool(node.attr("keepdims", 1))
    pre, fn, post = _FORMS[node.op]
    if not axes:
        if node.attr("noop_with_empty_axes", 0):
            im.emit(node.outputs[0], pre.format(x.name) if pre != "{}" else source.name)
            return
        axes = list(range(x.rank))
    axes = sorted({a % x.rank for a in axes})
    operand = im.temp(pre.format(x.name), "terms") if pre != "{}" else x.name
    red = f"{fn}({operand}, axis={literal(axes)}, keepdims={literal(keep)})"
    if source.dtype == "bool":  # > 0, not a cast: the -inf of an empty max is false, as ONNX has it
        red = f"{im.temp(red, 'reduced')} > 0.0"
    elif source.dtype != x.dtype:
        red = f"cast({red}, \"{source.dtype}\")"
    im.emit(node.outputs[0], post.format(im.temp(red, "reduced")) if post != "{}" else red)
