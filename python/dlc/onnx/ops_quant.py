"""QDQ models (QuantizeLinear / DequantizeLinear around Conv, MatMul and Gemm, as onnxruntime.quantization's
quantize_static writes them) imported for int8 inference (docs/precision.md, "int8").

- DequantizeLinear of a constant (a quantized weight or bias): folded to its f32 values, (q - zero point) *
  scale per tensor or along `axis`; a weight stays a weight (a parameter), so int8 runs it again as int8 values
  with per-channel scales (a symmetric per-channel weight comes back as the same int8 values).
- QuantizeLinear followed by DequantizeLinear on an activation (a uint8 scale and zero point, per tensor): in
  f32 the pair is its range clamp, [-zp * scale, (255 - zp) * scale] (where quantize_static removed a Relu, the
  clamp is that Relu), and its scale and zero point become the static int8 activation scale of the Conv, MatMul
  or Gemm that reads it (Converted.int8_scales), so precision="int8" quantizes that layer's input as the QDQ
  model says, without calibration data. Elsewhere the rounding is dropped: dlc keeps activations in f32 between
  layers (ONNX Runtime requantizes them; outputs differ by that rounding).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import converts

from .values import Node, Unsupported, literal


def _per_tensor(im: Any, node: Node) -> tuple[float, int]:
    """A QuantizeLinear's or DequantizeLinear's scale and uint8 zero point, which must be one constant each."""
    scale = im.need_const(node.inputs[1], f"{node.op}'s scale")
    zp = im.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if scale.size != 1 or (zp is not None and zp.size != 1):
        raise Unsupported(f"{node.op} of an activation with per-axis scales (dlc's int8 activations have one scale)")
    if zp is not None and zp.dtype != np.uint8:
        raise Unsupported(f"{node.op} of an activation to {zp.dtype} (dlc's int8 activations are uint8)")
    value = float(scale.reshape(-1)[0])
    if not np.isfinite(value) or value <= 0:
        raise Unsupported(f"{node.op} with scale {value} (it must be positive and finite)")
    return value, int(zp.reshape(-1)[0]) if zp is not None else 0


@converts("QuantizeLinear")
def quantize_linear(im: Any, node: Node) -> None:
    node.only("axis", "saturate")
    readers = im.readers.get(node.outputs[0], [])
    if not readers or any(r.op_type != "DequantizeLinear" for r in readers):
        raise Unsupported("QuantizeLinear whose output is read by other ops than DequantizeLinear (dlc keeps "
                          "activations in f32 between layers)")
    im.quantized[node.outputs[0]] = (node.inputs[0], _per_tensor(im, node))
    im.set(node.outputs[0], Quantized(node.outputs[0]))


class Quantized:
    """The value of a QuantizeLinear's output: only its DequantizeLinear reads it (it is no .dlm tensor)."""

    def __init__(self, name: str):
        self.name = name


@converts("DequantizeLinear")
def dequantize_linear(im: Any, node: Node) -> None:
    node.only("axis", "block_size", block_size=0)
    q = im.const(node.inputs[0])
    if q is None:
        source = im.quantized.get(node.inputs[0])
        if source is None:
            raise Unsupported("DequantizeLinear of a value no QuantizeLinear of this graph made")
        x, params = source
        if _per_tensor(im, node) != params:
            raise Unsupported("a QuantizeLinear/DequantizeLinear pair with two different scales")
        # The pair's range clamp stays (quantize_static drops a Relu whose output range starts at 0: the clamp
        # is that Relu); its rounding does not (dlc keeps activations in f32 between layers).
        scale, zp = params
        t = im.tensor(x)
        low = im.temp(f"maximum({t.name}, {t.name} * 0.0 + {literal(float(np.float32(-zp * scale)))})", "clamped")
        im.emit(node.outputs[0], f"minimum({low}, {low} * 0.0 + {literal(float(np.float32((255 - zp) * scale)))})")
        im.qdq[node.outputs[0]] = params
        return
    if q.dtype not in (np.int8, np.uint8, np.int32):
        raise Unsupported(f"DequantizeLinear of {q.dtype} values (int8, uint8 or int32)")
    scale = im.need_const(node.inputs[1], "DequantizeLinear's scale").astype(np.float32)
    zp = im.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else np.zeros((), q.dtype)
    axis = int(node.attr("axis", 1))
    if scale.size > 1:
        if scale.ndim != 1 or q.ndim == 0 or not -q.ndim <= axis < q.ndim or scale.size != q.shape[axis]:
            raise Unsupported(f"DequantizeLinear scales of shape {list(scale.shape)} for values of shape "
                              f"{list(q.shape)} along axis {axis}")
        shape = [1] * q.ndim
        shape[axis] = scale.size
        scale, zp = scale.reshape(shape), np.asarray(zp).reshape(shape if np.asarray(zp).size > 1 else ())
    values = ((q.astype(np.int64) - np.asarray(zp).astype(np.int64)).astype(np.float32) * scale).astype(np.float32)
    im.set(node.outputs[0], values)
    if id(q) in im.initializer_ids:  # a quantized initializer is still a weight
        im.initializer_ids.add(id(values))


def int8_scales(im: Any) -> dict[str, tuple[float, int]]:
    """Layer -> (scale, zero point) of the QDQ pair each Conv, MatMul or Gemm reads its input through."""
    out = {}
    for proto in im.model.graph.node:
        if proto.op_type in ("Conv", "MatMul", "Gemm") and len(proto.input) > 1 and proto.input[0] in im.qdq:
            layer = im.weight_owner.get(proto.input[1])
            if layer is not None:
                out[layer] = im.qdq[proto.input[0]]
    return out
