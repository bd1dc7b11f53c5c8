"""The runtime: the reference MLP against a NumPy forward pass (f32 and f64), concurrent calls from several
Python threads, plans cached per binding, thread settings, the SIMD and portable kernel paths agreeing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

import dlc
from dlc import _core
from dlc.model import empty_aligned


def _numpy_mlp(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    xd = x.astype(np.float64)
    h = np.maximum(xd @ params["h1.weight"] + params["h1.bias"], 0)
    h = np.maximum(h @ params["h2.weight"] + params["h2.bias"], 0)
    return h @ params["logits.weight"] + params["logits.bias"]


@pytest.mark.parametrize("dtype,rtol", [("f32", 1e-5), ("f64", 1e-12)])
def test_mlp_matches_numpy(dtype: str, rtol: float) -> None:
    p = dlc.compile("models/mlp.dlm", dtype=dtype, seed=3)
    x = np.random.default_rng(0).standard_normal((64, 784)).astype(np.float32 if dtype == "f32" else np.float64)
    got = p(x=x)["logits"]
    ref = _numpy_mlp({k: v.astype(np.float64) for k, v in p.params.items()}, x)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def test_concurrent_calls_from_threads_are_correct() -> None:
    p = dlc.compile("models/mlp.dlm")
    rng = np.random.default_rng(1)
    batches = [rng.standard_normal((n, 784)).astype(np.float32) for n in (16, 64, 16, 33, 64, 16, 7, 64)]
    expected = [p(x=b)["logits"] for b in batches]
    errors: list[str] = []

    def worker(k: int) -> None:
        for rep in range(20):
            i = (k + rep) % len(batches)
            out = p(x=batches[i])["logits"]
            if not np.array_equal(out, expected[i]):
                errors.append(f"thread {k} rep {rep}: wrong result for batch {i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]


def test_one_plan_per_binding_and_memory_reported() -> None:
    p = dlc.compile("models/mlp.dlm")
    x4, x9 = np.zeros((4, 784), np.float32), np.zeros((9, 784), np.float32)
    p(x=x4)
    p(x=x9)
    p(x=x4)
    keys = [k for k in p.model._plans if k[0] == "infer"]
    assert len(keys) == 2
    mem = p.memory
    assert 0 < mem["lower_bound_bytes"] <= mem["arena_bytes"] <= mem["naive_bytes"]


def test_thread_count_setting_keeps_results() -> None:
    p = dlc.compile("models/gelu_mlp.dlm")
    x = np.random.default_rng(2).standard_normal((64, 256)).astype(np.float32)
    before = dlc.get_num_threads()
    try:
        dlc.set_num_threads(1)
        one = p(x=x)["y"]
        dlc.set_num_threads(2)
        two = p(x=x)["y"]
        again = p(x=x)["y"]
    finally:
        dlc.set_num_threads(before)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(two, again)  # deterministic run to run at a fixed thread count
    with pytest.raises(ValueError):
        dlc.set_num_threads(0)


@pytest.mark.parametrize("expr", ["exp(x)", "log(abs(x) + 1)", "tanh(x)", "sigmoid(x)", "gelu(x)",
                                  'gelu(x, approximate="tanh")', "erf(x)", "softplus(x)", "x * 2 + 1"])
def test_simd_and_portable_elementwise_paths_agree(expr: str) -> None:
    """Every tile-loop build (generic, AVX2, AVX-512; a path the CPU lacks falls back to the next one down)."""
    p = dlc.compile(source=f"input x: f32[N, 300]\noutput y = {expr}\n")
    x = np.random.default_rng(3).uniform(-8, 8, (5, 300)).astype(np.float32)
    results = {}
    try:
        for isa in ("generic", "avx2", "avx512"):
            _core.ew_force_isa(isa)
            results[isa] = p(x=x)["y"]
    finally:
        _core.ew_force_isa("")
    for isa in ("avx2", "avx512"):
        np.testing.assert_allclose(results[isa], results["generic"], rtol=2e-6, atol=2e-7, err_msg=isa)
    with pytest.raises(ValueError):
        _core.ew_force_isa("neon")


def test_softmax_rows_agree_on_every_instruction_set_with_nan_and_infinities() -> None:
    """The f32 softmax rows (portable libm; AVX2 and AVX-512 with the vectorized e^x) against NumPy in f64:
    rows of odd lengths around the 8/16-lane loops, large and -inf logits, a NaN row, a +inf row; forward,
    log_softmax and log_softmax's gradient (a training step through cross-entropy of log_softmax)."""
    rng = np.random.default_rng(5)
    for n in (1, 7, 16, 33, 300):
        x = rng.uniform(-30, 30, (6, n)).astype(np.float32)
        x[1, 0] = -np.inf
        x[2, -1] = np.nan
        x[3, n // 2] = np.inf
        x[4] += 80  # e^x overflows unless the row maximum is subtracted first
        p = dlc.compile(source=f"input x: f32[6, {n}]\noutput s = softmax(x)\noutput l = log_softmax(x)\n")
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            x64 = x.astype(np.float64)
            e = np.exp(x64 - x64.max(-1, keepdims=True))
            want = {"s": e / e.sum(-1, keepdims=True), "l": np.log(e / e.sum(-1, keepdims=True))}
        for isa in ("generic", "avx2", "avx512"):
            try:
                _core.ew_force_isa(isa)
                got = p(x=x)
            finally:
                _core.ew_force_isa("")
            for k in want:
                np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=f"{isa} {k} n={n}")
                np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=f"{isa} {k} n={n}")
    source = ("input x: f32[N, 37]\ninput y: i32[N]\noutput logits = dense(x, 37)\n"
              "train {\n loss = mean(-sum(log_softmax(logits) * one_hot(y, 37), axis=-1))\n"
              " optimizer = sgd(lr=0.1)\n}\n")
    data = {"x": rng.standard_normal((9, 37)).astype(np.float32), "y": rng.integers(0, 37, 9).astype(np.int32)}
    grads = {}
    for isa in ("generic", "avx2", "avx512"):
        try:
            _core.ew_force_isa(isa)
            grads[isa] = dlc.compile(source=source).loss_and_grads(**data)[1]
        finally:
            _core.ew_force_isa("")
    for isa in ("avx2", "avx512"):
        for name, g in grads["generic"].items():
            np.testing.assert_allclose(grads[isa][name], g, rtol=1e-5, atol=1e-6, err_msg=f"{isa} {name}")


