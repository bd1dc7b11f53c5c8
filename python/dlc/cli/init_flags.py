"""`dlc train --init CKPT [--init-include GLOB] [--init-exclude GLOB] [--init-rename OLD=NEW] [--no-init-strict]`:
start training from some of a checkpoint's parameters (transfer learning; see Program.load_params)."""

from __future__ import annotations

import argparse

from ..program import Program


def _rename(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old:
        raise argparse.ArgumentTypeError(f"expected OLD_PREFIX=NEW_PREFIX (e.g. encoder.=backbone.), got {text!r}")
    return old, new


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("transfer learning")
    group.add_argument("--init", metavar="CKPT", help="load parameters from a checkpoint or a plain safetensors file "
                                                           "(safetensors.torch.save_file, ...) before training")
    group.add_argument("--init-include", metavar="GLOB", action="append",
                       help="load only these names (prefixes or globs, repeatable), e.g. 'backbone.*'")
    group.add_argument("--init-exclude", metavar="GLOB", action="append", default=[],
                       help="leave these names out (repeatable)")
    group.add_argument("--init-rename", metavar="OLD=NEW", type=_rename, action="append", default=[],
                       help="rename a checkpoint name prefix before matching (repeatable)")
    group.add_argument("--init-strict", action=argparse.BooleanOptionalAction, default=True,
                       help="fail when selected names are missing or unexpected (default: on)")


def apply(program: Program, args: argparse.Namespace) -> str | None:
    """Loads what --init asks for; returns the load report as one line (None without --init)."""
    if args.init is None:
        for flag in ("init_include", "init_exclude", "init_rename"):
            if getattr(args, flag):
                raise ValueError(f"--{flag.replace('_', '-')} needs --init CKPT")
        return None
    report = program.load_params(args.init, include=args.init_include, exclude=args.init_exclude,
                                 rename=args.init_rename, strict=args.init_strict)
    return f"init from {args.init}: {report}"
