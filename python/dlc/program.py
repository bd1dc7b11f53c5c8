"""`Program`: a compiled model you call with NumPy arrays.

A Program owns the parameters (the persistent region: arrays whose memory never moves, so every compiled plan
can address them directly) and a cache of compiled plans, one per (mode, binding of the symbolic
dimensions). Calling it validates the inputs, binds the symbolic dimensions from their shapes, picks or
compiles the plan, and runs it in C++ in one call with the GIL released.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from . import initializers
from .dims import Dim, Sym, substitute
from .frontend.elaborate import elaborate
from .frontend.modules import Module
from .ir import Graph, TensorType, np_dtype
from .lower import LoweredPlan
from .passes import PassContext, run_pipeline
from .passes.dead_code import eliminate_dead_code
from .training.api import TrainingMixin


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: dtype and shape, with symbolic dimensions as their names."""

    dtype: str
    shape: tuple[int | str, ...]

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def readonly_views(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Views callers can read but not write: persistent buffers are changed only through set_params, so the
    compiled plans that point at them stay valid."""
    out = {}
    for name, arr in arrays.items():
        view = arr.view()
        view.flags.writeable = False
        out[name] = view
    return out


def spec_of(t: TensorType) -> TensorSpec:
    return TensorSpec(t.dtype, tuple(d if isinstance(d, int) else str(d) for d in t.shape))


class Program(TrainingMixin):
    def __init__(self, module: Module, *, dims: Mapping[str, int] | None = None, dtype: str = "f32",
                 fuse: bool = True, seed: int = 0):
        self._module = module
        self._dims = {k: int(v) for k, v in (dims or {}).items()}
        for k, v in self._dims.items():
            if v < 1:
                raise ValueError(f"dimension {k} must be positive, got {v}")
        self._dtype = dtype
        self._fuse = fuse
        self._seed = seed
        self._elaborated = elaborate(module, self._dims, dtype)
        self._graph: Graph = self._elaborated.graph
        self._params: dict[str, np.ndarray] = {}
        for p in self._graph.params:
            shape = tuple(int(d) for d in p.type.shape)
            self._params[p.name] = initializers.initialize(p.init, shape, np_dtype(p.type.dtype), seed, p.name,
                                                           p.fans)
        self._plans: dict[tuple[Any, ...], LoweredPlan] = {}
        self._lock = threading.Lock()
        self._training = False
        self._last_binding: dict[str, int] = {}
        self._by_call_key: dict[tuple[Any, ...], LoweredPlan] = {}
        self._init_training()

    # ---- description ----

    @property
    def graph(self) -> Graph:
        """The typed graph as written (symbolic dimensions unbound), before any pass."""
        return self._graph

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        return {n: spec_of(self._graph.values[v]) for n, v in self._graph.inputs}

    @property
    def outputs(self) -> dict[str, TensorSpec]:
        return {n: spec_of(self._graph.values[v]) for n, v in self._graph.outputs}

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by hierarchical name, as read-only views (use set_params to change them)."""
        return readonly_views(self._params)

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def seed(self) -> int:
        return self._seed

    def set_params(self, mapping: Mapping[str, Any], strict: bool = True) -> None:
        """Copies new values into the parameters. Names and shapes are checked before anything changes."""
        staged: list[tuple[np.ndarray, np.ndarray]] = []
        for name, value in mapping.items():
            if name not in self._params:
                if strict:
                    raise ValueError(f"unknown parameter '{name}' (the model has: {', '.join(self._params)})")
                continue
            target = self._params[name]
            arr = np.asarray(value)
            if arr.shape != target.shape:
                raise ValueError(f"parameter '{name}': expected shape {target.shape}, got {arr.shape}")
            if not np.issubdtype(arr.dtype, np.floating):
                raise ValueError(f"parameter '{name}': expected a floating-point array, got {arr.dtype}")
            staged.append((target, arr))
        for target, arr in staged:
            np.copyto(target, arr, casting="same_kind")

    # ---- modes ----

    def train(self) -> "Program":
        """Training mode: dropout is active when the program is called."""
        self._training = True
        return self

    def eval(self) -> "Program":
        """Evaluation mode (the default): dropout is the identity."""
        self._training = False
        return self

    @property
    def training(self) -> bool:
        return self._training

    # ---- compilation ----

    def bind_dims(self, arrays: Mapping[str, np.ndarray], names: list[str] | None = None) -> dict[str, int]:
        """Binds symbolic dimensions from input shapes; every mismatch is a ValueError naming the input."""
        binding = dict(self._dims)
        origin: dict[str, str] = {}
        types = {n: self._graph.values[v] for n, v in self._graph.inputs}
        for name in names if names is not None else list(arrays):
            t = types[name]
            arr = arrays[name]
            if arr.ndim != len(t.shape):
                raise ValueError(f"input '{name}': expected rank {len(t.shape)} ({spec_of(t)}), "
                                 f"got an array of shape {arr.shape}")
            for axis, (d, n) in enumerate(zip(t.shape, arr.shape)):
                if isinstance(d, Sym) and d.coeff == 1 and len(d.names) == 1:
                    sym_name = d.names[0]
                    if sym_name in binding and binding[sym_name] != n:
                        where = f"by input '{origin[sym_name]}'" if sym_name in origin else "at compile time"
                        raise ValueError(f"input '{name}': dimension {axis} is {sym_name}, bound to "
                                         f"{binding[sym_name]} {where}, but the array has {n} (shape {arr.shape})")
                    if n < 1:
                        raise ValueError(f"input '{name}': dimension {sym_name} must be at least 1, got {n}")
                    binding[sym_name] = n
                    origin[sym_name] = name
        for name in names if names is not None else list(arrays):
            t = types[name]
            expected = tuple(substitute(d, binding) for d in t.shape)
            if tuple(arrays[name].shape) != expected:
                raise ValueError(f"input '{name}': expected shape {list(expected)} ({spec_of(t)}), "
                                 f"got {list(arrays[name].shape)}")
        return binding

    def pass_context(self, training: bool) -> PassContext:
        return PassContext(training=training, fuse=self._fuse)

    def compile_plan(self, dims: Mapping[str, int] | None = None, training: bool | None = None) -> LoweredPlan:
        """The inference plan for a binding of the symbolic dimensions (cached)."""
        binding = dict(self._dims)
        binding.update(dims or {})
        mode = self._training if training is None else training
        key = ("infer", mode, tuple(sorted(binding.items())))
        with self._lock:
            cached = self._plans.get(key)
            if cached is not None:
                return cached
            graph = elaborate(self._module, binding, self._dtype).graph
            missing = sorted({n for t in graph.values.values() for d in t.shape if isinstance(d, Sym)
                              for n in d.names})
            if missing:
                raise ValueError(f"bind the symbolic dimension(s) {', '.join(missing)} (dims={{...}} or -D)")
            graph = run_pipeline(graph, self.pass_context(mode))
            graph = _only_used_inputs(graph)
            lowered = self.lower_with_persistent(graph)
            self._plans[key] = lowered
            return lowered

    @property
    def memory(self) -> dict[str, int]:
        """Planned memory of the inference plan: for the dims given at compile time, else for the binding
        of the most recent call."""
        binding = dict(self._last_binding) if self._last_binding else None
        return self.compile_plan(binding).memory.as_dict()

    # ---- running ----

    def check_inputs(self, inputs: Mapping[str, Any], required: list[str]) -> dict[str, np.ndarray]:
        known = [n for n, _ in self._graph.inputs]
        for name in inputs:
            if name not in known:
                raise ValueError(f"unknown input '{name}' (the model takes: {', '.join(known)})")
        arrays: dict[str, np.ndarray] = {}
        types = {n: self._graph.values[v] for n, v in self._graph.inputs}
        for name in required:
            if name not in inputs:
                raise ValueError(f"missing input '{name}' ({spec_of(types[name])})")
            value = inputs[name]
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            expected = np_dtype(types[name].dtype)
            if arr.dtype != expected:
                raise ValueError(f"input '{name}': expected dtype {types[name].dtype} ({expected.name}), got "
                                 f"{arr.dtype.name}; convert it with .astype(np.{expected.name})")
            arrays[name] = np.require(arr, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d
        return arrays

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        used = self._used_inputs()
        key = self._call_key(inputs, used)
        lowered = self._by_call_key.get(key) if key is not None else None
        if lowered is not None:  # same names, shapes and dtypes as an earlier checked call
            return self.run_plan(lowered, inputs)
        arrays = self.check_inputs(inputs, used)
        binding = self.bind_dims(arrays, used)
        self._last_binding = binding
        lowered = self.compile_plan(binding)
        if key is not None:
            self._by_call_key[key] = lowered
        return self.run_plan(lowered, arrays)

    def _call_key(self, inputs: Mapping[str, Any], used: list[str]) -> tuple[Any, ...] | None:
        """What decides the plan and every input check of a call: mode, names, shapes, dtypes. None unless
        every input is a C-contiguous array (anything else takes the checked path)."""
        parts: list[Any] = [self._training, len(inputs)]
        for name in used:
            arr = inputs.get(name)
            if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous:
                return None
            parts.append((name, arr.shape, arr.dtype.str))
        if len(inputs) != len(used):  # unused or unknown names: let the checked path judge them
            return None
        return tuple(parts)

    def run_plan(self, lowered: LoweredPlan, arrays: Mapping[str, np.ndarray], step: int | None = None,
                 training: bool | None = None) -> dict[str, np.ndarray]:
        for name in lowered.input_names:
            if name not in arrays:
                raise ValueError(f"missing input '{name}'")
        outs = [np.empty(tuple(int(d) for d in t.shape), dtype=np_dtype(t.dtype)) for t in lowered.output_types]
        ins = [arrays[n] for n in lowered.input_names]
        lowered.plan.run(ins, outs, seed=self._seed, step=self._step if step is None else step,
                         training=self._training if training is None else training)
        return dict(zip(lowered.output_names, outs))

    def _used_inputs(self) -> list[str]:
        """Inputs the inference graph reads (labels used only by the training recipe are not needed)."""
        if not hasattr(self, "_used_cache"):
            pruned = eliminate_dead_code(self._graph, PassContext())
            used = {v for n in pruned.nodes for v in n.inputs} | {v for _, v in pruned.outputs}
            self._used_cache = [n for n, v in self._graph.inputs if v in used]
        return self._used_cache

    # ---- interchange ----

    def to_onnx(self, path: str, opset: int | None = None) -> None:
        """Writes the inference graph as an ONNX file (needs the onnx extra); see dlc/onnx/export.py."""
        from .onnx.export import export_program
        export_program(self, path, opset=opset)

    # ---- summary ----

    def summary(self) -> str:
        from .summary import summarize
        return summarize(self)


def _only_used_inputs(graph: Graph) -> Graph:
    from dataclasses import replace
    used = {v for n in graph.nodes for v in n.inputs} | {v for _, v in graph.outputs}
    return replace(graph, inputs=tuple((n, v) for n, v in graph.inputs if v in used))


def dims_of(shape: tuple[Dim, ...]) -> tuple[int | str, ...]:
    return tuple(d if isinstance(d, int) else str(d) for d in shape)
