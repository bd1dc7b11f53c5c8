"""Units: what becomes one kernel step. A node on its own, or a fusion group (nodes with the same `group`),
its kind read from the op registry; views emit nothing (their output aliases the input's memory)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Graph, Node
from ..ops import registry
from ..storage import kernel_units


@dataclass
class Unit:
    nodes: list[Node]
    kind: str  # "view" | "ew" | "ew_reduce" | "row" | "head" (matmul or conv + epilogue) | "single"
    inputs: list[int] = field(default_factory=list)  # external values read, in first-use order
    outputs: list[int] = field(default_factory=list)  # values written that live past the step


def make_units(graph: Graph) -> list[Unit]:
    units: list[Unit] = []
    for idxs in kernel_units(graph.nodes):
        nodes = [graph.nodes[i] for i in idxs]
        op = registry.get(nodes[0].op)
        if op.view:
            units.append(Unit(nodes, "view"))
        elif nodes[0].group >= 0:
            units.append(Unit(nodes, "head" if op.epilogue_head else "ew"))
        else:
            units.append(Unit(nodes, "ew" if op.elementwise else ("head" if op.epilogue_head else "single")))
    for unit in units:  # an elementwise group with a reduction tail (see passes/fusion.py), a row group
        if unit.kind == "ew" and any(registry.get(n.op).row_fusion is not None for n in unit.nodes):
            unit.kind = "row"
        elif unit.kind == "ew" and any(registry.get(n.op).tail is not None for n in unit.nodes):
            unit.kind = "ew_reduce"
    _unit_io(graph, units)
    return units


def _unit_io(graph: Graph, units: list[Unit]) -> None:
    graph_outputs = {v for _, v in graph.outputs}
    consumer_units: dict[int, set[int]] = {}
    for ui, unit in enumerate(units):
        for node in unit.nodes:
            for v in node.inputs:
                consumer_units.setdefault(v, set()).add(ui)
    for ui, unit in enumerate(units):
        produced = {o for n in unit.nodes for o in n.outputs}
        for node in unit.nodes:
            for v in node.inputs:
                if v not in produced and v not in unit.inputs:
                    unit.inputs.append(v)
            # A row group's kernel always writes its reduction's side outputs (layer norm's statistics).
            side = node.outputs[1:] if unit.kind == "row" and registry.get(node.op).row_fusion else ()
            for o in node.outputs:
                if (o in graph_outputs or consumer_units.get(o, set()) - {ui} or unit.kind in ("single", "view")
                        or o in side):
                    unit.outputs.append(o)
