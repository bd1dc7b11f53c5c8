"""The blocked channel layout (ops/nchwc.py, csrc/kernels/conv/*nchwc*): every convolution configuration, the fused
epilogue, pooling and the reorders against the NCHW references on each instruction set's kernels (forced), in f32
and f64 (f64 to 1e-12); then the layout pass: blocked and NCHW plans of whole models agree."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import pytest

import dlc
from dlc import _core
from dlc.ir import GraphBuilder, TensorType
from dlc.ops.conv import conv2d_np
from dlc.ops.nchwc import from_nchwc_np, pool2d_nchwc_np, to_nchwc_np
from dlc.passes import PassContext, run_pipeline
from harness import run_graph

ISAS = ("avx512", "avx2", "portable")
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@contextmanager
def forced_isa(isa: str) -> Iterator[None]:
    _core.nchwc_force_isa(isa)
    try:
        if _core.nchwc_isa() != isa:
            pytest.skip(f"this CPU has no {isa}")
        yield
    finally:
        _core.nchwc_force_isa("")


def _run(op_calls: Any, arrays: list[np.ndarray], fuse: bool = False) -> np.ndarray:
    """Builds a graph with inputs in0.. and the nodes op_calls(builder, values) adds; runs it."""
    b = GraphBuilder()
    vals = [b.add_input(f"in{i}", TensorType("f32" if a.dtype == np.float32 else "f64", a.shape))
            for i, a in enumerate(arrays)]
    b.outputs = [("out0", op_calls(b, vals))]
    return run_graph(b.build(), arrays, fuse=fuse, training=False)["out0"]


def _close(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * scale)


# (N, C, H, W, O, kernel, attrs, plain input): batch 1, odd channel counts, stride, padding, dilation, groups,
# depthwise, 1x1 (the GEMM form), first layers reading NCHW, rows wider than a register tile.
CONVS = [
    (1, 16, 8, 8, 16, 3, {"padding": 1}, False),
    (2, 5, 9, 7, 11, 3, {"padding": 1, "stride": 2}, False),
    (1, 20, 10, 11, 20, 3, {"padding": 2, "dilation": 2}, False),
    (2, 24, 6, 6, 24, 3, {"padding": 1, "groups": 24}, False),
    (1, 24, 7, 7, 24, 3, {"padding": 1, "stride": 2, "groups": 24}, False),
    (1, 32, 6, 6, 32, 3, {"padding": 1, "groups": 2}, False),
    (1, 48, 6, 6, 48, 3, {"groups": 3}, False),
    (1, 24, 6, 6, 32, 3, {"groups": 2, "padding": 1}, True),
    (2, 19, 5, 5, 21, 1, {}, False),
    (1, 16, 9, 9, 32, 1, {"stride": 2}, False),
    (2, 3, 17, 15, 16, 7, {"padding": 3, "stride": 2}, True),
    (1, 1, 28, 28, 6, 5, {"padding": 2}, True),
    (1, 8, 5, 40, 16, 3, {"padding": [0, 1]}, False),
    (1, 8, 6, 7, 9, 4, {"padding": "same"}, False),
    (1, 4, 3, 3, 8, 5, {"padding": 2}, True),  # every output pixel on the border
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block", [8, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(CONVS)))
def test_conv_matches_nchw(isa: str, block: int, dtype: type, case: int) -> None:
    n, c, h, w, o, k, attrs, plain = CONVS[case]
    rng = np.random.default_rng(case)
    groups = attrs.get("groups", 1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((o, c // groups, k, k)).astype(dtype)
    if (o // groups) % block and groups != 1 and groups != c:
        pytest.skip("an output block would span groups: the op refuses it (test_grouping_limits)")
    want = conv2d_np(x.astype(np.float64), wt.astype(np.float64), **attrs)
    with forced_isa(isa):
        got = _run(lambda b, v: b.op1("conv2d_nchwc", v[0], v[1], block=block, **attrs),
                   [x if plain else to_nchwc_np(x, block), wt])
    assert got.shape[-1] == block and np.all(got[:, -1, ..., o % block or block:] == 0)
    _close(from_nchwc_np(got, o), want, dtype)


def test_grouping_limits() -> None:
    """Groups whose filters do not fill whole blocks (and depthwise of an NCHW input) are refused by the op and
    left NCHW by the layout pass."""
    g = GraphBuilder()
    x = g.add_input("x", TensorType("f32", (1, 12, 6, 6)))
    w = g.add_input("w", TensorType("f32", (18, 4, 3, 3)))
    with pytest.raises(Exception, match="fill whole"):
        g.op1("conv2d_nchwc", x, w, groups=3, block=8)
    g.outputs = [("y", g.op1("conv2d_core", x, w, groups=3))]
    graph = run_pipeline(g.build(), PassContext(nchwc_block=8))
    assert [n.op for n in graph.nodes] == ["conv2d_core"]


ACTIVATIONS = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
               "tanh": np.tanh, "gelu": None}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_fused_epilogue(isa: str, dtype: type, act: str) -> None:
    """conv -> * scale + shift (per channel) + residual -> activation, fused into the convolution's tile."""
    block, o = 8, 13
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 7, 9)).astype(dtype)
    wt = rng.standard_normal((o, 6, 3, 3)).astype(dtype)
    scale, shift = rng.standard_normal((o, 1, 1)).astype(dtype), rng.standard_normal((o, 1, 1)).astype(dtype)
    res = rng.standard_normal((2, o, 7, 9)).astype(dtype)

    def build(b: GraphBuilder, v: list[int]) -> int:
        y = b.op1("conv2d_nchwc", v[0], v[1], padding=1, block=block)
        s, t = b.op1("to_nchwc", v[2], block=block), b.op1("to_nchwc", v[3], block=block)
        z = b.op1("add", b.op1("add", b.op1("mul", y, s), t), b.op1("to_nchwc", v[4], block=block))
        return b.op1(act, z)

    want = ACTIVATIONS[act](conv2d_np(x.astype(np.float64), wt.astype(np.float64), padding=1) * scale + shift + res)
    with forced_isa(isa):
        got = _run(build, [to_nchwc_np(x, block), wt, scale, shift, res], fuse=True)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(from_nchwc_np(got, o), want, rtol=tol, atol=tol * 10)


