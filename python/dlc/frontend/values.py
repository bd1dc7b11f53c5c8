"""Values the elaborator binds to names: tensors (graph values) and the scope they live in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .modules import Module


@dataclass(frozen=True)
class TensorVal:
    """A tensor-valued name: a graph value id."""

    v: int


@dataclass
class Scope:
    module: Module
    env: dict[str, Any]
    prefix: str  # parameter-name prefix, e.g. "enc.0."
    path: tuple[str, ...] = ()  # block call path, for messages
    depth: int = 0
    sharing: bool = False  # inside a block call with share=: every parameter already exists and is reused
    # Per-statement layer naming state.
    target: str | None = None
    layer_calls: int = 0
    used_names: dict[str, int] = field(default_factory=dict)
