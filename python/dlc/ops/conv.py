"""2-D convolution (NCHW): the conv2d / conv_transpose2d layers, their primitives and gradient ops.

Weights use PyTorch's layouts: conv [out, in/groups, kh, kw], transposed conv [in, out/groups, kh, kw].
A transposed convolution's forward pass is a convolution's data gradient and vice versa, so three kernels
(csrc/kernels/conv/conv_cpu.cpp) serve both ops. Padding is stored as (top, bottom, left, right), which also
covers the asymmetric padding of "same" with even kernels; the kernels only need top/left (the output shape
implies the rest). The references are direct sums over kernel taps (no im2col), so tests stay independent of
the implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..dims import concrete
from ..errors import ShapeError
from ..int8 import step_ints
from ..ir import TensorType
from .common import need_float, rand, same_dtype
from .nn import ACTIVATIONS, LayerContext
from .registry import AttrSpec, OpDef, Pattern, ReducedPrecision, Sample, register

Pads = tuple[int, int, int, int]  # top, bottom, left, right


def pair(value: Any, what: str) -> tuple[int, int]:
    """An int or a 1- or 2-element list as (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) in (1, 2) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])
    raise ShapeError(f"{what} must be an integer or a list [height, width], got {value!r}")


def positive_pair(value: Any, what: str) -> tuple[int, int]:
    p = pair(value, what)
    if min(p) < 1:
        raise ShapeError(f"{what} must be positive, got {value!r}")
    return p


