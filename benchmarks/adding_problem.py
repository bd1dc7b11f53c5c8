"""The adding problem (Hochreiter & Schmidhuber, 1997): long-range memory, LSTM versus a plain RNN.

Each sequence has T steps of two features: a value uniform in [0, 1] and a marker that is 1 at exactly two
positions (one in the first half, one in the second) and 0 elsewhere. The target is the sum of the two marked
values. Always predicting 1 gives an MSE of 1/6 = 0.167 (the variance of the sum); beating it requires
carrying a value across up to T steps.

    python benchmarks/adding_problem.py --length 50 --steps 1500
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import dlc

BASELINE_MSE = 1.0 / 6.0
MODEL = """
input x: f32[N, {length}, 2]
input y: f32[N, 1]
h = {cell}(x, {hidden}, return_sequences=false)
output pred = dense(h, 1)
train {{
    loss = mse(pred, y)
    optimizer = adam(lr={lr})
    clip_norm = 1.0
}}
"""


def adding_batch(rng: np.random.Generator, n: int, length: int) -> dict[str, np.ndarray]:
    values = rng.uniform(0.0, 1.0, (n, length))
    markers = np.zeros((n, length))
    first = rng.integers(0, length // 2, n)
    second = rng.integers(length // 2, length, n)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[rows, first] + values[rows, second]).astype(np.float32)[:, None]
    return {"x": x, "y": y}


def train(cell: str, length: int = 50, steps: int = 1500, hidden: int = 64, batch: int = 64, lr: float = 3e-3,
          seed: int = 0) -> dict[str, float]:
    """Trains on fresh batches; returns the MSE on 2,000 held-out sequences and the training time."""
    program = dlc.compile(source=MODEL.format(cell=cell, length=length, hidden=hidden, lr=lr), seed=seed)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        program.train_step(**adding_batch(rng, batch, length))
    seconds = time.perf_counter() - start
    test = adding_batch(np.random.default_rng(seed + 10_000), 2000, length)
    mse = float(np.mean((program(x=test["x"])["pred"] - test["y"]) ** 2))
    return {"mse": mse, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cells", default="lstm,gru,rnn")
    args = parser.parse_args()
    print(f"adding problem, T={args.length}, {args.steps} steps of 64; baseline MSE (predict 1) = {BASELINE_MSE:.3f}")
    for cell in args.cells.split(","):
        r = train(cell, args.length, args.steps, args.hidden)
        print(f"{cell:5s} test MSE {r['mse']:.4f}  ({r['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
