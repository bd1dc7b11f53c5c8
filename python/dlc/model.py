"""`CompiledModel`: the compiled core of a model, shared by inference (`Program`) and training (`Trainer`).

It owns what every use of a model needs and nothing about training:
- the elaborated graph and its inputs and outputs;
- the parameters and running statistics: the persistent table, arrays whose memory never moves, so every
  compiled plan can address them directly (write into them, never rebind them);
- the inference plans, one per (mode, binding of the symbolic dimensions), and the lowering that places a
  graph's persistent tensors in that table (plus any extra persistent arrays a caller owns, such as a
  trainer's optimizer state).

Several `Trainer`s (a GAN's two phases, a DQN's online and target updates, fine-tuning recipes) can hold one
CompiledModel: their plans all address the same parameter memory.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from . import initializers
from .dims import Sym, substitute
from .errors import ArenaLimitError
from .frontend.elaborate import Elaborated, elaborate
from .frontend.modules import Module
from .ir import Graph, ParamSpec, TensorType, np_dtype
from .lowering import LoweredPlan, ParamVersions, lower, nchwc_block_size
from .ops import registry
from .plan_cache import PlanCache
from .precision import PrecisionPolicy, check_precision
from .profiler import recording, run_profiled
from .passes import PassContext, run_pipeline
from .passes.dead_code import eliminate_dead_code
from .passes.precision import available as precision_available
from .passes.rewrite import prune_values
from .shard import Shard


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


def unbound_error(names: list[str]) -> ValueError:
    """The one wording for symbolic dimensions a plan needs but nothing bound (CLI and Python alike)."""
    flags = " ".join(f"-D {n}=<size>" for n in names)
    dims = ", ".join(f"'{n}': <size>" for n in names)
    return ValueError(f"symbolic dimension{'s' * (len(names) > 1)} {', '.join(names)} "
                      f"{'are' if len(names) > 1 else 'is'} unbound; bind with {flags} "
                      f"(dims={{{dims}}} in Python)")


def describe_dtype(dtype: np.dtype) -> str:
    """A dtype as errors name it: byte order included when it is not the machine's, since a big-endian
    float32 and a native one have the same name."""
    if dtype.byteorder not in ("=", "|") and dtype.byteorder != np.dtype(dtype.name).byteorder:
        order = "big-endian" if dtype.byteorder == ">" else "little-endian"
        return f"{order} {dtype.name} ({dtype.str!r})"
    return dtype.name


def symbols(graph: Graph) -> list[str]:
    """The symbolic dimensions any value of the graph still has."""
    return sorted({n for t in graph.values.values() for d in t.shape if isinstance(d, Sym) for n in d.names})


def empty_aligned(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary, like every arena buffer: a
    plan computes an output straight into such an array (Plan::set_output_home) instead of copying it out of
    its arena after the last step. NumPy's own allocations are only 16-byte aligned."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def require_precision(precision: Any) -> str:
    """A precision that exists and that this build has kernels for."""
    check_precision(precision)
    if not precision_available(precision):
        raise ValueError(f"precision {precision!r} has no kernels in this build of dlc")
    return str(precision)


def only_used_inputs(graph: Graph) -> Graph:
    """Drops the inputs no node reads (labels the inference graph does not need, say)."""
    used = {v for n in graph.nodes for v in n.inputs} | {v for _, v in graph.outputs}
    return replace(graph, inputs=tuple((n, v) for n, v in graph.inputs if v in used))


class CompiledModel:
    def __init__(self, module: Module, *, dims: Mapping[str, int] | None = None, dtype: str = "f32",
                 fuse: bool = True, seed: int = 0, strict_dtypes: bool = False, precision: str = "f32"):
        self.module = module
        self.precision = require_precision(precision)  # validated before anything is elaborated
        self.strict_dtypes = strict_dtypes
        self._dims = {k: int(v) for k, v in (dims or {}).items()}
        for k, v in self._dims.items():
            if v < 1:
                raise ValueError(f"dimension {k} must be positive, got {v}")
        self.dtype = dtype
        if dtype != "f32" and self.precision != "f32":
            raise ValueError(f"precision={self.precision!r} runs an f32 model's weights in reduced precision; "
                             f"this model is compiled with dtype={dtype!r}")
        self.fuse = fuse
        # The blocked convolution layout's channels per block for inference plans (passes/layout.py): what the
        # kernels choose on this CPU; 0 keeps NCHW. Set before the first plan is compiled.
        self.nchwc_block = nchwc_block_size()
        self.seed = seed
        elaborated = elaborate(module, self._dims, dtype)
        # Elaborated once per binding of the symbolic dimensions (the compile-time one first), shared by the
        # inference plans, the training recipes and summaries: read-only (readers of the train block fork it).
        self._elaborated: PlanCache[Elaborated] = PlanCache()
        self._elaborated[tuple(sorted(self._dims.items()))] = elaborated
        self._graph: Graph = elaborated.graph
        self.has_train_block = elaborated.train is not None
        self._param_arrays: dict[str, np.ndarray] | None = None  # built on first use: see _params
        # One version per parameter (in graph.params order, which is the persistent table's prefix in every
        # plan), shared by every plan over them: a plan keeps a weight packed in its kernel's layout while the
        # version stays (runtime/packed_weights.h). Each write advances it: the plans' own steps (an optimizer
        # update, running statistics), set_params, and whatever writes through writing_params().
        self.param_versions = ParamVersions(len(self._graph.params))
        self._param_index = {p.name: i for i, p in enumerate(self._graph.params)}
        # Class names of the labels, when trained on names (label k is classes[k]): kept with checkpoints and
        # artifacts, and what predict names its answers with.
        self.classes: list[str] | None = None
        self._plans: PlanCache[LoweredPlan] = PlanCache()
        self.lock = threading.RLock()  # plan compilation: one thread compiles, the others wait for its plan
        self._used: list[str] | None = None
        self.input_dtypes = {n: np_dtype(self._graph.values[v].dtype) for n, v in self._graph.inputs}
        self.precision_policy = PrecisionPolicy.make(self.precision)
        # int8 activation scales by layer from calibration data (dlc/calibration.py); None: dynamic, per call.
        self.int8_scales: dict[str, tuple[float, int]] | None = None
        self.plan_generation = 0  # advanced whenever cached plans stop being valid (a precision change)

    def set_precision(self, precision: str, keep_f32: Iterable[str] = (),
                      layer_data: Mapping[str, Any] | None = None) -> None:
        """The precision inference plans run in from now on, with the layers in `keep_f32` left in f32
        (dlc/precision.py). Training plans are unaffected: training always runs in f32. int8 layers take their
        activation scales from `int8_scales` unless `layer_data` is given."""
        if layer_data is None and precision == "int8":
            layer_data = self.int8_scales
        policy = PrecisionPolicy.make(require_precision(precision), keep_f32, layer_data)
        if self.dtype != "f32" and policy.reduced:
            raise ValueError(f"precision={precision!r} needs an f32 model; this one is compiled with "
                             f"dtype={self.dtype!r}")
        with self.lock:
            self.precision, self.precision_policy = policy.precision, policy
            self._plans.clear()
            self.plan_generation += 1  # plans cached elsewhere by call key (InferenceCalls) are stale too

    @property
    def _params(self) -> dict[str, np.ndarray]:
        """The parameters, initialized when first needed: checking a model (types, shapes, the training graph,
        the parameter count from the graph) allocates none of them, so `dlc check` works on a model whose
        parameters would not fit in memory. Each draws from its own seeded generator, so when does not matter."""
        if self._param_arrays is None:
            with self.lock:
                if self._param_arrays is None:
                    self._param_arrays = self._initial_params()
        return self._param_arrays

    # ---- description ----

    @property
    def graph(self) -> Graph:
        """The typed graph as written (symbolic dimensions unbound), before any pass."""
        return self._graph

    @property
    def dims(self) -> dict[str, int]:
        """The symbolic dimensions bound at compile time."""
        return dict(self._dims)

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

    def _initial_params(self) -> dict[str, np.ndarray]:
        """Every persistent tensor as its initializer makes it from the seed (deterministic)."""
        return {p.name: self._initial_value(p) for p in self._graph.params}

    def _initial_value(self, p: ParamSpec) -> np.ndarray:
        return initializers.initialize(p.init, tuple(int(d) for d in p.type.shape), np_dtype(p.type.dtype),
                                       self.seed, p.name, p.fans)

    def params_untrained(self) -> bool:
        """True when the model has parameters and every one still holds exactly its seeded initial value:
        nothing trained or loaded them. Compared, not tracked, so no way of setting them (a checkpoint, set_params,
        training, a write through param_buffers) can be missed."""
        if not self._graph.params:
            return False
        if self._param_arrays is None:  # never built, so never changed (and not built just to compare)
            return True
        # One parameter at a time, stopping at the first that differs: a trained model re-initializes one
        # tensor here, not a second copy of all of them.
        return all(np.array_equal(self._params[p.name], self._initial_value(p)) for p in self._graph.params)

    @contextmanager
    def writing_params(self) -> Iterator[dict[str, np.ndarray]]:
        """The live parameter arrays, to write into (a checkpoint, transfer learning), never rebind. Every
        parameter's version advances when the block ends, even by an exception (a partial write counts), so no
        plan computes from a copy packed before the write. Hold the arrays no longer than the block."""
        try:
            yield self._params
        finally:
            self.param_versions.advance_all()

    def params_changed(self, names: list[str] | None = None) -> None:
        """Advances the versions of these parameters (all by default) after a write plans could not see."""
        if names is None:
            self.param_versions.advance_all()
        for name in names or ():
            self.param_versions.advance(self._param_index[name])

    def set_params(self, mapping: Mapping[str, Any], strict: bool = True) -> None:
        """Copies new values into the parameters. Names and shapes are checked before anything changes."""
        staged: list[tuple[str, np.ndarray, np.ndarray]] = []
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
            staged.append((name, target, arr))
        try:
            for _, target, arr in staged:
                np.copyto(target, arr, casting="same_kind")
        finally:  # after the copies: a plan running meanwhile may have packed the old values
            self.params_changed([name for name, _, _ in staged])

    def elaborated(self, binding: Mapping[str, int] | None = None) -> Elaborated:
        """The model elaborated for a binding (the compile-time one by default), once (cached): the train block
        and its builder included. Shared: fork() it before adding to its builder."""
        binding = dict(self._dims) if binding is None else dict(binding)
        key = tuple(sorted(binding.items()))
        with self.lock:
            cached = self._elaborated.get(key)
            if cached is None:
                cached = self._elaborated[key] = elaborate(self.module, binding, self.dtype)
            return cached

    # ---- inputs ----

    def check_inputs(self, inputs: Mapping[str, Any], required: list[str]) -> dict[str, np.ndarray]:
        """The required inputs as contiguous arrays of the declared dtypes (converted where that loses nothing
        a user meant: see _convert); unknown names, missing inputs and wrong dtypes are ValueErrors naming
        the input."""
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
                arr = self._convert(name, arr, types[name].dtype, expected)
            arrays[name] = np.require(arr, requirements="C")  # ascontiguousarray would make 0-d arrays 1-d
        return arrays

    def _convert(self, name: str, arr: np.ndarray, dtype: str, expected: np.dtype) -> np.ndarray:
        """NumPy's defaults (int64 labels, float64 features) and float16 are converted unless strict_dtypes:
        any integer array whose values fit an integer input, any float array for a float input."""
        refuse = (f"input '{name}': expected dtype {dtype} ({expected.name}), got {describe_dtype(arr.dtype)}; "
                  f"convert it with .astype(np.{expected.name})")
        if self.strict_dtypes:
            raise ValueError(refuse + " (strict_dtypes=True refuses conversions)")
        if expected.kind in "iu" and arr.dtype.kind in "iu":
            info = np.iinfo(expected)
            if arr.size and (int(arr.min()) < info.min or int(arr.max()) > info.max):
                raise ValueError(f"input '{name}': values from {int(arr.min())} to {int(arr.max())} do not fit "
                                 f"{dtype} ({expected.name})")
            return arr.astype(expected)
        if expected.kind == "f" and arr.dtype.kind == "f":
            return arr.astype(expected)
        raise ValueError(refuse)

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
                                 f"got {list(arrays[name].shape)}{self._bound_hint(expected, arrays[name].shape)}")
        return binding

    def _bound_hint(self, expected: tuple[Any, ...], got: tuple[int, ...]) -> str:
        """Names the dimension bound at compile time that a wrong size is likely about: the graph holds the
        bound sizes (5), no longer their names (N)."""
        if not self._dims:
            return ""
        for axis, (want, have) in enumerate(zip(expected, got)):
            names = [k for k, v in sorted(self._dims.items()) if v == want] if want != have else []
            if names:
                return f"; dimension {axis} is {' or '.join(names)}, bound to {want} at compile time"
        return "; bound at compile time: " + ", ".join(f"{k}={v}" for k, v in sorted(self._dims.items()))

    def used_inputs(self) -> list[str]:
        """Inputs the inference graph reads (labels used only by the training recipe are not needed)."""
        if self._used is None:
            pruned = eliminate_dead_code(self._graph, PassContext())
            used = {v for n in pruned.nodes for v in n.inputs} | {v for _, v in pruned.outputs}
            self._used = [n for n, v in self._graph.inputs if v in used]
        return self._used

    # ---- plans ----

    def int8_channels_first(self, names: Iterable[str]) -> dict[str, bool]:
        """For each named weight an int8 kernel reads: whether its output channels are its first axis (a
        convolution's [O, C, KH, KW], a transposed matmul's [N, K]) rather than its last ([K, N]), the axis of
        its per-channel scales."""
        wanted = set(names)
        ctx = replace(self.pass_context(False), disabled=frozenset({"fusion", "schedule"}))
        graph = run_pipeline(self.inference_graph(self._dims), ctx)
        by_value = {p.value: p.name for p in graph.params if p.name in wanted}
        out = {}
        for node in graph.nodes:
            fact = registry.get(node.op).reduced_precision
            if fact is not None and node.inputs[fact.weight] in by_value:
                out[by_value[node.inputs[fact.weight]]] = node.op != "matmul" or bool(node.attr("trans_b"))
        return out

    def reduced_weights(self) -> dict[str, str]:
        """The parameters only reduced-precision kernels read, by name -> their precision: what an artifact may
        store in that precision with nothing lost (a weight also read in f32, or folded with a batch norm first,
        is not one). From the optimized inference graph, whatever dimensions are bound."""
        ctx = replace(self.pass_context(False), disabled=frozenset({"fusion", "schedule"}))
        graph = run_pipeline(self.inference_graph(self._dims), ctx)
        readers: dict[int, list[tuple[str | None, bool]]] = {}
        for node in graph.nodes:
            fact = registry.get(node.op).reduced_precision
            for i, v in enumerate(node.inputs):
                weight = fact is not None and i == fact.weight
                readers.setdefault(v, []).append((node.attr("precision") if weight else None, weight))
        out = {}
        for p in graph.params:
            kinds = {precision for precision, _ in readers.get(p.value, [])}
            if len(kinds) == 1 and None not in kinds and p.value not in {v for _, v in graph.outputs}:
                out[p.name] = kinds.pop()
        return out

    def pass_context(self, training: bool) -> PassContext:
        """The options of this model's inference plans (training plans build their own, always f32, NCHW)."""
        return PassContext(training=training, fuse=self.fuse, precision=self.precision_policy,
                           nchwc_block=0 if training else self.nchwc_block)

    def inference_graph(self, binding: Mapping[str, int]) -> Graph:
        """The graph the outputs need under a binding, before any optimization. Only what the outputs need must
        be bound: a GAN's sampling output reads z alone, while its training noise normal([N, 16]) is sized by
        the real images' batch."""
        graph = eliminate_dead_code(self.elaborated(binding).graph, PassContext())
        return prune_values(only_used_inputs(graph))

    def inference_plan(self, dims: Mapping[str, int] | None, training: bool) -> LoweredPlan:
        """The inference plan for a binding of the symbolic dimensions, in training mode (dropout active) or
        not (cached)."""
        binding = dict(self._dims)
        binding.update(dims or {})
        key = ("infer", training, tuple(sorted(binding.items())))
        with self.lock:
            cached = self._plans.get(key)
            if cached is not None:
                return cached
            graph = self.inference_graph(binding)
            missing = symbols(graph)
            if missing:
                raise unbound_error(missing)
            graph = run_pipeline(graph, self.pass_context(training))
            lowered = self.lower(only_used_inputs(graph), pack=True)
            self._plans[key] = lowered
            return lowered

    def latest_inference_memory(self) -> tuple[dict[str, int], dict[str, int]] | None:
        """The binding and memory report (LoweredPlan.memory_report) of the evaluation-mode inference plan used
        last, or None before any was compiled (a summary compiles nothing)."""
        with self.lock:
            for key in reversed(list(self._plans)):
                if key[0] == "infer" and not key[1]:
                    return dict(key[2]), self._plans[key].memory_report()
        return None

    def lower(self, graph: Graph, extra: Mapping[str, np.ndarray] | None = None, *, pack: bool) -> LoweredPlan:
        """Lowers an optimized graph whose persistent tensors are the parameters plus `extra` (arrays the caller
        owns and keeps alive, e.g. optimizer state), and points the plan at their memory. Every plan shares the
        parameters' versions (it advances those it writes); with `pack`, it packs the weights its matrix
        products read once, now, and again only after a write (the inference plans: see docs/architecture.md,
        "Weights packed once")."""
        persistent = {**self._params, **(extra or {})}
        try:
            lowered = lower(graph, list(persistent))
        except ArenaLimitError as e:
            raise ArenaLimitError(f"model {self.module.filename}: {e}") from None
        lowered.plan.set_persistent(list(persistent.values()))
        lowered.plan.set_param_versions(self.param_versions)
        if pack:
            lowered.plan.set_weight_packing(True)
            lowered.plan.prepack()
        return lowered

    def run_plan(self, lowered: LoweredPlan, arrays: Mapping[str, np.ndarray], *, step: int = 0,
                 training: bool = False, out: Mapping[str, np.ndarray] | None = None,
                 shard: Shard | None = None, label: str = "") -> dict[str, np.ndarray]:
        """Runs a plan in one C++ call. `step` seeds dropout masks; `out` may give preallocated, C-contiguous
        arrays (views into a larger buffer work) for some outputs, which the plan writes in place; `shard`
        places the batch in a data-parallel global batch (dlc/shard.py); `label` names the run in a trace
        (dlc.profile)."""
        for name in lowered.input_names:
            if name not in arrays:
                raise ValueError(f"missing input '{name}'")
        given = out or {}
        outs = [given[n] if n in given else empty_aligned(tuple(int(d) for d in t.shape), np_dtype(t.dtype))
                for n, t in zip(lowered.output_names, lowered.output_types)]
        ins = [arrays[n] for n in lowered.input_names]
        run_args = {"inputs": ins, "outputs": outs, "seed": self.seed, "step": step, "training": training,
                    **(shard.run_arguments() if shard is not None else {})}
        profiles = recording()  # dlc.profile(...) is active: time each kernel step for its trace
        if profiles:
            name = label or ("training" if training else "inference")
            run_profiled(lowered, profiles, f"{name} (step {step})" if training else name, run_args, step=step,
                         training=training)
        else:
            lowered.plan.run(**run_args)
        return dict(zip(lowered.output_names, outs))
