"""Reduced-precision inference: which precisions exist and which layers run in them (docs/precision.md).

A model's inference plans run in its `PrecisionPolicy`: a precision ("f32", the default; "bf16"; "int8") and the
layers kept in f32 (by name; `dlc quantize --max-drop` fills that set). Training always runs in f32.

Where a layer's precision is decided:
- the op registry says which ops can run a weight in reduced precision and with which kernel
  (`OpDef.reduced_precision`: the weight's operand index and a kernel key per precision);
- the pass `passes/precision.py` marks each such node whose weight is computed from parameters alone (no input)
  with the policy's precision (node attribute `precision`), unless its layer is kept in f32;
- lowering runs a marked node on the kernel the registry names for that precision.

Extension points (int8 plugs in here): a precision is a name in PRECISIONS plus kernel keys in the ops'
`reduced_precision` facts; a precision that needs per-layer data (int8's activation scales) passes it in
`PrecisionPolicy.layer_data`, which the pass hands to the node as its `precision_data` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

PRECISIONS = ("f32", "bf16", "int8")
REDUCED = ("bf16", "int8")


def check_precision(precision: Any, what: str = "precision") -> str:
    """The precision's name, or a ValueError listing the ones that exist."""
    if precision not in PRECISIONS:
        raise ValueError(f"{what} must be one of {', '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")
    return str(precision)


@dataclass(frozen=True)
class PrecisionPolicy:
    """How an inference plan runs its weights: `precision` for every layer that has a kernel for it, except
    the layers named in `keep_f32`. `layer_data` maps a layer to data its precision needs (hashable)."""

    precision: str = "f32"
    keep_f32: frozenset[str] = frozenset()
    layer_data: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def make(precision: str = "f32", keep_f32: Iterable[str] = (),
             layer_data: Mapping[str, Any] | None = None) -> "PrecisionPolicy":
        return PrecisionPolicy(check_precision(precision), frozenset(keep_f32),
                               tuple(sorted((layer_data or {}).items())))

    @property
    def reduced(self) -> bool:
        return self.precision != "f32"

    def for_layer(self, layer: str) -> str:
        return "f32" if layer in self.keep_f32 else self.precision

    def data_for(self, layer: str) -> Any:
        return dict(self.layer_data).get(layer)


F32 = PrecisionPolicy()


def layer_name(param: str) -> str:
    """A layer's name from its weight's parameter name: `h1.weight` -> `h1` (an imported ONNX initializer keeps
    its own name)."""
    return param[:-len(".weight")] if param.endswith(".weight") else param



def bf16_bits(values: np.ndarray) -> np.ndarray:
    """f32 values rounded to bfloat16 (to nearest, ties to even; NaN stays NaN) as their uint16 bit patterns: the
    rounding of the bf16 kernels (csrc/kernels/gemm/gemm_bf16.h), for artifacts and references."""
    u = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    return np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), rounded)


def bf16_values(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) as the f32 values they hold, exactly."""
    return (np.ascontiguousarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_bf16(values: np.ndarray) -> np.ndarray:
    """f32 values rounded to the nearest bfloat16, as f32."""
    return bf16_values(bf16_bits(values))
