"""`dlc check MODEL`: parse and shape-check a model and its train block (loss, labels, metrics, optimizer: the
whole training graph is built), print its inputs, outputs and parameter count. `--lib` checks a file of blocks
(a library for `import`), which has no inputs or outputs of its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import ShapeError
from ..program import Program
from .common import io_lines, load_program, param_count

# The size an unbound dimension gets when a training graph needs concrete sizes (a mean's gradient divides by
# its element count): the shapes are checked the same for any batch size.
PROBE_SIZE = 2


def training_graph(program: Program, kind: str) -> Any:
    """The training graph with the model's dimensions as given; where it needs concrete sizes, with each
    unbound dimension bound to a probe size, so `dlc check` needs no -D for a loss that takes a mean."""
    try:
        return program.trainer.training_graph(kind, program.model.dims)
    except ShapeError as e:
        if "needs a concrete size" not in str(e):
            raise
    unbound = {d for spec in program.inputs.values() for d in spec.shape if isinstance(d, str)}
    probe = {**{d: PROBE_SIZE for d in unbound if d.isidentifier()}, **program.model.dims}
    return program.trainer.training_graph(kind, probe)


def training_line(program: Program) -> str:
    """Builds the training graph (the errors of the train block surface here, located) and summarizes it."""
    tg = training_graph(program, "step")
    spec = tg.spec
    used = set(program.model.used_inputs())
    labels = [n for n, _ in tg.graph.inputs if n in program.inputs and n not in used]
    parts = [f"loss over {', '.join(labels)}" if labels else "loss",
             f"metrics {', '.join(n for n, _ in spec.metrics)}" if spec.metrics else "",
             f"optimizer {spec.optimizer.name} (lr {spec.optimizer.lr:g})",
             f"{len(tg.trainable)} trainable parameter tensor{'s' * (len(tg.trainable) != 1)}"]
    return "training: " + "; ".join(p for p in parts if p)


def unused_params(program: Program) -> list[str]:
    """Declared parameters no node reads: a `param` line whose name was never used (likely a typo)."""
    graphs = [program.graph]
    if program.model.has_train_block:  # a parameter may appear only in the loss (a learned weighting)
        graphs.append(training_graph(program, "loss").graph)
    read = {p.name for g in graphs for p in g.params
            if p.value in {v for n in g.nodes for v in n.inputs} | {v for _, v in g.outputs}}
    return [p.name for p in program.graph.params if p.name not in read]


def check_library(path: str) -> int:
    from ..frontend.modules import load_path
    module = load_path(Path(path))
    if not module.blocks:
        raise ValueError(f"{path}: no blocks to check (a library defines `block NAME(...)`)")
    print(f"{path}: ok (library)")
    for block in module.blocks.values():
        params = ", ".join(name + (f": {ptype}" if ptype else "") for name, ptype, _ in block.params)
        print(f"  block {block.name}({params})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.lib:
        return check_library(args.model)
    program = load_program(args)
    training = training_line(program) if program.model.has_train_block else None
    print(f"{args.model}: ok")
    print("\n".join(io_lines(program)))
    print(f"parameters: {param_count(program):,}")
    if training:
        print(training)
    for name in unused_params(program):
        print(f"{args.model}: warning: parameter '{name}' is declared but never used", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[model], help="parse and shape-check a model and its train block",
                       description="Parses the model and infers every shape, the train block's training graph "
                                   "included; prints its inputs and outputs. --lib checks a file of blocks.")
    p.add_argument("--lib", action="store_true", help="the file is a library of blocks (no inputs or outputs)")
    p.set_defaults(func=cmd_check)
