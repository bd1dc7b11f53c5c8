"""`dlc check MODEL`: parse and shape-check a model and its train block (loss, labels, metrics, optimizer: the
whole training graph is built), print its inputs, outputs and parameter count. `--lib` checks a file of blocks
(a library for `import`), which has no inputs or outputs of its own."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..lint import training_graph
from ..passes.context import PassContext
from ..passes.dead_code import eliminate_dead_code
from ..program import Program
from ..training.step import strip_unused_inputs
from .common import io_lines, load_program, param_count


def training_lines(program: Program) -> list[str]:
    """Builds the training graph of every phase (the errors of the train block surface here, located) and
    summarizes each: one line for a single-loss recipe, a line per phase after a header for phases."""
    phases = program.trainer.spec().phases
    if not phases:
        return ["training: " + _graph_summary(program, training_graph(program, "step"))]
    lines = [f"training: {len(phases)} phases taking turns"]
    for ph in phases:
        steps = f"; {ph.steps} steps per round" if ph.steps != 1 else ""
        tg = training_graph(program, "step", phase=ph.name)
        lines.append(f"  phase {ph.name}: {_graph_summary(program, tg)}{steps}")
    return lines


def _graph_summary(program: Program, tg: Any) -> str:
    spec = tg.spec
    used = set(program.model.used_inputs())
    needed = strip_unused_inputs(eliminate_dead_code(tg.graph, PassContext())).inputs  # what the step reads
    labels = [n for n, _ in needed if n in program.inputs and n not in used]
    parts = [f"loss over {', '.join(labels)}" if labels else "loss",
             f"metrics {', '.join(n for n, _ in spec.metrics)}" if spec.metrics else "",
             f"optimizer {spec.optimizer.name} (lr {spec.optimizer.lr:g})",
             f"{len(tg.trainable)} trainable parameter tensor{'s' * (len(tg.trainable) != 1)}"]
    return "; ".join(p for p in parts if p)


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
    training = training_lines(program) if program.model.has_train_block else []
    print(f"{args.model}: ok")
    print("\n".join(io_lines(program)))
    print(f"parameters: {param_count(program):,}")
    for line in training:
        print(line)
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[model], help="parse and shape-check a model and its train block",
                       description="Parses the model and infers every shape, the train block's training graph "
                                   "included; prints its inputs and outputs. --lib checks a file of blocks.")
    p.add_argument("--lib", action="store_true", help="the file is a library of blocks (no inputs or outputs)")
    p.set_defaults(func=cmd_check)
