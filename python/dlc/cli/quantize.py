"""`dlc quantize MODEL --precision bf16|int8 [--data DATA] [--max-drop D] [-o model.dlc]`: what the reduced
precision costs, per layer and on the task metric (dlc/quantize.py), and with --max-drop the layers returned to
f32 until the metric is within D of f32's; -o writes the artifact in that precision."""

from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np

import dlc

from ..datafiles import is_data_file, load_data, parse_map
from ..errors import UntrainedWarning
from ..precision import REDUCED
from ..quantize import METRICS, format_report, precision_report
from .common import (add_calibrate_argument, add_threads_argument, calibrate_int8, load_params, load_program,
                     training_data)
from .run import is_artifact

RANDOM_SAMPLES = 64


def _program(args: argparse.Namespace) -> Any:
    if is_artifact(args.model):
        if args.params or args.dims or args.output:
            raise ValueError(f"{args.model} is a compiled artifact: --params, -D and -o apply to model files "
                             f"(dlc quantize MODEL.dlm --params CKPT ... -o OUT.dlc)")
        return dlc.load(args.model)
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    elif program.params:
        warnings.warn(f"{args.model}: freshly initialized parameters (seed {args.seed}), not trained ones: give "
                      f"them with --params CKPT", UntrainedWarning)
    return program


def _data(program: Any, args: argparse.Namespace) -> tuple[dict[str, np.ndarray], str]:
    """Arrays by input name, and where they came from."""
    model = program.model
    if args.data is None:
        rng = np.random.default_rng(0)
        arrays = {}
        for name in model.used_inputs():
            spec = model.inputs[name]
            if spec.dtype != "f32":
                raise ValueError(f"input '{name}' is {spec}: give data for it with --data")
            shape = [RANDOM_SAMPLES if isinstance(d, str) else d for d in spec.shape]
            arrays[name] = rng.standard_normal(shape).astype(np.float32)
        return arrays, f"{RANDOM_SAMPLES} random normal inputs (--data for real ones)"
    if is_data_file(args.data):
        arrays = load_data(program, args.data, parse_map(args.map), None).arrays
    elif hasattr(program, "trainer"):
        arrays = program.trainer.prepare_data(training_data(program, args.data, dict(args.dims))[1], "test data")
    else:
        raise ValueError(f"--data {args.data}: a compiled artifact takes a data file (FILE.npz)")
    checked = model.check_inputs({k: v for k, v in arrays.items() if k in model.inputs},
                                 [n for n in model.inputs if n in arrays])
    return checked, args.data


def _labels(model: Any, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The integer input only training reads (the labels), when the data has it."""
    used = set(model.used_inputs())
    names = [n for n, s in model.inputs.items() if n not in used and s.dtype.startswith("i") and n in arrays]
    return arrays[names[0]] if len(names) == 1 else None


def cmd_quantize(args: argparse.Namespace) -> int:
    program = _program(args)
    calibrated = calibrate_int8(program, args.calibrate, args.precision) if args.calibrate else None
    arrays, origin = _data(program, args)
    labels = _labels(program.model, arrays)
    report = precision_report(program.model, args.precision, arrays, labels, metric=args.metric,
                              max_drop=args.max_drop, batch_size=args.batch)
    if args.output:
        from ..artifact import save_artifact
        save_artifact(program, args.output)
    if args.json:
        def finite(v: Any) -> Any:
            return v if not isinstance(v, float) or math.isfinite(v) else str(v)
        body = {k: v for k, v in asdict(report).items() if k not in ("layers", "outputs")}
        body["layers"] = [{k: finite(v) for k, v in asdict(r).items()} for r in report.layers]
        body["outputs"] = {n: dict(zip(("sqnr_db", "max_error", "mean_error"), map(finite, v)))
                           for n, v in report.outputs.items()}
        print(json.dumps({"model": args.model, "data": origin, **body}, indent=2))
        return 0
    print(f"{args.model}: {origin}")
    if calibrated:
        print(calibrated)
    print(format_report(report))
    if args.output:
        print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("quantize", parents=[model], help="measure what bf16 or int8 inference costs, per layer",
                       description="Runs the model in f32 and in the reduced precision on the same inputs and "
                                   "prints, per layer, the SQNR of the layer's output against f32 (with every "
                                   "layer reduced, with that layer alone, and the model's output with that layer "
                                   "alone), the outputs' max and mean error and, with labelled data, the task "
                                   "metric in both. --max-drop D returns the most harmful layers to f32 until "
                                   "the metric is within D of f32's and says which; -o writes the artifact so.")
    p.add_argument("--precision", choices=REDUCED, required=True, help="the reduced precision to measure")
    p.add_argument("--params", metavar="CKPT", help="the trained parameters (a checkpoint from dlc train --out)")
    p.add_argument("--data", metavar="DATA",
                   help="digits, sequences, pysource (their test split) or a file (FILE.npz, FILE.csv); with the "
                        "labels the model's training reads, the task metric too (default: random inputs)")
    p.add_argument("--map", metavar="INPUT=ARRAY,...", help="which array feeds which input")
    p.add_argument("--metric", choices=METRICS, default="accuracy",
                   help="the task metric: accuracy (percent) or nll (nats per label; a language model's "
                        "nats/char)")
    p.add_argument("--max-drop", type=float, metavar="D",
                   help="return layers to f32 until the metric is within D of f32's (accuracy points or nats)")
    add_calibrate_argument(p)
    p.add_argument("--batch", type=int, default=256, metavar="B", help="samples per run (default 256)")
    p.add_argument("-o", dest="output", metavar="OUT", help="write the artifact in this precision (model files)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_threads_argument(p)
    p.set_defaults(func=cmd_quantize)
