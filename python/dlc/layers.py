"""The graph as the user wrote it: primitive nodes grouped back into the layers and ops of the source.

Elaboration expands a `dense` into matmul + add and a `batch_norm` into several primitives, all under the
layer's scope name (`stack.0.fc1`). Pictures (draw.py) and the summary table (summary.py) show one entry per
layer instead: consecutive nodes of one layer scope form one `Layer`; other nodes (activations, arithmetic)
stay one entry each. Block calls are the scope prefixes above a layer (`stack`, `stack.0`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .ir import Graph, Node, ParamSpec
from .ops import registry


@dataclass
class Layer:
    scope: str  # "" for an op outside any layer or block
    kind: str  # the layer or op as written: dense, conv2d, relu, add
    is_layer: bool  # owns parameters (a layer call) rather than being a plain op
    nodes: list[Node] = field(default_factory=list)
    params: list[ParamSpec] = field(default_factory=list)  # read by the nodes, in first-use order
    outputs: list[int] = field(default_factory=list)  # values read outside the entry, or graph outputs
    named_op: bool = False  # a layer op without parameters under a name of its own (`f.dropout`, `h = dropout(..)`)

    @property
    def name(self) -> str:
        """The layer's own name (`fc1`), or its kind for an op or an unnamed layer."""
        return self.scope.split(".")[-1] if self.named else self.kind

    @property
    def named(self) -> bool:
        """A layer, or an op with a name of its own (`f.dropout`): shown by its scope and kind."""
        return self.is_layer or self.named_op

    @property
    def blocks(self) -> tuple[str, ...]:
        """The block calls it sits in, outermost first: ("stack", "stack.0") for stack.0.fc1."""
        parts = self.scope.split(".") if self.scope else []
        keep = len(parts) - 1 if self.named else len(parts)
        return tuple(".".join(parts[:i + 1]) for i in range(keep))

    def param_count(self) -> int:
        return sum(size(p.type.shape) for p in self.params)


def size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _written_name(node: Node, layers_only: bool = True) -> str | None:
    """The layer's name as written at the node's source location (`dense(...)`, or a bare `|> batch_norm`)
    rather than the primitive it starts with (matmul, batch_norm_train)."""
    if node.loc is None or not node.loc.source:
        return None
    match = re.match(r"[A-Za-z_]\w*", node.loc.line_text()[node.loc.col - 1:])
    op = registry.lookup(match.group()) if match else None
    return match.group() if op is not None and (op.layer or not layers_only) else None


def group_layers(graph: Graph) -> list[Layer]:
    """The nodes of a graph as layers and ops, in graph order. A later call with the scope of an earlier one
    (share=) is a new entry with the same parameters."""
    params = graph.param_by_value()
    prefixes = {spec.name.rsplit(".", 1)[0] for spec in graph.params}
    scopes = {n.scope for n in graph.nodes}

    def owns_params(scope: str) -> bool:  # a layer scope: owns parameters and contains no deeper scope
        return bool(scope) and (scope in prefixes or (any(p.startswith(scope + ".") for p in prefixes)
                                                      and not any(s.startswith(scope + ".") for s in scopes)))

    layers: list[Layer] = []
    for node in graph.nodes:
        last = layers[-1] if layers else None
        if last is not None and last.is_layer and last.scope == node.scope:
            last.nodes.append(node)
        elif owns_params(node.scope):
            layers.append(Layer(node.scope, _written_name(node) or node.op, True, [node]))
        elif last is not None and last.named_op and last.scope == node.scope:
            last.nodes.append(node)  # a named op without parameters (f.dropout): one entry, like a layer
        else:
            written = _written_name(node, layers_only=False)
            # A layer op's scope is its name: `f.dropout` inside f's pipe, or `h` for `h = dropout(g, 0.1)`;
            # it is shown as written (dropout), never as the primitive it expands to (dropout_mask_mul).
            layer_op = written is not None and bool(node.scope) and registry.get(written).layer
            named = written is not None and (node.scope.rsplit(".", 1)[-1] == written or layer_op)
            layers.append(Layer(node.scope, written if named else node.op, False, [node], named_op=named))
    entry_of = {o: i for i, layer in enumerate(layers) for n in layer.nodes for o in n.outputs}
    read_outside = {v for i, layer in enumerate(layers) for n in layer.nodes for v in n.inputs
                    if entry_of.get(v, i) != i} | {v for _, v in graph.outputs}
    for layer in layers:
        for node in layer.nodes:
            layer.outputs += [o for o in node.outputs if o in read_outside]
            if layer.is_layer:
                layer.params += [params[v] for v in node.inputs if v in params and params[v] not in layer.params]
    return layers
