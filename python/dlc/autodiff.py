"""Reverse-mode differentiation as a graph transform.

`backward` appends the gradient computation to a graph, built from each op's gradient rule in the registry,
so the backward pass is made of ordinary nodes (phase "backward") that fusion and memory planning treat like
any others. There is no tape and nothing runs in Python per op. Only nodes on a path from a differentiated
value to the loss get gradients; gradients reaching a value along several paths are summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DlcError
from .ir import FLOAT_DTYPES, Graph, GraphBuilder
from .ops import registry


@dataclass(frozen=True)
class Gradients:
    graph: Graph
    grads: dict[int, int]  # value -> its gradient value (only for values that reach the loss)


def backward(graph: Graph, loss: int, wrt: list[int]) -> Gradients:
    loss_type = graph.values[loss]
    if loss_type.shape != ():
        raise DlcError(f"the loss must be a scalar, got {loss_type}; reduce it with mean() or sum()")
    if loss_type.dtype not in FLOAT_DTYPES:
        raise DlcError(f"the loss must be floating point, got {loss_type}")

    depends = _depends_on(graph, set(wrt))
    reaches = _reaches(graph, loss)
    b = GraphBuilder(graph)
    b.phase = "backward"
    grads: dict[int, int] = {loss: b.const(np.ones((), dtype=np.float64), loss_type.dtype)}
    for node in reversed(graph.nodes):
        gouts = [grads.get(o) for o in node.outputs]
        if all(g is None for g in gouts):
            continue
        targets = [v for v in node.inputs if v in depends and v in reaches]
        if not targets:
            continue
        op = registry.get(node.op)
        if not op.differentiable:
            continue
        if op.grad is None:
            raise DlcError(f"op '{node.op}' has no gradient rule")
        b.loc, b.scope = node.loc, node.scope
        gins = op.grad(b, node, gouts)
        if len(gins) != len(node.inputs):
            raise DlcError(f"gradient rule of '{node.op}' returned {len(gins)} gradients for "
                           f"{len(node.inputs)} inputs")
        for v, g in zip(node.inputs, gins):
            if g is None or v not in targets:
                continue
            if b.values[g] != graph.values[v]:
                raise DlcError(f"gradient rule of '{node.op}' gave {b.values[g]} for an input of type "
                               f"{graph.values[v]}")
            grads[v] = g if v not in grads else b.op1("add", grads[v], g)
    return Gradients(b.build(), {v: g for v, g in grads.items() if v != loss})


def _depends_on(graph: Graph, sources: set[int]) -> set[int]:
    out = set(sources)
    for node in graph.nodes:
        if any(v in out for v in node.inputs):
            out.update(node.outputs)
    return out


def _reaches(graph: Graph, target: int) -> set[int]:
    out = {target}
    for node in reversed(graph.nodes):
        if any(o in out for o in node.outputs):
            out.update(node.inputs)
    return out
