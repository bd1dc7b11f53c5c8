"""The training half of `Program`: loss_and_grads, train_step, fit, evaluate, configure, checkpoints.

Each entry point runs one compiled plan per call (see step.py); Python only batches data, computes the
learning rate for the step and keeps the counters that make a resumed run bit-identical: the optimizer step
(which also seeds dropout masks) and the epoch (which seeds shuffling).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..ir import Graph
from ..lower import LoweredPlan, lower
from ..passes import PassContext, run_pipeline
from . import step as step_graphs
from .recipe import TrainSpec
from .schedules import learning_rate


class TrainingMixin:
    """Mixed into Program; relies on its parameters, plan cache and input checks."""

    _params: dict[str, np.ndarray]
    _plans: dict[tuple[Any, ...], LoweredPlan]
    _fuse: bool
    _seed: int
    _dims: dict[str, int]

    def _init_training(self) -> None:
        self._opt: dict[str, np.ndarray] = {}
        self._overrides: dict[str, Any] = {}
        self._step = 0
        self._epoch = 0
        self._graphs: dict[tuple[Any, ...], step_graphs.TrainingGraph] = {}

    # ---- configuration ----

    def configure(self, **settings: Any) -> "TrainingMixin":
        """Overrides entries of the model's train block: optimizer=("sgd", {"lr": 0.1}), schedule=...,
        loss="mse(out, target)", metrics=[...], clip_norm=..., l2=..., freeze=[...], epochs=..., etc."""
        merged = {**self._overrides, **settings}
        from ..frontend.elaborate import elaborate
        from .recipe import RecipeReader
        el = elaborate(self._module, dict(self._dims), self._dtype)  # type: ignore[attr-defined]
        RecipeReader(el).read(merged)  # validates before anything changes
        self._overrides = merged
        self._drop_training_plans()
        return self

    def freeze(self, *prefixes: str) -> "TrainingMixin":
        """Stops training the parameters under these name prefixes (batch-norm statistics included)."""
        current = list(self.spec().freeze)
        return self.configure(freeze=current + [p for p in prefixes if p not in current])

    def unfreeze(self, *prefixes: str) -> "TrainingMixin":
        return self.configure(freeze=[p for p in self.spec().freeze if p not in prefixes])

    def spec(self) -> TrainSpec:
        return step_graphs.spec_only(self)  # type: ignore[arg-type]

    def _drop_training_plans(self) -> None:
        for key in [k for k in self._plans if k[0] in ("loss", "grads", "step")]:
            del self._plans[key]
        self._graphs.clear()

    @property
    def step_count(self) -> int:
        """Optimizer steps taken so far."""
        return self._step

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def optimizer_state(self) -> dict[str, np.ndarray]:
        from ..program import readonly_views
        return readonly_views(self._opt)

    # ---- plans ----

    def persistent_names(self) -> list[str]:
        return list(self._params) + list(self._opt)

    def lower_with_persistent(self, graph: Graph) -> LoweredPlan:
        for p in graph.params:
            if p.kind == "opt" and p.name not in self._opt:
                self._opt[p.name] = np.zeros(tuple(int(d) for d in p.type.shape),
                                             dtype=self._params[p.name.split("/")[0]].dtype)
        lowered = lower(graph, self.persistent_names())
        lowered.plan.set_persistent([*self._params.values(), *self._opt.values()])
        return lowered

    def training_plan(self, kind: str, binding: Mapping[str, int]) -> tuple[LoweredPlan, step_graphs.TrainingGraph]:
        key = (kind, tuple(sorted(binding.items())))
        with self._lock:  # type: ignore[attr-defined]
            if key not in self._plans:
                tg = step_graphs.build(self, binding, kind)  # type: ignore[arg-type]
                graph = run_pipeline(tg.graph, PassContext(training=kind != "loss", fuse=self._fuse))
                self._plans[key] = self.lower_with_persistent(step_graphs.strip_unused_inputs(graph))
                self._graphs[key] = tg
            return self._plans[key], self._graphs[key]

    def _prepare(self, batch: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        names = [n for n in batch]
        arrays = self.check_inputs(batch, names)  # type: ignore[attr-defined]
        return arrays, self.bind_dims(arrays, names)  # type: ignore[attr-defined]

    # ---- one batch ----

    def loss_and_grads(self, **batch: Any) -> tuple[float, dict[str, np.ndarray]]:
        """The loss and its gradients: every trainable parameter by name, plus the inputs listed in
        input_grads by input name. Nothing is updated."""
        arrays, binding = self._prepare(batch)
        lowered, tg = self.training_plan("grads", binding)
        out = self.run_plan(lowered, arrays, training=True)  # type: ignore[attr-defined]
        grads = {k[len("grad:"):]: v for k, v in out.items() if k.startswith("grad:")}
        return float(out["loss"]), grads

    def train_step(self, **batch: Any) -> dict[str, float]:
        """One compiled step: forward, loss, backward and the optimizer update. Returns loss and metrics."""
        arrays, binding = self._prepare(batch)
        lowered, tg = self.training_plan("step", binding)
        lr = learning_rate(tg.spec.optimizer.lr, tg.spec.schedule, self._step)
        t = self._step + 1
        arrays[step_graphs.HYPER] = np.array([lr, float(t), 1.0, 0.0], dtype=np.float64)
        out = self.run_plan(lowered, arrays, step=t, training=True)  # type: ignore[attr-defined]
        self._step = t
        result = {k: float(v) for k, v in out.items()}
        result["lr"] = lr
        return result

    def evaluate_batch(self, **batch: Any) -> dict[str, float]:
        arrays, binding = self._prepare(batch)
        lowered, _ = self.training_plan("loss", binding)
        out = self.run_plan(lowered, arrays, training=False)  # type: ignore[attr-defined]
        return {k: float(v) for k, v in out.items()}

    # ---- whole datasets ----

    def evaluate(self, data: Any, batch_size: int | None = None) -> dict[str, float]:
        """Loss and metrics over a dataset in evaluation mode, averaged over samples."""
        from .loop import evaluate
        return evaluate(self, data, batch_size)

    def fit(self, data: Any, *, epochs: int | None = None, batch_size: int | None = None,
            validation: Any = None, callbacks: list[Callable[..., Any]] | None = None, shuffle: bool = True,
            verbose: bool = True) -> dict[str, list[float]]:
        """Trains for `epochs` more epochs; returns the history of loss and metrics per epoch."""
        from .loop import fit
        return fit(self, data, epochs=epochs, batch_size=batch_size, validation=validation,
                   callbacks=callbacks or [], shuffle=shuffle, verbose=verbose)

    # ---- checkpoints ----

    def save_checkpoint(self, path: str) -> None:
        from .checkpoint import save_checkpoint
        save_checkpoint(self, path)

    def load_checkpoint(self, path: str) -> None:
        from .checkpoint import load_checkpoint
        load_checkpoint(self, path)
