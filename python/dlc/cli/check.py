"""`dlc check MODEL`: parse and shape-check a model and its train block (loss, labels, metrics, optimizer: the
whole training graph is built), print its inputs, outputs and parameter count. `--lib` checks a file of blocks
(a library for `import`), which has no inputs or outputs of its own."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..lint import training_graph
from ..program import Program
from .common import io_lines, load_program, param_count

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
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[model], help="parse and shape-check a model and its train block",
                       description="Parses the model and infers every shape, the train block's training graph "
                                   "included; prints its inputs and outputs. --lib checks a file of blocks.")
    p.add_argument("--lib", action="store_true", help="the file is a library of blocks (no inputs or outputs)")
    p.set_defaults(func=cmd_check)