def resolve_padding(padding: Any, size: tuple[int, int], extent: tuple[int, int],
                    stride: tuple[int, int]) -> Pads:
    """padding as int, [ph, pw], [top, bottom, left, right], "valid" or "same" (output = ceil(input / stride),
    the odd pixel going to the bottom/right as in TensorFlow) -> (top, bottom, left, right)."""
    if padding == "valid":
        return 0, 0, 0, 0
    if padding == "same":
        pads: list[int] = []
        for n, e, s in zip(size, extent, stride):
            total = max((-(-n // s) - 1) * s + e - n, 0)
            pads += [total // 2, total - total // 2]
        return pads[0], pads[1], pads[2], pads[3]
    if isinstance(padding, (list, tuple)) and len(padding) == 4 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in padding):
        out = tuple(padding)
    elif isinstance(padding, str):
        raise ShapeError(f"padding must be a number, a list, \"same\" or \"valid\", got {padding!r}")
    else:
        ph, pw = pair(padding, "padding")
        out = (ph, ph, pw, pw)
    if min(out) < 0:
        raise ShapeError(f"padding must not be negative, got {padding!r}")
    return out[0], out[1], out[2], out[3]


@dataclass(frozen=True)
class ConvGeom:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: Pads
    groups: int

    @property
    def extent(self) -> tuple[int, int]:
        """Height and width of the dilated kernel window."""
        return tuple(d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel))  # type: ignore[return-value]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        t, b, l, r = self.pads
        eh, ew = self.extent
        ho, wo = (h + t + b - eh) // self.stride[0] + 1, (w + l + r - ew) // self.stride[1] + 1
        if ho < 1 or wo < 1:
            raise ShapeError(f"the {eh}x{ew} kernel window (dilation included) does not fit the padded "
                             f"{h + t + b}x{w + l + r} input")
        return ho, wo

    def ints(self) -> list[int]:
        """The kernels' layout: [sh, sw, pad_top, pad_left, dh, dw, groups]."""
        return [*self.stride, self.pads[0], self.pads[2], *self.dilation, self.groups]

    def attrs(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.pads, "dilation": self.dilation, "groups": self.groups}


def make_geom(attrs: dict[str, Any], kernel: tuple[int, int], size: tuple[int, int]) -> ConvGeom:
    stride = positive_pair(attrs["stride"], "stride")
    dilation = positive_pair(attrs["dilation"], "dilation")
    if attrs["groups"] < 1:
        raise ShapeError(f"groups must be positive, got {attrs['groups']}")
    extent = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    return ConvGeom(kernel, stride, dilation, resolve_padding(attrs["padding"], size, extent, stride),
                    attrs["groups"])


def check_image(t: TensorType, what: str = "input") -> tuple[int, int, int]:
    """Channels, height and width of an NCHW tensor (the batch may stay symbolic)."""
    need_float("", t)
    if t.rank != 4:
        raise ShapeError(f"the {what} must be an NCHW image batch of rank 4, got {t}")
    return (concrete(t.shape[1], f"the {what}'s channel count"), concrete(t.shape[2], f"the {what}'s height"),
            concrete(t.shape[3], f"the {what}'s width"))


def check_groups(channels: int, outputs: int, groups: int, out_word: str = "filters") -> None:
    if groups < 1:
        raise ShapeError(f"groups must be positive, got {groups}")
    if channels % groups:
        raise ShapeError(f"input has {channels} channels but groups={groups} does not divide it")
    if outputs % groups:
        raise ShapeError(f"{out_word}={outputs} is not divisible by groups={groups}")


def _kernel_of(w: TensorType) -> tuple[int, int]:
    if w.rank != 4:
        raise ShapeError(f"the weight must have rank 4 [out, in/groups, kh, kw], got {w}")
    return concrete(w.shape[2], "kernel height"), concrete(w.shape[3], "kernel width")


# ---- conv2d_core ----

def _conv_geom(x: TensorType, w: TensorType, attrs: dict[str, Any]) -> ConvGeom:
    _, h, wd = check_image(x)
    return make_geom(attrs, _kernel_of(w), (h, wd))


def _conv_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types
    dtype = same_dtype("", types)
    c, h, wd = check_image(x)
    g = _conv_geom(x, w, attrs)
    out = concrete(w.shape[0], "filter count")
    check_groups(c, out, g.groups)
    if w.shape[1] != c // g.groups:
        raise ShapeError(f"the weight {w} expects {w.shape[1]} input channels per group, but the input has "
                         f"{c} channels in {g.groups} group(s) ({c // g.groups} each)")
    return [TensorType(dtype, (x.shape[0], out, *g.out_hw(h, wd)))]


def _conv_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x, w = node.inputs
    xt, wt = b.type_of(x), b.type_of(w)
    g = _conv_geom(xt, wt, node.attr_dict)
    gx = b.op1("conv2d_grad_input", gs[0], w, input_hw=tuple(xt.shape[2:]), **g.attrs())
    gw = b.op1("conv2d_grad_weight", x, gs[0], kernel_size=g.kernel, **g.attrs())
    return [gx, gw]


def _padded(x: np.ndarray, pads: Pads) -> np.ndarray:
    t, b, l, r = pads
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (t, b), (l, r)))


def _taps(g: ConvGeom, out_hw: tuple[int, int]) -> Any:
    """(i, j, rows, cols): the padded-input window each kernel tap reads over all outputs."""
    (sh, sw), (dh, dw) = g.stride, g.dilation
    for i in range(g.kernel[0]):
        for j in range(g.kernel[1]):
            yield i, j, slice(i * dh, i * dh + sh * (out_hw[0] - 1) + 1, sh), \
                slice(j * dw, j * dw + sw * (out_hw[1] - 1) + 1, sw)


def _ref_geom(size: tuple[int, int], kernel: tuple[int, int], stride: Any, padding: Any, dilation: Any,
              groups: int) -> ConvGeom:
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return make_geom(attrs, (int(kernel[0]), int(kernel[1])), (int(size[0]), int(size[1])))


