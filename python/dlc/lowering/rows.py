"""Lowering of a row-reduction group (passes/row_fusion.py) to its fused kernel: layer norm, or its gradient,
with an elementwise prologue computing its row input and an epilogue (with reduction tails) consuming its
output 0. The layout is documented in csrc/kernels/norm/layer_norm_fused_cpu.cpp."""

from __future__ import annotations

from ..ewprogram import ProgramBuilder, emit_nodes, input_ref
from ..ir import Graph, Node, downstream
from ..ops import registry


def _external(nodes: list[Node], available: set[int]) -> list[int]:
    """Values the nodes read that neither they nor `available` provide, in first-use order."""
    produced = {o for n in nodes for o in n.outputs}
    out: list[int] = []
    for n in nodes:
        for v in n.inputs:
            if v not in produced and v not in available and v not in out:
                out.append(v)
    return out


def emit_row_group(graph: Graph, nodes: list[Node],
                   stored: list[int]) -> tuple[str, list[int], list[int], list[int], list[float]]:
    """(kernel key, inputs, outputs, ints, floats) of the group `nodes`; `stored` are the values of the group
    read outside it (the unit's outputs)."""
    li = next(i for i, n in enumerate(nodes) if registry.get(n.op).row_fusion is not None)
    core = nodes[li]
    row_input, key = registry.get(core.op).row_fusion  # type: ignore[misc]
    space = graph.values[core.outputs[0]]
    row_value = core.inputs[row_input]
    prologue, epilogue, tails = _split(nodes, li, row_value)
    f64 = space.dtype == "f64"

    # Prologue: its inputs, a STORE for each value read outside, and last the row value.
    pro_in = _external(prologue, set()) if prologue else [row_value]
    pro_stores = [o for n in prologue for o in n.outputs if o in stored]
    pb = ProgramBuilder(compute_f64=f64)
    refs = {v: input_ref(k) for k, v in enumerate(pro_in)}
    emit_nodes(pb, prologue, refs)
    for k, o in enumerate(pro_stores):
        pb.store(k + 1, refs[o])
    pb.instr("COPY", refs[row_value])
    pro_ints, pro_floats = pb.encode()

    # Epilogue: input 0 is the core's output 0; STOREs (output 0 too if it is read outside), then the tails.
    main = core.outputs[0]
    epi_in = _external(epilogue + tails, {main})
    epi_stores = ([main] if main in stored else []) + [o for n in epilogue for o in n.outputs
                                                       if o in stored and o not in pro_stores]
    pb = ProgramBuilder(compute_f64=f64)
    refs = {main: input_ref(0), **{v: input_ref(k + 1) for k, v in enumerate(epi_in)}}
    emit_nodes(pb, epilogue, refs)
    for k, o in enumerate(epi_stores):
        pb.store(k + 1, refs[o])
    kinds: list[int] = []
    scales: list[float] = []
    for t in tails:
        tail = registry.get(t.op).tail
        kind = tail(t, space.shape) if tail is not None else None
        assert kind is not None, "fusion attached a tail the row kernel cannot reduce"
        kinds.append(kind)
        count = 1
        for d in graph.values[t.inputs[0]].shape:
            count *= int(d)
        reduced = count // max(1, int(space.shape[-1])) if kind == 1 else count
        scales.append(1.0 / max(reduced, 1) if t.op == "mean" else 1.0)
        pb.instr("COPY", refs[t.inputs[0]])
    epi_ints, epi_floats = pb.encode()

    core_in = [v for k, v in enumerate(core.inputs) if k != row_input]
    ins = pro_in + core_in + epi_in
    outs = list(core.outputs[1:]) + pro_stores + epi_stores + [t.outputs[0] for t in tails]
    ints = [len(pro_in), len(epi_in), len(pro_stores), len(epi_stores), len(tails), *kinds, len(pro_ints),
            *pro_ints, *epi_ints]
    eps = float(core.attr("eps")) if "eps" in core.attr_dict else 0.0
    return key, ins, outs, ints, [eps, *scales, *pro_floats, *epi_floats]


def _split(nodes: list[Node], li: int, row_value: int) -> tuple[list[Node], list[Node], list[Node]]:
    """The group's nodes for the prologue and the epilogue, and the tails. What depends on the reduction is
    epilogue; what the row value depends on, or reads a value that does, is prologue. The rest reads only
    tensors from outside (a constant broadcast, say): it goes to whichever program needs it, both if both do
    (elementwise on loaded values, cheap to compute twice)."""
    readers: dict[int, list[int]] = {}
    producer: dict[int, int] = {}
    for i, n in enumerate(nodes):
        for v in n.inputs:
            readers.setdefault(v, []).append(i)
        for o in n.outputs:
            producer[o] = i
    after = downstream(nodes, li, readers)
    bound: set[int] = set()
    stack = [producer[row_value]] if row_value in producer else []
    while stack:  # ancestors of the row value
        i = stack.pop()
        if i not in bound:
            bound.add(i)
            stack.extend(producer[v] for v in nodes[i].inputs if v in producer)
    for i, n in enumerate(nodes):  # and what reads them without depending on the reduction
        if i != li and i not in after and any(producer.get(v) in bound for v in n.inputs):
            bound.add(i)
    free = {i for i in range(len(nodes)) if i != li and i not in after and i not in bound}

    def with_free(owned: set[int]) -> set[int]:
        need = set(owned)
        for i in sorted(owned, reverse=True):
            stack = [producer[v] for v in nodes[i].inputs if producer.get(v) in free]
            while stack:
                j = stack.pop()
                if j not in need:
                    need.add(j)
                    stack.extend(producer[v] for v in nodes[j].inputs if producer.get(v) in free)
        return need

    tails = {i for i in after if registry.get(nodes[i].op).tail is not None}
    epi_owned = after - tails
    epi = with_free(after) - after | epi_owned
    unused_free = free - with_free(epi_owned | bound | after)
    pro = with_free(bound) | unused_free
    return [nodes[i] for i in sorted(pro)], [nodes[i] for i in sorted(epi)], [nodes[i] for i in sorted(tails)]
