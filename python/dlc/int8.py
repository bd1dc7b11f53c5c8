"""int8 activation quantization: the scale and zero point of a layer's input (docs/precision.md, "int8").

A layer run in int8 quantizes its input to uint8 either with a static scale and zero point measured on
calibration data (`calibrate`, min/max over every calibration sample, as ONNX Runtime's MinMax calibrator), or
per call from the input's own range (dynamic, as ONNX Runtime's `quantize_dynamic`). Its weights are int8 per
output channel (symmetric, scale max|w| / 127), quantized when the plan packs them. The kernels are in
csrc/kernels/qgemm; a step's two ints (zero point, scale) are made here.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from . import _core

DYNAMIC = -1  # the zero point a step's ints give for dynamic quantization


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """uint8 scale and zero point of the range [lo, hi] widened to hold 0 (so a real 0 is exact: padding, ReLU),
    as ONNX's DynamicQuantizeLinear computes them in f32; an empty range gives (1, 0)."""
    lo32, hi32 = np.float32(min(float(lo), 0.0)), np.float32(max(float(hi), 0.0))
    scale = np.float32((hi32 - lo32) / np.float32(255))
    if not np.isfinite(scale) or scale <= 0:
        return 1.0, 0
    zp = int(np.round(np.clip(np.float32(0) - lo32 / scale, 0, 255)))
    return float(scale), zp


def step_ints(data: Any) -> list[int]:
    """A step's [zero point, scale as f64 bits] from a layer's precision data: (scale, zero point) when
    calibrated, None when dynamic."""
    if data is None:
        return [DYNAMIC, 0]
    scale, zp = data
    return [int(zp), struct.unpack("<q", struct.pack("<d", float(scale)))[0]]


def int8_weights(w: np.ndarray, channels_first: bool) -> tuple[np.ndarray, np.ndarray]:
    """An f32 weight as the int8 kernels quantize it (csrc/kernels/qgemm), in the weight's own shape, and its
    per-channel scales."""
    channels = w.shape[0] if channels_first else w.shape[-1]
    q, scale = _core.quantize_weights_s8(w.reshape(channels, -1) if channels_first else w, channels_first)
    return (q.reshape(w.shape) if channels_first else np.ascontiguousarray(q.T)), scale
