"""Pooling, padding and resampling. dlc's pools take symmetric padding of at most half the kernel; other
paddings (asymmetric, `auto_pad`, `ceil_mode`) become an explicit `pad` before the pool, and average pools
whose windows count different numbers of elements get a constant divisor correction."""

from __future__ import annotations

from typing import Any

import numpy as np

from .ops_nn import conv_pads
from .ops_shape import take_at
from .registry import converts
from .values import Node, Tensor, Unsupported, literal

LOWEST_F32 = -3.4028234663852886e38  # the pad value of max pooling: never the maximum of a window


def _pool_geometry(node: Node, in_hw: tuple[int, ...]) -> tuple[list[int], list[int], list[int], list[int]]:
    """kernel, strides, pads [begin..., end...] including the extra end rows of ceil_mode, output size."""
    k = list(node.attr("kernel_shape"))
    n = len(k)
    s = list(node.attr("strides", [1] * n))
    dil = list(node.attr("dilations", [1] * n))
    if any(d != 1 for d in dil):
        raise Unsupported(f"dilations {dil} (dlc pools have none)")
    pads = conv_pads(node, in_hw, tuple(k), tuple(s), (1,) * n)
    out = []
    for i in range(n):
        span = in_hw[i] + pads[i] + pads[n + i] - k[i]
        if span < 0:
            raise Unsupported("the kernel is larger than the padded input")
        o = span // s[i] + 1
        if node.attr("ceil_mode", 0) and span % s[i]:
            o += 1
            if (o - 1) * s[i] >= in_hw[i] + pads[i]:  # a last window starting in the end padding is dropped
                o -= 1
        out.append(o)
    end = [max(pads[n + i], (out[i] - 1) * s[i] + k[i] - in_hw[i] - pads[i]) for i in range(n)]
    return k, s, pads[:n] + end, out


def _as_2d(im: Any, node: Node) -> tuple[str, tuple[int, ...], bool]:
    x = im.tensor(node.inputs[0])
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"{node.op} of a {x.dtype} tensor")
    spatial = tuple(x.shape[2:]) if x.shape is not None else ()
    if not all(isinstance(d, int) for d in spatial):
        raise Unsupported(f"{node.op} needs static spatial sizes, got {x.shape}")
    if x.rank in (3, 4):
        return x.name, spatial, x.rank == 3  # type: ignore[return-value]
    raise Unsupported(f"{node.op} over {x.rank - 2} spatial dimensions (dlc has 1-D and 2-D)")


def _lift(node: Node, k: list[int], s: list[int], pads: list[int]) -> tuple[list[int], list[int], list[int]]:
    """1-D geometry as 2-D over a height of 1."""
    return [1, *k], [1, *s], [0, pads[0], 0, pads[1]]


