"""Issue 10, item 3: NumPy's default dtypes are accepted. Integer inputs take any integer dtype whose values
fit (checked), float inputs take float64 and float16 (converted); strict_dtypes=True refuses instead."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

MODEL = """
input x: f32[N, 4]
input y: i32[N]
output logits = dense(x, 3)
train {
    loss = cross_entropy(logits, y)
    optimizer = sgd(lr=0.1)
}
"""


def _data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)  # float64 and int64: NumPy's defaults


def test_float64_and_int64_work_in_calls_and_training() -> None:
    x, y = _data()
    a, b = dlc.compile(source=MODEL), dlc.compile(source=MODEL)
    np.testing.assert_array_equal(a(x=x)["logits"], b(x=x.astype(np.float32))["logits"])
    np.testing.assert_array_equal(a(x=x.astype(np.float16))["logits"],
                                  b(x=x.astype(np.float16).astype(np.float32))["logits"])
    assert a.train_step(x=x, y=y) == b.train_step(x=x.astype(np.float32), y=y.astype(np.int32))
    assert a.evaluate({"x": x, "y": y.astype(np.uint8)}) == b.evaluate({"x": x.astype(np.float32),
                                                                         "y": y.astype(np.int32)})
    history = a.fit((x, y), epochs=1, batch_size=4, verbose=False)
    assert len(history["loss"]) == 1
    loss, _ = a.loss_and_grads(x=x, y=y)
    assert np.isfinite(loss)


def test_integers_that_do_not_fit_are_refused() -> None:
    x, y = _data()
    p = dlc.compile(source=MODEL)
    with pytest.raises(ValueError, match=r"input 'y': values from 1 to 4294967296 do not fit i32"):
        p.train_step(x=x, y=np.where(y == 0, 2 ** 32, y))


def test_other_kinds_and_strict_dtypes_are_refused() -> None:
    x, y = _data()
    with pytest.raises(ValueError, match=r"input 'y': expected dtype i32 \(int32\), got float64"):
        dlc.compile(source=MODEL).train_step(x=x, y=y.astype(np.float64))
    strict = dlc.compile(source=MODEL, strict_dtypes=True)
    with pytest.raises(ValueError, match=r"input 'x': expected dtype f32 \(float32\), got float64.*strict_dtypes"):
        strict(x=x)
    with pytest.raises(ValueError, match=r"input 'y': expected dtype i32 \(int32\), got int64"):
        strict.train_step(x=x.astype(np.float32), y=y)


def test_zero_d_arrays_in_fit_predict_and_evaluate_name_the_input() -> None:
    # Regression (issue 27, defect 1): len() of a 0-d array was a bare "TypeError: len() of unsized object";
    # now they say what a call with the same array says.
    p = dlc.compile(source=MODEL)
    x, y = _data()
    with pytest.raises(ValueError, match=r"input 'x': expected rank 2 \(f32\[N, 4\]\), got an array of shape \(\)"):
        p(x=np.float32(1))
    with pytest.raises(ValueError, match=r"input 'x': expected rank 2 \(f32\[N, 4\]\), got an array of shape \(\)"):
        p.predict({"x": np.float32(1)})
    with pytest.raises(ValueError, match=r"input 'y': expected rank 1 \(i32\[N\]\), got an array of shape \(\)"):
        p.evaluate({"x": x, "y": np.int32(0)})
    with pytest.raises(ValueError, match=r"input 'x': expected rank 2"):
        p.fit((np.float32(1), y), epochs=1, verbose=False)
