"""The convolutional family beyond the registry-driven checks of test_ops.py (which runs every op's samples
through the harness): kernels at sizes that take the multi-threaded paths, the layers through .dlm, whole-model
gradients, batch norm's training/evaluation forms and running statistics, corner cases and error messages."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.errors import CompileError
from dlc.ops.conv import conv2d_grad_input_np, conv2d_grad_weight_np, conv2d_np, make_geom
from dlc.passes import PassContext
from dlc.passes.eval_mode import strip_training_only
from harness import _graph_for, run_graph

# (x shape, weight shape, attrs): shapes big enough for parallel im2col/col2im, GEMM-internal threads, more
# images than weight-gradient chunks, grouped/depthwise/pointwise products.
LARGE = [((1, 32, 40, 40), (64, 32, 3, 3), {"padding": 1}),
         ((20, 3, 28, 28), (6, 3, 5, 5), {}),
         ((3, 16, 20, 20), (16, 1, 3, 3), {"padding": 1, "groups": 16}),
         ((4, 64, 12, 12), (32, 64, 1, 1), {}),
         ((2, 8, 33, 31), (12, 4, 5, 3), {"stride": 2, "padding": [2, 1], "dilation": [1, 2], "groups": 2})]


def _run(op: str, inputs: list[np.ndarray], attrs: dict) -> np.ndarray:
    graph, _, _ = _graph_for(op, inputs, attrs)
    return run_graph(graph, inputs)["out0"]


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = dlc.get_num_threads()
    dlc.set_num_threads(request.param)
    yield request.param
    dlc.set_num_threads(before)


@pytest.mark.parametrize("xs,ws,attrs", LARGE)
def test_conv_kernels_at_threaded_sizes(threads: int, xs: tuple, ws: tuple, attrs: dict) -> None:
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    g = make_geom({"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **attrs}, ws[2:], xs[2:])
    y = _run("conv2d_core", [x, w], attrs)
    np.testing.assert_allclose(y, conv2d_np(x, w, **attrs), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    gx = _run("conv2d_grad_input", [gy, w], {**g.attrs(), "input_hw": xs[2:]})
    np.testing.assert_allclose(gx, conv2d_grad_input_np(gy, w, input_hw=xs[2:], **g.attrs()), rtol=1e-10, atol=1e-10)
    wattrs = {**g.attrs(), "kernel_size": g.kernel}
    gw = _run("conv2d_grad_weight", [x, gy], wattrs)
    np.testing.assert_allclose(gw, conv2d_grad_weight_np(x, gy, **wattrs), rtol=1e-10, atol=1e-9)
    np.testing.assert_array_equal(gw, _run("conv2d_grad_weight", [x, gy], wattrs))  # deterministic


# f32 convolutions without groups take the direct kernels on AVX-512 CPUs (conv_direct.h) and im2col + GEMM
# elsewhere; float64 always takes im2col + GEMM. Odd sizes: output channels that are not whole 4-channel tiles,
# rows that end mid-vector, strides 2 and 3 (phase planes), dilation, asymmetric padding, padding wider than the
# kernel (the data gradient's own padding is then negative), a batch of 1 (threads share one image's tiles) and
# weight gradients over several image chunks (40x40 images).
DIRECT = [((1, 5, 9, 7), (7, 5, 3, 3), {"padding": 1}),
          ((3, 3, 32, 32), (16, 3, 3, 3), {"padding": 1}),
          ((4, 16, 17, 15), (33, 16, 3, 3), {"padding": 1, "stride": 2}),
          ((2, 5, 11, 13), (6, 5, 3, 2), {"padding": [2, 0], "dilation": [2, 1]}),
          ((2, 4, 12, 11), (5, 4, 5, 5), {"padding": [3, 1], "stride": [2, 3]}),
          ((3, 6, 10, 10), (3, 6, 3, 3), {"padding": 2, "dilation": 2}),
          ((2, 4, 6, 7), (5, 4, 3, 3), {"padding": [3, 2]}),
          ((7, 16, 40, 40), (9, 16, 3, 3), {"padding": 1}),
          ((2, 64, 8, 8), (64, 64, 3, 3), {"padding": 1})]


@pytest.mark.parametrize("xs,ws,attrs", DIRECT)
def test_f32_convolutions_match_float64(xs: tuple, ws: tuple, attrs: dict) -> None:
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    g = make_geom({"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **attrs}, ws[2:], xs[2:])
    gy = rng.standard_normal((xs[0], ws[0], *g.out_hw(*xs[2:])))
    wattrs = {**g.attrs(), "kernel_size": g.kernel}
    cases = [("conv2d_core", [x, w], attrs), ("conv2d_grad_input", [gy, w], {**g.attrs(), "input_hw": xs[2:]}),
             ("conv2d_grad_weight", [x, gy], wattrs)]
    before = dlc.get_num_threads()
    try:
        for op, ins, op_attrs in cases:
            ref = _run(op, ins, op_attrs)  # float64: im2col + GEMM
            got = []
            for n in (1, 2):
                dlc.set_num_threads(n)
                got.append(_run(op, [a.astype(np.float32) for a in ins], op_attrs))
            assert got[0].dtype == np.float32
            np.testing.assert_allclose(got[0], ref, rtol=0, atol=2e-5 * np.abs(ref).max(), err_msg=op)
            np.testing.assert_array_equal(got[0], got[1], err_msg=op)  # the same with 1 and 2 threads
    finally:
        dlc.set_num_threads(before)


CNN = """
input x: f32[N, 2, 8, 8]
input y: i32[N]
a = relu(batch_norm(conv2d(x, 4, padding=1)))
b = max_pool2d(a, 2)
c = conv2d(b, 6, kernel_size=3, stride=2, padding="same", groups=2)
d = avg_pool2d(upsample(c, 2, mode="bilinear"), 2)
e = conv_transpose2d(pad(d, [1, 0, 0, 1]), 3, kernel_size=2, stride=2)
output logits = dense(global_avg_pool(e), 3)
train {
    loss = cross_entropy(logits, y)
}
"""


def test_layers_create_pytorch_layout_parameters() -> None:
    p = dlc.compile(source=CNN)
    shapes = {k: v.shape for k, v in p.params.items()}
    assert shapes["a.conv2d.weight"] == (4, 2, 3, 3) and shapes["a.conv2d.bias"] == (4,)
    assert shapes["c.weight"] == (6, 1 * 2, 3, 3)  # [out, in/groups, kh, kw]
    assert shapes["e.weight"] == (6, 3, 2, 2)  # transposed: [in, out/groups, kh, kw]
    np.testing.assert_array_equal(p.params["a.batch_norm.running_var"], np.ones(4, np.float32))
    assert np.abs(p.params["a.conv2d.weight"]).max() <= np.sqrt(6 / 18)  # he_uniform, fan_in 2*3*3
    assert p.outputs["logits"] == dlc.TensorSpec("f32", ("N", 3))


def test_whole_cnn_gradients_match_finite_differences() -> None:
    p = dlc.compile(source=CNN, dtype="f64", seed=1)
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((3, 2, 8, 8)), "y": rng.integers(0, 3, 3).astype(np.int32)}
    _, grads = p.loss_and_grads(**batch)
    for name in ("a.conv2d.weight", "a.batch_norm.weight", "c.weight", "e.weight", "e.bias"):
        original = p.params[name].copy()
        numeric = np.zeros_like(original)
        for j in range(original.size):
            for sign in (1.0, -1.0):
                v = original.copy()
                v.reshape(-1)[j] += sign * 1e-6
                p.set_params({name: v})
                numeric.reshape(-1)[j] += sign * p.loss_and_grads(**batch)[0] / 2e-6
        p.set_params({name: original})
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
    # Batch statistics remove a bias that feeds batch norm: its gradient is zero.
    np.testing.assert_allclose(grads["a.conv2d.bias"], 0, atol=1e-12)


def test_batch_norm_training_updates_running_stats_and_eval_uses_them() -> None:
    p = dlc.compile(source="input x: f32[N, 3, 4, 4]\noutput y = batch_norm(x, momentum=0.25)\n")
    x = (np.random.default_rng(0).standard_normal((5, 3, 4, 4)) * 2 + 1).astype(np.float32)
    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
    y = p.train()(x=x)["y"]
    np.testing.assert_allclose(y, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5), atol=2e-6)
    rm, rv = p.params["y.running_mean"], p.params["y.running_var"]
    np.testing.assert_allclose(rm, 0.75 * 0 + 0.25 * mean, rtol=1e-6)
    np.testing.assert_allclose(rv, 0.75 * 1 + 0.25 * x.var((0, 2, 3), ddof=1), rtol=1e-6)  # unbiased
    y_eval = p.eval()(x=x)["y"]
    np.testing.assert_array_equal(p.params["y.running_mean"], rm)  # evaluation leaves the state alone
    np.testing.assert_allclose(y_eval, (x - rm[:, None, None]) / np.sqrt(rv[:, None, None] + 1e-5), atol=2e-6)


def test_eval_pass_swaps_in_batch_norm_eval() -> None:
    graph = dlc.compile(source="input x: f32[2, 3, 4]\noutput y = batch_norm(x)\n").graph
    assert strip_training_only(graph, PassContext(training=True)) is graph
    evaluated = strip_training_only(graph, PassContext(training=False))
    assert [n.op for n in evaluated.nodes] == ["batch_norm_eval"]
    assert evaluated.nodes[0].outputs == (dict(graph.outputs)["y"],)  # the batch statistics are gone
    assert evaluated.nodes[0].attr_dict == {"eps": 1e-5}


def test_max_pool_gradient_goes_to_first_maximum_and_nan_wins() -> None:
    x = np.ones((1, 1, 2, 4))
    x[0, 0, 1, 3] = np.nan
    y = _run("max_pool2d", [x], {"kernel_size": 2})
    assert y[0, 0, 0, 0] == 1 and np.isnan(y[0, 0, 0, 1])
    gx = _run("max_pool2d_grad", [x, np.array([[[[2.0, 3.0]]]])], {"kernel_size": 2})
    np.testing.assert_array_equal(gx, [[[[2, 0, 0, 0], [0, 0, 0, 3]]]])


@pytest.mark.parametrize("isa", ["generic", "avx512"])
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 9), (2, 1, 4, 70), (1, 1, 2, 2)])
def test_max_pool_2x2_fast_paths_match_the_window_scan(isa: str, shape: tuple) -> None:
    """The 2x2 stride-2 window on the portable scan and on AVX-512 (selected with the elementwise ISA) against the
    reference scan: ties between equal values and ±0, NaNs, odd sizes whose last row/column is in no window,
    widths of several 16-window vector steps plus a tail, and a -0 gradient (accumulated into +0)."""
    from dlc import _core
    from dlc.ops.pool import max_pool2d_grad_np, max_pool2d_np
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, shape).astype(np.float32)  # small integers: many ties
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.1] = -0.0
    gy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(np.float32)
    gy.flat[0] = -0.0
    try:
        _core.ew_force_isa(isa)
        y = _run("max_pool2d", [x], {"kernel_size": 2})
        gx = _run("max_pool2d_grad", [x, gy], {"kernel_size": 2})
    finally:
        _core.ew_force_isa("")
    np.testing.assert_array_equal(y, max_pool2d_np(x, 2))
    np.testing.assert_array_equal(np.signbit(y), np.signbit(max_pool2d_np(x, 2)))
    expected = max_pool2d_grad_np(x, gy, 2)
    np.testing.assert_array_equal(gx, expected)
    np.testing.assert_array_equal(np.signbit(gx), np.signbit(expected))


def test_padding_same_keeps_size_and_transpose_inverts_stride() -> None:
    p = dlc.compile(source="input x: f32[1, 2, 7, 6]\n"
                    "a = conv2d(x, 3, kernel_size=4, padding=\"same\")\n"
                    "b = conv2d(x, 3, kernel_size=3, stride=2, padding=\"same\")\n"
                    "c = conv_transpose2d(b, 2, kernel_size=3, stride=2, padding=1, output_padding=[0, 1])\n"
                    "output a, b, c\n")
    assert p.outputs["a"].shape == (1, 3, 7, 6)
    assert p.outputs["b"].shape == (1, 3, 4, 3)
    assert p.outputs["c"].shape == (1, 2, 7, 6)


@pytest.mark.parametrize("src,message", [
    ("conv2d(x, 4, groups=2)", "input has 3 channels but groups=2 does not divide it"),
    ("conv2d(x, 5, groups=3)", "filters=5 is not divisible by groups=3"),
    ("conv2d(x, 4, kernel_size=9)", "does not fit the padded 8x8 input"),
    ("conv2d(x, 4, padding=\"full\")", "padding must be"),
    ("max_pool2d(x, 3, padding=2)", "at most half of kernel_size"),
    ("conv_transpose2d(x, 4, stride=2, output_padding=2)", "must be smaller than the stride"),
    ("pad(x, [1, 1, 1])", "pairs"),
    ("upsample(x, mode=\"nearest\", align_corners=true)", "align_corners only applies"),
])
def test_shape_errors_are_clear(src: str, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        dlc.compile(source=f"input x: f32[2, 3, 8, 8]\noutput y = {src}\n")


def test_batch_norm_rejects_a_single_value_per_channel() -> None:
    with pytest.raises(CompileError, match="more than one value per channel"):
        dlc.compile(source="input x: f32[1, 3]\noutput y = batch_norm(x)\n")
