"""`dlc compile MODEL -D N=..`: compile the inference plan (or with --train the whole training step: forward,
loss, backward and optimizer update) and summarize it (ops, kernels, memory), optionally writing a compiled
(inference) artifact with the trained parameters of --params (or, with --random-init, freshly initialized ones,
marked untrained); `dlc compile MODEL -o model.dlc` without -D writes one that keeps its symbolic dimensions (any
batch size)."""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any

from ..lowering import layout_summary
from ..passes import PassContext
from ..passes.dead_code import eliminate_dead_code
from ..passes.eval_mode import strip_training_only
from ..program import Program
from .common import (add_calibrate_argument, add_params_arguments, add_precision_argument, calibrate_int8,
                     deployable_params, human_bytes, io_lines, load_params, load_program, param_count, require_bound,
                     spec_json, unbound_dims)


def cmd_compile(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    program = load_program(args)
    if args.output:
        deployable_params(program, args, args.output)
    elif args.params:
        load_params(program, args.params)
    if args.calibrate:
        said = calibrate_int8(program, args.calibrate, program.precision)
        if not args.json:
            print(said)
    unbound = unbound_dims(program)
    if unbound and args.output and not args.train:
        return write_symbolic_artifact(args, program, unbound)
    require_bound(program)
    if args.train:
        lowered = program.training_plan("step", dict(args.dims))[0]
    else:
        lowered = program.compile_plan(training=False)
    seconds = time.perf_counter() - start
    if args.output:
        from ..artifact import save_artifact
        save_artifact(program, args.output)
    summary = {
        **description(args, program), **({} if args.train else inference_description(program, lowered)),
        "plan": "train_step" if args.train else "inference",
        "kernels": [{"kernel": s.kernel, "label": s.label, **({"layout": s.layout} if s.layout else {})}
                    for s in lowered.steps],
        "layout": layout_summary(lowered.steps), "memory": lowered.memory_report(),
        "compile_seconds": round(seconds, 6),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    dims = ", ".join(f"{k}={v}" for k, v in summary["dims"].items())
    what = "training step" if args.train else "inference plan"
    precision = f", {program.precision} weights" if program.precision != "f32" and not args.train else ""
    print(f"{args.model}: {what} compiled in {seconds:.3f} s ({program.dtype}{precision}{', ' + dims if dims else ''})")
    print("\n".join(io_lines(program) if args.train else inference_io_lines(program, summary)))
    print(f"ops: {summary['ops']} ({', '.join(f'{op} {n}' for op, n in summary['op_counts'].items())})")
    print(f"kernels: {len(lowered.steps)}")
    for i, step in enumerate(lowered.steps):
        print(f"  {i:4d}  {step.kernel:<12} {step.label}" + (f"  ({step.layout})" if step.layout else ""))
    print(layout_line(summary["layout"]))
    print(parameters_line(args, program))
    mem = lowered.memory
    grads = f"; gradients {human_bytes(mem.gradient_bytes)} after it" if mem.gradient_bytes else ""
    packed = lowered.plan.packed_bytes
    beside = f"; weights packed for its matrix products {human_bytes(packed)} beside it" if packed else ""
    print(f"memory: arena {human_bytes(mem.arena_bytes)} (naive {human_bytes(mem.naive_bytes)}, "
          f"lower bound {human_bytes(mem.lower_bound_bytes)}{grads}){beside}")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def layout_line(layout: dict[str, int]) -> str:
    """The layout decision in one line (passes/layout.py)."""
    if not layout["block"]:
        return "layout: NCHW throughout"
    return (f"layout: NCHW{layout['block']}c in {layout['blocked_kernels']} kernels, {layout['reorders']} reorders "
            f"({layout['image_reorders']} of images, the rest per-channel vectors)")


def description(args: argparse.Namespace, program: Program) -> dict[str, Any]:
    """The part of the summary that needs no plan."""
    counts = Counter(node.op for node in program.graph.nodes)
    return {"model": args.model, "dtype": program.dtype, "precision": program.precision, "dims": dict(args.dims),
            "inputs": {n: spec_json(s) for n, s in program.inputs.items()},
            "outputs": {n: spec_json(s) for n, s in program.outputs.items()},
            "ops": len(program.graph.nodes), "op_counts": dict(counts.most_common()),
            "params": param_count(program), "params_from": args.params, "artifact": args.output,
            "untrained": program.model.params_untrained()}


def parameters_line(args: argparse.Namespace, program: Program) -> str:
    """The parameter count and where their values come from."""
    if args.params:
        origin = f" (from {args.params})"
    else:
        origin = f" (freshly initialized, seed {args.seed}: untrained)" if program.params else ""
    return f"parameters: {param_count(program):,}{origin}"


def inference_description(program: Program, lowered: Any) -> dict[str, Any]:
    """The inference plan's own inputs and ops: in evaluation form (no dropout masks, batch norm on its running
    statistics) and without the inputs only training reads (labels), which `training_inputs` names."""
    graph = program.model.inference_graph(program.model.dims)
    graph = eliminate_dead_code(strip_training_only(graph, PassContext(training=False)), PassContext())
    counts = Counter(node.op for node in graph.nodes)
    used = set(lowered.input_names)
    return {"inputs": {n: spec_json(s) for n, s in program.inputs.items() if n in used},
            "training_inputs": [n for n in program.inputs if n not in used],
            "ops": len(graph.nodes), "op_counts": dict(counts.most_common())}


def inference_io_lines(program: Program, summary: dict[str, Any]) -> list[str]:
    only = summary["training_inputs"]
    note = f" ({', '.join(only)}: training only)" if only else ""
    return ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in program.inputs.items() if n in summary["inputs"]) + note,
            "outputs: " + ", ".join(f"{n}: {s}" for n, s in program.outputs.items())]


def write_symbolic_artifact(args: argparse.Namespace, program: Program, unbound: list[str]) -> int:
    """`dlc compile MODEL -o model.dlc` without -D for every dimension: an artifact that binds the rest from its
    inputs at each call (one plan per binding), so it runs with any batch size. There is no one plan to show."""
    from ..artifact import save_artifact
    save_artifact(program, args.output)
    names = ", ".join(unbound)
    if args.json:
        print(json.dumps({**description(args, program), "plan": None, "unbound": unbound}, indent=2))
        return 0
    print(f"{args.model}: {names} left unbound: the artifact binds {'them' if len(unbound) > 1 else 'it'} from "
          f"its inputs at each call (-D {unbound[0]}=<size> fixes a size and shows the plan)")
    print("\n".join(io_lines(program)))
    print(parameters_line(args, program))
    print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction, model: argparse.ArgumentParser) -> None:
    p = sub.add_parser("compile", parents=[model], help="compile a model and summarize the plan",
                       description="Compiles the inference plan, or with --train the training step (every "
                                   "symbolic dimension bound with -D), and prints its ops, kernels, parameters and "
                                   "planned memory. -o writes the inference artifact (model, settings and the "
                                   "trained parameters of --params; --random-init writes freshly initialized ones, "
                                   "marked untrained); dimensions left unbound stay symbolic in it and are bound "
                                   "from the inputs at each call.")
    p.add_argument("--no-fuse", action="store_true", help="disable operator fusion")
    p.add_argument("--train", action="store_true",
                   help="plan the whole training step (forward, loss, backward, optimizer) instead of inference")
    p.add_argument("-o", dest="output", metavar="OUT", help="write a compiled artifact (safetensors) here; without -D it takes any batch size")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_precision_argument(p)
    add_calibrate_argument(p)
    add_params_arguments(p, "the artifact (-o)")
    p.set_defaults(func=cmd_compile)
