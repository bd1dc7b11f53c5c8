"""Helpers several `dlc` commands share: the model arguments every command takes, loading the model and its
parameters, and the wording of common messages (so two commands never word the same problem differently)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

import dlc

from ..errors import CheckpointError
from ..model import unbound_error
from ..precision import PRECISIONS
from ..program import Program, TensorSpec


def parse_dim(text: str) -> tuple[str, int]:
    """`-D N=64`: a symbolic dimension and its size."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE (e.g. -D N=64), got {text!r}")
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size of {name} must be an integer, got {value!r}") from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"size of {name} must be positive, got {size}")
    return name, size


def model_arguments(model_help: str = "the model file") -> argparse.ArgumentParser:
    """The arguments every command that reads a model takes (an argparse parent parser; parents share their
    actions, so a command that describes the model differently makes its own)."""
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("model", metavar="MODEL.dlm", help=model_help)
    model.add_argument("-D", dest="dims", metavar="NAME=SIZE", type=parse_dim, action="append", default=[],
                       help="bind a symbolic dimension (repeatable), e.g. -D N=64")
    model.add_argument("--dtype", choices=("f32", "f64"), default="f32",
                       help="run f32 tensors in this precision (default f32)")
    model.add_argument("--seed", type=int, default=0, help="parameter initialization seed (default 0)")
    return model


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    """`--threads N` for a command that runs a model; main() applies it before the command runs."""
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="kernel threads (default: the cores this process may run on, or OMP_NUM_THREADS)")


def load_program(args: argparse.Namespace) -> Program:
    return dlc.compile(Path(args.model), dims=dict(args.dims), dtype=args.dtype,
                       fuse=not getattr(args, "no_fuse", False), seed=args.seed,
                       precision=getattr(args, "precision", None) or "f32")


def add_precision_argument(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """--precision of the commands that run inference (docs/precision.md)."""
    p.add_argument("--precision", choices=PRECISIONS, default=default,
                   help="run inference with the weights of matrix products and convolutions in this precision "
                        f"(default: {default or 'f32, or the artifact' + chr(39) + 's own'}); training stays f32")


def add_calibrate_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--calibrate", metavar="DATA",
                   help="with --precision int8: measure each layer's activation scale on these samples (FILE.npz "
                        "with arrays named after the inputs, two .npy files or CSV as for --data) instead of "
                        "taking it per call")


def calibrate_int8(program: Any, spec: str, precision: str | None) -> str:
    """--calibrate: static int8 activation scales from a data file (give it after --params: the trained weights
    set the ranges); the program runs in int8 from then on. Returns what it did, to print."""
    from ..datafiles import load_data
    if precision != "int8":
        raise ValueError("--calibrate measures int8 activation scales: give it with --precision int8")
    data = load_data(program, spec, {}).arrays
    program.set_precision("int8", program.model.precision_policy.keep_f32, calibration=data)
    count = len(next(iter(data.values()))) if data else 0
    return f"calibrated {len(program.model.int8_scales or {})} int8 layers on {count} samples of {spec}"


def param_count(program: Program) -> int:
    """From the graph's types: counting builds no parameter (see CompiledModel._params)."""
    return sum(math.prod(int(d) for d in p.type.shape) for p in program.graph.params)


def spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"dtype": spec.dtype, "shape": list(spec.shape)}


def unbound_dims(program: Program) -> list[str]:
    """The symbolic dimensions of the inputs that no -D bound."""
    return sorted({d for s in program.inputs.values() for d in s.shape if isinstance(d, str)})


def require_bound(program: Program) -> None:
    """Compiling a plan needs every symbolic dimension: name the unbound ones and show the -D syntax."""
    unbound = unbound_dims(program)
    if unbound:
        raise unbound_error(unbound)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def io_lines(program: Program) -> list[str]:
    return ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in program.inputs.items()),
            "outputs: " + ", ".join(f"{n}: {s}" for n, s in program.outputs.items())]


def load_params(program: Program, path: str) -> None:
    """`--params`: parameters from a training checkpoint or from a compiled artifact of the same model."""
    from ..artifact import FORMAT, file_format, load_artifact
    if file_format(path) != FORMAT:
        program.load_checkpoint(path)
        return
    loaded = load_artifact(path)
    stored = loaded.params
    missing, unknown = sorted(set(program.params) - set(stored)), sorted(set(stored) - set(program.params))
    if missing or unknown:
        raise CheckpointError(f"{path}: parameters do not match the model (missing: {', '.join(missing) or 'none'}; "
                              f"unexpected: {', '.join(unknown) or 'none'})")
    program.set_params(stored)
    if loaded.classes is not None:
        program.classes = loaded.classes


def add_params_arguments(p: argparse.ArgumentParser, writes: str) -> None:
    """`--params CKPT` and `--random-init` for a command that `writes` a deployable file from a .dlm model."""
    p.add_argument("--params", metavar="CKPT",
                   help="the trained parameters to put in it: a checkpoint (dlc train --out) or a compiled artifact")
    p.add_argument("--random-init", action="store_true",
                   help=f"write {writes} with freshly initialized parameters (seeded by --seed), marked untrained: "
                        f"for speed tests; without it, {writes} needs --params")


def deployable_params(program: Program, args: argparse.Namespace, output: str) -> None:
    """Loads --params into a program about to be written to `output`; without them, refuses unless
    --random-init says that untrained parameters are meant (a model compiled from .dlm text starts from
    freshly initialized ones, and deploying those by accident predicts nonsense with no error anywhere)."""
    if args.params and args.random_init:
        raise ValueError("give --params CKPT or --random-init, not both")
    if args.params:
        load_params(program, args.params)
    elif not args.random_init and program.params:
        raise ValueError(f"{output} would hold freshly initialized (untrained) parameters: give the trained ones "
                         f"with --params CKPT (a checkpoint from dlc train --out), or --random-init if untrained "
                         f"parameters are meant (a speed test)")


def training_data(program: Program, name: str, dims: dict[str, int]) -> tuple[dict[str, np.ndarray],
                                                                             dict[str, np.ndarray]]:
    """(train, test) arrays by input name. pysource: byte windows of length T (-D T=..., default 128), with
    the held-out tail of the text as the test split."""
    if name not in ("digits", "sequences", "pysource"):
        raise ValueError(f"unknown dataset '{name}' (built-in: digits, sequences, pysource; your own data: "
                         f"FILE.npz, x=FILE.npy,y=FILE.npy or FILE.csv)")
    if name == "pysource":
        from ..text import load_pysource
        return load_pysource(seq_len=dims.get("T", 128))
    from ..data import for_model, load_dataset
    ds = load_dataset(name, program, dims)
    return for_model(program, *ds.train), for_model(program, *ds.test)
