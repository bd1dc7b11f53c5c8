"""Dead-code elimination: removes nodes whose results reach no output.

A node that only writes persistent state (an optimizer update, which has no outputs) is a root: its effect is
the point. A node that computes a result and writes state on the side (batch norm in training, moving its
running statistics) runs only when its result is needed, as a PyTorch module the step never calls never
updates its statistics: a GAN's generator phase leaves the statistics of the discriminator's call on the real
batch alone, and a train-mode call moves only those of the layers its outputs go through.
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
        if registry.get(node.op).mutates and not node.outputs or any(o in live for o in node.outputs):
            kept.append(node)
            live.update(node.inputs)
    return prune_values(graph.with_nodes(reversed(kept)))
