"""Layer norm fused with its elementwise producer and consumers (passes/row_fusion.py, lowering/rows.py,
csrc/kernels/norm/layer_norm_fused_cpu.cpp): which kernels a plan gets, and that the fused kernels compute
what the unfused graph and a NumPy reference compute, forward and backward, f32 and f64, for odd row lengths,
bit-identically run to run and across thread counts, on the SIMD and the portable evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dlc
from dlc import _core

TRAIN = "train {\n    loss = mean(y * y)\n    optimizer = adam(lr=1e-3)\n}\n"


def chain(shape: str, width: int) -> str:
    """ew_chain's structure (models/ew_chain.dlm) over any shape: prologue, layer norm, epilogue, the loss."""
    return (f"input x: f32[{shape}, {width}]\nparam scale: f32[{width}] = 1.0\nparam shift: f32[{width}] = 0.0\n"
            "h = gelu(x * scale + shift) + x\nn = layer_norm(h)\noutput y = tanh(n) * 0.5 + 0.5\n" + TRAIN)


def kernels(p: dlc.Program, dims: dict[str, int], train: bool = False) -> list[str]:
    lowered = p.training_plan("step", dims)[0] if train else p.compile_plan(dims, training=False)
    return [s.kernel for s in lowered.steps]


def perturbed(p: dlc.Program, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters away from their ones/zeros initialization, so every affine term matters."""
    return {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in p.params.items()}


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x)


def chain_reference(x: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    x = x.astype(np.float64)
    u = x * params["scale"] + params["shift"]
    h = 0.5 * u * (1 + _erf(u / math.sqrt(2))) + x
    mu = h.mean(-1, keepdims=True)
    n = (h - mu) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) * params["n.weight"] + params["n.bias"]
    return np.tanh(n) * 0.5 + 0.5


def test_ew_chain_is_one_kernel_forward_and_two_in_training() -> None:
    p = dlc.compile("models/ew_chain.dlm")
    assert kernels(p, {"N": 4}) == ["layer_norm_fused"]
    assert kernels(p, {"N": 4}, train=True) == ["layer_norm_fused", "layer_norm_grad_fused", "adam"]
    # The loss gradient's elementwise start runs in the forward kernel, which stores it as one tensor (not y
    # and 1 - tanh^2): the backward kernel has no prologue, and the forward kernel writes h, gy, gelu'(u).
    forward, backward = p.training_plan("step", {"N": 4})[0].steps[:2]
    assert backward.label.startswith("layer_norm_grad+")
    assert forward.label.endswith("neg+add_scalar+mul+gelu_grad")
    for train in (False, True):  # the planner still packs the arena to its lower bound
        lowered = p.training_plan("step", {"N": 4})[0] if train else p.compile_plan({"N": 4}, training=False)
        assert lowered.memory.arena_bytes == lowered.memory.lower_bound_bytes


@pytest.mark.parametrize("shape,dims,width", [("N", {"N": 5}, 7), ("N", {"N": 3}, 300), ("B, T", {"B": 2, "T": 3}, 33),
                                             ("N", {"N": 70}, 1000)])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_fused_chain_matches_unfused_and_numpy(shape: str, dims: dict[str, int], width: int, dtype: str) -> None:
    fused = dlc.compile(source=chain(shape, width), dims=dims, dtype=dtype)
    unfused = dlc.compile(source=chain(shape, width), dims=dims, dtype=dtype, fuse=False)
    assert kernels(fused, dims) == ["layer_norm_fused"]
    rng = np.random.default_rng(width)
    params = perturbed(fused, rng)
    fused.set_params(params)
    unfused.set_params(params)
    x = rng.standard_normal((*dims.values(), width)).astype(np.float32 if dtype == "f32" else np.float64)
    tol = 1e-12 if dtype == "f64" else 2e-5
    y = fused(x=x)["y"]
    np.testing.assert_allclose(y, unfused(x=x)["y"], rtol=tol, atol=tol)
    np.testing.assert_allclose(y, chain_reference(x, params), rtol=tol if dtype == "f64" else 1e-4,
                               atol=tol if dtype == "f64" else 1e-4)
    loss_f, grads_f = fused.loss_and_grads(x=x)
    loss_u, grads_u = unfused.loss_and_grads(x=x)
    assert loss_f == pytest.approx(loss_u, rel=tol)
    for name, g in grads_u.items():
        scale = max(1e-30, float(np.abs(g).max()))
        np.testing.assert_allclose(grads_f[name] / scale, g / scale, rtol=0, atol=100 * tol, err_msg=name)


def test_fused_gradients_match_finite_differences() -> None:
    source = chain("N", 9)
    p = dlc.compile(source=source, dims={"N": 3}, dtype="f64")
    rng = np.random.default_rng(1)
    params = perturbed(p, rng)
    p.set_params(params)
    assert kernels(p, {"N": 3}, train=True)[:2] == ["layer_norm_fused", "layer_norm_grad_fused"]
    x = rng.standard_normal((3, 9))
    _, grads = p.loss_and_grads(x=x)
    eps = 1e-6
    for name in ("scale", "n.weight", "n.bias"):
        numeric = np.zeros_like(params[name])
        for j in range(numeric.size):
            for sign in (1, -1):
                moved = dict(params)
                moved[name] = params[name].copy()
                moved[name][j] += sign * eps
                p.set_params(moved)
                numeric[j] += sign * p.loss_and_grads(x=x)[0] / (2 * eps)
        p.set_params(params)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)


# Prologue only, epilogue only, an epilogue reading another tensor, the normalized value also stored, sum
# tails over rows and over everything, and an epilogue that needs a prologue value (which must not fuse it).
VARIANTS = [
    ("output y = layer_norm(relu(x) - x * 0.5)", ["layer_norm_fused"]),
    ("output y = sigmoid(layer_norm(x)) * x", ["layer_norm_fused"]),
    ("n = layer_norm(exp(x * 0.1))\noutput y = n * 2.0\noutput z = n", ["layer_norm_fused"]),
    ("n = layer_norm(x * x)\noutput y = tanh(n)\noutput s = sum(n * x, axis=0)\noutput t = mean(n)",
     ["layer_norm_fused"]),
    ("h = x * 2.0\noutput y = layer_norm(h) + h", None),
]


@pytest.mark.parametrize("body,expected", VARIANTS)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_fusion_variants_match_unfused(body: str, expected: list[str] | None, dtype: str) -> None:
    source = f"input x: f32[N, 19]\n{body}\n"
    fused = dlc.compile(source=source, dims={"N": 6}, dtype=dtype)
    unfused = dlc.compile(source=source, dims={"N": 6}, dtype=dtype, fuse=False)
    if expected is not None:
        assert kernels(fused, {"N": 6}) == expected
    rng = np.random.default_rng(2)
    params = perturbed(fused, rng)
    fused.set_params(params)
    unfused.set_params(params)
    x = rng.standard_normal((6, 19))
    got, want = fused(x=x), unfused(x=x)
    tol = 1e-12 if dtype == "f64" else 2e-5
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol, err_msg=name)


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_bit_identical_across_runs_and_thread_counts(dtype: str) -> None:
    """Chunks and the order partial sums are combined in depend only on the shape: any thread count gives
    the same bits (forward, loss and gradients, with reduction tails)."""
    p = dlc.compile(source=chain("N", 257), dims={"N": 301}, dtype=dtype)
    x = np.random.default_rng(3).standard_normal((301, 257))
    before = dlc.get_num_threads()
    runs = []
    try:
        for threads in (1, 2, 2, 3):
            dlc.set_num_threads(threads)
            loss, grads = p.loss_and_grads(x=x)
            runs.append([p(x=x)["y"], np.array(loss), *grads.values()])
    finally:
        dlc.set_num_threads(before)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_simd_and_portable_evaluators_agree() -> None:
    p = dlc.compile(source=chain("N", 100), dims={"N": 40})
    x = np.random.default_rng(4).standard_normal((40, 100)).astype(np.float32)
    results = {}
    try:
        for isa in ("generic", ""):
            _core.ew_force_isa(isa)
            loss, grads = p.loss_and_grads(x=x)
            results[isa] = [p(x=x)["y"], np.array(loss), *grads.values()]
    finally:
        _core.ew_force_isa("")
    for a, b in zip(results["generic"], results[""]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def test_dropout_in_the_prologue_draws_the_unfused_masks() -> None:
    """Masks hash each element's flat index in the iteration space; the row kernel's space is the unfused
    group's, so a training step with dropout before the layer norm matches the unfused step."""
    source = ("input x: f32[N, 37]\noutput y = tanh(layer_norm(dropout(x * 2.0, rate=0.3)))\n"
              "train {\n    loss = mean(y * y)\n    optimizer = sgd(lr=0.1)\n}\n")
    fused = dlc.compile(source=source, dims={"N": 5}, dtype="f64")
    unfused = dlc.compile(source=source, dims={"N": 5}, dtype="f64", fuse=False)
    assert kernels(fused, {"N": 5}, train=True) == ["layer_norm_fused", "layer_norm_grad_fused", "sgd"]
    x = np.random.default_rng(5).standard_normal((5, 37))
    for _ in range(2):
        assert fused.train_step(x=x)["loss"] == pytest.approx(unfused.train_step(x=x)["loss"], rel=1e-12)
    for name, value in unfused.params.items():
        np.testing.assert_allclose(fused.params[name], value, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("isa", ["generic", "avx2", ""])
@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_plain_layer_norm_runs_the_fused_kernels_rows(isa: str, dtype: str) -> None:
    """A layer norm with nothing to fuse (the transformer's, whose residual add joined the matmul's epilogue)
    runs the plain kernel on the same row arithmetic as the fused one, for the evaluator's instruction set: the
    fused kernel's bits (its prologue abs(x) is x here), and rows chunked for threads give the same bits at any
    thread count, forward and backward."""
    src = "input x: f32[N, 130]\noutput y = layer_norm({})\ntrain {{\n    loss = mean(y * y)\n}}\n"
    plain = dlc.compile(source=src.format("x"), dims={"N": 77}, dtype=dtype)
    fused = dlc.compile(source=src.format("abs(x)"), dims={"N": 77}, dtype=dtype)
    x = np.random.default_rng(5).random((77, 130)) * 3 + 0.5
    before = dlc.get_num_threads()
    try:
        _core.ew_force_isa(isa)
        results = []
        for threads in (1, 2):
            dlc.set_num_threads(threads)
            loss, grads = plain.loss_and_grads(x=x)
            results.append([plain(x=x)["y"], *grads.values()])
        np.testing.assert_array_equal(fused(x=x)["y"], results[0][0])
    finally:
        _core.ew_force_isa("")
        dlc.set_num_threads(before)
    assert kernels(plain, {"N": 77}) == ["layer_norm"] and kernels(fused, {"N": 77}) == ["layer_norm_fused"]
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    mu = x.mean(axis=1, keepdims=True)
    want = (x - mu) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    tol = 1e-12 if dtype == "f64" else 1e-5
    np.testing.assert_allclose(results[0][0], want, rtol=tol, atol=tol)