def test_epilogue_is_fused() -> None:
    g = GraphBuilder()
    x = g.add_input("x", TensorType("f32", (1, 1, 5, 5, 8)))
    w = g.add_input("w", TensorType("f32", (8, 8, 3, 3)))
    g.outputs = [("y", g.op1("relu", g.op1("conv2d_nchwc", x, w, block=8)))]
    graph = run_pipeline(g.build(), PassContext())
    from dlc.lowering import lower
    assert [s.kernel for s in lower(graph, []).steps] == ["conv2d_nchwc"]


POOLS = [((2, 5, 6, 6), {"kind": "max", "kernel_size": 2}),
         ((1, 17, 7, 5), {"kind": "max", "kernel_size": 3, "stride": 2, "padding": 1}),
         ((2, 3, 7, 5), {"kind": "avg", "kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
         ((1, 9, 5, 6), {"kind": "avg", "kernel_size": [2, 3], "stride": [1, 2], "padding": [1, 1]}),
         ((2, 20, 4, 3), {"kind": "global"})]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("block", [8, 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pool_matches_nchw(isa: str, block: int, dtype: type, case: int) -> None:
    shape, attrs = POOLS[case]
    x = to_nchwc_np(np.random.default_rng(case).standard_normal(shape).astype(dtype), block)
    with forced_isa(isa):
        got = _run(lambda b, v: b.op1("pool2d_nchwc", v[0], **attrs), [x])
    _close(got, pool2d_nchwc_np(x, **attrs), dtype)


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (17, 1, 2), (1, 16, 2, 2), (2, 3, 9, 1, 1)])
@pytest.mark.parametrize("block", [8, 16])
def test_reorders_round_trip(shape: tuple[int, ...], block: int) -> None:
    x = np.random.default_rng(0).standard_normal(shape)
    blocked = _run(lambda b, v: b.op1("to_nchwc", v[0], block=block), [x])
    np.testing.assert_array_equal(blocked, to_nchwc_np(x, block))
    back = _run(lambda b, v: b.op1("from_nchwc", v[0], channels=shape[-3]), [blocked])
    np.testing.assert_array_equal(back, x)


# ---- the layout pass, on whole models ----

MOBILE = """
input x: f32[N, 3, 20, 20]
block separable(x, c: int, filters: int, stride: int = 1) {
    d = conv2d(x, c, kernel_size=3, stride=stride, padding=1, groups=c, bias=false) |> batch_norm |> relu
    return conv2d(d, filters, kernel_size=1, bias=false) |> batch_norm |> relu
}
stem = conv2d(x, 16, kernel_size=3, stride=2, padding=1) |> relu
s1 = separable(stem, 16, 24)
s2 = separable(s1, 24, 40, stride=2)
output y = s2 |> avg_pool2d(2) |> global_avg_pool |> dense(5)
"""


def _compiled(name: str, block: int, dtype: str) -> Any:
    program = (dlc.compile(f"models/{name}.dlm", dtype=dtype) if name != "mobile"
               else dlc.compile(source=MOBILE, dtype=dtype))
    program.model.nchwc_block = block
    return program


def _model_input(name: str, n: int, dtype: str) -> np.ndarray:
    shape = {"lenet": (n, 1, 28, 28), "resnet8": (n, 3, 32, 32), "mobile": (n, 3, 20, 20)}[name]
    return np.random.default_rng(n).standard_normal(shape).astype(np.float32 if dtype == "f32" else np.float64)


@pytest.mark.parametrize("name", ["lenet", "resnet8", "mobile"])
@pytest.mark.parametrize("block", [8, 16])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_blocked_and_nchw_plans_agree(name: str, block: int, dtype: str) -> None:
    plain, blocked = _compiled(name, 0, dtype), _compiled(name, block, dtype)
    rng = np.random.default_rng(7)  # batch-norm statistics away from their initial (identity) values
    params = {k: (np.abs(rng.standard_normal(v.shape)) + 0.5 if "var" in k else rng.standard_normal(v.shape) * 0.3)
              .astype(v.dtype) for k, v in plain.params.items()}
    plain.set_params(params)
    blocked.set_params(params)
    for n in (1, 3):
        x = _model_input(name, n, dtype)
        want, got = plain(x=x), blocked(x=x)
        for key in want:
            tol = 2e-5 if dtype == "f32" else 1e-12
            np.testing.assert_allclose(got[key], want[key], rtol=tol, atol=tol * 10)
    kernels = [s.kernel for s in blocked.model.inference_plan({"N": 3}, False).steps]
    # With blocks of 16 (AVX-512) dense f32 convolutions stay on the direct NCHW kernel; the depthwise ones block.
    assert ("conv2d_nchwc" in kernels) == (block == 8 or name == "mobile" or dtype == "f64")
    assert "conv2d_nchwc" not in [s.kernel for s in plain.model.inference_plan({"N": 3}, False).steps]


def test_training_plans_stay_nchw() -> None:
    program = _compiled("resnet8", 16, "f32")
    ctx = program.model.pass_context(training=True)
    assert ctx.nchwc_block == 0
    assert program.model.pass_context(training=False).nchwc_block == 16


def test_depthwise_conv_gets_blocked_input_and_outputs_stay_nchw() -> None:
    program = _compiled("mobile", 8, "f32")
    steps = program.model.inference_plan({"N": 2}, False).steps
    labels = [s.label for s in steps if s.kernel == "conv2d_nchwc"]
    assert len(labels) == 5
    out = program(x=_model_input("mobile", 2, "f32"))
    assert out["y"].shape == (2, 5)


def test_compile_and_draw_report_the_layout(capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    from dlc import cli
    import json
    model = tmp_path / "mobile.dlm"
    model.write_text(MOBILE)
    assert cli.main(["compile", str(model), "-D", "N=2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    layout, block = summary["layout"], _core.nchwc_block_size()
    assert layout["block"] == block
    if not block:
        assert layout["reorders"] == 0
        return
    # the separable blocks and the pooling run blocked; images are reordered at most into the first depthwise
    # convolution and out of the pooling, the rest of the reorders are batch-norm vectors
    assert layout["blocked_kernels"] >= 6 and 1 <= layout["image_reorders"] <= 2
    assert layout["reorders"] == layout["image_reorders"] + 8 + (block == 8)
    assert {k.get("layout") for k in summary["kernels"] if k["kernel"] == "conv2d_nchwc"} == {f"NCHW{block}c"}
    assert cli.main(["draw", str(model), "-D", "N=2", "--plan", "-o", str(tmp_path / "p.dot")]) == 0
    dot = (tmp_path / "p.dot").read_text()
    assert f"layout NCHW{block}c" in dot and f"{layout['reorders']} reorders" in dot


TRAINABLE = MOBILE.replace("output y =", "input label: i32[N]\noutput y =") + """
train {
    loss = cross_entropy(y, label)
    optimizer = sgd(lr=0.5)
}
"""


def test_filters_reordered_once_and_never_stale_after_training() -> None:
    """An inference plan keeps each blocked convolution's filter reordered (the packed-weights cache); a training
    step writes the filters, and the next inference reorders them again: bit for bit what a plan that reorders
    on every call gives."""
    p = dlc.compile(source=TRAINABLE, dims={"N": 4})
    p.model.nchwc_block = 8
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 20, 20)).astype(np.float32)
    label = rng.integers(0, 5, 4).astype(np.int32)
    plan = p.model.inference_plan({"N": 4}, False).plan
    blocked = sum(1 for s in p.model.inference_plan({"N": 4}, False).steps if s.kernel == "conv2d_nchwc")
    assert blocked == 5 and plan.pack_count >= blocked  # the dense layer's weight may be packed too
    packs = plan.pack_count

    def unpacked() -> np.ndarray:
        fresh = dlc.compile(source=TRAINABLE, dims={"N": 4})
        fresh.model.nchwc_block = 8
        fresh.set_params(p.params)
        fresh.model.inference_plan({"N": 4}, False).plan.set_weight_packing(False)
        return fresh(x=x)["y"]

    first = p(x=x)["y"]
    np.testing.assert_array_equal(first, unpacked())
    assert plan.pack_count == packs  # reordered once, reused by the call
    p.train_step(x=x, label=label)
    after = p(x=x)["y"]
    assert not np.array_equal(after, first) and plan.pack_count > packs
    np.testing.assert_array_equal(after, unpacked())
