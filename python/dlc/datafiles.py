"""Your own data for `dlc train` / `dlc eval`: arrays from .npz archives, .npy files or CSV, matched to the
model's inputs, and the consistency check that runs before the first step.

- `train.npz`: arrays named after the model's inputs, or mapped with `--map x=images,y=labels` (input=array);
- `x=features.npy,y=labels.npy` (or `features.npy,labels.npy`: features, then labels);
- `train.csv`: a header row and numbers; the label column is `label` (or the last one, or `--label NAME`),
  every other column is a feature.

Features given as rows (.npy pairs, CSV) go to the model's first float input reshaped to its declared sample
shape, labels to its first integer input, as for the built-in datasets. The check (`check_data`) compares the
number of samples, each array's shape and dtype kind with the inputs, and the labels with the number of classes
the loss reads (cross_entropy's class axis, embedding rows), so a mismatch is one `dlc: error:` line.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .data import for_model
from .errors import DlcError
from .ir import Graph

LABEL_OPS = {"softmax_xent": (1, 0), "embedding_lookup": (1, 0)}  # op: (index operand, operand sized by it)


def parse_map(text: str | None) -> dict[str, str]:
    """`x=images,y=labels`: model input -> array name in the file."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item:
            continue
        name, sep, array = item.partition("=")
        if not sep or not name or not array:
            raise ValueError(f"--map expects INPUT=ARRAY pairs separated by commas, got {item!r}")
        out[name] = array
    return out


def is_data_file(spec: str) -> bool:
    return any(part.rsplit("=", 1)[-1].lower().endswith((".npz", ".npy", ".csv")) for part in spec.split(","))


