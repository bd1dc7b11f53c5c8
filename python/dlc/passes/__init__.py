"""Graph -> Graph passes and the pipeline that runs them.

Each pass lives in its own module and exports one pure function `(Graph, PassContext) -> Graph` that never
mutates its input. Options travel in the frozen `PassContext`; no pass reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..ir import Graph

Pass = Callable[[Graph, "PassContext"], Graph]


@dataclass(frozen=True)
class PassContext:
    training: bool = False  # dropout active; batch norm uses batch statistics
    fuse: bool = True
    disabled: frozenset[str] = field(default_factory=frozenset)
    dump: Callable[[str, Graph], None] | None = None  # called after every pass, for IR dumps


def pipeline() -> list[tuple[str, Pass]]:
    """The pass order. Cleanups run before fusion so it sees the final set of nodes."""
    from .dead_code import eliminate_dead_code
    from .eval_mode import strip_training_only
    from .fusion import fuse_operators
    return [
        ("strip_training_only", strip_training_only),
        ("dead_code", eliminate_dead_code),
        ("fusion", fuse_operators),
    ]


def run_pipeline(graph: Graph, ctx: PassContext) -> Graph:
    for name, fn in pipeline():
        if name in ctx.disabled or (name == "fusion" and not ctx.fuse):
            continue
        graph = fn(graph, ctx)
        if ctx.dump is not None:
            ctx.dump(name, graph)
    return graph
