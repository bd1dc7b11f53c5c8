"""Lowering: an optimized Graph (concrete shapes) becomes a C++ execution plan.

Nodes become kernel steps: a node on its own, or a fusion group (nodes with the same `group`) as one step:
an elementwise group is one evaluator program, a matmul group is a GEMM with that program as its epilogue.
View ops (reshape, flatten) emit nothing: their output aliases the input's memory. Intermediate buffers get
arena offsets from the memory planner, after in-place merges (an elementwise step may write over an input of
the same shape whose last use it is). Parameters and other persistent tensors are addressed by index into a
table the Program owns. Gradients that an optimizer update consumes go to a gradient region after the
planned arena, one fixed buffer each for the whole step (like PyTorch's `.grad`): the arena holds activations
only, and the planner's figures describe it (docs/optimizer.md explains the choice).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from .dims import is_concrete
from .errors import ArenaLimitError, DlcError
from .ewprogram import EPILOGUE_HEADS, build_program
from .lower_rows import emit_row_group
from .ir import DTYPE_CODES, Graph, Node, TensorType
from .memory_plan import Buffer, MemoryPlan, align, plan_memory
from .ops import registry
from .passes.fusion import REDUCTIONS

ARENA, PERSISTENT, INPUT, CONST = 0, 1, 2, 3


def nbytes(t: TensorType) -> int:
    n = 1
    for d in t.shape:
        n *= int(d)
    return n * np.dtype({"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64,
                         "bool": np.bool_}[t.dtype]).itemsize


@dataclass
class Unit:
    nodes: list[Node]
    kind: str  # "view" | "ew" | "ew_reduce" | "row" | "head" (matmul or conv + epilogue) | "single"
    inputs: list[int] = field(default_factory=list)  # external values read, in first-use order
    outputs: list[int] = field(default_factory=list)  # values written that live past the step


@dataclass(frozen=True)
class StepInfo:
    kernel: str
    label: str
    bytes_moved: int
    nodes: int


_arena_limit: int | None = None  # None: the machine's physical memory


def set_arena_limit(nbytes: int | None) -> None:
    """The largest arena a plan may have, in bytes, for every later compile (None: physical memory)."""
    global _arena_limit
    if nbytes is not None and (isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0):
        raise ValueError(f"the arena limit is a number of bytes or None, got {nbytes!r}")
    _arena_limit = nbytes


def arena_limit() -> int:
    if _arena_limit is not None:
        return _arena_limit
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf: do not guess a limit
        return 2 ** 62


@dataclass
class PlanRecipe:
    """Everything needed to rebuild the C++ plan, in plain data: what compiled artifacts store."""

    arena_bytes: int
    slots: list[tuple[int, int, int, list[int]]] = field(default_factory=list)  # region, where, dtype, shape
    consts: list[np.ndarray] = field(default_factory=list)
    steps: list[tuple[str, str, list[int], list[int], list[int], list[float]]] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    output_homes: dict[int, list[int]] = field(default_factory=dict)  # output -> slots in its buffer
    num_inputs: int = 0

    def add_slot(self, region: int, where: int, dtype: int, shape: list[int]) -> int:
        self.slots.append((region, where, dtype, shape))
        return len(self.slots) - 1

    def add_const(self, array: np.ndarray) -> int:
        self.consts.append(array)
        return len(self.consts) - 1

    def build(self) -> Any:
        limit = arena_limit()
        if self.arena_bytes > limit:
            raise ArenaLimitError(f"the plan needs an arena of {self.arena_bytes:,} bytes "
                                  f"({self.arena_bytes / 2 ** 30:.1f} GiB), over the limit of {limit:,} bytes; "
                                  "use smaller dimensions, or raise the limit with dlc.set_arena_limit")
        plan = _core.Plan(self.arena_bytes)
        for array in self.consts:
            plan.add_const(np.ascontiguousarray(array))
        for region, where, dtype, shape in self.slots:
            plan.add_slot(region, where, dtype, shape)
        for key, label, ins, outs, ints, floats in self.steps:
            plan.add_step(key, label, ins, outs, ints, floats, -1)
        plan.set_num_inputs(self.num_inputs)
        plan.set_outputs(self.outputs)
        for j, home in self.output_homes.items():
            plan.set_output_home(j, home)
        return plan


@dataclass
class LoweredPlan:
    plan: Any  # _core.Plan
    recipe: PlanRecipe
    memory: MemoryPlan
    input_names: list[str]
    input_types: list[TensorType]
    output_names: list[str]
    output_types: list[TensorType]
    persistent_names: list[str]
    steps: list[StepInfo]


def make_units(graph: Graph) -> list[Unit]:
    units: list[Unit] = []
    by_group: dict[int, Unit] = {}
    for node in graph.nodes:
        op = registry.get(node.op)
        if op.view:
            units.append(Unit([node], "view"))
        elif node.group >= 0:
            unit = by_group.get(node.group)
            if unit is None:
                kind = "head" if node.op in EPILOGUE_HEADS else "ew"
                unit = Unit([], kind)
                by_group[node.group] = unit
                units.append(unit)
            elif units[-1] is not unit:
                raise DlcError(f"fusion group {node.group} is not contiguous in the node order")
            unit.nodes.append(node)
        else:
            units.append(Unit([node], "ew" if op.kernel == "ew" else ("head" if node.op in EPILOGUE_HEADS
                                                                        else "single")))
    for unit in units:  # an elementwise group with a reduction tail (see passes/fusion.py), a row group
        if unit.kind == "ew" and any(registry.get(n.op).row_fusion is not None for n in unit.nodes):
            unit.kind = "row"
        elif unit.kind == "ew" and any(n.op in REDUCTIONS for n in unit.nodes):
            unit.kind = "ew_reduce"
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


def lower(graph: Graph, persistent_names: list[str], label_prefix: str = "") -> LoweredPlan:
    for v, t in graph.values.items():
        if not is_concrete(t.shape):
            raise DlcError(f"value %{v} has symbolic shape {t}; bind every dimension before lowering")
    units = make_units(graph)
    _unit_io(graph, units)

    params = graph.param_by_value()
    persistent_index = {name: i for i, name in enumerate(persistent_names)}
    input_index = {v: i for i, (_, v) in enumerate(graph.inputs)}

    # Storage roots: views alias their input's storage.
    root: dict[int, int] = {}
    for unit in units:
        if unit.kind == "view":
            node = unit.nodes[0]
            root[node.outputs[0]] = root.get(node.inputs[0], node.inputs[0])

    def storage(v: int) -> int:
        return root.get(v, v)

    def is_produced(v: int) -> bool:
        r = storage(v)
        return r not in params and r not in input_index and r not in graph.consts

    # Values an update kernel writes into (or reads as a gradient operand) that this plan produces.
    gradient_roots = {storage(v) for n in graph.nodes for v in registry.get(n.op).mutated_inputs(n.inputs)
                      if is_produced(v)}

    def is_arena(v: int) -> bool:
        return is_produced(v) and storage(v) not in gradient_roots

    # One buffer per tensor of the graph (views alias, so they add nothing): the baseline the plan is judged
    # against. Counted before fusion keeps values in registers, so fused and unfused plans of one graph
    # share it.
    naive_bytes = sum(align(nbytes(graph.values[o])) for n in graph.nodes if not registry.get(n.op).view
                      for o in n.outputs if is_arena(o))

    # Step numbering and live intervals of arena roots.
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
            if is_arena(v):
                end[storage(v)] = max(end.get(storage(v), step), step)
        for v in unit.outputs:
            if unit.kind != "view" and is_arena(v):
                r = storage(v)
                start.setdefault(r, step)
                end[r] = max(end.get(r, step), step)
        if unit.kind == "head":
            c = unit.nodes[0].outputs[0]
            if c not in unit.outputs:
                # The GEMM (or convolution) writes C somewhere: into the group's first output, which the epilogue then
                # rewrites in place (same shape and dtype by construction of fusion groups).
                root[c] = storage(unit.outputs[0])
    for _, v in graph.outputs:
        if is_arena(v):
            end[storage(v)] = n_steps  # read by the caller (or the final copy-out)

    # In-place merges for elementwise steps.
    merged: dict[int, int] = {}
    for ui, unit in enumerate(units):
        if unit.kind != "ew":
            continue
        step = step_of_unit[ui]
        claimed: set[int] = set()
        for o in unit.outputs:
            r_o = storage(o)
            if not is_arena(o) or r_o in merged:
                continue
            for v in unit.inputs:
                r_in = storage(v)
                r_final = _find(merged, r_in)
                if (is_arena(v) and r_in not in claimed and end.get(r_final) == step
                        and graph.values[v] == graph.values[o] and r_in != r_o):
                    merged[r_o] = r_final
                    end[r_final] = end[r_o]
                    claimed.add(r_in)
                    break

    buffers: list[Buffer] = []
    for r, s in start.items():
        if r in merged:
            continue
        buffers.append(Buffer(r, nbytes(graph.values[r]), s, end.get(r, s)))
    gradient_offsets: dict[int, int] = {}
    top = 0
    for r in sorted(gradient_roots):
        gradient_offsets[r] = top
        top += align(nbytes(graph.values[r]))
    memory = plan_memory(buffers, naive_bytes, gradient_bytes=top)

    # ---- build the C++ plan ----
    # One allocation per run: the planned arena, then the gradient region.
    recipe = PlanRecipe(memory.arena_bytes + memory.gradient_bytes)
    slots: dict[int, int] = {}
    const_index: dict[int, int] = {}
    buffer_of: dict[int, int] = {}  # arena slot -> its buffer's root (the planner's unit of memory)

    def slot(v: int) -> int:
        if v in slots:
            return slots[v]
        t = graph.values[v]
        r = storage(v)
        if r in params:
            name = params[r].name
            region, where = PERSISTENT, persistent_index[name]
        elif r in input_index:
            region, where = INPUT, input_index[r]
        elif r in graph.consts:
            if r not in const_index:
                const_index[r] = recipe.add_const(np.ascontiguousarray(graph.consts[r]))
            region, where = CONST, const_index[r]
        elif r in gradient_offsets:
            region, where = ARENA, memory.arena_bytes + gradient_offsets[r]
        else:
            region, where = ARENA, memory.offsets[_find(merged, r)]
        slots[v] = recipe.add_slot(region, where, DTYPE_CODES[t.dtype], [int(d) for d in t.shape])
        if region == ARENA and r not in gradient_offsets:
            buffer_of[slots[v]] = _find(merged, r)
        return slots[v]

    infos: list[StepInfo] = []
    for unit in units:
        if unit.kind == "view":
            continue
        key, ins, outs, ints, floats = _emit(graph, unit)
        label = label_prefix + "+".join(n.op for n in unit.nodes)
        scope = unit.nodes[0].scope
        if scope:
            label += f" [{scope}]"
        recipe.steps.append((key, label, [slot(v) for v in ins], [slot(v) for v in outs], list(ints),
                             list(floats)))
        moved = sum(nbytes(graph.values[v]) for v in set(ins) | set(outs))
        infos.append(StepInfo(key, label, moved, len(unit.nodes)))
    recipe.num_inputs = len(graph.inputs)
    recipe.outputs = [slot(v) for _, v in graph.outputs]
    recipe.output_homes = _output_homes(recipe.outputs, buffer_of)
    return LoweredPlan(recipe.build(), recipe, memory, [n for n, _ in graph.inputs], [graph.values[v] for _, v in graph.inputs],
                       [n for n, _ in graph.outputs], [graph.values[v] for _, v in graph.outputs],
                       list(persistent_names), infos)


def _output_homes(outputs: list[int], buffer_of: dict[int, int]) -> dict[int, list[int]]:
    """For each output whose arena buffer holds no other output: every slot in that buffer. The plan puts them
    in the caller's output array (when it can, see Plan::set_output_home), so the output is computed where it
    is wanted instead of being copied out of the arena after the last step."""
    owners: dict[int, list[int]] = {}
    for j, s in enumerate(outputs):
        if s in buffer_of:
            owners.setdefault(buffer_of[s], []).append(j)
    homes: dict[int, list[int]] = {}
    for buffer, js in owners.items():
        if len(js) == 1:
            homes[js[0]] = sorted(s for s, b in buffer_of.items() if b == buffer)
    return homes


def _find(merged: dict[int, int], r: int) -> int:
    while r in merged:
        r = merged[r]
    return r


def _emit(graph: Graph, unit: Unit) -> tuple[str, list[int], list[int], list[int], list[float]]:
    if unit.kind == "single":
        node = unit.nodes[0]
        op = registry.get(node.op)
        if op.lower is None or op.kernel is None:
            raise DlcError(f"op {node.op} has no kernel lowering")
        ints, floats = op.lower(node, [graph.values[v] for v in node.inputs])
        return op.kernel, list(node.inputs), list(node.outputs), list(ints), list(floats)
    if unit.kind == "ew":
        ints, floats = build_program(graph, unit.nodes, unit.inputs, unit.outputs)
        return "ew", list(unit.inputs), list(unit.outputs), ints, floats
    if unit.kind == "ew_reduce":
        return _emit_reduction(graph, unit)
    if unit.kind == "row":
        return emit_row_group(graph, unit.nodes, unit.outputs)
    # matmul or convolution (+ epilogue): the head's own ints, then [n_code, program...]
    head = unit.nodes[0]
    a, b = head.inputs
    c = head.outputs[0]
    op = registry.get(head.op)
    base_ints, _ = op.lower(head, [graph.values[a], graph.values[b]])
    epilogue = unit.nodes[1:]
    if not epilogue:
        return op.kernel, [a, b], [c], list(base_ints), []
    produced = {o for n in unit.nodes for o in n.outputs}
    extra: list[int] = []
    for n in epilogue:
        for v in n.inputs:
            if v not in produced and v not in extra:
                extra.append(v)
    outs = [c] + [o for o in unit.outputs if o != c]
    # Epilogue program: input 0 is C, then the extra inputs; STORE targets are the step's outputs.
    ints, floats = build_program(graph, epilogue, [c] + extra, outs)
    if head.op == "matmul":  # its ints are [trans_a, trans_b, n_code]: the program length is part of them
        base_ints = base_ints[:2]
    return op.kernel, [a, b] + extra, outs, [*base_ints, len(ints)] + ints, floats


def _emit_reduction(graph: Graph, unit: Unit) -> tuple[str, list[int], list[int], list[int], list[float]]:
    """An elementwise group whose tail reduces one of its values: kernel "ew_reduce" (elementwise_cpu.cpp)."""
    tail = next(n for n in unit.nodes if n.op in REDUCTIONS)
    body = [n for n in unit.nodes if n is not tail]
    source = tail.inputs[0]
    space = graph.values[source].shape
    rank = len(space)
    if tail.op == "sum_to":
        target = tuple(tail.attr("shape"))
        kept = (1,) * (rank - len(target)) + target
    else:
        axis = tail.attr("axis")
        axes = range(rank) if axis is None else [a % rank for a in (axis if isinstance(axis, tuple) else (axis,))]
        kept = tuple(1 if d in axes else space[d] for d in range(rank))
    count = 1
    for full, k in zip(space, kept):
        count *= int(full) // int(k)
    scale = 1.0 / max(count, 1) if tail.op == "mean" else 1.0
    outputs = [tail.outputs[0]] + [o for o in unit.outputs if o != tail.outputs[0]]
    program, floats = build_program(graph, body, unit.inputs, outputs, reduce=source)
    ints = [rank, *[int(d) for d in space], *[int(d) for d in kept], *program]
    return "ew_reduce", list(unit.inputs), outputs, ints, [scale, *floats]
