"""Evaluation mode: removes what only training does. Dropout becomes the identity, so an evaluation plan
has no mask kernel at all (one .dlm file serves training and deployment)."""

from __future__ import annotations

from ..ir import Graph
from . import PassContext
from .rewrite import prune_values, substitute

TRAINING_ONLY = ("dropout_mask_mul",)


def strip_training_only(graph: Graph, ctx: PassContext) -> Graph:
    if ctx.training:
        return graph
    mapping: dict[int, int] = {}
    kept = []
    for node in graph.nodes:
        if node.op in TRAINING_ONLY:
            mapping[node.outputs[0]] = node.inputs[0]
        else:
            kept.append(node)
    if not mapping:
        return graph
    return prune_values(substitute(graph, kept, mapping))
