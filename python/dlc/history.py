"""Training history on disk and as a picture: what `fit` returns (one list per metric, one value per epoch;
validation metrics prefixed `val_`) written as CSV or JSON, and plotted as learning curves.

CSV has one row per epoch (`epoch,loss,accuracy,val_loss,...`), for spreadsheets and pandas; JSON is
`{"epoch": [1, 2, ...], "loss": [...], ...}`. The plot (matplotlib, the optional `plot` extra) has one panel
per metric with the training and validation curves together, so over-fitting shows as the curves parting.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

from .atomic_file import write_atomically
from .errors import DlcError

History = Mapping[str, Sequence[float]]
INSTALL_MATPLOTLIB = "plotting needs matplotlib: pip install \".[plot]\" (in the dlc checkout)"


def _epochs(history: History) -> int:
    lengths = {len(v) for v in history.values()}
    if len(lengths) > 1:
        raise ValueError(f"history columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def save_history(history: History, path: str | Path) -> None:
    """Writes the history as .csv or .json (by the file's suffix), atomically: it is rewritten after every
    epoch of a long run, and a run killed while writing must leave the previous version whole."""
    path = Path(path)
    n = _epochs(history)
    columns = {"epoch": list(range(1, n + 1)), **{k: [float(x) for x in v] for k, v in history.items()}}
    if path.suffix.lower() == ".json":
        text = json.dumps(columns, indent=1) + "\n"
    elif path.suffix.lower() == ".csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
        text = out.getvalue()
    else:
        raise ValueError(f"cannot write history to {path.name!r}: the file must end in .csv or .json")
    write_atomically(path, text.encode("utf-8"))


def load_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a history written by save_history (without its epoch column)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        columns = json.loads(path.read_text(encoding="utf-8"))
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        columns = {name: [float(row[i]) for row in rows[1:]] for i, name in enumerate(rows[0])}
    columns.pop("epoch", None)
    return {k: [float(x) for x in v] for k, v in columns.items()}


def metric_names(history: History) -> list[str]:
    """The metrics to plot, in history order: `loss`, `accuracy`, ... (validation columns join their metric;
    `seconds` and `lr` are bookkeeping, not learning curves)."""
    names: list[str] = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in names and base not in ("seconds", "lr"):
            names.append(base)
    return names


def plot_history(history: History, path: str | Path, title: str = "") -> None:
    """Learning curves: one panel per metric, training and validation per epoch, written as an image."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise DlcError(INSTALL_MATPLOTLIB) from None

    names = metric_names(history)
    if not names:
        raise ValueError("the history has no metrics to plot")
    epochs = list(range(1, _epochs(history) + 1))
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    # A Figure of its own, not pyplot: no global backend switch and no figure left in a notebook's pyplot state.
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        for key, label, style in ((name, "train", "-"), (f"val_{name}", "validation", "--")):
            if key in history:
                ax.plot(epochs, history[key], style, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no tick at 1.5
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