def conv2d_np(x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
              groups: int = 1) -> np.ndarray:
    """y[n, o, p, q] = sum_{c, i, j} x_pad[n, c, p*sh + i*dh, q*sw + j*dw] * w[o, c, i, j], per group."""
    g = _ref_geom(x.shape[2:], w.shape[2:], stride, padding, dilation, groups)
    ho, wo = g.out_hw(x.shape[2], x.shape[3])
    xp = _padded(x, g.pads)
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    y = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for k in range(groups):
        xs, os_ = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
        for i, j, rows, cols in _taps(g, (ho, wo)):
            y[:, os_] += np.einsum("nchw,oc->nohw", xp[:, xs, rows, cols], w[os_, :, i, j].astype(np.float64))
    return y.astype(x.dtype)


def _scatter_taps(gy: np.ndarray, w: np.ndarray, g: ConvGeom, hw: tuple[int, int]) -> np.ndarray:
    """The adjoint of conv2d_np in x: every output value spread back over the inputs it read."""
    t, b, l, r = g.pads
    og, cg = w.shape[0] // g.groups, w.shape[1]
    xp = np.zeros((gy.shape[0], cg * g.groups, hw[0] + t + b, hw[1] + l + r))
    for k in range(g.groups):
        xs, os_ = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
        for i, j, rows, cols in _taps(g, gy.shape[2:]):
            xp[:, xs, rows, cols] += np.einsum("nohw,oc->nchw", gy[:, os_].astype(np.float64),
                                               w[os_, :, i, j].astype(np.float64))
    return xp[:, :, t:t + hw[0], l:l + hw[1]]


def conv2d_grad_input_np(gy: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                         groups: int = 1, input_hw: Any = (1, 1)) -> np.ndarray:
    g = _ref_geom(input_hw, w.shape[2:], stride, padding, dilation, groups)
    return _scatter_taps(gy, w, g, tuple(input_hw)).astype(gy.dtype)


def conv2d_grad_weight_np(x: np.ndarray, gy: np.ndarray, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          groups: int = 1, kernel_size: Any = (1, 1)) -> np.ndarray:
    g = _ref_geom(x.shape[2:], kernel_size, stride, padding, dilation, groups)
    xp = _padded(x, g.pads)
    cg, og = x.shape[1] // groups, gy.shape[1] // groups
    gw = np.zeros((gy.shape[1], cg, *g.kernel))
    for k in range(groups):
        xs, os_ = slice(k * cg, (k + 1) * cg), slice(k * og, (k + 1) * og)
        for i, j, rows, cols in _taps(g, gy.shape[2:]):
            gw[os_, :, i, j] = np.einsum("nohw,nchw->oc", gy[:, os_].astype(np.float64), xp[:, xs, rows, cols])
    return gw.astype(x.dtype)


def _conv_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    r = lambda *s: rand(rng, s, dt)  # noqa: E731
    return [
        Sample([r(2, 2, 5, 5), r(3, 2, 3, 3)]),
        Sample([r(1, 3, 6, 5), r(2, 3, 3, 3)], {"stride": 2, "padding": 1}),
        Sample([r(1, 2, 6, 7), r(2, 2, 3, 2)], {"padding": [1, 2], "dilation": 2}),
        Sample([r(1, 4, 5, 5), r(4, 2, 3, 3)], {"groups": 2, "padding": 1, "stride": [1, 2]}),
        Sample([r(2, 3, 4, 4), r(3, 1, 3, 3)], {"groups": 3, "padding": 1}),  # depthwise
        Sample([r(1, 3, 5, 5), r(6, 1, 3, 3)], {"groups": 3, "stride": 2}),  # depthwise, multiplier 2
        Sample([r(2, 4, 3, 3), r(3, 4, 1, 1)]),  # pointwise: a plain GEMM
        Sample([r(1, 4, 5, 5), r(3, 4, 1, 1)], {"stride": 2}),
        Sample([r(1, 2, 5, 6), r(2, 2, 4, 4)], {"padding": "same"}),  # asymmetric padding
        Sample([r(1, 2, 7, 7), r(2, 2, 3, 3)], {"padding": "same", "stride": 2}),
        Sample([r(1, 2, 5, 5), r(2, 2, 2, 3)], {"padding": [0, 1, 2, 0], "dilation": [2, 1]}),
        Sample([r(1, 1, 4, 4), r(2, 1, 4, 4)]),  # one output pixel
    ]


