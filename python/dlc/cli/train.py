"""`dlc train MODEL --data D` and `dlc eval MODEL --params CKPT --data D`: training with the model's train
block, and evaluation of trained parameters."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from ..datafiles import is_data_file, load_data, parse_map, split
from ..distributed import World, launched, save_checkpoint
from ..distributed import evaluate as distributed_evaluate
from ..distributed import fit as distributed_fit
from ..program import Program
from ..callbacks import HistoryFile
from . import attack_flags, init_flags, longrun_flags
from .common import add_threads_argument, load_params, load_program, training_data
from .curves import add_curve_arguments, check_curve_arguments, save_curves
from .estimate import estimate_line


def datasets(program: Program, args: argparse.Namespace) -> tuple[dict[str, np.ndarray],
                                                                  dict[str, np.ndarray] | None, str]:
    """(training arrays, held-out arrays or None, what the held-out split is called), checked against the
    model before any step: a built-in dataset and its test split, or the user's files and --val/--val-split."""
    dims = dict(args.dims)
    prepare = program.trainer.prepare_data
    if not is_data_file(args.data):
        if args.val or args.val_split:
            raise ValueError("--val and --val-split are for your own data files; built-in datasets have a test split")
        train, held = training_data(program, args.data, dims)
        return prepare(train, "training data"), prepare(held, "test data"), "test"
    mapping = parse_map(args.map)
    if args.val and args.val_split:
        raise ValueError("give --val FILE or --val-split FRACTION, not both")
    train = read_data(program, args.data, mapping, args, "training data", new_classes=True)
    held = read_data(program, args.val, mapping, args, "val data") if args.val else None
    if args.val_split:  # after the check, which names rows as they are in the file
        train, held = split(train, args.val_split, args.seed)
    return train, held, "val"


def read_data(program: Program, spec: str, mapping: dict[str, str], args: argparse.Namespace, what: str,
              new_classes: bool = False) -> dict[str, np.ndarray]:
    """A data file's arrays, checked (errors name the file, row and column); says which columns of a table are
    its targets."""
    loaded = load_data(program, spec, mapping, args.label)
    if loaded.note and not getattr(args, "quiet", False):
        print(loaded.note, file=sys.stderr)
    return program.trainer.prepare_data(loaded.arrays, what, origin=loaded.origin, new_classes=new_classes)


def span_schedule(program: Program, epochs: int | None) -> str | None:
    """--epochs changes the run's length, so a schedule with a length (cosine's steps) is stretched with it."""
    spec = program.spec()
    name, settings = spec.schedule
    if epochs is None or not spec.epochs or "steps" not in settings or epochs == spec.epochs:
        return None
    steps = max(1, round(settings["steps"] * epochs / spec.epochs))
    program.configure(schedule=(name, {**settings, "steps": steps}))
    return f"schedule {name}: steps {settings['steps']:g} -> {steps} for --epochs {epochs} (recipe: {spec.epochs})"


