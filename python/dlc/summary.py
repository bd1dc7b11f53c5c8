"""`Program.summary()`: the model as a table of ops, shapes and parameters (shapes stay symbolic)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import CompiledModel


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return out


def summarize(program: "CompiledModel") -> str:
    g = program.graph
    params = g.param_by_value()
    rows = []
    for node in g.nodes:
        outs = ", ".join(str(g.values[o]) for o in node.outputs)
        owned = [params[v].name for v in node.inputs if v in params]
        rows.append([node.op, node.scope or "-", outs, ", ".join(owned) or "-"])
    lines = ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in program.inputs.items()),
             "outputs: " + ", ".join(f"{n}: {s}" for n, s in program.outputs.items()), ""]
    lines += _table(rows, ["op", "layer", "output", "parameters"])
    prow = []
    total = 0
    for p in g.params:
        count = 1
        for d in p.type.shape:
            count *= int(d)
        total += count
        prow.append([p.name, str(p.type), f"{count:,}", p.kind])
    lines += [""] + _table(prow, ["parameter", "type", "count", "kind"])
    lines.append(f"total parameters: {total:,}")
    return "\n".join(lines)