def _nchwc_rule(b: Any, node: Any, inputs: list[int], block: int) -> int | None:
    """conv2d_core on the blocked layout (OpDef.nchwc): conv2d_nchwc, when the filters fill at least half of
    their blocks' lanes, the grouping is one the blocked kernels take and no faster NCHW kernel runs it. It reads an NCHW input directly (a first layer, or a producer that runs NCHW), except
    in a depthwise convolution, which loads whole blocks of input channels."""
    x, w = inputs
    xt, wt = b.type_of(x), b.type_of(w)
    filters = concrete(wt.shape[0], "filter count")
    if (xt.dtype not in ("f32", "f64") or 2 * filters < -(-filters // block) * block
            or node.attr("precision", "f32") != "f32"):  # reduced precision runs its own NCHW kernels
        return None
    groups = node.attr("groups")
    channels = concrete(wt.shape[1], "weight input channels") * groups
    depthwise = groups == channels == filters
    if groups != 1 and not depthwise and (filters // groups) % block:
        return None  # an output block would span groups (ops/nchwc.py supported_groups)
    taps = concrete(wt.shape[2], "kernel height") * concrete(wt.shape[3], "kernel width")
    direct = block == 16 and xt.dtype == "f32" and 1 < taps <= 64 and channels * taps <= 1152
    if groups == 1 and xt.rank == 4 and (direct or taps == 1):
        # NCHW kernels at least as fast take these unless the input is already blocked: AVX-512's direct kernel
        # (conv_direct.h; 0.65x the blocked kernel's time on resnet8's 3x3 layers) and a 1x1 convolution's GEMM.
        return None
    if xt.rank == 4 and depthwise:
        x = b.op1("to_nchwc", x, block=block)
    return b.op1("conv2d_nchwc", x, w, **node.attr_dict, block=block)


_GEOM_ATTRS = (AttrSpec("stride", "any", 1, doc="an int or [sh, sw]"),
               AttrSpec("padding", "any", 0, doc="int, [ph, pw], [top, bottom, left, right], \"same\" or \"valid\""),
               AttrSpec("dilation", "any", 1, doc="an int or [dh, dw]"),
               AttrSpec("groups", "int", 1))

def _conv_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    """The geometry's ints, and for int8 the activation quantization's [zero point, scale bits] (dlc/int8.py)."""
    ints = _conv_geom(types[0], types[1], node.attr_dict).ints()
    if node.attr("precision") == "int8":
        ints += step_ints(node.attr("precision_data"))
    return ints, []


register(OpDef("conv2d_core", ("x", "weight"), _GEOM_ATTRS, infer=_conv_infer,
               pattern=Pattern.OUT_ELEMENTWISE_FUSABLE,
               kernel="conv2d", lower=_conv_lower,
               grad=_conv_grad, reference=conv2d_np, samples=_conv_samples, nchwc=_nchwc_rule,
               reduced_precision=ReducedPrecision(1, (("bf16", "conv2d_bf16"), ("int8", "conv2d_int8")),
                                                  lambda n, t: t[0].dtype == "f32" and t[1].dtype == "f32",
                                                  only=(("int8", lambda n, t: n.attr("groups") == 1),)),
               doc="2-D convolution (cross-correlation) of x [N, C, H, W] with weight [O, C/groups, kh, kw]"))


# ---- gradient kernels (also conv_transpose2d's forward) ----

def _grad_input_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    gy, w = types
    dtype = same_dtype("", types)
    check_image(gy, "gradient")
    h, wd = positive_pair(attrs["input_hw"], "input_hw")
    g = make_geom(attrs, _kernel_of(w), (h, wd))
    if tuple(gy.shape[2:]) != g.out_hw(h, wd):
        raise ShapeError(f"gradient {gy} does not match a {h}x{wd} input")
    return [TensorType(dtype, (gy.shape[0], w.shape[1] * g.groups, h, wd))]


def _grad_weight_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, gy = types
    dtype = same_dtype("", types)
    c, h, wd = check_image(x)
    g = make_geom(attrs, positive_pair(attrs["kernel_size"], "kernel_size"), (h, wd))
    check_groups(c, concrete(gy.shape[1], "gradient channels"), g.groups)
    if tuple(gy.shape[2:]) != g.out_hw(h, wd):
        raise ShapeError(f"gradient {gy} does not match the output of input {x}")
    return [TensorType(dtype, (gy.shape[1], c // g.groups, *g.kernel))]


def _grad_input_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    return make_geom(node.attr_dict, _kernel_of(types[1]), tuple(node.attr("input_hw"))).ints(), []


def _grad_weight_lower(node: Any, types: list[TensorType]) -> tuple[list[int], list[float]]:
    return make_geom(node.attr_dict, tuple(node.attr("kernel_size")), tuple(types[0].shape[2:])).ints(), []


def _grad_samples(which: str) -> Any:
    def samples(rng: np.random.Generator, dt: str) -> list[Sample]:
        out = []
        for s in _conv_samples(rng, dt):
            x, w = s.inputs
            y = conv2d_np(x, w, **s.attrs)
            g = make_geom({**_defaults(), **s.attrs}, w.shape[2:], x.shape[2:])
            gy = rand(rng, y.shape, dt)
            if which == "input":
                out.append(Sample([gy, w], {**g.attrs(), "input_hw": tuple(x.shape[2:])}, grad=False))
            else:
                out.append(Sample([x, gy], {**g.attrs(), "kernel_size": g.kernel}, grad=False))
        return out
    return samples


def _defaults() -> dict[str, Any]:
    return {a.name: a.default for a in _GEOM_ATTRS}


register(OpDef("conv2d_grad_input", ("gy", "weight"), (*_GEOM_ATTRS, AttrSpec("input_hw", "ints")),
               infer=_grad_input_infer, pattern=Pattern.OPAQUE, kernel="conv2d_grad_input", lower=_grad_input_lower,
               differentiable=False, user=False, reference=conv2d_grad_input_np, samples=_grad_samples("input"),
               doc="gradient of conv2d_core with respect to x (GEMM + col2im)"))
register(OpDef("conv2d_grad_weight", ("x", "gy"), (*_GEOM_ATTRS, AttrSpec("kernel_size", "ints")),
               infer=_grad_weight_infer, pattern=Pattern.OPAQUE, kernel="conv2d_grad_weight",
               lower=_grad_weight_lower, differentiable=False, user=False, reference=conv2d_grad_weight_np,
               samples=_grad_samples("weight"), doc="gradient of conv2d_core with respect to its weight"))


# ---- conv_transpose2d_core ----

def _convt_geom(x: TensorType, w: TensorType, attrs: dict[str, Any]) -> tuple[ConvGeom, tuple[int, int]]:
    """The geometry of the convolution this op transposes, and the output height and width."""
    _, h, wd = check_image(x)
    kernel = _kernel_of(w)
    ph, pw = pair(attrs["padding"], "padding")
    oph, opw = pair(attrs["output_padding"], "output_padding")
    g = make_geom({**attrs, "padding": (ph, ph, pw, pw)}, kernel, (h, wd))
    if min(oph, opw) < 0:
        raise ShapeError(f"output_padding must not be negative, got {attrs['output_padding']!r}")
    if oph >= g.stride[0] or opw >= g.stride[1]:
        raise ShapeError(f"output_padding {attrs['output_padding']!r} must be smaller than the stride "
                         f"{attrs['stride']!r}")
    eh, ew = g.extent
    out = ((h - 1) * g.stride[0] - 2 * ph + eh + oph, (wd - 1) * g.stride[1] - 2 * pw + ew + opw)
    if min(out) < 1:
        raise ShapeError(f"the output would be empty ({out[0]}x{out[1]}); reduce the padding")
    return g, out


def _convt_infer(types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
    x, w = types
    dtype = same_dtype("", types)
    c = check_image(x)[0]
    g, out = _convt_geom(x, w, attrs)
    if w.shape[0] != c:
        raise ShapeError(f"the weight {w} expects {w.shape[0]} input channels, but the input has {c}")
    if c % g.groups:
        raise ShapeError(f"input has {c} channels but groups={g.groups} does not divide it")
    return [TensorType(dtype, (x.shape[0], w.shape[1] * g.groups, *out))]


def _convt_grad(b: Any, node: Any, gs: list[int | None]) -> list[int | None]:
    x, w = node.inputs
    g, _ = _convt_geom(b.type_of(x), b.type_of(w), node.attr_dict)
    # output_padding < stride, so convolving the output-sized gradient gives back exactly the input size.
    gx = b.op1("conv2d_core", gs[0], w, **g.attrs())
    gw = b.op1("conv2d_grad_weight", gs[0], x, kernel_size=g.kernel, **g.attrs())
    return [gx, gw]


def conv_transpose2d_np(x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                        dilation: Any = 1, groups: int = 1) -> np.ndarray:
    """out_pad[n, o, p*sh + i*dh, q*sw + j*dw] += x[n, c, p, q] * w[c, o, i, j], then the padding cropped."""
    ph, pw = pair(padding, "padding")
    oph, opw = pair(output_padding, "output_padding")
    g = _ref_geom((1, 1), w.shape[2:], stride, (ph, ph, pw, pw), dilation, groups)
    (sh, sw), (eh, ew) = g.stride, g.extent
    h = (x.shape[2] - 1) * sh - 2 * ph + eh + oph
    wd = (x.shape[3] - 1) * sw - 2 * pw + ew + opw
    # The conv whose input gradient this is: input (h, wd), bottom/right padding grown by output_padding.
    g = ConvGeom(g.kernel, g.stride, g.dilation, (ph, ph + oph, pw, pw + opw), groups)
    return _scatter_taps(x, w, g, (h, wd)).astype(x.dtype)


def _convt_samples(rng: np.random.Generator, dt: str) -> list[Sample]:
    r = lambda *s: rand(rng, s, dt)  # noqa: E731
    return [Sample([r(1, 3, 3, 3), r(3, 2, 3, 3)]),
            Sample([r(2, 2, 3, 3), r(2, 2, 3, 3)], {"stride": 2, "padding": 1, "output_padding": 1}),
            Sample([r(1, 4, 2, 2), r(4, 1, 2, 2)], {"stride": 2, "groups": 2}),
            Sample([r(1, 2, 3, 2), r(2, 1, 3, 2)], {"dilation": 2, "padding": [1, 0], "stride": [1, 2]})]


register(OpDef("conv_transpose2d_core", ("x", "weight"),
               (AttrSpec("stride", "any", 1), AttrSpec("padding", "any", 0, doc="an int or [ph, pw]"),
                AttrSpec("output_padding", "any", 0, doc="extra rows/columns at the bottom/right (< stride)"),
                AttrSpec("dilation", "any", 1), AttrSpec("groups", "int", 1)),
               infer=_convt_infer, pattern=Pattern.OPAQUE, kernel="conv2d_grad_input",
               lower=lambda n, t: (_convt_geom(t[0], t[1], n.attr_dict)[0].ints(), []),
               grad=_convt_grad, reference=conv_transpose2d_np, samples=_convt_samples,
               doc="transposed 2-D convolution of x [N, C, H, W] with weight [C, O/groups, kh, kw]"))


# ---- layers ----

def _add_bias(b: Any, ctx: LayerContext, y: int, attrs: dict[str, Any], fans: tuple[int, int]) -> int:
    yt = b.type_of(y)
    out = concrete(yt.shape[1], "output channels")
    if attrs["bias"]:
        bias = ctx.param("bias", TensorType(yt.dtype, (out,)), attrs["bias_init"], fans)
        y = b.op1("add", y, b.op1("reshape", bias, shape=(out, 1, 1)))
    if attrs["activation"] != "none":
        y = b.op1(attrs["activation"], y)
    return y


def _conv2d_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    xt = b.type_of(ins[0])
    c, h, wd = check_image(xt)
    filters, groups = attrs["filters"], attrs["groups"]
    if filters < 1:
        raise ShapeError(f"filters must be positive, got {filters}")
    check_groups(c, filters, groups)
    kh, kw = positive_pair(attrs["kernel_size"], "kernel_size")
    g = make_geom(attrs, (kh, kw), (h, wd))
    g.out_hw(h, wd)  # geometry errors name the layer, before any parameter exists
    fans = (c // groups * kh * kw, filters * kh * kw)
    w = ctx.param("weight", TensorType(xt.dtype, (filters, c // groups, kh, kw)), attrs["init"], fans)
    return (_add_bias(b, ctx, b.op1("conv2d_core", ins[0], w, **g.attrs()), attrs, fans),)


_LAYER_ATTRS = (AttrSpec("bias", "bool", True), AttrSpec("activation", "str", "none", ACTIVATIONS),
                AttrSpec("init", "any", "he_uniform", doc="weight initializer"), AttrSpec("bias_init", "any", "zeros"))

register(OpDef("conv2d", ("x",),
               (AttrSpec("filters", "int", doc="output channels"), AttrSpec("kernel_size", "any", 3),
                *_GEOM_ATTRS, *_LAYER_ATTRS),
               expand=_conv2d_expand, layer=True, pattern=Pattern.OPAQUE,
               doc="2-D convolution over NCHW images; weight [filters, in/groups, kh, kw], bias [filters]"))


def _convt_expand(b: Any, ctx: LayerContext, ins: list[int], attrs: dict[str, Any]) -> tuple[int, ...]:
    xt = b.type_of(ins[0])
    c = check_image(xt)[0]
    filters, groups = attrs["filters"], attrs["groups"]
    if filters < 1:
        raise ShapeError(f"filters must be positive, got {filters}")
    check_groups(c, filters, groups)
    kh, kw = positive_pair(attrs["kernel_size"], "kernel_size")
    # PyTorch's fan-in for a transposed convolution: weight.shape[1] * kh * kw.
    fans = (filters // groups * kh * kw, c * kh * kw)
    wt = TensorType(xt.dtype, (c, filters // groups, kh, kw))
    geom = {k: attrs[k] for k in ("stride", "padding", "output_padding", "dilation", "groups")}
    _convt_geom(xt, wt, geom)  # geometry errors name the layer, before any parameter exists
    w = ctx.param("weight", wt, attrs["init"], fans)
    return (_add_bias(b, ctx, b.op1("conv_transpose2d_core", ins[0], w, **geom), attrs, fans),)


register(OpDef("conv_transpose2d", ("x",),
               (AttrSpec("filters", "int", doc="output channels"), AttrSpec("kernel_size", "any", 3),
                AttrSpec("stride", "any", 1), AttrSpec("padding", "any", 0), AttrSpec("output_padding", "any", 0),
                AttrSpec("dilation", "any", 1), AttrSpec("groups", "int", 1), *_LAYER_ATTRS),
               expand=_convt_expand, layer=True, pattern=Pattern.OPAQUE,
               doc="transposed 2-D convolution (upsampling); weight [in, filters/groups, kh, kw], bias [filters]"))