def cmd_train(args: argparse.Namespace) -> int:
    check_curve_arguments(args)
    longrun_flags.check(args, launched())
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    loaded = init_flags.apply(program, args)
    if loaded and not args.json:
        print(loaded)
    train, held, held_name = datasets(program, args)
    note = span_schedule(program, args.epochs)
    if note and not args.quiet and not args.json:
        print(note, file=sys.stderr)
    if not args.quiet and not args.json and not launched():
        print(estimate_line(program, train, args.epochs, args.batch), file=sys.stderr, flush=True)
    start = time.perf_counter()
    validation = held if held_name == "val" else None
    ranks, main = 1, True
    # one of several ranks under mpirun: data-parallel (docs/distributed.md)
    world = World(timeout=args.rank_timeout) if launched() else None
    epochs = longrun_flags.resume(args, program, program.trainer.run_length(args.epochs)[0],
                                  announce=world is None or world.is_main)
    if world is not None:
        ranks, main = world.size, world.is_main
        run_callbacks = longrun_flags.callbacks(args, lambda p, path: save_checkpoint(p, path, world), main)
        history = distributed_fit(program, train, epochs=epochs, batch_size=args.batch,
                                  verbose=not args.quiet, validation=validation, world=world,
                                  sync_batch_norm=args.sync_bn, callbacks=run_callbacks)
        seconds = time.perf_counter() - start
        result = distributed_evaluate(program, held, None, world) if held is not None else {}
        if args.out:
            save_checkpoint(program, args.out, world)
    else:
        run_callbacks = longrun_flags.callbacks(args)
        history = program.fit(train, epochs=epochs, batch_size=args.batch, verbose=not args.quiet,
                              validation=validation, callbacks=run_callbacks)
        seconds = time.perf_counter() - start
        result = program.evaluate(held) if held is not None else {}
        if args.out:
            program.save_checkpoint(args.out)
    if not main:
        return 0
    written = next((c.history for c in run_callbacks if isinstance(c, HistoryFile)), None)
    if written is not None:  # the whole run's, with the epochs before a --resume
        history = written
    save_curves(history, args.history, args.plot, args.model, args.json)
    epochs = len(history.get("seconds", []))
    # A multi-phase recipe reports each phase's loss (`generator.loss`) instead of one `loss`.
    summary = {"model": args.model, "data": args.data, "epochs": epochs, "seconds": round(seconds, 3),
               "steps": program.step_count, "train_loss": history["loss"][-1] if "loss" in history else None,
               **{f"train_{k}": v[-1] for k, v in history.items() if "." in k},
               **{f"{held_name}_{k}": v for k, v in result.items()}, "checkpoint": args.out, "ranks": ranks}
    if args.data == "pysource" and held is not None:
        from ..text import unigram_entropy
        summary["unigram_baseline_loss"] = unigram_entropy(held["y"])
    if args.json:
        print(json.dumps(summary))
    else:
        shown = result or {"loss": summary["train_loss"]}
        label = held_name if result else "train"
        metrics = ", ".join(f"{label} {k} {v:.4f}" for k, v in shown.items() if v is not None)
        on = f" on {ranks} ranks" if ranks > 1 else ""
        print(f"trained {epochs} epoch{'s' * (epochs != 1)} ({program.step_count} steps){on} in {seconds:.1f} s: "
              f"{metrics}")
        if args.out:
            print(f"wrote {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    program = load_program(args)
    load_params(program, args.params)
    if is_data_file(args.data):
        data = read_data(program, args.data, parse_map(args.map), args, "data")
    else:
        data = program.trainer.prepare_data(training_data(program, args.data, dict(args.dims))[1], "test")
    result = program.evaluate(data)
    images = next((v for v in data.values() if v.dtype.kind == "f"), None)
    chosen = attack_flags.attack(args, images) if images is not None else None
    if chosen is not None:
        robust = program.evaluate(data, attack=chosen)
        result.update({f"{args.attack}_{k}": v for k, v in robust.items()})
    if args.json:
        print(json.dumps({f"test_{k}": v for k, v in result.items()}))
    else:
        print(", ".join(f"test {k} {v:.4f}" for k, v in result.items()))
    return 0


def data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--map", metavar="INPUT=ARRAY,...", help="which array feeds which input, e.g. x=images,y=labels")
    p.add_argument("--label", metavar="COLUMN[,...]",
                   help="CSV: the target column(s), by name or 0-based index; several for several regression "
                        "targets (default: the column named 'label', else the last column)")


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("train", parents=[model], help="train a model on a built-in dataset or your own data",
                       description="Trains with the model's train block (epochs, batch size, optimizer...) on a "
                                   "built-in dataset (then evaluates on its test split) or on your own data "
                                   "(.npz, two .npy files or CSV; --val or --val-split for validation). The data "
                                   "is checked against the model (samples, shapes, dtypes, label range) first.")
    p.add_argument("--data", required=True, metavar="DATA",
                   help="digits, sequences (synthetic, shaped to the model), pysource (Python's source), "
                        "FILE.npz (arrays named after the inputs), x=FILE.npy,y=FILE.npy, or FILE.csv")
    p.add_argument("--val", metavar="DATA", help="validation data, in the same form as --data")
    p.add_argument("--val-split", type=float, metavar="FRACTION", help="hold out this fraction for validation")
    data_arguments(p)
    p.add_argument("--epochs", type=int, help="override the recipe's epochs (a cosine schedule is stretched with it)")
    p.add_argument("--batch", type=int, help="override the recipe's batch size")
    p.add_argument("--params", metavar="CKPT", help="start from a checkpoint (fine-tuning, resuming)")
    p.add_argument("--out", metavar="CKPT", help="write a checkpoint at the end (and with --checkpoint-every, "
                                                 "during the run)")
    p.add_argument("--json", action="store_true", help="end with one JSON object of results")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_argument(p)
    add_curve_arguments(p)
    init_flags.add_arguments(p)
    longrun_flags.add_arguments(p)
    p.add_argument("--sync-bn", action="store_true",
                   help="under mpirun: batch norm uses the global batch's statistics, not each rank's shard's")
    p.add_argument("--rank-timeout", type=float, metavar="SECONDS",
                   help="under mpirun: end the job when a rank has not reached a step this long after another "
                        "did (default 300, or DLC_RANK_TIMEOUT)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", parents=[model], help="evaluate trained parameters on a dataset's test split")
    p.add_argument("--params", metavar="CKPT", required=True, help="checkpoint or compiled artifact")
    p.add_argument("--data", required=True, help="digits, sequences, pysource, or your data (as for train)")
    data_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_argument(p)
    attack_flags.add_arguments(p)
    p.set_defaults(func=cmd_eval)
