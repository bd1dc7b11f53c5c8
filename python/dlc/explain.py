"""Attribution (which input pixels a prediction depends on) and feature visualization.

`saliency(program, inputs, target=c, method=...)` attributes the class score (the chosen output, logits by
default, at class c) to the image input's elements, in evaluation form: dropout off, batch norm on its running
statistics, so the map explains the deployed model. Every method runs the compiled gradient plan of
dlc/score_gradient.py (forward, the score, the backward pass to the input), cached per model and input shape:
- "vanilla": the gradient d score / d x (Simonyan et al.);
- "smoothgrad": the mean gradient over `samples` noisy copies of x, noise N(0, (noise * (max(x) - min(x)))^2)
  (Smilkov et al.), which removes most of the vanilla gradient's speckle;
- "grad_x_input": x * d score / d x, each pixel's first-order contribution to the score;
- "integrated_gradients": (x - baseline) times the mean gradient along the straight path from the baseline
  (black by default) to x (Sundararajan et al.), the path integral taken with `steps`-point Gauss-Legendre
  quadrature. Completeness: the attributions sum to score(x) - score(baseline) up to the quadrature error.

`deletion_curve` measures how faithful a map is: accuracy as each image's most-attributed elements are set to
the baseline, a few at a time (a steeper fall means the map found what the model uses). `visualize_unit`
(dlc/feature_vis.py) synthesizes inputs that maximize a unit. `save_heatmap` draws images and their maps side
by side (matplotlib: the optional `plot` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from .errors import DlcError
from .feature_vis import save_image_grid, unit_activation, visualize_unit
from .score_gradient import ScoreGradient, image_input

if TYPE_CHECKING:
    from .program import Program

METHODS = ("vanilla", "smoothgrad", "grad_x_input", "integrated_gradients")
__all__ = ["METHODS", "saliency", "deletion_curve", "stroke_share", "save_heatmap", "visualize_unit",
           "unit_activation", "save_image_grid"]


def _weights(shape: tuple[int, ...], target: int | Sequence[int], dtype: np.dtype) -> np.ndarray:
    classes = shape[-1]
    targets = np.broadcast_to(np.asarray(target), shape[:1]) if np.ndim(target) else np.full(shape[:1], target)
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= classes:
        raise ValueError(f"target must be a class index (or one per row) in [0, {classes}), got {target!r}")
    onehot = np.zeros((shape[0], classes), dtype=dtype)
    onehot[np.arange(shape[0]), targets] = 1
    return np.ascontiguousarray(np.broadcast_to(onehot.reshape((shape[0],) + (1,) * (len(shape) - 2) + (classes,)),
                                                shape))


def saliency(program: "Program", inputs: Mapping[str, np.ndarray] | np.ndarray, target: int | Sequence[int], *,
             output: str | None = None, image: str | None = None, method: str = "vanilla", samples: int = 25,
             noise: float = 0.15, steps: int = 50, baseline: float | np.ndarray = 0.0,
             seed: int = 0) -> np.ndarray:
    """The attribution of score[target] to the image input, shaped like it (see the module docstring for the
    methods). `inputs` maps input names to arrays (a bare array is the image input); `target` is a class or
    one class per row; `output` defaults to the first. SmoothGrad uses `samples`, `noise` and `seed`;
    integrated gradients `steps` and `baseline` (a number or an array broadcastable to the images)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if output is not None and output not in program.outputs:
        raise ValueError(f"unknown output '{output}' (the model has: {', '.join(program.outputs)})")
    score = ScoreGradient(program, inputs, output, image)
    weights = _weights(score.shape, target, score.x.dtype)
    x = score.x

    def gradient(at: np.ndarray) -> np.ndarray:
        return score(at, weights)[1]

    if method == "vanilla":
        return gradient(x)
    if method == "grad_x_input":
        return x * gradient(x)
    if method == "integrated_gradients":
        if steps < 1:
            raise ValueError(f"integrated gradients need steps >= 1, got {steps}")
        start = _baseline(baseline, x)
        nodes, quad = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]; mapped to [0, 1] below
        total = np.zeros_like(x)
        for t, w in zip((nodes + 1) / 2, quad / 2):
            total += w * gradient((start + t * (x - start)).astype(x.dtype))
        return (x - start) * total
    if samples < 1 or noise < 0:
        raise ValueError("smoothgrad needs samples >= 1 and noise >= 0")
    rng = np.random.default_rng(seed)
    sigma = noise * float(x.max() - x.min())
    total = np.zeros_like(x)
    for _ in range(samples):
        total += gradient((x + rng.normal(0.0, sigma, x.shape)).astype(x.dtype))
    return total / samples