def load_data(program: Any, spec: str, mapping: Mapping[str, str], label: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of a data file (or .npy pair) by model input name."""
    parts = spec.split(",")
    if len(parts) == 1 and spec.lower().endswith(".npz"):
        return _from_npz(program, spec, mapping)
    if len(parts) == 1 and spec.lower().endswith(".csv"):
        x, y = _from_csv(spec, label)
        return for_model(program, x, y)
    if all(p.rsplit("=", 1)[-1].lower().endswith(".npy") for p in parts):
        named = [p.partition("=") for p in parts]
        if all(sep for _, sep, _ in named):
            return {name: _load_npy(path) for name, _, path in named}
        if len(parts) == 2 and not any(sep for _, sep, _ in named):
            return for_model(program, _load_npy(parts[0]), _load_npy(parts[1]))
    raise ValueError(f"--data {spec}: expected a built-in dataset, FILE.npz, FILE.csv, or two .npy files "
                     f"(x=features.npy,y=labels.npy)")


def _load_npy(path: str) -> np.ndarray:
    try:
        value = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(value, np.ndarray):
        value.close()
        raise ValueError(f"{path}: expected a .npy file holding one array, got an .npz archive")
    return value


def _from_npz(program: Any, path: str, mapping: Mapping[str, str]) -> dict[str, np.ndarray]:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None
    if isinstance(archive, np.ndarray):
        raise ValueError(f"{path}: a single array; give an .npz archive or x=...npy,y=...npy")
    with archive:
        available = list(archive.files)
        for name in mapping:
            if name not in program.inputs:
                raise ValueError(f"--map {name}=...: the model has no input '{name}' ({', '.join(program.inputs)})")
        out: dict[str, np.ndarray] = {}
        for name in program.inputs:
            array = mapping.get(name, name)
            if array in available:
                try:
                    out[name] = archive[array]
                except ValueError as e:  # object arrays: refused rather than unpickled
                    raise ValueError(f"{path}: array '{array}' cannot be read ({e})") from None
            elif name in mapping:
                raise ValueError(f"{path}: no array '{array}' (it has: {', '.join(available)})")
    if not out:
        raise ValueError(f"{path}: no array is named after a model input ({', '.join(program.inputs)}); it has "
                         f"{', '.join(available)}: map them, e.g. --map {next(iter(program.inputs))}={available[0]}")
    return out


def _from_csv(path: str, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    column = label or ("label" if "label" in header else header[-1])
    if column not in header:
        raise ValueError(f"{path}: no column '{column}' (columns: {', '.join(header)})")
    k = header.index(column)
    try:
        table = np.array([[float(v) for v in row] for row in rows[1:] if row], dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: every cell must be a number ({e})") from None
    if table.ndim != 2 or table.shape[1] != len(header):
        raise ValueError(f"{path}: every row needs {len(header)} cells")
    labels = table[:, k]
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError(f"{path}: label column '{column}' holds non-integers")
    return np.delete(table, k, axis=1), labels.astype(np.int64)


def split(arrays: dict[str, np.ndarray], fraction: float, seed: int) -> tuple[dict[str, np.ndarray],
                                                                             dict[str, np.ndarray]]:
    """A seeded random (train, validation) split; `fraction` of the samples go to validation."""
    if not 0 < fraction < 1:
        raise ValueError(f"--val-split must be between 0 and 1, got {fraction}")
    n = len(next(iter(arrays.values())))
    order = np.random.default_rng(seed).permutation(n)
    k = max(1, int(round(n * fraction)))
    if k >= n:
        raise ValueError(f"--val-split {fraction} leaves no training samples out of {n}")
    return ({name: a[order[k:]] for name, a in arrays.items()}, {name: a[order[:k]] for name, a in arrays.items()})


def label_ranges(graph: Graph) -> dict[str, int]:
    """Integer inputs that index something in the training graph, with the size of what they index (the
    classes of cross_entropy, the rows of an embedding)."""
    inputs = {v: n for n, v in graph.inputs}
    out: dict[str, int] = {}
    for node in graph.nodes:
        rule = LABEL_OPS.get(node.op)
        if rule is None or node.inputs[rule[0]] not in inputs:
            continue
        sized = graph.values[node.inputs[rule[1]]]
        size = sized.shape[-1] if node.op == "softmax_xent" else sized.shape[0]
        if isinstance(size, int):
            name = inputs[node.inputs[rule[0]]]
            out[name] = min(out.get(name, size), size)
    return out


def check_data(program: Any, arrays: Mapping[str, np.ndarray], what: str) -> None:
    """Everything that would otherwise fail mid-training, checked on the whole dataset first."""
    dims = program.model.dims
    sizes = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"{what}: the arrays have different numbers of samples "
                         f"({', '.join(f'{n}: {s}' for n, s in sizes.items())})")
    for name, spec in program.inputs.items():
        if name not in arrays:
            continue
        arr = arrays[name]
        want = spec.shape[1:]
        got = arr.shape[1:]
        if len(want) != len(got) or any(isinstance(w, int) and w != g or isinstance(w, str) and w in dims
                                         and dims[w] != g for w, g in zip(want, got)):
            raise ValueError(f"{what}: '{name}' has samples of shape {list(got)}, the model's input '{name}' is "
                             f"{spec} (samples {list(want)})")
        if spec.dtype.startswith("i") and arr.dtype.kind not in "iu":
            raise ValueError(f"{what}: '{name}' must hold integers (labels or ids) for input {spec}, "
                             f"got {arr.dtype}")
        if spec.dtype.startswith("f") and arr.dtype.kind not in "fiu":
            raise ValueError(f"{what}: '{name}' must hold numbers for input {spec}, got {arr.dtype}")
    try:
        graph = program.trainer.training_graph("loss", dims).graph
    except DlcError:
        return  # no loss: nothing indexes the labels
    for name, size in label_ranges(graph).items():
        arr = arrays.get(name)
        if arr is None or not arr.size:
            continue
        low, high = int(arr.min()), int(arr.max())
        if low < 0 or high >= size:
            raise ValueError(f"{what}: '{name}' holds values {low}..{high} ({high + 1} classes) but the model "
                             f"has {size} (the loss reads '{name}' as an index below {size}); use a model whose "
                             f"output has {high + 1} classes, or data that matches it")
