"""Optimizer updates as graph nodes: one node per training step updates every parameter, in place, in one
multi-tensor C++ kernel call (csrc/kernels/optim/). in[0] is the per-step `hyper` input
[lr, step, grad_scale, 0] (f64), so learning-rate schedules need no recompilation; then, per parameter, the
parameter, its gradient and its optimizer state tensors. Floats: the optimizer's hyperparameters, then
clip_norm and clip_value (0 = off), then one learning-rate multiplier per parameter.
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..ir import TensorType
from .registry import AttrSpec, OpDef, Pattern, register

# Per optimizer: (state tensors per parameter, hyperparameters in kernel order with defaults).
OPTIMIZERS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, float], ...]]] = {
    "sgd": (("momentum_buffer",), (("momentum", 0.0), ("dampening", 0.0), ("weight_decay", 0.0),
                                   ("nesterov", 0.0))),
    "adam": (("exp_avg", "exp_avg_sq"), (("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8),
                                         ("weight_decay", 0.0), ("decoupled", 0.0))),
    "rmsprop": (("square_avg", "momentum_buffer"), (("alpha", 0.99), ("eps", 1e-8), ("weight_decay", 0.0),
                                                    ("momentum", 0.0))),
    "adagrad": (("sum",), (("eps", 1e-10), ("weight_decay", 0.0), ("lr_decay", 0.0))),
}
KERNEL_OF = {"sgd": "sgd", "adam": "adam", "rmsprop": "rmsprop", "adagrad": "adagrad"}


def _update_infer(kind: str) -> Any:
    per = 2 + len(OPTIMIZERS[kind][0])

    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        hyper, *rest = types
        if hyper.dtype != "f64" or hyper.shape != (4,):
            raise ShapeError(f"hyper must be f64[4], got {hyper}")
        if len(rest) % per:
            raise ShapeError(f"{kind} takes {per} tensors per parameter")
        for i in range(0, len(rest), per):
            if any(t != rest[i] for t in rest[i:i + per]):
                raise ShapeError(f"parameter {i // per}: parameter, gradient and state types differ")
        if len(attrs["lr_mults"]) != len(rest) // per:
            raise ShapeError("one learning-rate multiplier per parameter")
        return []
    return infer


def _update_lower(kind: str) -> Any:
    def lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
        hyper = [float(node.attr(name)) for name, _ in OPTIMIZERS[kind][1]]
        return ([len(node.attr("lr_mults"))],
                hyper + [node.attr("clip_norm"), node.attr("clip_value")] + list(node.attr("lr_mults")))
    return lower


for _kind, (_state, _hyper) in OPTIMIZERS.items():
    register(OpDef(f"{_kind}_update", ("*tensors",),
                   tuple(AttrSpec(n, "float", d) for n, d in _hyper) + (
                       AttrSpec("clip_norm", "float", 0.0), AttrSpec("clip_value", "float", 0.0),
                       AttrSpec("lr_mults", "any")),
                   infer=_update_infer(_kind), pattern=Pattern.OPAQUE, kernel=KERNEL_OF[_kind],
                   lower=_update_lower(_kind), differentiable=False, user=False, mutates=(-1,),
                   doc=f"{_kind} step over every parameter (in place)"))
