"""Resources a program holds are bounded and failures to get them are clear: plans are cached per binding in
an LRU (regression: 300 batch sizes kept 300 plans, +132 MiB), an arena over the limit is an error naming its
size and the model before anything is allocated, and a big-endian input says so."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.plan_cache import DEFAULT_PLANS, PlanCache

MODEL = "input x: f32[N, 8]\noutput y = relu(x) * 2\n"


def test_plan_cache_keeps_the_most_recently_used() -> None:
    cache: PlanCache[int] = PlanCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # a is now the most recent
    cache["c"] = 3
    assert list(cache) == ["a", "c"]
    with pytest.raises(ValueError):
        PlanCache(0)


def test_many_batch_sizes_keep_a_bounded_number_of_plans() -> None:
    prog = dlc.compile(source=MODEL)
    for n in range(1, 3 * DEFAULT_PLANS):
        np.testing.assert_array_equal(prog(x=np.ones((n, 8), np.float32))["y"], 2.0)
    assert len(prog.model._plans) <= DEFAULT_PLANS and len(prog._calls._by_call_key) <= DEFAULT_PLANS
    np.testing.assert_array_equal(prog(x=np.ones((1, 8), np.float32))["y"], 2.0)  # evicted: compiled again


def test_training_plans_are_bounded_too() -> None:
    prog = dlc.compile(source="input x: f32[N, 3]\ninput t: f32[N, 2]\noutput y = dense(x, 2)\n"
                              "train {\n  loss = mse(y, t)\n}\n")
    for n in range(1, 2 * DEFAULT_PLANS):
        prog.train_step(x=np.ones((n, 3), np.float32), t=np.zeros((n, 2), np.float32))
    assert len(prog.trainer._plans) <= DEFAULT_PLANS


def test_arena_over_the_limit_names_size_and_model(tmp_path) -> None:
    path = tmp_path / "big.dlm"
    path.write_text(MODEL)
    prog = dlc.compile(path)
    dlc.set_arena_limit(1024)
    try:
        with pytest.raises(dlc.ArenaLimitError, match=r"big\.dlm.*arena of [\d,]+ bytes.*limit of 1,024"):
            prog(x=np.ones((64, 8), np.float32))
    finally:
        dlc.set_arena_limit(None)
    assert prog(x=np.ones((64, 8), np.float32))["y"].shape == (64, 8)


def test_default_arena_limit_is_physical_memory() -> None:
    # 2**40 elements pass shape inference; their 4 TiB arena is over any test machine's memory.
    prog = dlc.compile(source="input x: f32[1]\noutput y = broadcast_to(x, [1048576, 1048576]) * 2\n")
    with pytest.raises(dlc.ArenaLimitError, match="over the limit"):
        prog(x=np.ones(1, np.float32))


def test_big_endian_input_says_big_endian(tmp_path) -> None:
    # Regression: the message read "expected float32, got float32".
    src = "input x: f32[2]\noutput y = x * 2\n"
    np.testing.assert_array_equal(dlc.compile(source=src)(x=np.ones(2, ">f4"))["y"], 2.0)  # converted exactly
    with pytest.raises(ValueError, match="big-endian float32"):
        dlc.compile(source=src, strict_dtypes=True)(x=np.ones(2, ">f4"))
    from dlc.artifact import save_artifact
    save_artifact(dlc.compile(source=src), tmp_path / "m.dlc")
    np.testing.assert_array_equal(dlc.load(tmp_path / "m.dlc")(x=np.ones(2, ">f4"))["y"], 2.0)
    with pytest.raises(ValueError, match="big-endian float32"):
        dlc.load(tmp_path / "m.dlc", strict_dtypes=True)(x=np.ones(2, ">f4"))
