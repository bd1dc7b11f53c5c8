"""The runtimes dlc is measured against, built for one reference workload, and the timer that compares them.

Each factory returns a zero-argument callable that runs one inference or one training step (forward, loss,
backward, Adam lr 1e-3) on fixed random data, or None where the runtime is not installed. `alternating_ms`
times several such callables in one process in alternating blocks with a pause between blocks: on a shared,
noisy machine only ratios measured side by side mean anything, and the pause lets a runtime's spinning threads
go quiet before the next one is timed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from torch_models import Workload, loss_of

Call = Callable[[], Any]


def alternating_ms(calls: dict[str, Call], block: int = 20, rounds: int = 3, warmup: int = 3,
                   pause: float = 0.2) -> dict[str, float]:
    """Median milliseconds per call of each entry, over `rounds` rounds of one `block` of calls each."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(pause)
            for _ in range(block):
                t0 = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def dlc_calls(w: Workload, models: Path, batch: int | None = None) -> dict[str, Call]:
    """dlc's compiled inference and training step on the workload's .dlm, fed like the peers."""
    import dlc
    from dlc.bench import label_graph, random_batch
    n = batch or w.batch
    program = dlc.compile(str(models / f"{w.name}.dlm"), dims={"N": n})
    data = random_batch(program, label_graph(program, {"N": n}), np.random.default_rng(0), {"N": n})
    inputs = {k: v for k, v in data.items() if k in program.inputs}
    return {"dlc_infer": lambda: program(**inputs), "dlc_train": lambda: program.train_step(**data)}


def _torch_data(w: Workload, batch: int) -> tuple[Any, Any]:
    import torch
    torch.manual_seed(0)
    return torch.randn(batch, *w.x_shape), torch.randint(0, w.classes or 2, (batch,))


def torch_calls(w: Workload, threads: int, batch: int | None = None, compiled: bool = False) -> dict[str, Call]:
    """PyTorch eager (or torch.compile'd) inference under no_grad and training step with Adam."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(threads)
    x, y = _torch_data(w, batch or w.batch)
    infer_model, train_model = w.make().eval(), w.make().train()
    opt = torch.optim.Adam(train_model.parameters(), lr=1e-3)
    fwd_infer = torch.compile(infer_model) if compiled else infer_model
    fwd_train = torch.compile(train_model) if compiled else train_model

    def infer() -> Any:
        with torch.no_grad():
            return fwd_infer(x)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_of(w, fwd_train(x), y).backward()
        opt.step()
    tag = "torch_compile" if compiled else "torch"
    return {f"{tag}_infer": infer, f"{tag}_train": step}


def onnx_file(w: Workload, batch: int, directory: str) -> str:
    """The workload exported from the PyTorch module at opset 17 (input x, output out)."""
    import torch
    x, _ = _torch_data(w, batch)
    path = str(Path(directory) / f"{w.name}_{batch}.onnx")
    torch.onnx.export(w.make().eval(), (x,), path, opset_version=17, input_names=["x"], output_names=["out"],
                      dynamo=False)
    return path


def onnx_calls(w: Workload, threads: int, batch: int | None = None) -> dict[str, Call]:
    """ONNX Runtime (CPU provider) and OpenVINO (f32, latency hint) inference on the same exported file."""
    try:
        import torch  # noqa: F401  (the export needs it)
    except ImportError:
        return {}
    n = batch or w.batch
    out: dict[str, Call] = {}
    x, _ = _torch_data(w, n)
    feed = x.numpy()
    with tempfile.TemporaryDirectory() as tmp:
        path = onnx_file(w, n, tmp)
        try:
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            out["ort_infer"] = lambda: session.run(None, {"x": feed})
        except ImportError:
            pass
        try:
            import openvino as ov
            core = ov.Core()
            model = core.read_model(path)
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                         "INFERENCE_NUM_THREADS": threads,
                                                         "PERFORMANCE_HINT": "LATENCY"})
            request = compiled.create_infer_request()
            out["openvino_infer"] = lambda: request.infer({"x": feed})
        except ImportError:
            pass
    return out
