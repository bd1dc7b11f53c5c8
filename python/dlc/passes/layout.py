"""The layout decision (inference plans): which tensors of a convolution chain are stored in the blocked channel
layout [N, ceil(C/B), H, W, B] (ops/nchwc.py), and where the reorders between layouts go.

One walk in program order. A node whose op has an `nchwc` rule in the registry (convolution, pooling) runs
blocked when its rule accepts (a convolution always can: it reads an NCHW input directly; pooling needs a blocked
input); an elementwise node runs blocked when one of its image operands is blocked and every other operand can
follow: a per-channel vector [C, 1, 1] or [N, C, 1, 1] is reordered into [Cb, 1, 1, B] (a few elements), a
scalar broadcasts as it is, and a full-size NCHW operand gets a reorder. So bias, batch-norm scale and shift,
activations and residual adds stay blocked, and fusion later puts them into the convolution's epilogue. Any
other reader of a blocked value (flatten, a dense layer, a graph output, an op without a rule) gets the NCHW
value through one reorder, made once per value where it is first needed. Every graph input and output stays
NCHW, so nothing the user sees changes.

The pass does nothing when the context's block size is 0: the portable build (no SIMD kernel gains from the
layout) and training plans, whose gradient kernels are NCHW.
"""

from __future__ import annotations

from dataclasses import replace

from ..dims import concrete
from ..ir import Graph, GraphBuilder, Node
from ..ops import registry
from .context import PassContext
from .rewrite import prune_values

REORDER_OPS = ("to_nchwc", "from_nchwc")


def assign_layouts(graph: Graph, ctx: PassContext) -> Graph:
    block = ctx.nchwc_block
    if ctx.training or block == 0 or not any(registry.get(n.op).nchwc is not None and n.op.startswith("conv")
                                             for n in graph.nodes):
        return graph
    return _Walk(graph, block).run()


class _Walk:
    def __init__(self, graph: Graph, block: int):
        self.graph, self.block = graph, block
        self.b = GraphBuilder(graph)
        self.b.nodes = []
        self.blocked: dict[int, int] = {}  # NCHW value -> its blocked version
        self.plain: dict[int, int] = {}  # NCHW value now produced only blocked -> its reordered NCHW value
        self.renamed: dict[int, int] = {}  # value whose blocked rule gave an NCHW result -> that result
        self.reordered: dict[int, int] = {}  # NCHW operand -> its to_nchwc version

    def run(self) -> Graph:
        for node in self.graph.nodes:
            self.b.loc, self.b.scope, self.b.phase = node.loc, node.scope, node.phase
            if not self._blocked_node(node):
                self.b.nodes.append(replace(node, inputs=tuple(self._nchw(v) for v in node.inputs)))
        self.b.outputs = [(name, self._nchw(v)) for name, v in self.graph.outputs]
        return prune_values(self.b.build())

    def _nchw(self, v: int) -> int:
        """v as the NCHW value the original graph has: reordered from its blocked version where needed."""
        if v in self.renamed:
            return self.renamed[v]
        if v not in self.blocked:
            return v
        if v not in self.plain:
            channels = concrete(self.graph.values[v].shape[1], "channels")
            self.plain[v] = self.b.op1("from_nchwc", self.blocked[v], channels=channels)
        return self.plain[v]

    def _to_blocked(self, v: int) -> int:
        if v not in self.reordered:
            self.reordered[v] = self.b.op1("to_nchwc", v, block=self.block)
        return self.reordered[v]

    def _blocked_node(self, node: Node) -> bool:
        """Emits the node's blocked form and records its output, when it has one."""
        op = registry.get(node.op)
        if len(node.outputs) != 1:
            return False
        out = node.outputs[0]
        if op.nchwc is not None:
            inputs = [self.blocked[v] if v in self.blocked else self._nchw(v) for v in node.inputs]
            mark = len(self.b.nodes)
            result = op.nchwc(self.b, node, inputs, self.block)
            if result is None:
                del self.b.nodes[mark:]
                return False
        elif op.elementwise:
            result = self._elementwise(node)
            if result is None:
                return False
        else:
            return False
        if self.b.type_of(result).rank == self.graph.values[out].rank + 1:
            self.blocked[out] = result
        else:
            self.renamed[out] = result
        return True

    def _elementwise(self, node: Node) -> int | None:
        out_t = self.graph.values[node.outputs[0]]
        if out_t.rank != 4 or not any(v in self.blocked for v in node.inputs):
            return None
        inputs: list[int] = []
        pending: list[int] = []  # operands to reorder, decided before anything is emitted
        for v in node.inputs:
            t = self.graph.values[v]
            shape = (1,) * (4 - t.rank) + tuple(t.shape) if t.rank <= 4 else None
            if v in self.blocked:
                if tuple(t.shape) != tuple(out_t.shape):
                    return None
                inputs.append(self.blocked[v])
            elif shape is not None and all(d == 1 for d in shape):
                inputs.append(self._nchw(v))
            elif shape is not None and t.rank >= 3 and shape[2:] == (1, 1) and shape[1] == out_t.shape[1]:
                pending.append(len(inputs))
                inputs.append(self._nchw(v))
            elif tuple(t.shape) == tuple(out_t.shape):
                pending.append(len(inputs))
                inputs.append(self._nchw(v))
            else:
                return None
        for k in pending:
            inputs[k] = self._to_blocked(inputs[k])
        return self.b.op1(node.op, *inputs, **node.attr_dict)
