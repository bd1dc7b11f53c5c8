"""The `dlc` command line: check, compile, run, train, evaluate, benchmark and sample from .dlm models.

Each subcommand is a `cmd_<name>(args) -> int` function plus one `add_parser` block in `build_parser`; adding
a command is adding those two. User errors (a bad model, a bad input file, a bad flag) print one clean
message and exit 1, or 2 for usage errors, never a traceback: `CompileError`s print their located diagnostic,
other expected errors `dlc: error: <message>`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import dlc

from .errors import CheckpointError, CompileError, DlcError
from .program import Program, TensorSpec


def parse_dim(text: str) -> tuple[str, int]:
    """`-D N=64`: a symbolic dimension and its size."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=SIZE (e.g. -D N=64), got {text!r}")
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size of {name} must be an integer, got {value!r}") from None
    if size < 1:
        raise argparse.ArgumentTypeError(f"size of {name} must be positive, got {size}")
    return name, size


def parse_input(text: str) -> tuple[str, str]:
    """`--input x=x.npy`: an input name and the .npy file holding its array."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy (e.g. --input x=x.npy), got {text!r}")
    return name, path


def load_program(args: argparse.Namespace) -> Program:
    return dlc.compile(Path(args.model), dims=dict(args.dims), dtype=args.dtype,
                       fuse=not getattr(args, "no_fuse", False), seed=args.seed)


def param_count(program: Program) -> int:
    return sum(int(a.size) for a in program.params.values())


def spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"dtype": spec.dtype, "shape": list(spec.shape)}


def require_bound(program: Program) -> None:
    """Compiling a plan needs every symbolic dimension: name the unbound ones and show the -D syntax."""
    unbound = sorted({d for s in program.inputs.values() for d in s.shape if isinstance(d, str)})
    if unbound:
        flags = " ".join(f"-D {n}=<size>" for n in unbound)
        raise ValueError(f"symbolic dimension{'s' * (len(unbound) > 1)} {', '.join(unbound)} "
                         f"{'are' if len(unbound) > 1 else 'is'} unbound; bind with {flags}")


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


def io_lines(program: Program) -> list[str]:
    return ["inputs:  " + ", ".join(f"{n}: {s}" for n, s in program.inputs.items()),
            "outputs: " + ", ".join(f"{n}: {s}" for n, s in program.outputs.items())]


# ---- commands ----

def cmd_check(args: argparse.Namespace) -> int:
    program = load_program(args)
    print(f"{args.model}: ok")
    print("\n".join(io_lines(program)))
    print(f"parameters: {param_count(program):,}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    program = load_program(args)
    require_bound(program)
    lowered = program.compile_plan(training=False)
    seconds = time.perf_counter() - start
    if args.output:
        from .artifact import save_artifact
        save_artifact(program, args.output)
    counts = Counter(node.op for node in program.graph.nodes)
    summary = {
        "model": args.model, "dtype": program.dtype, "dims": dict(args.dims),
        "inputs": {n: spec_json(s) for n, s in program.inputs.items()},
        "outputs": {n: spec_json(s) for n, s in program.outputs.items()},
        "ops": len(program.graph.nodes), "op_counts": dict(counts.most_common()),
        "kernels": [{"kernel": s.kernel, "label": s.label} for s in lowered.steps],
        "params": param_count(program), "memory": lowered.memory.as_dict(),
        "compile_seconds": round(seconds, 6), "artifact": args.output,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    dims = ", ".join(f"{k}={v}" for k, v in summary["dims"].items())
    print(f"{args.model}: compiled in {seconds:.3f} s ({program.dtype}{', ' + dims if dims else ''})")
    print("\n".join(io_lines(program)))
    print(f"ops: {summary['ops']} ({', '.join(f'{op} {n}' for op, n in counts.most_common())})")
    print(f"kernels: {len(lowered.steps)}")
    for i, step in enumerate(lowered.steps):
        print(f"  {i:4d}  {step.kernel:<12} {step.label}")
    print(f"parameters: {summary['params']:,}")
    mem = lowered.memory
    print(f"memory: arena {human_bytes(mem.arena_bytes)} (naive {human_bytes(mem.naive_bytes)}, "
          f"lower bound {human_bytes(mem.lower_bound_bytes)})")
    if args.output:
        print(f"wrote {args.output}")
    return 0


def load_inputs(pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    for name, path in pairs:
        if name in arrays:
            raise ValueError(f"input '{name}' is given twice")
        try:
            value = np.load(path, allow_pickle=False)
        except (ValueError, EOFError) as e:  # not an .npy file, truncated, or object arrays (pickles)
            raise ValueError(f"{path}: cannot read an array for input '{name}' ({e})") from None
        if not isinstance(value, np.ndarray):  # an .npz archive
            value.close()
            raise ValueError(f"{path}: expected a .npy file holding one array, got an .npz archive")
        arrays[name] = value
    return arrays


def load_params(program: Program, path: str) -> None:
    """`--params`: parameters from a training checkpoint or from a compiled artifact of the same model."""
    from .artifact import FORMAT, file_format, load_artifact
    if file_format(path) != FORMAT:
        program.load_checkpoint(path)
        return
    stored = load_artifact(path).params
    missing, unknown = sorted(set(program.params) - set(stored)), sorted(set(stored) - set(program.params))
    if missing or unknown:
        raise CheckpointError(f"{path}: parameters do not match the model (missing: {', '.join(missing) or 'none'}; "
                              f"unexpected: {', '.join(unknown) or 'none'})")
    program.set_params(stored)


def preview(arr: np.ndarray, count: int = 6) -> str:
    flat = arr.reshape(-1)
    text = np.array2string(flat[:count], precision=5, separator=", ", max_line_width=1_000)
    return text[:-1] + ", ...]" if flat.size > count else text


def cmd_run(args: argparse.Namespace) -> int:
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    results = program(**load_inputs(args.inputs))
    for name, arr in results.items():
        print(f"{name}: {program.outputs[name].dtype}{list(arr.shape)} {preview(arr)}")
    if args.output:
        with open(args.output, "wb") as f:  # a file object: np.savez would append .npz to a bare name
            np.savez(f, **results)
        print(f"wrote {args.output}")
    return 0


def training_data(program: Program, name: str, dims: dict[str, int]) -> tuple[dict[str, np.ndarray],
                                                                             dict[str, np.ndarray]]:
    """(train, test) arrays by input name. pysource: byte windows of length T (-D T=..., default 128), with
    the held-out tail of the text as the test split."""
    if name == "pysource":
        from .text import load_pysource
        return load_pysource(seq_len=dims.get("T", 128))
    from .data import for_model, load_dataset
    ds = load_dataset(name, program, dims)
    return for_model(program, *ds.train), for_model(program, *ds.test)


def cmd_train(args: argparse.Namespace) -> int:
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
    epochs = len(history.get("loss", []))
    summary = {"model": args.model, "data": args.data, "epochs": epochs, "seconds": round(seconds, 3),
               "steps": program.step_count, "train_loss": history["loss"][-1] if epochs else None,
               "test_loss": result["loss"], **{f"test_{k}": v for k, v in result.items() if k != "loss"},
               "checkpoint": args.out}
    if args.data == "pysource":
        from .text import unigram_entropy
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


def cmd_generate(args: argparse.Namespace) -> int:
    from .text import sample
    program = load_program(args)
    if args.params:
        load_params(program, args.params)
    text = sample(program, args.prompt, length=args.length, temperature=args.temperature, seed=args.sample_seed)
    print(text)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import format_bench, run_bench
    result = run_bench(args.model, dict(args.dims), args.train, args.threads, args.repeat, args.warmup,
                       seed=args.seed)
    print(json.dumps(result) if args.json else format_bench(result))
    return 0


# ---- parser ----

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlc", description="A declarative deep-learning graph compiler.")
    parser.add_argument("--version", action="version", version=f"dlc {dlc.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("model", metavar="MODEL.dlm", help="the model file")
    model.add_argument("-D", dest="dims", metavar="NAME=SIZE", type=parse_dim, action="append", default=[],
                       help="bind a symbolic dimension (repeatable), e.g. -D N=64")
    model.add_argument("--dtype", choices=("f32", "f64"), default="f32",
                       help="run f32 tensors in this precision (default f32)")
    model.add_argument("--seed", type=int, default=0, help="parameter initialization seed (default 0)")

    p = sub.add_parser("check", parents=[model], help="parse and shape-check a model",
                       description="Parses the model and infers every shape; prints its inputs and outputs.")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("compile", parents=[model], help="compile a model and summarize the plan",
                       description="Compiles the inference plan (every symbolic dimension bound with -D) and "
                                   "prints its ops, kernels, parameters and planned memory.")
    p.add_argument("--no-fuse", action="store_true", help="disable operator fusion")
    p.add_argument("-o", dest="output", metavar="OUT", help="write a compiled artifact (safetensors) here")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("run", parents=[model], help="run inference on .npy inputs",
                       description="Runs the model on inputs from .npy files, with freshly initialized parameters "
                                   "unless --params gives trained ones.")
    p.add_argument("--input", dest="inputs", metavar="NAME=FILE.npy", type=parse_input, action="append",
                   default=[], help="an input array (repeatable)")
    p.add_argument("--params", metavar="FILE", help="load parameters from a checkpoint or a compiled artifact")
    p.add_argument("-o", dest="output", metavar="OUT.npz", help="write the outputs to an .npz file")
    p.set_defaults(func=cmd_run)

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
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", parents=[model], help="evaluate trained parameters on a dataset's test split")
    p.add_argument("--params", metavar="CKPT", required=True, help="checkpoint or compiled artifact")
    p.add_argument("--data", required=True, help="dataset: digits, sequences or pysource")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", parents=[model], help="time the plan fused and unfused, kernel by kernel",
                       description="Runs the same plan fused and unfused (alternating, after warm-up) and prints "
                                   "the medians, the speedup, each variant's arena and a per-kernel table.")
    p.add_argument("--train", action="store_true", help="time a whole training step instead of inference")
    p.add_argument("--threads", type=int, help="kernel threads")
    p.add_argument("--repeat", type=int, default=30, help="timed runs (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("generate", parents=[model], help="sample text from a character-level language model",
                       description="Feeds the prompt's bytes and samples one byte at a time from "
                                   "softmax(logits / temperature).")
    p.add_argument("--params", metavar="CKPT", help="trained parameters (checkpoint or artifact)")
    p.add_argument("--prompt", default="def ", help="text to continue (default 'def ')")
    p.add_argument("--length", type=int, default=200, help="bytes to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sampler")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlc` script; returns the exit status (tests call it in-process)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors: argparse has printed what it had to
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except CompileError as e:
        print(e.format(), file=sys.stderr)
    except (DlcError, ValueError, OSError) as e:
        print(f"dlc: error: {e}", file=sys.stderr)
    except MemoryError as e:  # a model can ask for more memory than there is (huge layers)
        print(f"dlc: error: out of memory{': ' + str(e) if str(e) else ''}", file=sys.stderr)
    except KeyboardInterrupt:
        print("dlc: interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
