"""`dlc run MODEL.dlm --params CKPT --input x=x.npy` or `dlc run model.dlc --input x=x.npy`: inference on arrays
from .npy files, from a model and its trained parameters or from a compiled artifact (which carries its own)."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np

import dlc

from ..errors import UntrainedWarning
from ..inference import class_names
from .common import add_precision_argument, add_threads_argument, load_params, load_program, model_arguments


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
        flags = [f for f, given in (("--params", args.params), ("-D", args.dims), ("--random-init", args.random_init))
                 if given]
        if flags:
            raise ValueError(f"{args.model} is a compiled artifact: it carries the parameters and dimensions it was "
                             f"compiled with, so {' and '.join(flags)} {'do' if len(flags) > 1 else 'does'} not "
                             f"apply; for other parameters compile it again (dlc compile MODEL.dlm --params CKPT -o "
                             f"{args.model}) or run the model file (dlc run MODEL.dlm --params CKPT ...)")
        program: Any = dlc.load(args.model, precision=args.precision)
        used = list(program.inputs)
    else:
        program = load_program(args)
        if args.params and args.random_init:
            raise ValueError("give --params CKPT or --random-init, not both")
        if args.params:
            load_params(program, args.params)
        elif program.params and not args.random_init:
            warnings.warn(f"{args.model} runs with freshly initialized parameters (seed {args.seed}), not trained "
                          f"ones: give them with --params CKPT (--random-init to mean it)", UntrainedWarning)
        used = program.model.used_inputs()
    arrays = load_inputs(args.inputs)
    for name in used:
        if name not in arrays and all(given in program.inputs for given in arrays):  # unknown ones: the call says
            raise ValueError(f"missing input '{name}' ({program.inputs[name]}): give it with --input "
                             f"{name}=FILE.npy")
    results = program(**arrays)
    results.update(class_names(program.classes, results))  # a model trained on class names answers with them
    for name, arr in results.items():
        kind = program.outputs[name].dtype if name in program.outputs else "class"
        print(f"{name}: {kind}{list(arr.shape)} {preview(arr)}")
    if args.output:
        with open(args.output, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **results)
        print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    model = model_arguments("a model file (.dlm) or a compiled artifact (.dlc, from dlc compile -o)")
    p = sub.add_parser("run", parents=[model], help="run inference on .npy inputs",
                       usage="dlc run MODEL.dlm --params CKPT --input NAME=FILE.npy... [-o OUT.npz]\n"
                             "       dlc run MODEL.dlc --input NAME=FILE.npy... [-o OUT.npz]",
                       description="Runs a model on inputs from .npy files (one --input per input the outputs "
                                   "need), converting NumPy's default dtypes. Two forms: MODEL.dlm, a model file, "
                                   "takes its trained parameters from --params (a checkpoint from dlc train --out, "
                                   "or an artifact), and -D, --dtype and --seed; without --params it runs freshly "
                                   "initialized parameters and warns (--random-init: meant). MODEL.dlc, a compiled "
                                   "artifact (dlc compile MODEL.dlm --params CKPT -o MODEL.dlc), carries its "
                                   "parameters and dimensions, so it takes only --input, -o and --threads; it binds "
                                   "the dimensions left unbound from the inputs, and warns if it was compiled with "
                                   "--random-init.")
    p.add_argument("--input", dest="inputs", metavar="NAME=FILE.npy", type=parse_input, action="append",
                   default=[], help="an input array (repeatable)")
    p.add_argument("--params", metavar="CKPT",
                   help="MODEL.dlm only: the trained parameters (a checkpoint or a compiled artifact of the model)")
    p.add_argument("--random-init", action="store_true",
                   help="MODEL.dlm only: run freshly initialized parameters without a warning")
    p.add_argument("-o", dest="output", metavar="OUT.npz", help="write the outputs to an .npz file")
    add_precision_argument(p)
    add_threads_argument(p)
    p.set_defaults(func=cmd_run)
