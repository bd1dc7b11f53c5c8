"""`dlc saliency MODEL --params CKPT --input x.npy --target 3 -o map.png`: attribution maps of a class score over
the input image (vanilla gradients, SmoothGrad, gradient x input or integrated gradients, in evaluation mode; see
dlc/explain.py) drawn as heat maps beside the images, or saved as an array when the output ends in .npy."""

from __future__ import annotations

import argparse

import numpy as np

from ..explain import METHODS, save_heatmap, saliency
from ..ir import np_dtype
from .common import add_threads_argument, load_params, load_program
from .run import load_inputs


def cmd_saliency(args: argparse.Namespace) -> int:
    program = load_program(args)
    load_params(program, args.params)
    image = next((n for n, s in program.inputs.items() if s.dtype in ("f32", "f64")), None)
    if image is None:
        raise ValueError("saliency needs a floating-point model input")
    x = load_inputs([(image, args.input)])[image]
    rank = len(program.inputs[image].shape)
    if x.ndim == rank - 1:  # one image without its batch axis
        x = x[None]
    maps = saliency(program, {image: x.astype(np_dtype(program.inputs[image].dtype))},
                    target=args.target, output=args.output_name, method=args.method, samples=args.samples,
                    noise=args.noise, steps=args.steps, baseline=args.baseline)
    if args.out.endswith(".npy"):
        np.save(args.out, maps)
    else:
        save_heatmap(x, maps, args.out, titles=[f"class {args.target}"] * len(x))
    print(f"wrote {args.out} ({args.method}, {len(x)} image{'s' * (len(x) != 1)}, class {args.target})")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("saliency", parents=[model], help="attribution map of a class score over input images",
                       description="Attributes score[target] to the input pixels in evaluation mode for the images "
                                   "in a .npy file ([N, ...] or one image) and writes heat maps (PNG, needs the "
                                   "plot extra) or the maps as .npy.")
    p.add_argument("--params", metavar="CKPT", required=True, help="checkpoint or compiled artifact")
    p.add_argument("--input", required=True, metavar="FILE.npy", help="images for the model's image input")
    p.add_argument("--target", type=int, required=True, help="class whose score is explained")
    p.add_argument("--output-name", metavar="NAME", help="model output holding the scores (default: the first)")
    p.add_argument("--method", choices=METHODS, default="vanilla",
                   help="vanilla gradient (default), smoothgrad, grad_x_input or integrated_gradients")
    p.add_argument("--samples", type=int, default=25, help="SmoothGrad: noisy copies averaged (default 25)")
    p.add_argument("--noise", type=float, default=0.15, help="SmoothGrad: noise scale (default 0.15)")
    p.add_argument("--steps", type=int, default=50, help="integrated gradients: quadrature points (default 50)")
    p.add_argument("--baseline", type=float, default=0.0,
                   help="integrated gradients: the constant baseline image's value (default 0, black)")
    p.add_argument("-o", dest="out", required=True, metavar="FILE", help="map.png (heat map) or map.npy (array)")
    add_threads_argument(p)
    p.set_defaults(func=cmd_saliency)
