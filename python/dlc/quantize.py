"""What reduced precision costs, measured (`dlc quantize`, docs/precision.md): per layer, the signal to
quantization noise ratio of the layer's output against f32; the outputs' max and mean error; with labels, the
task metric in f32 and in the reduced precision; and `max_drop`, which returns the layers that hurt most to f32
until the metric is within that much of f32's (NNCF's accuracy control).

Generic over the precision: it switches the model's `PrecisionPolicy` (dlc/precision.py) and compares runs, so a
precision plugs in by having kernels. A layer's output is the output of its product (before bias and
activation), probed by making it an extra output of the inference graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from .model import CompiledModel, only_used_inputs
from .passes import PassContext, run_pipeline
from .passes.eval_mode import strip_training_only
from .passes.precision import reduced_nodes

METRICS = ("accuracy", "nll")
PROBE = "__layer__:"


@dataclass
class LayerRow:
    layer: str
    kernel_op: str
    sqnr_db: float  # this layer's output with every layer reduced, against f32
    alone_db: float  # this layer's output with only this layer reduced (its own noise)
    output_db: float  # the model's first output with only this layer reduced (how much it hurts)
    max_error: float
    mean_error: float
    kept_f32: bool = False


@dataclass
class PrecisionReport:
    precision: str
    samples: int
    layers: list[LayerRow]
    outputs: dict[str, tuple[float, float, float]]  # name -> (sqnr dB, max |error|, mean |error|)
    metric: str | None = None
    f32_metric: float | None = None
    reduced_metric: float | None = None  # with every layer reduced
    final_metric: float | None = None  # with the layers of kept_f32 back in f32
    max_drop: float | None = None
    kept_f32: list[str] = field(default_factory=list)

    def drop(self, value: float | None) -> float | None:
        """How much worse than f32 a metric value is (accuracy in points falls, nll in nats rises)."""
        if value is None or self.f32_metric is None:
            return None
        return self.f32_metric - value if self.metric == "accuracy" else value - self.f32_metric


def sqnr_db(reference: np.ndarray, value: np.ndarray) -> float:
    """10 log10(signal power / noise power); inf when they are equal."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - value.astype(np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    return math.inf if noise == 0 else (-math.inf if signal == 0 else 10 * math.log10(signal / noise))


def task_metric(metric: str, logits: np.ndarray, labels: np.ndarray) -> float:
    """accuracy in percent, or the mean negative log-likelihood in nats (per label: per character for a
    language model) of integer labels under logits shaped labels.shape + (classes,)."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"labels of shape {list(labels.shape)} do not fit outputs of shape {list(logits.shape)}")
    if metric == "accuracy":
        return float(np.mean(np.argmax(logits, axis=-1) == labels) * 100)
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-np.mean(np.take_along_axis(log_p, labels[..., None].astype(np.int64), axis=-1)))


class _Probe:
    """Runs the model under a policy with every reduced-precision layer's product as an extra output."""

    def __init__(self, model: CompiledModel, inputs: Mapping[str, np.ndarray], batch_size: int):
        self.model = model
        self.inputs = {n: np.ascontiguousarray(inputs[n]) for n in model.used_inputs()}
        self.samples = len(next(iter(self.inputs.values())))
        self.batch_size = batch_size
        self.layers: list[tuple[str, str]] = []  # (probe name, op), one per reduced-precision node
        self.graph = self._graph(batch_size)
        self.outputs = [n for n, _ in self.graph.outputs if not n.startswith(PROBE)]

    def _graph(self, rows: int) -> Any:
        """The inference graph for batches of `rows` samples, with the probes as extra outputs. A layer called
        more than once (shared weights) gets a probe per call: name, name#2, ..."""
        binding = self.model.bind_dims({n: a[:rows] for n, a in self.inputs.items()})
        graph = strip_training_only(self.model.inference_graph(binding), PassContext())
        probes: list[tuple[str, int]] = []
        seen: dict[str, int] = {}
        layers = []
        for node, layer in reduced_nodes(graph):
            seen[layer] = seen.get(layer, 0) + 1
            name = layer if seen[layer] == 1 else f"{layer}#{seen[layer]}"
            layers.append((name, node.op))
            probes.append((PROBE + name, node.outputs[0]))
        self.layers = layers
        return replace(graph, outputs=tuple(graph.outputs) + tuple(probes))

    def run(self, precision: str, keep_f32: set[str]) -> dict[str, np.ndarray]:
        """All outputs and probes over every sample, batch by batch (the last batch may be smaller)."""
        base = self.model.pass_context(False)
        saved = self.model.precision_policy
        self.model.set_precision(precision, {n.split("#")[0] for n in keep_f32})
        try:
            ctx = replace(base, precision=self.model.precision_policy)
            plans: dict[int, Any] = {}
            parts: dict[str, list[np.ndarray]] = {}
            for start in range(0, self.samples, self.batch_size):
                batch = {n: a[start:start + self.batch_size] for n, a in self.inputs.items()}
                n = len(next(iter(batch.values())))
                if n not in plans:
                    graph = self.graph if n == self.batch_size else self._graph(n)
                    plans[n] = self.model.lower(only_used_inputs(run_pipeline(graph, ctx)), pack=True)
                for k, v in self.model.run_plan(plans[n], batch).items():
                    parts.setdefault(k, []).append(v)
            return {k: np.concatenate(v) if v[0].ndim else v[0] for k, v in parts.items()}
        finally:
            self.model.set_precision(saved.precision, saved.keep_f32, dict(saved.layer_data))


