"""`dlc train MODEL --data D` and `dlc eval MODEL --params CKPT --data D`: training with the model's train
block, and evaluation of trained parameters."""

from __future__ import annotations

import argparse
import json
import time

from .common import add_threads_argument, load_params, load_program, training_data
from .curves import add_curve_arguments, check_curve_arguments, save_curves


def cmd_train(args: argparse.Namespace) -> int:
    check_curve_arguments(args)
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    train, test = training_data(program, args.data, dict(args.dims))
    start = time.perf_counter()
    history = program.fit(train, epochs=args.epochs, batch_size=args.batch, verbose=not args.quiet)
    seconds = time.perf_counter() - start
    result = program.evaluate(test)
    if args.out:
        program.save_checkpoint(args.out)
    save_curves(history, args.history, args.plot, args.model)
    epochs = len(history.get("loss", []))
    summary = {"model": args.model, "data": args.data, "epochs": epochs, "seconds": round(seconds, 3),
               "steps": program.step_count, "train_loss": history["loss"][-1] if epochs else None,
               "test_loss": result["loss"], **{f"test_{k}": v for k, v in result.items() if k != "loss"},
               "checkpoint": args.out}
    if args.data == "pysource":
        from ..text import unigram_entropy
        summary["unigram_baseline_loss"] = unigram_entropy(test["y"])
    if args.json:
        print(json.dumps(summary))
    else:
        metrics = ", ".join(f"test {k} {v:.4f}" for k, v in result.items())
        print(f"trained {epochs} epochs ({program.step_count} steps) in {seconds:.1f} s: {metrics}")
        if args.out:
            print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    program = load_program(args)
    load_params(program, args.params)
    _, test = training_data(program, args.data, dict(args.dims))
    result = program.evaluate(test)
    if args.json:
        print(json.dumps({f"test_{k}": v for k, v in result.items()}))
    else:
        print(", ".join(f"test {k} {v:.4f}" for k, v in result.items()))
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[model], help="train a model on a built-in dataset",
                       description="Trains with the model's train block (epochs, batch size, optimizer...) on a "
                                   "built-in dataset, then evaluates on its test split.")
    p.add_argument("--data", required=True,
                   help="dataset: digits, sequences (synthetic, shaped to the model) or pysource (Python's source)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--batch", type=int, help="override the recipe's batch size")
    p.add_argument("--params", metavar="CKPT", help="start from a checkpoint (fine-tuning, resuming)")
    p.add_argument("--out", metavar="CKPT", help="write a checkpoint at the end")
    p.add_argument("--json", action="store_true", help="end with one JSON object of results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    add_curve_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", parents=[model], help="evaluate trained parameters on a dataset's test split")
    p.add_argument("--params", metavar="CKPT", required=True, help="checkpoint or compiled artifact")
    p.add_argument("--data", required=True, help="dataset: digits, sequences or pysource")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_argument(p)
    p.set_defaults(func=cmd_eval)
