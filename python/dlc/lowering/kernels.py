"""One unit as one kernel step: (kernel key, inputs, outputs, ints, floats) in the kernel's documented layout.

An elementwise group is one evaluator program; a group with a reduction tail is the `ew_reduce` kernel; an
epilogue head (matmul, convolution) runs the rest of its group as an epilogue program on its output; a row
group is its fused row kernel (rows.py); a lone op packs its attributes with its registry `lower` rule.
"""

from __future__ import annotations

from ..errors import DlcError
from ..ewprogram import build_program
from ..ir import Graph, Node
from ..ops import registry
from .rows import emit_row_group
from .units import Unit

Step = tuple[str, list[int], list[int], list[int], list[float]]


def kernel_key(node: Node, op: registry.OpDef) -> str | None:
    """The op's kernel, or the one its registry entry names for the precision passes/precision.py gave it."""
    precision = node.attr("precision")
    if precision is None or op.reduced_precision is None:
        return op.kernel
    key = op.reduced_precision.kernel_for(precision)
    if key is None:
        raise DlcError(f"op {node.op} has no {precision} kernel")
    return key


def emit_unit(graph: Graph, unit: Unit) -> Step:
    if unit.kind == "single":
        node = unit.nodes[0]
        op = registry.get(node.op)
        if op.lower is None or op.kernel is None:
            raise DlcError(f"op {node.op} has no kernel lowering")
        ints, floats = op.lower(node, [graph.values[v] for v in node.inputs])
        return kernel_key(node, op), list(node.inputs), list(node.outputs), list(ints), list(floats)
    if unit.kind == "ew":
        ints, floats = build_program(graph, unit.nodes, unit.inputs, unit.outputs)
        return "ew", list(unit.inputs), list(unit.outputs), ints, floats
    if unit.kind == "ew_reduce":
        return _emit_reduction(graph, unit)
    if unit.kind == "row":
        return emit_row_group(graph, unit.nodes, unit.outputs)
    return _emit_head(graph, unit)


def _emit_head(graph: Graph, unit: Unit) -> Step:
    """An epilogue head (Pattern.OUT_ELEMENTWISE_FUSABLE): the head's own ints, then [n_code, program...]
    (n_code 0: no epilogue); inputs: the head's, then the epilogue's other operands."""
    head = unit.nodes[0]
    c = head.outputs[0]
    op = registry.get(head.op)
    base_ints, _ = op.lower(head, [graph.values[v] for v in head.inputs])
    epilogue = unit.nodes[1:]
    if not epilogue:
        return kernel_key(head, op), list(head.inputs), [c], [*base_ints, 0], []
    produced = {o for n in unit.nodes for o in n.outputs}
    extra: list[int] = []
    for n in epilogue:
        for v in n.inputs:
            if v not in produced and v not in extra:
                extra.append(v)
    outs = [c] + [o for o in unit.outputs if o != c]
    # Epilogue program: input 0 is C, then the extra inputs; STORE targets are the step's outputs.
    ints, floats = build_program(graph, epilogue, [c] + extra, outs)
    return kernel_key(head, op), list(head.inputs) + extra, outs, [*base_ints, len(ints)] + ints, floats


def _emit_reduction(graph: Graph, unit: Unit) -> Step:
    """An elementwise group whose tail reduces one of its values: kernel "ew_reduce" (elementwise_cpu.cpp)."""
    tail = next(n for n in unit.nodes if registry.get(n.op).tail is not None)
    body = [n for n in unit.nodes if n is not tail]
    source = tail.inputs[0]
    space = graph.values[source].shape
    rank = len(space)
    if tail.op == "sum_to":
        target = tuple(tail.attr("shape"))
        kept = (1,) * (rank - len(target)) + target
    else:
        axis = tail.attr("axis")
        axes = range(rank) if axis is None else [a % rank for a in (axis if isinstance(axis, tuple) else (axis,))]
        kept = tuple(1 if d in axes else space[d] for d in range(rank))
    count = 1
    for full, k in zip(space, kept):
        count *= int(full) // int(k)
    scale = 1.0 / max(count, 1) if tail.op == "mean" else 1.0
    outputs = [tail.outputs[0]] + [o for o in unit.outputs if o != tail.outputs[0]]
    program, floats = build_program(graph, body, unit.inputs, outputs, reduce=source)
    ints = [rank, *[int(d) for d in space], *[int(d) for d in kept], *program]
    return "ew_reduce", list(unit.inputs), outputs, ints, [scale, *floats]
