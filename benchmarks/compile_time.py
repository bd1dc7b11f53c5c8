"""Compile time of every bundled model (models/*.dlm): dlc.compile, the inference plan and, for a model with a
train block, the training step's plan, each for one binding of the symbolic dimensions (N=8, T=16, M=8, E=32, L=8).

    python benchmarks/compile_time.py                    # this checkout's dlc
    python benchmarks/compile_time.py --tree OTHER    # another checkout's Python sources (this _core)

Prints one JSON object: model -> best-of-`--repeat` seconds of CPU time of this process (on a shared host,
time spent waiting for a core does not count). To compare two versions, run both alternately on the same host
and compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "models"
DIMS = {"N": 8, "T": 16, "M": 8, "E": 32, "L": 8}


def use_tree(tree: Path) -> None:
    """Imports dlc from `tree` (a checkout) with this environment's compiled _core."""
    import importlib.util

    spec = importlib.util.find_spec("dlc._core")
    assert spec is not None and spec.origin is not None
    staging = Path(tempfile.mkdtemp())
    shutil.copytree(tree / "python" / "dlc", staging / "dlc")
    shutil.copytree(tree / "grammar", staging / "dlc" / "grammar")
    shutil.copy(spec.origin, staging / "dlc")
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    for name in [m for m in sys.modules if m == "dlc" or m.startswith("dlc.")]:
        del sys.modules[name]
    sys.path.insert(0, str(staging))


def compile_once(path: Path) -> float:
    import dlc

    start = time.process_time()
    program = dlc.compile(path)
    dims = {k: v for k, v in DIMS.items() if k in {str(d) for s in program.inputs.values() for d in s.shape}}
    program.compile_plan(dims)
    if program.model.has_train_block:
        program.trainer.training_plan("step", {**program.model.dims, **dims})
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, help="a checkout to import dlc from")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.tree is not None:
        use_tree(args.tree)
    import dlc

    dlc.set_num_threads(1)
    compile_once(MODELS / "mlp.dlm")  # the parser's tables are built on first use
    times = {}
    for path in sorted(MODELS.glob("*.dlm")):
        try:
            times[path.stem] = min(compile_once(path) for _ in range(args.repeat))
        except (dlc.DlcError, ValueError) as e:  # a library of blocks, or a model the other tree cannot compile
            print(f"{path.stem}: {type(e).__name__}", file=sys.stderr)
    print(json.dumps(times))


if __name__ == "__main__":
    main()
