"""ONNX import and export (the optional `onnx` extra).

- `from_onnx(path_or_bytes, dims=...)` returns a compiled `Program` with the model's weights;
- `import_onnx(path, dlm_path, params_path)` writes the readable .dlm and a safetensors checkpoint
  (what `dlc import` does);
- `to_onnx(program, path)` writes a program's inference graph as ONNX (what `dlc export` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .loader import OnnxImportError

if TYPE_CHECKING:
    from ..program import Program

__all__ = ["OnnxImportError", "from_onnx", "import_onnx", "to_onnx"]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxImportError("ONNX support needs the onnx package: pip install 'dlc[onnx]'") from None


def from_onnx(source: str | os.PathLike[str] | bytes, dims: Mapping[str, int] | None = None,
              dtype: str = "f32") -> "Program":
    """Imports an ONNX model (a path or the file's bytes) as a compiled Program holding its weights."""
    import dlc

    from .importer import import_model
    _require_onnx()
    converted = import_model(source if isinstance(source, (bytes, bytearray)) else Path(source), dims)
    program = dlc.compile(source=converted.text, dims=dims, dtype=dtype)
    program.set_params(converted.params)
    return program


def import_onnx(source: str | os.PathLike[str], dlm_path: str | os.PathLike[str],
                params_path: str | os.PathLike[str] | None = None,
                dims: Mapping[str, int] | None = None) -> "Program":
    """Writes the .dlm text and its parameters (a dlc checkpoint, `--params` of every command)."""
    import dlc

    from ..training.checkpoint import save_checkpoint
    from .importer import import_model
    _require_onnx()
    converted = import_model(Path(source), dims)
    program = dlc.compile(source=converted.text, dims=dims)
    program.set_params(converted.params)
    dlm = Path(dlm_path)
    dlm.write_text(converted.text)
    save_checkpoint(program, params_path if params_path is not None else dlm.with_suffix(".safetensors"))
    return program


def to_onnx(program: "Program", path: str | os.PathLike[str], opset: int | None = None) -> None:
    """Writes the program's inference graph (see export.py)."""
    from .export import export_program
    _require_onnx()
    export_program(program, path, opset=opset)
