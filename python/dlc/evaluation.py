"""Compile-time evaluation with the kernels a plan would run, so a folded constant is bit-identical to the
value computed at run time. Constant folding (a pass) needs it, and it is lowering plus the runtime, which sit
above the passes: the lowering package installs its evaluator here when it is imported (importing dlc
imports it), as the op registry installs op signatures into the IR."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .ir import Graph

Evaluator = Callable[[Graph], list[np.ndarray]]
_evaluator: Evaluator | None = None


def install(evaluator: Evaluator) -> None:
    global _evaluator
    _evaluator = evaluator


def evaluate(graph: Graph) -> list[np.ndarray]:
    """The outputs of a graph that reads only constants."""
    if _evaluator is None:
        raise RuntimeError("no compile-time evaluator: import dlc (dlc.lowering installs it)")
    return _evaluator(graph)
