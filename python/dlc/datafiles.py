"""Your own data for `dlc train` / `dlc eval`: arrays from .npz archives, .npy files or CSV, matched to the
model's inputs before the check (Trainer.prepare_data, training/datacheck.py) that runs before the first step.

- `train.npz`: arrays named after the model's inputs, or mapped with `--map x=images,y=labels` (input=array);
- `x=features.npy,y=labels.npy` (or `features.npy,targets.npy`: features, then targets);
- `train.csv`: a header row, then a sample per row (tables.py): the target columns are `--label` (names or
  indices), by default the column named `label`, else the last one; every other column is a feature.

Features given as rows (.npy pairs, CSV) go to the model's first float input, reshaped to its declared sample
shape; targets to its first integer input (class labels: integers, or class names that become integers), or,
without one, to the first float input the outputs do not read (regression targets, one column or several).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import DlcError
from .tables import line_of, read_csv, require_numbers
from .training.datacheck import Origin, is_text, where


@dataclass(frozen=True)
class DataFile:
    """Arrays by model input name, where they came from (for errors that point into a CSV file) and, for a
    table, a sentence saying which columns are the targets."""

    arrays: dict[str, np.ndarray]
    origin: Origin | None = None
    note: str | None = None


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


def load_data(program: Any, spec: str, mapping: Mapping[str, str], label: str | None = None) -> DataFile:
    """The arrays of a data file (or .npy pair) by model input name."""
    parts = spec.split(",")
    if label is not None and not (len(parts) == 1 and spec.lower().endswith(".csv")):
        raise ValueError(f"--label chooses a CSV file's target columns; --data {spec} is not a CSV file")
    if len(parts) == 1 and spec.lower().endswith(".npz"):
        return DataFile(_from_npz(program, spec, mapping))
    if len(parts) == 1 and spec.lower().endswith(".csv"):
        return _from_csv(program, spec, label)
    if all(p.rsplit("=", 1)[-1].lower().endswith(".npy") for p in parts):
        named = [p.partition("=") for p in parts]
        if all(sep for _, sep, _ in named):
            return DataFile({name: _load_npy(path) for name, _, path in named})
        if len(parts) == 2 and not any(sep for _, sep, _ in named):
            return DataFile(rows_for_model(program, _load_npy(parts[0]), _load_npy(parts[1]), spec))
    raise ValueError(f"--data {spec}: expected a built-in dataset, FILE.npz, FILE.csv, or two .npy files "
                     f"(x=features.npy,y=labels.npy)")


def target_input(program: Any, features: str) -> str | None:
    """The input that takes the targets of a table: the first integer input (class labels), else the first
    float input besides the features that the outputs do not read (a regression target)."""
    specs = program.inputs
    used = set(program.model.used_inputs())
    ints = [n for n, s in specs.items() if s.dtype in ("i32", "i64")]
    floats = [n for n, s in specs.items() if s.dtype in ("f32", "f64") and n != features and n not in used]
    return (ints or floats or [None])[0]


def feature_input(program: Any) -> str:
    name = next((n for n, s in program.inputs.items() if s.dtype in ("f32", "f64")), None)
    if name is None:
        raise DlcError("the model needs a floating-point input for the features")
    return name


def rows_for_model(program: Any, x: np.ndarray, y: np.ndarray | None, what: str,
                   origin: Origin | None = None) -> dict[str, np.ndarray]:
    """Features (one row a sample) reshaped to the feature input's sample shape, and targets for the target
    input: class labels as they are (names are mapped by the trainer), regression values shaped to its samples."""
    features = feature_input(program)
    spec_x = program.inputs[features]
    tail = list(spec_x.shape[1:])
    if not all(isinstance(d, int) for d in tail) or int(np.prod(tail)) != int(np.prod(x.shape[1:])):
        raise ValueError(f"{what}: input '{features}' is {spec_x} but the data has {int(np.prod(x.shape[1:]))} "
                         f"features per sample")
    out = {features: x.reshape((len(x), *tail)).astype(np.float64 if spec_x.dtype == "f64" else np.float32)}
    target = target_input(program, features)
    if target is None or y is None:
        return out
    spec_y = program.inputs[target]
    if spec_y.dtype in ("i32", "i64"):
        if not is_text(y) and y.dtype.kind == "f":
            rounded = np.round(y)
            bad = np.flatnonzero(rounded.reshape(-1) != y.reshape(-1))  # NaN included
            if bad.size:
                raise ValueError(f"{what}: {where(target, y, int(bad[0]), origin)} holds {y.reshape(-1)[bad[0]]}, "
                                 f"not an integer, but the model's target input '{target}' is {spec_y} (class "
                                 f"labels); for regression targets declare it f32")
            y = rounded.astype(np.int64)
        out[target] = y
        return out
    tail_y = list(spec_y.shape[1:])
    width = int(np.prod(y.shape[1:]))
    if not all(isinstance(d, int) for d in tail_y) or int(np.prod(tail_y)) != width:
        raise ValueError(f"{what}: the model's target input '{target}' is {spec_y}, but the data has {width} "
                         f"target value{'s' * (width != 1)} per sample")
    out[target] = y.reshape((len(y), *tail_y)).astype(np.float64 if spec_y.dtype == "f64" else np.float32)
    return out


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


def _from_csv(program: Any, path: str, label: str | None) -> DataFile:
    features = feature_input(program)
    target = target_input(program, features)
    if target is None and label is not None:
        raise ValueError(f"--label {label}: the model has no input for targets (inputs: {', '.join(program.inputs)})")
    table = read_csv(path, label, targets=target is not None)
    if target is not None and program.inputs[target].dtype.startswith("f") and is_text(table.targets):
        require_numbers(path, table, "a regression target")  # raises, naming the cell
    spec_x = program.inputs[features]
    if spec_x.shape[1:] and all(isinstance(d, int) for d in spec_x.shape[1:]) \
            and int(np.prod(spec_x.shape[1:])) != len(table.feature_names):
        raise ValueError(f"{path}: input '{features}' is {spec_x} but the table has {len(table.feature_names)} "
                         f"feature columns ({', '.join(table.feature_names)}); {table.chosen}")
    columns = {features: table.feature_names, **({target: table.target_names} if target else {})}
    width = len(table.feature_names) + len(table.target_names)
    origin = Origin(path, columns, lambda row: line_of(path, width, row))
    arrays = rows_for_model(program, table.features, table.targets if target is not None else None, path, origin)
    return DataFile(arrays, origin, table.chosen if target is not None else None)


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
