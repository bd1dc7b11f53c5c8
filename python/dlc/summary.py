"""`program.summary()`: the model as a Keras-style table, one row per layer or op as written (a `dense` is one row, not
its matmul and add), with its output shape, parameter count, parameter memory and output memory.

Shapes stay symbolic; memory is given for every symbolic dimension set to 1 (per sample, for a batch `N`), and
the footer adds up parameters (trainable ones, and state such as running statistics) and activations.
"""

from __future__ import annotations

from typing import Mapping, Protocol

from .dims import Sym
from .ir import Graph, TensorType, np_dtype
from .layers import group_layers, size


class Summarizable(Protocol):
    """What the summary reads of a compiled model (dlc.model.CompiledModel, without importing it)."""

    @property
    def graph(self) -> Graph: ...
    @property
    def inputs(self) -> Mapping[str, object]: ...
    @property
    def outputs(self) -> Mapping[str, object]: ...


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{int(n)} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _bytes_at_one(t: TensorType) -> int:
    """Bytes of a tensor with every symbolic dimension set to 1 (Sym(coeff=2, N) counts 2)."""
    return size(tuple(d.coeff if isinstance(d, Sym) else d for d in t.shape)) * np_dtype(t.dtype).itemsize


def _table(rows: list[list[str]], header: list[str], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * len(line(header))
    return [line(header), rule, *(line(r) for r in rows), rule]


def summarize(model: Summarizable) -> str:
    g = model.graph
    symbols = sorted({n for t in g.values.values() for d in t.shape if isinstance(d, Sym) for n in d.names})
    per = f" ({', '.join(f'{s}=1' for s in symbols)})" if symbols else ""
    rows = []
    activations = 0
    for layer in group_layers(g):
        outs = [g.values[o] for o in layer.outputs]
        out_bytes = sum(_bytes_at_one(t) for t in outs)
        activations += out_bytes
        param_bytes = sum(size(p.type.shape) * np_dtype(p.type.dtype).itemsize for p in layer.params)
        if layer.named:
            name = f"{layer.scope} ({layer.kind})"
        else:
            name = f"{layer.scope}/{layer.kind}" if layer.scope else layer.kind
        rows.append([name, ", ".join(str(t) for t in outs) or "-", f"{layer.param_count():,}",
                     human_bytes(param_bytes) if param_bytes else "-", human_bytes(out_bytes) if outs else "-"])
    lines = ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in model.inputs.items()),
             "outputs: " + ", ".join(f"{n}: {s}" for n, s in model.outputs.items()), ""]
    lines += _table(rows, ["layer (type)", "output shape", "params", "param memory", f"output memory{per}"],
                    right={2, 3, 4})
    trainable = sum(size(p.type.shape) for p in g.params if p.trainable and p.kind == "param")
    total = sum(size(p.type.shape) for p in g.params)
    total_bytes = sum(size(p.type.shape) * np_dtype(p.type.dtype).itemsize for p in g.params)
    lines.append(f"parameters: {total:,} ({human_bytes(total_bytes)}): {trainable:,} trainable, "
                 f"{total - trainable:,} state (running statistics)")
    lines.append(f"activations: {human_bytes(activations)}{per or ''} (every layer's output, before memory "
                 f"planning shares buffers)")
    return "\n".join(lines)
