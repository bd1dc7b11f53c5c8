"""Which nodes run as one kernel and where a graph's values live, shared by the scheduling pass
(passes/schedule.py) and lowering (lowering/): a fusion group's nodes (contiguous after fusion) are one
kernel, any other node one of its own; views alias the memory of the value they view (storage roots),
parameters, inputs and constants live outside the plan, gradients an update consumes get a region of their
own, and every other value a kernel writes is an arena buffer of `nbytes`."""

from __future__ import annotations

from dataclasses import dataclass

from typing import Sequence

from .errors import DlcError
from .ir import Graph, Node, TensorType, np_dtype
from .ops import registry


def kernel_units(nodes: Sequence[Node]) -> list[list[int]]:
    """Node indices per kernel: a fusion group's nodes, or one node."""
    units: list[list[int]] = []
    seen: set[int] = set()
    for i, n in enumerate(nodes):
        if n.group >= 0 and units and nodes[units[-1][0]].group == n.group:
            units[-1].append(i)
            continue
        if n.group >= 0:
            if n.group in seen:
                raise DlcError(f"fusion group {n.group} is not contiguous in the node order")
            seen.add(n.group)
        units.append([i])
    return units


def nbytes(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= int(d)
    return n * np_dtype(t.dtype).itemsize


@dataclass(frozen=True)
class Storage:
    root: dict[int, int]  # a view's value -> the value that owns its memory
    outside: frozenset[int]  # parameters, inputs and constants: memory the plan does not allocate
    gradient: frozenset[int]  # roots an update writes into or reads as its gradient operand (their own region)

    def of(self, v: int) -> int:
        return self.root.get(v, v)

    def is_produced(self, v: int) -> bool:
        """Whether a kernel of the plan writes the value's memory."""
        return self.of(v) not in self.outside

    def in_arena(self, v: int) -> bool:
        return self.is_produced(v) and self.of(v) not in self.gradient


def storage(graph: Graph) -> Storage:
    root: dict[int, int] = {}
    for n in graph.nodes:
        if registry.get(n.op).view:
            root[n.outputs[0]] = root.get(n.inputs[0], n.inputs[0])
    outside = frozenset({v for _, v in graph.inputs} | {p.value for p in graph.params} | set(graph.consts))
    mutated = {root.get(v, v) for n in graph.nodes for v in registry.get(n.op).mutated_inputs(n.inputs, n.attrs)}
    return Storage(root, outside, frozenset(mutated - outside))
