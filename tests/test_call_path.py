"""The repeated inference call (dlc/inference.py, csrc/bindings_call.h): a call with the same input signature as
the latest checked one runs through `_core.Call` without Python's checks. Anything that differs after such a
call must still be checked as on a first call: every bad array gets its ValueError naming it."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc import _core
from dlc.artifact import save_artifact

SOURCE = """input x: f32[N, 16]
input m: f32[16]
output y = relu(x) * m
output s = sum(x, axis=1)
"""


def _program(**kw) -> dlc.Program:
    return dlc.compile(source=SOURCE, **kw)


def _inputs(n: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((n, 16), dtype=np.float32), "m": rng.standard_normal(16, dtype=np.float32)}


def _want(x: np.ndarray, m: np.ndarray) -> dict[str, np.ndarray]:
    return {"y": np.maximum(x, 0) * m, "s": x.sum(axis=1)}


def _check(got: dict[str, np.ndarray], x: np.ndarray, m: np.ndarray) -> None:
    want = _want(np.asarray(x, np.float32), np.asarray(m, np.float32))
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)


def test_repeated_call_takes_the_cpp_path_and_matches() -> None:
    p = _program()
    a = _inputs()
    _check(p(**a), **a)
    latest = p._calls._latest[False]
    assert latest.fast(dict(a), p.seed, 0) is not None  # the signature matches: runs in C++
    for _ in range(3):
        got = p(**a)
        _check(got, **a)
    a["x"][...] = -a["x"]  # the same arrays, new contents: read afresh
    _check(p(**a), **a)


def test_outputs_are_fresh_aligned_writeable_arrays() -> None:
    p = _program()
    a = _inputs()
    p(**a)
    first, second = p(**a), p(**a)
    for k in first:
        assert first[k] is not second[k] and not np.shares_memory(first[k], second[k])
        assert first[k].ctypes.data % 64 == 0 and first[k].flags.writeable and first[k].flags.c_contiguous
    first["y"][...] = 7
    np.testing.assert_array_equal(second["y"], _want(a["x"], a["m"])["y"].astype(np.float32))


@pytest.mark.parametrize("strict", [False, True])
def test_changes_after_a_cached_call_are_still_checked(strict: bool) -> None:
    p = _program(strict_dtypes=strict)
    a = _inputs()
    p(**a)
    p(**a)  # now the latest signature, served in C++
    with pytest.raises(ValueError, match="input 'm'"):
        p(x=a["x"], m=np.ones(17, np.float32))  # a fixed dimension changed
    with pytest.raises(ValueError, match="input 'x'"):
        p(x=a["x"].reshape(3, 16, 1), m=a["m"])  # the rank changed
    with pytest.raises(ValueError, match="missing input 'm'"):
        p(x=a["x"])
    with pytest.raises(ValueError, match="unknown input 'z'"):
        p(**a, z=a["x"])
    f64 = {"x": a["x"].astype(np.float64), "m": a["m"]}
    if strict:
        with pytest.raises(ValueError, match="input 'x': expected dtype f32"):
            p(**f64)
    else:
        _check(p(**f64), **a)
    with pytest.raises(ValueError, match="input 'x'"):
        p(x=np.array(["a"] * 48).reshape(3, 16), m=a["m"])
    _check(p(**a), **a)  # and the cached signature still works after all of them


def test_other_layouts_after_a_cached_call_are_converted() -> None:
    p = _program()
    a = _inputs()
    p(**a)
    p(**a)
    wide = np.zeros((3, 32), np.float32)
    wide[:, ::2] = a["x"]
    _check(p(x=wide[:, ::2], m=a["m"]), **a)  # strided: copied by the checked path
    big = a["x"].astype(">f4")
    _check(p(x=big, m=a["m"]), **a)  # same kind, other byte order: converted, not read as little-endian
    _check(p(x=a["x"].tolist(), m=a["m"]), **a)
    _check(p(**a), **a)


def test_alternating_batch_sizes_each_get_their_plan() -> None:
    p = _program()
    batches = [_inputs(n) for n in (3, 5, 3, 1, 5, 3)]
    for a in batches * 2:
        _check(p(**a), **a)


def test_modes_keep_their_own_signature() -> None:
    p = dlc.compile(source="input x: f32[N, 64]\noutput y = dropout(x, 0.5)\n")
    x = np.ones((4, 64), np.float32)
    np.testing.assert_array_equal(p(x=x)["y"], x)
    np.testing.assert_array_equal(p(x=x)["y"], x)
    p.train()
    y = p(x=x)["y"]
    y = p(x=x)["y"]
    assert (y == 0).any() and (y == 2).any()
    p.eval()
    np.testing.assert_array_equal(p(x=x)["y"], x)


def test_new_parameters_are_seen_by_the_cached_call() -> None:
    p = dlc.compile("models/mlp.dlm")
    x = np.random.default_rng(0).standard_normal((2, 784), dtype=np.float32)
    p(x=x)
    before = p(x=x)["logits"]
    p.set_params({"logits.bias": p.params["logits.bias"] + 1})
    np.testing.assert_allclose(p(x=x)["logits"], before + 1, rtol=1e-5, atol=1e-5)


def test_profiled_calls_are_still_recorded() -> None:
    p = _program()
    a = _inputs()
    p(**a)
    p(**a)
    with dlc.profile() as prof:
        _check(p(**a), **a)
    assert any(e.get("name") == "inference" for e in prof.events)


def test_loaded_artifact_takes_the_same_path(tmp_path) -> None:
    p = _program()
    path = tmp_path / "m.dlc"
    save_artifact(p, path)
    loaded = dlc.load(path)  # no parameters: nothing untrained to warn about
    a = _inputs()
    for _ in range(3):
        _check(loaded(**a), **a)
    with pytest.raises(ValueError, match="input 'm'"):
        loaded(x=a["x"], m=np.ones(15, np.float32))


def test_call_refuses_an_inconsistent_signature() -> None:
    p = _program()
    a = _inputs()
    p(**a)
    lowered = p._calls._latest[False].lowered
    with pytest.raises(ValueError, match="one name, dtype, shape and position"):
        _core.Call(lowered.plan, ["x"], [], [[3, 16]], [0], 2, lowered.output_names, False)
    with pytest.raises(ValueError, match="one name per plan output"):
        _core.Call(lowered.plan, ["x"], [np.dtype(np.float32)], [[3, 16]], [0], 2, ["y"], False)
