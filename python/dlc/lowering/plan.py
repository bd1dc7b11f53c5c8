"""The C++ plan a lowering emits: its recipe in plain data (what compiled artifacts store), the slots every
value is addressed by (arena offset, gradient region, persistent table index, input, constant), and the plan
built from it under the arena limit."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _core
from ..errors import ArenaLimitError
from ..ir import DTYPE_CODES, Graph, TensorType
from .memory import Layout
from .memory_plan import MemoryPlan

ARENA, PERSISTENT, INPUT, CONST = 0, 1, 2, 3

# The versions of a parameter store, shared by every plan over it (csrc/runtime/packed_weights.h).
ParamVersions = _core.ParamVersions

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


def nchwc_block_size() -> int:
    """The channels per block the convolution kernels want on this CPU (16 AVX-512, 8 AVX2, 0: keep NCHW)."""
    return int(_core.nchwc_block_size())


@dataclass(frozen=True)
class StepInfo:
    kernel: str
    label: str
    bytes_moved: int
    nodes: int
    # The blocked channel layout (ops/nchwc.py): "" for NCHW and other tensors, "NCHW16c" for a step with a
    # blocked result, "NCHW->NCHW16c" / "NCHW16c->NCHW" for a reorder; its block size; whether a reorder moves
    # image batches [N, ...] rather than a per-channel vector (a bias, a batch-norm scale).
    layout: str = ""
    block: int = 0
    images: bool = False


def layout_summary(steps: list[StepInfo]) -> dict[str, int]:
    """How much of a plan runs blocked: the block size (0: none), the kernels with blocked results, the reorders
    and, of those, the ones of image batches."""
    reorders = [s for s in steps if "->" in s.layout]
    return {"block": max((s.block for s in steps), default=0),
            "blocked_kernels": sum(1 for s in steps if s.layout and "->" not in s.layout),
            "reorders": len(reorders), "image_reorders": sum(1 for s in reorders if s.images)}


@dataclass
class PlanRecipe:
    """Everything needed to rebuild the C++ plan, in plain data: what compiled artifacts store."""

    arena_bytes: int
    slots: list[tuple[int, int, int, list[int]]] = field(default_factory=list)  # region, where, dtype, shape
    consts: list[np.ndarray] = field(default_factory=list)
    steps: list[tuple[str, str, list[int], list[int], list[int], list[float]]] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    output_homes: dict[int, list[int]] = field(default_factory=dict)  # output -> slots in its buffer
    writes: dict[int, list[int]] = field(default_factory=dict)  # step -> input slots it writes in place
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
        for k, written in self.writes.items():
            plan.set_step_writes(k, written)
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

    def memory_report(self) -> dict[str, int]:
        """The planned memory (MemoryPlan.as_dict) and, beside the arena, the bytes of the weights the plan
        holds packed for its matrix products (packed_weights_bytes; 0 when it packs none)."""
        return {**self.memory.as_dict(), "packed_weights_bytes": int(self.plan.packed_bytes)}

    def fast_call(self, names: list[str], arrays: list[np.ndarray], training: bool) -> Any:
        """A `_core.Call` running this plan for exactly these inputs' names, dtypes and shapes (the call key
        they passed the checks under), answering None for any other inputs (csrc/bindings_call.h)."""
        position = {name: i for i, name in enumerate(self.input_names)}
        return _core.Call(self.plan, names, [a.dtype for a in arrays], [list(a.shape) for a in arrays],
                          [position.get(name, -1) for name in names], len(self.input_names), self.output_names,
                          training)


class Slots:
    """Each value's slot in the recipe, made on first use: where its memory is (see the module docstring)."""

    def __init__(self, graph: Graph, layout: Layout, recipe: PlanRecipe, persistent_names: list[str]):
        self.graph, self.layout, self.recipe = graph, layout, recipe
        self.params = graph.param_by_value()
        self.persistent_index = {name: i for i, name in enumerate(persistent_names)}
        self.input_index = {v: i for i, (_, v) in enumerate(graph.inputs)}
        self.slots: dict[int, int] = {}
        self.const_index: dict[int, int] = {}
        self.buffer_of: dict[int, int] = {}  # arena slot -> its buffer's root (the planner's unit of memory)

    def __call__(self, v: int) -> int:
        if v in self.slots:
            return self.slots[v]
        t = self.graph.values[v]
        layout, memory = self.layout, self.layout.memory
        r = layout.storage(v)
        if r in self.params:
            region, where = PERSISTENT, self.persistent_index[self.params[r].name]
        elif r in self.input_index:
            region, where = INPUT, self.input_index[r]
        elif r in self.graph.consts:
            if r not in self.const_index:
                self.const_index[r] = self.recipe.add_const(np.ascontiguousarray(self.graph.consts[r]))
            region, where = CONST, self.const_index[r]
        elif r in layout.gradient_offsets:
            region, where = ARENA, memory.arena_bytes + layout.gradient_offsets[r]
        else:
            region, where = ARENA, memory.offsets[layout.buffer(r)]
        self.slots[v] = self.recipe.add_slot(region, where, DTYPE_CODES[t.dtype], [int(d) for d in t.shape])
        if region == ARENA and r not in layout.gradient_offsets:
            self.buffer_of[self.slots[v]] = layout.buffer(r)
        return self.slots[v]

    def output_homes(self, outputs: list[int]) -> dict[int, list[int]]:
        """For each output whose arena buffer holds no other output: every slot in that buffer. The plan puts
        them in the caller's output array (when it can, see Plan::set_output_home), so the output is computed
        where it is wanted instead of being copied out of the arena after the last step."""
        owners: dict[int, list[int]] = {}
        for j, s in enumerate(outputs):
            if s in self.buffer_of:
                owners.setdefault(self.buffer_of[s], []).append(j)
        homes: dict[int, list[int]] = {}
        for buffer, js in owners.items():
            if len(js) == 1:
                homes[js[0]] = sorted(s for s, b in self.buffer_of.items() if b == buffer)
        return homes
