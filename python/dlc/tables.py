"""CSV tables for `dlc train` / `dlc eval`: a header row, then one sample a row.

The target columns are `--label` (names or 0-based indices, comma-separated, several for several targets), by
default the column named `label`, else the last one; every other column is a feature. Features must be
numbers; targets are numbers (regression values, or integer class labels) or class names (any text), which
the caller maps to integers (training/datacheck.encode_labels). NumPy's C reader (np.loadtxt) reads the file;
when it refuses a cell, the file is scanned again with Python's csv module to name the line, the data row and
the column of the first bad cell.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Table:
    features: np.ndarray  # float64 [rows, features]
    feature_names: list[str]
    targets: np.ndarray  # [rows] or [rows, targets]: float64, or str where a target column holds text
    target_names: list[str]
    target_columns: list[int]
    chosen: str  # how the target columns were chosen, for the user


def read_csv(path: str, label: str | None, targets: bool = True) -> Table:
    """The table; with targets=False (a model that takes no targets, an autoencoder) every column is a feature."""
    header = _header(path)
    if not targets:
        x = _numbers(path, header, None, "a feature")
        if len(x) and x.shape[1] != len(header):
            for _ in data_rows(path, len(header)):  # raises, naming the first row of another width
                pass
        if not len(x):
            raise ValueError(f"{path}: no data rows after the header")
        return Table(x, header, np.zeros((len(x), 0)), [], [], f"{path}: every column is a feature")
    targets, chosen = target_columns(path, header, label)
    features = [i for i in range(len(header)) if i not in targets]
    try:  # one pass when every cell is a number (200,000 x 21: 1.8 s, against 3.5 s for two)
        whole: np.ndarray | None = _numbers(path, header, None, None)
    except ValueError:
        whole = None
    if whole is not None and not len(whole):
        raise ValueError(f"{path}: no data rows after the header")
    if whole is not None and whole.shape[1] == len(header):
        x, y = whole[:, features], whole[:, targets]
    else:  # text, a bad cell, or rows of another width than the header's: the slower reads name it
        for _ in data_rows(path, len(header)):  # a row with the wrong number of cells
            pass
        x = _numbers(path, header, features, "a feature")
        try:
            y = _numbers(path, header, targets, None)
        except ValueError:  # text: class names (or a stray word, which the caller's class check then names)
            y = _cells(path, header, targets)
    return Table(x, [header[i] for i in features], y[:, 0] if len(targets) == 1 else y,
                 [header[i] for i in targets], targets, chosen)


def _header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
    header = [h.strip() for h in header]
    if not header:
        raise ValueError(f"{path}: expected a header row naming the columns")
    return header


def target_columns(path: str, header: list[str], label: str | None) -> tuple[list[int], str]:
    """The indices of the target columns and a sentence saying how they were chosen."""
    if len(header) < 2:
        raise ValueError(f"{path}: a table for this model needs a feature column and a target column; the header "
                         f"names {len(header)} column ({', '.join(header)})")
    if label is None:
        k = header.index("label") if "label" in header else len(header) - 1
        why = "the column named 'label'" if "label" in header else "the last column, by default"
        return [k], f"{path}: target column '{header[k]}' ({why}; --label NAME|INDEX[,...] chooses)"
    chosen: list[int] = []
    for item in (p.strip() for p in label.split(",")):
        if item in header:
            k = header.index(item)
        else:
            try:
                k = int(item)
            except ValueError:
                raise ValueError(f"--label {label}: {path} has no column '{item}' (columns: "
                                 f"{', '.join(header)})") from None
            if not -len(header) <= k < len(header):
                raise ValueError(f"--label {label}: column index {k} is out of range ({path} has {len(header)} "
                                 f"columns, 0..{len(header) - 1})")
            k %= len(header)
        if k in chosen:
            raise ValueError(f"--label {label}: column '{header[k]}' is named twice")
        chosen.append(k)
    if len(chosen) == len(header):
        raise ValueError(f"--label {label}: every column is a target; no feature column is left")
    names = ", ".join(f"'{header[k]}'" for k in chosen)
    return chosen, f"{path}: target column{'s' * (len(chosen) > 1)} {names} (--label {label})"


def _numbers(path: str, header: list[str], columns: list[int] | None, what: str | None) -> np.ndarray:
    """The columns (None: every column) as float64; a cell that is not a number is an error naming it (what:
    None raises NumPy's error instead, for a caller that reads the columns as text then)."""
    try:
        with open(path, encoding="utf-8") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": said by read_csv instead
            return np.loadtxt(f, delimiter=",", skiprows=1, usecols=columns, dtype=np.float64, ndmin=2,
                              comments=None, quotechar='"')
    except ValueError as e:
        if what is None:
            raise
        _locate_bad_cell(path, header, columns if columns is not None else list(range(len(header))), what)
        raise ValueError(f"{path}: {e}") from None


def require_numbers(path: str, table: Table, what: str) -> None:
    """Raises the error naming the first target cell that is not a number (targets read as text)."""
    _locate_bad_cell(path, _header(path), table.target_columns, what)
    raise ValueError(f"{path}: the target columns {', '.join(table.target_names)} must hold numbers")


def _cells(path: str, header: list[str], columns: list[int]) -> np.ndarray:
    rows = [[row[i].strip() for i in columns] for _, row in data_rows(path, len(header))]
    return np.array(rows, dtype=str).reshape(len(rows), len(columns))


def data_rows(path: str, width: int) -> Iterator[tuple[int, list[str]]]:
    """(file line, cells) of every non-empty data row; a row with the wrong number of cells is an error."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)
        for number, row in enumerate(reader, start=1):
            if not row or all(not c.strip() for c in row) and len(row) == 1:
                continue  # a blank line, as np.loadtxt skips it
            if len(row) != width:
                raise ValueError(f"{path} line {reader.line_num}, data row {number}: {len(row)} cells, the header "
                                 f"has {width} columns")
            yield reader.line_num, row


def _locate_bad_cell(path: str, header: list[str], columns: list[int], what: str) -> None:
    """Raises the error that names the first cell of `columns` that is not a number (or the first short row)."""
    for number, (line, row) in enumerate(data_rows(path, len(header)), start=1):
        for i in columns:
            cell = row[i].strip()
            try:
                float(cell)
            except ValueError:
                shown = "an empty cell" if not cell else repr(cell)
                raise ValueError(f"{path} line {line}, data row {number}, column '{header[i]}': {shown} is not a "
                                 f"number ({what} column must hold numbers)") from None


def line_of(path: str, width: int, row: int) -> int:
    """The file line of data row `row` (0-based): a scan, made only for an error message."""
    for number, (line, _) in enumerate(data_rows(path, width)):
        if number == row:
            return line
    return -1
