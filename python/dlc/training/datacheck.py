"""The data check that runs before anything trains, evaluates or predicts, in Python (fit, evaluate, predict) and
on the command line alike: whatever would otherwise fail mid-run, or train on garbage, is one ValueError that
names the array, the row and the column (or, for a table, the file's line and column name).

- every array has the same number of samples, and samples of the shape and dtype kind of their input;
- every float holds a finite number: a NaN or inf in the data is found here, not as a NaN loss at step 3;
- labels are integers below the size of what reads them (cross_entropy's classes, an embedding's rows);
- class names (strings) become integer labels through the program's `classes` (see encode_labels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..ir import Graph

# op: (index operand, operand sized by it, the name the model's author wrote)
LABEL_OPS = {"softmax_xent": (1, 0, "cross_entropy"), "embedding_lookup": (1, 0, "embedding")}


@dataclass(frozen=True)
class Origin:
    """Where arrays came from, so an error can point into the file: the path, the column names behind each
    input's values (a sample's values in C order), and how to find the file line of a data row."""

    path: str
    columns: dict[str, list[str]] = field(default_factory=dict)
    line_of: Callable[[int], int] | None = None  # data row (0-based) -> file line (1-based)

    def locate(self, name: str, row: int, flat: int) -> str:
        line = f"line {self.line_of(row)}, " if self.line_of is not None else ""
        cols = self.columns[name]
        col = f"column '{cols[flat]}'" if flat < len(cols) else f"value {flat}"
        return f"{self.path} {line}data row {row + 1}, {col}"


def where(name: str, arr: np.ndarray, index: int, origin: Origin | None) -> str:
    """The place of the flat element `index` of an array: its row (sample) and column (position in the sample)."""
    per_row = int(np.prod(arr.shape[1:], dtype=np.int64)) if arr.ndim > 1 else 1
    row, flat = divmod(index, max(per_row, 1))
    if origin is not None and name in origin.columns:
        return origin.locate(name, row, flat)
    if arr.ndim <= 1:
        return f"'{name}' row {row}"
    if arr.ndim == 2:
        return f"'{name}' row {row}, column {flat}"
    return f"'{name}' row {row} at {list(int(i) for i in np.unravel_index(flat, arr.shape[1:]))}"


def check_arrays(inputs: Mapping[str, Any], dims: Mapping[str, int], arrays: Mapping[str, np.ndarray], what: str,
                 origin: Origin | None = None) -> None:
    """Samples, shapes, dtype kinds and finiteness of `arrays` against the model's `inputs` (TensorSpecs)."""
    sizes = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what}: the arrays have different numbers of samples "
                         f"({', '.join(f'{n}: {s}' for n, s in sizes.items())})")
    for name, spec in inputs.items():
        if name not in arrays:
            continue
        arr = arrays[name]
        want, got = spec.shape[1:], arr.shape[1:]
        if len(want) != len(got) or any(isinstance(w, int) and w != g or isinstance(w, str) and w in dims
                                         and dims[w] != g for w, g in zip(want, got)):
            raise ValueError(f"{what}: '{name}' has samples of shape {list(got)}, the model's input '{name}' is "
                             f"{spec} (samples {list(want)})")
        if spec.dtype.startswith("i") and arr.dtype.kind not in "iu":
            raise ValueError(f"{what}: '{name}' must hold integers (labels or ids) for input {spec}, "
                             f"got {arr.dtype}")
        if spec.dtype.startswith("f") and arr.dtype.kind not in "fiu":
            raise ValueError(f"{what}: '{name}' must hold numbers for input {spec}, got {arr.dtype}")
        if arr.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(arr.reshape(-1)))
            if bad.size:
                value = arr.reshape(-1)[bad[0]]
                raise ValueError(f"{what}: {where(name, arr, int(bad[0]), origin)} holds {value} "
                                 f"({bad.size} non-finite value{'s' * (bad.size > 1)} in '{name}'); fix or drop "
                                 f"that row before training: a NaN or inf makes the loss NaN")


def label_ranges(graph: Graph) -> dict[str, tuple[int, str]]:
    """Integer inputs that index something in the training graph: the size of what they index (the classes of
    cross_entropy, the rows of an embedding) and what reads them."""
    inputs = {v: n for n, v in graph.inputs}
    out: dict[str, tuple[int, str]] = {}
    for node in graph.nodes:
        rule = LABEL_OPS.get(node.op)
        if rule is None or node.inputs[rule[0]] not in inputs:
            continue
        sized = graph.values[node.inputs[rule[1]]]
        size = sized.shape[-1] if node.op == "softmax_xent" else sized.shape[0]
        if isinstance(size, int):
            name = inputs[node.inputs[rule[0]]]
            if name not in out or size < out[name][0]:
                out[name] = (size, rule[2])
    return out


def check_labels(ranges: Mapping[str, tuple[int, str]], arrays: Mapping[str, np.ndarray], what: str,
                 origin: Origin | None = None) -> None:
    """Every label below the size of what reads it, the first one out of range named by row and column."""
    for name, (size, reader) in ranges.items():
        arr = arrays.get(name)
        if arr is None or not arr.size or arr.dtype.kind not in "iu":
            continue
        flat = arr.reshape(-1)
        bad = np.flatnonzero((flat < 0) | (flat >= size))
        if bad.size:
            low, high = int(flat.min()), int(flat.max())
            raise ValueError(f"{what}: {where(name, arr, int(bad[0]), origin)} holds {int(flat[bad[0]])}, but "
                             f"{reader} reads '{name}' as an index below {size}: '{name}' holds values {low}..{high} "
                             f"({high + 1} classes) but the model has {size} ({bad.size} value{'s' * (bad.size > 1)} "
                             f"out of range); use a model with {high + 1} classes, or data that matches")


def encode_labels(values: np.ndarray, classes: Sequence[str] | None, what: str, name: str,
                  origin: Origin | None = None) -> tuple[np.ndarray, list[str]]:
    """Class names (strings) as integer labels: their index in `classes`; with classes None, the sorted distinct
    names become the classes (training from scratch). A name not among the classes is an error naming its row."""
    names = values.astype(str)
    if classes is None:
        classes = sorted(set(names.reshape(-1).tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    codes = np.fromiter((lookup.get(v, -1) for v in names.reshape(-1)), np.int64, names.size)
    unknown = np.flatnonzero(codes < 0)
    if unknown.size:
        shown = ", ".join(repr(c) for c in list(classes)[:10]) + (" ..." if len(classes) > 10 else "")
        raise ValueError(f"{what}: {where(name, names, int(unknown[0]), origin)} holds the class "
                         f"{str(names.reshape(-1)[unknown[0]])!r}, which is not one of the model's classes ({shown})")
    return codes.reshape(names.shape), list(classes)


def is_text(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "USO"
