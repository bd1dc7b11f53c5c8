"""Writes the committed ONNX fixtures of the import tests: every model of models.py exported with
`torch.onnx.export(..., dynamo=False)` (TorchScript) as NAME.onnx, and the ones torch.export can trace with
`dynamo=True` as dynamo_NAME.onnx, all at opset 17. Needs torch, transformers and onnxscript:

    pip install torch==2.13.0 transformers onnxscript
    python tests/onnx_fixtures/make_fixtures.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import models  # noqa: E402

# torch.export cannot trace these (nn.TransformerEncoder's mask checks, ViT's interpolation branch); GPT-2's
# dynamo export at opset 17 writes Split with opset 18's num_outputs, which ONNX Runtime rejects as invalid; BERT
# with a mask from dynamo clamps its gather indices with Max, which the importer does not follow yet.
NO_DYNAMO = {"encoder_batch_first", "encoder_time_first", "decoder", "hf_vit", "lstm_stack", "rnn_bidir",
             "hf_gpt2", "hf_bert_mask", "hf_gpt2_mask"}


def main() -> None:
    for name in models.MODELS:
        models.export(name, str(HERE / f"{name}.onnx"))
        print("wrote", f"{name}.onnx")
        if name not in NO_DYNAMO:
            models.export(name, str(HERE / f"dynamo_{name}.onnx"), dynamo=True)
            print("wrote", f"dynamo_{name}.onnx")


if __name__ == "__main__":
    main()