def _baseline(baseline: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(baseline, dtype=x.dtype), x.shape)
    except ValueError:
        raise ValueError(f"baseline of shape {np.shape(baseline)} does not broadcast to the images' shape "
                         f"{x.shape}") from None


def deletion_curve(program: "Program", inputs: Mapping[str, np.ndarray] | np.ndarray, labels: np.ndarray,
                   maps: np.ndarray, *, counts: Sequence[int] | None = None, baseline: float | np.ndarray = 0.0,
                   signed: bool = False, output: str | None = None, image: str | None = None,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (argmax of `output` against `labels`) after setting each image's k most-attributed elements
    to the baseline, for each k in `counts` (default: 0 to every element in up to 16 steps). Elements rank by
    |map|, or by the map's value when `signed` (evidence for the class first: gradient x input and integrated
    gradients); ties break in a seeded random order. Returns (fraction of elements removed, accuracy)."""
    if isinstance(inputs, np.ndarray):
        inputs = {image_input(program, dict.fromkeys(program.inputs), image): inputs}
    name = image_input(program, inputs, image)
    output = output or next(iter(program.outputs))
    if output not in program.outputs:
        raise ValueError(f"unknown output '{output}' (the model has: {', '.join(program.outputs)})")
    x = np.asarray(inputs[name])
    if maps.shape != x.shape:
        raise ValueError(f"maps: expected the images' shape {list(x.shape)}, got {list(maps.shape)}")
    labels = np.asarray(labels)
    if labels.shape != x.shape[:1]:
        raise ValueError(f"labels: expected shape [{x.shape[0]}], got {list(labels.shape)}")
    n, size = x.shape[0], int(np.prod(x.shape[1:]))
    counts = np.unique(np.linspace(0, size, 17).round().astype(int)) if counts is None else np.asarray(counts, dtype=int)
    if counts.ndim != 1 or counts.min(initial=0) < 0 or counts.max(initial=0) > size:
        raise ValueError(f"counts must be element counts in [0, {size}], got {counts.tolist()}")
    rank = (maps if signed else np.abs(maps)).reshape(n, size)
    tiebreak = np.random.default_rng(seed).random((n, size))
    order = np.lexsort((tiebreak, -rank), axis=1)  # most attributed first
    fill = _baseline(baseline, x).reshape(n, size)
    rows = np.arange(n)[:, None]
    accuracy = []
    for k in counts:
        removed = x.reshape(n, size).copy()
        removed[rows, order[:, :k]] = fill[rows, order[:, :k]]
        scores = program(**{**inputs, name: removed.reshape(x.shape)})[output]
        accuracy.append(float(np.mean(scores.argmax(axis=-1) == labels)))
    return counts / size, np.array(accuracy)


def stroke_share(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Per image: the share of the map's absolute mass on pixels brighter than that image's mean."""
    n = images.shape[0]
    x, m = images.reshape(n, -1), np.abs(maps).reshape(n, -1)
    on = x > x.mean(axis=1, keepdims=True)
    return (m * on).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-30)


def save_heatmap(images: np.ndarray, maps: np.ndarray, path: str | Path, titles: Sequence[str] | None = None) -> None:
    """Each image (grey) above its saliency map (absolute value, hot colours), one column per image."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DlcError("heat maps need matplotlib: pip install \".[plot]\" (in the dlc checkout)") from None
    n = images.shape[0]
    if images.ndim == 2:  # flat [N, D] inputs (an MLP's): square images when D is a square, else one strip
        side = int(round(np.sqrt(images.shape[1])))
        h, w = (side, side) if side * side == images.shape[1] else (1, images.shape[1])
    else:
        h, w = images.shape[-2:]
    imgs = images.reshape(n, -1, h, w).mean(axis=1)  # [N, H, W] or [N, C, H, W]: channels averaged
    heat = np.abs(maps).reshape(n, -1, h, w).sum(axis=1)
    fig = Figure(figsize=(1.6 * n, 3.4))  # not pyplot: a notebook's backend and figures stay as they are
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(imgs[i], cmap="gray")
        axes[1, i].imshow(heat[i], cmap="hot")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
