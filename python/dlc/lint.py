"""Compile-time warnings about a model that compiles but is likely not what was meant, raised through Python's
`warnings` (category `dlc.DlcWarning`), so a notebook or a test sees them as any library's warnings and
`warnings.filterwarnings` controls them; the `dlc` command prints them as `dlc: warning: ...`."""

from __future__ import annotations

import warnings
from typing import Any

from .errors import DlcError, DlcWarning, ShapeError
from .program import Program

# The size an unbound dimension gets when a training graph needs concrete sizes (a mean's gradient divides by
# its element count): the shapes are checked the same for any batch size.
PROBE_SIZE = 2


def training_graph(program: Program, kind: str, **options: Any) -> Any:
    """The training graph with the model's dimensions as given; where it needs concrete sizes, with each
    unbound dimension bound to a probe size, so `dlc check` needs no -D for a loss that takes a mean. Options
    as the trainer's (phase=...)."""
    try:
        return program.trainer.training_graph(kind, program.model.dims, **options)
    except ShapeError as e:
        if "needs a concrete size" not in str(e):
            raise
    unbound = {d for spec in program.inputs.values() for d in spec.shape if isinstance(d, str)}
    probe = {**{d: PROBE_SIZE for d in unbound if d.isidentifier()}, **program.model.dims}
    return program.trainer.training_graph(kind, probe, **options)


def _read(graph: Any) -> set[str]:
    read = {v for n in graph.nodes for v in n.inputs} | {v for _, v in graph.outputs}
    return {p.name for p in graph.params if p.value in read}


def unused_params(program: Program) -> list[str]:
    """Declared parameters no node reads: a `param` line whose name was never used (likely a typo). The
    training graph is built only when the inference graph leaves some unread (a parameter may appear only in
    the loss, a learned weighting), so the common case costs one pass over the nodes."""
    read = _read(program.graph)
    unread = [p.name for p in program.graph.params if p.name not in read]
    if unread and program.model.has_train_block:
        read |= _read(training_graph(program, "loss").graph)
    return [name for name in unread if name not in read]


def warn_unused_params(program: Program, stacklevel: int = 2) -> None:
    """One DlcWarning per unused parameter. A train block that does not build is left for training to
    report (with its location): inference from such a model still works."""
    try:
        names = unused_params(program)
    except DlcError:
        return
    for name in names:
        warnings.warn(f"{program.model.module.filename}: parameter '{name}' is declared but never used",
                      DlcWarning, stacklevel=stacklevel + 1)
