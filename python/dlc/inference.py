"""Calling a `CompiledModel` with NumPy arrays: the one call path of `Program` and of a loaded artifact
(`LoadedProgram`), so both check and convert inputs alike, bind the symbolic dimensions from their shapes, and
keep one bounded cache of plans per binding.

A call whose inputs are all C-contiguous arrays of the declared dtypes is keyed by (mode, names, shapes,
dtypes): a key seen before means every check already passed, and the call goes straight to its plan. Anything
else (lists, other dtypes to convert, strided views) takes the checked path every time.

The fixed cost of a call is what a batch-1 model pays most of, so a repeated call does not even build its key:
the latest key of each mode has a `_core.Call`, which checks in C++ that the inputs have exactly that key's
names, dtypes and shapes (C-contiguous), allocates the outputs and runs the plan with the GIL released. An
input that differs in anything makes it answer None before anything runs, and the call goes the keyed and
checked way, so a bad array still gets its ValueError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .lowering import LoweredPlan
from .model import CompiledModel
from .plan_cache import PlanCache
from .profiler import recording
from .training.datacheck import check_arrays
from .training.loop import as_named


@dataclass(frozen=True)
class CachedCall:
    """A call key's plan, and its C++ call (`_core.Call`) that checks the key's signature and runs the plan."""

    lowered: LoweredPlan
    fast: Any



class InferenceCalls:
    """Inference on one CompiledModel: checked calls, plans cached per call key, and batched `predict`."""

    def __init__(self, model: CompiledModel):
        self.model = model
        self.last_binding: dict[str, int] = {}  # the symbolic dimensions of the most recent checked call
        self._by_call_key: PlanCache[CachedCall] = PlanCache()  # holds plans alive: bounded too
        self._latest: dict[bool, CachedCall] = {}  # per mode, the call key used last: tried first
        self._generation = model.plan_generation  # the model's plans these caches hold (a precision change drops them)

    def __call__(self, inputs: Mapping[str, Any], *, training: bool, step: int) -> dict[str, np.ndarray]:
        if self._generation != self.model.plan_generation:
            self._by_call_key, self._latest = PlanCache(), {}
            self._generation = self.model.plan_generation
        latest = self._latest.get(training)
        if latest is not None and not recording():  # a profiled run goes through run_plan, which times it
            outputs = latest.fast(inputs, self.model.seed, step)
            if outputs is not None:  # the same names, dtypes and shapes as the latest keyed call
                return outputs
        used = self.model.used_inputs()
        key = self._call_key(inputs, used, training)
        cached = self._by_call_key.get(key) if key is not None else None
        if cached is None:
            arrays = self.model.check_inputs(inputs, used)
            binding = self.model.bind_dims(arrays, used)
            self.last_binding = binding
            lowered = self.model.inference_plan(binding, training)
            if key is None:
                return self.model.run_plan(lowered, arrays, step=step, training=training)
            fast = lowered.fast_call(used, [arrays[name] for name in used], training)
            cached = self._by_call_key[key] = CachedCall(lowered, fast)
        self._latest[training] = cached
        outputs = None if recording() else cached.fast(inputs, self.model.seed, step)
        return outputs if outputs is not None else self.model.run_plan(cached.lowered, inputs, step=step,
                                                                        training=training)

    def _call_key(self, inputs: Mapping[str, Any], used: list[str], training: bool) -> tuple[Any, ...] | None:
        """What decides the plan and every input check of a call: mode, names, shapes, dtypes. None unless
        every input is a C-contiguous array of its declared dtype."""
        parts: list[Any] = [training, len(inputs)]
        declared = self.model.input_dtypes
        for name in used:
            arr = inputs.get(name)
            if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous or arr.dtype != declared[name]:
                return None  # conversions (int64 labels, float64 features) take the checked path every time
            parts.append((name, arr.shape, arr.dtype.str))
        if len(inputs) != len(used):  # unused or unknown names: let the checked path judge them
            return None
        return tuple(parts)

    def predict(self, inputs: Any, batch_size: int | None, step: int) -> dict[str, np.ndarray]:
        """The outputs for a whole dataset in evaluation mode, `batch_size` samples at a time along the first
        axis (default: all at once), concatenated. `inputs`: {input name: array}, or a tuple of arrays in
        input order; inputs the outputs do not need (labels) are ignored."""
        arrays = as_named(self.model.inputs, inputs)
        used = self.model.used_inputs()
        arrays = {k: v for k, v in arrays.items() if k in used}
        for name in used:
            if name not in arrays:
                raise ValueError(f"missing input '{name}' ({self.model.inputs[name]})")
        specs = self.model.inputs
        check_arrays({k: specs[k] for k in used}, self.model.dims, arrays, "predict data")
        n = len(next(iter(arrays.values())))
        size = n if batch_size is None else int(batch_size)
        if size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        parts = [self({k: v[i:i + size] for k, v in arrays.items()}, training=False, step=step)
                 for i in range(0, n, size)]
        results = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        return {**results, **class_names(self.model.classes, results)}


def class_names(classes: list[str] | None, results: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`<output>_class` for each output with one score per class (last axis), when the model has class names:
    the name of the highest score of each sample."""
    if not classes:
        return {}
    names = np.asarray(classes)
    return {f"{k}_class": names[np.argmax(v, axis=-1)] for k, v in results.items()
            if v.ndim >= 2 and v.shape[-1] == len(classes) and f"{k}_class" not in results}
