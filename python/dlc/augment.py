"""Seeded data augmentation for image batches (NCHW), applied by fit() to each training batch.

Random crop after zero padding, horizontal flip, and small rotations and scalings (one affine warp with
bilinear sampling). The random draws come from a generator seeded by (seed, epoch, batch), so a run is
reproducible and a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augment:
    crop: int = 0  # pad by this many pixels, then crop back at a random offset
    flip: bool = False  # mirror left-right with probability 1/2
    rotate: float = 0.0  # uniform angle in [-rotate, rotate] degrees
    scale: float = 0.0  # uniform zoom factor in [1 - scale, 1 + scale]

    def __post_init__(self) -> None:
        if self.crop < 0 or self.rotate < 0 or not 0 <= self.scale < 1:
            raise ValueError("augment: crop and rotate must be >= 0 and scale in [0, 1)")

    @property
    def active(self) -> bool:
        return bool(self.crop or self.flip or self.rotate or self.scale)

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if images.ndim != 4:
            raise ValueError(f"augmentation needs NCHW images, got shape {images.shape}")
        out = images
        if self.rotate or self.scale:
            out = affine(out, rng, self.rotate, self.scale)
        if self.crop:
            out = random_crop(out, rng, self.crop)
        if self.flip:
            mirror = rng.random(len(out)) < 0.5
            out = out.copy()
            out[mirror] = out[mirror, :, :, ::-1]
        return np.ascontiguousarray(out, dtype=images.dtype)


def random_crop(images: np.ndarray, rng: np.random.Generator, pad: int) -> np.ndarray:
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]  # [n, h]
    cols = dx[:, None] + np.arange(w)[None, :]  # [n, w]
    return padded[np.arange(n)[:, None, None, None], np.arange(images.shape[1])[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def affine(images: np.ndarray, rng: np.random.Generator, degrees: float, scale: float) -> np.ndarray:
    """Rotates and zooms each image about its centre; pixels from outside the image are 0."""
    n, c, h, w = images.shape
    angle = np.deg2rad(rng.uniform(-degrees, degrees, n))
    zoom = rng.uniform(1 - scale, 1 + scale, n)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    yy, xx = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
    cos, sin = np.cos(angle)[:, None, None] / zoom[:, None, None], np.sin(angle)[:, None, None] / zoom[:, None, None]
    # Inverse map: where in the source each output pixel comes from.
    src_x = cos * xx + sin * yy + cx
    src_y = -sin * xx + cos * yy + cy
    return bilinear(images, src_y, src_x)


def bilinear(images: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    n, c, h, w = images.shape
    y0, x0 = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy, fx = (y - y0)[:, None], (x - x0)[:, None]
    out = np.zeros(images.shape, dtype=np.float64)
    batch = np.arange(n)[:, None, None]
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            vals = images[batch, :, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]  # [n, h, w, c]
            vals = np.moveaxis(vals, -1, 1) * inside[:, None]
            out += vals * wy * wx
    return out.astype(images.dtype)


def rng_for(seed: int, epoch: int, batch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, batch, 0xA06])


__all__ = ["Augment", "random_crop", "affine", "rng_for"]
