"""How a program shows itself: a one-line `repr`, and in a notebook (IPython's rich display, `_repr_html_`) the
summary table followed by the model graph as SVG when Graphviz is installed (the `draw` extra and the `dot`
program). Nothing here switches a plotting backend or needs IPython: the HTML is plain text a notebook renders.
"""

from __future__ import annotations

import shutil
from html import escape
from typing import Mapping, Protocol

from .draw import model_dot
from .ir import Graph
from .summary import Summarizable, summary_html


class Described(Protocol):
    """What the one-line description reads (a Program's model, a LoadedProgram)."""

    @property
    def inputs(self) -> Mapping[str, object]: ...
    @property
    def outputs(self) -> Mapping[str, object]: ...
    @property
    def params(self) -> Mapping[str, object]: ...


def one_line(kind: str, origin: str, model: Described, extra: str = "") -> str:
    """`<dlc.Program models/mlp.dlm: (x: f32[N, 784]) -> (logits: f32[N, 10]), 535,818 parameters>`."""
    ins = ", ".join(f"{n}: {s}" for n, s in model.inputs.items())
    outs = ", ".join(f"{n}: {s}" for n, s in model.outputs.items())
    count = sum(int(getattr(a, "size", 0)) for a in model.params.values())
    return f"<dlc.{kind} {origin}: ({ins}) -> ({outs}), {count:,} parameters{extra}>"


def graph_svg(graph: Graph, title: str) -> str | None:
    """The model graph as SVG text, or None when the graphviz package or Graphviz's `dot` is missing."""
    try:
        import graphviz
    except ImportError:
        return None
    if shutil.which("dot") is None:
        return None
    svg: str = graphviz.Source(model_dot(graph, title)).pipe(format="svg").decode("utf-8")
    return svg[svg.find("<svg"):] if "<svg" in svg else svg  # inline: without the XML prologue and DOCTYPE


def rich_html(kind: str, origin: str, model: Summarizable) -> str:
    """The notebook display: a heading, the summary table and, when it can be drawn, the graph."""
    parts = [f"<div><b>dlc.{escape(kind)}</b> <code>{escape(origin)}</code></div>", summary_html(model)]
    svg = graph_svg(model.graph, origin)
    if svg is not None:
        parts.append(f"<details><summary>graph</summary>{svg}</details>")
    return '<div class="dlc-program">' + "".join(parts) + "</div>"
