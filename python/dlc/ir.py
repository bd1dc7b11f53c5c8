"""The typed computation graph.

A `Graph` is immutable: passes build a new one (`GraphBuilder.from_graph`, `dataclasses.replace`). Nodes are
kept in a valid execution order. The IR carries what later stages need:
- `phase` tells forward, backward and optimizer-update nodes apart (the backward graph is ordinary nodes);
- `group` is the fusion group a node was put in by the fusion pass (-1: not fused);
- multi-output nodes (recurrent layers, fused kernels) list several output values;
- persistent tensors (parameters, gradients, optimizer state, running statistics) are `ParamSpec`s, which the
  lowering places outside the arena; planned arena offsets live in the lowered plan (see lowering/memory.py).
"""

from __future__ import annotations

import copy

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from .dims import Dim, shape_str
from .errors import CompileError, Loc, ShapeError

DTYPES = ("f32", "f64", "i32", "i64", "bool")
FLOAT_DTYPES = ("f32", "f64")
NUMPY_DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}
# Position in the C++ DType enum (csrc/runtime/tensor.h).
DTYPE_CODES = {"f32": 0, "f64": 1, "i32": 2, "i64": 3, "bool": 4}


def np_dtype(dtype: str) -> np.dtype:
    return np.dtype(NUMPY_DTYPES[dtype])


def dtype_of_array(a: np.ndarray) -> str | None:
    for name, t in NUMPY_DTYPES.items():
        if a.dtype == np.dtype(t):
            return name
    return None


class OpSignature(Protocol):
    """What the builder needs of an op to add a node: strict attribute binding and the shape rule.

    The op registry (dlc.ops.registry) declares ops with everything else (gradients, kernels, references) and
    installs each one here with `install_op`, so dependencies point one way: the registry and the op families
    import the IR, never the reverse.
    """

    infer: Callable[[list["TensorType"], dict[str, Any]], list["TensorType"]] | None

    def bind_attrs(self, given: Mapping[str, Any]) -> dict[str, Any]: ...


_OP_SIGNATURES: dict[str, OpSignature] = {}


def install_op(name: str, signature: OpSignature) -> None:
    """Makes an op known to `GraphBuilder.op` (called by the registry when it registers the op)."""
    _OP_SIGNATURES[name] = signature


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}{shape_str(self.shape)}"


Attrs = tuple[tuple[str, Any], ...]

# Elements one tensor may have: 4 TiB of f32, beyond any machine, and small enough that its byte size and the
# products of its dims that kernels compute in int64 cannot wrap (regression: a sum over a broadcast to
# [2^32, 2^32, 4] returned 0.0).
MAX_TENSOR_ELEMENTS = 2 ** 40


def numel_lower_bound(shape: tuple[Dim, ...]) -> int:
    """The element count with every symbolic dimension at its smallest (1 times its coefficient)."""
    n = 1
    for d in shape:
        n *= abs(d if isinstance(d, int) else d.coeff)
    return n


