"""The op registry: every op is declared once, here or in a family module beside it.

An `OpDef` holds everything the compiler knows about an op: its .dlm signature (tensor operands and typed
keyword attributes), its shape and dtype rule, its fusion pattern, how it becomes a kernel call, its gradient
rule (written as other ops, so the backward graph is an ordinary graph), its NumPy reference and sample inputs
for the test harness. Composite ops and layers have an `expand` rule instead of a kernel: they are rewritten
into primitives (creating their parameters) when the graph is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Mapping

from ..dims import Sym
from ..errors import ShapeError
from ..ir import DTYPES, Attrs, GraphBuilder, Node, TensorType, install_op


class Pattern(str, Enum):
    """Fusion patterns, in TVM's lattice: lower values fuse more freely. Fusion, unit formation and row fusion
    read them (with `OpDef.tail` and `OpDef.row_fusion`), never op names:
    - ELEMENTWISE, BROADCAST: one evaluator instruction per element (`emit`); chains become one group;
    - INJECTIVE: layout ops (transpose, slice, ...), a kernel each;
    - REDUCTION: alone, or the tail of the elementwise group computing its input (`tail`), or a row
      reduction with a prologue and an epilogue (`row_fusion`);
    - OUT_ELEMENTWISE_FUSABLE: an epilogue head (matmul, convolution): its kernel runs the elementwise ops
      after it on its output while that is in cache. The kernel's ints are the op's own (`lower`), then the
      epilogue program's length and the program (csrc/kernels/matmul/matmul_cpu.cpp documents the layout);
    - OPAQUE: alone.
    """

    ELEMENTWISE = "elementwise"
    BROADCAST = "broadcast"
    INJECTIVE = "injective"
    REDUCTION = "reduction"
    OUT_ELEMENTWISE_FUSABLE = "out_elementwise_fusable"
    OPAQUE = "opaque"


class _Required:
    def __repr__(self) -> str:
        return "<required>"


REQUIRED: Any = _Required()

# "tensor": a tensor passed by keyword (`like=x`), only for expand rules, which receive its value id.
ATTR_KINDS = ("int", "float", "str", "bool", "ints", "shape", "dtype", "any", "tensor")


@dataclass(frozen=True)
class AttrSpec:
    name: str
    kind: str
    default: Any = REQUIRED
    choices: tuple[Any, ...] = ()
    doc: str = ""


@dataclass
class Sample:
    """One test case: operand arrays and attributes. `kinks(inputs) -> bool` says whether finite differences
    would straddle a point where the op is not differentiable, so the gradient check skips that case."""

    inputs: list[Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    grad: bool = True  # False: forward check only (e.g. integer inputs)
    kinks: Callable[[list[Any]], bool] | None = None


@dataclass(frozen=True)
class ReducedPrecision:
    """An op that can run its weight operand (input `weight`, computed from parameters alone) in a reduced
    precision: the kernel key per precision, as pairs ("bf16", "matmul_bf16"). `eligible(node, types)` says
    whether this node's form is one those kernels take. See dlc/precision.py and passes/precision.py."""

    weight: int
    kernels: tuple[tuple[str, str], ...]
    eligible: Callable[[Node, list[TensorType]], bool] | None = None
    # Further conditions of one precision's kernel, as pairs ("int8", check(node, types)).
    only: tuple[tuple[str, Callable[[Node, list[TensorType]], bool]], ...] = ()

    def kernel_for(self, precision: str) -> str | None:
        return dict(self.kernels).get(precision)

    def accepts(self, precision: str, node: Node, types: list[TensorType]) -> bool:
        """Whether `precision` has a kernel for this node's form (its `eligible` and `only` conditions)."""
        check = dict(self.only).get(precision)
        return self.kernel_for(precision) is not None and (check is None or check(node, types))


