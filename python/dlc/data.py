"""Built-in datasets and how they meet a model's inputs.

`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; installed with the `data`
extra, no download). Pixels are scaled to [0, 1]. The split is fixed: a permutation of the indices drawn with
seed 0; the first 360 (20%) are the test set, the remaining 1,437 the training set.

`digits_graph`: the same images as the nodes of a k-nearest-neighbour graph for semi-supervised node
classification (graph networks, docs/graphs.md): edges join every image to its k nearest images, both ways,
plus a self-loop per node; a few labelled nodes per class, drawn with a seed. "Nearest" is by tangent distance
(`dlc.image_distance`: two drawings that differ by a small shift, rotation, scaling, shear or stroke
thickness are near) unless `metric="euclidean"` asks for plain pixel distance.

`sequences`: synthetic sequence classification shaped to the model's [N, T, F] input (lstm, gru, rnn,
transformer). A sequence of class k is a sine wave of k + 1 cycles over T steps and amplitude 0.6 + 0.08 k,
with a random phase per sample, mixed into the F channels with fixed random weights, plus noise. Recurrent
models can read the frequency; order-blind ones (a transformer without positional encoding, mean-pooled) the
amplitude. 2,000 training and 500 test sequences, drawn with seed 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DlcError
from .image_distance import squared_euclidean, tangent_distance


@dataclass(frozen=True)
class Dataset:
    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int


def digits() -> Dataset:
    x, y = _digits_arrays()
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:360], order[360:]
    return Dataset("digits", (x[train], y[train]), (x[test], y[test]), 10)


@dataclass(frozen=True)
class NodeData:
    """A graph for node classification: features x [N, F], edges src -> dst (i32 [E], self-loops included),
    every node's label, and the nodes whose label training may read."""

    x: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray

    @property
    def unlabelled(self) -> np.ndarray:
        return np.setdiff1d(np.arange(len(self.x)), self.labelled).astype(np.int32)


GRAPH_METRICS = ("tangent", "euclidean")


def digits_graph(k: int = 8, per_class: int = 10, seed: int = 0, metric: str = "tangent") -> NodeData:
    """All 1,797 digits as nodes; each joined to its k nearest images in both directions and to itself;
    `per_class` labelled nodes per class drawn with `seed`. `metric`: "tangent" (the default; tangent distance
    between the images blurred with sigma 0.6 px) or "euclidean" (between the raw pixels)."""
    if metric not in GRAPH_METRICS:
        raise ValueError(f"digits_graph: metric must be one of {', '.join(GRAPH_METRICS)}, not {metric!r}")
    if not 0 < k < 1797:
        raise ValueError(f"digits_graph: k must be between 1 and 1796, not {k}")
    bunch_x, labels = _digits_arrays()
    pixels = bunch_x.astype(np.float64)
    if metric == "tangent":
        dist = tangent_distance(pixels.reshape(-1, 8, 8))
    else:
        dist = squared_euclidean(pixels)
    np.fill_diagonal(dist, np.inf)
    near = np.argpartition(dist, k, axis=1)[:, :k]
    n = len(bunch_x)
    rows = np.repeat(np.arange(n), k)
    pairs = np.concatenate([np.stack([rows, near.ravel()], 1), np.stack([near.ravel(), rows], 1),
                            np.stack([np.arange(n)] * 2, 1)])
    edges = np.unique(pairs, axis=0).astype(np.int32)  # sorted by source, then destination
    rng = np.random.default_rng(seed)
    labelled = np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                                       for c in range(10)])).astype(np.int32)
    return NodeData(bunch_x, edges[:, 0].copy(), edges[:, 1].copy(), labels, labelled)


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """Every digit image (pixels in [0, 1]) and its label, in scikit-learn's order."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DlcError("the digits dataset needs scikit-learn: pip install \".[data]\" (in the dlc checkout)") from None
    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int32)


def sequences(steps: int, features: int, classes: int = 10, train: int = 2000, test: int = 500) -> Dataset:
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((2, features)) / np.sqrt(2)
    n = train + test
    y = rng.integers(0, classes, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(steps) / steps
    angle = 2 * np.pi * (y[:, None] + 1) * t[None, :] + phase[:, None]
    amplitude = (0.6 + 0.08 * y)[:, None, None]
    wave = amplitude * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # [n, T, 2]
    x = (wave @ mix + 0.3 * rng.standard_normal((n, steps, features))).astype(np.float32)
    y = y.astype(np.int32)
    return Dataset("sequences", (x[:train], y[:train]), (x[train:], y[train:]), classes)


DATASETS = {"digits": digits}


def load_dataset(name: str, program: Any = None, dims: dict[str, int] | None = None) -> Dataset:
    """A dataset by name; `sequences` takes its [T, F] from the model's first float input (or -D)."""
    if name == "sequences":
        if program is None:
            raise DlcError("the sequences dataset is shaped by a model")
        return sequences(*_sequence_shape(program, dims or {}))
    if name not in DATASETS:
        raise DlcError(f"unknown dataset '{name}' (available: {', '.join([*DATASETS, 'sequences'])})")
    return DATASETS[name]()


def _sequence_shape(program: Any, dims: dict[str, int]) -> tuple[int, int]:
    spec = next((s for s in program.inputs.values() if s.dtype in ("f32", "f64")), None)
    if spec is None or len(spec.shape) != 3:
        raise DlcError("the sequences dataset needs a model whose first float input is [N, T, F]")
    size = [d if isinstance(d, int) else dims.get(d, 32) for d in spec.shape[1:]]
    return size[0], size[1]


def for_model(program: Any, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Feeds features to the model's first floating-point input (reshaped to its declared shape, e.g.
    [N, 1, 8, 8] for a CNN) and labels to its first integer input; a model without an integer input
    (an autoencoder, a VAE) gets the features only."""
    float_in = next((n for n, s in program.inputs.items() if s.dtype in ("f32", "f64")), None)
    int_in = next((n for n, s in program.inputs.items() if s.dtype in ("i32", "i64")), None)
    if float_in is None:
        raise DlcError("the model needs a floating-point input for the features")
    spec_x = program.inputs[float_in]
    tail = [d for d in spec_x.shape[1:]]
    if not all(isinstance(d, int) for d in tail) or int(np.prod(tail)) != int(np.prod(x.shape[1:])):
        raise DlcError(f"input '{float_in}' is {spec_x} but the data has {x.shape[1:]} features per sample")
    xs = x.reshape((len(x), *tail)).astype(np.float64 if spec_x.dtype == "f64" else np.float32)
    if int_in is None:
        return {float_in: xs}
    ys = y.astype(np.int64 if program.inputs[int_in].dtype == "i64" else np.int32)
    return {float_in: xs, int_in: ys}
