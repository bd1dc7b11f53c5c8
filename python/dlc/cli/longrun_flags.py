"""`dlc train ... --out CKPT --checkpoint-every N[epochs|steps] --save-best METRIC --resume --tensorboard DIR`:
the flags of a long run. Checkpoints go to --out (replaced atomically each time, so a killed run leaves the last
one whole); --save-best writes NAME.best.SUFFIX beside it; --resume continues from --out when it exists, at the
epoch and batch where the checkpoint was written, bit-identically to a run that was never stopped."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Callable

from ..program import Program
from ..callbacks import Checkpoint, HistoryFile, SaveBest


def every(text: str) -> tuple[int, str]:
    """`5` or `5epochs` (every 5 epochs), `200steps` (every 200 optimizer steps)."""
    match = re.fullmatch(r"\s*(\d+)\s*(epochs?|steps?)?\s*", text)
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"expected N, Nepochs or Nsteps with N >= 1 (e.g. 2, 500steps), got {text!r}")
    return int(match.group(1)), "step" if (match.group(2) or "").startswith("step") else "epoch"


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("long runs")
    group.add_argument("--checkpoint-every", type=every, metavar="N[epochs|steps]",
                       help="also write the --out checkpoint every N epochs (default unit) or N optimizer steps")
    group.add_argument("--save-best", metavar="METRIC",
                       help="write the best epoch by METRIC (val_loss, val_accuracy, loss...) to NAME.best.ckpt "
                            "beside --out")
    group.add_argument("--resume", action="store_true",
                       help="continue from the --out checkpoint when it exists (after a crash or a kill), for "
                            "the epochs the run has left")
    group.add_argument("--tensorboard", metavar="DIR",
                       help="log loss, metrics and learning rate per epoch for TensorBoard (needs the "
                            "tensorboard extra)")


def best_path(out: str) -> str:
    path = Path(out)
    return str(path.with_name(f"{path.stem}.best{path.suffix or '.ckpt'}"))


def check(args: argparse.Namespace, distributed: bool) -> None:
    """Refuses inconsistent flags before any training."""
    for flag, value in (("--checkpoint-every", args.checkpoint_every), ("--save-best", args.save_best),
                        ("--resume", args.resume)):
        if value and not args.out:
            raise ValueError(f"{flag} needs --out CKPT (where the checkpoints go)")
    if distributed and args.checkpoint_every and args.checkpoint_every[1] == "step":
        raise ValueError("--checkpoint-every N steps is for single-process runs; under mpirun use N epochs")


def resume(args: argparse.Namespace, program: Program, epochs: int, announce: bool = True) -> int:
    """Loads --out when --resume finds it; returns the epochs left to train of the `epochs` the run has.
    `announce`: say so on stderr (rank 0 of a data-parallel run only; every rank loads the file)."""
    if not args.resume:
        return epochs
    if not Path(args.out).exists():
        if announce:
            print(f"--resume: {args.out} does not exist yet; starting a new run", file=sys.stderr)
        return epochs
    program.load_checkpoint(args.out)
    left = max(epochs - program.epoch, 0)
    if announce:
        print(f"resuming from {args.out}: epoch {program.epoch + 1}, step {program.step_count}; {left} epoch"
              f"{'s' * (left != 1)} left", file=sys.stderr)
    return left


def callbacks(args: argparse.Namespace, save: Callable[[Any, str], None] | None = None,
              main: bool = True) -> list[Any]:
    """The callbacks the flags ask for. `save` writes a checkpoint (in a data-parallel run: rank 0 writes, the
    others wait); files only rank 0 writes (history, TensorBoard) are left to it (`main`)."""
    kwargs = {"save": save} if save is not None else {}
    out: list[Any] = []
    if args.history and main:
        out.append(HistoryFile(args.history))
    if args.checkpoint_every:
        n, unit = args.checkpoint_every
        out.append(Checkpoint(args.out, every=n, unit=unit, **kwargs))
    if args.save_best:
        out.append(SaveBest(best_path(args.out), monitor=args.save_best, **kwargs))
    if args.tensorboard and main:
        from ..tensorboard import TensorBoardLog
        out.append(TensorBoardLog(args.tensorboard))
    return out
