"""Checkpoints: parameters, running statistics and optimizer state as safetensors (never pickle), the step
and epoch counters and the optimizer settings as JSON metadata, and a SHA-256 of every tensor byte so that a
corrupted file is detected, not silently loaded. Written atomically (atomic_file.py): a temporary file in the
same folder, flushed to disk, then renamed over the target; temporaries a killed writer left are removed by the
next save.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic_file import write_atomically
from ..errors import CheckpointError
from .recipe import TrainSpec

FORMAT = "dlc-checkpoint"


def _digest(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensors[name]).tobytes())
    return h.hexdigest()


def atomic_write_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str], path: str | Path) -> None:
    from safetensors.numpy import save
    data = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, data)


def read_any_safetensors(path: str | Path, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor and the metadata of a safetensors file, whoever wrote it."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as e:  # safetensors raises its own error types for bad headers, short files, bfloat16
        raise CheckpointError(f"{path}: not a readable {what} file ({e})") from None
    return tensors, metadata


def read_safetensors(path: str | Path, expected_format: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    tensors, metadata = read_any_safetensors(path, expected_format)
    if metadata.get("format") != expected_format:
        raise CheckpointError(f"{path}: not a {expected_format} file (format is {metadata.get('format')!r})")
    return tensors, metadata


def save_checkpoint(path: str | Path, params: dict[str, np.ndarray], opt: dict[str, np.ndarray], *, step: int,
                    epoch: int, seed: int, spec: TrainSpec, run: Mapping[str, Any] | None = None,
                    run_tensors: Mapping[str, np.ndarray] | None = None, classes: list[str] | None = None) -> None:
    """Writes parameters (and running statistics), optimizer state and counters; `run` is the rest of the
    run's state as JSON (a reduce_on_plateau schedule's, the progress through an unfinished epoch, the best
    value a save-best callback has seen) and `run_tensors` its arrays (early stopping's best parameters);
    `classes` the class names of the labels (when the model was trained on names: label k is classes[k])."""
    tensors = {f"param/{k}": v for k, v in params.items()}
    tensors.update({f"opt/{k}": v for k, v in opt.items()})
    tensors.update({f"run/{k}": v for k, v in (run_tensors or {}).items()})
    metadata = {"format": FORMAT, "version": "1", "step": str(step), "epoch": str(epoch),
                "seed": str(seed), "sha256": _digest(tensors),
                "optimizer": json.dumps({"name": spec.optimizer.name, "lr": spec.optimizer.lr,
                                         "hyper": dict(spec.optimizer.hyper)}),
                "run": json.dumps(dict(run or {}))}
    if classes is not None:
        metadata["classes"] = json.dumps(list(classes))
    atomic_write_safetensors(tensors, metadata, path)


def checkpoint_classes(path: str | Path) -> list[str] | None:
    """The class names a checkpoint stores (None if it has none); a malformed entry is a CheckpointError."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            text = (f.metadata() or {}).get("classes")
    except Exception as e:  # load_checkpoint has read it already; a file replaced in between lands here
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    return None if text is None else parse_classes(str(path), text)


def parse_classes(path: str, text: str) -> list[str]:
    """A stored `classes` entry: a JSON list of distinct strings."""
    try:
        classes = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: the 'classes' entry is not valid JSON") from None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) \
            or len(set(classes)) != len(classes):
        raise CheckpointError(f"{path}: 'classes' must be a list of distinct names")
    return classes


def verified_tensors(path: str | Path, expected_format: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """A checkpoint's tensors and metadata, after checking its format and checksum."""
    tensors, metadata = read_safetensors(path, expected_format)
    if metadata.get("sha256") != _digest(tensors):
        raise CheckpointError(f"{path}: checksum mismatch; the file is corrupt")
    return tensors, metadata


def run_state(path: str | Path, metadata: Mapping[str, str]) -> dict[str, Any]:
    """The run's state a checkpoint carries (empty for files written before it had one)."""
    try:
        run = json.loads(metadata.get("run", "{}"))
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(f"{path}: the 'run' entry is not valid JSON") from None
    if not isinstance(run, dict):
        raise CheckpointError(f"{path}: the 'run' entry is not a JSON object")
    return run


def load_checkpoint(path: str | Path, params: dict[str, np.ndarray], opt: dict[str, np.ndarray]
                    ) -> tuple[int, int, dict[str, Any], dict[str, np.ndarray]]:
    """Checks the whole file against the model, then copies it into the live `params` buffers (in place:
    compiled plans point at them) and `opt` (new optimizer state is added; state the file lacks is reset to
    zero, as a fresh optimizer has it). Returns (step, epoch, the run's state, the run's arrays)."""
    tensors, metadata = verified_tensors(path, FORMAT)
    try:
        step, epoch = int(metadata["step"]), int(metadata["epoch"])
    except (KeyError, ValueError):
        raise CheckpointError(f"{path}: missing or bad step/epoch counters") from None
    if not (0 <= step < 2 ** 62 and 0 <= epoch < 2 ** 62):
        raise CheckpointError(f"{path}: step/epoch counters out of range ({step}, {epoch})")
    run = run_state(path, metadata)
    stored = {k[len("param/"):]: v for k, v in tensors.items() if k.startswith("param/")}
    missing = sorted(set(params) - set(stored))
    unknown = sorted(set(stored) - set(params))
    if missing or unknown:
        raise CheckpointError(f"{path}: parameters do not match the model (missing: {missing or 'none'}, "
                              f"unexpected: {unknown or 'none'})")
    for name, arr in stored.items():  # f32 and f64 load into either precision (--dtype f64 on an f32 run)
        if arr.shape != params[name].shape or arr.dtype.kind != params[name].dtype.kind:
            raise CheckpointError(f"{path}: parameter '{name}' is {arr.dtype}{list(arr.shape)}, the model has "
                                  f"{params[name].dtype}{list(params[name].shape)}")
    # Optimizer state is named "<param>/<optimizer>.<state>" and shaped like its parameter: everything is
    # checked before anything is copied, so a bad file changes nothing and no plan ever sees a wrong size.
    state = {k[len("opt/"):]: v for k, v in tensors.items() if k.startswith("opt/")}
    for name, arr in state.items():
        owner = params.get(name.split("/")[0]) if "/" in name else None
        if owner is None or arr.shape != owner.shape or arr.dtype.kind != owner.dtype.kind:
            raise CheckpointError(f"{path}: optimizer state '{name}' does not belong to a parameter of the model "
                                  "or has the wrong shape or dtype")
        if name in opt and opt[name].shape != arr.shape:
            raise CheckpointError(f"{path}: optimizer state '{name}' has the wrong shape")
    run_tensors = {k[len("run/"):]: v for k, v in tensors.items() if k.startswith("run/")}
    if len(tensors) != len(stored) + len(state) + len(run_tensors):
        raise CheckpointError(f"{path}: unexpected tensors in the file")
    for name, arr in stored.items():
        np.copyto(params[name], arr, casting="unsafe" if arr.dtype.kind == "f" else "no")
    for name, arr in state.items():
        if name in opt:
            np.copyto(opt[name], arr, casting="unsafe")
        else:
            opt[name] = np.array(arr, dtype=params[name.split("/")[0]].dtype, order="C")
    for name in set(opt) - set(state):  # not in the file: fresh (a step-0 checkpoint has none), never stale
        opt[name].fill(0)
    return step, epoch, run, run_tensors
