"""Data-parallel training figures (docs/distributed.md, issue 16).

    python benchmarks/distributed.py paper          # bytes per step and predicted scaling (no MPI needed)
    python benchmarks/distributed.py equivalence    # R = 2 against one process, 50 steps, f32 and f64
    python benchmarks/distributed.py scaling        # throughput: 1 rank x 1 thread, 2 x 1, 1 x 2

`paper` reads the measured step times and gradient-region sizes of benchmarks/results/workloads.json
(run_workloads.py). `equivalence` and `scaling` start `mpirun` themselves; run them on a quiet machine (the
numbers of a shared one say little) and they print markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

RANKS = (2, 8, 64, 512)
NETWORKS = {"10 Gb/s": (10e9 / 8, 25e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, latency per message


def ring_seconds(nbytes: int, ranks: int, bandwidth: float, latency: float) -> float:
    """Ring allreduce: reduce-scatter then allgather, 2(R-1) messages of nbytes/R each per rank."""
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency


def paper() -> None:
    rows = json.loads((HERE / "results" / "workloads.json").read_text())
    for title, with_latency in (("bandwidth term only: 2(R-1)/R x gradient bytes / bandwidth", False),
                                ("plus 2(R-1) message latencies (25 us at 10 Gb/s, 5 us at 100 Gb/s)", True)):
        print(f"\n{title}\n")
        print("| workload | batch per rank | gradient region | step ms | "
              + " | ".join(f"R={r} {net}" for net in NETWORKS for r in RANKS) + " |")
        print("|---|---|---|---|" + "---|" * (len(RANKS) * len(NETWORKS)))
        for row in rows:
            nbytes = int(row["gradient_bytes"])
            step = row["train_fused_ms"] / 1e3
            cells = []
            for bandwidth, latency in NETWORKS.values():
                for r in RANKS:
                    comm = ring_seconds(nbytes, r, bandwidth, latency if with_latency else 0.0)
                    cells.append(f"{comm * 1e3:.2f} ms, {step / (step + comm):.0%}")
            print(f"| {row['workload']} | {row['dims'].get('N')} | {nbytes / 2**20:.2f} MiB | {step * 1e3:.2f} | "
                  + " | ".join(cells) + " |")
    print("\ncells: allreduce time per step, and efficiency = compute / (compute + allreduce) with the allreduce "
          "after the backward pass (no overlap), each rank at the reference batch (weak scaling).")


def mpirun(ranks: int, threads: int, arguments: list[str], timeout: float = 1800) -> str:
    found = shutil.which("mpirun") or shutil.which("mpirun", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("no mpirun: pip install \".[distributed]\"")
    command = [found, "--oversubscribe", "--bind-to", "none", "-n", str(ranks)]
    if os.geteuid() == 0:
        command.insert(1, "--allow-run-as-root")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    result = subprocess.run([*command, sys.executable, *arguments], capture_output=True, text=True, env=env,
                            timeout=timeout)
    if result.returncode:
        raise SystemExit(result.stdout + result.stderr)
    return result.stdout


# name: (model, dtype, samples, global batch, epochs) -- 10 steps per epoch, 50 steps
EQUIVALENCE = {f"{m}_{d}{sync}": (f"digits_{m}", d, 640, 64, 5)
               for m, sync in (("mlp", ""), ("cnn", ""), ("cnn", "_sync")) for d in ("f32", "f64")}


def equivalence_job(out: str) -> None:
    import dlc.distributed as dd
    import distributed_job as job
    job.CASES.update(EQUIVALENCE)
    world = dd.World()
    for case in EQUIVALENCE:
        program, data, batch, epochs = job.compile_case(case)
        dd.fit(program, data, epochs=epochs, batch_size=batch, verbose=False, world=world,
               sync_batch_norm=case.endswith("_sync"))
        if world.is_main:
            np.savez(Path(out) / f"{case}.npz", **program.params)


def equivalence() -> None:
    import distributed_job as job
    job.CASES.update(EQUIVALENCE)
    with tempfile.TemporaryDirectory() as out:
        mpirun(2, 1, [__file__, "_equivalence_job", out])
        print("| case | steps | reference | max over tensors of max abs diff / max abs | max elementwise relative |")
        print("|---|---|---|---|---|")
        for case in EQUIVALENCE:
            program, data, batch, epochs = job.compile_case(case)
            if "cnn" in case and not case.endswith("_sync"):
                job.fit_per_shard(program, data, batch, epochs, shards=2)
                reference = "one process, per-shard batch-norm statistics"
            else:
                program.fit(data, epochs=epochs, batch_size=batch, verbose=False)
                reference = "one process, batch 64" + (" (2 ranks: synchronized batch norm)" if "sync" in case else "")
            with np.load(Path(out) / f"{case}.npz") as got:
                names = [p.name for p in program.graph.params if p.kind == "param"]
                want = {k: np.asarray(program.params[k]) for k in names}
                tensor = max(float(np.abs(got[k] - want[k]).max() / np.abs(want[k]).max()) for k in names)
                element = max(float((np.abs(got[k] - want[k]) / np.maximum(np.abs(want[k]), 1e-30)).max())
                              for k in names)
            print(f"| {case} | {program.step_count} | {reference} | {tensor:.2e} | {element:.2e} |")


SCALING = {"digits_cnn": 64, "resnet8": 32}  # model: global batch


def throughput_job(model: str, batch: int, steps: int, distributed: bool) -> None:
    import dlc
    import dlc.distributed as dd
    program = dlc.compile(ROOT / "models" / f"{model}.dlm", seed=0)
    shape = [batch * steps, *(int(d) for d in program.inputs["x"].shape[1:])]
    rng = np.random.default_rng(0)
    data = {"x": rng.standard_normal(shape, dtype=np.float32), "y": rng.integers(0, 10, shape[0]).astype(np.int32)}
    warm = {k: v[:2 * batch] for k, v in data.items()}
    if distributed:
        world = dd.World()
        dd.fit(program, warm, epochs=1, batch_size=batch, verbose=False, world=world)  # compiles the plans
        world.barrier()
        start = time.perf_counter()
        dd.fit(program, data, epochs=1, batch_size=batch, verbose=False, world=world, shuffle=False)
        main = world.is_main
    else:
        program.fit(warm, epochs=1, batch_size=batch, verbose=False)
        start = time.perf_counter()
        program.fit(data, epochs=1, batch_size=batch, verbose=False, shuffle=False)
        main = True
    if main:
        print(json.dumps({"samples_per_s": batch * steps / (time.perf_counter() - start)}))


def scaling(steps: int) -> None:
    print(f"| model | global batch | 1 rank x 1 thread | 2 ranks x 1 thread | 1 rank x 2 threads | 2x1 / 1x1 | "
          f"2x1 / 1x2 |  (samples/s, {steps} steps, load average before: {os.getloadavg()[0]:.1f})")
    print("|---|---|---|---|---|---|---|")
    for model, batch in SCALING.items():
        rate = {}
        for ranks, threads in ((1, 1), (2, 1), (1, 2)):
            args = [__file__, "_throughput_job", model, str(batch), str(steps), str(int(ranks > 1))]
            out = mpirun(ranks, threads, args)
            rate[(ranks, threads)] = json.loads(out.strip().splitlines()[-1])["samples_per_s"]
        one, two, threads2 = rate[(1, 1)], rate[(2, 1)], rate[(1, 2)]
        print(f"| {model} | {batch} | {one:.0f} | {two:.0f} | {threads2:.0f} | {two / one:.2f} | {two / threads2:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["paper", "equivalence", "scaling", "_equivalence_job", "_throughput_job"])
    parser.add_argument("rest", nargs="*")
    parser.add_argument("--steps", type=int, default=40, help="steps timed per scaling run")
    args = parser.parse_args()
    if args.what == "paper":
        paper()
    elif args.what == "equivalence":
        equivalence()
    elif args.what == "scaling":
        scaling(args.steps)
    elif args.what == "_equivalence_job":
        equivalence_job(args.rest[0])
    else:
        model, batch, steps, distributed = args.rest
        throughput_job(model, int(batch), int(steps), distributed == "1")


if __name__ == "__main__":
    main()
