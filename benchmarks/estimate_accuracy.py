"""How close `dlc train`'s up-front time estimate comes to the run it announces (issue 25, item 10: it was
2-3x low for the digits VAE and GAN).

For each model, the estimate is computed as `dlc train` computes it (cli/estimate.py), then the run itself is
timed: fit for --epochs epochs on the digits training split, without the progress bar. Prints one line per model
with both figures and their ratio (run / estimate; 1.0 is exact).

    python benchmarks/estimate_accuracy.py [--epochs 20] [--only digits_vae,digits_gan]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import dlc
from dlc.cli.estimate import measure_step_seconds
from dlc.data import digits, for_model

MODELS = Path(__file__).resolve().parent.parent / "models"
DEFAULT = ("digits_mlp", "digits_cnn", "digits_ae", "digits_vae", "digits_gan")


def compare(name: str, epochs: int) -> tuple[float, float]:
    """(estimated seconds, measured seconds) of `epochs` epochs of the model's recipe on the digits."""
    program = dlc.compile(MODELS / f"{name}.dlm")
    train = for_model(program, *digits().train)
    _, size = program.trainer.run_length(epochs, None)
    n = len(next(iter(train.values())))
    per_step, compile_seconds = measure_step_seconds(program, train, size)
    estimate = per_step * math.ceil(n / size) * epochs + (compile_seconds if n % size else 0.0)
    start = time.perf_counter()
    program.fit(train, epochs=epochs, verbose=False)
    return estimate, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--only", help="comma-separated model names (default: the digits models)")
    args = parser.parse_args()
    for name in args.only.split(",") if args.only else DEFAULT:
        estimate, run = compare(name, args.epochs)
        print(f"{name:<12} estimate {estimate:7.2f} s   run {run:7.2f} s   run/estimate {run / estimate:5.2f}")


if __name__ == "__main__":
    main()
