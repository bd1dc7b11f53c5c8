"""A bounded cache of compiled plans, least recently used first out.

A program compiles one plan per binding of its symbolic dimensions (each batch size, say). Unbounded, a server
that sees 300 batch sizes keeps 300 plans and their arenas alive (+132 MiB measured); bounded, a binding that
comes back after eviction is compiled again (about a tenth of a second).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")

DEFAULT_PLANS = 16  # distinct bindings kept per program and kind of plan


class PlanCache(OrderedDict, Generic[V]):  # type: ignore[type-arg]
    """An OrderedDict that moves what is read to the back and drops the front beyond `capacity` entries."""

    def __init__(self, capacity: int = DEFAULT_PLANS):
        super().__init__()
        if capacity < 1:
            raise ValueError(f"a plan cache holds at least one plan, got capacity {capacity}")
        self.capacity = capacity

    def __getitem__(self, key: Hashable) -> V:
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def get(self, key: Hashable, default: V | None = None) -> V | None:  # type: ignore[override]
        return self[key] if key in self else default

    def __setitem__(self, key: Hashable, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)
