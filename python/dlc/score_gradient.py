"""The evaluation-form gradient of a weighted score of one named tensor with respect to an input image.

Attribution (dlc/explain.py) and feature visualization (dlc/feature_vis.py) both need the same thing: for a
tensor t of the model (an output such as the logits, or any top-level name of the .dlm file such as a
convolution block's activations) and weights w shaped like t, the per-row score s[i] = sum(t[i] * w[i]) and
d sum(s) / d image. The weights are an input of the plan, so one compiled plan serves every target class or
unit. The model runs in evaluation form (dropout off, batch norm on its running statistics): the maps explain
the deployed model. Plans are cached per model, tensor, image input and binding of the symbolic dimensions.
"""

from __future__ import annotations

import weakref
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .autodiff import backward
from .dims import substitute
from .errors import DlcError
from .frontend.elaborate import TensorVal
from .ir import Graph, GraphBuilder
from .lowering import LoweredPlan
from .passes.eval_mode import strip_training_only

if TYPE_CHECKING:
    from .model import CompiledModel
    from .program import Program

WEIGHTS = "__score_weights__"
_PLANS: "weakref.WeakKeyDictionary[CompiledModel, dict[tuple[Any, ...], LoweredPlan]]" = weakref.WeakKeyDictionary()


def _tensor_value(model: "CompiledModel", binding: Mapping[str, int], tensor: str) -> tuple[Graph, int]:
    """The elaborated graph and the value of `tensor`: a model output or a top-level name of the file."""
    el = model.elaborated(binding)
    outputs = dict(el.graph.outputs)
    if tensor in outputs:
        return el.graph, outputs[tensor]
    env = el.train_scope.env if el.train_scope is not None else {}
    value = env.get(tensor)
    if not isinstance(value, TensorVal):
        names = sorted(set(outputs) | {n for n, v in env.items() if isinstance(v, TensorVal)} - set(model.inputs))
        raise ValueError(f"unknown tensor '{tensor}' (the model's named tensors: {', '.join(names)})")
    return el.graph, value.v


def _score_graph(graph: Graph, tensor: int, image: str) -> Graph:
    """Evaluation form of the model with outputs score[i] = sum(tensor[i] * weights[i]) and
    d sum(score) / d image ("saliency")."""
    from .passes import PassContext
    # The tensor travels as the only output through the rewrite, which may renumber values.
    graph = strip_training_only(replace(graph, outputs=(("tensor", tensor),)), PassContext(training=False))
    inputs = dict(graph.inputs)
    b = GraphBuilder(graph)
    out = graph.outputs[0][1]
    t = b.type_of(out)
    weights = b.add_input(WEIGHTS, t)
    weighted = b.op1("mul", out, weights)
    rows = b.op1("sum", weighted, axis=tuple(range(1, t.rank))) if t.rank > 1 else weighted
    score = b.op1("sum", rows)
    diff = backward(b.build(), score, [inputs[image]])
    b = GraphBuilder(diff.graph)
    grad = diff.grads.get(inputs[image])
    if grad is None:
        raise DlcError(f"'{[n for n, v in graph.outputs][0]}' does not depend on input '{image}'")
    b.outputs = [("score", rows), ("saliency", grad)]
    return b.build()


def image_input(program: "Program", inputs: Mapping[str, Any], image: str | None) -> str:
    """The input to differentiate: `image` if given, else the first floating-point input in `inputs`."""
    if image is not None:
        if image not in program.inputs:
            raise ValueError(f"unknown input '{image}' (the model takes: {', '.join(program.inputs)})")
        return image
    floats = [n for n, s in program.inputs.items() if s.dtype in ("f32", "f64") and n in inputs]
    if not floats:
        raise ValueError("attribution needs a floating-point model input")
    return floats[0]


class ScoreGradient:
    """Bound to one batch of inputs: `shape` is the tensor's concrete shape, and calling it with an image
    batch (the bound one's shape) and weights (shaped like the tensor) returns (score per row, gradient)."""

    def __init__(self, program: "Program", inputs: Mapping[str, np.ndarray] | np.ndarray, tensor: str | None = None,
                 image: str | None = None):
        model = program.model
        if isinstance(inputs, np.ndarray):
            inputs = {image_input(program, dict.fromkeys(program.inputs), image): inputs}
        self.image = image_input(program, inputs, image)
        self.tensor = tensor or next(iter(program.outputs))
        used = [n for n in model.used_inputs() if n in inputs or n == self.image]
        self.arrays = model.check_inputs(inputs, used)
        binding = model.bind_dims(self.arrays, used)
        self._model = model
        plans = _PLANS.setdefault(model, {})
        key = (self.tensor, self.image, tuple(sorted(binding.items())))
        with model.lock:
            graph, value = _tensor_value(model, binding, self.tensor)
            self.shape = tuple(int(substitute(d, binding)) for d in graph.values[value].shape)
            if key not in plans:
                from .passes import run_pipeline
                from .training.step import strip_unused_inputs
                scored = run_pipeline(_score_graph(graph, value, self.image), model.pass_context(False))
                plans[key] = model.lower(strip_unused_inputs(scored), pack=True)
            self._lowered = plans[key]

    @property
    def x(self) -> np.ndarray:
        """The bound image batch (converted to the input's dtype)."""
        return self.arrays[self.image]

    def __call__(self, x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if x.shape != self.x.shape:
            raise ValueError(f"input '{self.image}': expected shape {list(self.x.shape)}, got {list(x.shape)}")
        feed = {**self.arrays, self.image: np.ascontiguousarray(x, dtype=self.x.dtype),
                WEIGHTS: np.ascontiguousarray(weights, dtype=self.x.dtype)}
        out = self._model.run_plan(self._lowered, feed, step=0, training=False)
        return out["score"], out["saliency"]
