"""Built-in datasets and how they meet a model's inputs.

`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; installed with the `data`
extra, no download). Pixels are scaled to [0, 1]. The split is fixed: a permutation of the indices drawn with
seed 0; the first 360 (20%) are the test set, the remaining 1,437 the training set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DlcError


@dataclass(frozen=True)
class Dataset:
    name: str
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int


def digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DlcError("the digits dataset needs scikit-learn: pip install 'dlc[data]'") from None
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int32)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:360], order[360:]
    return Dataset("digits", (x[train], y[train]), (x[test], y[test]), 10)


DATASETS = {"digits": digits}


def load_dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DlcError(f"unknown dataset '{name}' (available: {', '.join(DATASETS)})")
    return DATASETS[name]()


def for_model(program: Any, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Feeds features to the model's first floating-point input (reshaped to its declared shape, e.g.
    [N, 1, 8, 8] for a CNN) and labels to its first integer input."""
    float_in = next((n for n, s in program.inputs.items() if s.dtype in ("f32", "f64")), None)
    int_in = next((n for n, s in program.inputs.items() if s.dtype in ("i32", "i64")), None)
    if float_in is None or int_in is None:
        raise DlcError("the model needs a floating-point input for the features and an integer input for the labels")
    spec_x, spec_y = program.inputs[float_in], program.inputs[int_in]
    tail = [d for d in spec_x.shape[1:]]
    if not all(isinstance(d, int) for d in tail) or int(np.prod(tail)) != int(np.prod(x.shape[1:])):
        raise DlcError(f"input '{float_in}' is {spec_x} but the data has {x.shape[1:]} features per sample")
    xs = x.reshape((len(x), *tail)).astype(np.float64 if spec_x.dtype == "f64" else np.float32)
    ys = y.astype(np.int64 if spec_y.dtype == "i64" else np.int32)
    return {float_in: xs, int_in: ys}
