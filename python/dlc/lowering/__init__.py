"""Lowering: an optimized Graph (concrete shapes) becomes a C++ execution plan, in three steps:

- units.py: the kernel steps (a node on its own, or a fusion group as one step; views emit nothing);
- memory.py (with memory_plan.py, the arena allocator, and dlc/storage.py, what the scheduling pass shares):
  liveness, storage roots, in-place merges, the gradient region and the arena offsets;
- kernels.py (and rows.py): each unit's kernel call; plan.py: the recipe and the C++ plan built from it.

Lowering reads the op registry, never the passes; the passes never import lowering (constant folding runs
nodes through `evaluate_nodes`, which this package installs in dlc/evaluation.py).
"""

from __future__ import annotations

import numpy as np

from .. import evaluation
from ..dims import is_concrete
from ..errors import DlcError
from ..ir import Graph, np_dtype
from ..ops import registry
from ..ops.nchwc import blocked_values
from ..storage import nbytes, storage
from .kernels import emit_unit
from .memory import plan_layout
from .plan import (ARENA, CONST, INPUT, PERSISTENT, LoweredPlan, ParamVersions, PlanRecipe, Slots, StepInfo,
                   layout_summary, nchwc_block_size, set_arena_limit)
from .units import Unit, make_units

__all__ = ["ARENA", "CONST", "INPUT", "PERSISTENT", "LoweredPlan", "ParamVersions", "PlanRecipe", "StepInfo", "Unit",
           "layout_summary", "lower", "make_units", "nchwc_block_size", "set_arena_limit"]


def lower(graph: Graph, persistent_names: list[str], label_prefix: str = "") -> LoweredPlan:
    for v, t in graph.values.items():
        if not is_concrete(t.shape):
            raise DlcError(f"value %{v} has symbolic shape {t}; bind every dimension before lowering")
    units = make_units(graph)
    layout = plan_layout(graph, units, storage(graph))
    # One allocation per run: the planned arena, then the gradient region.
    recipe = PlanRecipe(layout.memory.arena_bytes + layout.memory.gradient_bytes)
    slot = Slots(graph, layout, recipe, persistent_names)
    infos: list[StepInfo] = []
    blocked = blocked_values(graph)
    for unit in units:
        if unit.kind == "view":
            continue
        key, ins, outs, ints, floats = emit_unit(graph, unit)
        label = label_prefix + "+".join(n.op for n in unit.nodes)
        scope = unit.nodes[0].scope
        if scope:
            label += f" [{scope}]"
        recipe.steps.append((key, label, [slot(v) for v in ins], [slot(v) for v in outs], list(ints),
                             list(floats)))
        # Parameters it writes in place: the plan advances their versions after the step, so a copy packed
        # before is not used again (runtime/packed_weights.h).
        written = [s for n in unit.nodes for v in registry.get(n.op).mutated_inputs(n.inputs, n.attrs)
                   if recipe.slots[s := slot(v)][0] == PERSISTENT]
        if written:
            recipe.writes[len(recipe.steps) - 1] = written
        moved = sum(nbytes(graph.values[v]) for v in set(ins) | set(outs))
        infos.append(StepInfo(key, label, moved, len(unit.nodes), *_layout(graph, blocked, key, ins, outs)))
    recipe.num_inputs = len(graph.inputs)
    recipe.outputs = [slot(v) for _, v in graph.outputs]
    recipe.output_homes = slot.output_homes(recipe.outputs)
    return LoweredPlan(recipe.build(), recipe, layout.memory, [n for n, _ in graph.inputs],
                       [graph.values[v] for _, v in graph.inputs], [n for n, _ in graph.outputs],
                       [graph.values[v] for _, v in graph.outputs], list(persistent_names), infos)


def _layout(graph: Graph, blocked: dict[int, int], key: str, ins: list[int], outs: list[int]) -> tuple[str, int, bool]:
    """A step's StepInfo.layout, block and images fields."""
    if key == "nchwc_reorder":
        source, result = ins[0], outs[0]
        block = blocked.get(result) or blocked.get(source, 0)
        plain, nchwc = "NCHW", f"NCHW{block}c"
        text = f"{plain}->{nchwc}" if result in blocked else f"{nchwc}->{plain}"
        return text, block, graph.values[source].rank >= 4 and graph.values[result].rank >= 4
    if outs and outs[0] in blocked:
        return f"NCHW{blocked[outs[0]]}c", blocked[outs[0]], False
    return "", 0, False


def evaluate_nodes(graph: Graph) -> list[np.ndarray]:
    """Runs a graph without inputs (constants only) with the kernels a plan would run: its outputs."""
    lowered = lower(graph, [])
    outs = [np.empty(tuple(int(d) for d in t.shape), dtype=np_dtype(t.dtype)) for t in lowered.output_types]
    lowered.plan.run([], outs, seed=0, step=0, training=False)
    return outs


evaluation.install(evaluate_nodes)
