"""Bookkeeping shared by the fusion steps (passes/fusion.py, passes/row_fusion.py) and the scheduler: units, the
exact ancestry of units as groups grow, and the order in-place writes impose."""

from __future__ import annotations

from typing import Sequence

from ..ir import Node
from ..ops import registry

Unit = tuple[str, int]  # ("g", group) or ("n", node index) for a node outside any group


class Ancestry:
    """The groups each unit transitively depends on, exact while groups grow."""

    def __init__(self) -> None:
        self.anc: dict[Unit, set[int]] = {}
        self.down: dict[int, set[Unit]] = {}  # group -> the units whose ancestry holds it

    def depends_on(self, unit: Unit, g: int) -> bool:
        return g in self.anc.get(unit, ())

    def add_reads(self, unit: Unit, preds: set[Unit]) -> None:
        """Records that `unit` reads values produced by the units `preds`."""
        new: set[int] = set()
        for p in preds - {unit}:
            new |= self.anc.get(p, set())
            if p[0] == "g":
                new.add(p[1])
        added = new - self.anc.setdefault(unit, set())
        if not added:
            return
        affected = {unit} | (self.down.get(unit[1], set()) if unit[0] == "g" else set())
        for w in affected:
            self.anc[w] |= added
        for h in added:
            self.down.setdefault(h, set()).update(affected)

    def merge(self, p: int, g: int) -> None:
        """Group p became part of group g, where one of them read the other (g absorbed its only reader's
        producer, or a row group took its consumer): every unit that depended on p depends on g already."""
        for w in self.down.pop(p, set()):
            self.anc[w].discard(p)
        for h in self.anc.pop(("g", p), set()):
            self.down[h].discard(("g", p))


def in_place_order(nodes: Sequence[Node]) -> list[tuple[int, int]]:
    """(earlier, later) node pairs that a node writing into a tensor imposes: it runs after the nodes that read
    the tensor before it, and before those that read it after (in the original order). Two writers of one
    tensor (a batch-norm layer called twice moves its running statistics twice) run in their original order."""
    readers: dict[int, list[int]] = {}
    for j, other in enumerate(nodes):
        for v in other.inputs:
            readers.setdefault(v, []).append(j)
    pairs: list[tuple[int, int]] = []
    for i, node in enumerate(nodes):
        for v in registry.get(node.op).mutated_inputs(node.inputs, node.attrs):
            pairs.extend((j, i) if j < i else (i, j) for j in readers[v] if j != i)
    return pairs
