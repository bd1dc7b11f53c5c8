"""Graph -> Graph passes and the pipeline that runs them.

Each pass lives in its own module and exports one pure function `(Graph, PassContext) -> Graph` that never
mutates its input. Options travel in the frozen `PassContext`; no pass reads the environment.
"""

from __future__ import annotations

from ..ir import Graph
from .batchnorm_fold import fold_batch_norm
from .constant_fold import fold_constants
from .context import Pass, PassContext
from .cse import eliminate_common_subexpressions
from .dead_code import eliminate_dead_code
from .eval_mode import strip_training_only
from .fusion import fuse_operators
from .precision import assign_precision
from .layout import assign_layouts
from .schedule import schedule_for_memory
from .simplify import simplify_algebra

__all__ = ["Pass", "PassContext", "REQUIRED", "pipeline", "run_pipeline"]


# Passes that define what the plan computes (evaluation mode) or that lowering relies on (no dead nodes).
REQUIRED = ("strip_training_only", "dead_code", "precision")


def pipeline() -> list[tuple[str, Pass]]:
    """The pass order. Evaluation mode first (it decides which nodes exist); simplification before folding
    and CSE so they see canonical nodes; folding before CSE, which merges equal constants and their
    readers; dead-code elimination drops what the rewrites orphaned; precision marks the weights that run in
    bf16 or int8 on the final set of nodes (it defines what the plan computes, so it always runs); the layout
    decision on the convolutions left in f32 (the reorders it adds are not for folding or merging); fusion after
    it, so blocked epilogues fuse;
    scheduling last, since it orders whole kernels."""
    return [
        ("strip_training_only", strip_training_only),
        ("batchnorm_fold", fold_batch_norm),
        ("simplify", simplify_algebra),
        ("constant_fold", fold_constants),
        ("cse", eliminate_common_subexpressions),
        ("dead_code", eliminate_dead_code),
        ("precision", assign_precision),
        ("layout", assign_layouts),
        ("fusion", fuse_operators),
        ("schedule", schedule_for_memory),
    ]


def run_pipeline(graph: Graph, ctx: PassContext) -> Graph:
    for name, fn in pipeline():
        if (name in ctx.disabled or (name == "fusion" and not ctx.fuse)
                or (not ctx.optimize and name not in REQUIRED and name != "fusion")):
            continue
        graph = fn(graph, ctx)
        if ctx.dump is not None:
            ctx.dump(name, graph)
    return graph
