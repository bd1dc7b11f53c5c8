"""The language reference stays true: its generated Ops section matches the op registry (so every new op is
documented), every .dlm snippet in it parses, and every complete model example compiles and runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

import dlc
from dlc.frontend.parser import parse
from dlc.ir import np_dtype
from dlc.ops import registry

DOCS = Path(__file__).resolve().parent.parent / "docs"
TEXT = (DOCS / "language.md").read_text(encoding="utf-8")


def gen_ops() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_ops", DOCS / "gen_ops.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ops_section_is_up_to_date() -> None:
    assert gen_ops().update(TEXT) == TEXT, "docs/language.md is out of date: run python docs/gen_ops.py"


def test_every_user_op_is_listed() -> None:
    section = TEXT[TEXT.index("<!-- ops:begin -->"):TEXT.index("<!-- ops:end -->")]
    for name, op in registry.all_ops().items():
        if op.user:
            assert f"| `{op.signature()}` |" in section, name


def test_check_mode_reports_stale_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = gen_ops()
    stale = tmp_path / "language.md"
    stale.write_text(TEXT.replace("| `relu(x)` |", "| `relu(x, old)` |"), encoding="utf-8")
    monkeypatch.setattr(module, "DOC", stale)
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0 and stale.read_text(encoding="utf-8") == TEXT


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of every fenced code block."""
    blocks: list[tuple[str, str]] = []
    lang: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                blocks.append((lang, "\n".join(body) + "\n"))
                lang = None
        elif lang is not None:
            body.append(line)
    return blocks


SNIPPETS = [body for lang, body in code_blocks(TEXT) if lang == "dlm"]
MODELS = [body for body in SNIPPETS if re.search(r"^input ", body, re.M) and re.search(r"^output ", body, re.M)]


@pytest.mark.parametrize("source", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_examples_parse(source: str) -> None:
    parse(source)


@pytest.mark.parametrize("source", MODELS, ids=[f"example{i}" for i in range(len(MODELS))])
def test_model_examples_compile(source: str) -> None:
    program = dlc.compile(source=source)
    inputs = {n: np.ones([2 if isinstance(d, str) else d for d in s.shape], np_dtype(s.dtype))
              for n, s in program.inputs.items()}
    for name, value in program(**inputs).items():
        assert np.all(np.isfinite(value)), name


def test_complete_example_parameter_names() -> None:
    program = dlc.compile(source=MODELS[-1])
    stack = [f"stack.{i}.{fc}.{p}" for i in range(3) for fc in ("fc1", "fc2") for p in ("weight", "bias")]
    assert list(program.params) == ["temperature", "h.weight", "h.bias", "h_norm.weight", "h_norm.bias", *stack,
                                    "head.weight", "head.bias"]  # as the text after the example says
