"""Partial loading for transfer learning: some of a checkpoint's parameters into a program.

The contract is PyTorch's `load_state_dict(strict=False)` with selection and renaming in front of it:

1. `rename` maps name prefixes of the checkpoint to the model's ({"encoder.": "backbone."});
2. `include` / `exclude` select names (name prefixes or globs, as `freeze` takes them) after renaming; the
   checkpoint's other entries are *skipped*;
3. selected entries the model lacks are *unexpected*; the model's parameters that `include`/`exclude` select
   but the checkpoint does not provide are *missing*;
4. with strict=True, anything missing or unexpected is an error; a shape mismatch is always one.

Nothing changes unless every check passes. Running statistics (batch norm) load like parameters; optimizer
state and counters do not: fine-tuning starts a fresh optimizer.

The file is a dlc checkpoint (its checksum verified) or a plain safetensors file, such as one written by
`safetensors.torch.save_file(model.state_dict(), path)` or `safetensors.numpy.save_file`, `dlc export
--safetensors` or another framework: its tensor names are the parameter names (before renaming). Float16 values
load into f32 parameters; bfloat16 has no NumPy type and is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import CheckpointError
from .checkpoint import FORMAT, atomic_write_safetensors, read_any_safetensors, verified_tensors
from .step import matches


@dataclass(frozen=True)
class LoadReport:
    loaded: list[str]  # model names that received values
    skipped: list[str]  # checkpoint names left out by include/exclude (after renaming)
    missing: list[str]  # selected model names the checkpoint does not provide
    unexpected: list[str]  # selected checkpoint names the model does not have

    def __str__(self) -> str:
        def part(label: str, names: list[str]) -> str:
            shown = ", ".join(names[:8]) + (f", ... ({len(names)})" if len(names) > 8 else "")
            return f"{label} {len(names)}" + (f" ({shown})" if names and label != "loaded" else "")
        return "; ".join(part(k, getattr(self, k)) for k in ("loaded", "skipped", "missing", "unexpected"))


def _renamed(name: str, rename: Sequence[tuple[str, str]]) -> str:
    for old, new in rename:
        if name.startswith(old):
            return new + name[len(old):]
    return name


def _selected(name: str, include: Sequence[str] | None, exclude: Sequence[str]) -> bool:
    return (include is None or matches(name, list(include))) and not matches(name, list(exclude))


def stored_params(path: str | Path) -> dict[str, np.ndarray]:
    """Parameters by name from a dlc checkpoint (verified) or from a plain safetensors file."""
    tensors, metadata = read_any_safetensors(path, "safetensors")
    if metadata.get("format") == FORMAT:
        tensors, _ = verified_tensors(path, FORMAT)
        return {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    if str(metadata.get("format", "")).startswith("dlc-"):  # a compiled artifact, say: read by its own loader
        raise CheckpointError(f"{path}: a {metadata['format']} file; load parameters from a checkpoint or a "
                              "plain safetensors file")
    return tensors


def load_params(targets: Mapping[str, np.ndarray], path: str | Path, include: Sequence[str] | None = None,
                exclude: Sequence[str] = (), rename: Mapping[str, str] | Sequence[tuple[str, str]] = (),
                strict: bool = True) -> LoadReport:
    """Copies the selected checkpoint parameters into `targets` (a program's parameter table) in place."""
    for what, value in (("include", include), ("exclude", exclude)):
        if isinstance(value, str):
            raise ValueError(f"{what} is a list of names or globs, e.g. {what}=[{value!r}]")
    pairs = list(rename.items()) if isinstance(rename, Mapping) else [tuple(p) for p in rename]
    stored = {_renamed(k, pairs): v for k, v in stored_params(path).items()}
    chosen = {k: v for k, v in stored.items() if _selected(k, include, exclude)}
    skipped = sorted(set(stored) - set(chosen))
    unexpected = sorted(set(chosen) - set(targets))
    missing = sorted(n for n in targets if _selected(n, include, exclude) and n not in chosen)
    if strict and (missing or unexpected):
        raise CheckpointError(f"{path}: parameters do not match the model (missing: {missing or 'none'}, "
                              f"unexpected: {unexpected or 'none'}); pass strict=False to load the rest")
    loaded = sorted(n for n in chosen if n in targets)
    for name in loaded:
        arr, target = chosen[name], targets[name]
        if arr.shape != target.shape:
            hint = ("; it is the transpose of the model's (PyTorch's Linear keeps [out, in], dlc's dense "
                    "[in, out]): transpose it before saving") if arr.ndim == 2 and arr.shape[::-1] == target.shape else ""
            raise CheckpointError(f"{path}: parameter '{name}' has shape {list(arr.shape)} in the checkpoint, "
                                  f"{list(target.shape)} in the model{hint}")
        if not np.issubdtype(arr.dtype, np.floating):
            raise CheckpointError(f"{path}: parameter '{name}' is {arr.dtype}, not floating point")
    for name in loaded:
        np.copyto(targets[name], chosen[name], casting="same_kind")
    return LoadReport(loaded, skipped, missing, unexpected)


def save_params(path: str | Path, params: Mapping[str, np.ndarray], source: str) -> None:
    """The parameters as a plain safetensors file, written atomically; the metadata only says who wrote it."""
    atomic_write_safetensors(dict(params), {"producer": "dlc", "model": source}, path)
