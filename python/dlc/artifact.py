"""Compiled artifacts: a model's source, its compile settings and its parameters in one safetensors file
(no pickle, no code, no plan).

Format, version 4. The file is a safetensors file (https://huggingface.co/docs/safetensors) whose tensors are
  param/<name>   every persistent tensor (parameters and running statistics), by hierarchical name: f32 (f64),
                 or for the weights listed in `stored` their bf16 bit patterns (uint16) or int8 values
  scale/<name>   for each int8 weight, its f32 scale per output channel (the first axis of a convolution's or
                 transposed product's weight, the last of a dense layer's [in, out])
and whose `__metadata__` (string -> string) holds
  format       "dlc-artifact"
  version      "4"
  source_name, source   the model file's name and text; source_dir: the directory its imports resolve from
  files        JSON {resolved path: text} — every file the model imports, so loading reads nothing else
  dtype        "f32" or "f64"; dims: JSON {name: size}, the dimensions bound when it was saved; seed: the
               initialization seed
  inputs, outputs   JSON [{"name", "dtype", "shape"}] — what the model takes and returns; a dimension left
               unbound is its name ("N", or "2*N" for a product), bound from the inputs at each call
  persistent   JSON [name, ...] — the stored parameters
  memory       JSON {"arena_bytes", "naive_bytes", "lower_bound_bytes"} of the plan, for reference; null when
               a dimension is unbound (the plan depends on it)
  classes      JSON [name, ...]: the class names of the labels (label k is classes[k]) when it was trained on
               names; absent otherwise. predict names its answers with them.
  untrained    "true" when every parameter still held its seeded initial value when saved (nothing trained
               or loaded them), else "false"; absent in files older than this entry. Saving and loading such a
               file warn (UntrainedWarning), as `dlc compile` and `dlc run` do.
  precision    "f32", "bf16" or "int8": the precision of inference (docs/precision.md); keep_f32: JSON [layer, ...]
               left in f32; stored: JSON {parameter: "bf16" | "int8"} — weights that only reduced-precision kernels
               read, stored in that precision (half or a quarter of the bytes; widening bf16 to f32 on load is
               exact, and int8 values times their scales quantize back to the same int8 values and scales, so the
               loaded program computes what the saved one did). All three absent in version 3 and older (f32).
  int8_scales  JSON {layer: [scale, zero point]}: the int8 activation scales from calibration, or null (dynamic);
               absent before int8 (null)
  checksum     sha256 over every other metadata entry and every tensor, to catch silent corruption
Loading compiles the stored source again (about 0.1 s) and takes every size, slot and kernel from the compiler,
never from the file: the file contributes only parameter values, each checked against the dtype and shape the
compiler gives it, and a dimension left unbound is sized by the caller's arrays, checked as a Program checks
them. So a corrupt or hand-edited file (even one whose checksum was recomputed) is a `CheckpointError` or a
program the compiler itself built — never an out-of-bounds access. Versions 1 to 3 (every dimension bound;
version 1 also stored the plan, which loading ignores) load the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from .atomic_file import write_atomically
from .calibration import PrecisionControl
from .dims import Sym, substitute
from .errors import CheckpointError, DlcError, UntrainedWarning
from .inference import InferenceCalls
from .int8 import int8_weights
from .ir import DTYPES, TensorType
from .model import CompiledModel, TensorSpec, spec_of, symbols, unbound_error
from .precision import bf16_bits, bf16_values, check_precision
from .training.checkpoint import parse_classes

if TYPE_CHECKING:
    from .program import Program

FORMAT = "dlc-artifact"
VERSION = "4"
READABLE_VERSIONS = ("1", "2", "3", "4")  # version 1 also stored a plan, which loading ignores
MAX_RANK = 8  # kMaxRank in csrc/runtime/tensor.h
MAX_BYTES = 2 ** 48  # bound on any stored size or dimension, far from int64 overflow
SYMBOLIC = re.compile(r"(\d+\*)?[A-Za-z_]\w*(\*[A-Za-z_]\w*)*")  # how a Sym prints: N, 2*N, N*T


def _checksum(meta: Mapping[str, str], tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(meta):
        if key != "checksum":
            h.update(f"{key}\0{meta[key]}\0".encode())
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{name}\0{arr.dtype.str}\0{arr.shape}\0".encode())
        h.update(arr.reshape(-1).view(np.uint8))
    return h.hexdigest()


def _spec_json(name: str, spec: TensorSpec) -> dict[str, Any]:
    return {"name": name, "dtype": spec.dtype, "shape": list(spec.shape)}


def _bound_spec(t: TensorType, binding: Mapping[str, int]) -> TensorSpec:
    return spec_of(TensorType(t.dtype, tuple(substitute(d, binding) for d in t.shape)))


def interface(model: CompiledModel, binding: Mapping[str, int]) -> tuple[dict[str, TensorSpec],
                                                                          dict[str, TensorSpec]]:
    """What an artifact of `model` takes and returns under `binding`: the inputs its outputs need (labels
    only the train block reads are left out) and every output, unbound dimensions by name."""
    types = {n: model.graph.values[v] for n, v in model.graph.inputs}
    inputs = {n: _bound_spec(types[n], binding) for n in model.used_inputs()}
    outputs = {n: _bound_spec(model.graph.values[v], binding) for n, v in model.graph.outputs}
    return inputs, outputs


def _unbindable(model: CompiledModel, binding: Mapping[str, int]) -> list[str]:
    """Dimensions the outputs need that neither `binding` nor any input's shape gives: a call could not size
    them (a T used only inside the model, or N seen only as 2*N)."""
    needed = symbols(model.inference_graph({**model.dims, **binding}))
    types = {n: model.graph.values[v] for n, v in model.graph.inputs}
    bindable = {d.names[0] for n in model.used_inputs() for d in types[n].shape
                if isinstance(d, Sym) and d.coeff == 1 and len(d.names) == 1}
    return [n for n in needed if n not in bindable]


def save_artifact(program: "Program", path: str | os.PathLike[str], dims: Mapping[str, int] | None = None) -> None:
    """Writes the model, its compile settings and parameters, atomically: a crash leaves either the old file or
    the new one, never half of one. Dimensions in `dims` (and those the program was compiled with) stay bound;
    the others are bound from the inputs' shapes at each call of the loaded artifact. Parameters that nothing
    trained or loaded are written (a speed test needs no training) but marked untrained, with an
    UntrainedWarning here and wherever the file is loaded."""
    from .frontend.modules import imported_files
    model = program.model
    binding = {**model.dims, **{k: int(v) for k, v in (dims or {}).items()}}
    for k, v in binding.items():
        if v < 1:
            raise ValueError(f"dimension {k} must be positive, got {v}")
        if model.dims.get(k, v) != v:
            raise ValueError(f"dimension {k} was bound to {model.dims[k]} at compile time; it cannot be saved as {v}")
    missing = _unbindable(model, binding)
    if missing:
        raise unbound_error(missing)
    inputs, outputs = interface(model, binding)
    symbolic = any(isinstance(d, str) for spec in (*inputs.values(), *outputs.values()) for d in spec.shape)
    memory = None if symbolic else program.compile_plan(binding, training=False).memory.as_dict()
    params = program.params
    stored = model.reduced_weights() if model.precision != "f32" else {}
    tensors: dict[str, np.ndarray] = {f"param/{n}": bf16_bits(a) if stored.get(n) == "bf16"
                                      else np.ascontiguousarray(a) for n, a in params.items()}
    layout = model.int8_channels_first(n for n, p in stored.items() if p == "int8")
    for name, channels_first in layout.items():
        tensors[f"param/{name}"], tensors[f"scale/{name}"] = int8_weights(params[name], channels_first)
    module = model.module
    source_dir = str(Path(module.filename).resolve().parent) if not module.filename.startswith("<") \
        else str(Path.cwd())
    meta = {
        "format": FORMAT, "version": VERSION,
        "inputs": json.dumps([_spec_json(n, t) for n, t in inputs.items()]),
        "outputs": json.dumps([_spec_json(n, t) for n, t in outputs.items()]),
        "persistent": json.dumps(list(params)), "memory": json.dumps(memory),
        "dtype": program.dtype, "dims": json.dumps(binding), "seed": str(program.seed),
        "source_name": module.filename, "source": module.text, "source_dir": source_dir,
        "files": json.dumps(imported_files(module)),
        "untrained": json.dumps(model.params_untrained()),
        "precision": model.precision, "keep_f32": json.dumps(sorted(model.precision_policy.keep_f32)),
        "stored": json.dumps(stored),
        "int8_scales": json.dumps(model.int8_scales),
    }
    if model.classes is not None:
        meta["classes"] = json.dumps(model.classes)
    meta["checksum"] = _checksum(meta, tensors)
    write_atomically(Path(path), save(tensors, metadata=meta))
    if meta["untrained"] == "true":
        warnings.warn(untrained_message(str(path), program.seed), UntrainedWarning, stacklevel=2)


def untrained_message(path: str, seed: int) -> str:
    """The one wording, for saving and loading, in Python and on the command line."""
    return (f"{path} holds freshly initialized parameters (seed {seed}), not trained ones: its outputs are not a "
            f"trained model's (load a checkpoint before saving: dlc compile MODEL.dlm --params CKPT -o {path})")


class LoadedProgram(PrecisionControl):
    """A compiled artifact, ready to call: inference only. Dimensions bound when it was saved are fixed; the
    others are bound from the inputs' shapes at each call, with one plan per binding (a bounded cache, as for a
    Program). Inputs are checked and converted as a Program's are. Every plan is one the compiler builds from
    the stored source; the file supplied only the parameter values."""

    def __init__(self, model: CompiledModel, inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec],
                 meta: dict[str, Any]):
        self.model = model
        self._calls = InferenceCalls(model)
        self._inputs = inputs
        self._outputs = outputs
        self.dtype: str = meta["dtype"]
        self.dims: dict[str, int] = meta["dims"]
        self.seed: int = meta["seed"]
        self.source: str = meta["source"]
        self.source_name: str = meta["source_name"]
        self.untrained: bool = meta.get("untrained", False)

    @property
    def classes(self) -> list[str] | None:
        """The class names of the labels (label k is classes[k]), if it was trained on names."""
        return None if self.model.classes is None else list(self.model.classes)

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        return dict(self._inputs)

    @property
    def outputs(self) -> dict[str, TensorSpec]:
        return dict(self._outputs)

    @property
    def unbound(self) -> list[str]:
        """The dimensions each call binds from its inputs' shapes (the batch size, say)."""
        return sorted({d for s in self._inputs.values() for d in s.shape if isinstance(d, str)})

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by name, as read-only views."""
        return self.model.params

    @property
    def memory(self) -> dict[str, int]:
        """Planned memory of the inference plan: for the dimensions bound at save time, and those of the most
        recent call; packed_weights_bytes is what its packed weights hold beside the arena."""
        binding = self._calls.last_binding
        if self.unbound and not binding:
            raise ValueError(f"the planned memory depends on {', '.join(self.unbound)}, which each call binds "
                             f"from its inputs: call the artifact first")
        return self.model.inference_plan(binding, training=False).memory_report()

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        return self._calls(inputs, training=False, step=0)

    def predict(self, inputs: Any, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """The outputs for a whole dataset, `batch_size` samples at a time (default: all at once), concatenated;
        as Program.predict."""
        return self._calls.predict(inputs, batch_size, step=0)

    def __repr__(self) -> str:
        from .display import one_line
        return one_line("LoadedProgram", f"(from {self.source_name})", self)

    def _repr_html_(self) -> str:
        """A notebook's rich display: the summary table, and the graph as SVG when Graphviz is installed."""
        from .display import rich_html
        return rich_html("LoadedProgram", f"(from {self.source_name})", self.model)


