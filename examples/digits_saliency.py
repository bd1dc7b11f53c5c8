"""Attribution maps of a trained digits CNN and how faithful each method is.

Loads a checkpoint of models/digits_cnn.dlm (`dlc train models/digits_cnn.dlm --data digits --out cnn.ckpt`, or
trains one for --epochs) and, for the predicted class of every test image, computes the maps of each method:
vanilla gradients, SmoothGrad, gradient x input and integrated gradients. It reports the share of each map's
absolute mass on the strokes (pixels brighter than the image's mean) and the deletion curve: test accuracy as
each image's most-attributed pixels are set to 0 (black, the background), 4 of the 64 at a time, beside a
random order. Pixels rank by |map|, and for gradient x input and integrated gradients also by the signed value
(evidence for the class first). The area under each curve summarizes it: lower is more faithful. Writes the
SmoothGrad heat map, every method's maps for the first test digits, and the deletion curves.

    python examples/digits_saliency.py [--params CKPT] [--out-dir docs/img]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import dlc
from dlc.data import digits, for_model
from dlc.explain import METHODS, deletion_curve, save_heatmap, saliency, stroke_share

MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.dlm"
LABELS = {"vanilla": "vanilla gradient", "smoothgrad": "SmoothGrad", "grad_x_input": "gradient x input",
          "integrated_gradients": "integrated gradients", "random": "random order"}


def _figure(width: float, height: float):  # noqa: ANN202 (matplotlib is optional)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # its own canvas: no global backend switch
    return fig


def save_method_maps(x: np.ndarray, maps: dict[str, np.ndarray], path: Path) -> None:
    """Rows: the digits, then |map| of each method; columns: test digits."""
    n = len(x)
    fig = _figure(1.0 * n + 1.4, 1.05 * (len(maps) + 1))
    axes = fig.subplots(len(maps) + 1, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(x[i].reshape(8, 8), cmap="gray")
        for row, m in enumerate(maps.values(), start=1):
            axes[row, i].imshow(np.abs(m[i]).reshape(8, 8), cmap="hot")
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    for row, name in enumerate(["digit", *maps]):
        axes[row, 0].set_ylabel(LABELS.get(name, name).replace(" ", "\n", 1), fontsize=8)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=110)


def save_deletion_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    fig = _figure(5.6, 3.8)
    ax = fig.subplots()
    for name, (fractions, accuracy) in curves.items():
        ax.plot(fractions * 100, accuracy * 100, marker=".", label=name,
                linestyle=":" if name.startswith("random") else "-")
    ax.set_xlabel("pixels removed (most attributed first), %")
    ax.set_ylabel("test accuracy, %")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, help="a digits_cnn checkpoint (default: train one)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=Path("docs/img"))
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
    result: dict[str, object] = {"test_accuracy": float(np.mean(predicted == y))}
    maps = {method: saliency(program, {"x": x}, target=predicted, method=method, samples=25, noise=0.15, steps=50)
            for method in METHODS}
    maps["random"] = np.random.default_rng(0).random(x.shape).astype(np.float32)
    counts = np.arange(0, 65, 4)
    curves = {}
    for method, m in maps.items():
        if method != "random":
            result[f"{method}_stroke_share_mean"] = float(stroke_share(x, m).mean())
        for signed in (False, True) if method in ("grad_x_input", "integrated_gradients") else (False,):
            name = LABELS[method] + (" (signed)" if signed else "")
            curves[name] = deletion_curve(program, {"x": x}, y, m, counts=counts, signed=signed)
    result["deletion_accuracy"] = {name: [round(a, 3) for a in acc] for name, (_, acc) in curves.items()}
    result["deletion_area"] = {name: round(float(np.trapezoid(acc, f)), 3) for name, (f, acc) in curves.items()}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    save_heatmap(x[:10], maps["smoothgrad"][:10], args.out_dir / "saliency.png",
                 titles=[f"pred {p}" for p in predicted[:10]])
    save_method_maps(x[:10], {k: v[:10] for k, v in maps.items() if k != "random"}, args.out_dir / "attribution.png")
    save_deletion_plot(curves, args.out_dir / "deletion_curves.png",
                       f"digits_cnn, {len(x)} test digits: deletion curves")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
