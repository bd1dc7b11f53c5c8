"""Batch-norm folding (evaluation plans only): batch_norm_eval(x) becomes x * scale + shift, with the
per-channel vectors scale = gamma / sqrt(running_var + eps) and shift = beta - running_mean * scale computed
by small [C] nodes from the parameters; when x = y + bias is the per-channel bias add of a dense or conv
layer (read by nothing else), the bias joins the shift: y * scale + (bias * scale + shift).

Why this form rather than new folded weights: parameters can change after compilation (set_params,
load_checkpoint, training between evaluations), and a cached plan must follow them. Folded constants
computed at compile time would go stale; these nodes recompute the vectors on every run, which costs a few
elementwise ops on [C]. What remains on the activation is one multiply and one add that fusion puts into the
producer's kernel: the matmul epilogue of a dense layer, or the elementwise kernel after a convolution (with
the activation that follows). Scaling the conv weights instead would save nothing while convolutions take no
epilogue, and would rescale the whole weight tensor on every run.
"""

from __future__ import annotations

from ..dims import Dim
from ..ir import Graph, GraphBuilder, Node
from .context import PassContext
from .rewrite import prune_values, substitute


def fold_batch_norm(graph: Graph, ctx: PassContext) -> Graph:
    if ctx.training or not any(n.op == "batch_norm_eval" for n in graph.nodes):
        return graph
    producer = graph.producers()
    readers = graph.consumers()
    b = GraphBuilder(graph)
    b.nodes = []
    mapping: dict[int, int] = {}
    for node in graph.nodes:
        if node.op != "batch_norm_eval":
            b.nodes.append(node)
            continue
        b.loc, b.scope, b.phase = node.loc, node.scope, node.phase
        x, gamma, beta, mean, var = node.inputs
        xt = b.type_of(x)
        channel_shape: tuple[Dim, ...] = (xt.shape[1],) + (1,) * (xt.rank - 2)
        scale = b.op1("mul", gamma, b.op1("rsqrt", b.op1("add_scalar", var, value=node.attr("eps"))))
        shift = b.op1("sub", beta, b.op1("mul", mean, scale))
        # [C] broadcasts over [N, C] as it is; images need [C, 1, 1].
        scale_c = b.op1("reshape", scale, shape=channel_shape) if xt.rank > 2 else scale
        shift_c = b.op1("reshape", shift, shape=channel_shape) if xt.rank > 2 else shift
        y, bias = _bias_add(graph, producer, readers, x, channel_shape)
        if bias is not None:
            shift_c = b.op1("add", b.op1("mul", bias, scale_c), shift_c)
        mapping[node.outputs[0]] = b.op1("add", b.op1("mul", y, scale_c), shift_c)
    return prune_values(substitute(b.build(), b.nodes, mapping))


def _bias_add(graph: Graph, producer: dict[int, Node], readers: dict[int, list[Node]], x: int,
              channel_shape: tuple[Dim, ...]) -> tuple[int, int | None]:
    """(y, bias) when x = add(y, bias) with bias one value per channel and x read only by the batch norm;
    else (x, None)."""
    add = producer.get(x)
    if add is None or add.op != "add" or len(readers.get(x, [])) != 1:
        return x, None
    for y, bias in (add.inputs, add.inputs[::-1]):
        if graph.values[y] == graph.values[x] and tuple(graph.values[bias].shape) == channel_shape:
            return y, bias
    return x, None
