"""A short run of benchmarks/fuzz.py (hypothesis): mutated and generated model files end in a program or a
located CompileError, damaged or re-signed artifacts and checkpoints in a CheckpointError or the unedited
results, and mutated and generated ONNX files in a program or a DlcError (within 1 s of CPU and an allocation
the file justifies). It runs in a subprocess, so a hang or a crash fails this test instead of the suite; each case has its
own time bound inside. `python benchmarks/fuzz.py --examples 2000` is the long run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = 60


@pytest.mark.parametrize("target", ["models", "artifacts", "checkpoints", "onnx"])
def test_fuzz(target: str, tmp_path: Path) -> None:
    if target == "onnx":
        pytest.importorskip("onnx")
    out = tmp_path / "figures.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--target", target,
                          "--examples", str(EXAMPLES), "--case-seconds", "20", "--json", str(out),
                          "--derandomize"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["cases"] >= EXAMPLES // 2 and not figures["failed"], figures