def freeze_attrs(attrs: Mapping[str, Any]) -> Attrs:
    """Attributes as a sorted tuple, so nodes hash and compare structurally (CSE, pass tests)."""
    def freeze(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(freeze(x) for x in v)
        return v
    return tuple(sorted((k, freeze(v)) for k, v in attrs.items()))


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: Attrs = ()
    loc: Loc | None = field(default=None, compare=False)
    scope: str = field(default="", compare=False)  # block call path, for messages and profiles
    phase: str = "forward"  # forward | backward | update
    group: int = -1

    def attr(self, name: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == name:
                return v
        return default

    @property
    def attr_dict(self) -> dict[str, Any]:
        return dict(self.attrs)


@dataclass(frozen=True)
class ParamSpec:
    """A persistent tensor. kind: param (trainable weights), state (running statistics: saved, never
    optimized), grad, opt (optimizer state)."""

    name: str
    value: int
    type: TensorType
    init: tuple[Any, ...] = ("zeros",)
    kind: str = "param"
    trainable: bool = True
    fans: tuple[int, int] | None = None  # fan-in/out for scaled initializers, when the layer knows them better


@dataclass(frozen=True)
class Graph:
    values: Mapping[int, TensorType]
    nodes: tuple[Node, ...]
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]
    params: tuple[ParamSpec, ...] = ()
    consts: Mapping[int, np.ndarray] = field(default_factory=dict)

    def type_of(self, v: int) -> TensorType:
        return self.values[v]

    def producers(self) -> dict[int, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[int, list[Node]]:
        out: dict[int, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                out.setdefault(i, []).append(n)
        return out

    def param_by_value(self) -> dict[int, ParamSpec]:
        return {p.value: p for p in self.params}

    def with_nodes(self, nodes: Iterable[Node]) -> "Graph":
        return replace(self, nodes=tuple(nodes))

    def dump(self) -> str:
        """A readable listing, for IR dumps and pass tests."""
        lines = [f"input {n}: {self.values[v]} = %{v}" for n, v in self.inputs]
        lines += [f"{p.kind} {p.name}: {p.type} = %{p.value}" for p in self.params]
        lines += [f"const %{v}: {self.values[v]}" for v in self.consts]
        for n in self.nodes:
            outs = ", ".join(f"%{o}: {self.values[o]}" for o in n.outputs)
            args = ", ".join(f"%{i}" for i in n.inputs)
            attrs = "".join(f", {k}={v!r}" for k, v in n.attrs)
            grp = f"  # group {n.group}" if n.group >= 0 else ""
            lines.append(f"{outs} = {n.op}({args}{attrs}) [{n.phase}]{grp}")
        lines += [f"output {n} = %{v}" for n, v in self.outputs]
        return "\n".join(lines)


class GraphBuilder:
    """Appends type-checked nodes. Used by the front end, the autodiff transform and the passes."""

    def __init__(self, graph: Graph | None = None):
        self.values: dict[int, TensorType] = dict(graph.values) if graph else {}
        self.nodes: list[Node] = list(graph.nodes) if graph else []
        self.inputs: list[tuple[str, int]] = list(graph.inputs) if graph else []
        self.outputs: list[tuple[str, int]] = list(graph.outputs) if graph else []
        self.params: list[ParamSpec] = list(graph.params) if graph else []
        self.consts: dict[int, np.ndarray] = dict(graph.consts) if graph else {}
        self._next = max(self.values, default=-1) + 1
        # Context applied to new nodes, so gradient rules need not thread it through every call.
        self.loc: Loc | None = None
        self.scope: str = ""  # hierarchical layer name, for summaries and profiles
        self.notes: tuple[str, ...] = ()  # extra lines for errors (the block call path)
        self.phase: str = "forward"
        # The user-level op being expanded (cross_entropy), named in errors instead of its primitives.
        self.calling: str | None = None

    def copy(self) -> "GraphBuilder":
        """An independent builder with this one's nodes and context: appending to either leaves the other."""
        other = copy.copy(self)
        other.values, other.nodes, other.inputs = dict(self.values), list(self.nodes), list(self.inputs)
        other.outputs, other.params, other.consts = list(self.outputs), list(self.params), dict(self.consts)
        return other

    def new_value(self, t: TensorType) -> int:
        if numel_lower_bound(t.shape) > MAX_TENSOR_ELEMENTS:
            raise self.error(f"a tensor of type {t} has more than {MAX_TENSOR_ELEMENTS:,} elements (2**40); "
                             "no kernel or memory plan can hold it")
        v = self._next
        self._next += 1
        self.values[v] = t
        return v

    def add_input(self, name: str, t: TensorType) -> int:
        v = self.new_value(t)
        self.inputs.append((name, v))
        return v

    def add_param(self, name: str, t: TensorType, init: tuple[Any, ...], kind: str = "param",
                  trainable: bool = True, fans: tuple[int, int] | None = None) -> int:
        v = self.new_value(t)
        self.params.append(ParamSpec(name, v, t, init, kind, trainable, fans))
        return v

    def const(self, array: np.ndarray, dtype: str | None = None) -> int:
        # np.array, not ascontiguousarray: the latter turns a 0-d array into shape (1,).
        arr = np.array(array if dtype is None else np.asarray(array, dtype=np_dtype(dtype)), order="C")
        name = dtype_of_array(arr)
        if name is None:
            raise ShapeError(f"unsupported constant dtype {arr.dtype}")
        v = self.new_value(TensorType(name, tuple(int(d) for d in arr.shape)))
        self.consts[v] = arr
        return v

    def scalar(self, value: float, dtype: str) -> int:
        return self.const(np.array(value, dtype=np_dtype(dtype)))

    def type_of(self, v: int) -> TensorType:
        return self.values[v]

    def op(self, name: str, inputs: Iterable[int], **attrs: Any) -> tuple[int, ...]:
        """Adds a primitive op node after checking it with the op's shape rule."""
        opdef = _OP_SIGNATURES.get(name)
        if opdef is None or opdef.infer is None:
            raise CompileError(f"unknown primitive op '{name}'", self.loc, self._scope_notes())
        ins = tuple(inputs)
        full = opdef.bind_attrs(attrs)
        try:
            out_types = opdef.infer([self.values[i] for i in ins], full)
        except ShapeError as e:
            raise CompileError(f"{self.calling or name}: {e}", self.loc, self._scope_notes()) from None
        outs = tuple(self.new_value(t) for t in out_types)
        self.nodes.append(Node(name, ins, outs, freeze_attrs(full), self.loc, self.scope, self.phase))
        return outs

    def op1(self, name: str, *inputs: int, **attrs: Any) -> int:
        """`op` for the common single-output case."""
        outs = self.op(name, inputs, **attrs)
        return outs[0]

    def _scope_notes(self) -> tuple[str, ...]:
        return self.notes

    def error(self, message: str) -> CompileError:
        return CompileError(message, self.loc, self._scope_notes())

    def build(self) -> Graph:
        return Graph(dict(self.values), tuple(self.nodes), tuple(self.inputs), tuple(self.outputs),
                     tuple(self.params), dict(self.consts))


def downstream(nodes: Sequence[Node], start: int, readers: dict[int, list[int]]) -> set[int]:
    """Nodes that depend, directly or not, on node `start`'s results."""
    seen: set[int] = set()
    stack = [start]
    while stack:
        for o in nodes[stack.pop()].outputs:
            for r in readers.get(o, []):
                if r not in seen:
                    seen.add(r)
                    stack.append(r)
    return seen
