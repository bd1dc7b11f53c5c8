"""Common-subexpression elimination: two nodes with the same op, the same inputs and the same attributes
compute the same values, so the later one is dropped and its readers read the earlier one's outputs.

Autodiff produces such duplicates (the gradient of x * x is g * x twice) and so do layers that rebuild the
same broadcast or cast. Nodes that write into their inputs (optimizer updates, running statistics) are never
merged, and a value counts as a different input once such a node has written it, so a read before an
update is never merged with a read after it. Dropout masks are a function of (seed, step, salt, element):
equal salts on the same input are the same mask and may merge; different salts differ in the attributes.
Small constants with equal contents count as one value first (autodiff and constant folding make many
copies of the same scalar), so the nodes reading them can merge too.
"""

from __future__ import annotations

from typing import Any, Hashable

from ..ir import Graph, Node
from ..ops import registry
from .context import PassContext
from .rewrite import prune_values, resolve, substitute


def eliminate_common_subexpressions(graph: Graph, ctx: PassContext) -> Graph:
    mapping = _equal_constants(graph)
    version: dict[int, int] = {}  # times a value has been written in place so far
    seen: dict[Hashable, Node] = {}
    kept: list[Node] = []

    for node in graph.nodes:
        op = registry.get(node.op)
        inputs = tuple(resolve(mapping, v) for v in node.inputs)
        if op.mutates:
            for v in op.mutated_inputs(inputs, node.attrs):
                version[v] = version.get(v, 0) + 1
            kept.append(node)
            continue
        key: Any = (node.op, tuple((v, version.get(v, 0)) for v in inputs), node.attrs)
        first = seen.get(key)
        if first is not None and _same_types(graph, first, node):
            mapping.update(zip(node.outputs, first.outputs))
            continue
        seen[key] = node
        kept.append(node)
    if not mapping:
        return graph
    return prune_values(substitute(graph, kept, mapping))


SMALL_CONST = 4096  # elements; comparing larger constants byte by byte costs more than it finds


def _equal_constants(graph: Graph) -> dict[int, int]:
    """Each small constant -> the first constant of the same type and contents, when that is another one."""
    first: dict[Hashable, int] = {}
    mapping: dict[int, int] = {}
    for v, array in graph.consts.items():
        if array.size <= SMALL_CONST:
            kept = first.setdefault((graph.values[v], array.tobytes()), v)
            if kept != v:
                mapping[v] = kept
    return mapping


def _same_types(graph: Graph, a: Node, b: Node) -> bool:
    return [graph.values[o] for o in a.outputs] == [graph.values[o] for o in b.outputs]
