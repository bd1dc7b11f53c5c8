"""Static memory planning: every intermediate buffer of a plan gets a fixed offset in one arena.

Buffers have live intervals over the kernel order [first step, last step]. Offsets are assigned greedily, best
fit: each buffer, taken in some order, goes into the smallest gap left by the already-placed buffers whose
intervals overlap it (TFLite's arena planner, XLA's heap simulator). Two orders are tried (by decreasing size,
and by decreasing size x lifetime) and the smaller arena kept. `lower_bound` is the peak of bytes live at once
for this kernel order, the best any offset assignment can do.
"""

from __future__ import annotations

from dataclasses import dataclass

ALIGN = 64


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class Buffer:
    id: int
    size: int  # bytes
    start: int  # first step that writes it
    end: int  # last step that reads it (inclusive)


@dataclass(frozen=True)
class MemoryPlan:
    offsets: dict[int, int]
    arena_bytes: int
    naive_bytes: int
    lower_bound_bytes: int
    gradient_bytes: int = 0  # the training step's gradient region, outside the arena (see memory.py)

    def as_dict(self) -> dict[str, int]:
        out = {"arena_bytes": self.arena_bytes, "naive_bytes": self.naive_bytes,
               "lower_bound_bytes": self.lower_bound_bytes}
        if self.gradient_bytes:  # only update plans have one; inference artifacts keep the three keys
            out["gradient_bytes"] = self.gradient_bytes
        return out


def overlaps(a: Buffer, b: Buffer) -> bool:
    return a.start <= b.end and b.start <= a.end


def _place(buffers: list[Buffer]) -> tuple[dict[int, int], int]:
    placed: list[tuple[int, Buffer]] = []  # (offset, buffer)
    offsets: dict[int, int] = {}
    top = 0
    for buf in buffers:
        size = align(buf.size)
        busy = sorted((off, off + align(b.size)) for off, b in placed if overlaps(b, buf))
        best: int | None = None
        best_gap: int | None = None
        cursor = 0
        for lo, hi in busy:
            gap = lo - cursor
            if gap >= size and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, hi)
        offset = best if best is not None else cursor
        offsets[buf.id] = offset
        placed.append((offset, buf))
        top = max(top, offset + size)
    return offsets, top


def lower_bound(buffers: list[Buffer]) -> int:
    if not buffers:
        return 0
    events: dict[int, int] = {}
    for b in buffers:
        events[b.start] = events.get(b.start, 0) + align(b.size)
        events[b.end + 1] = events.get(b.end + 1, 0) - align(b.size)
    live = peak = 0
    for step in sorted(events):
        live += events[step]
        peak = max(peak, live)
    return peak


def plan_memory(buffers: list[Buffer], naive_bytes: int | None = None, gradient_bytes: int = 0) -> MemoryPlan:
    """Offsets for `buffers`. naive_bytes: one buffer per tensor, before in-place merges (default: these);
    gradient_bytes is only recorded."""
    orders = [
        sorted(buffers, key=lambda b: (-align(b.size), b.start, b.id)),
        sorted(buffers, key=lambda b: (-align(b.size) * (b.end - b.start + 1), b.start, b.id)),
        sorted(buffers, key=lambda b: (b.start, -align(b.size), b.id)),
    ]
    best: tuple[dict[int, int], int] | None = None
    for order in orders:
        result = _place(order)
        if best is None or result[1] < best[1]:
            best = result
    offsets, arena = best if best is not None else ({}, 0)
    naive = naive_bytes if naive_bytes is not None else sum(align(b.size) for b in buffers)
    plan = MemoryPlan(offsets, arena, naive, lower_bound(buffers), gradient_bytes)
    validate(plan, buffers)
    return plan


def validate(plan: MemoryPlan, buffers: list[Buffer]) -> None:
    """Raises if two buffers that are live at the same time overlap in memory, or one leaves the arena."""
    by_start = sorted(buffers, key=lambda b: b.start)
    for i, a in enumerate(by_start):
        oa = plan.offsets[a.id]
        if oa < 0 or oa + a.size > plan.arena_bytes:
            raise AssertionError(f"buffer {a.id} lies outside the arena")
        for b in by_start[i + 1:]:
            if b.start > a.end:
                break
            ob = plan.offsets[b.id]
            if oa < ob + b.size and ob < oa + a.size and a.size and b.size:
                raise AssertionError(f"buffers {a.id} and {b.id} are live together and overlap")
