"""Feature visualization: inputs that maximally activate one unit of a trained model (activation maximization).

A unit is channel `index` of a named tensor (a model output or any top-level name of the .dlm file): for a
[N, C, H, W] activation its mean over the positions, for [N, F] feature `index`. `visualize_unit` starts from
noise and climbs the unit's activation by gradient ascent (Adam) on the input, in evaluation form, with the
usual regularizers of Olah et al.'s survey (Distill, 2017) that keep the image from turning into
high-frequency adversarial noise: an L2 penalty on the input (applied as decoupled weight decay, as AdamW
does: the same pull toward 0 for every unit whatever the scale of its activation), a random jitter (the image
is shifted by up to `jitter` pixels before each gradient, so a pattern must work wherever it lands), and a
Gaussian blur every `blur_every` steps; `clip` keeps pixels in the data's range. All units asked for are optimized together, one
image each, through one compiled plan (dlc/score_gradient.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .errors import DlcError
from .score_gradient import ScoreGradient, image_input

if TYPE_CHECKING:
    from .program import Program


def _unit_weights(shape: tuple[int, ...], layer: str, index: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Weights selecting, per row, the mean of channel index[row] of a [K, C, ...] tensor."""
    if len(shape) < 2:
        raise ValueError(f"'{layer}' has shape {list(shape)}: a unit needs a channel axis after the batch axis")
    if index.min() < 0 or index.max() >= shape[1]:
        raise ValueError(f"unit index must be in [0, {shape[1]}) for '{layer}' of shape {list(shape)}, "
                         f"got {index.tolist()}")
    weights = np.zeros(shape, dtype=dtype)
    weights[np.arange(shape[0]), index] = 1.0 / int(np.prod(shape[2:], dtype=np.int64))
    return weights


def _indices(index: int | Sequence[int]) -> np.ndarray:
    indices = np.atleast_1d(np.asarray(index))
    if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"unit index must be an integer or a non-empty list of integers, got {index!r}")
    return indices


def unit_activation(program: "Program", x: np.ndarray, layer: str, index: int | Sequence[int], *,
                    image: str | None = None) -> np.ndarray:
    """The activation of unit `index` of `layer` for each image of x (evaluation form); `index` is one unit
    for every image or one per image."""
    indices = _indices(index)
    score = ScoreGradient(program, np.asarray(x), layer, image)
    weights = _unit_weights(score.shape, layer, np.broadcast_to(indices, score.shape[:1]), score.x.dtype)
    return score(score.x, weights)[0]


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over the last two axes (edges reflected)."""
    radius = max(1, int(np.ceil(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (-2, -1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="reflect" if x.shape[axis] > radius else "edge")
        length = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(taps))
    return x


def visualize_unit(program: "Program", layer: str, index: int | Sequence[int], *, steps: int = 200,
                   lr: float = 0.05, l2: float = 0.1, jitter: int = 1, blur: float = 0.5, blur_every: int = 4,
                   clip: tuple[float, float] | None = None, noise: float = 0.1, shape: Sequence[int] | None = None,
                   image: str | None = None, seed: int = 0) -> np.ndarray:
    """An input that maximizes unit `index` of `layer` (a list of units gives one input each, stacked).
    The image input's sample shape comes from the model (or `shape`); the start is N(0, noise^2) noise
    (around the middle of `clip` when given). See the module docstring for the regularizers."""
    indices = _indices(index)
    if steps < 0 or lr <= 0 or l2 < 0 or jitter < 0 or blur < 0 or blur_every < 1 or noise < 0:
        raise ValueError("visualize_unit needs steps >= 0, lr > 0, l2 >= 0, jitter >= 0, blur >= 0, "
                         "blur_every >= 1 and noise >= 0")
    if clip is not None and not clip[0] < clip[1]:
        raise ValueError(f"clip must be (low, high) with low < high, got {clip!r}")
    name = image_input(program, program.inputs, image)
    spec = program.inputs[name]
    sample = tuple(shape) if shape is not None else tuple(spec.shape[1:])
    if not all(isinstance(d, int) for d in sample) or len(sample) != len(spec.shape) - 1:
        raise ValueError(f"input '{name}' is {spec.dtype}{list(spec.shape)}: give the sample shape with shape=")
    rng = np.random.default_rng(seed)
    center = 0.0 if clip is None else (clip[0] + clip[1]) / 2
    dtype = np.dtype(np.float64 if spec.dtype == "f64" else np.float32)
    x = (center + rng.normal(0.0, noise, (len(indices),) + sample)).astype(dtype)
    score = ScoreGradient(program, {name: x}, layer, name)
    weights = _unit_weights(score.shape, layer, indices, dtype)
    m, v = np.zeros_like(x), np.zeros_like(x)
    spatial = tuple(range(x.ndim - 2, x.ndim)) if x.ndim >= 3 else (x.ndim - 1,)
    for t in range(1, steps + 1):
        shift = tuple(int(s) for s in rng.integers(-jitter, jitter + 1, len(spatial)))
        _, grad = score(np.roll(x, shift, axis=spatial), weights)
        grad = np.roll(grad, tuple(-s for s in shift), axis=spatial)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        x = x + lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8) - lr * l2 * x
        if blur > 0 and t % blur_every == 0 and x.ndim >= 3:
            x = _blur(x, blur)
        if clip is not None:
            x = np.clip(x, clip[0], clip[1])
        x = x.astype(dtype)
    return x[0] if np.ndim(index) == 0 else x


def save_image_grid(images: np.ndarray, path: str | Path, columns: int = 8, titles: Sequence[str] | None = None,
                    title: str = "") -> None:
    """Writes [K, H, W] or [K, 1, H, W] images as a grid PNG, each tile scaled to its own range."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DlcError("image grids need matplotlib: pip install \".[plot]\" (in the dlc checkout)") from None
    tiles = images.reshape(len(images), *images.shape[-2:])
    rows = int(np.ceil(len(tiles) / columns))
    fig = Figure(figsize=(columns * 0.9, rows * (1.05 if titles is not None else 0.9) + (0.3 if title else 0)))
    FigureCanvasAgg(fig)  # a canvas of its own: the global pyplot backend stays as the user set it
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for k, ax in enumerate(axes):
        ax.axis("off")
        if k < len(tiles):
            ax.imshow(tiles[k], cmap="gray", interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=100)
