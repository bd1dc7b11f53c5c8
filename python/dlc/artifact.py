"""Compiled artifacts: an inference plan and its parameters in one safetensors file (no pickle, no code).

Format, version 1. The file is a safetensors file (https://huggingface.co/docs/safetensors) whose tensors are
  param/<name>   every persistent tensor (parameters and running statistics), by hierarchical name
  const/<i>      the plan's constant number i (small tensors folded into the graph)
and whose `__metadata__` (string -> string) holds
  format       "dlc-artifact"
  version      "1"
  plan         JSON: {"arena_bytes": int, "num_inputs": int, "num_consts": int, "outputs": [slot, ...],
               "slots": [[region, where, dtype_code, shape], ...],
               "steps": [[kernel_key, label, in_slots, out_slots, ints, floats], ...]}
               (a `PlanRecipe` from lower.py; regions: 0 arena byte offset, 1 persistent index, 2 input index,
               3 const index; dtype codes as DTYPE_CODES in ir.py; non-finite floats spelled Infinity/NaN)
  inputs       JSON [{"name", "dtype", "shape"}] — the inputs the plan reads, in plan order
  outputs      JSON [{"name", "dtype", "shape"}]
  persistent   JSON [name, ...] — the persistent table's order (slot `where` indexes it)
  memory       JSON {"arena_bytes", "naive_bytes", "lower_bound_bytes"}
  dtype        "f32" or "f64"; dims: JSON {name: size}; seed: the initialization seed
  source_name, source   the model file's name and text, for reference
  checksum     sha256 over every other metadata entry and every tensor, to catch silent corruption
Loading checks every index, size and dtype in the plan against the stored tensors before the C++ plan is
built, so a corrupt or hand-edited file is a `CheckpointError`, never an out-of-bounds access.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from .errors import CheckpointError, DlcError
from .ir import DTYPE_CODES, DTYPES, dtype_of_array, np_dtype
from .lower import ARENA, CONST, INPUT, PERSISTENT, PlanRecipe
from .program import TensorSpec, readonly_views

if TYPE_CHECKING:
    from .program import Program

FORMAT = "dlc-artifact"
VERSION = "1"
MAX_RANK = 8  # kMaxRank in csrc/runtime/tensor.h
MAX_BYTES = 2 ** 48  # no plan addresses more; also keeps every size far from int64 overflow
_CODE_DTYPES = {code: name for name, code in DTYPE_CODES.items()}


def _nbytes(dtype: str, shape: list[int] | tuple[int, ...]) -> int:
    n = np_dtype(dtype).itemsize
    for d in shape:
        n *= d
    return n


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


def _spec_json(name: str, dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "shape": [int(d) for d in shape]}


def save_artifact(program: "Program", path: str | os.PathLike[str], dims: Mapping[str, int] | None = None) -> None:
    """Compiles the inference plan for `dims` (plus the program's own) and writes it with the parameters,
    atomically: a crash leaves either the old file or the new one, never half of one."""
    lowered = program.compile_plan(dims, training=False)
    recipe = lowered.recipe
    params = program.params
    # The plan's persistent table may list optimizer state after the parameters; inference reads none of it,
    # so the artifact keeps the parameters only and renumbers the persistent slots to match.
    names = list(params)
    index = {n: i for i, n in enumerate(names)}
    renumber: dict[int, int] = {}
    for region, at, _, _ in recipe.slots:
        if region == PERSISTENT and at not in renumber:
            name = lowered.persistent_names[at]
            if name not in params:
                raise DlcError(f"the inference plan reads '{name}', which is not a parameter")
            renumber[at] = index[name]
    slots = [[region, renumber[at] if region == PERSISTENT else at, code, list(shape)]
             for region, at, code, shape in recipe.slots]
    tensors: dict[str, np.ndarray] = {f"param/{n}": np.ascontiguousarray(params[n]) for n in names}
    tensors.update({f"const/{i}": np.ascontiguousarray(c) for i, c in enumerate(recipe.consts)})
    plan = {"arena_bytes": recipe.arena_bytes, "num_inputs": recipe.num_inputs, "num_consts": len(recipe.consts),
            "outputs": list(recipe.outputs), "slots": slots, "steps": [list(s) for s in recipe.steps]}
    module = program.model.module
    binding = {**program.model.dims, **{k: int(v) for k, v in (dims or {}).items()}}
    meta = {
        "format": FORMAT, "version": VERSION, "plan": json.dumps(plan),
        "inputs": json.dumps([_spec_json(n, t.dtype, t.shape) for n, t in zip(lowered.input_names,
                                                                               lowered.input_types)]),
        "outputs": json.dumps([_spec_json(n, t.dtype, t.shape) for n, t in zip(lowered.output_names,
                                                                                lowered.output_types)]),
        "persistent": json.dumps(names), "memory": json.dumps(lowered.memory.as_dict()),
        "dtype": program.dtype, "dims": json.dumps(binding), "seed": str(program.seed),
        "source_name": module.filename, "source": module.text,
    }
    meta["checksum"] = _checksum(meta, tensors)
    data = save(tensors, metadata=meta)
    target = Path(path)
    # A fresh name beside the target (same file system, so os.replace is atomic), created by us so it gets the
    # usual umask permissions (save_file would create it 0600).
    tmp = target.resolve().parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class LoadedProgram:
    """A compiled artifact, ready to call: fixed shapes, inference only, parameters owned here."""

    def __init__(self, plan: Any, inputs: dict[str, TensorSpec], outputs: dict[str, TensorSpec],
                 params: dict[str, np.ndarray], memory: dict[str, int], meta: dict[str, Any]):
        self._plan = plan
        self._inputs = inputs
        self._outputs = outputs
        self._params = params
        self._memory = memory
        self.dtype: str = meta["dtype"]
        self.dims: dict[str, int] = meta["dims"]
        self.seed: int = meta["seed"]
        self.source: str = meta["source"]
        self.source_name: str = meta["source_name"]

    @property
    def inputs(self) -> dict[str, TensorSpec]:
        return dict(self._inputs)

    @property
    def outputs(self) -> dict[str, TensorSpec]:
        return dict(self._outputs)

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by name, as read-only views."""
        return readonly_views(self._params)

    @property
    def memory(self) -> dict[str, int]:
        return dict(self._memory)

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        for name in inputs:
            if name not in self._inputs:
                raise ValueError(f"unknown input '{name}' (the model takes: {', '.join(self._inputs)})")
        arrays: list[np.ndarray] = []
        for name, spec in self._inputs.items():
            if name not in inputs:
                raise ValueError(f"missing input '{name}' ({spec})")
            value = inputs[name]
            arr = value if isinstance(value, np.ndarray) else np.asarray(value)
            expected = np_dtype(spec.dtype)
            if arr.dtype != expected:
                raise ValueError(f"input '{name}': expected dtype {spec.dtype} ({expected.name}), got "
                                 f"{arr.dtype.name}; convert it with .astype(np.{expected.name})")
            if arr.ndim != len(spec.shape):
                raise ValueError(f"input '{name}': expected rank {len(spec.shape)} ({spec}), "
                                 f"got an array of shape {arr.shape}")
            if arr.shape != spec.shape:
                bound = f"; the artifact was compiled for {_dims_text(self.dims)}" if self.dims else ""
                raise ValueError(f"input '{name}': expected shape {list(spec.shape)} ({spec}), "
                                 f"got {list(arr.shape)}{bound}")
            arrays.append(np.ascontiguousarray(arr))
        outs = [np.empty(s.shape, dtype=np_dtype(s.dtype)) for s in self._outputs.values()]
        self._plan.run(arrays, outs, seed=self.seed, step=0, training=False, profile=False)
        return dict(zip(self._outputs, outs))

    def __repr__(self) -> str:
        ins = ", ".join(f"{n}: {s}" for n, s in self._inputs.items())
        outs = ", ".join(f"{n}: {s}" for n, s in self._outputs.items())
        return f"<dlc.LoadedProgram ({ins}) -> ({outs})>"


def _dims_text(dims: Mapping[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dims.items()))


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

    def specs(self, key: str) -> dict[str, TensorSpec]:
        items = self.json(key)
        out: dict[str, TensorSpec] = {}
        if not isinstance(items, list):
            raise self.fail(f"'{key}' must be a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or item.get("dtype") not in DTYPES:
                raise self.fail(f"bad entry in '{key}': {item!r}")
            shape = self.integers(item.get("shape"), f"the shape of {key[:-1]} '{item['name']}'")
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


def load_artifact(path: str | os.PathLike[str]) -> LoadedProgram:
    """Reads and validates an artifact written by `save_artifact`; raises CheckpointError if it is missing,
    truncated, corrupt or not an artifact."""
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
    if r.text("version") != VERSION:
        raise r.fail(f"artifact version {meta['version']!r} is not supported (this dlc reads version {VERSION})")
    if r.text("checksum") != _checksum(meta, tensors):
        raise r.fail("checksum mismatch: the file was modified or corrupted after it was written")
    inputs, outputs = r.specs("inputs"), r.specs("outputs")
    persistent = r.json("persistent")
    if not isinstance(persistent, list) or not all(isinstance(n, str) for n in persistent) \
            or len(set(persistent)) != len(persistent):
        raise r.fail("'persistent' must be a list of distinct names")
    params = {n: _stored(r, tensors, f"param/{n}") for n in persistent}
    recipe = _recipe(r, tensors, inputs, outputs, [params[n] for n in persistent])
    expected = {f"param/{n}" for n in persistent} | {f"const/{i}" for i in range(len(recipe.consts))}
    if set(tensors) != expected:
        raise r.fail(f"unexpected tensors in the file: {', '.join(sorted(set(tensors) - expected))}")
    memory = r.json("memory")
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
    info = {"dtype": dtype, "dims": dims, "seed": seed, "source": r.text("source"),
            "source_name": r.text("source_name")}
    try:
        plan = recipe.build()
        plan.set_persistent([params[n] for n in persistent])
    except (ValueError, TypeError, RuntimeError) as e:  # the C++ builder's own checks (e.g. unknown kernel)
        raise r.fail(f"the plan cannot be built: {e}") from None
    return LoadedProgram(plan, inputs, outputs, params, memory, info)


def _stored(r: _Reader, tensors: Mapping[str, np.ndarray], key: str) -> np.ndarray:
    if key not in tensors:
        raise r.fail(f"tensor '{key}' is missing")
    arr = tensors[key]
    if dtype_of_array(arr) is None:
        raise r.fail(f"tensor '{key}' has unsupported dtype {arr.dtype}")
    return np.array(arr, dtype=arr.dtype, order="C", copy=True)  # owned, writable, C-contiguous


def _recipe(r: _Reader, tensors: Mapping[str, np.ndarray], inputs: dict[str, TensorSpec],
            outputs: dict[str, TensorSpec], persistent: list[np.ndarray]) -> PlanRecipe:
    plan = r.json("plan")
    if not isinstance(plan, dict):
        raise r.fail("'plan' must be a JSON object")
    for key in ("arena_bytes", "num_inputs", "num_consts", "outputs", "slots", "steps"):
        if key not in plan:
            raise r.fail(f"the plan has no '{key}'")
    arena = r.integer(plan["arena_bytes"], "arena_bytes")
    if r.integer(plan["num_inputs"], "num_inputs") != len(inputs):
        raise r.fail(f"the plan takes {plan['num_inputs']} inputs but {len(inputs)} are declared")
    consts = [_stored(r, tensors, f"const/{i}") for i in range(r.integer(plan["num_consts"], "num_consts"))]
    input_specs = list(inputs.values())
    recipe = PlanRecipe(arena, consts=consts, num_inputs=len(inputs))
    if not isinstance(plan["slots"], list):
        raise r.fail("'slots' must be a list")
    slot_types: list[tuple[str, tuple[int, ...]]] = []
    for i, slot in enumerate(plan["slots"]):
        if not isinstance(slot, list) or len(slot) != 4:
            raise r.fail(f"slot {i} must be [region, where, dtype, shape]")
        region = r.integer(slot[0], f"slot {i} region", 0, 3)
        at = r.integer(slot[1], f"slot {i} location")
        code = r.integer(slot[2], f"slot {i} dtype", 0, max(_CODE_DTYPES))
        shape = r.integers(slot[3], f"slot {i} shape")
        dtype = _CODE_DTYPES[code]
        size = _nbytes(dtype, shape)
        if len(shape) > MAX_RANK or _nbytes(dtype, [d for d in shape if d]) > MAX_BYTES:
            raise r.fail(f"slot {i} has an impossible shape {shape}")
        if region == ARENA:
            ok, what = at + size <= arena, f"arena bytes [{at}, {at + size}) of {arena}"
        else:
            table = {PERSISTENT: [(a.dtype, a.nbytes) for a in persistent],
                     INPUT: [(np_dtype(s.dtype), _nbytes(s.dtype, s.shape)) for s in input_specs],
                     CONST: [(a.dtype, a.nbytes) for a in consts]}[region]
            ok = at < len(table) and np_dtype(dtype) == table[at][0] and size <= table[at][1]
            what = f"{['arena', 'persistent', 'input', 'const'][region]} {at} as {dtype}{shape}"
        if not ok:
            raise r.fail(f"slot {i} does not fit its storage ({what})")
        recipe.add_slot(region, at, code, shape)
        slot_types.append((dtype, tuple(shape)))
    n_slots = len(slot_types)
    if not isinstance(plan["steps"], list):
        raise r.fail("'steps' must be a list")
    for k, step in enumerate(plan["steps"]):
        if not (isinstance(step, list) and len(step) == 6 and isinstance(step[0], str) and isinstance(step[1], str)
                and isinstance(step[5], list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      for x in step[5])):
            raise r.fail(f"step {k} must be [kernel, label, ins, outs, ints, floats]")
        ins = r.integers(step[2], f"step {k} input slot", 0, n_slots - 1)
        outs = r.integers(step[3], f"step {k} output slot", 0, n_slots - 1)
        ints = r.integers(step[4], f"step {k} integer attribute", -2 ** 63, 2 ** 63 - 1)
        recipe.steps.append((step[0], step[1], ins, outs, ints, [float(x) for x in step[5]]))
    recipe.outputs = r.integers(plan["outputs"], "output slot", 0, n_slots - 1)
    if len(recipe.outputs) != len(outputs):
        raise r.fail(f"the plan has {len(recipe.outputs)} outputs but {len(outputs)} are declared")
    for (name, spec), s in zip(outputs.items(), recipe.outputs):
        if slot_types[s] != (spec.dtype, spec.shape):
            raise r.fail(f"output '{name}' is declared {spec} but its slot holds {slot_types[s][0]}"
                         f"{list(slot_types[s][1])}")
    return recipe
