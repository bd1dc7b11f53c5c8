"""Regenerates the pictures in docs/img/ that the docs show: `python docs/gen_pictures.py`.

- blocks_example.svg       `dlc draw models/blocks_example.dlm` — the model as written
- blocks_example_plan.svg  `dlc draw models/blocks_example.dlm --plan -D N=64` — kernels, fusion, arena offsets
- resnet8.svg              `dlc draw models/resnet8.dlm` — residual blocks as clusters
- digits_mlp_curves.png    learning curves of models/digits_mlp.dlm on the digits data (train and validation)

Needs the `draw` and `plot` extras, Graphviz's `dot` and scikit-learn (`pip install ".[draw,plot,data]"`).
The curves train for --epochs epochs (20 by default, about a minute on two cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dlc
from dlc.data import digits, for_model
from dlc.draw import model_dot, plan_dot, render
from dlc.history import plot_history

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args(argv)
    IMG.mkdir(exist_ok=True)
    blocks = ROOT / "models" / "blocks_example.dlm"
    render(model_dot(dlc.compile(blocks).graph, "blocks_example"), IMG / "blocks_example.svg")
    plan = dlc.compile(blocks, dims={"N": 64}).compile_plan(training=False)
    render(plan_dot(plan, "blocks_example, N=64"), IMG / "blocks_example_plan.svg")
    render(model_dot(dlc.compile(ROOT / "models" / "resnet8.dlm").graph, "resnet8"), IMG / "resnet8.svg")

    program = dlc.compile(ROOT / "models" / "digits_mlp.dlm", seed=0)
    data = digits()
    train, test = for_model(program, *data.train), for_model(program, *data.test)
    history = program.fit(train, epochs=args.epochs, validation=test, verbose=False)
    plot_history(history, IMG / "digits_mlp_curves.png", title=f"digits_mlp, {args.epochs} epochs")
    for path in sorted(IMG.iterdir()):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
