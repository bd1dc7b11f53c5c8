"""Operator fusion: puts nodes into groups that lower to one kernel each.

Following TVM's pattern lattice: a chain of elementwise/broadcast ops with one iteration shape becomes one
elementwise group (one pass over memory, intermediates stay in registers); a matmul or a convolution (a
"head": Pattern.OUT_ELEMENTWISE_FUSABLE in the op registry) absorbs the elementwise ops after it that keep its output type (bias, batch-norm scale
and shift, activation, residual add, scale) as its epilogue. Reductions and
opaque ops stay alone. A value used outside its group is still written (the group gets an extra output), so in
training the forward kernels also produce what the backward pass reads.

A node may join a producer's group only if that creates no cycle between groups: none of its other inputs
may depend on the group. "Depend" is between units (a group runs as one kernel, so it depends on everything
any member reads), and a group gains dependencies as members join: `Ancestry` keeps, for every unit, the
groups it transitively depends on, and passes each new dependency of a group on to the units downstream of
it. (A per-node snapshot misses that: two sibling groups, each joined later by a node reading the other's
value, form a cycle, as a VAE's mu and logvar did in training.) Groups are then made contiguous by a stable
topological sort of the groups.

A reduction that can be a tail (sum, mean, sum_to: `OpDef.tail`) whose input an elementwise group computes becomes that group's tail: the
group lowers to one kernel that reduces the value as it computes it, so mse, mean(y * y) or the bias gradient
sum_to(g * relu_mask(y)) never write their elementwise intermediate.

In a training graph a backward node joins a forward group only when that stores nothing more: when every
value it reads from the group is read by nobody else, so its output replaces the one the forward kernel
would have written (gelu_grad(x) beside gelu(x)). Otherwise (relu_mask(h) where h itself is kept for the
weight gradient) the forward kernel would write a second tensor that stays live until the backward pass.
"""

from __future__ import annotations

from dataclasses import replace

from ..ewprogram import MAX_INPUTS
from ..ir import Graph, Node, downstream
from ..ops import registry
from .context import PassContext
from .fusion_units import Ancestry, Unit, in_place_order
from .row_fusion import MAX_ROW_TAILS, fuse_row_reductions


def _fusable(node: Node) -> bool:
    return registry.get(node.op).elementwise


def _head(node: Node) -> bool:
    return registry.get(node.op).epilogue_head


def fuse_operators(graph: Graph, ctx: PassContext) -> Graph:
    producer_idx: dict[int, int] = {}
    group_of: list[int] = []
    ancestry = Ancestry()
    group_kind: dict[int, str] = {}
    group_type: dict[int, object] = {}
    group_inputs: dict[int, set[int]] = {}
    group_values: dict[int, set[int]] = {}
    group_phase: dict[int, str] = {}
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.inputs:
            readers.setdefault(v, []).append(i)
    next_group = 0

    def unit_of(v: int) -> Unit | None:
        if v not in producer_idx:
            return None
        j = producer_idx[v]
        return ("g", group_of[j]) if group_of[j] >= 0 else ("n", j)

    for i, node in enumerate(graph.nodes):
        chosen = -1
        if _fusable(node) and len(node.outputs) == 1:
            out_type = graph.values[node.outputs[0]]
            for v in node.inputs:
                if v not in producer_idx:
                    continue
                g = group_of[producer_idx[v]]
                if g < 0 or not _compatible(graph, node, g, group_kind, group_type, out_type):
                    continue
                if node.phase != group_phase[g] and not _replaces_a_stored_value(node, i, g, group_values[g],
                                                                                  group_of, readers):
                    continue
                if any(unit_of(u) not in (None, ("g", g)) and ancestry.depends_on(unit_of(u), g)
                       for u in node.inputs):
                    continue
                new_inputs = {u for u in node.inputs if u not in group_values[g]}
                if len(group_inputs[g] | new_inputs) > MAX_INPUTS - 2:
                    continue
                chosen = g
                break
        if chosen < 0 and (_fusable(node) and len(node.outputs) == 1 or _head(node)):
            chosen = next_group
            next_group += 1
            group_kind[chosen] = "head" if _head(node) else "ew"
            group_type[chosen] = graph.values[node.outputs[0]]
            group_phase[chosen] = node.phase
            group_inputs[chosen] = set()
            group_values[chosen] = set()
        if chosen >= 0:
            group_inputs[chosen] |= {u for u in node.inputs if u not in group_values[chosen]}
            group_values[chosen] |= set(node.outputs)
        group_of.append(chosen)
        preds = {unit_of(u) for u in node.inputs} - {None}
        ancestry.add_reads(("g", chosen) if chosen >= 0 else ("n", i), preds)  # type: ignore[arg-type]
        for o in node.outputs:
            producer_idx[o] = i

    _absorb_into_readers(graph, group_of, group_kind, group_type, group_phase, readers, ancestry)
    _absorb_into_producer(graph, group_of, group_kind, group_type, readers, ancestry)
    row_nodes = fuse_row_reductions(graph, group_of, group_kind, group_type, group_phase, readers, ancestry)
    _attach_reductions(graph, group_of, group_kind, group_type, group_phase, readers, ancestry, row_nodes)
    nodes = [replace(n, group=g) for n, g in zip(graph.nodes, group_of)]
    return graph.with_nodes(_contiguous(nodes))