GEMM_ISAS = ("avx512", "avx2", "scalar")
# (M, K, N): single elements and vectors (the matrix-vector kernels), primes and other non-multiples of every
# register tile (6x16 / 6x8 for avx2 and scalar, 8x32 / 8x16 for avx512), exact tiles, few rows (where the
# avx512 path reads B unpacked) and enough work to run on several threads and several K / epilogue blocks.
GEMM_SHAPES = [(1, 1, 1), (1, 37, 53), (53, 37, 1), (2, 3, 2), (7, 13, 5), (17, 33, 19), (8, 256, 32),
               (9, 257, 33), (31, 101, 47), (16, 144, 1024), (64, 256, 10), (129, 65, 257), (300, 600, 70)]


@contextmanager
def forced_gemm_isa(isa: str) -> Iterator[None]:
    """Runs the block on one GEMM kernel path; skips the test where the CPU lacks it."""
    _core.gemm_force_isa(isa)
    try:
        if _core.gemm_kernel_name() != isa:
            pytest.skip(f"this CPU has no {isa}")
        yield
    finally:
        _core.gemm_force_isa("")


def _gemm_operands(m: int, k: int, n: int, ta: bool, tb: bool, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(m * 7919 + k * 31 + n)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("m,k,n", GEMM_SHAPES)
@pytest.mark.parametrize("ta,tb", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_paths_agree_with_numpy(isa: str, m: int, k: int, n: int, ta: bool, tb: bool) -> None:
    a, b = _gemm_operands(m, k, n, ta, tb, np.float64)
    ref = (a.T if ta else a) @ (b.T if tb else b)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    ref32 = (a32.T if ta else a32).astype(np.float64) @ (b32.T if tb else b32).astype(np.float64)
    with forced_gemm_isa(isa):
        got32 = _core.gemm_f32(a32, b32, ta, tb)
        got64 = _core.gemm_f64(a, b, ta, tb)
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    np.testing.assert_allclose(got32, ref32, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    np.testing.assert_allclose(got64, ref, rtol=1e-12, atol=1e-12 * np.sqrt(k))


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_paths_are_deterministic(isa: str, dtype: type) -> None:
    """Same bits run to run and for any thread count: each element of C is summed by one thread in a fixed
    order, whatever the thread grid, the edge tiles or the matrix-vector and small-M column split."""
    gemm = _core.gemm_f32 if dtype == np.float32 else _core.gemm_f64
    before = dlc.get_num_threads()
    try:
        with forced_gemm_isa(isa):
            # few rows: the direct-B (as stored) and small-M dot (transposed B) kernels, split by column chunks
            for m, k, n in [(203, 517, 301), (1, 4099, 777), (777, 4099, 1), (20, 300, 1000), (2, 1031, 700),
                            (9, 1031, 700), (40, 1031, 700)]:
                for ta, tb in [(False, False), (True, True)]:
                    a, b = _gemm_operands(m, k, n, ta, tb, dtype)
                    dlc.set_num_threads(2)
                    first = gemm(a, b, ta, tb)
                    np.testing.assert_array_equal(gemm(a, b, ta, tb), first)
                    dlc.set_num_threads(1)
                    np.testing.assert_array_equal(gemm(a, b, ta, tb), first)
    finally:
        dlc.set_num_threads(before)


@pytest.mark.parametrize("isa", GEMM_ISAS)
@pytest.mark.parametrize("dtype", ["f32", "f64"])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("rows,k,n", [(1, 37, 53), (5, 37, 53), (67, 37, 53), (300, 300, 600)])
def test_gemm_paths_with_plan_epilogue(isa: str, dtype: str, fuse: bool, rows: int, k: int, n: int) -> None:
    """relu(a @ W + b) through a plan: fused, the bias and relu run as the GEMM's epilogue on each finished
    block of C (several row and column blocks at 300 x 600, the matrix-vector path at one row)."""
    p = dlc.compile(source=f"input a: {dtype}[N, {k}]\nparam W: {dtype}[{k}, {n}]\nparam b: {dtype}[{n}]\n"
                    "output y = relu(a @ W + b)\n", dtype=dtype, fuse=fuse)
    np_dtype = np.float32 if dtype == "f32" else np.float64
    rng = np.random.default_rng(rows + k + n)
    w = rng.standard_normal((k, n)).astype(np_dtype)
    bias = rng.standard_normal(n).astype(np_dtype)
    a = rng.standard_normal((rows, k)).astype(np_dtype)
    p.set_params({"W": w, "b": bias})
    ref = np.maximum(a.astype(np.float64) @ w.astype(np.float64) + bias, 0)
    with forced_gemm_isa(isa):
        got = p(a=a)["y"]
        again = p(a=a)["y"]
    tol = 1e-4 if dtype == "f32" else 1e-12
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.sqrt(k))
    np.testing.assert_array_equal(again, got)


def test_gemm_isa_selection() -> None:
    automatic = _core.gemm_kernel_name()
    assert automatic in GEMM_ISAS
    with pytest.raises(ValueError):
        _core.gemm_force_isa("sse9")
    assert _core.gemm_kernel_name() == automatic
    _core.gemm_force_scalar(True)
    try:
        assert _core.gemm_kernel_name() == "scalar"
    finally:
        _core.gemm_force_scalar(False)
    assert _core.gemm_kernel_name() == automatic


def test_bad_plan_use_is_an_exception_not_a_crash() -> None:
    p = dlc.compile("models/mlp.dlm", dims={"N": 4})
    lowered = p.compile_plan()
    with pytest.raises(ValueError):
        lowered.plan.run([np.zeros((2, 784), np.float32)], [np.empty((4, 10), np.float32)])
    with pytest.raises(ValueError):
        lowered.plan.run([], [np.empty((4, 10), np.float32)])
    with pytest.raises(ValueError, match="input 'x'"):
        p(x=np.zeros((4, 784), np.int64))


def test_plan_matmuls_use_every_thread() -> None:
    """Regression: a one-thread parallel region around the GEMM made its own region nested, so every matmul in a
    plan ran on a single core."""
    before = dlc.get_num_threads()
    try:
        dlc.set_num_threads(2)
        p = dlc.compile(source="input a: f32[N, 512]\nparam W: f32[512, 512]\noutput y = a @ W\n")
        p(a=np.ones((512, 512), np.float32))
        assert _core.gemm_last_team_size() == 2
    finally:
        dlc.set_num_threads(before)


@pytest.mark.parametrize("expr,ref", [
    ("sum(exp(x) * 2.0, axis=-1)", lambda x: (np.exp(x) * 2).sum(-1)),
    ("sum(exp(x), axis=1)", lambda x: np.exp(x).sum(1)),
    ("mean(square(x) + x, axis=[0, 2])", lambda x: (x ** 2 + x).mean((0, 2))),
    ("mean(relu(x), axis=-1, keepdims=true)", lambda x: np.maximum(x, 0).mean(-1, keepdims=True)),
    ("sum(abs(x))", lambda x: np.abs(x).sum()),
])
def test_fused_reductions_with_an_elementwise_prologue(expr: str, ref) -> None:
    """Regression: the reduced output of a fused reduction over an inner axis without keepdims was addressed
    as if its axes were the leading ones, writing past the end of its buffer."""
    p = dlc.compile(source=f"input x: f32[N, 5, 7]\noutput y = {expr}\n")
    kernels = [s.kernel for s in p.compile_plan({"N": 3}).steps]
    assert kernels == ["ew_reduce"]
    x = np.random.default_rng(4).standard_normal((3, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(p(x=x)["y"], ref(x.astype(np.float64)), rtol=1e-5, atol=1e-5)


def test_fused_per_channel_sums_over_long_rows() -> None:
    """ew_reduce sums each reduced row of a tile in eight lanes (a conv bias gradient's sum over [N, C, H, W]
    to [C]): rows longer than a tile with a tail that is no multiple of 8 match NumPy in double precision, and
    give the same bits on 1 and 2 threads."""
    p = dlc.compile(source="input x: f32[N, 6, 29, 27]\noutput y = sum(relu(x) * x, axis=[0, 2, 3])\n")
    assert [s.kernel for s in p.compile_plan({"N": 9}).steps] == ["ew_reduce"]
    x = np.random.default_rng(6).standard_normal((9, 6, 29, 27)).astype(np.float32)
    before = dlc.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 2):
            dlc.set_num_threads(threads)
            runs.append(p(x=x)["y"])
    finally:
        dlc.set_num_threads(before)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(runs[0], (np.maximum(x64, 0) * x64).sum((0, 2, 3)), rtol=1e-6)
    np.testing.assert_array_equal(runs[1], runs[2])


def test_calls_reusing_a_plan_still_check_their_inputs() -> None:
    """The fast path for repeated calls keys on names, shapes and dtypes, so it never skips a check."""
    p = dlc.compile(source="input x: f32[N, 4]\ninput k: i32[N]\noutput y = x * 2.0\n")
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(p(x=x)["y"], 2 * x)
    np.testing.assert_array_equal(p(x=x)["y"], 2 * x)
    with pytest.raises(ValueError, match="input 'x'"):
        p(x=np.ones((2, 4), np.int64))
    with pytest.raises(ValueError, match="unknown input 'z'"):
        p(x=x, z=x)
    with pytest.raises(ValueError, match="input 'x'"):
        p(x=np.ones((2, 5), np.float32))
    np.testing.assert_array_equal(p(x=np.asfortranarray(np.ones((3, 4), np.float32)))["y"], np.full((3, 4), 2.0))
    np.testing.assert_array_equal(p(x=x, k=np.zeros(2, np.int32))["y"], 2 * x)  # a known input the plan ignores
    np.testing.assert_array_equal(p(x=np.ones((2, 4)))["y"], 2 * x)  # float64 is converted, never reinterpreted
    np.testing.assert_array_equal(p(x=np.ones((2, 4)))["y"], 2 * x)


def test_outputs_are_computed_in_the_callers_array_unless_it_overlaps_an_input() -> None:
    """A plan writes an output straight into the caller's array (Plan::set_output_home) when the array is
    64-byte aligned and overlaps no input or other output; otherwise it computes in its arena and copies out
    at the end, so an `out=` array that is also an input still gets the result of the original input."""
    source = ("input x: f32[N, 64]\nparam w: f32[64] = normal(std=1.0)\nh = tanh(x * w + 1.0)\n"
              "output y = h * h - x\noutput z = h\noutput z2 = h\n")
    program = dlc.compile(source=source, seed=1, fuse=False)  # y's buffer first holds h * h: an early write
    model = program.model
    lowered = model.inference_plan({"N": 3}, False)
    homes = lowered.recipe.output_homes
    assert 0 in homes and 1 not in homes and 2 not in homes  # z and z2 share one buffer: both are copied
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    want = model.run_plan(lowered, {"x": x.copy()})
    assert want["y"].ctypes.data % 64 == 0
    h = np.tanh(x * model.params["w"] + 1.0)
    np.testing.assert_allclose(want["y"], h * h - x, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(want["z"], want["z2"])
    shared = empty_aligned((3, 64), np.dtype(np.float32))  # the output array is the input array
    shared[...] = x
    got = model.run_plan(lowered, {"x": shared}, out={"y": shared})
    assert got["y"] is shared
    np.testing.assert_array_equal(shared, want["y"])
    raw = np.zeros(3 * 64 + 1, np.float32)  # misaligned by 4 bytes: copied out of the arena
    unaligned = raw[1:].reshape(3, 64)
    model.run_plan(lowered, {"x": x}, out={"y": unaligned})
    np.testing.assert_array_equal(unaligned, want["y"])
