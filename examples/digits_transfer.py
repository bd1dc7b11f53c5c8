"""Transfer learning on scikit-learn's 8x8 digits: the figure of docs/training.md, "Transfer learning".

Pre-trains models/digits_cnn.dlm on digits 0-4, then learns digits 5-9 from 10 labelled images per class
(3 draws of the 50 images), for several training budgets, each run the same steps and schedule:
- scratch:        the same network, freshly initialized, trained on those 50 images;
- fine-tune:      the pre-trained convolutional backbone (c1-c3: convolutions and batch norm) loaded with
                  load_params, the dense layers re-initialized; the backbone at the head's rate, or at a tenth;
- frozen:         the loaded backbone frozen (checked bit-identical afterwards, batch-norm statistics too).
Test accuracy is on the test split's digits 5-9.

    python examples/digits_transfer.py [--draws 3] [--pretrain-epochs 15] [--epochs 5 15 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import dlc
from dlc.data import digits, for_model

MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.dlm"
BACKBONE = ["c1", "c2", "c3"]
# name -> (load the backbone, its learning-rate multiplier, frozen)
RUNS = {"scratch": (False, 1.0, False), "fine_tune": (True, 1.0, False), "fine_tune_lr_0.1": (True, 0.1, False),
        "frozen": (True, 1.0, True)}


def few_shot(program: dlc.Program, ckpt: Path, load: bool, mult: float, freeze: bool, epochs: int,
             data: tuple[dict[str, np.ndarray], dict[str, np.ndarray]]) -> float:
    train, test = data
    program.configure(schedule=("cosine", {"steps": epochs * 2, "warmup": 5}))  # 50 images, batches of 25
    before: dict[str, np.ndarray] = {}
    if load:
        report = program.load_params(ckpt, include=BACKBONE)
        assert report.missing == [] and report.unexpected == [], report
        program.configure(lr_mult=[[b, mult] for b in BACKBONE])
    if freeze:
        program.freeze("c*")  # a glob: the three convolutional blocks, batch norm included
        before = {k: np.array(v) for k, v in program.params.items() if k.startswith("c")}
    program.fit(train, epochs=epochs, batch_size=25, verbose=False)
    for name, value in before.items():  # frozen means bit-identical, running statistics included
        assert program.params[name].tobytes() == value.tobytes(), name
    return program.evaluate(test)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=15)
    parser.add_argument("--epochs", type=int, nargs="+", default=[5, 15, 60])
    args = parser.parse_args()
    ds = digits()
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    pre = dlc.compile(MODEL, seed=0)
    first = for_model(pre, xtr[ytr < 5], ytr[ytr < 5])
    pre.configure(schedule=("cosine", {"steps": args.pretrain_epochs * -(-len(first["x"]) // 64), "warmup": 20}))
    pre.fit(first, epochs=args.pretrain_epochs, verbose=False)
    summary: dict[str, object] = {
        "pretrain_test_accuracy_0_4": pre.evaluate(for_model(pre, xte[yte < 5], yte[yte < 5]))["accuracy"]}
    test = for_model(pre, xte[yte >= 5], yte[yte >= 5])
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "pretrained.ckpt"
        pre.save_checkpoint(str(ckpt))
        for epochs in args.epochs:
            accuracy: dict[str, list[float]] = {name: [] for name in RUNS}
            for draw in range(args.draws):
                rng = np.random.default_rng(100 + draw)
                idx = np.concatenate([rng.choice(np.flatnonzero(ytr == c), 10, replace=False) for c in range(5, 10)])
                data = (for_model(pre, xtr[idx], ytr[idx]), test)
                for name, (load, mult, freeze) in RUNS.items():
                    program = dlc.compile(MODEL, seed=1 + draw)
                    accuracy[name].append(few_shot(program, ckpt, load, mult, freeze, epochs, data))
            summary[f"{epochs}_epochs"] = {name: {"mean": round(float(np.mean(v)), 4), "runs": [round(a, 4) for a in v]}
                                          for name, v in accuracy.items()}
            summary[f"{epochs}_epochs"]["fine_tune_minus_scratch_points"] = round(  # type: ignore[index]
                100 * (np.mean(accuracy["fine_tune"]) - np.mean(accuracy["scratch"])), 1)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
