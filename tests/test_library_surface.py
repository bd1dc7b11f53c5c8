"""dlc as a library in someone else's code or notebook: `python -m dlc`, one version, a typed package, readable
reprs and rich display of programs, and compile-time warnings through Python's `warnings`."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import dlc
from dlc.artifact import save_artifact

ROOT = Path(__file__).resolve().parent.parent
UNUSED = "input x: f32[N, 3]\nparam W: f32[3, 2]\nparam V: f32[3, 2]\noutput y = x @ W\n"


def test_python_dash_m_dlc_runs_the_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "dlc", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"dlc {dlc.__version__}"


def test_the_version_is_written_once() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"(?m)^version\s*=", text) and 'dynamic = ["version"]' in text
    assert 'input = "python/dlc/__init__.py"' in text
    from importlib.metadata import version
    assert version("dlc") == dlc.__version__


def test_the_package_is_marked_typed() -> None:
    assert (Path(dlc.__file__).parent / "py.typed").is_file()


def test_program_repr_and_rich_display(tmp_path: Path) -> None:
    program = dlc.compile(ROOT / "models" / "mlp.dlm")
    assert repr(program) == ("<dlc.Program " + str(ROOT / "models" / "mlp.dlm") + ": (x: f32[N, 784], y: i32[N])"
                             " -> (logits: f32[N, 10]), 535,818 parameters>")
    html = program._repr_html_()
    assert "<table" in html and "<td style=\"text-align:left\">h1 (dense)</td>" in html and "401,920" in html
    save_artifact(program, tmp_path / "mlp.dlc")
    loaded = dlc.load(tmp_path / "mlp.dlc")
    assert repr(loaded).startswith("<dlc.LoadedProgram (from ") and "-> (logits: f32[N, 10])" in repr(loaded)
    assert "h1 (dense)" in loaded._repr_html_()


def test_an_unused_parameter_is_a_python_warning() -> None:
    with pytest.warns(dlc.DlcWarning, match="parameter 'V' is declared but never used") as caught:
        dlc.compile(source=UNUSED)
    assert len(caught) == 1 and caught[0].filename == __file__  # reported at the caller's dlc.compile line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dlc.compile(ROOT / "models" / "mlp.dlm")  # a model without one warns about nothing


def test_library_code_never_switches_the_matplotlib_backend() -> None:
    sources = [p for p in (ROOT / "python" / "dlc").rglob("*.py")]
    switching = [p for p in sources if "matplotlib.use(" in p.read_text() or "import matplotlib.pyplot" in p.read_text()]
    assert sources and not switching
