"""Algebraic simplification: removes nodes that do nothing and shortens chains of shape ops.

- x * 1, x + 0, x - 0, x / 1 (a constant of ones or zeros that does not broadcast x to a larger shape),
  mul_scalar(x, 1), add_scalar(x, 0), pow_scalar(x, 1): x;
- stop_gradient(x) (autodiff has already run);
- cast to x's own dtype, and a reshape (or any view op) to x's own shape: x;
- view of a view (reshape chains, flatten then reshape): one reshape of the first input to the final shape;
- transpose of a transpose: one transpose by the composed permutation, or x when that is the identity.

Front ends and gradient rules produce these (the seed gradient is a constant 1, sum_to of a value that was
not broadcast is a reshape), and each costs a kernel or blocks a fusion. x * 0 is left alone: it is not 0
when x is inf or NaN.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..ir import Graph, Node, freeze_attrs
from ..ops import registry
from ..ops.shape import _perm
from .context import PassContext
from .rewrite import prune_values, resolve, substitute

IDENTITY_SCALARS = {"mul_scalar": 1.0, "add_scalar": 0.0, "pow_scalar": 1.0}
# Binary ops whose second operand, a constant of this value, leaves the first unchanged (and vice versa
# for the commutative ones).
IDENTITY_OPERANDS = {"mul": (1.0, True), "add": (0.0, True), "sub": (0.0, False), "div": (1.0, False)}
TRANSPOSES = ("transpose", "permute")


def simplify_algebra(graph: Graph, ctx: PassContext) -> Graph:
    producer: dict[int, Node] = {}
    mapping: dict[int, int] = {}
    kept: list[Node] = []

    for node in graph.nodes:
        node = replace(node, inputs=tuple(resolve(mapping, v) for v in node.inputs))
        same = _identity_input(graph, node)
        if same is not None:
            mapping[node.outputs[0]] = same
            continue
        node = _collapse_chain(graph, node, producer)
        if node.op == "reshape" and graph.values[node.inputs[0]] == graph.values[node.outputs[0]]:
            mapping[node.outputs[0]] = node.inputs[0]
            continue
        if node.op == "transpose" and node.attr("perm") == tuple(range(graph.values[node.inputs[0]].rank)):
            mapping[node.outputs[0]] = node.inputs[0]
            continue
        for o in node.outputs:
            producer[o] = node
        kept.append(node)
    if len(kept) == len(graph.nodes) and all(a == b for a, b in zip(kept, graph.nodes)):
        return graph
    return prune_values(substitute(graph, kept, mapping))


def _identity_input(graph: Graph, node: Node) -> int | None:
    """The input this node returns unchanged, if it is one of the no-op forms."""
    if node.op == "stop_gradient":  # only autodiff, which runs before the passes, needs to see it
        return node.inputs[0]
    if len(node.outputs) != 1:
        return None
    out_t = graph.values[node.outputs[0]]
    if node.op in IDENTITY_SCALARS and node.attr("value") == IDENTITY_SCALARS[node.op]:
        return node.inputs[0]
    if node.op == "cast" and graph.values[node.inputs[0]] == out_t:
        return node.inputs[0]
    if registry.get(node.op).view and graph.values[node.inputs[0]] == out_t:
        return node.inputs[0]
    if node.op in IDENTITY_OPERANDS:
        neutral, commutes = IDENTITY_OPERANDS[node.op]
        pairs = [(0, 1), (1, 0)] if commutes else [(0, 1)]
        for keep, const in pairs:
            c = graph.consts.get(node.inputs[const])
            if (c is not None and graph.values[node.inputs[keep]] == out_t and c.size
                    and bool(np.all(c == neutral))):
                return node.inputs[keep]
    return None


def _collapse_chain(graph: Graph, node: Node, producer: dict[int, Node]) -> Node:
    """A view of a view becomes one reshape of the first input; a transpose of a transpose, one transpose."""
    first = producer.get(node.inputs[0]) if node.inputs else None  # fills and random draws read nothing
    if first is None:
        return node
    if registry.get(node.op).view and registry.get(first.op).view:
        shape = tuple(graph.values[node.outputs[0]].shape)
        return replace(node, op="reshape", inputs=first.inputs, attrs=freeze_attrs({"shape": shape}))
    if node.op in TRANSPOSES and first.op in TRANSPOSES:
        rank = graph.values[first.inputs[0]].rank
        inner = _perm(first.attr_dict, rank)
        outer = _perm(node.attr_dict, rank)
        return replace(node, op="transpose", inputs=first.inputs,
                       attrs=freeze_attrs({"perm": tuple(inner[p] for p in outer)}))
    return node
