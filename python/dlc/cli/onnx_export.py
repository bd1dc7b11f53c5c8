"""`dlc export MODEL.dlm --params CKPT -o MODEL.onnx [--safetensors PARAMS.safetensors]`: the inference graph as
ONNX, and/or the parameters as a plain safetensors file (for PyTorch, NumPy, or another framework), with the
trained parameters of --params (or, with --random-init, freshly initialized ones, as for `dlc compile -o`)."""

from __future__ import annotations

import argparse

from .common import add_params_arguments, deployable_params, load_program


def cmd_export(args: argparse.Namespace) -> int:
    if not args.output and not args.safetensors:
        raise ValueError("nothing to write: give -o MODEL.onnx and/or --safetensors PARAMS.safetensors")
    program = load_program(args)
    deployable_params(program, args, " and ".join(p for p in (args.output, args.safetensors) if p))
    untrained = " with freshly initialized (untrained) parameters" if not args.params and program.params else ""
    if args.output:
        from ..onnx import to_onnx
        to_onnx(program, args.output, opset=args.opset)
        print(f"wrote {args.output}{untrained} (checked by onnx.checker)")
    if args.safetensors:
        program.save_params(args.safetensors)
        print(f"wrote {args.safetensors}{untrained} ({len(program.params)} tensors, plain safetensors)")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", parents=[model], help="write the inference graph as ONNX",
                       description="Writes the model's inference graph as ONNX: symbolic dimensions stay named "
                                   "dims, recurrent layers become LSTM/GRU/RNN nodes (needs the onnx extra); "
                                   "--safetensors writes the parameters as a plain safetensors file. Either holds "
                                   "the trained parameters of --params (--random-init: freshly initialized ones).")
    add_params_arguments(p, "the ONNX or safetensors file")
    p.add_argument("-o", dest="output", metavar="MODEL.onnx", help="the ONNX file to write")
    p.add_argument("--safetensors", metavar="FILE",
                   help="write the parameters (and running statistics) as a plain safetensors file")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.set_defaults(func=cmd_export)
