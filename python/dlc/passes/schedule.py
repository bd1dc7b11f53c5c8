"""Memory-aware scheduling: reorders the kernels (a fusion group, or a node on its own) to lower the peak of
bytes live at once, which is the lower bound the memory planner can reach for a kernel order.

The graph's order is the order nodes were built in: autodiff emits a matmul's input gradient before its
weight gradient, so the backward pass holds a new activation gradient while the forward activation the
weight gradient reads is still alive. A list scheduler fixes that: among the kernels whose inputs are ready,
it runs the one that adds the fewest bytes (bytes it writes minus bytes whose last reader it is), the
earliest in the original order on ties. Values that never take arena memory count as nothing: parameters,
inputs, constants, views (they alias their input) and gradients that an update consumes (their own region,
see lowering/memory.py). A node that writes into a tensor in place keeps its place relative to that tensor's other
readers. Groups stay contiguous, each in its own internal order.
"""

from __future__ import annotations

from ..ir import Graph
from ..ops import registry
from ..storage import kernel_units, nbytes, storage
from .context import PassContext
from .fusion_units import in_place_order


def schedule_for_memory(graph: Graph, ctx: PassContext) -> Graph:
    units = kernel_units(graph.nodes)
    unit_of = {i: u for u, idxs in enumerate(units) for i in idxs}
    producer_unit = {o: unit_of[i] for i, n in enumerate(graph.nodes) for o in n.outputs}
    st = storage(graph)
    root = st.root
    size = {o: nbytes(graph.values[o]) for n in graph.nodes if not registry.get(n.op).view for o in n.outputs
            if st.in_arena(o)}

    preds: list[set[int]] = [set() for _ in units]
    readers: dict[int, set[int]] = {}  # storage root -> units reading it
    for u, idxs in enumerate(units):
        for i in idxs:
            for v in graph.nodes[i].inputs:
                readers.setdefault(root.get(v, v), set()).add(u)
                if v in producer_unit and producer_unit[v] != u:
                    preds[u].add(producer_unit[v])
    _order_in_place_writes(graph, units, unit_of, preds)

    remaining = {r: len(us - {producer_unit.get(r)}) for r, us in readers.items()}
    for _, v in graph.outputs:  # read after the last kernel: never freed
        remaining[root.get(v, v)] = remaining.get(root.get(v, v), 0) + 1
    writes = [{root.get(o, o) for i in idxs for o in graph.nodes[i].outputs
               if not registry.get(graph.nodes[i].op).view} for idxs in units]
    reads = [{root.get(v, v) for i in idxs for v in graph.nodes[i].inputs} - writes[u] for u, idxs in enumerate(units)]

    order: list[int] = []
    ready = {u for u in range(len(units)) if not preds[u]}
    waiting = [len(p) for p in preds]
    successors: list[list[int]] = [[] for _ in units]
    for u, p in enumerate(preds):
        for q in p:
            successors[q].append(u)
    while ready:
        def cost(u: int) -> tuple[int, int]:
            freed = sum(size.get(r, 0) for r in reads[u] if remaining.get(r) == 1)
            return sum(size.get(r, 0) for r in writes[u]) - freed, u
        u = min(ready, key=cost)
        ready.remove(u)
        order.append(u)
        for r in reads[u]:
            remaining[r] -= 1
        for s in successors[u]:
            waiting[s] -= 1
            if waiting[s] == 0:
                ready.add(s)
    if len(order) != len(units):
        raise AssertionError("schedule: the kernel dependencies have a cycle")
    return graph.with_nodes(graph.nodes[i] for u in order for i in units[u])


def _order_in_place_writes(graph: Graph, units: list[list[int]], unit_of: dict[int, int],
                           preds: list[set[int]]) -> None:
    for before, after in in_place_order(graph.nodes):
        if unit_of[before] != unit_of[after]:
            preds[unit_of[after]].add(unit_of[before])
