"""Parameter initializers, all seeded.

Each parameter draws from its own generator, seeded by (model seed, parameter name): adding a layer never
changes the initial values of the others, and the same seed always gives the same model.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Callable

import numpy as np

from .errors import ShapeError

# name -> (accepted keyword arguments with defaults, sampler(rng, shape, fan_in, fan_out, **kwargs))
Sampler = Callable[..., np.ndarray]


def _uniform_bound(rng: np.random.Generator, shape: tuple[int, ...], bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape)


INITIALIZERS: dict[str, tuple[dict[str, float], Sampler]] = {
    "zeros": ({}, lambda rng, shape, fi, fo: np.zeros(shape)),
    "ones": ({}, lambda rng, shape, fi, fo: np.ones(shape)),
    "constant": ({"value": 0.0}, lambda rng, shape, fi, fo, value: np.full(shape, value)),
    "normal": ({"mean": 0.0, "std": 0.01}, lambda rng, shape, fi, fo, mean, std: rng.normal(mean, std, shape)),
    "uniform": ({"low": -0.05, "high": 0.05},
                lambda rng, shape, fi, fo, low, high: rng.uniform(low, high, shape)),
    "xavier_uniform": ({"gain": 1.0}, lambda rng, shape, fi, fo, gain: _uniform_bound(
        rng, shape, gain * math.sqrt(6.0 / max(fi + fo, 1)))),
    "xavier_normal": ({"gain": 1.0}, lambda rng, shape, fi, fo, gain: rng.normal(
        0.0, gain * math.sqrt(2.0 / max(fi + fo, 1)), shape)),
    "he_uniform": ({"gain": math.sqrt(2.0)}, lambda rng, shape, fi, fo, gain: _uniform_bound(
        rng, shape, gain * math.sqrt(3.0 / max(fi, 1)))),
    "he_normal": ({"gain": math.sqrt(2.0)}, lambda rng, shape, fi, fo, gain: rng.normal(
        0.0, gain / math.sqrt(max(fi, 1)), shape)),
}
ALIASES = {"glorot_uniform": "xavier_uniform", "glorot_normal": "xavier_normal", "xavier": "xavier_uniform",
           "glorot": "xavier_uniform", "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal",
           "he": "he_normal", "kaiming": "he_normal"}

InitSpec = tuple[Any, ...]  # (name, (key, value), ...)


def make_spec(name: str, kwargs: dict[str, Any] | None = None) -> InitSpec:
    """Validates an initializer name and its arguments; raises ShapeError with the choices otherwise."""
    canonical = ALIASES.get(name, name)
    if canonical not in INITIALIZERS:
        known = ", ".join(sorted([*INITIALIZERS, *ALIASES]))
        raise ShapeError(f"unknown initializer '{name}' (known: {known})")
    accepted, _ = INITIALIZERS[canonical]
    kwargs = dict(kwargs or {})
    for k, v in kwargs.items():
        if k not in accepted:
            raise ShapeError(f"initializer {name} takes no argument '{k}' (it takes: {', '.join(accepted) or 'none'})")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ShapeError(f"initializer argument {k} must be a number, got {v!r}")
    full = {k: float(kwargs.get(k, d)) for k, d in accepted.items()}
    return (canonical, *sorted(full.items()))


def as_spec(value: Any) -> InitSpec:
    if isinstance(value, tuple):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return make_spec("constant", {"value": float(value)})
    if isinstance(value, str):
        return make_spec(value)
    raise ShapeError(f"not an initializer: {value!r}")


def param_seed(seed: int, name: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2 ** 63)


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Fan-in/out of an explicitly declared parameter: [in, out] for matrices (x @ W), [out, in, *kernel] for
    convolution weights, as PyTorch lays them out."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def initialize(spec: InitSpec, shape: tuple[int, ...], dtype: np.dtype, seed: int, name: str,
               fan: tuple[int, int] | None = None) -> np.ndarray:
    canonical, *items = spec
    _, sampler = INITIALIZERS[canonical]
    fi, fo = fan if fan is not None else fans(shape)
    rng = np.random.default_rng(param_seed(seed, name))
    return np.require(sampler(rng, shape, fi, fo, **dict(items)), dtype, "C")  # keeps 0-d parameters 0-d
