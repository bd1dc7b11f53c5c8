"""The values the ONNX importer tracks per tensor name, and the helpers every converter uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ONNX_DTYPES = {1: "f32", 11: "f64", 6: "i32", 7: "i64", 9: "bool"}
# An infinite constant (a -inf mask score) is written as the largest finite f32, since .dlm literals are
# finite: a fully masked softmax row then averages its values where ONNX Runtime gives NaN.
F32_MAX = float(np.finfo(np.float32).max)


class Unsupported(Exception):
    """Raised by a converter: this node cannot be expressed in dlc (the message says why)."""


@dataclass(frozen=True)
class Tensor:
    """A value computed by the model: a .dlm variable."""

    name: str
    dtype: str
    shape: tuple[int | str, ...] | None  # None: unknown (ONNX shape inference did not find it)

    @property
    def rank(self) -> int:
        if self.shape is None:
            raise Unsupported("the rank of an intermediate tensor is unknown (ONNX shape inference gave none)")
        return len(self.shape)

    def static(self, what: str) -> tuple[int, ...]:
        if self.shape is None or not all(isinstance(d, int) for d in self.shape):
            raise Unsupported(f"{what} needs a static shape, got {self.shape}")
        return tuple(int(d) for d in self.shape)


@dataclass(frozen=True)
class ShapeVec:
    """An integer vector (or scalar) known at import time up to symbolic dimensions (strings)."""

    items: tuple[int | str, ...]
    scalar: bool = False


Value = Tensor | np.ndarray | ShapeVec


@dataclass
class Node:
    """An ONNX node as the converters see it: attributes decoded, the opset of its domain."""

    proto: Any
    opset: int
    attrs: dict[str, Any]

    @property
    def op(self) -> str:
        return str(self.proto.op_type)

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def outputs(self) -> list[str]:
        return list(self.proto.output)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def only(self, *allowed: str, **fixed: Any) -> None:
        """Rejects attributes outside `allowed` and those in `fixed` that differ from the given value."""
        for k, v in self.attrs.items():
            if k in fixed:
                if _norm(v) != _norm(fixed[k]):
                    raise Unsupported(f"attribute {k}={v!r} (only {fixed[k]!r} is supported)")
            elif k not in allowed:
                raise Unsupported(f"attribute '{k}' is not supported")


def _norm(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, (list, tuple)):
        return tuple(_norm(x) for x in v)
    return v


def literal(v: Any) -> str:
    """A Python value as .dlm text."""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if np.isnan(f):
            raise Unsupported("the constant NaN cannot be written in .dlm (literals must be finite)")
        if np.isinf(f):  # masks: -inf scores; the largest f32 keeps them below any real score
            return repr(float(np.copysign(F32_MAX, f)))
        return repr(f)
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    if v is None:
        return "none"
    raise TypeError(f"no .dlm literal for {v!r}")




def dlc_dtype(dt: np.dtype) -> str:
    from ..ir import dtype_of_array
    name = dtype_of_array(np.empty(0, dtype=dt))
    if name is None:
        raise Unsupported(f"element type {np.dtype(dt).name} is not supported (dlc has f32, f64, i32, i64, bool)")
    return name


def dims_text(shape: tuple[int | str, ...] | list[int | str]) -> str:
    """A shape as a .dlm list: symbolic dimensions by name, which .dlm expressions can use."""
    return "[" + ", ".join(str(d) for d in shape) + "]"
