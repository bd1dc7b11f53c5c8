"""The memory planner: no two tensors live at the same time share bytes (checked by memory_plan.validate on
every plan, and here on random buffer sets), the figures it reports are consistent, and training steps keep
their gradients in a region of their own after the arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlc
from dlc.ir import DTYPE_CODES, np_dtype
from dlc.lowering import ARENA
from dlc.lowering.memory_plan import ALIGN, Buffer, MemoryPlan, align, lower_bound, plan_memory, validate

MODELS = Path(__file__).resolve().parent.parent / "models"


@st.composite
def buffer_sets(draw: st.DrawFn) -> list[Buffer]:
    n = draw(st.integers(0, 40))
    out = []
    for i in range(n):
        start = draw(st.integers(0, 30))
        out.append(Buffer(i, draw(st.integers(0, 5000)), start, start + draw(st.integers(0, 10))))
    return out


@settings(max_examples=200, deadline=None)
@given(buffer_sets())
def test_random_buffers_never_overlap_while_live(buffers: list[Buffer]) -> None:
    plan = plan_memory(buffers)  # validates before returning
    validate(plan, buffers)
    assert all(off % ALIGN == 0 for off in plan.offsets.values())
    assert lower_bound(buffers) <= plan.arena_bytes <= sum(align(b.size) for b in buffers)


def test_validate_rejects_overlapping_live_buffers() -> None:
    a, b = Buffer(0, 128, 0, 2), Buffer(1, 128, 2, 3)
    with pytest.raises(AssertionError, match="overlap"):
        validate(MemoryPlan({0: 0, 1: 64}, 256, 256, 256), [a, b])
    validate(MemoryPlan({0: 0, 1: 0}, 128, 256, 128), [a, Buffer(1, 128, 3, 4)])  # disjoint lifetimes may share


def test_lower_bound_is_the_peak_of_live_bytes() -> None:
    buffers = [Buffer(0, 64, 0, 1), Buffer(1, 128, 1, 2), Buffer(2, 64, 2, 3), Buffer(3, 256, 4, 4)]
    assert lower_bound(buffers) == 256
    assert plan_memory(buffers).arena_bytes == 256


def _step_plans() -> list[object]:
    out = []
    for path in sorted(MODELS.glob("*.dlm")):
        if "train {" in path.read_text():
            out.append(pytest.param(path, id=path.stem))
    return out


@pytest.mark.parametrize("path", _step_plans())
def test_training_step_gradients_live_after_the_arena(path: Path) -> None:
    program = dlc.compile(str(path))
    names = {str(d) for spec in program.inputs.values() for d in spec.shape if isinstance(d, str)}
    dims = {n: 4 for n in names}
    lowered, tg = program.training_plan("step", dims)
    mem = lowered.memory
    trainable = sum(align(program.params[n].nbytes) for n in tg.trainable)
    assert mem.gradient_bytes == trainable  # one buffer per trainable parameter's gradient
    assert lowered.recipe.arena_bytes == mem.arena_bytes + mem.gradient_bytes
    assert mem.lower_bound_bytes <= mem.arena_bytes <= mem.naive_bytes
    # Every arena slot lies inside the allocation; gradient slots start at the end of the planned arena.
    for region, where, dtype, shape in lowered.recipe.slots:
        if region == ARENA:
            size = np_dtype([k for k, c in DTYPE_CODES.items() if c == dtype][0]).itemsize * int(np.prod(shape))
            assert 0 <= where and where + size <= lowered.recipe.arena_bytes
