"""Loss ops and GatherElements, written with one_hot. NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss
cover every ONNX form (classes on axis 1 with any number of extra axes, per-class weights, ignore_index, the
three reductions): the picked log-probability is sum(one_hot(target) * log_prob) over the classes."""

from __future__ import annotations

from typing import Any

from .registry import converts
from .values import Node, Unsupported, literal


def _nll(im: Any, node: Node, logp: str, rank: int, classes: int, dtype: str) -> None:
    target = im.tensor(node.inputs[1])
    if target.dtype not in ("i32", "i64"):
        raise Unsupported(f"labels of type {target.dtype}")
    lp = logp if rank == 2 else im.temp(f"transpose({logp}, perm={literal([0, *range(2, rank), 1])})",
                                        "classes_last")
    labels, valid = target.name, None
    ignore = node.attr("ignore_index")
    if ignore is not None:  # an ignored label may lie outside [0, C): one_hot sees 0 there instead
        valid = im.temp(f"{target.name} != {int(ignore)}", "counted")
        labels = im.temp(f"where({valid}, {target.name}, {target.name} * 0)", "labels")
    onehot = im.temp(f"one_hot({labels}, {classes}, dtype=\"{dtype}\")", "onehot")
    loss = im.temp(f"-sum({onehot} * {lp}, axis=-1)", "picked")
    weight = None
    if len(node.inputs) > 2 and node.inputs[2]:
        weight = im.temp(f"sum({onehot} * {im.tensor(node.inputs[2]).name}, axis=-1)", "label_weight")
    if valid is not None:
        counted = f"cast({valid}, \"{dtype}\")"
        weight = im.temp(f"{weight} * {counted}" if weight else counted, "label_weight")
    if weight is not None:
        loss = im.temp(f"{loss} * {weight}", "weighted")
    reduction = node.attr("reduction", "mean")
    if reduction == "none":
        expr = loss
    elif reduction == "sum":
        expr = f"sum({loss})"
    elif reduction == "mean":
        expr = f"sum({loss}) / sum({weight})" if weight else f"mean({loss})"
    else:
        raise Unsupported(f"reduction={reduction!r}")
    im.emit(node.outputs[0], expr)


@converts("NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss")
def nll_loss(im: Any, node: Node) -> None:
    """NLL of log-probabilities, or of log_softmax(scores, axis=1) (and that as the optional second output)."""
    node.only("reduction", "ignore_index")
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64") or x.rank < 2:
        raise Unsupported(f"inputs of type {x.dtype} and rank {x.rank}")
    logp = x.name
    if node.op == "SoftmaxCrossEntropyLoss":
        logp = im.temp(f"log_softmax({x.name}, axis=1)", "log_prob")
        if len(node.outputs) > 1 and im.is_used(node.outputs[1]):
            im.emit(node.outputs[1], logp)
    _nll(im, node, logp, x.rank, x.static("the class axis")[1], x.dtype)


@converts("GatherElements")
def gather_elements(im: Any, node: Node) -> None:
    """out[..i..] = data[..idx[..i..]..] along `axis`, as a one-hot contraction: the index axis moves last,
    one_hot(idx, size) [..., k, size] times the data [..., 1, size], summed over size (negative indices count
    from the end). The other axes of the indices must match the data's."""
    node.only("axis")
    data, idx = im.tensor(node.inputs[0]), im.tensor(node.inputs[1])
    if data.dtype not in ("f32", "f64") or idx.dtype not in ("i32", "i64"):
        raise Unsupported(f"GatherElements of {data.dtype} data by {idx.dtype} indices")
    rank = data.rank
    axis = int(node.attr("axis", 0)) % rank
    size = data.static("GatherElements' axis")[axis]
    if idx.rank != rank or any(a != b for i, (a, b) in enumerate(zip(idx.shape, data.shape)) if i != axis):
        raise Unsupported(f"indices {list(idx.shape)} differ from the data {list(data.shape)} off the axis")
    to_last = [i for i in range(rank) if i != axis] + [axis]
    back = [to_last.index(i) for i in range(rank)]
    d, i = data.name, idx.name
    if axis != rank - 1:
        d = im.temp(f"transpose({d}, perm={literal(to_last)})", "data_last")
        i = im.temp(f"transpose({i}, perm={literal(to_last)})", "idx_last")
    i = im.temp(f"where({i} < 0, {i} + {size}, {i})", "idx")
    oh = im.temp(f"one_hot({i}, {size}, dtype=\"{data.dtype}\")", "onehot")
    picked = im.temp(f"sum({oh} * unsqueeze({d}, -2), axis=-1)", "picked")
    im.emit(node.outputs[0], picked if axis == rank - 1 else f"transpose({picked}, perm={literal(back)})")