# ---- loading and validation ----

class _Reader:
    """Checks one artifact's metadata field by field; every failure names the file and the field."""

    def __init__(self, path: str, meta: dict[str, str]):
        self.path = path
        self.meta = meta

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: {message}")

    def text(self, key: str) -> str:
        if key not in self.meta:
            raise self.fail(f"the artifact has no '{key}' entry (corrupt or written by another tool)")
        return self.meta[key]

    def json(self, key: str) -> Any:
        try:
            return json.loads(self.text(key))
        except json.JSONDecodeError as e:
            raise self.fail(f"the '{key}' entry is not valid JSON ({e.msg} at position {e.pos})") from None
        except RecursionError:
            raise self.fail(f"the '{key}' entry is nested too deeply") from None

    def integer(self, value: Any, what: str, low: int = 0, high: int = MAX_BYTES) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(f"{what} must be an integer in [{low}, {high}], got {value!r}")
        return value

    def integers(self, value: Any, what: str, low: int = 0, high: int = MAX_BYTES) -> list[int]:
        if not isinstance(value, list):
            raise self.fail(f"{what} must be a list, got {value!r}")
        return [self.integer(v, what, low, high) for v in value]

    def shape(self, value: Any, what: str) -> list[int | str]:
        """Sizes, and the names of dimensions left unbound (N, 2*N), which the loader compares with what the
        compiler gives and never uses to size anything."""
        if not isinstance(value, list):
            raise self.fail(f"{what} must be a list, got {value!r}")
        return [v if isinstance(v, str) and len(v) <= 100 and SYMBOLIC.fullmatch(v) else self.integer(v, what)
                for v in value]

    def specs(self, key: str) -> dict[str, TensorSpec]:
        items = self.json(key)
        out: dict[str, TensorSpec] = {}
        if not isinstance(items, list):
            raise self.fail(f"'{key}' must be a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item.get("dtype") not in DTYPES:
                raise self.fail(f"bad entry in '{key}': {item!r}")
            shape = self.shape(item.get("shape"), f"the shape of {key[:-1]} '{item['name']}'")
            if len(shape) > MAX_RANK or item["name"] in out:
                raise self.fail(f"bad entry in '{key}': {item!r}")
            out[item["name"]] = TensorSpec(item["dtype"], tuple(shape))
        return out


def file_format(path: str | os.PathLike[str]) -> str | None:
    """The `format` entry of a safetensors file's metadata ("dlc-artifact", "dlc-checkpoint"), None if absent;
    CheckpointError if the file cannot be read as safetensors."""
    try:
        with safe_open(str(path), framework="np") as f:
            return (f.metadata() or {}).get("format")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def load_artifact(path: str | os.PathLike[str], *, strict_dtypes: bool = False,
                  precision: str | None = None) -> LoadedProgram:
    """Reads an artifact written by `save_artifact` and compiles its model again; raises CheckpointError if the
    file is missing, truncated, corrupt, not an artifact, or its parameters do not fit its model.
    strict_dtypes=True refuses inputs of other dtypes than declared instead of converting them. `precision`
    replaces the stored precision of inference (None keeps it)."""
    if precision is not None:
        check_precision(precision)
    where = str(path)
    try:
        with safe_open(where, framework="np") as f:
            meta = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such file") from None
    except (SafetensorError, OSError, ValueError, TypeError) as e:  # TypeError: a dtype NumPy lacks (bf16)
        raise CheckpointError(f"{where}: not a readable safetensors file ({e})") from None
    if not meta or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a dlc artifact (no format='{FORMAT}' in its metadata)")
    r = _Reader(where, meta)
    if r.text("version") not in READABLE_VERSIONS:
        raise r.fail(f"artifact version {meta['version']!r} is not supported (this dlc reads versions "
                     f"{', '.join(READABLE_VERSIONS)})")
    if r.text("checksum") != _checksum(meta, tensors):
        raise r.fail("checksum mismatch: the file was modified or corrupted after it was written")
    inputs, outputs = r.specs("inputs"), r.specs("outputs")
    persistent = r.json("persistent")
    if not isinstance(persistent, list) or not all(isinstance(n, str) for n in persistent) \
            or len(set(persistent)) != len(persistent):
        raise r.fail("'persistent' must be a list of distinct names")
    memory = r.json("memory")
    if memory is not None or r.meta["version"] in ("1", "2"):  # null: a dimension is unbound (version 3)
        if not isinstance(memory, dict) or not {"arena_bytes", "naive_bytes", "lower_bound_bytes"} <= set(memory):
            raise r.fail("'memory' must hold arena_bytes, naive_bytes and lower_bound_bytes")
        for k, v in memory.items():
            r.integer(v, f"memory {k}")
    dims = r.json("dims")
    if not isinstance(dims, dict) or not all(isinstance(k, str) for k in dims):
        raise r.fail("'dims' must map names to sizes")
    for k, v in dims.items():
        r.integer(v, f"dimension {k}", 1)
    dtype = r.text("dtype")
    if dtype not in ("f32", "f64"):
        raise r.fail(f"dtype must be f32 or f64, got {dtype!r}")
    try:
        seed = r.integer(int(r.text("seed")), "seed", 0, 2 ** 64 - 1)  # the runtime's seed is a uint64
    except ValueError:
        raise r.fail(f"seed must be an integer, got {meta['seed']!r}") from None
    untrained = meta.get("untrained", "false")
    if untrained not in ("true", "false"):
        raise r.fail(f"'untrained' must be true or false, got {untrained!r}")
    info = {"dtype": dtype, "dims": dims, "seed": seed, "source": r.text("source"),
            "source_name": r.text("source_name"), "untrained": untrained == "true", **_precision_entries(r)}
    if precision is not None:
        info["precision"] = precision
    model = _rebuild(r, info, tensors, persistent, strict_dtypes)
    if "classes" in meta:
        model.classes = parse_classes(where, meta["classes"])
    if interface(model, {}) != (inputs, outputs):
        raise r.fail("the declared inputs or outputs differ from what the stored model compiles to (edited?)")
    missing = _unbindable(model, {})
    if missing:
        raise r.fail(f"dimension(s) {', '.join(missing)} are neither bound nor the size of an input axis")
    if not any(isinstance(d, str) for spec in (*inputs.values(), *outputs.values()) for d in spec.shape):
        try:  # every size is known: compile the plan now, so a plan that cannot be built fails here
            model.inference_plan({}, training=False)
        except (DlcError, ValueError) as e:
            raise r.fail(f"the stored model does not compile: {e}") from None
    if info["untrained"]:
        warnings.warn(untrained_message(where, seed), UntrainedWarning, stacklevel=2)
    return LoadedProgram(model, inputs, outputs, info)


def _rebuild(r: _Reader, info: dict[str, Any], tensors: Mapping[str, np.ndarray], persistent: list[str],
             strict_dtypes: bool) -> CompiledModel:
    """Compiles the stored source (and, when every dimension is bound, its plan) and fills in the stored
    parameters, each checked against its compiled type."""
    from .frontend.modules import load_text
    files = r.json("files") if "files" in r.meta else {}
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise r.fail("'files' must map paths to texts")
    source_dir = Path(r.meta.get("source_dir", "."))
    try:
        module = load_text(info["source"], info["source_name"], source_dir, files=files)
        model = CompiledModel(module, dims=info["dims"], dtype=info["dtype"], seed=info["seed"],
                              strict_dtypes=strict_dtypes)
    except (DlcError, ValueError) as e:
        raise r.fail(f"the stored model does not compile: {e}") from None
    expected = model.params
    if set(persistent) != set(expected):
        raise r.fail(f"the stored parameters ({', '.join(sorted(persistent)) or 'none'}) are not the model's "
                     f"({', '.join(sorted(expected)) or 'none'})")
    int8 = [n for n, p in info["stored"].items() if p == "int8"]
    wanted = {f"param/{n}" for n in persistent} | {f"scale/{n}" for n in int8}
    if not wanted <= set(tensors):
        raise r.fail(f"tensor(s) missing: {', '.join(sorted(wanted - set(tensors)))}")
    if READABLE_VERSIONS.index(r.meta["version"]) > 0 and set(tensors) != wanted:
        raise r.fail(f"unexpected tensors in the file: {', '.join(sorted(set(tensors) - wanted))}")
    values: dict[str, np.ndarray] = {}
    for name in info["stored"]:
        if name not in expected:
            raise r.fail(f"'stored' names '{name}', which is not a parameter of the model")
    layout = model.int8_channels_first(int8)
    for name in persistent:
        arr, want = tensors[f"param/{name}"], expected[name]
        if name in layout:  # int8 per output channel, with its scales: dequantized once the shapes are checked
            arr = _dequantize(r, name, arr, tensors[f"scale/{name}"], want, layout[name])
        elif name in int8:
            raise r.fail(f"parameter '{name}' is stored as int8 but no int8 kernel of the model reads it")
        elif name in info["stored"]:  # bf16 bit patterns: widened exactly, once the shape is the model's
            if arr.dtype != np.uint16 or arr.shape != want.shape or want.dtype != np.float32:
                raise r.fail(f"parameter '{name}' is stored as {arr.dtype.name}{list(arr.shape)} but the model "
                             f"needs bf16 bits (uint16){list(want.shape)} of an f32 weight")
            arr = bf16_values(arr)
        if arr.dtype != want.dtype or arr.shape != want.shape:
            raise r.fail(f"parameter '{name}' is stored as {arr.dtype.name}{list(arr.shape)} but the model "
                         f"needs {want.dtype.name}{list(want.shape)}")
        values[name] = arr
    model.set_params(values)
    model.int8_scales = info["int8_scales"]
    try:
        model.set_precision(info["precision"], info["keep_f32"])
    except ValueError as e:
        raise r.fail(str(e)) from None
    return model


def _precision_entries(r: _Reader) -> dict[str, Any]:
    """precision, keep_f32 and stored (version 4; f32 and nothing before it), each checked."""
    if "precision" not in r.meta:
        return {"precision": "f32", "keep_f32": [], "stored": {}, "int8_scales": None}
    try:
        precision = check_precision(r.meta["precision"])
    except ValueError as e:
        raise r.fail(str(e)) from None
    keep, stored = r.json("keep_f32"), r.json("stored")
    if not isinstance(keep, list) or not all(isinstance(n, str) for n in keep):
        raise r.fail("'keep_f32' must be a list of layer names")
    if not isinstance(stored, dict) or not all(isinstance(k, str) and v in ("bf16", "int8") for k, v in stored.items()):
        raise r.fail("'stored' must map parameter names to \"bf16\" or \"int8\"")
    return {"precision": precision, "keep_f32": keep, "stored": stored, "int8_scales": _int8_scales(r)}


def _int8_scales(r: _Reader) -> dict[str, tuple[float, int]] | None:
    """The int8 activation scales by layer (null: dynamic), each a positive finite scale and a zero point in
    [0, 255]."""
    scales = r.json("int8_scales") if "int8_scales" in r.meta else None
    if scales is None:
        return None
    ok = isinstance(scales, dict) and all(
        isinstance(k, str) and isinstance(v, list) and len(v) == 2 and isinstance(v[0], float)
        and np.isfinite(v[0]) and v[0] > 0 and isinstance(v[1], int) and 0 <= v[1] <= 255 for k, v in scales.items())
    if not ok:
        raise r.fail("'int8_scales' must map layer names to [scale > 0, zero point in 0..255]")
    return {k: (float(v[0]), int(v[1])) for k, v in scales.items()}


def _dequantize(r: _Reader, name: str, q: np.ndarray, scale: np.ndarray, want: np.ndarray,
                channels_first: bool) -> np.ndarray:
    channels = want.shape[0] if channels_first else want.shape[-1]
    if q.dtype != np.int8 or q.shape != want.shape or want.dtype != np.float32:
        raise r.fail(f"parameter '{name}' is stored as {q.dtype.name}{list(q.shape)} but the model needs "
                     f"int8{list(want.shape)} of an f32 weight")
    if scale.dtype != np.float32 or scale.shape != (channels,) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise r.fail(f"scales of '{name}' must be {channels} positive finite float32 values")
    return q.astype(np.float32) * (scale.reshape((channels,) + (1,) * (q.ndim - 1)) if channels_first else scale)
