"""Pictures of a model: the graph as the user wrote it, or the compiled plan, as Graphviz DOT text.

`model_dot` draws layers (a `dense` is one box, not its matmul and add), the ops between them, and block calls
as clusters, with every edge labelled by the shape it carries. `plan_dot` draws the compiled inference plan:
one box per kernel step (a fusion group lists its ops), edges labelled with the tensor's shape and its arena
offset, so fusion and memory planning can be seen. The DOT text needs nothing installed; `render` turns it into
SVG or PNG with the Python `graphviz` package and Graphviz's `dot` program (the optional `draw` extra).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DlcError
from .ir import Graph
from .layers import group_layers
from .lowering import ARENA, CONST, INPUT, PERSISTENT, LoweredPlan, layout_summary

INSTALL_DOT = ("Graphviz's `dot` program is needed for .svg and .png (a .dot file needs nothing): install it with "
               "`apt install graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS) or "
               "`conda install -c conda-forge graphviz`, or write a .dot file and render it elsewhere")
INSTALL_PACKAGE = "drawing .svg and .png needs the graphviz package: pip install \".[draw]\" (in the dlc checkout)"
FORMATS = ("dot", "svg", "png")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@dataclass
class _Cluster:
    name: str
    lines: list[str] = field(default_factory=list)
    children: dict[str, "_Cluster"] = field(default_factory=dict)


class _Dot:
    """A small DOT writer: nodes go into nested clusters by path; edges are listed after them."""

    def __init__(self, title: str):
        self.root = _Cluster("")
        self.edges: list[str] = []
        self.title = title
        self.clusters = 0

    def node(self, key: str, label: str, path: tuple[str, ...] = (), **attrs: str) -> None:
        cluster = self.root
        for part in path:
            cluster = cluster.children.setdefault(part, _Cluster(part))
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        cluster.lines.append(f"{_quote(key)} [label={_quote(label)}{extra}];")

    def edge(self, a: str, b: str, label: str) -> None:
        self.edges.append(f"{_quote(a)} -> {_quote(b)} [label={_quote(label)}];")

    def _emit(self, cluster: _Cluster, indent: str, out: list[str]) -> None:
        out += [indent + line for line in cluster.lines]
        for child in cluster.children.values():
            self.clusters += 1
            out.append(f"{indent}subgraph cluster_{self.clusters} {{")
            out.append(f"{indent}  label={_quote(child.name)}; style=rounded; color=gray50;")
            self._emit(child, indent + "  ", out)
            out.append(f"{indent}}}")

    def source(self) -> str:
        out = [f"digraph {_quote(self.title)} {{", "  rankdir=TB;",
               '  node [shape=box, style="rounded,filled", fillcolor=white, fontname=Helvetica, fontsize=11];',
               "  edge [fontname=Helvetica, fontsize=9, color=gray30];"]
        self._emit(self.root, "  ", out)
        out += ["  " + e for e in self.edges]
        out.append("}")
        return "\n".join(out) + "\n"


def model_dot(graph: Graph, title: str = "model") -> str:
    """The graph as written: layers as single boxes, block calls as clusters, shapes on the edges."""
    params = graph.param_by_value()
    dot = _Dot(title)
    box_of: dict[int, str] = {}  # value -> the box that produces it
    for name, v in graph.inputs:
        dot.node(f"in:{name}", f"{name}\n{graph.values[v]}", shape="ellipse", fillcolor="#dbeafe")
        box_of[v] = f"in:{name}"
    layers = group_layers(graph)
    for i, layer in enumerate(layers):
        label = layer.kind if layer.name == layer.kind else f"{layer.name}: {layer.kind}"
        if layer.is_layer:
            dot.node(f"n{i}", f"{label}\n{layer.param_count():,} parameters", layer.blocks, fillcolor="#fef3c7")
        else:
            dot.node(f"n{i}", label, layer.blocks)
        box_of.update({o: f"n{i}" for n in layer.nodes for o in n.outputs})
    seen: set[tuple[str, str, int]] = set()
    for i, layer in enumerate(layers):
        for node in layer.nodes:
            for v in node.inputs:
                if v in params and layer.is_layer:
                    continue  # a layer's own weights are inside its box
                if v in params and v not in box_of:  # a `param` used by an op: a box of its own
                    spec = params[v]
                    box_of[v] = f"param:{spec.name}"
                    dot.node(box_of[v], f"{spec.name}\n{spec.type}", shape="note", fillcolor="#f3f4f6")
                source = box_of.get(v)  # constants have no box
                if source is None or source == f"n{i}" or (source, f"n{i}", v) in seen:
                    continue
                seen.add((source, f"n{i}", v))
                dot.edge(source, f"n{i}", str(graph.values[v]))
    for name, v in graph.outputs:
        dot.node(f"out:{name}", name, shape="ellipse", fillcolor="#dcfce7")
        if v in box_of:
            dot.edge(box_of[v], f"out:{name}", str(graph.values[v]))
    return dot.source()


def plan_dot(lowered: LoweredPlan, title: str = "plan") -> str:
    """The compiled plan: one box per kernel step (fused ops listed), edges with shape and arena offset."""
    recipe = lowered.recipe
    dot = _Dot(title)
    producer: dict[int, str] = {}
    for i, name in enumerate(lowered.input_names):
        dot.node(f"in:{name}", f"{name}\n{lowered.input_types[i]}", shape="ellipse", fillcolor="#dbeafe")
    for index, (key, label, ins, outs, _ints, _floats) in enumerate(recipe.steps):
        ops, _, scope = label.partition(" [")
        fused = ops.count("+") + 1
        weights = sum(1 for s in ins if recipe.slots[s][0] == PERSISTENT)
        text = f"{index}: {key}" + (f"  [{scope.rstrip(']')}]" if scope else "") + "\n" + ops.replace("+", " + ")
        if weights:
            text += f"\n{weights} weight{'s' * (weights > 1)}"
        layout = lowered.steps[index].layout
        if layout:
            text += f"\nlayout {layout}"
        fill = "#fde68a" if fused > 1 else "#e9d5ff" if "->" in layout else "white"
        dot.node(f"s{index}", text, fillcolor=fill)
        for s in ins:
            region, where, _, shape = recipe.slots[s]
            if region == INPUT:
                source = f"in:{lowered.input_names[where]}"
            elif region in (PERSISTENT, CONST):
                continue
            else:
                source = producer.get(s, "")
            if source:
                dot.edge(source, f"s{index}", _slot_label(recipe.slots[s]))
        for s in outs:
            producer[s] = f"s{index}"
    for name, s in zip(lowered.output_names, recipe.outputs):
        dot.node(f"out:{name}", name, shape="ellipse", fillcolor="#dcfce7")
        if s in producer:
            dot.edge(producer[s], f"out:{name}", _slot_label(recipe.slots[s]))
    memory = lowered.memory
    layout = layout_summary(lowered.steps)
    reorders = (f"\nlayout NCHW{layout['block']}c in {layout['blocked_kernels']} kernels, {layout['reorders']} "
                f"reorders ({layout['image_reorders']} of images)" if layout["block"] else "")
    dot.node("memory", f"arena {memory.arena_bytes:,} B (one buffer per tensor: {memory.naive_bytes:,} B){reorders}",
             shape="plaintext", fillcolor="white")
    return dot.source()


def _slot_label(slot: tuple[int, int, int, list[int]]) -> str:
    region, where, _dtype, shape = slot
    text = f"[{', '.join(str(d) for d in shape)}]"
    return text + (f" @{where}" if region == ARENA else "")


def render(dot_source: str, output: Path) -> None:
    """Writes DOT text as .dot, .svg or .png (by the file's suffix)."""
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"cannot draw to {output.name!r}: the file must end in .dot, .svg or .png")
    if fmt == "dot":
        output.write_text(dot_source, encoding="utf-8")
        return
    try:
        import graphviz
    except ImportError:
        raise DlcError(INSTALL_PACKAGE) from None
    if shutil.which("dot") is None:
        raise DlcError(INSTALL_DOT)
    output.write_bytes(graphviz.Source(dot_source).pipe(format=fmt))
