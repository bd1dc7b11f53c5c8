"""`program.summary()`: the model as a Keras-style table, one row per layer or op as written (a `dense` is one row, not
its matmul and add), with its output shape, parameter count, parameter memory and output memory.

Shapes stay symbolic; memory is given for every symbolic dimension set to 1 (per sample, for a batch `N`), and
the footer adds up parameters (trainable ones, and state such as running statistics) and activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Mapping, Protocol

from .dims import Sym
from .ir import Graph, ParamSpec, TensorType, np_dtype
from .layers import group_layers, size


class Summarizable(Protocol):
    """What the summary reads of a compiled model (dlc.model.CompiledModel, without importing it)."""

    @property
    def graph(self) -> Graph: ...
    @property
    def inputs(self) -> Mapping[str, object]: ...
    @property
    def outputs(self) -> Mapping[str, object]: ...
    def latest_inference_memory(self) -> tuple[dict[str, int], dict[str, int]] | None: ...


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _bytes_at_one(t: TensorType) -> int:
    """Bytes of a tensor with every symbolic dimension set to 1 (Sym(coeff=2, N) counts 2)."""
    return size(tuple(d.coeff if isinstance(d, Sym) else d for d in t.shape)) * np_dtype(t.dtype).itemsize


@dataclass
class SummaryTable:
    """The summary as data: the input and output lines, the table and its footer (text or HTML, see below)."""

    io: list[str]
    header: list[str]
    rows: list[list[str]]
    footer: list[str]


RIGHT = {2, 3, 4}  # the numeric columns


def _table(rows: list[list[str]], header: list[str], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    return [line(header), rule, *(line(r) for r in rows), rule]


def _param_bytes(params: list[ParamSpec]) -> int:
    return sum(size(p.type.shape) * np_dtype(p.type.dtype).itemsize for p in params)


def _plan_memory_line(model: Summarizable) -> list[str]:
    """The memory of the inference plan used last (none before the first call compiles one): its arena and,
    beside it, the weights it keeps packed for its matrix products."""
    latest = model.latest_inference_memory()
    if latest is None:
        return []
    binding, mem = latest
    dims = f" ({', '.join(f'{k}={v}' for k, v in sorted(binding.items()))})" if binding else ""
    return [f"inference plan{dims}: arena {human_bytes(mem['arena_bytes'])} (lower bound "
            f"{human_bytes(mem['lower_bound_bytes'])}), packed weights {human_bytes(mem['packed_weights_bytes'])} "
            f"beside it"]


def summary_table(model: Summarizable) -> SummaryTable:
    """One row per layer or op as written. Every parameter is counted in exactly one row, so the rows add up
    to the footer's total: a call that reuses another's parameters (share=) shows "shared", and a `param`
    declared on its own gets a row where it is first read."""
    g = model.graph
    symbols = sorted({n for t in g.values.values() for d in t.shape if isinstance(d, Sym) for n in d.names})
    per = f" ({', '.join(f'{s}=1' for s in symbols)})" if symbols else ""
    rows: list[list[str]] = []
    activations = 0
    counted: set[str] = set()
    loose = {spec.value: spec for spec in g.params}  # parameters no layer owns get rows of their own
    for layer in group_layers(g):
        for spec in layer.params:
            loose.pop(spec.value, None)
    for layer in group_layers(g):
        for node in layer.nodes:
            for v in node.inputs:
                spec = loose.pop(v, None)
                if spec is not None:
                    counted.add(spec.name)
                    rows.append([f"{spec.name} (param)", str(spec.type), f"{size(spec.type.shape):,}",
                                 human_bytes(_param_bytes([spec])), "-"])
        outs = [g.values[o] for o in layer.outputs]
        out_bytes = sum(_bytes_at_one(t) for t in outs)
        activations += out_bytes
        if layer.named:
            name = f"{layer.scope} ({layer.kind})"
        else:
            name = f"{layer.scope}/{layer.kind}" if layer.scope else layer.kind
        shared = bool(layer.params) and all(p.name in counted for p in layer.params)
        counted.update(p.name for p in layer.params)
        param_bytes = _param_bytes(layer.params)
        params = "shared" if shared else f"{layer.param_count():,}"
        memory = "-" if shared or not param_bytes else human_bytes(param_bytes)
        rows.append([name, ", ".join(str(t) for t in outs) or "-", params, memory,
                     human_bytes(out_bytes) if outs else "-"])
    trainable = sum(size(p.type.shape) for p in g.params if p.trainable and p.kind == "param")
    total = sum(size(p.type.shape) for p in g.params)
    footer = [f"parameters: {total:,} ({human_bytes(_param_bytes(list(g.params)))}): {trainable:,} trainable, "
              f"{total - trainable:,} state (running statistics)",
              f"activations: {human_bytes(activations)}{per or ''} (every layer's output, before memory "
              f"planning shares buffers)", *_plan_memory_line(model)]
    io = ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in model.inputs.items()),
          "outputs: " + ", ".join(f"{n}: {s}" for n, s in model.outputs.items())]
    header = ["layer (type)", "output shape", "params", "param memory", f"output memory{per}"]
    return SummaryTable(io, header, rows, footer)


def summarize(model: Summarizable) -> str:
    t = summary_table(model)
    return "\n".join([*t.io, "", *_table(t.rows, t.header, RIGHT), *t.footer])


def summary_html(model: Summarizable) -> str:
    """The same table as HTML (a notebook's rich display of a program)."""
    def cells(tag: str, row: list[str]) -> str:
        return "".join(f'<{tag} style="text-align:{"right" if i in RIGHT else "left"}">{escape(c)}</{tag}>'
                       for i, c in enumerate(row))

    t = summary_table(model)
    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in t.rows)
    return ("".join(f"<div><code>{escape(line)}</code></div>" for line in t.io)
            + f"<table><thead><tr>{cells('th', t.header)}</tr></thead><tbody>{body}</tbody></table>"
            + "".join(f"<div>{escape(line)}</div>" for line in t.footer))
