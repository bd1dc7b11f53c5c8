"""Writes the committed ONNX fixtures of the import tests: every model of models.py exported with
`torch.onnx.export(..., dynamo=False)` (TorchScript) as NAME.onnx, and the ones torch.export can trace with
`dynamo=True` as dynamo_NAME.onnx, all at opset 17. Needs torch, transformers and onnxscript:

    pip install torch==2.13.0 transformers onnxscript
    python tests/onnx_fixtures/make_fixtures.py [NAME ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402

# The recurrent stacks are left to the TorchScript exporter.
NO_DYNAMO = {"lstm_stack", "rnn_bidir"}


def main(names: list[str]) -> None:
    """Writes the fixtures of `names` (all of them when empty)."""
    for name in names or models.MODELS:
        models.export(name, str(HERE / f"{name}.onnx"))
        print("wrote", f"{name}.onnx")
        if name not in NO_DYNAMO:
            models.export(name, str(HERE / f"dynamo_{name}.onnx"), dynamo=True)
            print("wrote", f"dynamo_{name}.onnx")


if __name__ == "__main__":
    main(sys.argv[1:])
