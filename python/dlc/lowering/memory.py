"""Memory of a plan: which buffer each value lives in and where.

Storage roots come from dlc/storage.py (views alias their input; parameters, inputs and constants live
outside the plan), shared with the scheduling pass. Here: a head's result shares its first output's buffer
(the epilogue rewrites it in place), the live interval of every arena buffer over the step order, in-place
merges (an elementwise step may write over an input of the same type whose last use it is), the gradient
region after the arena (one fixed buffer per gradient an update consumes, for the whole step, like PyTorch's
`.grad`: docs/optimizer.md explains the choice), and the arena offsets (memory_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..ir import Graph
from ..ops import registry
from ..storage import Storage, nbytes
from .memory_plan import Buffer, MemoryPlan, align, plan_memory
from .units import Unit


@dataclass(frozen=True)
class Layout:
    root: dict[int, int]  # value -> the value owning its buffer (views, and a head's result)
    merged: dict[int, int]  # root -> the root whose buffer it takes over (in-place merges)
    gradient_offsets: dict[int, int]  # gradient root -> offset in the gradient region
    memory: MemoryPlan

    def storage(self, v: int) -> int:
        return self.root.get(v, v)

    def buffer(self, r: int) -> int:
        """The root whose arena buffer root `r` ends up in."""
        while r in self.merged:
            r = self.merged[r]
        return r


def plan_layout(graph: Graph, units: list[Unit], st: Storage) -> Layout:
    root = dict(st.root)

    def storage(v: int) -> int:
        return root.get(v, v)

    def in_arena(v: int) -> bool:
        return storage(v) not in st.outside and storage(v) not in st.gradient

    # One buffer per tensor of the graph (views alias, so they add nothing): the baseline the plan is judged
    # against. Counted before fusion keeps values in registers, so fused and unfused plans of one graph
    # share it.
    naive_bytes = sum(align(nbytes(graph.values[o])) for n in graph.nodes if not registry.get(n.op).view
                      for o in n.outputs if in_arena(o))

    step_of_unit, start, end = _live_intervals(graph, units, root, in_arena)
    merged = _in_place_merges(graph, units, step_of_unit, end, storage, in_arena)

    buffers = [Buffer(r, nbytes(graph.values[r]), s, end.get(r, s)) for r, s in start.items() if r not in merged]
    gradient_offsets: dict[int, int] = {}
    top = 0
    for r in sorted(st.gradient):
        gradient_offsets[r] = top
        top += align(nbytes(graph.values[r]))
    return Layout(root, merged, gradient_offsets, plan_memory(buffers, naive_bytes, gradient_bytes=top))


def _live_intervals(graph: Graph, units: list[Unit], root: dict[int, int],
                    in_arena: Callable[[int], bool]) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Step numbering and the live interval [start, end] of each arena root; records in `root` where a head
    writes its result when no reader needs it apart (into the group's first output)."""
    step_of_unit: dict[int, int] = {}
    n_steps = 0
    for ui, unit in enumerate(units):
        if unit.kind != "view":
            step_of_unit[ui] = n_steps
            n_steps += 1
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    last_step = -1
    for ui, unit in enumerate(units):
        step = step_of_unit.get(ui, last_step)
        if ui in step_of_unit:
            last_step = step
        for v in unit.inputs:
            if in_arena(v):
                r = root.get(v, v)
                end[r] = max(end.get(r, step), step)
        for v in unit.outputs:
            if unit.kind != "view" and in_arena(v):
                r = root.get(v, v)
                start.setdefault(r, step)
                end[r] = max(end.get(r, step), step)
        if unit.kind == "head":
            c = unit.nodes[0].outputs[0]
            if c not in unit.outputs:
                # The GEMM (or convolution) writes C somewhere: into the group's first output, which the epilogue then
                # rewrites in place (same shape and dtype by construction of fusion groups).
                root[c] = root.get(unit.outputs[0], unit.outputs[0])
    for _, v in graph.outputs:
        if in_arena(v):
            end[root.get(v, v)] = n_steps  # read by the caller (or the final copy-out)
    return step_of_unit, start, end


def _in_place_merges(graph: Graph, units: list[Unit], step_of_unit: dict[int, int], end: dict[int, int],
                     storage: Callable[[int], int], in_arena: Callable[[int], bool]) -> dict[int, int]:
    """An elementwise step writes an output over an input of the same type whose last use it is."""
    merged: dict[int, int] = {}

    def find(r: int) -> int:
        while r in merged:
            r = merged[r]
        return r

    for ui, unit in enumerate(units):
        if unit.kind != "ew":
            continue
        step = step_of_unit[ui]
        claimed: set[int] = set()
        for o in unit.outputs:
            r_o = storage(o)
            if not in_arena(o) or r_o in merged:
                continue
            for v in unit.inputs:
                r_in = storage(v)
                r_final = find(r_in)
                if (in_arena(v) and r_in not in claimed and end.get(r_final) == step
                        and graph.values[v] == graph.values[o] and r_in != r_o):
                    merged[r_o] = r_final
                    end[r_final] = end[r_o]
                    claimed.add(r_in)
                    break
    return merged
