"""The language reference stays true: its generated Ops section matches the op registry (so every new op is
documented) and the complete example declares the parameters the text names. (Every example of every doc
runs in tests/test_doc_blocks.py.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

import dlc
from dlc.ops import registry
from dlc.ops.optim import OPTIMIZER_TABLE
from doc_blocks import code_blocks

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


def test_optimizer_table_is_up_to_date() -> None:
    training = (DOCS / "training.md").read_text(encoding="utf-8")
    assert gen_ops().update_optimizers(training) == training, "docs/training.md is out of date: run python docs/gen_ops.py"
    section = training[training.index("<!-- optimizers:begin -->"):training.index("<!-- optimizers:end -->")]
    for name in OPTIMIZER_TABLE:
        assert f"| `{name}` | `lr=" in section, name


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


MODELS = [b.body for b in code_blocks(DOCS / "language.md") if b.lang == "dlm" and not b.fragment]


def test_complete_example_parameter_names() -> None:
    program = dlc.compile(source=MODELS[-1])
    stack = [f"stack.{i}.{fc}.{p}" for i in range(3) for fc in ("fc1", "fc2") for p in ("weight", "bias")]
    assert list(program.params) == ["temperature", "h.weight", "h.bias", "h_norm.weight", "h_norm.bias", *stack,
                                    "head.weight", "head.bias"]  # as the text after the example says
