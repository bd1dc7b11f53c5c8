"""Adversarial training on scikit-learn's 8x8 digits: clean and robust accuracy, with and without it.

Trains models/digits_cnn.dlm twice with its own recipe (pixels in [0, 1]): once on clean images, once with
adversarial training declared in the recipe (FGSM at eps = 0.1 made inside the compiled step, clipped to [0, 1],
half of each batch kept clean). Reports clean test accuracy and FGSM robust accuracy at eps = 0.1 (and PGD-10
for reference, since single-step training can mask gradients) for both, and writes a checkpoint of each.

    python examples/digits_adversarial.py [--epochs 50] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import dlc
from dlc.data import digits, for_model

MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_cnn.dlm"
FGSM = ("fgsm", {"eps": 0.1, "clip": [0, 1]})
PGD = ("pgd", {"eps": 0.1, "steps": 10, "step_size": 0.025, "clip": [0, 1]})


def report(program: dlc.Program, test: tuple) -> dict[str, float]:
    return {"clean_accuracy": program.evaluate(test)["accuracy"],
            "fgsm_accuracy": program.evaluate(test, attack=FGSM)["accuracy"],
            "pgd10_accuracy": program.evaluate(test, attack=PGD)["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None, help="folder for the two checkpoints")
    args = parser.parse_args()
    ds = digits()
    results = {}
    for name, attack in (("standard", None), ("adversarial", ("fgsm", {**FGSM[1], "clean_fraction": 0.5}))):
        program = dlc.compile(MODEL, seed=0)
        train = for_model(program, *ds.train)
        test = for_model(program, *ds.test)
        steps = args.epochs * -(-len(train["x"]) // 64)
        program.configure(schedule=("cosine", {"steps": steps, "warmup": 50}), adversarial=attack)
        program.fit(train, epochs=args.epochs, verbose=False)
        results[name] = report(program, test)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            program.save_checkpoint(str(args.out / f"digits_cnn_{name}.ckpt"))
    results["fgsm_gain_points"] = 100 * (results["adversarial"]["fgsm_accuracy"] - results["standard"]["fgsm_accuracy"])
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
