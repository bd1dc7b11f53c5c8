"""A notebook session (nbclient running a real IPython kernel): a Program shows its summary table (and its graph
as SVG when Graphviz is there) as rich display, plotting learning curves leaves the notebook's matplotlib
backend alone, and an unused parameter is a Python warning the notebook shows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent

CELLS = [
    "import matplotlib, dlc\nbefore = matplotlib.get_backend()",
    f"program = dlc.compile({str(ROOT / 'models' / 'mlp.dlm')!r})\nprogram",
    "from dlc.history import plot_history\nplot_history({'loss': [1.0, 0.5], 'val_loss': [1.1, 0.7]}, 'c.png')\n"
    "import sys\nprint(matplotlib.get_backend() == before, 'matplotlib.pyplot' in sys.modules)",
    "unused = dlc.compile(source='input x: f32[N, 3]\\nparam W: f32[3, 2]\\nparam V: f32[3, 2]\\n"
    "output y = x @ W\\n')",
]


def test_a_notebook_shows_a_program_and_keeps_its_backend(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    shown = nb.cells[1].outputs[0]["data"]
    html = shown["text/html"]
    assert "<table" in html and "h1 (dense)" in html and "535,818" in html
    assert shown["text/plain"].startswith("<dlc.Program ") and "535,818 parameters" in shown["text/plain"]
    if shutil.which("dot") is not None:
        assert "<svg" in html
    assert nb.cells[2].outputs[0]["text"].split() == ["True", "False"]  # backend unchanged, pyplot never imported
    assert (tmp_path / "c.png").stat().st_size > 0
    warned = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.get("name") == "stderr")
    assert "DlcWarning" in warned and "parameter 'V' is declared but never used" in warned
