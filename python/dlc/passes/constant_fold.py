"""Constant folding: a node whose inputs are all constants is run once at compile time and replaced by a
constant holding its result.

The node is evaluated by the same kernel the plan would run (a one-node graph, lowered and run), so a folded
value is bit-identical to the one computed at run time. Two kinds of node are left alone: those whose result
depends on the run (dropout masks are seeded by the step) or that write into an input, and those whose
result is larger than their largest input (broadcast_to of a scalar), which would trade a value computed in
registers for a large constant read from memory on every run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..evaluation import evaluate
from ..ir import Graph, Node
from ..ops import registry
from .context import PassContext
from .rewrite import prune_values

def fold_constants(graph: Graph, ctx: PassContext) -> Graph:
    consts = dict(graph.consts)
    kept: list[Node] = []
    for node in graph.nodes:
        if _foldable(graph, node, consts):
            # The node's outputs keep their ids and become constants: no reader needs rewiring.
            consts.update(zip(node.outputs, _evaluate(graph, node, consts)))
        else:
            kept.append(node)
    if len(kept) == len(graph.nodes):
        return graph
    return prune_values(replace(graph, nodes=tuple(kept), consts=consts))


def _foldable(graph: Graph, node: Node, consts: dict[int, np.ndarray]) -> bool:
    op = registry.get(node.op)
    if op.random or op.mutates or not node.inputs or any(v not in consts for v in node.inputs):
        return False
    largest_in = max(consts[v].size for v in node.inputs)
    return all(_numel(graph, o) <= max(largest_in, 1) for o in node.outputs)


def _numel(graph: Graph, v: int) -> int:
    n = 1
    for d in graph.values[v].shape:
        n *= int(d)
    return n


def _evaluate(graph: Graph, node: Node, consts: dict[int, np.ndarray]) -> list[np.ndarray]:
    one = Graph(values={v: graph.values[v] for v in (*node.inputs, *node.outputs)}, nodes=(replace(node, group=-1),),
                inputs=(), outputs=tuple((f"out{k}", o) for k, o in enumerate(node.outputs)),
                consts={v: consts[v] for v in node.inputs})
    return evaluate(one)
