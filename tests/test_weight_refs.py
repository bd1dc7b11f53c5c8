"""Weight references: an expression names a layer's parameter (`tok.weight`), so an output head can be tied to
an embedding; the gradient of a tied parameter is the sum over its uses."""

from __future__ import annotations

import numpy as np
import pytest

import dlc

TIED = """
input ids: i32[N, T]
input y: i32[N, T]
tok = embedding(ids, 7, 4)
h = dense(tok, 4) |> tanh
output logits = matmul(h, tok.weight, trans_b=true)
train {
    loss = cross_entropy(logits, y)
}
"""

# The same network with the head as its own parameter, for comparing the two uses' contributions.
UNTIED = TIED.replace("matmul(h, tok.weight, trans_b=true)", "matmul(h, head, trans_b=true)").replace(
    "tok = embedding", "param head: f32[7, 4]\ntok = embedding")


def _batch() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"ids": rng.integers(0, 7, (3, 5)).astype(np.int32), "y": rng.integers(0, 7, (3, 5)).astype(np.int32)}


def test_tied_gradient_matches_finite_differences() -> None:
    program = dlc.compile(source=TIED, dtype="f64", seed=1)
    batch = _batch()
    _, grads = program.loss_and_grads(**batch)
    w = np.array(program.params["tok.weight"])
    numeric = np.zeros_like(w)
    eps = 1e-6
    for j in range(w.size):
        for sign in (1, -1):
            shifted = w.copy()
            shifted.reshape(-1)[j] += sign * eps
            program.set_params({"tok.weight": shifted})
            numeric.reshape(-1)[j] += sign * program.evaluate_batch(**batch)["loss"] / (2 * eps)
    np.testing.assert_allclose(grads["tok.weight"], numeric, rtol=1e-7, atol=1e-9)


def test_tied_gradient_is_the_sum_of_both_uses() -> None:
    tied = dlc.compile(source=TIED, dtype="f64", seed=1)
    untied = dlc.compile(source=UNTIED, dtype="f64", seed=1)
    untied.set_params({"head": tied.params["tok.weight"], "tok.weight": tied.params["tok.weight"],
                       "h.weight": tied.params["h.weight"]})
    batch = _batch()
    loss_t, gt = tied.loss_and_grads(**batch)
    loss_u, gu = untied.loss_and_grads(**batch)
    assert loss_t == pytest.approx(loss_u, rel=1e-12)
    assert np.abs(gu["head"]).max() > 0 and np.abs(gu["tok.weight"]).max() > 0
    np.testing.assert_allclose(gt["tok.weight"], gu["tok.weight"] + gu["head"], rtol=1e-10, atol=1e-12)
    assert "head" not in gt  # one parameter, not a copy


def test_reference_inside_a_block_is_scoped_to_the_block() -> None:
    source = """
block lm(ids) {
    tok = embedding(ids, 5, 3)
    return tok @ transpose(tok.weight)
}
input ids: i32[N]
output y = lm(ids, name="lm")
"""
    program = dlc.compile(source=source, seed=0)
    w = program.params["lm.tok.weight"]
    ids = np.array([1, 4], np.int32)
    np.testing.assert_allclose(program(ids=ids)["y"], w[ids] @ w.T, rtol=1e-6)


def test_unknown_reference_is_located_with_a_hint() -> None:
    with pytest.raises(dlc.CompileError, match=r"did you mean 'tok.weight'") as e:
        dlc.compile(source="input ids: i32[N]\ntok = embedding(ids, 7, 4)\noutput y = tok @ tok.wieght\n")
    assert ":3:18:" in str(e.value)