@converts("MaxPool", "AveragePool")
def pool(im: Any, node: Node) -> None:
    node.only("kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "dilations", "storage_order",
              "count_include_pad")
    if len(node.outputs) > 1 and im.is_used(node.outputs[1]):
        raise Unsupported("the Indices output is not supported")
    xs, in_hw, one_d = _as_2d(im, node)
    k, s, pads, out = _pool_geometry(node, in_hw)
    explicit = conv_pads(node, in_hw, tuple(k), tuple(s), (1,) * len(k))
    if one_d:
        xs = im.temp(f"unsqueeze({xs}, 2)", "as_2d")
        in_hw = (1, *in_hw)
        k, s, pads = _lift(node, k, s, pads)
        explicit = [0, explicit[0], 0, explicit[1]]
        out = [1, *out]
    n = 2
    symmetric = all(pads[i] == pads[n + i] and pads[i] <= k[i] // 2 for i in range(n))
    is_max = node.op == "MaxPool"
    geo = f"kernel_size={literal(k)}, stride={literal(s)}"
    if is_max:
        if symmetric:
            expr = f"max_pool2d({xs}, {geo}, padding={literal(pads[:n])})"
        else:
            padded = im.temp(f"pad({xs}, {literal(_dlc_pads(pads))}, value={literal(LOWEST_F32)})", "padded")
            expr = f"max_pool2d({padded}, {geo})"
    else:
        include = bool(node.attr("count_include_pad", 0))
        counts = _window_counts(in_hw, k, s, pads, explicit if include else [0, 0, 0, 0], out)
        if symmetric and (include or not any(pads)) and np.all(counts == k[0] * k[1]):
            expr = f"avg_pool2d({xs}, {geo}, padding={literal(pads[:n])})"
        elif symmetric and not include and np.all(counts == _window_counts(in_hw, k, s, pads, [0] * 4, out)):
            expr = f"avg_pool2d({xs}, {geo}, padding={literal(pads[:n])}, count_include_pad=false)"
        else:
            padded = im.temp(f"pad({xs}, {literal(_dlc_pads(pads))})", "padded") if any(pads) else xs
            mean = im.temp(f"avg_pool2d({padded}, {geo})", "window_mean")
            if np.all(counts == k[0] * k[1]):
                expr = mean
            else:
                scale = (k[0] * k[1] / counts).astype(np.float32)
                expr = f"{mean} * {im.param(scale, 'pool_divisor')}"
    if one_d:
        expr = f"squeeze({im.temp(expr, 'pool2d')}, 2)"
    im.emit(node.outputs[0], expr)


def _dlc_pads(pads: list[int]) -> list[int]:
    """ONNX [top, left, bottom, right] -> dlc's (before, after) pairs [top, bottom, left, right]."""
    return [pads[0], pads[2], pads[1], pads[3]]


def _window_counts(in_hw: tuple[int, ...], k: list[int], s: list[int], pads: list[int], counted: list[int],
                   out: list[int]) -> np.ndarray:
    """How many elements each window divides by: those inside the input widened by the `counted` pads."""
    axes = []
    for i in range(2):
        lo, hi = -counted[i], in_hw[i] + counted[2 + i]
        starts = np.arange(out[i]) * s[i] - pads[i]
        axes.append(np.clip(starts + k[i], lo, hi) - np.clip(starts, lo, hi))
    return np.outer(axes[0], axes[1]).astype(np.float64)


@converts("GlobalAveragePool", "GlobalMaxPool")
def global_pool(im: Any, node: Node) -> None:
    node.only()
    x = im.tensor(node.inputs[0])
    fn = "mean" if node.op == "GlobalAveragePool" else "max"
    im.emit(node.outputs[0], f"{fn}({x.name}, axis={literal(list(range(2, x.rank)))}, keepdims=true)")


@converts("Pad")
def pad(im: Any, node: Node) -> None:
    if node.opset < 11:
        node.only("pads", "mode", "value")
        pads, value = list(node.attr("pads")), float(node.attr("value", 0.0))
        axes = None
    else:
        node.only("mode")
        pads = [int(p) for p in im.need_const(node.inputs[1], "Pad's pads").reshape(-1)]
        value_name = node.inputs[2] if len(node.inputs) > 2 else ""
        value = float(im.need_const(value_name, "Pad's value").reshape(-1)[0]) if value_name and \
            im.need_const(value_name, "Pad's value").size else 0.0
        axes_name = node.inputs[3] if len(node.inputs) > 3 else ""
        axes = [int(a) for a in im.need_const(axes_name, "Pad's axes").reshape(-1)] if axes_name else None
    mode = node.attr("mode", "constant")
    if mode not in ("constant", "edge", "reflect", "wrap"):
        raise Unsupported(f"mode={mode!r}")
    x = im.tensor(node.inputs[0])
    if mode != "constant":
        _pad_by_positions(im, node, x, pads, axes, mode)
        return
    if x.dtype not in ("f32", "f64"):
        raise Unsupported(f"Pad of a {x.dtype} tensor (dlc pads floating-point tensors)")
    r = x.rank
    axes = [a % r for a in axes] if axes is not None else list(range(r))
    pairs = [(0, 0)] * r
    for j, a in enumerate(axes):
        pairs[a] = (pads[j], pads[len(axes) + j])
    first = next((i for i, p in enumerate(pairs) if p != (0, 0)), r)
    flat = [v for p in pairs[first:] for v in p]
    if not flat:
        im.set(node.outputs[0], x)
        return
    im.emit(node.outputs[0], f"pad({x.name}, {literal(flat)}, value={literal(value)})")


def _pad_by_positions(im: Any, node: Node, x: Tensor, pads: list[int], axes: list[int] | None, mode: str) -> None:
    """Edge, reflect and wrap padding (and negative pads, which crop): each padded axis read at the positions
    NumPy's pad of 0..n-1 gives, through gather."""
    axes = [a % x.rank for a in axes] if axes is not None else list(range(x.rank))
    cur = x
    for j, a in enumerate(axes):
        before, after = pads[j], pads[len(axes) + j]
        if before == after == 0:
            continue
        n = cur.shape[a]
        if not isinstance(n, int):
            raise Unsupported(f"mode={mode!r} padding of a symbolic axis")
        kept = np.arange(n)[max(-before, 0): n - max(-after, 0)]
        if kept.size == 0 or (mode == "reflect" and kept.size < 2 and max(before, after) > 0):
            raise Unsupported(f"mode={mode!r} padding of an axis of {kept.size} entries")
        positions = np.pad(kept, (max(before, 0), max(after, 0)), mode=mode)
        cur = take_at(im, cur, a, positions, "padded")
    im.set(node.outputs[0], cur)


_NEAREST_OK = {("asymmetric", "floor"), ("half_pixel", "round_prefer_floor"), ("half_pixel", "round_prefer_ceil"),
               ("pytorch_half_pixel", "round_prefer_floor"), ("pytorch_half_pixel", "round_prefer_ceil")}


@converts("Resize", "Upsample")
def resize(im: Any, node: Node) -> None:
    """Integer upsampling of the two spatial axes: nearest with the coordinate modes that equal PyTorch's
    nearest, or bilinear with half_pixel (align_corners=false) or align_corners coordinates."""
    node.only("mode", "coordinate_transformation_mode", "nearest_mode", "scales", "cubic_coeff_a",
              "exclude_outside", "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy")
    x = im.tensor(node.inputs[0])
    if x.rank != 4:
        raise Unsupported(f"resizing a rank-{x.rank} tensor (dlc upsamples NCHW images)")
    in_hw = x.static("Resize")[2:]
    if node.attr("antialias", 0) or node.attr("exclude_outside", 0) or node.attr("axes") is not None:
        raise Unsupported("antialias, exclude_outside and axes are not supported")
    if node.op == "Upsample" or node.opset < 10:
        scales = node.attr("scales") if node.attr("scales") is not None else \
            im.need_const(node.inputs[1], "the scales").tolist()
        coord, nearest = "asymmetric", "floor"
    else:
        scales_name = node.inputs[1] if node.opset == 10 else (node.inputs[2] if len(node.inputs) > 2 else "")
        sizes_name = node.inputs[3] if node.opset >= 11 and len(node.inputs) > 3 else ""
        scales = im.need_const(scales_name, "the scales").tolist() if scales_name else []
        if not scales:
            sizes = [int(v) for v in im.need_const(sizes_name, "the sizes").reshape(-1)]
            shape = x.static("Resize")
            scales = [o / i for o, i in zip(sizes, shape)]
        default_coord = "asymmetric" if node.opset == 10 else "half_pixel"
        coord = node.attr("coordinate_transformation_mode", default_coord)
        nearest = node.attr("nearest_mode", "round_prefer_floor") if node.opset >= 11 else "floor"
    mode = node.attr("mode", "nearest")
    if len(scales) != 4 or scales[0] != 1 or scales[1] != 1:
        raise Unsupported(f"scales {scales} (dlc resizes the two spatial axes only)")
    factors = [float(v) for v in scales[2:]]
    if any(f < 1 or f != int(f) for f in factors):
        raise Unsupported(f"scale factors {factors} (dlc upsamples by integer factors)")
    sf = [int(f) for f in factors]
    if mode == "nearest":
        if (coord, nearest) not in _NEAREST_OK:
            raise Unsupported(f"nearest resize with coordinate_transformation_mode={coord!r} and "
                              f"nearest_mode={nearest!r}")
        im.emit(node.outputs[0], f"upsample({x.name}, scale_factor={literal(sf)}, mode=\"nearest\")")
        return
    if mode in ("linear", "bilinear") and coord in ("half_pixel", "pytorch_half_pixel", "align_corners") \
            and min(in_hw) > 1:
        align = coord == "align_corners"
        im.emit(node.outputs[0], f"upsample({x.name}, scale_factor={literal(sf)}, mode=\"bilinear\", "
                                 f"align_corners={literal(align)})")
        return
    raise Unsupported(f"mode={mode!r} with coordinate_transformation_mode={coord!r}")
