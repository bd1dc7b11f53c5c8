"""Fusion of row-wise reductions (layer norm and its gradient) with their elementwise neighbours.

A row reduction needs its whole row before it can write anything, so the plain lattice keeps it alone: the
group computing its input writes that input to memory, the reduction reads it back and writes its output,
and the group reading the output reads it again. Rows are short (a few thousand values), so the row fits in
cache: one kernel can compute the row from the producer group's program (the prologue), take the
statistics, normalize, and run the consumer group's program (the epilogue) on the normalized row before the
single store. `fuse_row_reductions` merges the producer group, the reduction node and the consumer group into
one group of kind "row" (lowering/rows.py builds the kernel); `_attach_reductions` in fusion.py may then give it
reduction tails (the loss `mean(y * y)`, a parameter gradient `sum_to(g, [D])`) computed in the epilogue.

Ops opt in through their registry record (`OpDef.row_fusion`: which input a prologue may compute, and the
fused kernel's key). Both groups are optional; a merge is refused where it would make a cycle between
units, where the programs would not compute in the reduction's precision, or where the epilogue would need a
prologue value (it sees the normalized row, not the prologue's registers).
"""

from __future__ import annotations

from ..ewprogram import MAX_INPUTS
from ..ir import Graph, Node, downstream
from ..ops import registry
from .fusion_units import Ancestry, Unit

MAX_ROW_TAILS = 4  # reduction tails one row kernel accumulates (each a double per chunk, or a row of them)


def fuse_row_reductions(graph: Graph, group_of: list[int], kind: dict[int, str], gtype: dict[int, object],
                        phase: dict[int, str], readers: dict[int, list[int]], ancestry: Ancestry) -> dict[int, int]:
    """Merges each lone row reduction with the elementwise group computing its row input and the one reading
    its output 0 (updates group_of, kind, gtype, phase and the ancestry); returns group -> reduction node."""
    producer = {o: i for i, n in enumerate(graph.nodes) for o in n.outputs}
    rows: dict[int, int] = {}

    def unit_of(v: int) -> Unit | None:
        if v not in producer:
            return None
        j = producer[v]
        return ("g", group_of[j]) if group_of[j] >= 0 else ("n", j)

    def members(g: int) -> list[int]:
        return [i for i, x in enumerate(group_of) if x == g]

    for li, node in enumerate(graph.nodes):
        spec = registry.get(node.op).row_fusion
        if spec is None or group_of[li] >= 0:
            continue
        row_input, _ = spec
        space = graph.values[node.outputs[0]]
        if space.dtype not in ("f32", "f64") or len(space.shape) < 1:
            continue
        after = downstream(graph.nodes, li, readers)
        pro = _prologue(graph, node.inputs[row_input], producer, group_of, kind, gtype, phase, node, space)
        pro_values: set[int] = set()
        if pro is not None:
            pro_values = {o for i in members(pro) for o in graph.nodes[i].outputs}
            if any(v in pro_values for k, v in enumerate(node.inputs) if k != row_input):
                pro = None
                pro_values = set()

        def acyclic(groups: list[int]) -> bool:
            """Nothing the merged group reads may come from a unit that depends on one of its parts."""
            inside = {li} | {i for g in groups for i in members(g)}
            external = {v for i in inside for v in graph.nodes[i].inputs} - {o for i in inside
                                                                             for o in graph.nodes[i].outputs}
            return not any(producer.get(v) in after and producer[v] not in inside
                           or (u := unit_of(v)) is not None and any(ancestry.depends_on(u, g) for g in groups)
                           for v in external)

        parts = [pro] if pro is not None and acyclic([pro]) else []
        epis: list[int] = []
        for e in _epilogues(graph, node, readers, group_of, kind, gtype, phase, space):
            reads = {v for i in members(e) for v in graph.nodes[i].inputs}
            if not reads & pro_values and acyclic(parts + epis + [e]):
                epis.append(e)
        if not parts and not epis:
            continue
        merged = [li] + [i for g in parts + epis for i in members(g)]
        epi_nodes = [graph.nodes[i] for g in epis for i in members(g)]
        if len({v for n in epi_nodes for v in n.inputs} - {o for n in epi_nodes for o in n.outputs}) > MAX_INPUTS - 2:
            epis = []
            merged = [li] + [i for g in parts for i in members(g)]
            if not parts:
                continue
        inside = set(merged)
        external = {v for i in merged for v in graph.nodes[i].inputs} - {o for i in merged
                                                                          for o in graph.nodes[i].outputs}
        g = (parts + epis)[0]
        for e in (parts + epis)[1:]:
            ancestry.merge(e, g)
        for i in merged:
            group_of[i] = g
        kind[g], gtype[g], phase[g] = "row", space, node.phase
        ancestry.add_reads(("g", g), {u for v in external if (u := unit_of(v)) is not None} - {("g", g)})
        for j in after - inside:  # what read the reduction's other outputs now depends on the whole group
            ancestry.add_reads(("g", group_of[j]) if group_of[j] >= 0 else ("n", j), {("g", g)})
        rows[g] = li
    return rows


def _same_precision(graph: Graph, nodes: list[int], dtype: str) -> bool:
    """Whether every value the nodes read or write has the reduction's float dtype (the programs then compute
    in it, as the kernel's row math does)."""
    return all(graph.values[v].dtype == dtype for i in nodes for v in (*graph.nodes[i].inputs, *graph.nodes[i].outputs))


def _prologue(graph: Graph, row_value: int, producer: dict[int, int], group_of: list[int], kind: dict[int, str],
              gtype: dict[int, object], phase: dict[int, str], node: Node, space: object) -> int | None:
    if row_value not in producer:
        return None
    g = group_of[producer[row_value]]
    if (g < 0 or kind[g] != "ew" or phase[g] != node.phase or graph.values[row_value] != space
            or getattr(gtype[g], "shape", None) != space.shape):  # type: ignore[attr-defined]
        return None
    nodes = [i for i, x in enumerate(group_of) if x == g]
    return g if _same_precision(graph, nodes, space.dtype) else None  # type: ignore[attr-defined]


def _epilogues(graph: Graph, node: Node, readers: dict[int, list[int]], group_of: list[int], kind: dict[int, str],
               gtype: dict[int, object], phase: dict[int, str], space: object) -> list[int]:
    """The elementwise groups reading the reduction's output 0 that could run in its epilogue."""
    found: list[int] = []
    for r in readers.get(node.outputs[0], []):
        g = group_of[r]
        if (g < 0 or g in found or kind[g] != "ew" or phase[g] != node.phase
                or getattr(gtype[g], "shape", None) != space.shape):  # type: ignore[attr-defined]
            continue
        nodes = [i for i, x in enumerate(group_of) if x == g]
        side = set(node.outputs[1:])
        if any(v in side for i in nodes for v in graph.nodes[i].inputs):
            continue
        if _same_precision(graph, nodes, space.dtype):  # type: ignore[attr-defined]
            found.append(g)
    return found
