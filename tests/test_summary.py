"""`program.summary()`: one row per layer or op as written, with output shape, parameter count and memory
(Keras-style), totals that match the model's parameters, and the example in docs/language.md kept true."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

import dlc
from doc_blocks import code_blocks

ROOT = Path(__file__).resolve().parent.parent


def rows(summary: str) -> dict[str, list[str]]:
    """Table rows by their first column (split on runs of two or more spaces)."""
    lines = summary.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip())
                                             for line in lines[rules[0] + 1:rules[1]])}


def test_layers_not_primitives() -> None:
    summary = dlc.compile(ROOT / "models" / "blocks_example.dlm").summary()
    table = rows(summary)
    assert table["h (dense)"] == ["f32[N, 64]", "2,112", "8.2 KiB", "256 B"]  # 32*64+64 floats; 64 per sample
    assert table["stack.0/relu"] == ["f32[N, 64]", "0", "-", "256 B"]
    assert table["out (dense)"] == ["f32[N, 8]", "520", "2.0 KiB", "32 B"]
    assert not any(name.startswith(("matmul", "add ")) for name in table)
    assert "output memory (N=1)" in summary


def test_totals_match_the_parameters() -> None:
    program = dlc.compile(ROOT / "models" / "digits_cnn.dlm")
    summary = program.summary()
    total = sum(a.size for a in program.params.values())
    state = sum(int(np.prod(p.type.shape)) for p in program.graph.params if p.kind != "param")
    assert state > 0  # batch norm's running statistics
    assert f"parameters: {total:,} (" in summary
    assert f"{total - state:,} trainable, {state:,} state (running statistics)" in summary
    assert rows(summary)["f.dropout (dropout)"][1] == "0"  # a named op without parameters is one row


def test_bound_dimensions_give_real_memory() -> None:
    program = dlc.compile(ROOT / "models" / "mlp.dlm", dims={"N": 4})
    table = rows(program.summary())
    assert table["h1 (dense)"] == ["f32[4, 512]", "401,920", "1.5 MiB", "8.0 KiB"]
    assert "(N=1)" not in program.summary()


def test_docs_example_is_current() -> None:
    shown = next(b.body for b in code_blocks(ROOT / "docs" / "language.md")
                 if b.lang == "text" and b.body.startswith("inputs:  x: f32[N, 784]"))
    assert shown.rstrip("\n") == dlc.compile(ROOT / "models" / "mlp.dlm").summary()


def test_rows_add_up_to_the_total_with_shared_calls_and_params() -> None:
    """The complete example of docs/language.md: a tied (share=) call shows "shared" instead of counting its
    parameters again, and the free-standing `param temperature` has a row, so the rows add up (issue 25)."""
    source = next(b.body for b in code_blocks(ROOT / "docs" / "language.md")
                  if b.lang == "dlm" and "param temperature" in b.body and "share=" in b.body)
    summary = dlc.compile(source=source).summary()
    table = rows(summary)
    lines = summary.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines[rules[0] + 1:rules[1]]]  # duplicates kept
    counted = sum(int(c[2].replace(",", "")) for c in cells if c[2] != "shared")
    assert f"parameters: {counted:,} (" in summary and counted == 27_851
    assert table["temperature (param)"][:2] == ["f32[1]", "1"]
    lines = [line for line in summary.splitlines() if line.startswith("stack.2.fc1 (dense)")]
    assert len(lines) == 2 and "4,160" in lines[0] and "shared" in lines[1]


def test_a_dropout_named_by_its_binding_is_one_named_row() -> None:
    source = "input x: f32[N, 8]\nh = dropout(x, 0.1)\noutput o = relu(h)\n"
    summary = dlc.compile(source=source).summary()
    assert "h (dropout)" in rows(summary) and "dropout_mask_mul" not in summary
