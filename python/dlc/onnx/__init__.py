"""ONNX import and export (the optional `onnx` extra).

- `from_onnx(path_or_bytes, dims=...)` returns a compiled `Program` with the model's weights;
- `import_onnx(path, dlm_path, params_path)` writes the readable .dlm and a safetensors checkpoint
  (what `dlc import` does);
- `to_onnx(program, path)` writes a program's inference graph as ONNX (what `dlc export` does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from .loader import OnnxImportError

__all__ = ["OnnxImportError", "from_onnx", "import_onnx", "to_onnx"]


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise OnnxImportError("ONNX support needs the onnx package: pip install \".[onnx]\" (in the dlc "
                              "checkout)") from None


def from_onnx(source: str | os.PathLike[str] | bytes, dims: Mapping[str, int] | None = None,
              dtype: str = "f32", precision: str = "f32") -> Any:
    """Imports an ONNX model (a path or the file's bytes) as a compiled Program holding its weights, running
    inference in `precision` (docs/precision.md)."""
    from .importer import import_model
    _require_onnx()
    converted = import_model(source if isinstance(source, (bytes, bytearray)) else Path(source), dims)
    program = _compile(converted.text, source, dims, dtype, precision)
    _set_params(program, converted.params, source)
    _set_int8_scales(program, converted.int8_scales)
    return program


def _set_int8_scales(program: Any, scales: Mapping[str, tuple[float, int]]) -> None:
    """A QDQ model's activation scales (onnx/ops_quant.py): the static scales of its int8 layers."""
    if scales:
        program.model.int8_scales = dict(scales)
        program.set_precision(program.precision, program.model.precision_policy.keep_f32)


def _set_params(program: Any, params: Mapping[str, Any], source: Any) -> None:
    """The initializers into the converted model; one the model's declared shapes or types disagree with (an
    integer weight, a graph input of width 0 for a [4, 3] weight) is an OnnxImportError naming the file."""
    try:
        program.set_params(params)
    except ValueError as e:
        where = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        raise OnnxImportError(f"{where}: an initializer does not fit the graph that reads it: {e}") from None


def _compile(text: str, source: Any, dims: Mapping[str, int] | None, dtype: str = "f32",
             precision: str = "f32") -> Any:
    """The converted text as a program. A shape the converters passed but the model does not type-check with
    (shapes and values a damaged file declares) is an OnnxImportError naming the file and the statement:
    the generated text is nowhere a user can read its line numbers."""
    import dlc
    where = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        return dlc.compile(source=text, dims=dims, dtype=dtype, precision=precision)
    except dlc.CompileError as e:
        line = e.loc.line_text().strip() if e.loc is not None else ""
        raise OnnxImportError(f"{where}: the imported model does not type-check: {e.message}"
                              + (f" (in `{line}`)" if line else "")) from None


def import_onnx(source: str | os.PathLike[str], dlm_path: str | os.PathLike[str],
                params_path: str | os.PathLike[str] | None = None,
                dims: Mapping[str, int] | None = None, precision: str = "f32") -> Any:
    """Writes the .dlm text and its parameters (a dlc checkpoint, `--params` of every command); the program it
    returns runs inference in `precision` (docs/precision.md)."""
    from .importer import import_model
    _require_onnx()
    converted = import_model(Path(source), dims)
    program = _compile(converted.text, source, dims, precision=precision)
    _set_params(program, converted.params, source)
    _set_int8_scales(program, converted.int8_scales)
    dlm = Path(dlm_path)
    dlm.write_text(converted.text)
    write_params(program.params, params_path if params_path is not None else dlm.with_suffix(".safetensors"))
    return program


def write_params(params: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """The parameters as a dlc checkpoint at step 0 (what `--params` and `load_checkpoint` read); an
    imported model has no optimizer state yet."""
    from ..training.checkpoint import FORMAT, _digest, atomic_write_safetensors
    tensors = {f"param/{k}": v for k, v in params.items()}
    metadata = {"format": FORMAT, "version": "1", "step": "0", "epoch": "0", "seed": "0",
                "sha256": _digest(tensors)}
    atomic_write_safetensors(tensors, metadata, path)


def to_onnx(program: Any, path: str | os.PathLike[str], opset: int | None = None) -> None:
    """Writes the program's inference graph (see export.py)."""
    from .export import export_program
    _require_onnx()
    export_program(program, path, opset=opset)
