"""`dlc train ... --history h.csv|h.json --plot curves.png`: the per-epoch history on disk and as a picture."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from ..errors import DlcError
from ..history import plot_history, save_history


def add_curve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--history", metavar="FILE", help="write loss and metrics per epoch to FILE.csv or FILE.json")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the learning curves (train and validation per epoch; needs the plot extra)")


def check_curve_arguments(args: argparse.Namespace) -> None:
    """Refuses a bad --history or --plot name before training, not after minutes of it."""
    if args.history and Path(args.history).suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"--history {args.history}: the file must end in .csv or .json")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise DlcError('--plot needs matplotlib: pip install ".[plot]" (in the dlc checkout)') from None


def save_curves(history: Mapping[str, Sequence[float]], history_path: str | None, plot_path: str | None,
                title: str, json_output: bool = False) -> None:
    """Writes the files and says so: on stderr when stdout carries one JSON object (--json)."""
    said: TextIO = sys.stderr if json_output else sys.stdout
    if history_path:
        save_history(history, history_path)
        print(f"wrote {history_path}", file=said)
    if plot_path:
        plot_history(history, plot_path, title=title)
        print(f"wrote {plot_path}", file=said)
