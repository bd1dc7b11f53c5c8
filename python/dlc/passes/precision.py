"""Reduced precision: marks the nodes whose weight runs in bf16 or int8 (dlc/precision.py has the whole story).

A node qualifies when its op declares `reduced_precision` with a kernel for the policy's precision, the node is
in a form that kernel takes (`eligible`), it belongs to the forward pass (a gradient's products stay f32), and its
weight operand is computed from parameters and constants alone (a weight, or a batch-norm-folded weight), never
from an input. Its layer is named by the largest parameter the weight is computed from (`h1.weight` -> `h1`);
a layer in the policy's `keep_f32` stays f32. The mark is the node attribute `precision` (and `precision_data`
when the policy has data for the layer), which lowering turns into the kernel key.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import Graph, Node
from ..ops import registry
from ..precision import layer_name
from .context import PassContext


def available(precision: str) -> bool:
    """Whether some op has a kernel for `precision` (f32 always)."""
    return precision == "f32" or any(op.reduced_precision is not None and op.reduced_precision.kernel_for(precision)
                                     for op in registry.all_ops().values())


def weight_layers(graph: Graph) -> dict[int, str]:
    """Every value computed from parameters and constants alone -> the layer it belongs to (named by its
    largest parameter); values with no parameter behind them (pure constants) are left out."""
    largest: dict[int, tuple[int, str]] = {}
    for p in graph.params:
        size = 1
        for d in p.type.shape:
            size *= int(d) if isinstance(d, int) else 1
        largest[p.value] = (size, p.name)
    fixed = set(largest) | set(graph.consts)
    for node in graph.nodes:
        op = registry.lookup(node.op)
        if not node.inputs or (op is not None and op.random) or not all(v in fixed for v in node.inputs):
            continue
        behind = [largest[v] for v in node.inputs if v in largest]
        fixed.update(node.outputs)
        if behind:
            for o in node.outputs:
                largest[o] = max(behind)
    return {v: layer_name(name) for v, (_, name) in largest.items()}


def reduced_nodes(graph: Graph) -> list[tuple[Node, str]]:
    """The nodes that can run in reduced precision, with their layer names, in graph order (for reports)."""
    layers = weight_layers(graph)
    out = []
    for node in graph.nodes:
        op = registry.lookup(node.op)
        fact = op.reduced_precision if op is not None else None
        if fact is None or node.phase != "forward":
            continue
        layer = layers.get(node.inputs[fact.weight])
        types = [graph.values[v] for v in node.inputs]
        if layer is not None and (fact.eligible is None or fact.eligible(node, types)):
            out.append((node, layer))
    return out


def assign_precision(graph: Graph, ctx: PassContext) -> Graph:
    policy = ctx.precision
    if not policy.reduced:
        return graph
    marked: dict[int, tuple[tuple[str, object], ...]] = {}
    for node, layer in reduced_nodes(graph):
        precision = policy.for_layer(layer)
        fact = registry.get(node.op).reduced_precision
        if precision == "f32" or fact is None or not fact.accepts(precision, node, [graph.values[v] for v in
                                                                                   node.inputs]):
            continue
        data = policy.data_for(layer)
        marked[id(node)] = (("precision", precision),) + ((("precision_data", data),) if data is not None else ())
    if not marked:
        return graph
    return graph.with_nodes(replace(n, attrs=tuple(n.attrs) + marked[id(n)]) if id(n) in marked else n
                            for n in graph.nodes)