def precision_report(model: CompiledModel, precision: str, inputs: Mapping[str, np.ndarray],
                     labels: np.ndarray | None = None, *, metric: str = "accuracy", max_drop: float | None = None,
                     batch_size: int = 256) -> PrecisionReport:
    """Measures `precision` against f32 on `inputs` (arrays by input name, samples first). With `labels` (integer
    classes of the first output) the task metric too; with `max_drop`, returns layers to f32, the most harmful
    first (by the first output's SQNR with that layer alone reduced), until the metric drops by at most
    max_drop (accuracy points, or nats for metric="nll"). The model is left in `precision` with those layers
    kept in f32; without max_drop it is left as it was."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if max_drop is not None and labels is None:
        raise ValueError("--max-drop needs labelled data: the drop is measured on the task metric")
    probe = _Probe(model, inputs, batch_size)
    names = [name for name, _ in probe.layers]
    if not names:
        raise ValueError(f"the model has no layer that runs in {precision} (matrix products and convolutions with "
                         f"weights)")
    ref = probe.run("f32", set())
    full = probe.run(precision, set())
    first = probe.outputs[0]
    rows = []
    for name, op in probe.layers:
        alone = probe.run(precision, set(names) - {name})
        key = PROBE + name
        err = np.abs(full[key].astype(np.float64) - ref[key])
        rows.append(LayerRow(name, op, sqnr_db(ref[key], full[key]), sqnr_db(ref[key], alone[key]),
                             sqnr_db(ref[first], alone[first]), float(err.max()), float(err.mean())))
    outputs = {}
    for name in probe.outputs:
        err = np.abs(full[name].astype(np.float64) - ref[name])
        outputs[name] = (sqnr_db(ref[name], full[name]), float(err.max()), float(err.mean()))
    report = PrecisionReport(precision, probe.samples, rows, outputs, max_drop=max_drop)
    if labels is None:
        return report
    report.metric = metric
    report.f32_metric = task_metric(metric, ref[first], labels)
    report.reduced_metric = report.final_metric = task_metric(metric, full[first], labels)
    if max_drop is None:
        return report
    kept: list[str] = []
    for row in sorted(rows, key=lambda r: r.output_db):
        if (report.drop(report.final_metric) or 0) <= max_drop:
            break
        kept.append(row.layer)
        row.kept_f32 = True
        report.final_metric = task_metric(metric, probe.run(precision, set(kept))[first], labels)
    report.kept_f32 = kept
    model.set_precision(precision, {k.split("#")[0] for k in kept})
    return report


def format_report(report: PrecisionReport) -> str:
    """The report as the table `dlc quantize` prints."""
    def db(v: float) -> str:
        return "inf" if math.isinf(v) else f"{v:.1f}"
    lines = [f"{report.precision} against f32 on {report.samples} samples",
             f"{'layer':<24} {'op':<12} {'SQNR dB':>8} {'alone':>8} {'output':>8} {'max err':>10} {'mean err':>10}"]
    for r in report.layers:
        mark = "  (kept f32)" if r.kept_f32 else ""
        lines.append(f"{r.layer:<24} {r.kernel_op:<12} {db(r.sqnr_db):>8} {db(r.alone_db):>8} {db(r.output_db):>8} "
                     f"{r.max_error:>10.3g} {r.mean_error:>10.3g}{mark}")
    for name, (s, mx, mean) in report.outputs.items():
        lines.append(f"output {name}: SQNR {db(s)} dB, max error {mx:.3g}, mean error {mean:.3g}")
    if report.metric is not None:
        unit = " points" if report.metric == "accuracy" else " nats"
        lines.append(f"{report.metric}: f32 {report.f32_metric:.4f}, {report.precision} {report.reduced_metric:.4f} "
                     f"(drop {report.drop(report.reduced_metric):+.4f}{unit})")
    if report.max_drop is not None:
        kept = ", ".join(report.kept_f32) or "none"
        lines.append(f"--max-drop {report.max_drop:g}: kept in f32: {kept}; {report.metric} "
                     f"{report.final_metric:.4f} (drop {report.drop(report.final_metric):+.4f})")
    return "\n".join(lines)
