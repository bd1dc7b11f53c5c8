"""Graph networks (issue 26, item 8): gather / scatter_add by index with their gradients (the registry walk in
test_ops.py checks both ops against NumPy in f32 and f64 and against finite differences), their index checks,
the GCN and GraphSAGE blocks of models/graph_lib.dlm against float64 finite differences, and semi-supervised
node classification on the digits graph, where the GCN beats an MLP trained on the same labelled nodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc

MODELS = Path(__file__).resolve().parent.parent / "models"

EDGES = """
input x: f32[N, 3]
input src: i32[E]
input dst: i32[E]
output y = scatter_add(gather(x, src), dst, N)
"""


def test_message_passing_sums_source_rows_into_destinations() -> None:
    program = dlc.compile(source=EDGES)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    src, dst = np.array([0, 1, 2, 3, 0, 0]), np.array([1, 1, 0, 3, 3, 3])
    expected = np.zeros((4, 3), np.float32)
    np.add.at(expected, dst, x[src])
    np.testing.assert_array_equal(program(x=x, src=src, dst=dst)["y"], expected)  # row 2: no edge, zeros


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("which,bad", [("src", 4), ("src", -1), ("dst", 4), ("dst", -3), ("src", 2 ** 31 - 1)])
def test_an_index_outside_the_rows_is_an_index_error(which: str, bad: int, dtype: type) -> None:
    program = dlc.compile(source=EDGES)
    x = np.ones((4, 3), np.float32)
    edges = {"src": np.array([0, 1, 2, 3], dtype), "dst": np.array([1, 1, 0, 3], dtype)}
    edges[which] = edges[which].copy()
    edges[which][2] = bad
    with pytest.raises(IndexError, match=f"{'gather' if which == 'src' else 'scatter_add'}.*index {bad} "):
        program(x=x, **edges)


def test_the_gradient_of_an_out_of_range_index_is_an_index_error_and_changes_nothing() -> None:
    program = dlc.compile(source=EDGES.replace("output y =", "output y = 2.0 * dense(") .replace("N)\n", "N), 2)\n")
                          + "train {\n    loss = sum(y * y)\n}\n")
    before = {k: v.copy() for k, v in program.params.items()}
    with pytest.raises(IndexError):
        program.train_step(x=np.ones((4, 3), np.float32), src=np.array([0, 1, 9]), dst=np.array([1, 1, 0]))
    for name, value in program.params.items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("dtype", ["f32", "f64"])
def test_scatter_add_checks_its_operands_when_compiled(dtype: str) -> None:
    with pytest.raises(dlc.CompileError, match="must start with the index's shape"):
        dlc.compile(source=f"input m: {dtype}[5, 2]\ninput i: i32[4]\noutput y = scatter_add(m, i, 3)\n")
    with pytest.raises(dlc.CompileError, match="integers"):
        dlc.compile(source=f"input m: {dtype}[4, 2]\ninput i: {dtype}[4]\noutput y = scatter_add(m, i, 3)\n")
    with pytest.raises(dlc.CompileError, match="positive dimension"):
        dlc.compile(source=f"input m: {dtype}[4, 2]\ninput i: i32[4]\noutput y = scatter_add(m, i, 0)\n")


LAYER = """
from "{lib}" import {layer}
input x: f64[N, 3]
input src: i32[E]
input dst: i32[E]
input w: f64[N, 2]
output y = {layer}(x, src, dst, N, 2, name="g") |> tanh
train {{
    loss = sum(y * w)
    input_grads = [x]
}}
"""


@pytest.mark.parametrize("layer", ["gcn", "sage"])
def test_graph_layers_match_finite_differences(layer: str) -> None:
    program = dlc.compile(source=LAYER.format(lib=MODELS / "graph_lib.dlm", layer=layer), dtype="f64", seed=1)
    rng = np.random.default_rng(0)
    n = 5
    src = np.array([0, 1, 2, 3, 4, 0, 1, 3, 4, 2, 0], np.int32)  # self-loops, then a few edges (two into 2)
    dst = np.array([0, 1, 2, 3, 4, 1, 2, 2, 0, 4, 4], np.int32)
    feeds = {"x": rng.standard_normal((n, 3)), "src": src, "dst": dst, "w": rng.standard_normal((n, 2))}
    _, grads = program.loss_and_grads(**feeds)
    params = {k: v.copy() for k, v in program.params.items()}

    def loss(x: np.ndarray) -> float:
        return program.loss_and_grads(**{**feeds, "x": x})[0]

    h = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            for sign in (1, -1):
                moved = value.copy()
                moved[i] += sign * h
                program.set_params({name: moved}, strict=False)
                numeric[i] += sign * loss(feeds["x"]) / (2 * h)
            program.set_params({name: value}, strict=False)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)
    numeric = np.zeros_like(feeds["x"])
    for i in np.ndindex(numeric.shape):
        for sign in (1, -1):
            moved = feeds["x"].copy()
            moved[i] += sign * h
            numeric[i] += sign * loss(moved) / (2 * h)
    np.testing.assert_allclose(grads["x"], numeric, rtol=1e-6, atol=1e-8)


def _accuracy(path: Path, feeds: dict[str, np.ndarray], graph: object, steps: int) -> float:
    program = dlc.compile(str(path), seed=0)
    for _ in range(steps):
        program.train_step(**feeds)
    program.eval()
    logits = program(**{k: v for k, v in feeds.items() if k in program.inputs})["logits"]
    rest = graph.unlabelled  # type: ignore[attr-defined]
    return float((logits.argmax(1)[rest] == graph.labels[rest]).mean())  # type: ignore[attr-defined]


def test_gcn_beats_an_mlp_on_the_same_labelled_digits() -> None:
    pytest.importorskip("sklearn")
    from dlc.data import digits_graph
    graph = digits_graph(per_class=10, seed=0)  # 8 nearest by tangent distance
    assert len(graph.labelled) == 100 and np.bincount(graph.labels[graph.labelled]).tolist() == [10] * 10
    assert np.all(graph.src[graph.src == graph.dst] >= 0) and (graph.src == graph.dst).sum() == len(graph.x)
    assert (graph.labels[graph.src] == graph.labels[graph.dst]).mean() > 0.97
    known = {"x": graph.x, "labelled": graph.labelled, "y": graph.labels[graph.labelled]}
    gcn = _accuracy(MODELS / "digits_gcn.dlm", {**known, "src": graph.src, "dst": graph.dst}, graph, 150)
    mlp = _accuracy(MODELS / "digits_node_mlp.dlm", known, graph, 150)
    assert gcn > 0.96 and gcn > mlp + 0.06, (gcn, mlp)


def test_digits_graph_options() -> None:
    pytest.importorskip("sklearn")
    from dlc.data import digits_graph
    pixels = digits_graph(k=10, metric="euclidean")
    assert len(pixels.src) == 26475
    with pytest.raises(ValueError, match="metric must be one of tangent, euclidean, not 'cosine'"):
        digits_graph(metric="cosine")
    with pytest.raises(ValueError, match="k must be"):
        digits_graph(k=0)


def _blob(dy: float, dx: float) -> np.ndarray:
    yy, xx = np.mgrid[:8, :8]
    return np.exp(-((yy - 3.5 - dy) ** 2 / 3.0 + (xx - 3.5 - dx) ** 2 / 1.5))


def test_tangent_distance_forgives_small_transformations() -> None:
    from dlc.image_distance import blur, squared_euclidean, tangent_distance
    theta = 0.15  # a rotated copy
    yy, xx = np.mgrid[:8, :8] - 3.5
    ry, rx = np.cos(theta) * yy - np.sin(theta) * xx, np.sin(theta) * yy + np.cos(theta) * xx
    rotated = np.exp(-(ry ** 2 / 3.0 + rx ** 2 / 1.5))
    two = np.exp(-((yy ** 2) + (xx - 2.5) ** 2)) + np.exp(-((yy ** 2) + (xx + 2.5) ** 2))  # two dots
    images = np.stack([_blob(0, 0), _blob(0.4, -0.3), rotated, two])
    tangent = tangent_distance(images, sigma=0.6)
    np.testing.assert_allclose(tangent, tangent.T)
    np.testing.assert_allclose(np.diag(tangent), 0, atol=1e-12)
    plain = squared_euclidean(blur(images, 0.6).reshape(4, 64))
    # shifted and rotated copies are near; a different shape (two dots) stays far
    assert tangent[0, 1] < 0.1 * plain[0, 1] and tangent[0, 2] < 0.1 * plain[0, 2], (tangent, plain)
    assert tangent[0, 3] > 0.2 * plain[0, 3], (tangent, plain)


@pytest.mark.parametrize("model", ["digits_gcn", "digits_sage"])
def test_graph_models_export_to_onnx_run_in_onnxruntime_and_import_back(model: str, tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    program = dlc.compile(str(MODELS / f"{model}.dlm"), seed=0)
    program.to_onnx(tmp_path / "g.onnx")
    rng = np.random.default_rng(0)
    n = 30  # the node count stays a named dimension: any graph runs
    feeds = {"x": rng.random((n, 64), np.float32),
             "src": np.concatenate([np.arange(n), rng.integers(0, n, 60)]).astype(np.int32),
             "dst": np.concatenate([np.arange(n), rng.integers(0, n, 60)]).astype(np.int32)}
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    assert sorted(i.name for i in session.get_inputs()) == ["dst", "src", "x"]
    got = session.run(None, feeds)[0]
    np.testing.assert_allclose(got, program(**feeds)["logits"], rtol=1e-5, atol=1e-6)
    # and back: ScatterND onto zeros is scatter_add again, the Gather of computed rows gather (issue 24)
    from dlc.onnx import from_onnx
    back = from_onnx(str(tmp_path / "g.onnx"))
    np.testing.assert_allclose(back(**feeds)["logits"], got, rtol=1e-5, atol=1e-6)
    assert set(back.params) == set(program.params)


def test_training_without_the_edges_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: an input with a dimension of its own (src: i32[E]) left out of a step made plan building
    # fail on the unbound size (a TypeError deep in the scheduler), in Python and in `dlc train --data digits`.
    program = dlc.compile(str(MODELS / "digits_gcn.dlm"))
    with pytest.raises(ValueError, match=r"missing input 'src' \(i32\[E\]\)"):
        program.train_step(x=np.ones((5, 64), np.float32), labelled=np.array([0, 1]), y=np.array([3, 4]))
    pytest.importorskip("sklearn")
    from dlc import cli
    assert cli.main(["train", str(MODELS / "digits_gcn.dlm"), "--data", "digits", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "dlc: error: missing input" in err and "Traceback" not in err
