"""The exporter's state (ONNX names of dlc values, initializers, values known at export time) and its table
of op exporters. dlc program -> ONNX: the inference graph, with symbolic dimensions kept as named dims.

The graph exported is the program's evaluation-mode graph before optimization (so batch norm stays a
BatchNormalization node and every parameter keeps its name as its initializer's name). Values that depend only
on parameters and constants (the shifted forget-gate bias, a reshaped convolution bias) are computed here with
the ops' NumPy references. A symbolic dimension needed as a number (a reshape target) is read at run time with
Shape -> Gather from an input that has it. Recurrent layers become ONNX LSTM/GRU/RNN nodes (gates reordered to
ONNX's order), attention its decomposition (it is one already in dlc's graph).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..dims import Dim, Sym
from ..errors import DlcError
from ..ir import Graph, Node
from ..ops import registry

OPSET = 17  # LayerNormalization; ReduceMean/Max/Min still take axes as an attribute
ONNX_TYPES = {"f32": 1, "f64": 11, "i32": 6, "i64": 7, "bool": 9}
INT64_MAX = 2 ** 63 - 1


class OnnxExportError(DlcError):
    """A program dlc cannot write as ONNX (an op without an ONNX form)."""


class Exporter:
    def __init__(self, graph: Graph, params: dict[str, np.ndarray], opset: int):
        from onnx import helper
        self.helper = helper
        self.g = graph
        self.opset = opset
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.names: dict[int, str] = {}  # dlc value -> ONNX tensor name
        self.known: dict[int, np.ndarray] = {}  # values computable at export time
        self.origin: dict[int, str] = {}  # a known value's parameter name (kept through reshapes)
        self.emitted: set[int] = set()  # known values already written as initializers
        self.counter = 0
        self.consumers = graph.consumers()
        self.producers = graph.producers()
        self.skip: set[int] = set()  # node ids absorbed by a pattern
        for p in graph.params:
            self.known[p.value] = params[p.name]
            self.origin[p.value] = p.name
        for v, arr in graph.consts.items():
            self.known[v] = np.asarray(arr)
        self.dim_sources: dict[str, tuple[str, int]] = {}
        for name, v in graph.inputs:
            for axis, d in enumerate(graph.values[v].shape):
                if isinstance(d, Sym) and d.coeff == 1 and len(d.names) == 1:
                    self.dim_sources.setdefault(d.names[0], (name, axis))

    # ---- names and constants ----

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}_{self.counter}"

    def name(self, v: int) -> str:
        """The ONNX name of a dlc value; a known value becomes an initializer on first use."""
        if v in self.known and v not in self.emitted:
            self.emitted.add(v)
            name = self.origin.get(v) or self.fresh("const")
            self.names[v] = name
            self.inits.append(tensor_proto(self.known[v], name))
        if v not in self.names:
            self.names[v] = self.fresh("t")
        return self.names[v]

    def const(self, arr: Any, hint: str = "c", dtype: Any = None) -> str:
        name = self.fresh(hint)
        self.inits.append(tensor_proto(np.asarray(arr, dtype=dtype), name))
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs: Any) -> list[str]:
        outs = outputs or [self.fresh(op.lower())]
        self.nodes.append(self.helper.make_node(op, inputs, outs, **attrs))
        return outs

    def out(self, node: Node, k: int = 0) -> str:
        return self.name(node.outputs[k])

    def shapetensor_proto(self, dims: tuple[Dim, ...]) -> str:
        """An int64 shape; symbolic entries read at run time from an input that has them."""
        if all(isinstance(d, int) for d in dims):
            return self.const(np.array(dims, dtype=np.int64), "shape")
        parts = []
        for d in dims:
            if isinstance(d, int):
                parts.append(self.const(np.array([d], dtype=np.int64), "dim"))
                continue
            factors = [self._symbol(n) for n in d.names]
            cur = factors[0]
            for f in factors[1:]:
                cur = self.add("Mul", [cur, f])[0]
            if d.coeff != 1:
                cur = self.add("Mul", [cur, self.const(np.array([d.coeff], dtype=np.int64), "coeff")])[0]
            parts.append(cur)
        return self.add("Concat", parts, axis=0)[0]

    def _symbol(self, name: str) -> str:
        if name not in self.dim_sources:
            raise OnnxExportError(f"dimension {name} is not the size of any input axis; bind it with -D")
        inp, axis = self.dim_sources[name]
        shape = self.add("Shape", [inp])[0]
        return self.add("Gather", [shape, self.const(np.array([axis], dtype=np.int64), "axis")], axis=0)[0]

    # ---- the walk ----

    def run(self) -> None:
        folded = {id(node) for node in self.g.nodes if self.fold(node)}  # first, so patterns see them
        for node in self.g.nodes:
            if id(node) in self.skip or id(node) in folded:
                continue
            fn = EXPORTERS.get(node.op)
            if fn is None:
                raise OnnxExportError(f"op '{node.op}' has no ONNX form in dlc's exporter")
            fn(self, node)

    def fold(self, node: Node) -> bool:
        """Computes nodes whose inputs are all known (parameter-only subgraphs) with the NumPy reference."""
        if not node.inputs or not all(v in self.known for v in node.inputs):
            return False
        if any(not isinstance(d, int) for v in node.outputs for d in self.g.values[v].shape):
            return False  # depends on a symbolic dimension: computed at run time
        opdef = registry.get(node.op)
        if opdef.reference is None or len(node.outputs) != 1:
            return False
        result = opdef.reference(*[self.known[v] for v in node.inputs], **node.attr_dict)
        self.known[node.outputs[0]] = np.asarray(result, dtype=self.known[node.inputs[0]].dtype
                                                 if node.op in _SHAPE_ONLY else None)
        if node.op in _SHAPE_ONLY and node.inputs[0] in self.origin:
            self.origin[node.outputs[0]] = self.origin[node.inputs[0]]
        return True


_SHAPE_ONLY = {"reshape", "squeeze", "unsqueeze", "flatten"}


def tensor_proto(arr: np.ndarray, name: str) -> Any:
    from onnx import numpy_helper
    return numpy_helper.from_array(np.array(arr, order="C"), name)  # ascontiguousarray makes 0-d arrays 1-d



Export = Callable[[Exporter, Node], None]
EXPORTERS: dict[str, Export] = {}


def exports(*ops: str) -> Callable[[Export], Export]:
    def register(fn: Export) -> Export:
        for op in ops:
            EXPORTERS[op] = fn
        return fn
    return register
