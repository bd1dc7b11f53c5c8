"""`dlc run MODEL --input x=x.npy`: inference on arrays from .npy files."""

from __future__ import annotations

import argparse

from typing import Any

import numpy as np

import dlc

from .common import add_threads_argument, load_params, load_program


def parse_input(text: str) -> tuple[str, str]:
    """`--input x=x.npy`: an input name and the .npy file holding its array."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy (e.g. --input x=x.npy), got {text!r}")
    return name, path


def load_inputs(pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name, path in pairs:
        if name in arrays:
            raise ValueError(f"input '{name}' is given twice")
        try:
            value = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as e:  # not an .npy file, truncated, or object arrays (pickles)
            raise ValueError(f"{path}: cannot read an array for input '{name}' ({e})") from None
        if not isinstance(value, np.ndarray):  # an .npz archive
            value.close()
            raise ValueError(f"{path}: expected a .npy file holding one array, got an .npz archive")
        arrays[name] = value
    return arrays


def preview(arr: np.ndarray, count: int = 6) -> str:
    flat = arr.reshape(-1)
    text = np.array2string(flat[:count], precision=5, separator=", ", max_line_width=1_000)
    return text[:-1] + ", ...]" if flat.size > count else text


def is_artifact(path: str) -> bool:
    """A compiled artifact (`dlc compile -o model.dlc`) rather than .dlm text: safetensors start with an 8-byte
    header length, never with model text."""
    from ..artifact import FORMAT, file_format
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and file_format(path) == FORMAT


def cmd_run(args: argparse.Namespace) -> int:
    if is_artifact(args.model):
        if args.params or args.dims:
            raise ValueError(f"{args.model} is a compiled artifact: it carries its parameters and dimensions "
                             f"(--params and -D are for .dlm models)")
        program: Any = dlc.load(args.model)
    else:
        program = load_program(args)
        if args.params:
            load_params(program, args.params)
    results = program(**load_inputs(args.inputs))
    for name, arr in results.items():
        print(f"{name}: {program.outputs[name].dtype}{list(arr.shape)} {preview(arr)}")
    if args.output:
        with open(args.output, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **results)
        print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[model], help="run inference on .npy inputs",
                       description="Runs the model (a .dlm file, or a compiled artifact from dlc compile -o, "
                                   "which binds the dimensions left unbound from the inputs) on inputs from .npy "
                                   "files, converting NumPy's default dtypes; a .dlm model has freshly "
                                   "initialized parameters unless --params gives trained ones.")
    p.add_argument("--input", dest="inputs", metavar="NAME=FILE.npy", type=parse_input, action="append",
                   default=[], help="an input array (repeatable)")
    p.add_argument("--params", metavar="FILE", help="load parameters from a checkpoint or a compiled artifact")
    p.add_argument("-o", dest="output", metavar="OUT.npz", help="write the outputs to an .npz file")
    add_threads_argument(p)
    p.set_defaults(func=cmd_run)
