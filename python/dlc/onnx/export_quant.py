"""An int8 program's layers written as QDQ (docs/precision.md, "int8"): QuantizeLinear and DequantizeLinear
around the input (the layer's static scale and zero point, or DynamicQuantizeLinear when it quantizes per call)
and DequantizeLinear of the int8 weight with its per-channel scales. ONNX Runtime runs the file with the same
quantized values as dlc; the sums differ only by f32 rounding where it dequantizes before the product."""

from __future__ import annotations

import numpy as np

from ..int8 import int8_weights
from ..ir import Node
from .export_core import Exporter, OnnxExportError


def int8_operands(ex: Exporter, n: Node, channels_first: bool) -> tuple[str, str]:
    """The ONNX names of an int8 node's dequantized input and weight."""
    x = ex.name(n.inputs[0])
    data = n.attr("precision_data")
    if data is None:
        q, scale, zp = ex.add("DynamicQuantizeLinear", [x], [ex.fresh("x_uint8"), ex.fresh("x_scale"),
                                                             ex.fresh("x_zero_point")])
    else:
        scale = ex.const(np.float32(data[0]), "x_scale")
        zp = ex.const(np.uint8(data[1]), "x_zero_point")
        (q,) = ex.add("QuantizeLinear", [x, scale, zp])
    (x_dq,) = ex.add("DequantizeLinear", [q, scale, zp])
    w = ex.known.get(n.inputs[1])
    if w is None:
        raise OnnxExportError(f"the int8 weight of {n.op} is computed at run time; export it in f32")
    wq, ws = int8_weights(np.asarray(w, np.float32), channels_first)
    (w_dq,) = ex.add("DequantizeLinear", [ex.const(wq, "weight_int8"), ex.const(ws, "weight_scale")],
                     axis=0 if channels_first else wq.ndim - 1)
    return x_dq, w_dq
