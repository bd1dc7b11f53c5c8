"""Small helpers passes share for rebuilding graphs."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from ..ir import Graph, Node


def resolve(mapping: dict[int, int], v: int) -> int:
    """The value v finally stands for, following a chain of replacements."""
    while v in mapping:
        v = mapping[v]
    return v


def substitute(graph: Graph, nodes: Iterable[Node], mapping: dict[int, int]) -> Graph:
    """A graph with `nodes`, where every use of a value in `mapping` reads its replacement instead."""
    new_nodes = tuple(replace(n, inputs=tuple(resolve(mapping, i) for i in n.inputs)) for n in nodes)
    outputs = tuple((name, resolve(mapping, v)) for name, v in graph.outputs)
    return replace(graph, nodes=new_nodes, outputs=outputs)


def prune_values(graph: Graph) -> Graph:
    """Drops value types and constants that no node, input, parameter or output refers to any more."""
    used = {v for _, v in graph.inputs} | {v for _, v in graph.outputs} | {p.value for p in graph.params}
    for n in graph.nodes:
        used.update(n.inputs)
        used.update(n.outputs)
    return replace(graph, values={v: t for v, t in graph.values.items() if v in used},
                   consts={v: c for v, c in graph.consts.items() if v in used})
