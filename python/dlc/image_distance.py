"""Distances between small grey-level images, for building neighbour graphs (`dlc.data.digits_graph`).

`tangent_distance` is Simard, LeCun and Denker's one-sided tangent distance: the distance from one image to
the plane that small translations, rotation, scaling, the two shears and a change of stroke thickness of the
other image sweep out to first order. Two drawings of one digit that differ by such a transformation are close
under it, while their pixels can be far apart in Euclidean distance.
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = ("x-shift", "y-shift", "rotation", "scaling", "axis-shear", "diagonal-shear", "thickness")


def squared_euclidean(flat: np.ndarray) -> np.ndarray:
    """Every pair's squared Euclidean distance, [n, n], for rows `flat` [n, pixels]."""
    sq = (flat * flat).sum(1)
    return sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of [n, h, w] images, zero outside; the kernel reaches 4 sigma and sums to 1."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = images
    for axis in (1, 2):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(3)])
        size = out.shape[axis]
        out = sum(t * np.take(padded, np.arange(i, i + size), axis=axis) for i, t in enumerate(taps))
    return out


def tangent_vectors(images: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The blurred images [n, h*w] and an orthonormal basis [n, h*w, 7] of each one's tangent plane. The
    tangents are the first-order changes of the blurred image under TRANSFORMS, from its pixel gradients
    (blurring first makes the gradients, and so the tangents, meaningful on a coarse grid)."""
    n, h, w = images.shape
    smooth = blur(images, sigma)
    gy, gx = np.gradient(smooth, axis=(1, 2))
    yc, xc = np.mgrid[:h, :w] - np.array([(h - 1) / 2, (w - 1) / 2])[:, None, None]
    tangents = [gx, gy, yc * gx - xc * gy, xc * gx + yc * gy, xc * gx - yc * gy, yc * gx + xc * gy,
                gx * gx + gy * gy]
    basis = np.linalg.qr(np.stack([t.reshape(n, h * w) for t in tangents], 2))[0]
    return smooth.reshape(n, h * w), basis


def tangent_distance(images: np.ndarray, sigma: float = 0.6, chunk: int = 256) -> np.ndarray:
    """Symmetric tangent distance between every pair of [n, h, w] images, [n, n]: for images a and b, the
    smaller of the squared distance from b to a's tangent plane and from a to b's, both between the blurred
    images. Rows are done `chunk` at a time, so memory stays at chunk * n * 7 numbers."""
    flat, basis = tangent_vectors(images.astype(np.float64), sigma)
    dist = squared_euclidean(flat)
    own = np.einsum("npt,np->nt", basis, flat)  # each image's coordinates in its own tangent basis
    for start in range(0, len(flat), chunk):
        rows = slice(start, start + chunk)
        others = np.einsum("cpt,mp->cmt", basis[rows], flat)
        dist[rows] -= ((own[rows, None, :] - others) ** 2).sum(-1)
    return np.minimum(dist, dist.T)
