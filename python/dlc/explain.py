"""Saliency maps: which input pixels a prediction depends on.

`saliency(program, inputs, target=c)` is the gradient of the class score (the chosen output, logits by
default, at class c) with respect to the image input, in evaluation form: dropout off, batch norm on its
running statistics, so the map explains the deployed model. It runs as one compiled plan per input shape
(forward, the score, the backward pass to the input), cached per model. `method="smoothgrad"` averages the
maps of `samples` noisy copies of the input, noise N(0, (noise * (max(x) - min(x)))^2) (Smilkov et al.),
which removes most of the vanilla gradient's speckle.

`save_heatmap` draws images and their maps side by side (matplotlib: the optional `plot` extra).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .autodiff import backward
from .dims import substitute
from .errors import DlcError
from .ir import Graph, GraphBuilder
from .lowering import LoweredPlan
from .passes.eval_mode import strip_training_only

if TYPE_CHECKING:
    from .model import CompiledModel
    from .program import Program

WEIGHTS = "__score_weights__"
_PLANS: "weakref.WeakKeyDictionary[CompiledModel, dict[tuple[Any, ...], LoweredPlan]]" = weakref.WeakKeyDictionary()


def _score_graph(graph: Graph, output: str, image: str) -> Graph:
    """Evaluation form of the model, score = sum(output * weights) with the weights an input (one plan serves
    every target), and the score's gradient with respect to the image input."""
    from .passes import PassContext
    graph = strip_training_only(graph, PassContext(training=False))
    outputs, inputs = dict(graph.outputs), dict(graph.inputs)
    b = GraphBuilder(graph)
    out = outputs[output]
    weights = b.add_input(WEIGHTS, b.type_of(out))
    score = b.op1("sum", b.op1("mul", out, weights))
    diff = backward(b.build(), score, [inputs[image]])
    b = GraphBuilder(diff.graph)
    grad = diff.grads.get(inputs[image])
    if grad is None:
        raise DlcError(f"output '{output}' does not depend on input '{image}'")
    b.outputs = [("saliency", grad)]
    return b.build()


def _plan(model: "CompiledModel", binding: Mapping[str, int], output: str, image: str) -> LoweredPlan:
    from .passes import run_pipeline
    from .training.step import strip_unused_inputs
    plans = _PLANS.setdefault(model, {})
    key = (output, image, tuple(sorted(binding.items())))
    with model.lock:
        if key not in plans:
            graph = _score_graph(model.elaborated(binding).graph, output, image)
            graph = run_pipeline(graph, model.pass_context(False))
            plans[key] = model.lower(strip_unused_inputs(graph))
        return plans[key]


def _image_input(program: "Program", inputs: Mapping[str, Any], image: str | None) -> str:
    if image is not None:
        return image
    floats = [n for n, s in program.inputs.items() if s.dtype in ("f32", "f64") and n in inputs]
    if not floats:
        raise ValueError("saliency needs a floating-point model input")
    return floats[0]


def _weights(shape: tuple[int, ...], target: int | Sequence[int], dtype: np.dtype) -> np.ndarray:
    classes = shape[-1]
    targets = np.broadcast_to(np.asarray(target), shape[:1]) if np.ndim(target) else np.full(shape[:1], target)
    if not np.issubdtype(targets.dtype, np.integer) or targets.min() < 0 or targets.max() >= classes:
        raise ValueError(f"target must be a class index (or one per row) in [0, {classes}), got {target!r}")
    onehot = np.zeros((shape[0], classes), dtype=dtype)
    onehot[np.arange(shape[0]), targets] = 1
    return np.ascontiguousarray(np.broadcast_to(onehot.reshape((shape[0],) + (1,) * (len(shape) - 2) + (classes,)),
                                                shape))


def saliency(program: "Program", inputs: Mapping[str, np.ndarray] | np.ndarray, target: int | Sequence[int], *,
             output: str | None = None, image: str | None = None, method: str = "vanilla", samples: int = 25,
             noise: float = 0.15, seed: int = 0) -> np.ndarray:
    """d score[target] / d image, shaped like the image input. `inputs` maps input names to arrays (a bare
    array is the image input); `target` is a class or one class per row; `output` defaults to the first."""
    if method not in ("vanilla", "smoothgrad"):
        raise ValueError(f"method must be 'vanilla' or 'smoothgrad', got {method!r}")
    model = program.model
    if isinstance(inputs, np.ndarray):
        inputs = {_image_input(program, dict.fromkeys(program.inputs), image): inputs}
    image = _image_input(program, inputs, image)
    output = output or next(iter(program.outputs))
    if output not in program.outputs:
        raise ValueError(f"unknown output '{output}' (the model has: {', '.join(program.outputs)})")
    used = [n for n in model.used_inputs() if n in inputs or n == image]
    arrays = model.check_inputs(inputs, used)
    binding = model.bind_dims(arrays, used)
    lowered = _plan(model, binding, output, image)
    out_shape = tuple(int(substitute(d, binding)) for d in model.graph.values[dict(model.graph.outputs)[output]].shape)
    arrays[WEIGHTS] = _weights(out_shape, target, arrays[image].dtype)

    def gradient(x: np.ndarray) -> np.ndarray:
        return model.run_plan(lowered, {**arrays, image: x}, step=0, training=False)["saliency"]

    x = arrays[image]
    if method == "vanilla":
        return gradient(x)
    if samples < 1 or noise < 0:
        raise ValueError("smoothgrad needs samples >= 1 and noise >= 0")
    rng = np.random.default_rng(seed)
    sigma = noise * float(x.max() - x.min())
    total = np.zeros_like(x)
    for _ in range(samples):
        total += gradient((x + rng.normal(0.0, sigma, x.shape)).astype(x.dtype))
    return total / samples


def stroke_share(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Per image: the share of the map's absolute mass on pixels brighter than that image's mean."""
    n = images.shape[0]
    x, m = images.reshape(n, -1), np.abs(maps).reshape(n, -1)
    on = x > x.mean(axis=1, keepdims=True)
    return (m * on).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-30)


def save_heatmap(images: np.ndarray, maps: np.ndarray, path: str | Path, titles: Sequence[str] | None = None) -> None:
    """Each image (grey) above its saliency map (absolute value, hot colours), one column per image."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise DlcError("heat maps need matplotlib: pip install 'dlc[plot]'") from None
    n = images.shape[0]
    if images.ndim == 2:  # flat [N, D] inputs (an MLP's): square images when D is a square, else one strip
        side = int(round(np.sqrt(images.shape[1])))
        h, w = (side, side) if side * side == images.shape[1] else (1, images.shape[1])
    else:
        h, w = images.shape[-2:]
    imgs = images.reshape(n, -1, h, w).mean(axis=1)  # [N, H, W] or [N, C, H, W]: channels averaged
    heat = np.abs(maps).reshape(n, -1, h, w).sum(axis=1)
    fig = Figure(figsize=(1.6 * n, 3.4))  # not pyplot: a notebook's backend and figures stay as they are
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        axes[0, i].imshow(imgs[i], cmap="gray")
        axes[1, i].imshow(heat[i], cmap="hot")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=9)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
