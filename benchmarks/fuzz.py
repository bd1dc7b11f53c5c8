"""Fuzzes dlc's file readers with hypothesis and prints the figures of the run.

    python benchmarks/fuzz.py --examples 2000            # the long run (tests/test_fuzz.py runs a short one)
    python benchmarks/fuzz.py --target models --examples 500 --json figures.json

Targets and the only outcomes each may have:
  models       mutated model files (the bundled models and small inline ones, edited token by token) and
               generated ones (random ops, arguments and shapes): a compiled program, or a CompileError with a
               file:line:col location. A program whose inputs are concrete is also run once on zeros, where a
               DlcError, ValueError or IndexError is allowed and a crash is not.
  artifacts    a saved artifact with bit flips, truncations and re-signed edits (metadata entries and tensor
               shapes, dtypes and names changed, then the checksum recomputed): a CheckpointError, or a program
               whose outputs equal the unedited one's. (Edits to the stored source text or to parameter values
               make a different model by design — the checksum detects damage, it does not authenticate — so
               the re-signed edits leave those two alone.)
  checkpoints  a saved checkpoint, damaged the same ways: a CheckpointError, or parameters that equal the
               unedited file's.
  onnx         mutated and generated ONNX files (fuzz_onnx.py lists the edits): a program, or a DlcError; each
               case also within 1 s of CPU and an allocation its file justifies.
The process caps its own address space (--max-gib), so that a case allocating what no file justifies fails
with a MemoryError instead of exhausting the machine.
Every case runs under a per-case time bound (SIGALRM); a case over it fails the run. The process exits 1 on
the first failing case, after hypothesis has shrunk it, and prints it.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dlc
from dlc.artifact import _checksum, load_artifact, save_artifact
from dlc.training.checkpoint import _digest

ROOT = Path(__file__).resolve().parent.parent
INLINE = ["input x: f32[N, 3]\ninput k: i32[N, 3]\nm = cast(k > 1, \"f32\")\nh = dense(x * m, 4) |> layer_norm\n"
          "output y = h, z = relu(h) * 2\n",
          "input x: f32[2, 1, 8, 8]\nblock b(t, c: int = 2) {\n  return conv2d(t, c, 3, padding=1) |> relu\n}\n"
          "y = repeat 2 b(x)\noutput z = global_avg_pool(y)\n",
          "input ids: i32[2, 5]\ne = embedding(ids, 7, 4)\nh, s = gru(e, 3, return_state=true)\noutput h\n"]
TOKENS = ["(", ")", "[", "]", "{", "}", ",", "=", "+", "-", "*", "/", "@", "**", "|>", "\n", " ", ";", "#",
          "\"", "x", "N", "0", "1", "-1", "3", "65536", "4294967296", "1e999", "2.5", "repeat 1024 ", "dense(",
          "relu", "input ", "output ", "param ", "block ", "return ", "train ", "import \"", "f32[", "i32[",
          "\r", "\x00", "é", "true", "none", "if ", " else ", "sum(", "reshape(", "broadcast_to("]
OPS = ["relu", "tanh", "sigmoid", "gelu", "exp", "neg", "abs", "sqrt", "softmax", "layer_norm", "flatten",
       "sum", "mean", "max", "transpose", "dense", "conv2d", "max_pool2d", "lstm", "embedding", "reshape",
       "one_hot", "cross_entropy", "dropout", "concat", "slice", "pad", "upsample", "attention", "batch_norm"]


class CaseTimeout(Exception):
    pass


class Figures:
    """What a run saw: cases and outcomes per target, and the slowest case."""

    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.slowest = (0.0, "")

    def record(self, target: str, outcome: str, seconds: float, case: str) -> None:
        self.outcomes[f"{target}: {outcome}"] += 1
        if seconds > self.slowest[0]:
            self.slowest = (seconds, f"{target}: {case[:160]!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"cases": sum(self.outcomes.values()), "outcomes": dict(sorted(self.outcomes.items())),
                "slowest_seconds": round(self.slowest[0], 4), "slowest_case": self.slowest[1]}


FIGURES = Figures()
CASE_SECONDS = 10.0
# The suite's short run draws the same cases every time (a red CI names a reproducible case); the long run
# explores new ones.
DERANDOMIZE = False


def bounded(target: str, case: str, fn: Callable[[], str]) -> None:
    """Runs one case under the time bound and records its outcome."""
    def alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"case ran over {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    start = time.perf_counter()
    try:
        outcome = fn()
    except BaseException:
        # Hypothesis shrinks after this, but the first failing input is the one worth seeing.
        print(f"failing {target} case: {case!r}", file=sys.stderr)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    FIGURES.record(target, outcome, time.perf_counter() - start, case)


# ---- models ----

def _seeds() -> list[str]:
    return [p.read_text() for p in sorted((ROOT / "models").glob("*.dlm"))] + INLINE


@st.composite
def mutated_model(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_seeds()))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        span = draw(st.integers(1, 12))
        if kind == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) * draw(st.integers(1, 3)) + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + span:]
        elif kind == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + span:]
        else:
            text = text[:at] + text[at:at + span] * draw(st.integers(2, 50)) + text[at:]
    return text


@st.composite
def generated_model(draw: st.DrawFn) -> str:
    dim = st.one_of(st.integers(0, 6), st.sampled_from(["N", "T", "65536", "4294967296"]))
    shape = draw(st.lists(dim, min_size=0, max_size=4))
    lines = [f"input x: {draw(st.sampled_from(['f32', 'f64', 'i32']))}[{', '.join(map(str, shape))}]"]
    names = ["x"]
    arg = st.one_of(st.integers(-2, 8), st.floats(-3, 3, allow_nan=False), st.sampled_from(
        ["[2, -1]", "[1, 0]", "true", '"same"', '"f32"', "[3, 3]", "none", "x"]))
    for i in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(OPS))
        src = draw(st.sampled_from(names))
        args = [src] + [str(a) for a in draw(st.lists(arg, max_size=3))]
        if draw(st.booleans()):
            args.append(f"{draw(st.sampled_from(['axis', 'units', 'padding', 'stride', 'shape', 'dim']))}="
                        f"{draw(arg)}")
        lines.append(f"h{i} = {op}({', '.join(args)})")
        names.append(f"h{i}")
    lines.append(f"output {names[-1]}")
    return "\n".join(lines) + "\n"


def check_model(text: str) -> str:
    try:
        program = dlc.compile(source=text)
    except dlc.CompileError as e:
        if e.loc is None:
            raise AssertionError(f"CompileError without a location: {e}") from None
        return "located CompileError"
    specs = program.inputs.values()
    if all(all(isinstance(d, int) for d in s.shape) for s in specs) and \
            all(np.prod(s.shape, dtype=np.int64) <= 1_000_000 and max(s.shape, default=0) <= 1_000_000
                for s in specs):  # an empty [2^32, 0, 2^32] input is more than NumPy itself can describe
        arrays = {n: np.zeros(s.shape, dtype={"f32": np.float32, "f64": np.float64, "i32": np.int32,
                                              "i64": np.int64, "bool": np.bool_}[s.dtype])
                  for n, s in program.inputs.items()}
        try:
            program(**arrays)
        except (dlc.DlcError, ValueError, IndexError) as e:
            return f"compiled; run refused ({type(e).__name__})"
        return "compiled and ran"
    return "compiled"


def fuzz_models(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(st.one_of(mutated_model(), generated_model()))
    def run(text: str) -> None:
        bounded("models", text, lambda: check_model(text))

    run()


# ---- artifacts and checkpoints ----

def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def _write(path: Path, tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
    from safetensors.numpy import save_file
    save_file(tensors, str(path), metadata=meta)


json_value = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
                                    st.floats(allow_nan=False), st.text(max_size=8)),
                          lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                  st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                          max_leaves=8)


@st.composite
def damage(draw: st.DrawFn, keys: list[str]) -> tuple[str, Any]:
    """A damage recipe: ("flip", byte, bit), ("truncate", length) or ("edit", what, ...) to re-sign."""
    kind = draw(st.sampled_from(["flip", "truncate", "edit", "edit", "tensor"]))
    if kind == "flip":
        return ("flip", draw(st.integers(0, 10 ** 6)), draw(st.integers(0, 7)))
    if kind == "truncate":
        return ("truncate", draw(st.integers(0, 10 ** 6)))
    if kind == "edit":
        key = draw(st.sampled_from(keys))
        value = draw(st.one_of(json_value.map(json.dumps), st.text(max_size=12)))
        return ("edit", key, value)
    change = draw(st.sampled_from(["shape", "dtype", "drop", "add", "rename"]))
    return ("tensor", change, draw(st.integers(0, 50)), draw(st.sampled_from(["float32", "float64", "int32",
                                                                                "int8", "uint8"])))


def apply_damage(path: Path, original: bytes, recipe: tuple[Any, ...], resign: Callable[..., None]) -> None:
    if recipe[0] == "flip":
        data = bytearray(original)
        data[recipe[1] % len(data)] ^= 1 << recipe[2]
        path.write_bytes(bytes(data))
        return
    if recipe[0] == "truncate":
        path.write_bytes(original[:recipe[1] % len(original)])
        return
    path.write_bytes(original)
    tensors, meta = _read(path)
    if recipe[0] == "edit":
        meta[recipe[1]] = recipe[2]
    else:
        _, change, k, dtype = recipe
        name = sorted(tensors)[k % len(tensors)]
        arr = tensors[name]
        if change == "shape":
            # A longer flat tensor, or the same values flattened: never a same-shape value edit, which a
            # re-signed file may make and no loader can tell from a real parameter.
            tensors[name] = np.zeros((arr.size + 1 + k % 3,), arr.dtype) if k % 2 else arr.reshape(-1)
        elif change == "dtype":
            tensors[name] = arr.astype(dtype)
        elif change == "drop":
            del tensors[name]
        elif change == "add":
            tensors[f"{name}.x"] = np.zeros(k % 5, dtype)
        else:
            tensors[name + "_"] = tensors.pop(name)
    resign(tensors, meta)
    _write(path, tensors, meta)


def fuzz_artifacts(examples: int, folder: Path) -> None:
    program = dlc.compile(source=INLINE[0], seed=3)
    good = folder / "good.dlc"
    save_artifact(program, good, {"N": 4})
    original = good.read_bytes()
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((4, 3)).astype(np.float32), "k": rng.integers(0, 3, (4, 3)).astype(np.int32)}
    expected = load_artifact(good)(**batch)
    keys = ["format", "version", "inputs", "outputs", "persistent", "memory", "dims", "dtype", "seed", "files",
            "source_dir", "source_name", "plan"]

    def resign(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
        meta["checksum"] = _checksum(meta, tensors)

    def check(recipe: tuple[Any, ...]) -> str:
        path = folder / "case.dlc"
        apply_damage(path, original, recipe, resign)
        try:
            loaded = load_artifact(path)
        except dlc.CheckpointError:
            return f"{recipe[0]}: CheckpointError"
        got = loaded(**batch)
        for name, value in expected.items():
            if not np.array_equal(got[name], value):
                raise AssertionError(f"output {name} differs after {recipe}")
        return f"{recipe[0]}: loaded, same outputs"

    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(damage(keys))
    def run(recipe: tuple[Any, ...]) -> None:
        bounded("artifacts", repr(recipe), lambda: check(recipe))

    run()


def fuzz_checkpoints(examples: int, folder: Path) -> None:
    source = INLINE[0] + "input t: f32[N, 4]\ntrain {\n  loss = mse(y, t)\n}\n"
    program = dlc.compile(source=source, seed=3)
    rng = np.random.default_rng(0)
    batch = {"x": rng.standard_normal((4, 3)).astype(np.float32), "k": rng.integers(0, 3, (4, 3)).astype(np.int32),
             "t": rng.standard_normal((4, 4)).astype(np.float32)}
    program.train_step(**batch)
    good = folder / "good.ckpt"
    program.save_checkpoint(str(good))
    original = good.read_bytes()
    keys = ["format", "version", "step", "epoch", "seed", "sha256", "optimizer"]

    def resign(tensors: dict[str, np.ndarray], meta: dict[str, str]) -> None:
        meta["sha256"] = _digest(tensors)

    def check(recipe: tuple[Any, ...]) -> str:
        path = folder / "case.ckpt"
        apply_damage(path, original, recipe, resign)
        fresh = dlc.compile(source=source, seed=9)
        try:
            fresh.load_checkpoint(str(path))
        except dlc.CheckpointError:
            return f"{recipe[0]}: CheckpointError"
        for name, value in program.params.items():
            if not np.array_equal(fresh.params[name], value):
                raise AssertionError(f"parameter {name} differs after {recipe}")
        fresh.train_step(**batch)  # the loaded optimizer state must fit the training plan
        return f"{recipe[0]}: loaded, same parameters"

    @settings(max_examples=examples, deadline=None, database=None, derandomize=DERANDOMIZE,
              suppress_health_check=list(HealthCheck))
    @given(damage(keys))
    def run(recipe: tuple[Any, ...]) -> None:
        bounded("checkpoints", repr(recipe), lambda: check(recipe))

    run()


def main(argv: list[str] | None = None) -> int:
    global CASE_SECONDS, DERANDOMIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["models", "artifacts", "checkpoints", "onnx", "all"], default="all")
    parser.add_argument("--examples", type=int, default=500, help="hypothesis examples per target")
    parser.add_argument("--case-seconds", type=float, default=10.0, help="time bound of one case")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--derandomize", action="store_true", help="the same cases on every run")
    parser.add_argument("--max-gib", type=float, default=6.0, help="address-space cap of this process")
    args = parser.parse_args(argv)
    cap = int(args.max_gib * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    CASE_SECONDS = args.case_seconds
    DERANDOMIZE = args.derandomize
    start = time.perf_counter()
    status = 0
    cpu_figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.target in ("models", "all"):
                fuzz_models(args.examples)
            if args.target in ("artifacts", "all"):
                fuzz_artifacts(args.examples, Path(tmp))
            if args.target in ("checkpoints", "all"):
                fuzz_checkpoints(args.examples, Path(tmp))
            if args.target in ("onnx", "all"):
                import fuzz_onnx
                try:
                    fuzz_onnx.fuzz_onnx(args.examples, Path(tmp), DERANDOMIZE, bounded)
                finally:
                    cpu_figures = {"onnx_slowest_cpu_seconds": round(fuzz_onnx.SLOWEST[0], 4),
                                   "onnx_slowest_cpu_case": str(fuzz_onnx.SLOWEST[1])[:160]}
        except Exception as e:  # hypothesis re-raises the shrunk failing case
            print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            status = 1
    figures = {**FIGURES.as_dict(), **cpu_figures, "seconds": round(time.perf_counter() - start, 1), "failed": bool(status)}
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