@dataclass(frozen=True)
class OpDef:
    name: str
    inputs: tuple[str, ...]  # operand names; a leading "*" marks a variadic list
    attrs: tuple[AttrSpec, ...] = ()
    infer: Callable[[list[TensorType], dict[str, Any]], list[TensorType]] | None = None
    expand: Callable[..., tuple[int, ...]] | None = None
    pattern: Pattern = Pattern.OPAQUE
    kernel: str | None = None
    # Elementwise ops: the evaluator instruction(s) they emit (see ewprogram.py's ProgramBuilder).
    emit: Callable[..., Any] | None = None
    # Non-elementwise kernels: (node, types) -> (ints, floats) in the kernel's documented layout.
    lower: Callable[..., tuple[list[int], list[float]]] | None = None
    grad: Callable[[GraphBuilder, Node, list[int | None]], list[int | None]] | None = None
    differentiable: bool = True
    reference: Callable[..., Any] | None = None
    samples: Callable[[Any, str], list[Sample]] | None = None
    view: bool = False  # output aliases the input's memory (reshape): no kernel, no copy
    user: bool = True  # callable from .dlm; internal ops (gradients, optimizer updates) are not
    layer: bool = False  # owns parameters
    # Ops whose kernel writes into some of its inputs (optimizer updates, running statistics): their indices,
    # or (-1,) for every input after the leading ones (the variadic optimizer updates).
    mutates: tuple[int, ...] = ()
    # With mutates == (-1,): how many leading inputs a node only reads, from its attributes (default 1).
    leading: Callable[[Mapping[str, Any]], int] | None = None
    # Outputs a gradient can flow back through; None means all. Extra outputs saved only for the backward
    # pass (layer norm's mean and 1/std) are excluded, and the gradient check puts no loss on them.
    differentiable_outputs: tuple[int, ...] | None = None
    # Draws from the counter-based stream of (seed, step, salt, element): never folded at compile time.
    random: bool = False
    # Row-wise reductions over the last axis (layer norm and its gradient) that a fused kernel can run with an
    # elementwise prologue computing one of its inputs and an epilogue consuming output 0, in one pass over
    # memory: (that input's index, the fused kernel's key). See passes/fusion.py and lowering/rows.py.
    row_fusion: tuple[int, str] | None = None
    # Reductions a fused group can end in (its tail: the kernel reduces the value as it computes it, see
    # passes/fusion.py): (node, the group's space) -> 0 when it reduces everything, 1 when it reduces over all
    # rows into the last axis, None otherwise (then only an elementwise group takes it, not a row group).
    tail: Callable[[Node, tuple[Any, ...]], int | None] | None = None
    # Ops with a weight that inference can run in bf16 or int8 (passes/precision.py decides, lowering picks the
    # kernel): the weight's operand and a kernel per precision.
    reduced_precision: ReducedPrecision | None = None
    # How the op runs on the blocked channel layout (ops/nchwc.py, passes/layout.py): (builder, node, its inputs
    # with blocked [N, Cb, H, W, B] versions where the pass has them, block) -> the op's result, blocked when
    # its rank is one more than the node's output, or None to run on NCHW. Elementwise ops need no rule: they
    # take blocked operands as they are.
    nchwc: Callable[[GraphBuilder, Node, list[int], int], int | None] | None = None
    doc: str = ""

    @property
    def variadic(self) -> bool:
        return bool(self.inputs) and self.inputs[0].startswith("*")

    @property
    def is_primitive(self) -> bool:
        return self.expand is None

    @property
    def elementwise(self) -> bool:
        """Joins elementwise fusion groups (ELEMENTWISE or BROADCAST: register() checks it has an instruction)."""
        return self.pattern in (Pattern.ELEMENTWISE, Pattern.BROADCAST) and self.expand is None

    @property
    def epilogue_head(self) -> bool:
        """Heads a fusion group whose elementwise ops its kernel runs as an epilogue (OUT_ELEMENTWISE_FUSABLE)."""
        return self.pattern is Pattern.OUT_ELEMENTWISE_FUSABLE and self.expand is None

    def attr_spec(self, name: str) -> AttrSpec | None:
        for a in self.attrs:
            if a.name == name:
                return a
        return None

    def bind_attrs(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Checks keyword attributes strictly: unknown names, missing required ones and bad values are errors."""
        out: dict[str, Any] = {}
        for k in given:
            if self.attr_spec(k) is None:
                known = ", ".join(a.name for a in self.attrs) or "none"
                raise ShapeError(f"unknown keyword argument '{k}' for {self.name} (it takes: {known})")
        for spec in self.attrs:
            if spec.name in given:
                out[spec.name] = check_attr(self.name, spec, given[spec.name])
            elif spec.default is REQUIRED:
                raise ShapeError(f"{self.name} needs the argument '{spec.name}'")
            else:
                out[spec.name] = spec.default
        return out

    def mutated_inputs(self, inputs: tuple[int, ...], attrs: Attrs = ()) -> list[int]:
        """The values a node of this op (its inputs and attributes) writes into."""
        if self.mutates == (-1,):
            return list(inputs[self.leading(dict(attrs)) if self.leading else 1:])
        return [inputs[i] for i in self.mutates]

    def signature(self) -> str:
        parts = [i for i in self.inputs]
        for a in self.attrs:
            parts.append(a.name if a.default is REQUIRED else f"{a.name}={a.default!r}")
        return f"{self.name}({', '.join(parts)})"


def check_attr(op: str, spec: AttrSpec, value: Any) -> Any:
    def bad(what: str) -> ShapeError:
        shown = str(value) if type(value).__name__ == "Sym" else repr(value)
        return ShapeError(f"'{spec.name}' must be {what}, got {shown}")

    kind = spec.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if abs(value) > 2 ** 40:
            raise ShapeError(f"'{spec.name}' = {value} is too large")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        value = float(value)
    elif kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind == "ints":
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("a list of integers")
        value = tuple(value)
    elif kind == "shape":
        # Dimensions: integers or symbolic dimensions. A lone integer is refused rather than read as a rank-1
        # shape: reshape(x, 0) is a slip, not a request.
        if not isinstance(value, (list, tuple)) or not all(
                (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, Sym) for v in value):
            raise bad("a list of dimensions")
        value = tuple(value)
    elif kind == "tensor":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad("a tensor")
    elif kind == "dtype":
        if value not in DTYPES:
            raise bad("one of " + ", ".join(DTYPES))
    if spec.choices and value not in spec.choices:
        raise bad("one of " + ", ".join(repr(c) for c in spec.choices))
    return value


_OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in _OPS:
        raise ValueError(f"op {op.name} registered twice")
    if op.expand is None and op.infer is None:
        raise ValueError(f"primitive op {op.name} has no shape rule")
    _check_pattern(op)
    _OPS[op.name] = op
    install_op(op.name, op)
    return op


def _check_pattern(op: OpDef) -> None:
    """A primitive's fusion facts agree with its pattern, so fusion can read either."""
    if op.expand is not None:
        return
    fusable = op.pattern in (Pattern.ELEMENTWISE, Pattern.BROADCAST)
    if fusable != (op.emit is not None):
        raise ValueError(f"op {op.name}: an {op.pattern.value} primitive "
                         f"{'needs' if fusable else 'has no'} an evaluator instruction (emit)")
    if (op.tail is not None or op.row_fusion is not None) and op.pattern is not Pattern.REDUCTION:
        raise ValueError(f"op {op.name}: only a reduction can be a group's tail or a row reduction")
    if op.pattern is Pattern.OUT_ELEMENTWISE_FUSABLE and (op.kernel is None or op.lower is None):
        raise ValueError(f"op {op.name}: an epilogue head needs its kernel and its lowering")


def unregister(name: str) -> None:
    """Forgets an op (tests that register one of their own)."""
    del _OPS[name]


def get(name: str) -> OpDef:
    try:
        return _OPS[name]
    except KeyError:
        raise ShapeError(f"unknown op '{name}'") from None


def lookup(name: str) -> OpDef | None:
    return _OPS.get(name)


def all_ops() -> dict[str, OpDef]:
    return dict(_OPS)
