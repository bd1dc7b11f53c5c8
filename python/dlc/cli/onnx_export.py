"""`dlc export MODEL.dlm [--params CKPT] -o MODEL.onnx`: the inference graph as ONNX."""

from __future__ import annotations

import argparse

from .common import load_params, load_program


def cmd_export(args: argparse.Namespace) -> int:
    from ..onnx import to_onnx
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    to_onnx(program, args.output, opset=args.opset)
    print(f"wrote {args.output} (checked by onnx.checker)")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[model], help="write the inference graph as ONNX",
                       description="Writes the model's inference graph as ONNX: symbolic dimensions stay named "
                                   "dims, recurrent layers become LSTM/GRU/RNN nodes. Needs the onnx extra.")
    p.add_argument("--params", metavar="CKPT", help="trained parameters (checkpoint or artifact)")
    p.add_argument("-o", dest="output", metavar="MODEL.onnx", required=True, help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)
