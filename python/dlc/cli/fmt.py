"""`dlc fmt FILE... [--check]`: rewrite .dlm files in the one layout of dlc.frontend.format (comments kept)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..frontend.format import format_source
from ..frontend.parser import decode_source


def cmd_fmt(args: argparse.Namespace) -> int:
    unformatted = []
    for name in args.files:
        path = Path(name)
        text = decode_source(path.read_bytes(), name)
        formatted = format_source(text, name)
        if formatted == text:
            continue
        unformatted.append(name)
        if not args.check:
            temporary = path.with_name(path.name + ".fmt-tmp")
            temporary.write_text(formatted, encoding="utf-8")
            os.replace(temporary, path)  # atomic: an interrupted run never leaves half a model
    for name in unformatted:
        print(f"{name}: {'would reformat' if args.check else 'reformatted'}")
    return 1 if args.check and unformatted else 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("fmt", help="format .dlm files (comments kept)",
                       description="Rewrites each file in the standard layout: spacing, four-space indentation, "
                                   "one blank line at most; comments and line breaks are kept.")
    p.add_argument("files", nargs="+", metavar="FILE.dlm", help="files to format in place")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit 1 and name the files that are not formatted")
    p.set_defaults(func=cmd_fmt)