def _attach_reductions(graph: Graph, group_of: list[int], kind: dict[int, str], gtype: dict[int, object],
                       phase: dict[int, str], readers: dict[int, list[int]], ancestry: Ancestry,
                       row_nodes: dict[int, int]) -> None:
    """Makes a lone reduction the tail of the elementwise group computing its input (one tail per group). The
    reduced value exists only when the kernel ends, so the group may not depend on it: no member of the group,
    nor of a group the group depends on, may be downstream of it. Attaching changes no dependency between
    the remaining units (everything downstream of the reduction was already downstream of the group).
    A row-reduction group (`row_nodes`: group -> its layer norm node) takes several tails, each a sum of a
    value of its epilogue over everything or over the rows (see `OpDef.tail`)."""
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}
    tails: dict[int, int] = {}
    epilogue = {g: downstream(graph.nodes, j, readers) for g, j in row_nodes.items()}
    for i, node in enumerate(graph.nodes):
        tail = registry.get(node.op).tail
        if tail is None or group_of[i] >= 0 or node.inputs[0] not in producer:
            continue
        g = group_of[producer[node.inputs[0]]]
        if (g < 0 or phase[g] != node.phase
                or graph.values[node.inputs[0]].shape != getattr(gtype[g], "shape", None)
                or graph.values[node.outputs[0]].dtype not in ("f32", "f64")):
            continue
        if kind[g] == "row":
            if (tails.get(g, 0) >= MAX_ROW_TAILS or producer[node.inputs[0]] not in epilogue[g] | {row_nodes[g]}
                    or tail(node, graph.values[node.inputs[0]].shape) is None):
                continue
        elif kind[g] != "ew" or g in tails:
            continue
        if any(group_of[j] == g or group_of[j] >= 0 and ancestry.depends_on(("g", g), group_of[j])
               for j in downstream(graph.nodes, i, readers)):
            continue
        group_of[i] = g
        tails[g] = tails.get(g, 0) + 1


def _absorb_into_readers(graph: Graph, group_of: list[int], kind: dict[int, str], gtype: dict[int, object],
                         phase: dict[int, str], readers: dict[int, list[int]], ancestry: Ancestry) -> None:
    """Moves an elementwise group into the one group that reads its results (same phase), so its values
    never reach memory: the greedy pass only joins a node to a producer's group, which misses a node whose
    inputs come from elsewhere (relu_mask(h) feeding the epilogue of the matmul that computes dh, gelu_grad of
    a layer norm's output). Later groups go first, so chains are absorbed whole. No cycle can form: only the
    reading group depends on the absorbed one. Updates group_of and the ancestry."""
    graph_outputs = {v for _, v in graph.outputs}
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        if g >= 0:
            members.setdefault(g, []).append(i)
    for p in sorted(members, key=lambda g: -members[g][0]):
        if kind[p] != "ew":
            continue
        values = {o for i in members[p] for o in graph.nodes[i].outputs}
        targets = {group_of[r] for v in values for r in readers.get(v, []) if group_of[r] != p}
        if len(targets) != 1 or values & graph_outputs:
            continue
        g = targets.pop()
        if g < 0 or phase[g] != phase[p] or not _fits(graph, members[p], members[g], kind[g], gtype[g], values):
            continue
        for i in members[p]:
            group_of[i] = g
        members[g] = sorted(members[g] + members.pop(p))
        ancestry.merge(p, g)


