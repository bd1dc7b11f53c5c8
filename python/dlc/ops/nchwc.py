"""The blocked channel layout ("NCHWc"): internal ops the layout pass (passes/layout.py) puts in conv chains.

A blocked tensor is an ordinary 5-D tensor [N, ceil(C/B), H, W, B]: B channels of one pixel side by side (16 on
AVX-512, 8 on AVX2), the last block's lanes past C padded. Because it is an ordinary tensor, the memory planner,
fusion and the elementwise kernel handle it unchanged: a per-channel operand [C, 1, 1] becomes [Cb, 1, 1, B]
and broadcasts as before. Kernels: csrc/kernels/conv/conv_nchwc_cpu.cpp and pool_nchwc_cpu.cpp.

None of these ops is user-visible or differentiable: the pass runs on inference plans only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dims import concrete
from ..errors import ShapeError
from ..ir import TensorType
from .common import need_float, rand
from .conv import _conv_samples, _GEOM_ATTRS, check_groups, conv2d_np, make_geom
from .pool import avg_pool2d_np, max_pool2d_np, pool_geom
from .registry import AttrSpec, OpDef, Pattern, Sample, register


def blocks(channels: int, block: int) -> int:
    return -(-channels // block)


def to_nchwc_np(x: np.ndarray, block: int = 16) -> np.ndarray:
    """[..., C, H, W] -> [..., ceil(C/B), H, W, B], lanes past C zero."""
    *lead, c, h, w = x.shape
    cb = blocks(c, block)
    padded = np.zeros((*lead, cb * block, h, w), dtype=x.dtype)
    padded[..., :c, :, :] = x
    return np.ascontiguousarray(np.moveaxis(padded.reshape(*lead, cb, block, h, w), -3, -1))


def from_nchwc_np(x: np.ndarray, channels: int = 1) -> np.ndarray:
    """[..., Cb, H, W, B] -> [..., channels, H, W]."""
    *lead, cb, h, w, b = x.shape
    plain = np.moveaxis(x, -1, -3).reshape(*lead, cb * b, h, w)
    return np.ascontiguousarray(plain[..., :channels, :, :])


def _image(t: TensorType, what: str) -> tuple[int, int, int]:
    """(C or Cb, H, W) of a [..., C, H, W] tensor."""
    need_float("", t)
    if t.rank < 3:
        raise ShapeError(f"the {what} needs channel, height and width axes, got {t}")
    return (concrete(t.shape[-3], "channels"), concrete(t.shape[-2], "height"), concrete(t.shape[-1], "width"))


def _block(attrs: dict[str, Any]) -> int:
    if attrs["block"] not in (8, 16):
        raise ShapeError(f"block must be 8 or 16, got {attrs['block']}")
    return int(attrs["block"])


def _to_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    c, h, w = _image(x, "input")
    b = _block(attrs)
    return [TensorType(x.dtype, (*x.shape[:-3], blocks(c, b), h, w, b))]


def _from_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    if x.rank < 4:
        raise ShapeError(f"a blocked tensor has rank >= 4 [..., Cb, H, W, B], got {x}")
    cb, b = concrete(x.shape[-4], "channel blocks"), concrete(x.shape[-1], "block")
    c = attrs["channels"]
    if not (cb - 1) * b < c <= cb * b:
        raise ShapeError(f"{c} channels do not fill {cb} blocks of {b}")
    return [TensorType(x.dtype, (*x.shape[:-4], c, *x.shape[-3:-1]))]


def _reorder_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([rand(rng, (2, 5, 3, 4), dt)], {"block": 8}, grad=False),
            Sample([rand(rng, (1, 16, 2, 2), dt)], {"block": 16}, grad=False),
            Sample([rand(rng, (3, 1, 1), dt)], {"block": 16}, grad=False)]


def _from_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    return [Sample([to_nchwc_np(rand(rng, (2, 5, 3, 4), dt), 8)], {"channels": 5}, grad=False),
            Sample([to_nchwc_np(rand(rng, (1, 17, 2, 3), dt), 16)], {"channels": 17}, grad=False)]


register(OpDef("to_nchwc", ("x",), (AttrSpec("block", "int"),), infer=_to_infer, kernel="nchwc_reorder",
               lower=lambda n, t: ([], []), differentiable=False, user=False, reference=to_nchwc_np,
               samples=_reorder_samples, doc="reorders [..., C, H, W] into blocks of channels [..., Cb, H, W, B]"))
register(OpDef("from_nchwc", ("x",), (AttrSpec("channels", "int"),), infer=_from_infer, kernel="nchwc_reorder",
               lower=lambda n, t: ([], []), differentiable=False, user=False, reference=from_nchwc_np,
               samples=_from_samples, doc="reorders blocked [..., Cb, H, W, B] back to [..., C, H, W]"))


# ---- convolution ----

def _conv_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types
    b = _block(attrs)
    if x.dtype != w.dtype:
        raise ShapeError(f"the input {x} and weight {w} differ in dtype")
    if w.rank != 4:
        raise ShapeError(f"the weight must have rank 4 [out, in/groups, kh, kw], got {w}")
    groups, out = attrs["groups"], concrete(w.shape[0], "filter count")
    channels = concrete(w.shape[1], "weight input channels") * groups
    if x.rank == 5:
        cb, h, wd = concrete(x.shape[1], "channel blocks"), concrete(x.shape[2], "height"), concrete(x.shape[3], "width")
        if x.shape[4] != b or cb != blocks(channels, b):
            raise ShapeError(f"the blocked input {x} does not hold {channels} channels in blocks of {b}")
    elif x.rank == 4:
        c, h, wd = _image(x, "input")
        if c != channels:
            raise ShapeError(f"the weight {w} in {groups} group(s) expects {channels} input channels, got {x}")
    else:
        raise ShapeError(f"the input must be [N, C, H, W] or blocked [N, Cb, H, W, B], got {x}")
    check_groups(channels, out, groups)
    if not supported_groups(channels, out, groups, b, x.rank == 5):
        raise ShapeError(f"groups={groups} with {channels} input and {out} output channels: the blocked kernels take "
                         f"groups=1, a depthwise convolution of a blocked input, or groups whose filters fill whole "
                         f"blocks of {b}")
    g = make_geom(attrs, (concrete(w.shape[2], "kernel height"), concrete(w.shape[3], "kernel width")), (h, wd))
    return [TensorType(x.dtype, (x.shape[0], blocks(out, b), *g.out_hw(h, wd), b))]


def _conv_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    x, w = types
    hw = (int(x.shape[2]), int(x.shape[3]))
    return make_geom(node.attr_dict, (int(w.shape[2]), int(w.shape[3])), hw).ints(), []


def supported_groups(channels: int, filters: int, groups: int, block: int, blocked_input: bool) -> bool:
    """The groupings the blocked kernels run: every lane of an output block then reads only its own group's input
    channels (a NaN in one group never reaches another's outputs)."""
    depthwise = groups == channels == filters
    return groups == 1 or (depthwise and blocked_input) or (filters // groups) % block == 0


def conv2d_nchwc_np(x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                    groups: int = 1, block: int = 16) -> np.ndarray:
    """The NCHW convolution, blocked. Lanes past the filters hold what the kernel computes there: zero filters times
    the inputs it reads (all input channels, or a depthwise lane's own padding lane), so a NaN shows there too."""
    channels, filters, (kh, kw) = w.shape[1] * groups, w.shape[0], w.shape[2:]
    plain = from_nchwc_np(x, channels) if x.ndim == 5 else x
    y = to_nchwc_np(conv2d_np(plain, w, stride, padding, dilation, groups), block)
    spare = y.shape[1] * block - filters
    if spare:
        geom = {"stride": stride, "padding": padding, "dilation": dilation}
        if groups == channels == filters:
            lanes = from_nchwc_np(x, x.shape[1] * block)[:, channels:]
            zero = conv2d_np(lanes, np.ones((spare, 1, kh, kw), x.dtype), groups=spare, **geom) * 0
        else:
            zero = conv2d_np(plain, np.ones((1, channels, kh, kw), x.dtype), **geom) * 0
        y[:, -1, :, :, block - spare:] = np.moveaxis(np.broadcast_to(zero, (y.shape[0], spare, *y.shape[2:4])), 1, -1)
    return y


def _conv_nchwc_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    out = []
    for k, s in enumerate(_conv_samples(rng, dt)):
        block = (8, 16)[k % 2]
        x, w = s.inputs
        if not supported_groups(x.shape[1], w.shape[0], s.attrs.get("groups", 1), block, True):
            continue
        out.append(Sample([to_nchwc_np(x, block), w], {**s.attrs, "block": block}, grad=False))
    r = lambda *s: rand(rng, s, dt)  # noqa: E731
    out.append(Sample([r(2, 3, 7, 6), r(20, 3, 3, 3)], {"padding": 1, "stride": 2, "block": 16}, grad=False))
    out.append(Sample([to_nchwc_np(r(1, 16, 5, 5), 8), r(16, 8, 3, 3)], {"padding": 1, "groups": 2, "block": 8},
                      grad=False))
    return out


register(OpDef("conv2d_nchwc", ("x", "weight"), (*_GEOM_ATTRS, AttrSpec("block", "int")), infer=_conv_infer,
               pattern=Pattern.OUT_ELEMENTWISE_FUSABLE, kernel="conv2d_nchwc", lower=_conv_lower,
               differentiable=False, user=False, reference=conv2d_nchwc_np, samples=_conv_nchwc_samples,
               doc="2-D convolution with a blocked output [N, Ob, Ho, Wo, B], from a blocked or NCHW input"))


# ---- pooling ----

_KINDS = ("max", "avg", "global")


def _pool_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x = types[0]
    need_float("", x)
    if x.rank != 5:
        raise ShapeError(f"the input must be blocked [N, Cb, H, W, B], got {x}")
    if attrs["kind"] not in _KINDS:
        raise ShapeError(f"kind must be one of {', '.join(_KINDS)}, got {attrs['kind']!r}")
    h, w = concrete(x.shape[2], "height"), concrete(x.shape[3], "width")
    ho, wo = (1, 1) if attrs["kind"] == "global" else pool_geom(attrs).out_hw(h, w)
    return [TensorType(x.dtype, (x.shape[0], x.shape[1], ho, wo, x.shape[4]))]


def _pool_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    kind = _KINDS.index(node.attr("kind"))
    if kind == 2:
        return [2, 1, 1, 1, 1, 0, 0, 1], []
    return [kind, *pool_geom(node.attr_dict).ints(), int(node.attr("count_include_pad"))], []


def pool2d_nchwc_np(x: np.ndarray, kind: str = "max", kernel_size: Any = 1, stride: Any = None, padding: Any = 0,
                    count_include_pad: bool = True) -> np.ndarray:
    plain = from_nchwc_np(x, x.shape[1] * x.shape[4])
    if kind == "global":
        y = plain.mean(axis=(2, 3), keepdims=True).astype(x.dtype)
    elif kind == "max":
        y = max_pool2d_np(plain, kernel_size, stride, padding)
    else:
        y = avg_pool2d_np(plain, kernel_size, stride, padding, count_include_pad)
    return to_nchwc_np(y, x.shape[4])


def _pool_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    def blocked(c: int, h: int, w: int, b: int) -> np.ndarray:
        return to_nchwc_np(rand(rng, (2, c, h, w), dt), b)
    return [Sample([blocked(5, 6, 6, 8)], {"kind": "max", "kernel_size": 2}, grad=False),
            Sample([blocked(17, 7, 5, 16)], {"kind": "max", "kernel_size": 3, "stride": 2, "padding": 1}, grad=False),
            Sample([blocked(3, 7, 5, 8)], {"kind": "avg", "kernel_size": 3, "stride": 2, "padding": 1,
                                           "count_include_pad": False}, grad=False),
            Sample([blocked(9, 5, 6, 8)], {"kind": "avg", "kernel_size": [2, 3], "stride": [1, 2]}, grad=False),
            Sample([blocked(20, 4, 3, 16)], {"kind": "global"}, grad=False)]


register(OpDef("pool2d_nchwc", ("x",),
               (AttrSpec("kind", "str"), AttrSpec("kernel_size", "any", 1), AttrSpec("stride", "any", None),
                AttrSpec("padding", "any", 0), AttrSpec("count_include_pad", "bool", True)),
               infer=_pool_infer, kernel="pool2d_nchwc", lower=_pool_lower, differentiable=False, user=False,
               reference=pool2d_nchwc_np, samples=_pool_samples,
               doc="max, average or global average pooling of a blocked [N, Cb, H, W, B] tensor"))



def blocked_values(graph: Any) -> dict[int, int]:
    """The values of a graph in the blocked layout, with their block size: the outputs of to_nchwc, conv2d_nchwc and
    pool2d_nchwc, and of elementwise ops reading one (what the plan summaries and drawings mark)."""
    from .registry import get
    out: dict[int, int] = {}
    for node in graph.nodes:
        if node.op in ("to_nchwc", "conv2d_nchwc"):
            block = node.attr("block")
        elif node.op == "pool2d_nchwc":
            block = out.get(node.inputs[0])
        elif get(node.op).elementwise:
            block = next((out[v] for v in node.inputs if v in out), None)
        else:
            block = None
        if block:
            out.update((v, block) for v in node.outputs)
    return out
