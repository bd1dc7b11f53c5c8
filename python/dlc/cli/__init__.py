"""The `dlc` command line: check, compile, run, train, evaluate, benchmark, sample from .dlm models and
reinforcement learning (rl).

Each command is one module here exposing `register(subparsers, model_arguments)` (adds its parser and sets
`func` to its `cmd_<name>(args) -> int`); `COMMANDS` lists them in help order, so adding a command is one new
module plus one line in that list. User errors (a bad model, a bad input file, a bad flag) print one clean
message and exit 1, or 2 for usage errors, never a traceback: `CompileError`s print their located diagnostic,
other expected errors `dlc: error: <message>`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from types import ModuleType
from typing import Callable, Sequence

import dlc

from ..errors import CompileError, DlcError, DlcWarning
from . import (bench, check, compile, draw, fmt, generate, onnx_export, onnx_import, quantize, rl, run, saliency,
               train, visualize)
from .common import model_arguments

COMMANDS: list[ModuleType] = [check, compile, run, quantize, train, bench, generate, saliency, visualize, draw, fmt,
                              onnx_import, onnx_export, rl]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlc", description="A declarative deep-learning graph compiler.")
    parser.add_argument("--version", action="version", version=f"dlc {dlc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    model = model_arguments()
    for command in COMMANDS:
        command.register(sub, model)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlc` script; returns the exit status (tests call it in-process)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors: argparse has printed what it had to
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    func: Callable[[argparse.Namespace], int] = args.func
    if getattr(args, "threads", None):
        dlc.set_num_threads(args.threads)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            code = func(args)
            sys.stdout.flush()  # here, where a closed pipe can be caught, not at exit
            return code
    except BrokenPipeError:  # `dlc run ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the flush at exit does not fail again
        return 141  # 128 + SIGPIPE, as a program the signal ended
    except CompileError as e:
        print(e.format(), file=sys.stderr)
    except (DlcError, ValueError, OSError) as e:
        print(f"dlc: error: {e}", file=sys.stderr)
    except MemoryError as e:  # a model can ask for more memory than there is (huge layers)
        print(f"dlc: error: out of memory{': ' + str(e) if str(e) else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print("dlc: interrupted", file=sys.stderr)
        return 130
    return 1


_python_showwarning = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: object = None, line: str | None = None) -> None:
    """A model's warnings (DlcWarning) as one line like the errors; any other warning as Python shows it."""
    if issubclass(category, DlcWarning):
        print(f"dlc: warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)  # type: ignore[arg-type]
