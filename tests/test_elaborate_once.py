"""A model is elaborated once per binding of its symbolic dimensions, and the train block is read into a fork
of that elaboration: inference plans, training plans, configure() and the recipe share it without changing
it."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
import dlc.model

SOURCE = """
input x: f32[N, 6]
input y: i32[N]
h = dense(x, 8) |> relu
output logits = dense(h, 3)
train {
    penalty = 0.01 * mean(logits * logits)
    loss = cross_entropy(logits, y) + penalty
    metrics = [accuracy(logits, y)]
    optimizer = sgd(lr=0.1)
}
"""


def _batch(n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((n, 6)).astype(np.float32), "y": rng.integers(0, 3, n).astype(np.int32)}


def test_one_elaboration_per_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, int]] = []
    real = dlc.model.elaborate

    def counting(module, dims=None, dtype="f32"):  # type: ignore[no-untyped-def]
        calls.append(dict(dims or {}))
        return real(module, dims, dtype)

    monkeypatch.setattr(dlc.model, "elaborate", counting)
    program = dlc.compile(source=SOURCE)
    program.configure(clip_norm=1.0)
    assert program.trainer.spec().clip_norm == 1.0
    for _ in range(2):
        program.train_step(**_batch(4))
        program(x=_batch(4)["x"])
    program.evaluate(_batch(4), batch_size=4)
    program.train_step(**_batch(5))
    assert calls == [{}, {"N": 4}, {"N": 5}]


def test_reading_the_recipe_leaves_the_elaboration_unchanged() -> None:
    program = dlc.compile(source=SOURCE, dims={"N": 4})
    el = program.model.elaborated()
    nodes, values, env = len(el.builder.nodes), dict(el.builder.values), dict(el.train_scope.env)
    program.configure(loss="mse(logits, logits * 0.5)")
    graph, spec = program.trainer.recipe(program.model.dims)
    assert len(graph.nodes) > nodes and spec.loss in graph.values and spec.loss not in values
    program.configure(loss="mean(logits)")
    again, _ = program.trainer.recipe(program.model.dims)
    assert len(el.builder.nodes) == nodes and el.builder.values == values and el.train_scope.env.keys() == env.keys()
    assert "penalty" not in env  # the block's local terms live in the fork
    assert again is not graph
    before = program.train_step(**_batch(4))["loss"]
    assert np.isfinite(before)
