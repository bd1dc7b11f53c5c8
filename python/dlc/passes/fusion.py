"""Operator fusion: puts nodes into groups that lower to one kernel each.

Following TVM's pattern lattice: a chain of elementwise/broadcast ops with one iteration shape becomes one
elementwise group (one pass over memory, intermediates stay in registers); a matmul absorbs the elementwise
ops after it that keep its output type (bias, activation, residual add, scale) as its epilogue. Reductions and
opaque ops stay alone. A value used outside its group is still written (the group gets an extra output), so in
training the forward kernels also produce what the backward pass reads.

A node may join a producer's group only if that creates no cycle between groups: none of its other inputs
may depend on the group. Groups are then made contiguous by a stable topological sort of the groups.
"""

from __future__ import annotations

from dataclasses import replace

from ..ewprogram import MAX_INPUTS
from ..ir import Graph, Node
from ..ops import registry
from . import PassContext


def _fusable(node: Node) -> bool:
    return registry.get(node.op).emit is not None


def fuse_operators(graph: Graph, ctx: PassContext) -> Graph:
    producer_idx: dict[int, int] = {}
    group_of: list[int] = []
    deps: list[set[int]] = []  # groups each node transitively depends on (its own included)
    group_kind: dict[int, str] = {}
    group_type: dict[int, object] = {}
    group_inputs: dict[int, set[int]] = {}
    group_values: dict[int, set[int]] = {}
    next_group = 0

    for i, node in enumerate(graph.nodes):
        node_deps: set[int] = set()
        for v in node.inputs:
            if v in producer_idx:
                node_deps |= deps[producer_idx[v]]
        chosen = -1
        if _fusable(node) and len(node.outputs) == 1:
            out_type = graph.values[node.outputs[0]]
            for v in node.inputs:
                if v not in producer_idx:
                    continue
                g = group_of[producer_idx[v]]
                if g < 0 or not _compatible(graph, node, g, group_kind, group_type, out_type):
                    continue
                if any(u in producer_idx and group_of[producer_idx[u]] != g and g in deps[producer_idx[u]]
                       for u in node.inputs):
                    continue
                new_inputs = {u for u in node.inputs if u not in group_values[g]}
                if len(group_inputs[g] | new_inputs) > MAX_INPUTS - 2:
                    continue
                chosen = g
                break
        if chosen < 0 and (_fusable(node) and len(node.outputs) == 1 or node.op == "matmul"):
            chosen = next_group
            next_group += 1
            group_kind[chosen] = "matmul" if node.op == "matmul" else "ew"
            group_type[chosen] = graph.values[node.outputs[0]]
            group_inputs[chosen] = set()
            group_values[chosen] = set()
        if chosen >= 0:
            group_inputs[chosen] |= {u for u in node.inputs if u not in group_values[chosen]}
            group_values[chosen] |= set(node.outputs)
            node_deps = node_deps | {chosen}
        group_of.append(chosen)
        deps.append(node_deps)
        for o in node.outputs:
            producer_idx[o] = i

    nodes = [replace(n, group=g) for n, g in zip(graph.nodes, group_of)]
    return graph.with_nodes(_contiguous(nodes))


def _compatible(graph: Graph, node: Node, g: int, kind: dict[int, str], gtype: dict[int, object],
                out_type: object) -> bool:
    if kind[g] == "matmul":
        return out_type == gtype[g]
    return getattr(out_type, "shape", None) == getattr(gtype[g], "shape", None)


def _contiguous(nodes: list[Node]) -> list[Node]:
    """Stable topological order of units (a group or a lone node) so each group's nodes are adjacent."""
    unit_of: list[tuple[str, int]] = [("g", n.group) if n.group >= 0 else ("n", i) for i, n in enumerate(nodes)]
    members: dict[tuple[str, int], list[int]] = {}
    for i, u in enumerate(unit_of):
        members.setdefault(u, []).append(i)
    producer = {o: i for i, n in enumerate(nodes) for o in n.outputs}
    preds: dict[tuple[str, int], set[tuple[str, int]]] = {u: set() for u in members}
    readers: dict[int, set[tuple[str, int]]] = {}
    for u, idxs in members.items():
        for i in idxs:
            for v in nodes[i].inputs:
                readers.setdefault(v, set()).add(u)
                if v in producer and unit_of[producer[v]] != u:
                    preds[u].add(unit_of[producer[v]])
    # A node that writes into a tensor (an optimizer update) runs after every other reader of that tensor.
    for u, idxs in members.items():
        for i in idxs:
            for v in registry.get(nodes[i].op).mutated_inputs(nodes[i].inputs):
                preds[u] |= readers.get(v, set()) - {u}
    order = sorted(members, key=lambda u: members[u][0])
    done: set[tuple[str, int]] = set()
    out: list[Node] = []
    while len(done) < len(order):
        progressed = False
        for u in order:
            if u not in done and preds[u] <= done:
                out.extend(nodes[i] for i in members[u])
                done.add(u)
                progressed = True
                break
        if not progressed:
            raise AssertionError("fusion produced a cycle between groups")
    return out
