"""Saliency maps of a trained digits CNN (issue 14's figure).

Loads a checkpoint of models/digits_cnn.dlm (written by examples/digits_adversarial.py --out, or trains one
for --epochs), computes vanilla and SmoothGrad saliency for the predicted class of every test image, and reports
the share of each map's absolute mass that falls on pixels brighter than the image's mean (the strokes),
averaged over the test set. Writes a picture of the first images and their SmoothGrad maps.

    python examples/digits_saliency.py [--params CKPT] [-o docs/img/saliency.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import dlc
from dlc.data import digits, for_model
from dlc.explain import save_heatmap, saliency, stroke_share

MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.dlm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, help="a digits_cnn checkpoint (default: train one)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("-o", "--out", type=Path, default=Path("docs/img/saliency.png"))
    args = parser.parse_args()
    ds = digits()
    program = dlc.compile(MODEL, seed=0)
    test = for_model(program, *ds.test)
    x, y = test["x"], test["y"]
    if args.params is not None:
        program.load_checkpoint(str(args.params))
    else:
        program.fit(for_model(program, *ds.train), epochs=args.epochs, verbose=False)
    predicted = program(x=x)["logits"].argmax(axis=1)
    result = {"test_accuracy": float(np.mean(predicted == y))}
    maps = {}
    for method in ("vanilla", "smoothgrad"):
        maps[method] = saliency(program, {"x": x}, target=predicted, method=method, samples=25, noise=0.15)
        share = stroke_share(x, maps[method])
        result[f"{method}_stroke_share_mean"] = float(share.mean())
        result[f"{method}_stroke_share_median"] = float(np.median(share))
        result[f"{method}_images_above_0.6"] = float(np.mean(share >= 0.6))
    result["pixels_above_mean_fraction"] = float(np.mean(x.reshape(len(x), -1) > x.reshape(len(x), -1).mean(1, keepdims=True)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_heatmap(x[:10], maps["smoothgrad"][:10], args.out, titles=[f"pred {p}" for p in predicted[:10]])
    result["figure"] = str(args.out)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
