"""dlc: a declarative deep-learning graph compiler.

Write a network once in a .dlm file; `dlc.compile` parses it, infers every shape, optimizes the graph (fusion,
static memory planning) and returns a `Program` you call with NumPy arrays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from . import _core
from .errors import CheckpointError, CompileError, DlcError
from .program import Program, TensorSpec

__all__ = ["compile", "load", "set_num_threads", "get_num_threads", "Program", "TensorSpec", "CompileError",
           "DlcError", "CheckpointError", "load_module"]
__version__ = "0.1.0"


def load_module(model: str | os.PathLike[str]):
    """Parses a model given as a path to a .dlm file or as source text."""
    from .frontend.modules import load_path, load_text
    if isinstance(model, os.PathLike) or (isinstance(model, str) and "\n" not in model
                                          and (model.endswith(".dlm") or Path(model).is_file())):
        return load_path(model)
    return load_text(str(model), "<string>", Path.cwd())


def compile(model: str | os.PathLike[str] | None = None, *, source: str | None = None,
            dims: Mapping[str, int] | None = None, dtype: str = "f32", fuse: bool = True, seed: int = 0) -> Program:
    """Compiles a model: a path to a .dlm file, or `.dlm` text given as `source=`. `dims` fixes symbolic
    dimensions; unbound ones are taken from the inputs at call time, with one plan compiled and cached per
    binding. `dtype="f64"` runs every f32 tensor of the model in double precision."""
    if dtype not in ("f32", "f64"):
        raise ValueError(f"dtype must be 'f32' or 'f64', got {dtype!r}")
    if (model is None) == (source is None):
        raise ValueError("dlc.compile takes a model path or source=, exactly one of them")
    if source is not None:
        from .frontend.modules import load_text
        return Program(load_text(source, "<string>", Path.cwd()), dims=dims, dtype=dtype, fuse=fuse, seed=seed)
    return Program(load_module(model), dims=dims, dtype=dtype, fuse=fuse, seed=seed)


def load(path: str | os.PathLike[str]):
    """Restores a compiled artifact written by `dlc compile -o` or `save_artifact`."""
    from .artifact import load_artifact
    return load_artifact(path)


def set_num_threads(n: int) -> None:
    """Threads used by the kernels (OpenMP), for every later call from any Python thread."""
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return int(_core.get_num_threads())
