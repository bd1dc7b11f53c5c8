"""`dlc eval --attack fgsm|pgd --eps E [--steps K] [--step-size A] [--no-random-start] [--clip LOW HIGH]`: robust
accuracy, the metrics on adversarial examples made from the test inputs (see dlc/training/adversarial.py)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("adversarial evaluation")
    group.add_argument("--attack", choices=("fgsm", "pgd"), help="also evaluate on adversarial examples")
    group.add_argument("--eps", type=float, default=0.1, help="perturbation size, in input units (default 0.1)")
    group.add_argument("--steps", type=int, default=10, help="PGD steps (default 10)")
    group.add_argument("--step-size", type=float, default=0.0, help="PGD step size (default 2.5 eps / steps)")
    group.add_argument("--no-random-start", dest="random_start", action="store_false",
                       help="PGD starts at the input instead of a uniform draw in the eps-ball")
    group.add_argument("--clip", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="valid input range (default: the range of the evaluated inputs)")


def attack(args: argparse.Namespace, inputs: np.ndarray) -> tuple[str, dict[str, Any]] | None:
    """The attack the flags describe, or None without --attack."""
    if args.attack is None:
        return None
    clip = list(args.clip) if args.clip else [float(inputs.min()), float(inputs.max())]
    kwargs: dict[str, Any] = {"eps": args.eps, "clip": clip}
    if args.attack == "pgd":
        kwargs.update(steps=args.steps, step_size=args.step_size, random_start=args.random_start)
    return args.attack, kwargs