def _absorb_into_producer(graph: Graph, group_of: list[int], kind: dict[int, str], gtype: dict[int, object],
                          readers: dict[int, list[int]], ancestry: Ancestry) -> None:
    """Moves an elementwise group into the one group computing every tensor it reads (constants aside) when
    that stores fewer tensors: the values it read from the producer need not be written any more, its own
    results are written instead. In training this takes the start of the backward pass into the forward
    kernel: ew_chain's loss gradient 2 * y / n * (1 - tanh^2) is stored as one tensor instead of y and
    1 - tanh^2. No cycle can form: the moved group depended only on the producer."""
    graph_outputs = {v for _, v in graph.outputs}
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}
    members: dict[int, list[int]] = {}
    for i, g in enumerate(group_of):
        if g >= 0:
            members.setdefault(g, []).append(i)
    for p in sorted(members):
        if kind[p] != "ew" or p not in members:
            continue
        nodes = members[p]
        values = {o for i in nodes for o in graph.nodes[i].outputs}
        external = {v for i in nodes for v in graph.nodes[i].inputs} - values
        sources = {group_of[producer[v]] for v in external if v in producer}
        if len(sources) != 1:
            continue
        f = sources.pop()
        if f < 0 or kind[f] != "ew" or any(getattr(graph.values[o], "shape", None) != getattr(gtype[f], "shape", None)
                                           for o in values):
            continue
        inside = set(nodes) | set(members[f])
        freed = {v for v in external if v in producer and v not in graph_outputs
                 and all(r in inside for r in readers.get(v, []))}
        stored = {o for o in values if o in graph_outputs or any(r not in inside for r in readers.get(o, []))}
        if len(stored) >= len(freed) or not _fits(graph, nodes, members[f], "ew", gtype[f], values):
            continue
        for i in nodes:
            group_of[i] = f
        members[f] = sorted(members[f] + members.pop(p))
        ancestry.merge(p, f)


def _fits(graph: Graph, absorbed: list[int], into: list[int], kind: str, gtype: object, values: set[int]) -> bool:
    """Whether nodes `absorbed` can run inside group `into`: an epilogue computes on the head's result,
    so every node must produce that type and the GEMM itself must not read them; the evaluator takes at
    most MAX_INPUTS - 2 inputs."""
    outs = [graph.values[o] for i in absorbed for o in graph.nodes[i].outputs]
    if kind == "head":
        if any(t != gtype for t in outs) or values & set(graph.nodes[into[0]].inputs):
            return False
    elif any(getattr(t, "shape", None) != getattr(gtype, "shape", None) for t in outs):
        return False
    produced = {o for i in absorbed + into for o in graph.nodes[i].outputs}
    external = {u for i in absorbed + into for u in graph.nodes[i].inputs} - produced
    return len(external) <= MAX_INPUTS - 2


def _replaces_a_stored_value(node: Node, i: int, g: int, values: set[int], group_of: list[int],
                             readers: dict[int, list[int]]) -> bool:
    """Whether every value node i reads from group g is read only inside g (earlier nodes) or by node i."""
    return all(r == i or (r < i and group_of[r] == g)
               for u in node.inputs if u in values for r in readers[u])


def _compatible(graph: Graph, node: Node, g: int, kind: dict[int, str], gtype: dict[int, object],
                out_type: object) -> bool:
    if kind[g] == "head":
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
    for u, idxs in members.items():
        for i in idxs:
            for v in nodes[i].inputs:
                if v in producer and unit_of[producer[v]] != u:
                    preds[u].add(unit_of[producer[v]])
    # A node that writes into a tensor (an optimizer update, a batch-norm layer's running statistics) keeps its
    # place among that tensor's readers, as in schedule.py.
    for before, after in in_place_order(nodes):
        if unit_of[before] != unit_of[after]:
            preds[unit_of[after]].add(unit_of[before])
    order = sorted(members, key=lambda u: members[u][0])
    done: set[tuple[str, int]] = set()
    out: list[Node] = []
    while len(done) < len(order):
        progressed = False
        for u in order:
            if u not in done and preds[u] <= done:
                # A head group's matmul or convolution comes first: its epilogue may hold absorbed nodes from
                # before it.
                out.extend(nodes[i] for i in sorted(members[u],
                                                    key=lambda i: (not _head(nodes[i]), i)))
                done.add(u)
                progressed = True
                break
        if not progressed:
            raise AssertionError("fusion produced a cycle between groups")
    return out
