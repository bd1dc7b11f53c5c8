"""Every op that consumes integer labels or ids rejects one outside its range with the same exception,
IndexError, naming the value (regression: nll added 0 for such a row but counted it in the mean, accuracy
returned 0.0 and one_hot an all-zero row, while cross_entropy and embedding raised)."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

CASES = {
    "nll": "output y = nll(log_softmax(x), t)",
    "accuracy": "output y = accuracy(x, t)",
    "one_hot": "output y = one_hot(t, num_classes=3)",
    "cross_entropy": "output y = cross_entropy(x, t)",
    "cross_entropy_smoothed": "output y = cross_entropy(x, t, label_smoothing=0.1)",
    "embedding": "output y = embedding(t, 3, 2)",
}


@pytest.mark.parametrize("dtype", ["i32", "i64"])
@pytest.mark.parametrize("bad", [3, -1, 2 ** 31 - 1])
@pytest.mark.parametrize("case", sorted(CASES))
def test_out_of_range_label_is_an_index_error(case: str, bad: int, dtype: str) -> None:
    prog = dlc.compile(source=f"input x: f32[4, 3]\ninput t: {dtype}[4]\n{CASES[case]}\n")
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    good = np.array([0, 1, 2, 1], dtype=dtype.replace("i", "int"))
    prog(x=x, t=good)  # in range: runs
    with pytest.raises(IndexError, match=str(bad)):
        prog(x=x, t=np.array([0, 1, bad, 1], dtype=good.dtype))


def test_out_of_range_label_in_training_is_an_index_error_and_changes_nothing() -> None:
    prog = dlc.compile(source="input x: f32[4, 3]\ninput t: i32[4]\nparam W: f32[3, 3]\n"
                              "output y = log_softmax(x @ W)\ntrain {\n  loss = nll(y, t)\n}\n")
    before = {k: v.copy() for k, v in prog.params.items()}
    with pytest.raises(IndexError):
        prog.train_step(x=np.ones((4, 3), np.float32), t=np.array([0, 1, 7, 1], np.int32))
    for k, v in prog.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_nll_and_one_hot_values_are_unchanged_in_range() -> None:
    prog = dlc.compile(source="input x: f32[2, 3]\ninput t: i32[2]\noutput l = nll(x, t)\n"
                              "output o = one_hot(t, num_classes=3)\noutput a = accuracy(x, t)\n")
    x = np.array([[-1.0, -2.0, -3.0], [-0.5, -0.25, -4.0]], np.float32)
    out = prog(x=x, t=np.array([0, 2], np.int32))
    np.testing.assert_allclose(out["l"], (1.0 + 4.0) / 2)
    np.testing.assert_array_equal(out["o"], [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(out["a"], 0.5)
