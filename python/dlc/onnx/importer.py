"""ONNX graph -> .dlm text and a parameter table.

The importer walks the nodes in dependency order and keeps, for every ONNX tensor name, what it is in the
model being written: a `Tensor` (a .dlm variable with its dtype and shape), a NumPy array (a constant: an
initializer, a Constant node, or any node whose inputs are all constant, folded here), or a `ShapeVec` (a small
integer vector whose entries may be symbolic dimensions, so Shape -> Gather -> Concat -> Reshape chains on a
symbolic batch fold into `reshape(x, [N, -1])`). Each op is converted by one function of an op family module
(`ops_*.py`), registered in `converters.CONVERTERS`. An op or attribute combination dlc cannot express raises
`Unsupported`; the importer collects every one and reports them together, never a partial model.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..dims import Sym
from .checker import DlmChecker
from .shape_nodes import evaluate
from .symbolic import Iota, symbolic_inputs
from .loader import OnnxImportError, read_model, sorted_nodes
from .values import Node, ShapeVec, Tensor, Unsupported, Value, literal, dlc_dtype, ONNX_DTYPES, dims_text

DLM_KEYWORDS = {"input", "param", "output", "block", "return", "repeat", "import", "from", "as", "train",
                "true", "false", "none", "if", "else"}
# Ops whose value must not be computed once at import time.
NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
              "Bernoulli", "Dropout"}


@dataclass
class Converted:
    """The result of an import: .dlm text and its parameters (checkpoint names -> arrays)."""

    text: str
    params: dict[str, np.ndarray]
    dims: dict[str, int] = field(default_factory=dict)
    # ONNX input/output names -> .dlm names (they differ when an ONNX name is not a valid .dlm identifier).
    input_names: dict[str, str] = field(default_factory=dict)
    output_names: dict[str, str] = field(default_factory=dict)
    # A QDQ model's int8 activation scales by layer (ops_quant.py); empty for other models.
    int8_scales: dict[str, tuple[float, int]] = field(default_factory=dict)


class Importer:
    def __init__(self, model: Any, where: str, dims: Mapping[str, int] | None = None):
        from . import converters  # noqa: F401  (registers every op family)
        self.model = model
        self.where = where
        self.dims = dict(dims or {})
        self.opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
        self.values: dict[str, Value] = {}
        self.lines: list[str] = []
        self.param_lines: list[str] = []
        self.params: dict[str, np.ndarray] = {}
        # id(array) -> (array, param name), so a shared constant is declared once; the array is kept so that
        # its id cannot be reused by a later temporary array.
        self.param_of: dict[int, tuple[np.ndarray, str]] = {}
        self.used: set[str] = set()
        self.shapes: dict[str, tuple[int | str, ...] | None] = {}
        self.problems: list[str] = []
        self.node: Node | None = None
        self.layer_names: set[str] = set()
        self.absorbed: set[int] = set()
        self.input_names: dict[str, str] = {}
        self.out_vars: dict[str, str] = {}
        self.output_names: dict[str, str] = {}
        self.weight_owner: dict[str, str] = {}
        self.readers: dict[str, list[Any]] = {}
        self.producers: dict[str, Any] = {}
        for proto in model.graph.node:
            for name in proto.input:
                self.readers.setdefault(name, []).append(proto)
            for name in proto.output:
                self.producers[name] = proto
        self.graph_outputs = {vi.name for vi in model.graph.output}
        self.check = DlmChecker(self.dims)
        self.initializer_ids: set[int] = set()
        self.flat_source: dict[str, Tensor] = {}  # a flattened tensor's ONNX name -> what it flattens
        self.visited: set[int] = set()  # nodes converted (or reported) so far
        self.triangles: dict[str, tuple[int, bool]] = {}  # `triangle` tensors written: (k, upper)
        self.quantized: dict[str, tuple[str, tuple[float, int]]] = {}  # QuantizeLinear output -> (input, params)
        self.qdq: dict[str, tuple[float, int]] = {}  # a QDQ pair's output -> its (scale, zero point)

    # ---- names ----

    def fresh(self, base: str) -> str:
        from ..ops import registry
        name = re.sub(r"[^A-Za-z0-9_]", "_", base).strip("_") or "t"
        if name[0].isdigit():
            name = "t" + name
        if name in DLM_KEYWORDS or keyword.iskeyword(name) or registry.lookup(name) is not None:
            name += "_"
        candidate, i = name, 1
        while candidate in self.used:
            i += 1
            candidate = f"{name}_{i}"
        self.used.add(candidate)
        return candidate

    def layer_name(self, weight: str | None, fallback: str) -> str:
        """A layer's name: the weight initializer's name without its '.weight' suffix (so exported dlc models
        come back with their parameter names), else the node's name or output, made a valid identifier."""
        base = fallback
        if weight and weight.endswith(".weight"):
            base = weight[: -len(".weight")]
        elif base.startswith("/"):
            # PyTorch names a node after its module path and op ('/encoder/lstm/LSTM_1'): the layer is the
            # module, 'encoder.lstm' (a second node of the module becomes 'encoder.lstm_2').
            parts = [p for p in base.split("/") if p]
            if len(parts) > 1 and self.node is not None and re.fullmatch(
                    re.escape(self.node.op) + r"(_\d+)?", parts[-1]):
                parts = parts[:-1]
            base = ".".join(parts)
        name = ".".join(re.sub(r"[^A-Za-z0-9_]", "_", p) or "_" for p in re.split(r"[./]", base))
        name = name.strip(".") or "layer"
        candidate, i = name, 1
        while candidate in self.layer_names:
            i += 1
            candidate = f"{name}_{i}"
        self.layer_names.add(candidate)
        return candidate

    def layer_call(self, weight: str | None, fallback: str) -> tuple[str, str | None]:
        """The naming argument of a layer call and the layer name to register its parameters under; a
        weight an earlier layer already owns gives `share="<that layer>"` (tied weights) and no new name."""
        if weight and weight in self.weight_owner:
            return f'share="{self.weight_owner[weight]}"', None
        layer = self.layer_name(weight, fallback)
        if weight:
            self.weight_owner[weight] = layer
        return f'name="{layer}"', layer

    # ---- values ----

    def get(self, onnx_name: str) -> Value:
        return self.values[onnx_name]

    def const(self, onnx_name: str) -> np.ndarray | None:
        v = self.values.get(onnx_name) if onnx_name else None
        return v if isinstance(v, np.ndarray) else None

    def need_const(self, onnx_name: str, what: str) -> np.ndarray:
        c = self.const(onnx_name)
        if c is None:
            raise Unsupported(f"{what} must be a constant (it is computed by the graph)")
        return c

    def tensor(self, onnx_name: str) -> Tensor:
        """The value as a .dlm tensor; a float constant becomes a `param`, a scalar an inline expression."""
        v = self.values[onnx_name]
        if isinstance(v, Tensor):
            return v
        if isinstance(v, ShapeVec):
            raise Unsupported(f"'{onnx_name}' holds symbolic dimensions and is used as a tensor")
        if isinstance(v, Iota):
            if v.axis is not None:
                raise Unsupported(f"'{onnx_name}' counts along a symbolic length and is used as a tensor")
            return self.typed(self.temp(f"full([{', '.join(self.dim_text(d) for d in v.shape)}], "
                                        f"value={v.start}, dtype=\"{v.dtype}\")", onnx_name))
        if not isinstance(v, np.ndarray):
            raise Unsupported(f"'{onnx_name}' holds indices computed at import time and is used as a tensor")
        return self.const_tensor(v, onnx_name)

    def const_tensor(self, arr: np.ndarray, hint: str) -> Tensor:
        """A constant used as a tensor. An initializer is a trainable parameter (it is a weight); a value the
        graph computes (from shapes, Constant nodes or initializers) stays a constant: a uniform one is
        `full(...)`, any other a parameter read through `stop_gradient` (named `const_*`), cast back when the
        values are integers or booleans."""
        dtype = dlc_dtype(arr.dtype)
        if id(arr) in self.initializer_ids and dtype in ("f32", "f64"):
            return Tensor(self.param(arr, hint), dtype, tuple(arr.shape))
        if arr.size and np.all(arr == arr.reshape(-1)[0]):
            first = arr.reshape(-1)[0].item()
            value = literal(float(first) if dtype in ("f32", "f64") else int(first))
            return self.typed(self.temp(f"full({literal(list(arr.shape))}, value={value}, dtype=\"{dtype}\")",
                                        hint))
        if dtype in ("f32", "f64"):
            return self.typed(self.temp(f"stop_gradient({self.param(arr, 'const_' + hint)})", hint))
        if np.any(np.abs(arr.astype(np.float64)) > 2 ** 24):
            raise Unsupported(f"the integer constant '{hint}' of shape {list(arr.shape)} is used as a tensor and "
                              "its values do not fit f32 exactly (dlc has no integer constants in .dlm)")
        stored = self.param(arr.astype(np.float32), "const_" + hint)
        return self.typed(self.temp(f"cast(stop_gradient({stored}), \"{dtype}\")", hint))

    def param(self, arr: np.ndarray, hint: str, name: str | None = None) -> str:
        key = id(arr)
        if key in self.param_of and name is None:
            return self.param_of[key][1]
        pname = name or self.fresh(hint)
        self.used.add(pname)
        dtype = dlc_dtype(arr.dtype)
        line = f"param {pname}: {dtype}{literal(list(arr.shape))}"
        self.check.statement(line)
        self.param_lines.append(line)
        self.params[pname] = np.array(arr, order="C")  # ascontiguousarray would make a 0-d array 1-d
        self.param_of[key] = (arr, pname)
        return pname

    def layer_param(self, layer: str | None, local: str, arr: np.ndarray) -> None:
        if layer is None:  # a layer sharing another's parameters
            return
        self.params[f"{layer}.{local}"] = np.array(arr, order="C")

    def set(self, onnx_name: str, value: Value) -> None:
        if onnx_name:
            self.values[onnx_name] = value

    def emit(self, onnx_name: str, expr: str) -> Tensor:
        """Assigns `expr` to a new variable standing for the ONNX tensor `onnx_name`."""
        var = self.out_vars[onnx_name] if onnx_name in self.out_vars and onnx_name not in self.values \
            else self.fresh(onnx_name)
        self.statement(f"{var} = {expr}")
        t = self.typed(var)
        self.set(onnx_name, t)
        return t

    def temp(self, expr: str, hint: str = "t") -> str:
        """An intermediate variable of a decomposition (no ONNX name of its own)."""
        var = self.fresh(hint)
        self.statement(f"{var} = {expr}")
        return var

    def statement(self, line: str) -> None:
        """Appends a statement to the model, elaborated by dlc first (its types become known)."""
        self.check.statement(line)
        self.lines.append(line)

    def typed(self, var: str) -> Tensor:
        """The variable as a Tensor with the dtype and shape dlc infers for it."""
        t = self.check.type_of(var)
        if t is None:
            raise Unsupported(f"'{var}' is not a tensor")
        return Tensor(var, t.dtype, tuple(t.shape))

    def scalar_or_tensor(self, onnx_name: str) -> str:
        """A float constant of one element as a number literal, else a tensor name."""
        c = self.const(onnx_name)
        if c is not None and c.size == 1 and c.dtype.kind == "f":
            return literal(float(c.reshape(())))
        return self.tensor(onnx_name).name

    def dim_text(self, d: Any) -> str:
        """A dimension as .dlm text: a number, or the name of a symbolic dimension of the inputs."""
        if isinstance(d, Sym):
            if d.coeff == 1 and len(d.names) == 1:
                return d.names[0]
            raise Unsupported(f"the dimension {d} (a product of symbols) cannot be written in .dlm")
        return str(int(d))

    def target_text(self, items: list[Any]) -> str:
        """A reshape target as .dlm text: a product of symbols (N*T), which .dlm cannot write, becomes the
        target's one -1 (the element count fixes it)."""
        compound = [i for i, d in enumerate(items) if isinstance(d, Sym) and (d.coeff != 1 or len(d.names) > 1)]
        if len(compound) > 1 or (compound and -1 in items):
            raise Unsupported(f"the reshape target {[str(d) for d in items]} has more than one unknown entry")
        return "[" + ", ".join("-1" if i in compound else str(d) if isinstance(d, Sym) else str(int(d))
                               for i, d in enumerate(items)) + "]"

    def sole_consumer(self, onnx_name: str, op_type: str) -> Any | None:
        """The node reading `onnx_name`, when it is the only reader, has type `op_type`, and the tensor is not
        a graph output (so a converter may absorb it, as MatMul absorbs the Add of its bias)."""
        readers = self.readers.get(onnx_name, [])
        if len(readers) == 1 and readers[0].op_type == op_type and onnx_name not in self.graph_outputs:
            return readers[0]
        return None

    def is_used(self, onnx_name: str) -> bool:
        """Whether a node output is read by another node or is a graph output (unused optional outputs,
        like Dropout's mask, need no conversion)."""
        return bool(onnx_name) and (onnx_name in self.readers or onnx_name in self.graph_outputs)

    def absorb(self, proto: Any, value: Value) -> None:
        """Marks a node as converted by an earlier one, with its output's value."""
        self.absorbed.add(id(proto))
        self.set(proto.output[0], value)

    # ---- the walk ----

    def run(self) -> Converted:
        import onnx
        from onnx import numpy_helper

        graph = self.model.graph
        self.infer_shapes()
        inits = {t.name: t for t in graph.initializer}
        for t in graph.initializer:
            if t.data_type == 8:
                continue
            self.values[t.name] = numpy_helper.to_array(t)
            self.initializer_ids.add(id(self.values[t.name]))  # the arrays stay alive in self.values
        input_lines = []
        for vi in graph.input:
            if vi.name in inits:
                continue
            tt = vi.type.tensor_type
            if not vi.type.HasField("tensor_type"):
                self.problems.append(f"graph input '{vi.name}': only tensor inputs are supported")
                continue
            dtype = ONNX_DTYPES.get(tt.elem_type)
            if dtype is None:
                self.problems.append(f"graph input '{vi.name}': element type "
                                     f"{onnx.TensorProto.DataType.Name(tt.elem_type)} is not supported "
                                     "(dlc has f32, f64, i32, i64, bool)")
                continue
            shape = self.shapes.get(vi.name)
            if shape is None:
                self.problems.append(f"graph input '{vi.name}' has no shape")
                continue
            var = self.fresh(vi.name)
            self.input_names[vi.name] = var
            line = f"input {var}: {dtype}{dims_text(shape)}"
            try:
                self.check.statement(line)
            except Unsupported as e:  # a declared shape dlc cannot hold (2^40 elements, say)
                self.problems.append(f"graph input '{vi.name}': {e}")
                continue
            input_lines.append(line)
            self.values[vi.name] = self.typed(var)
        # Graph outputs keep their names: the variable computing one is named after it.
        self.out_vars = {vi.name: self.fresh(vi.name) for vi in graph.output if vi.name not in self.values}
        known = set(self.values) | {vi.name for vi in graph.input} | set(inits)
        for proto in sorted_nodes(graph, known, self.where):
            self.convert(proto)
        output_lines = []
        for vi in graph.output:
            if vi.name not in self.values:
                continue  # produced by a node that was reported
            try:
                t = self.tensor(vi.name)
            except Unsupported as e:
                self.problems.append(f"graph output '{vi.name}': {e}")
                continue
            out = self.out_vars.get(vi.name) or self.fresh(vi.name)
            if out in {o for o in self.output_names.values()}:
                out = self.fresh(vi.name)  # the same tensor listed as two outputs
            self.output_names[vi.name] = out
            output_lines.append(f"output {out}" if out == t.name else f"output {out} = {t.name}")
        if self.problems:
            raise OnnxImportError(f"{self.where}: cannot import {len(self.problems)} node(s):\n  "
                                  + "\n  ".join(self.problems))
        self.prune(output_lines)
        header = [f"# Imported from {self.where} by dlc import (opset {self.opsets.get('ai.onnx', '?')}"
                  + (f", producer {self.model.producer_name} {self.model.producer_version}".rstrip()
                     if self.model.producer_name else "") + ")."]
        text = "\n".join(header + input_lines + [""] + self.param_lines + ([""] if self.param_lines else [])
                         + self.lines + [""] + output_lines) + "\n"
        from .ops_quant import int8_scales
        return Converted(text, self.params, self.dims, self.input_names, self.output_names, int8_scales(self))

    def prune(self, output_lines: list[str]) -> None:
        """Drops statements and constant parameters no output depends on: values a recognized pattern made
        unnecessary (a causal mask that became `causal=true`) would otherwise stay in the text."""
        ident = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
        needed = set(ident.findall("\n".join(output_lines)))
        kept = []
        for line in reversed(self.lines):
            var, _, expr = line.partition(" = ")
            if var in needed or not ident.fullmatch(var):
                kept.append(line)
                needed.update(ident.findall(line))
        self.lines = kept[::-1]
        params = []
        for line in self.param_lines:
            name = line.split()[1].rstrip(":")
            if name in needed:
                params.append(line)
            else:
                self.params.pop(name, None)
        self.param_lines = params

    def convert(self, proto: Any) -> None:
        from onnx import helper

        from .registry import CONVERTERS
        domain = proto.domain or "ai.onnx"
        opset = self.opsets.get(domain, 0)
        label = f"node '{proto.name or proto.output[0]}' ({proto.op_type}, opset {opset})"
        if domain not in ("ai.onnx", "ai.onnx.ml") or domain == "ai.onnx.ml":
            self.problems.append(f"{label}: domain '{domain}' is not supported")
            return
        if id(proto) in self.absorbed:
            return
        self.visited.add(id(proto))
        if any(n and n not in self.values for n in proto.input):
            return  # an input comes from a node already reported
        node = Node(proto, opset, {a.name: _attr_value(helper.get_attribute_value(a)) for a in proto.attribute})
        self.node = node
        try:
            # QDQ nodes are never folded: their converters know a weight from a computed constant (ops_quant.py).
            if proto.op_type not in ("QuantizeLinear", "DequantizeLinear") and self.fold(node):
                return
            if symbolic_inputs([self.values.get(n) for n in node.inputs if n]):
                value = evaluate(self, node)
                if value is not None:
                    self.set(node.outputs[0], value)
                return
            fn = CONVERTERS.get(proto.op_type)
            if fn is None:
                raise Unsupported("dlc has no conversion for this op")
            fn(self, node)
            missing = [o for o in node.outputs if self.is_used(o) and o not in self.values]
            if missing:
                raise Unsupported(f"output(s) {', '.join(missing)} are not supported")
        except Unsupported as e:
            self.problems.append(f"{label}: {e}")
        except OnnxImportError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, ArithmeticError) as e:  # axis % rank 0, say
            self.problems.append(f"{label}: malformed node ({type(e).__name__}: {e})")

    def convert_early(self, onnx_name: str, avoid: set[int], depth: int = 0) -> bool:
        """Converts the nodes computing `onnx_name` now, ahead of their place in the walk (a pattern needs a
        value the walk reaches later); never through a node in `avoid`. Whether the value is then known."""
        if onnx_name in self.values:
            return True
        proto = self.producers.get(onnx_name)
        if proto is None or id(proto) in avoid or id(proto) in self.absorbed or id(proto) in self.visited \
                or depth > 64:
            return False
        if not all(self.convert_early(n, avoid, depth + 1) for n in proto.input if n):
            return False
        current = self.node
        problems = len(self.problems)
        self.convert(proto)
        self.node = current
        if len(self.problems) > problems:  # reported: the walk will not convert it again
            self.absorbed.add(id(proto))
            return False
        self.absorbed.add(id(proto))
        return onnx_name in self.values

    def fold(self, node: Node) -> bool:
        """Computes a node whose inputs are all constant (at import time, with ONNX's reference evaluator)."""
        from .folding import MIN_FOLD_LIMIT, fold_node
        if node.op in NEVER_FOLD or not node.inputs and node.op not in ("Constant", "ConstantOfShape"):
            return False
        ins = [self.values.get(n) if n else None for n in node.inputs]
        if any(v is not None and not isinstance(v, np.ndarray) for v in ins):
            return False
        outs = fold_node(node, ins, max(MIN_FOLD_LIMIT, self.model.ByteSize()))
        for name, arr in zip(node.outputs, outs):
            self.set(name, arr)
        return True

    def check_constant_ranges(self) -> bool:
        """ONNX's data propagation materializes a Range's values (Range(0, 2^40, 1) ran out of memory inside
        onnx after seconds), so a Range over constants is measured before shape inference runs. Whether data
        propagation is safe: not where another Range could read a declared dimension over the limit, nor where
        a 1-D tensor is declared longer than any shape vector."""
        from onnx import numpy_helper

        from .folding import MIN_FOLD_LIMIT, predicted_elements
        consts = {t.name: t for t in self.model.graph.initializer}
        consts.update({n.output[0]: a.t for n in self.model.graph.node if n.op_type == "Constant" and n.output
                       for a in n.attribute if a.name == "value" and a.HasField("t")})
        limit = max(MIN_FOLD_LIMIT, self.model.ByteSize())
        computed = False
        for proto in self.model.graph.node:
            if proto.op_type != "Range":
                continue
            if len(proto.input) != 3 or not all(n in consts for n in proto.input):
                computed = True
                continue
            try:
                ins = [numpy_helper.to_array(consts[n]) for n in proto.input]
            except Exception:  # a malformed constant: the conversion reports it
                continue
            size = predicted_elements(Node(proto, 0, {}), ins)
            if size is not None and size > limit:
                raise OnnxImportError(f"{self.where}: node '{proto.name or proto.output[0]}' (Range) would have "
                                      f"{size:,} elements, more than the {limit:,} this file justifies")
        declared = [[d.dim_value for d in vi.type.tensor_type.shape.dim]
                    for vi in [*self.model.graph.input, *self.model.graph.value_info]]
        # Data propagation also gives every element of a 1-D tensor without data a dimension of its own: a
        # graph input declared [2^31] took 24 GB inside onnx. Shape vectors are short; longer ones go without.
        long_vector = any(len(dims) <= 1 and max(dims, default=0) > 2 ** 16 for dims in declared)
        return not long_vector and (not computed or max(map(max, filter(None, declared)), default=0) <= limit)

    def infer_shapes(self) -> None:
        """Shapes and dtypes of every tensor, from ONNX's own shape inference (with data propagation, so
        shapes computed by Shape/Concat subgraphs are known)."""
        import onnx
        data_prop = self.check_constant_ranges()
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        try:
            model = onnx.shape_inference.infer_shapes(model, data_prop=data_prop)
        except Exception as e:  # inference rejects inconsistent graphs; say so rather than guess
            raise OnnxImportError(f"{self.where}: ONNX shape inference fails on this model ({e})") from None
        self.dtypes: dict[str, str] = {}
        for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
            if not vi.type.HasField("tensor_type"):
                continue
            tt = vi.type.tensor_type
            if tt.elem_type in ONNX_DTYPES:
                self.dtypes[vi.name] = ONNX_DTYPES[tt.elem_type]
            if not tt.HasField("shape"):
                self.shapes.setdefault(vi.name, None)
                continue
            dims: list[int | str] = []
            for i, d in enumerate(tt.shape.dim):
                if d.HasField("dim_value"):
                    dims.append(int(d.dim_value))
                elif d.HasField("dim_param"):
                    sym = re.sub(r"[^A-Za-z0-9_]", "_", d.dim_param)
                    sym = sym if sym and not sym[0].isdigit() else "d" + sym
                    dims.append(sym)
                else:
                    dims = None  # type: ignore[assignment]
                    break
            if dims is not None and vi.name not in self.shapes:
                self.shapes[vi.name] = tuple(dims)
            else:
                self.shapes.setdefault(vi.name, None)
        # Graph inputs without a dim name get one, so they stay symbolic in the .dlm.
        for vi in model.graph.input:
            tt = vi.type.tensor_type
            if vi.name in self.shapes and self.shapes[vi.name] is None and tt.HasField("shape"):
                self.shapes[vi.name] = tuple(
                    int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or f"d{i}")
                    for i, d in enumerate(tt.shape.dim))


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, list):
        return [x.decode() if isinstance(x, bytes) else x for x in v]
    return v




def import_model(source: str | Path | bytes, dims: Mapping[str, int] | None = None) -> Converted:
    """ONNX model (path or bytes) -> .dlm text and parameters."""
    model, _ = read_model(source)
    where = source.name if isinstance(source, Path) else (Path(source).name if isinstance(source, str)
                                                         else "<bytes>")
    return Importer(model, where, dims).run()
