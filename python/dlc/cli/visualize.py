"""`dlc visualize MODEL --params CKPT --unit c3:0 --unit c3:1 -o units.png`: feature visualization, inputs that
maximize units of a trained model (activation maximization; see dlc/feature_vis.py), written as a picture grid
or as a .npy array."""

from __future__ import annotations

import argparse

import numpy as np

from ..feature_vis import save_image_grid, unit_activation, visualize_unit
from .common import add_threads_argument, load_params, load_program


def parse_unit(text: str) -> tuple[str, list[int]]:
    """LAYER:INDEX, LAYER:A-B (a range, both ends included) or LAYER:I,J,..."""
    layer, sep, spec = text.rpartition(":")
    if not sep or not layer or not spec:
        raise argparse.ArgumentTypeError(f"expected LAYER:INDEX (e.g. c3:5, c3:0-7), got {text!r}")
    try:
        indices: list[int] = []
        for part in spec.split(","):
            lo, dash, hi = part.partition("-")
            indices += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"unit indices must be integers, got {spec!r} in {text!r}") from None
    return layer, indices


def cmd_visualize(args: argparse.Namespace) -> int:
    program = load_program(args)
    load_params(program, args.params)
    clip = tuple(args.clip) if args.clip is not None else None
    images, titles, gains = [], [], []
    for layer, indices in args.unit:
        x = visualize_unit(program, layer, indices, steps=args.steps, lr=args.lr, l2=args.l2, jitter=args.jitter,
                           blur=args.blur, clip=clip, seed=args.seed)
        start = visualize_unit(program, layer, indices, steps=0, clip=clip, seed=args.seed)  # the noise it left
        gains += list(zip(unit_activation(program, start, layer, indices), unit_activation(program, x, layer, indices)))
        images.append(x)
        titles += [f"{layer}:{i}" for i in indices]
    stacked = np.concatenate(images)
    if args.out.endswith(".npy"):
        np.save(args.out, stacked)
    else:
        save_image_grid(stacked, args.out, columns=min(args.columns, len(stacked)), titles=titles)
    for title, (before, after) in zip(titles, gains):
        print(f"{title}: activation {before:.3g} (noise) -> {after:.3g}")
    print(f"wrote {args.out} ({len(stacked)} unit{'s' * (len(stacked) != 1)})")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("visualize", parents=[model], help="inputs that maximally activate units (feature "
                                                          "visualization)",
                       description="Activation maximization: from noise, gradient ascent on the input (evaluation "
                                   "mode) raises the mean activation of each unit, with an L2 penalty, random "
                                   "jitter and a periodic blur. Writes a picture grid (PNG, needs the plot extra) "
                                   "or the inputs as .npy.")
    p.add_argument("--params", metavar="CKPT", required=True, help="checkpoint or compiled artifact")
    p.add_argument("--unit", type=parse_unit, action="append", required=True, metavar="LAYER:INDEX",
                   help="a top-level tensor name of the model and a channel (c3:5, c3:0-7 or c3:1,4; repeatable)")
    p.add_argument("--steps", type=int, default=200, help="gradient-ascent steps (default 200)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam step size (default 0.05)")
    p.add_argument("--l2", type=float, default=0.1, help="L2 penalty on the input, as decoupled decay (default 0.1)")
    p.add_argument("--jitter", type=int, default=1, help="random shift in pixels before each step (default 1)")
    p.add_argument("--blur", type=float, default=0.5, help="Gaussian blur sigma, every 4 steps (0: none)")
    p.add_argument("--clip", type=float, nargs=2, metavar=("LOW", "HIGH"), help="keep pixels in [LOW, HIGH]")
    p.add_argument("--sample-seed", dest="seed", type=int, default=0, help="seed of the start noise and jitter")
    p.add_argument("--columns", type=int, default=8, help="grid columns (default 8)")
    p.add_argument("-o", dest="out", required=True, metavar="FILE", help="units.png (grid) or units.npy (array)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_visualize)
