"""Dead-code elimination: removes nodes whose results reach no output.

Nodes that write persistent state (optimizer updates, running statistics) are roots: they have effects even
though nothing reads their outputs.
"""

from __future__ import annotations

from ..ir import Graph
from ..ops import registry
from .context import PassContext
from .rewrite import prune_values


def eliminate_dead_code(graph: Graph, ctx: PassContext) -> Graph:
    live = {v for _, v in graph.outputs}
    kept = []
    for node in reversed(graph.nodes):
        if registry.get(node.op).mutates or any(o in live for o in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return prune_values(graph.with_nodes(reversed(kept)))
