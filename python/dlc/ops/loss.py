"""Losses and metrics. Each takes predictions and targets and returns a scalar.

cross_entropy has fused kernels (softmax and log-likelihood in one pass, the probabilities saved for a one-pass
backward); the others are compositions of primitives, so they differentiate through the primitives' rules and
fuse like any elementwise chain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..ir import TensorType
from .common import dtype_np, need_float, rand
from .registry import AttrSpec, OpDef, Pattern, Sample, register

_REDUCTION = AttrSpec("reduction", "str", "mean", ("mean", "sum"))


def _reduce(b: Any, v: int, reduction: str) -> int:
    return b.op1("mean" if reduction == "mean" else "sum", v)


def _same_shape(b: Any, pred: int, target: int, what: str) -> None:
    pt, tt = b.type_of(pred), b.type_of(target)
    need_float(what, pt)
    if pt.shape != tt.shape or pt.dtype != tt.dtype:
        raise ShapeError(f"prediction {pt} and target {tt} must have the same shape and dtype")


def _xent_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    logits, labels = types
    need_float("", logits)
    if logits.rank < 1:
        raise ShapeError(f"logits need a class axis, got {logits}")
    if labels.dtype not in ("i32", "i64") or labels.shape != logits.shape[:-1]:
        raise ShapeError(f"integer labels must have shape {list(logits.shape[:-1])} (the logits {logits} "
                         f"without the class axis), got {labels}")
    return [TensorType(logits.dtype, ()), logits]


def _xent_soft_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    logits, target = types
    need_float("", logits)
    if target != logits:
        raise ShapeError(f"probability targets must match the logits {logits}, got {target}")
    return [TensorType(logits.dtype, ()), logits]


def _xent_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    return [0 if node.attr("reduction") == "mean" else 1], [node.attr("label_smoothing", 0.0)]


def _log_softmax_np(x: np.ndarray) -> np.ndarray:
    s = x - x.max(-1, keepdims=True)
    return s - np.log(np.exp(s).sum(-1, keepdims=True))


def _xent_np(logits: np.ndarray, labels: np.ndarray, reduction: str = "mean",
             label_smoothing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    lp = _log_softmax_np(logits.astype(np.float64)).reshape(-1, logits.shape[-1])
    c = logits.shape[-1]
    q = np.full(lp.shape, label_smoothing / c)
    q[np.arange(lp.shape[0]), labels.reshape(-1)] += 1 - label_smoothing
    per_row = -(q * lp).sum(-1)
    loss = per_row.mean() if reduction == "mean" else per_row.sum()
    return np.asarray(loss, dtype=logits.dtype), np.exp(lp).reshape(logits.shape).astype(logits.dtype)


def _xent_soft_np(logits: np.ndarray, target: np.ndarray, reduction: str = "mean") -> tuple[np.ndarray, ...]:
    lp = _log_softmax_np(logits.astype(np.float64))
    per_row = -(target * lp).sum(-1).reshape(-1)
    loss = per_row.mean() if reduction == "mean" else per_row.sum()
    return np.asarray(loss, dtype=logits.dtype), np.exp(lp).astype(logits.dtype)


def _xent_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (5, 4), dt, -2, 2), rng.integers(0, 4, 5).astype(np.int32)]),
            Sample([rand(rng, (2, 3, 6), dt, -2, 2), rng.integers(0, 6, (2, 3)).astype(np.int64)],
                   {"reduction": "sum", "label_smoothing": 0.1})]


def _xent_soft_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    t = rng.random((4, 5))
    return [Sample([rand(rng, (4, 5), dt, -2, 2), (t / t.sum(-1, keepdims=True)).astype(dtype_np(dt))])]


def _xent_soft_grad(b: Any, n: Any, gs: list[int | None]) -> list[int | None]:
    logits, target = n.inputs
    g_logits = b.op1("softmax_xent_soft_grad", n.outputs[1], target, gs[0], reduction=n.attr("reduction"))
    # d loss / d target = -log_softmax(logits), scaled like the loss (targets may be learned, as in distillation).
    lt = b.type_of(logits)
    rows = 1
    for d in lt.shape[:-1]:
        rows *= int(d)
    scale = -1.0 / rows if n.attr("reduction") == "mean" else -1.0
    g_target = b.op1("mul", b.op1("mul_scalar", b.op1("log_softmax", logits, axis=-1), value=scale), gs[0])
    return [g_logits, g_target]


register(OpDef("softmax_xent", ("logits", "labels"), (_REDUCTION, AttrSpec("label_smoothing", "float", 0.0)),
               infer=_xent_infer, pattern=Pattern.REDUCTION, kernel="softmax_xent", lower=_xent_lower,
               grad=lambda b, n, gs: [b.op1("softmax_xent_grad", n.outputs[1], n.inputs[1], gs[0],
                                            **n.attr_dict), None],
               differentiable_outputs=(0,), user=False, reference=_xent_np, samples=_xent_samples,
               doc="cross-entropy of integer labels from logits; also outputs the softmax for the backward pass"))
register(OpDef("softmax_xent_grad", ("probs", "labels", "gloss"),
               (_REDUCTION, AttrSpec("label_smoothing", "float", 0.0)),
               infer=lambda t, a: [t[0]], pattern=Pattern.REDUCTION, kernel="softmax_xent_grad", lower=_xent_lower,
               differentiable=False, user=False))
register(OpDef("softmax_xent_soft", ("logits", "target"), (_REDUCTION,), infer=_xent_soft_infer,
               pattern=Pattern.REDUCTION, kernel="softmax_xent_soft",
               lower=lambda n, t: ([0 if n.attr("reduction") == "mean" else 1], []),
               grad=_xent_soft_grad,
               differentiable_outputs=(0,), user=False, reference=_xent_soft_np, samples=_xent_soft_samples,
               doc="cross-entropy of probability targets from logits"))
register(OpDef("softmax_xent_soft_grad", ("probs", "target", "gloss"), (_REDUCTION,),
               infer=lambda t, a: [t[0]], pattern=Pattern.REDUCTION, kernel="softmax_xent_soft_grad",
               lower=lambda n, t: ([0 if n.attr("reduction") == "mean" else 1], []),
               differentiable=False, user=False))


def _cross_entropy(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    logits, target = ins
    if b.type_of(target).dtype in ("i32", "i64"):
        return (b.op("softmax_xent", (logits, target), reduction=attrs["reduction"],
                     label_smoothing=attrs["label_smoothing"])[0],)
    if attrs["label_smoothing"]:
        raise ShapeError("label_smoothing applies to integer labels")
    return (b.op("softmax_xent_soft", (logits, target), reduction=attrs["reduction"])[0],)


register(OpDef("cross_entropy", ("logits", "target"), (_REDUCTION, AttrSpec("label_smoothing", "float", 0.0)),
               expand=_cross_entropy,
               doc="softmax cross-entropy from logits; target: integer class labels (shape of logits without its "
                   "last axis) or probabilities (same shape as logits)"))


def _mse(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    _same_shape(b, *ins, "mse")
    return (_reduce(b, b.op1("square", b.op1("sub", *ins)), attrs["reduction"]),)


def _mae(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    _same_shape(b, *ins, "mae")
    return (_reduce(b, b.op1("abs", b.op1("sub", *ins)), attrs["reduction"]),)


def _huber(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    _same_shape(b, *ins, "huber")
    delta = attrs["delta"]
    if delta <= 0:
        raise ShapeError(f"delta must be positive, got {delta}")
    d = b.op1("sub", *ins)
    a = b.op1("abs", d)
    quad = b.op1("mul_scalar", b.op1("square", d), value=0.5)
    lin = b.op1("mul_scalar", b.op1("add_scalar", a, value=-0.5 * delta), value=delta)
    small = b.op1("le", a, b.scalar(delta, b.type_of(d).dtype))
    return (_reduce(b, b.op1("where", small, quad, lin), attrs["reduction"]),)


def _bce(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    x, t = ins
    _same_shape(b, x, t, "binary_cross_entropy")
    # max(x, 0) - x t + log(1 + e^-|x|): the stable form of -t log s(x) - (1-t) log(1 - s(x)).
    per = b.op1("add", b.op1("sub", b.op1("relu", x), b.op1("mul", x, t)),
                b.op1("softplus", b.op1("neg", b.op1("abs", x))))
    return (_reduce(b, per, attrs["reduction"]),)


def _one_hot_values(b: Any, labels: int, classes: int, dtype: str) -> int:
    return b.op1("one_hot", labels, num_classes=classes, dtype=dtype)


def _one_hot_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    (labels,) = types
    if labels.dtype not in ("i32", "i64"):
        raise ShapeError(f"labels must be integers, got {labels}")
    if attrs["num_classes"] < 1:
        raise ShapeError("num_classes must be positive")
    return [TensorType(attrs["dtype"], tuple(labels.shape) + (attrs["num_classes"],))]


def _one_hot_np(labels: np.ndarray, num_classes: int, dtype: str = "f32") -> np.ndarray:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise IndexError(f"one_hot: a label is out of range for {num_classes} classes")
    return (labels[..., None] == np.arange(num_classes)).astype(dtype_np(dtype))


def _nll(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    logp, labels = ins
    lt = b.type_of(logp)
    need_float("nll", lt)
    if b.type_of(labels).shape != lt.shape[:-1]:
        raise ShapeError(f"labels {b.type_of(labels)} must match the log-probabilities {lt} without the last axis")
    picked = b.op1("sum", b.op1("mul", logp, _one_hot_values(b, labels, int(lt.shape[-1]), lt.dtype)), axis=-1)
    return (b.op1("neg", _reduce(b, picked, attrs["reduction"])),)


def _kl(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    logq, p = ins
    _same_shape(b, logq, p, "kl_divergence")
    dtype = b.type_of(p).dtype
    zero = b.scalar(0.0, dtype)
    positive = b.op1("gt", p, zero)
    # 0 log 0 = 0: the log is taken of 1 where p is 0, and the term masked out.
    safe_p = b.op1("where", positive, p, b.scalar(1.0, dtype))
    term = b.op1("where", positive, b.op1("mul", p, b.op1("sub", b.op1("log", safe_p), logq)), zero)
    pt = b.type_of(p)
    if attrs["reduction"] == "sum" or pt.rank < 2:
        return (b.op1("sum", term),)
    # 'batchmean': the sum over each sample, averaged over the batch (axis 0).
    per_sample = b.op1("sum", term, axis=tuple(range(1, pt.rank)))
    return (b.op1("mean", per_sample),)


def _accuracy(b: Any, ctx: Any, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    logits, labels = ins
    lt = b.type_of(logits)
    need_float("accuracy", lt)
    if b.type_of(labels).shape != lt.shape[:-1]:
        raise ShapeError(f"labels {b.type_of(labels)} must match the logits {lt} without the class axis")
    best = b.op1("max", logits, axis=-1, keepdims=True)
    is_best = b.op1("cast", b.op1("ge", logits, best), dtype=lt.dtype)
    hit = b.op1("sum", b.op1("mul", is_best, _one_hot_values(b, labels, int(lt.shape[-1]), lt.dtype)), axis=-1)
    return (b.op1("mean", hit),)


_PAIR = ("pred", "target")
register(OpDef("mse", _PAIR, (_REDUCTION,), expand=_mse, doc="mean squared error"))
register(OpDef("mae", _PAIR, (_REDUCTION,), expand=_mae, doc="mean absolute error"))
register(OpDef("huber", _PAIR, (AttrSpec("delta", "float", 1.0), _REDUCTION), expand=_huber,
               doc="squared error below delta, linear above (smooth L1)"))
register(OpDef("binary_cross_entropy", ("logits", "target"), (_REDUCTION,), expand=_bce,
               doc="sigmoid cross-entropy from logits against targets in [0, 1], computed stably"))
register(OpDef("nll", ("log_probs", "labels"), (_REDUCTION,), expand=_nll,
               doc="negative log-likelihood of integer labels given log-probabilities (e.g. log_softmax output); "
                   "a label outside [0, classes) is an IndexError"))
register(OpDef("kl_divergence", ("log_q", "p"), (AttrSpec("reduction", "str", "mean", ("mean", "sum")),),
               expand=_kl, doc="KL(p || q) from log q and p, summed over elements and divided by the batch "
                               "size (PyTorch's 'batchmean') with reduction='mean'"))
register(OpDef("accuracy", ("logits", "labels"), expand=_accuracy,
               doc="fraction of rows whose largest logit is at the label (a metric; not differentiable); a label "
                   "outside [0, classes) is an IndexError"))
register(OpDef("one_hot", ("labels",), (AttrSpec("num_classes", "int"), AttrSpec("dtype", "dtype", "f32")),
               infer=_one_hot_infer, kernel="one_hot", lower=lambda n, t: ([n.attr("num_classes")], []),
               differentiable=False, reference=_one_hot_np,
               samples=lambda rng, dt: [Sample([rng.integers(0, 4, (2, 3)).astype(np.int32)],
                                               {"num_classes": 4, "dtype": dt}, grad=False),
                                        Sample([rng.integers(0, 3, 5)], {"num_classes": 3}, grad=False)],
               doc="integer labels to one-hot vectors along a new last axis; a label outside [0, num_classes) "
                   "is an IndexError when the model runs (as in nll, accuracy, cross_entropy and embedding)"))
