"""`dlc import MODEL.onnx -o MODEL.dlm`: an ONNX model as a readable .dlm file plus its parameters."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import io_lines, param_count, parse_dim


def cmd_import(args: argparse.Namespace) -> int:
    from ..onnx import import_onnx
    out = Path(args.output)
    params = Path(args.params) if args.params else out.with_suffix(".safetensors")
    program = import_onnx(args.model, out, params, dims=dict(args.dims))
    print(f"{args.model}: imported")
    print("\n".join(io_lines(program)))
    print(f"parameters: {param_count(program):,}")
    print(f"wrote {out} and {params}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", help="convert an ONNX model to a .dlm file and a checkpoint",
                       description="Writes the ONNX model as .dlm text (layers where the pattern is recognizable, "
                                   "symbolic dimensions kept) and its weights as a checkpoint that --params of "
                                   "every command reads. Needs the onnx extra.")
    p.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    p.add_argument("-o", dest="output", metavar="MODEL.dlm", required=True, help="the .dlm file to write")
    p.add_argument("--params", metavar="CKPT", help="checkpoint to write (default: MODEL.safetensors)")
    p.add_argument("-D", dest="dims", metavar="NAME=SIZE", type=parse_dim, action="append", default=[],
                   help="bind a symbolic dimension while checking the import (repeatable)")
    p.set_defaults(func=cmd_import)
