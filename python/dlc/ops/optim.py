"""Optimizer updates as graph nodes: one node per training step updates every parameter, in place, in one
multi-tensor C++ kernel call (csrc/kernels/optim/). in[0] is the per-step `hyper` input
[lr, step, grad_scale, 0] (f64), so learning-rate schedules need no recompilation; then, per parameter, the
parameter, its gradient and its optimizer state tensors. Floats: the optimizer's hyperparameters, then
clip_norm and clip_value (0 = off), then one learning-rate multiplier per parameter.

With guard=True (the fused training step's non-finite guard) in[1] is the loss, and the node outputs an i32
status [loss, one per parameter's gradient]: 1 where it is not finite, in which case the kernel wrote nothing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class Optimizer(NamedTuple):
    """An optimizer a recipe names: the update it runs, its default learning rate, the hyperparameters whose
    defaults differ from that update's, and the note docs/training.md's optimizer table shows."""

    update: str  # a key of OPTIMIZERS
    lr: float
    defaults: tuple[tuple[str, float], ...] = ()
    note: str = ""


# What `optimizer = name(...)` accepts; docs/training.md's optimizer table is generated from it (docs/gen_ops.py).
OPTIMIZER_TABLE: dict[str, Optimizer] = {
    "sgd": Optimizer("sgd", 1e-2),
    "adam": Optimizer("adam", 1e-3, note="`betas=[b1, b2]` sets `beta1` and `beta2`; `weight_decay` is L2 added "
                                         "to the gradient"),
    "adamw": Optimizer("adam", 1e-3, (("decoupled", 1.0), ("weight_decay", 0.01)),
                       note="adam with decoupled weight decay; `betas=[b1, b2]` as adam"),
    "rmsprop": Optimizer("rmsprop", 1e-3),
    "adagrad": Optimizer("adagrad", 1e-2),
}
# Hyperparameters the kernel reads as flags (0 or 1), shown as true/false; `decoupled` is set by the name alone.
FLAGS = ("nesterov",)
INTERNAL = ("decoupled",)


def _update_infer(kind: str) -> Any:
    per = 2 + len(OPTIMIZERS[kind][0])

    def infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        hyper, *rest = types
        if hyper.dtype != "f64" or hyper.shape != (4,):
            raise ShapeError(f"hyper must be f64[4], got {hyper}")
        if attrs["guard"]:
            if not rest or rest[0].shape != () or rest[0].dtype not in ("f32", "f64"):
                raise ShapeError(f"a guarded update's second operand must be the scalar loss, got {rest[:1]}")
            rest = rest[1:]
        if len(rest) % per:
            raise ShapeError(f"{kind} takes {per} tensors per parameter")
        for i in range(0, len(rest), per):
            if any(t != rest[i] for t in rest[i:i + per]):
                raise ShapeError(f"parameter {i // per}: parameter, gradient and state types differ")
        if len(attrs["lr_mults"]) != len(rest) // per:
            raise ShapeError("one learning-rate multiplier per parameter")
        return [TensorType("i32", (1 + len(rest) // per,))] if attrs["guard"] else []
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
                       AttrSpec("lr_mults", "any"), AttrSpec("guard", "bool", False)),
                   infer=_update_infer(_kind), pattern=Pattern.OPAQUE, kernel=KERNEL_OF[_kind],
                   lower=_update_lower(_kind), differentiable=False, user=False, mutates=(-1,),
                   leading=lambda attrs: 2 if attrs.get("guard") else 1,
                   doc=f"{_kind} step over every parameter (in place)"))
