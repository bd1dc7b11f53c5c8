"""Pooling, upsampling and padding of NCHW images (pad takes any rank), with their gradient ops.

Kernels: csrc/kernels/conv/pool_cpu.cpp and resize_cpu.cpp, whose headers document the int layouts.
max_pool2d stores no argmax indices: its gradient kernel reads x and rescans each window (first maximum
wins in both passes), which keeps the op single-output and saves an index tensor between the passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dims import concrete, dim_mul
from ..errors import ShapeError
from ..ir import TensorType
from .common import dtype_np, need_float, rand
from .conv import check_image, pair, positive_pair
from .registry import AttrSpec, OpDef, Pattern, Sample, register


@dataclass(frozen=True)
class PoolGeom:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise ShapeError(f"the {kh}x{kw} pooling window does not fit the padded {h + 2 * ph}x{w + 2 * pw} input")
        return ho, wo

    def ints(self) -> list[int]:
        return [*self.kernel, *self.stride, *self.pad]


def pool_geom(attrs: dict[str, Any]) -> PoolGeom:
    kernel = positive_pair(attrs["kernel_size"], "kernel_size")
    stride = kernel if attrs["stride"] is None else positive_pair(attrs["stride"], "stride")
    pad = pair(attrs["padding"], "padding")
    if min(pad) < 0:
        raise ShapeError(f"padding must not be negative, got {attrs['padding']!r}")
    # A window lying entirely in the padding would have no input to pool.
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ShapeError(f"padding {attrs['padding']!r} must be at most half of kernel_size {attrs['kernel_size']!r}")
    return PoolGeom(kernel, stride, pad)


def _pool_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    _, h, w = check_image(x)
    return [TensorType(x.dtype, (*x.shape[:2], *pool_geom(attrs).out_hw(h, w)))]


def _geom(kernel_size: Any, stride: Any, padding: Any) -> PoolGeom:
    return pool_geom({"kernel_size": kernel_size, "stride": stride, "padding": padding})


def _windows(x: np.ndarray, g: PoolGeom, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """Every pooling window as [N, C, Ho, Wo, kh*kw] (padding filled with `fill`), and a mask of real pixels."""
    (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.pad
    ho, wo = g.out_hw(x.shape[2], x.shape[3])
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    real = np.pad(np.ones(x.shape[2:]), ((ph, ph), (pw, pw)))
    wins, masks = [], []
    for i in range(kh):
        for j in range(kw):
            rows, cols = slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)
            wins.append(xp[:, :, rows, cols])
            masks.append(real[rows, cols])
    return np.stack(wins, -1), np.stack(masks, -1)


def max_pool2d_np(x: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: Any = 0) -> np.ndarray:
    wins, _ = _windows(x, _geom(kernel_size, stride, padding), -np.inf)
    return wins.max(-1).astype(x.dtype)


def max_pool2d_grad_np(x: np.ndarray, gy: np.ndarray, kernel_size: Any = 2, stride: Any = None,
                       padding: Any = 0) -> np.ndarray:
    """Each output's gradient goes to the first maximum of its window (row-major order)."""
    g = _geom(kernel_size, stride, padding)
    ho, wo = g.out_hw(x.shape[2], x.shape[3])
    gx = np.zeros(x.shape)
    for oh in range(ho):
        for ow in range(wo):
            h0, w0 = oh * g.stride[0] - g.pad[0], ow * g.stride[1] - g.pad[1]
            hs, ws = slice(max(h0, 0), h0 + g.kernel[0]), slice(max(w0, 0), w0 + g.kernel[1])
            win = x[:, :, hs, ws].reshape(x.shape[0], x.shape[1], -1)
            k = win.argmax(-1)
            width = min(w0 + g.kernel[1], x.shape[3]) - max(w0, 0)
            for n in range(x.shape[0]):
                for c in range(x.shape[1]):
                    gx[n, c, max(h0, 0) + k[n, c] // width, max(w0, 0) + k[n, c] % width] += gy[n, c, oh, ow]
    return gx.astype(x.dtype)


def avg_pool2d_np(x: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: Any = 0,
                  count_include_pad: bool = True) -> np.ndarray:
    wins, mask = _windows(x, _geom(kernel_size, stride, padding), 0.0)
    count = mask.shape[-1] if count_include_pad else mask.sum(-1)
    return (wins.sum(-1) / count).astype(x.dtype)


def avg_pool2d_grad_np(gy: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: Any = 0,
                       count_include_pad: bool = True, input_hw: Any = (1, 1)) -> np.ndarray:
    g = _geom(kernel_size, stride, padding)
    h, w = input_hw
    _, mask = _windows(np.zeros((1, 1, h, w)), g, 0.0)
    count = mask.shape[-1] if count_include_pad else mask.sum(-1)
    share = gy.astype(np.float64) / count
    (kh, kw), (sh, sw), (ph, pw) = g.kernel, g.stride, g.pad
    gx = np.zeros((*gy.shape[:2], h + 2 * ph, w + 2 * pw))
    for i in range(kh):
        for j in range(kw):
            gx[:, :, i:i + sh * (gy.shape[2] - 1) + 1:sh, j:j + sw * (gy.shape[3] - 1) + 1:sw] += share
    return gx[:, :, ph:ph + h, pw:pw + w].astype(gy.dtype)


_POOL_CASES = [((2, 3, 6, 6), {"kernel_size": 2}),
               ((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
               ((2, 2, 5, 6), {"kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 0]}),
               ((1, 3, 4, 4), {"kernel_size": 4})]


def _pool_samples(gen: Any, extra: list[tuple[tuple[int, ...], dict[str, Any]]]) -> Any:
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        return [Sample([gen(rng, s, dt)], dict(a)) for s, a in _POOL_CASES + extra]
    return samples


def _distinct(rng: np.random.Generator, shape: tuple[int, ...], dt: str) -> np.ndarray:
    """Values 0.05 apart, so finite differences never swap a window's maximum."""
    return ((rng.permutation(int(np.prod(shape))).reshape(shape) - np.prod(shape) / 2) * 0.05).astype(dtype_np(dt))


def _grad_samples(forward: Any, reference: Any, with_x: bool) -> Any:
    """Forward-only samples for a gradient op: a random incoming gradient for each forward sample."""
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        out = []
        for s in forward(rng, dt):
            x = s.inputs[0]
            gy = rand(rng, reference(x, **s.attrs).shape, dt)
            if with_x:
                out.append(Sample([x, gy], dict(s.attrs), grad=False))
            else:
                out.append(Sample([gy], {**s.attrs, "input_hw": tuple(x.shape[2:])}, grad=False))
        return out
    return samples


_max_samples = _pool_samples(_distinct, [])
_avg_samples = _pool_samples(rand, [((1, 2, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                    "count_include_pad": False})])

def _nchwc_rule(kind: str) -> Any:
    """max_pool2d / avg_pool2d on a blocked input (OpDef.nchwc): pool2d_nchwc."""
    def rule(b: Any, node: Any, inputs: list[int], block: int) -> int | None:
        if b.type_of(inputs[0]).rank != 5:
            return None
        return b.op1("pool2d_nchwc", inputs[0], kind=kind, **node.attr_dict)
    return rule


def _gap_nchwc(b: Any, node: Any, inputs: list[int], block: int) -> int | None:
    """global_avg_pool on a blocked input: pooled blocked, then the small [N, C, 1, 1] result reordered."""
    x = inputs[0]
    if b.type_of(x).rank != 5:
        return None
    out = b.type_of(node.outputs[0])
    pooled = b.op1("pool2d_nchwc", x, kind="global")
    return b.op1("reshape", b.op1("from_nchwc", pooled, channels=concrete(out.shape[1], "channels")), shape=out.shape)


_POOL_ATTRS = (AttrSpec("kernel_size", "any", doc="an int or [kh, kw]"),
               AttrSpec("stride", "any", None, doc="an int or [sh, sw]; none: the kernel size"),
               AttrSpec("padding", "any", 0, doc="an int or [ph, pw], at most half the kernel"))

register(OpDef("max_pool2d", ("x",), _POOL_ATTRS, infer=_pool_infer, pattern=Pattern.OPAQUE, kernel="max_pool2d",
               lower=lambda n, t: (pool_geom(n.attr_dict).ints(), []),
               grad=lambda b, n, gs: [b.op1("max_pool2d_grad", n.inputs[0], gs[0], **n.attr_dict)],
               reference=max_pool2d_np, samples=_max_samples, nchwc=_nchwc_rule("max"),
               doc="maximum over each window of an NCHW image (padding never wins)"))
register(OpDef("max_pool2d_grad", ("x", "gy"), _POOL_ATTRS, infer=lambda t, a: [t[0]], pattern=Pattern.OPAQUE,
               kernel="max_pool2d_grad", lower=lambda n, t: (pool_geom(n.attr_dict).ints(), []),
               differentiable=False, user=False, reference=max_pool2d_grad_np,
               samples=_grad_samples(_max_samples, max_pool2d_np, True)))

_AVG_ATTRS = (*_POOL_ATTRS, AttrSpec("count_include_pad", "bool", True, doc="divide by the full window size"))


def _avg_ints(node: Any) -> list[int]:
    return [*pool_geom(node.attr_dict).ints(), int(node.attr("count_include_pad"))]


def _avg_grad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    gy = types[0]
    need_float("", gy)
    h, w = positive_pair(attrs["input_hw"], "input_hw")
    if tuple(gy.shape[2:]) != pool_geom(attrs).out_hw(h, w):
        raise ShapeError(f"gradient {gy} does not match a {h}x{w} input")
    return [TensorType(gy.dtype, (*gy.shape[:2], h, w))]


register(OpDef("avg_pool2d", ("x",), _AVG_ATTRS, infer=_pool_infer, pattern=Pattern.OPAQUE, kernel="avg_pool2d",
               lower=lambda n, t: (_avg_ints(n), []),
               grad=lambda b, n, gs: [b.op1("avg_pool2d_grad", gs[0], input_hw=tuple(b.type_of(n.inputs[0]).shape[2:]),
                                            **n.attr_dict)],
               reference=avg_pool2d_np, samples=_avg_samples, nchwc=_nchwc_rule("avg"),
               doc="mean over each window of an NCHW image"))
register(OpDef("avg_pool2d_grad", ("gy",), (*_AVG_ATTRS, AttrSpec("input_hw", "ints")), infer=_avg_grad_infer,
               pattern=Pattern.OPAQUE, kernel="avg_pool2d_grad", lower=lambda n, t: (_avg_ints(n), []),
               differentiable=False, user=False, reference=avg_pool2d_grad_np,
               samples=_grad_samples(_avg_samples, avg_pool2d_np, False)))


# ---- global average pooling: the reduce kernel's mean over (H, W) ----

def _gap_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    need_float("", x)
    if x.rank != 4:
        raise ShapeError(f"the input must be an NCHW image batch of rank 4, got {x}")
    return [TensorType(x.dtype, x.shape[:2])]


def _gap_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    xt = b.type_of(node.inputs[0])
    area = concrete(xt.shape[2], "height") * concrete(xt.shape[3], "width")
    g = b.op1("broadcast_to", b.op1("reshape", gs[0], shape=(*xt.shape[:2], 1, 1)), shape=xt.shape)
    return [b.op1("mul_scalar", g, value=1.0 / area)]


register(OpDef("global_avg_pool", ("x",), infer=_gap_infer, pattern=Pattern.OPAQUE, kernel="reduce",
               lower=lambda n, t: ([1, 2, 2, 3], []),  # reduce kernel: kind mean, two axes: 2 and 3
               grad=_gap_grad, reference=lambda x: x.mean(axis=(2, 3)).astype(x.dtype), nchwc=_gap_nchwc,
               samples=lambda rng, dt: [Sample([rand(rng, (2, 3, 4, 5), dt)]), Sample([rand(rng, (1, 2, 1, 1), dt)])],
               doc="mean over the spatial axes: [N, C, H, W] -> [N, C]"))


# ---- upsample ----

_MODES = ("nearest", "bilinear")


def _scale(attrs: dict[str, Any]) -> tuple[int, int]:
    if attrs["mode"] == "nearest" and attrs["align_corners"]:
        raise ShapeError("align_corners only applies to mode=\"bilinear\"")
    return positive_pair(attrs["scale_factor"], "scale_factor")


def _upsample_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    need_float("", x)
    if x.rank != 4:
        raise ShapeError(f"the input must be an NCHW image batch of rank 4, got {x}")
    sh, sw = _scale(attrs)
    return [TensorType(x.dtype, (*x.shape[:2], dim_mul(x.shape[2], sh), dim_mul(x.shape[3], sw)))]


def _upsample_ints(node: Any) -> list[int]:
    return [_MODES.index(node.attr("mode")), int(node.attr("align_corners"))]


def _axis_weights(n_in: int, n_out: int, mode: str, align_corners: bool) -> np.ndarray:
    """[n_out, n_in] interpolation matrix along one axis (PyTorch's source-coordinate rules)."""
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        if mode == "nearest":
            m[o, min(o * n_in // n_out, n_in - 1)] = 1
            continue
        if align_corners:
            src = o * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        lo = min(int(np.floor(src)), n_in - 1)
        frac = src - lo
        m[o, lo] += 1 - frac
        m[o, min(lo + 1, n_in - 1)] += frac
    return m


def upsample_np(x: np.ndarray, scale_factor: Any = 2, mode: str = "nearest", align_corners: bool = False) -> np.ndarray:
    sh, sw = pair(scale_factor, "scale_factor")
    mh = _axis_weights(x.shape[2], x.shape[2] * sh, mode, align_corners)
    mw = _axis_weights(x.shape[3], x.shape[3] * sw, mode, align_corners)
    return np.einsum("ph,nchw,qw->ncpq", mh, x.astype(np.float64), mw).astype(x.dtype)


def upsample_grad_np(gy: np.ndarray, scale_factor: Any = 2, mode: str = "nearest", align_corners: bool = False,
                     input_hw: Any = (1, 1)) -> np.ndarray:
    mh = _axis_weights(input_hw[0], gy.shape[2], mode, align_corners)
    mw = _axis_weights(input_hw[1], gy.shape[3], mode, align_corners)
    return np.einsum("ph,ncpq,qw->nchw", mh, gy.astype(np.float64), mw).astype(gy.dtype)


def _upsample_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    r = lambda *s: rand(rng, s, dt)  # noqa: E731
    return [Sample([r(2, 2, 3, 4)], {}), Sample([r(1, 2, 3, 3)], {"scale_factor": [2, 3]}),
            Sample([r(2, 2, 3, 4)], {"mode": "bilinear"}),
            Sample([r(1, 3, 4, 3)], {"mode": "bilinear", "scale_factor": 3, "align_corners": True}),
            Sample([r(1, 1, 1, 2)], {"mode": "bilinear", "align_corners": True})]


_UP_ATTRS = (AttrSpec("scale_factor", "any", 2, doc="an integer or [sh, sw]"),
             AttrSpec("mode", "str", "nearest", _MODES), AttrSpec("align_corners", "bool", False))


def _upsample_grad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    gy = types[0]
    h, w = positive_pair(attrs["input_hw"], "input_hw")
    sh, sw = _scale(attrs)
    if tuple(gy.shape[2:]) != (h * sh, w * sw):
        raise ShapeError(f"gradient {gy} does not match a {h}x{w} input")
    return [TensorType(gy.dtype, (*gy.shape[:2], h, w))]


def _upsample_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    xt = b.type_of(node.inputs[0])
    hw = (concrete(xt.shape[2], "height"), concrete(xt.shape[3], "width"))
    return [b.op1("upsample_grad", gs[0], input_hw=hw, **node.attr_dict)]


register(OpDef("upsample", ("x",), _UP_ATTRS, infer=_upsample_infer, pattern=Pattern.OPAQUE, kernel="upsample",
               lower=lambda n, t: (_upsample_ints(n), []), grad=_upsample_grad, reference=upsample_np,
               samples=_upsample_samples, doc="scales the spatial axes of NCHW images by integer factors"))
register(OpDef("upsample_grad", ("gy",), (*_UP_ATTRS, AttrSpec("input_hw", "ints")), infer=_upsample_grad_infer,
               pattern=Pattern.OPAQUE, kernel="upsample_grad", lower=lambda n, t: (_upsample_ints(n), []),
               differentiable=False, user=False, reference=upsample_grad_np,
               samples=_grad_samples(_upsample_samples, upsample_np, False)))


# ---- pad ----

def full_pads(pads: tuple[int, ...], rank: int) -> list[tuple[int, int]]:
    """(before, after) for every axis: the k pairs given apply to the last k axes, in order, so
    [top, bottom, left, right] pads the height and width of an NCHW tensor."""
    if len(pads) % 2 or len(pads) > 2 * rank:
        raise ShapeError(f"pads must hold (before, after) pairs for at most {rank} axes, got {list(pads)}")
    given = [(pads[i], pads[i + 1]) for i in range(0, len(pads), 2)]
    return [(0, 0)] * (rank - len(given)) + given


def _pad_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    need_float("", x)
    shape = []
    for axis, (d, (lo, hi)) in enumerate(zip(x.shape, full_pads(attrs["pads"], x.rank))):
        if lo == hi == 0:
            shape.append(d)
            continue
        n = concrete(d, f"padding axis {axis}") + lo + hi
        if n < 0:
            raise ShapeError(f"axis {axis} of {x} would have negative size {n}")
        shape.append(n)
    return [TensorType(x.dtype, tuple(shape))]


def _pad_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    rank = types[0].rank
    return [rank, *[p for pr in full_pads(node.attr("pads"), rank) for p in pr]], [node.attr("value")]


def _pad_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    # Negative amounts crop: the gradient is the interior of gy.
    return [b.op1("pad", gs[0], pads=tuple(-p for p in node.attr("pads")), value=0.0)]


def pad_np(x: np.ndarray, pads: Any = (), value: float = 0.0) -> np.ndarray:
    pairs = full_pads(tuple(pads), x.ndim)
    grown = np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in pairs], constant_values=value)
    return grown[tuple(slice(max(-lo, 0), grown.shape[a] - max(-hi, 0)) for a, (lo, hi) in enumerate(pairs))]


def _pad_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (2, 2, 3, 4), dt)], {"pads": [1, 2, 0, 1]}),
            Sample([rand(rng, (2, 3, 4), dt)], {"pads": [1, 0, 0, 2, 3, 1], "value": 0.5}),
            Sample([rand(rng, (5,), dt)], {"pads": [2, 1]}),
            Sample([rand(rng, (1, 2, 5, 6), dt)], {"pads": [-1, 1, 2, -2]})]


register(OpDef("pad", ("x",), (AttrSpec("pads", "ints", doc="(before, after) pairs for the last axes; "
                                                          "[top, bottom, left, right] for NCHW images; negative crops"),
                               AttrSpec("value", "float", 0.0)),
               infer=_pad_infer, pattern=Pattern.OPAQUE, kernel="pad", lower=_pad_lower, grad=_pad_grad,
               reference=pad_np, samples=_pad_samples, doc="pads (or, with negative amounts, crops) with a constant"))
