"""Static int8 calibration: each int8 layer's input range measured on calibration data (docs/precision.md).

The model runs in f32 over the calibration samples, a batch at a time, with the input of every node that int8
would run (passes/precision.py decides which) added as an extra output; a layer's range is the min and max of
its inputs over every sample (ONNX Runtime's MinMax calibrator), widened to hold 0, and its scale and zero point
follow (dlc/int8.py). Min and max do not depend on the order they are taken in, so the result depends only on
the data and the weights: the same file gives the same scales, whatever the batch size.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np

from .int8 import activation_params
from .model import only_used_inputs
from .ops import registry
from .passes import PassContext, run_pipeline
from .passes.precision import reduced_nodes

if TYPE_CHECKING:
    from .model import CompiledModel

TAP = "__calibration_input_"


class PrecisionControl:
    """The inference precision of a callable around a CompiledModel: Program and LoadedProgram share it."""

    model: "CompiledModel"

    @property
    def precision(self) -> str:
        """The precision of inference ("f32", "bf16", "int8"): the compiled, stored or loaded one, or the last
        set_precision; training always runs in f32 (docs/precision.md)."""
        return self.model.precision

    def set_precision(self, precision: str, keep_f32: Iterable[str] = (),
                      calibration: Mapping[str, np.ndarray] | None = None) -> None:
        """Runs inference in `precision` from the next call on, except the layers named in `keep_f32`. For int8,
        `calibration` ({input: samples}) fixes each layer's activation scale (static quantization, kept for later
        switches to int8); without it layers quantize their inputs per call (dynamic) unless scales were
        measured before (docs/precision.md)."""
        if calibration is not None:
            if precision != "int8":
                raise ValueError(f"calibration data sets int8 activation scales; precision is {precision!r}")
            self.model.int8_scales = calibrate(self.model, calibration)
        self.model.set_precision(precision, keep_f32)


def calibrate(model: "CompiledModel", data: Mapping[str, np.ndarray],
              batch_size: int = 256) -> dict[str, tuple[float, int]]:
    """{layer: (scale, zero point)} of the input of every layer that can run in int8, from the arrays `data`
    (every input the outputs read, samples along the first axis)."""
    used = model.used_inputs()
    missing = [n for n in used if n not in data]
    if missing:
        raise ValueError(f"calibration data has no array for input {', '.join(repr(n) for n in missing)}")
    arrays = model.check_inputs({n: data[n] for n in used}, used)
    count = len(next(iter(arrays.values()))) if arrays else 0
    if count == 0:
        raise ValueError("calibration data holds no samples")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ranges: dict[str, tuple[float, float]] = {}
    plans: dict[tuple[tuple[str, int], ...], tuple[object, list[tuple[str, str]]]] = {}
    for start in range(0, count, batch_size):
        batch = {n: a[start:start + batch_size] for n, a in arrays.items()}
        binding = model.bind_dims(batch, used)
        key = tuple(sorted(binding.items()))
        if key not in plans:
            plans[key] = _tapped_plan(model, binding)
        lowered, taps = plans[key]
        results = model.run_plan(lowered, batch)  # type: ignore[arg-type]
        for out_name, layer in taps:
            values = results[out_name] if out_name in results else batch[out_name]
            finite = values[np.isfinite(values)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
                old = ranges.get(layer, (lo, hi))
                ranges[layer] = (min(lo, old[0]), max(hi, old[1]))
    return {layer: activation_params(lo, hi) for layer, (lo, hi) in sorted(ranges.items())}


def _tapped_plan(model: "CompiledModel", binding: Mapping[str, int]) -> tuple[object, list[tuple[str, str]]]:
    """The f32 inference plan of a binding with the input of each int8-capable node as an extra output, and
    (output or graph input name, layer) for each."""
    graph = run_pipeline(model.inference_graph(dict(binding)), PassContext(training=False, fuse=False))
    inputs = {v: n for n, v in graph.inputs}
    taps: list[tuple[str, str]] = []
    extra: list[tuple[str, int]] = []
    for k, (node, layer) in enumerate(reduced_nodes(graph)):
        fact = registry.get(node.op).reduced_precision
        if fact is None or not fact.accepts("int8", node, [graph.values[v] for v in node.inputs]):
            continue
        v = node.inputs[0]
        if v in inputs:
            taps.append((inputs[v], layer))
        else:
            extra.append((f"{TAP}{k}", v))
            taps.append((f"{TAP}{k}", layer))
    tapped = replace(graph, outputs=tuple(graph.outputs) + tuple(extra))
    return model.lower(only_used_inputs(tapped), pack=False), taps
