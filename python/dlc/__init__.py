"""dlc: a declarative deep-learning graph compiler.

Write a network once in a .dlm file; `dlc.compile` parses it, infers every shape, optimizes the graph (fusion,
static memory planning) and returns a `Program` you call with NumPy arrays.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from . import _core
from .errors import (ArenaLimitError, CheckpointError, CompileError, DlcError, DlcWarning, NonFiniteError,
                     UntrainedWarning)
from .lowering import set_arena_limit
from .model import CompiledModel
from .profiler import Profile, profile
from .program import Program, TensorSpec
from .threads import default_num_threads
from . import callbacks
from .training.trainer import Trainer

__all__ = ["compile", "load", "set_num_threads", "get_num_threads", "Program", "TensorSpec", "CompileError",
           "DlcError", "DlcWarning", "CheckpointError", "NonFiniteError", "ArenaLimitError", "set_arena_limit", "load_module",
           "CompiledModel", "Trainer", "callbacks", "profile", "Profile",
           "UntrainedWarning"]
__version__ = "0.1.0"


def load_module(path: str | os.PathLike[str] | None = None, *, source: str | None = None):
    """Parses a model: the .dlm file at `path`, or `.dlm` text given as `source=` (exactly one of them).
    A positional string is always a path, never text, so no source can be mistaken for a file name."""
    from .frontend.modules import load_path, load_source
    if (path is None) == (source is None):
        raise ValueError("give a model path or source=, exactly one of them")
    if source is not None:
        if not isinstance(source, str):
            raise TypeError(f"source= must be str (the model text), got {type(source).__name__}")
        return load_source(source)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the model path must be str or os.PathLike, got {type(path).__name__}; "
                        "pass model text as source=")
    return load_path(path)


def compile(path: str | os.PathLike[str] | None = None, *, source: str | None = None,
            dims: Mapping[str, int] | None = None, dtype: str = "f32", fuse: bool = True, seed: int = 0,
            strict_dtypes: bool = False, precision: str = "f32",
            calibration: Mapping[str, Any] | None = None) -> Program:
    """Compiles a model: the .dlm file at `path`, or `.dlm` text given as `source=`. `dims` fixes symbolic
    dimensions; unbound ones are taken from the inputs at call time, with one plan compiled and cached per
    binding. `dtype="f64"` runs every f32 tensor of the model in double precision. Inputs of another dtype
    are converted when nothing is lost a user meant (integers whose values fit, any float for a float input);
    `strict_dtypes=True` refuses them instead. A parameter declared but never used is a `dlc.DlcWarning`.
    `precision="bf16"` (or "int8") runs inference with the weights of matrix products and convolutions in that
    precision (docs/precision.md); training always runs in f32. For int8, `calibration` ({input: samples})
    fixes each layer's activation scale (static quantization); without it they are taken per call (dynamic)."""
    from .lint import warn_unused_params
    if dtype not in ("f32", "f64"):
        raise ValueError(f"dtype must be 'f32' or 'f64', got {dtype!r}")
    program = Program(load_module(path, source=source), dims=dims, dtype=dtype, fuse=fuse, seed=seed,
                      strict_dtypes=strict_dtypes, precision=precision)
    if calibration is not None:
        program.set_precision(precision, calibration=calibration)
    warn_unused_params(program)  # reported at the caller's dlc.compile line
    return program


def load(path: str | os.PathLike[str], *, strict_dtypes: bool = False, precision: str | None = None):
    """Restores a compiled artifact written by `dlc compile -o` or `save_artifact`: a `LoadedProgram` that
    converts inputs as a Program does (strict_dtypes=True refuses instead) and binds the dimensions left
    unbound at save time from each call's inputs. It runs in the precision it was saved with, or in
    `precision` ("f32", "bf16", "int8") when given."""
    from .artifact import load_artifact
    return load_artifact(path, strict_dtypes=strict_dtypes, precision=precision)


def set_num_threads(n: int) -> None:
    """Threads the kernels use, for every later call from any Python thread. The default is the number of
    cores this process may run on (its affinity mask, e.g. as narrowed by `taskset`), or OMP_NUM_THREADS when
    set. On a machine shared with other busy programs fewer threads than cores can be faster."""
    n = int(n)
    if n < 1:
        raise ValueError(f"number of threads must be at least 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the kernels use now (see set_num_threads)."""
    return int(_core.get_num_threads())


_core.set_num_threads(default_num_threads())
