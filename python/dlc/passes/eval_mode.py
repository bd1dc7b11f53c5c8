"""Evaluation mode: removes what only training does. Dropout becomes the identity, so an evaluation plan
has no mask kernel at all (one .dlm file serves training and deployment); batch norm normalizes with its
running statistics instead of updating them."""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node, freeze_attrs
from ..ops import registry
from .context import PassContext
from .rewrite import prune_values, substitute

TRAINING_ONLY = ("dropout_mask_mul",)
# Training forms with an evaluation form over the same inputs; only the first output survives (the others,
# batch statistics, must be unused in an evaluation graph; dead-code elimination runs next).
EVAL_FORMS = {"batch_norm_train": "batch_norm_eval"}


def _eval_form(node: Node) -> Node:
    op = registry.get(EVAL_FORMS[node.op])
    attrs = {k: v for k, v in node.attrs if op.attr_spec(k) is not None}
    return replace(node, op=op.name, outputs=node.outputs[:1], attrs=freeze_attrs(attrs))


def strip_training_only(graph: Graph, ctx: PassContext) -> Graph:
    if ctx.training:
        return graph
    # A training form whose batch statistics the model itself reads or outputs (batch_norm_train called by
    # name) keeps its training form: those values exist only there.
    used = {v for n in graph.nodes for v in n.inputs} | {v for _, v in graph.outputs}
    mapping: dict[int, int] = {}
    kept = []
    for node in graph.nodes:
        if node.op in TRAINING_ONLY:
            mapping[node.outputs[0]] = node.inputs[0]
        elif node.op in EVAL_FORMS and not used.intersection(node.outputs[1:]):
            kept.append(_eval_form(node))
        else:
            kept.append(node)
    if not mapping and not any(n.op in EVAL_FORMS for n in graph.nodes):
        return graph
    return prune_values(substitute(graph, kept, mapping))


def freeze_normalization(graph: Graph, frozen: set[int]) -> Graph:
    """Training graphs: a normalization layer whose scale parameter is frozen runs in evaluation form, so its
    running statistics are neither used from the batch nor updated (freezing freezes everything)."""
    nodes = [_eval_form(n) if n.op in EVAL_FORMS and n.inputs[1] in frozen else n for n in graph.nodes]
    return prune_values(graph.with_nodes(nodes))
