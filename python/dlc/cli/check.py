"""`dlc check MODEL`: parse and shape-check a model, print its inputs, outputs and parameter count."""

from __future__ import annotations

import argparse

from .common import io_lines, load_program, param_count


def cmd_check(args: argparse.Namespace) -> int:
    program = load_program(args)
    print(f"{args.model}: ok")
    print("\n".join(io_lines(program)))
    print(f"parameters: {param_count(program):,}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check", parents=[model], help="parse and shape-check a model",
                       description="Parses the model and infers every shape; prints its inputs and outputs.")
    p.set_defaults(func=cmd_check)
