"""ONNX export: every bundled model passes onnx.checker (full shape inference), runs in ONNX Runtime with the
batch dimension still symbolic, agrees with dlc within 1e-5 relative, and comes back through the importer
with the same outputs and parameter names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.cli import main
from dlc.onnx import from_onnx
from dlc.passes import PassContext
from dlc.passes.dead_code import eliminate_dead_code

MODELS = sorted(p for p in (Path(__file__).parent.parent / "models").glob("*.dlm") if not p.stem.endswith("_lib"))
# The importer needs a static input shape for ConvTranspose; after a reshape of the symbolic batch it has none.
EXPORT_ONLY = {"digits_ae", "digits_dcgan"}
# Graph networks: their integer inputs index nodes (random labels would be out of range);
# tests/test_graph_networks.py checks their export and import with valid edges.
MODELS = [p for p in MODELS if p.stem not in ("digits_gcn", "digits_sage", "digits_node_mlp")]


def sample_inputs(program, batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for name, spec in program.inputs.items():
        shape = [batch if d == "N" else (7 if isinstance(d, str) else d) for d in spec.shape]
        out[name] = (rng.standard_normal(shape).astype(np.float32) if spec.dtype == "f32"
                     else rng.integers(0, 10, shape).astype(np.int32))
    return out


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_export_runs_in_onnxruntime_and_round_trips(path: Path, tmp_path: Path) -> None:
    import onnx  # inside the test: importing onnx registers bfloat16 with NumPy (see test_onnx_import.py)
    import onnxruntime as ort
    program = dlc.compile(path)
    target = tmp_path / f"{path.stem}.onnx"
    program.to_onnx(target)
    model = onnx.load(str(target))
    first = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_param in ("N", "M")  # the batch stays a named dimension (M: a GAN's latent batch)
    feeds = sample_inputs(program)
    session = ort.InferenceSession(str(target))
    feeds = {i.name: feeds[i.name] for i in session.get_inputs()}
    expected = program(**feeds)
    for out, got in zip(session.get_outputs(), session.run(None, feeds)):
        ref = expected[out.name]
        assert float(np.max(np.abs(got - ref))) <= 1e-5 * float(np.max(np.abs(ref)))
    if path.stem in EXPORT_ONLY:
        return
    back = from_onnx(target)
    # Inference carries the parameters its outputs read: not a DQN's target network or a GAN's
    # discriminator, which only training uses.
    inference = eliminate_dead_code(program.graph, PassContext())
    read = {v for n in inference.nodes for v in n.inputs}
    assert set(back.params) == {p.name for p in program.graph.params if p.value in read}
    again = back(**feeds)
    for name, ref in expected.items():
        np.testing.assert_allclose(again[name], ref, rtol=1e-5, atol=1e-6)


def test_cli_export_with_bound_batch(tmp_path: Path, capsys) -> None:
    import onnx
    target = tmp_path / "mlp.onnx"
    assert main(["export", "models/mlp.dlm", "-D", "N=2", "-o", str(target), "--random-init"]) == 0
    assert "wrote" in capsys.readouterr().out
    dim = onnx.load(str(target)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 2


def test_causal_attention_over_a_symbolic_length_exports(tmp_path: Path) -> None:
    """causal=true with T symbolic builds its mask when the plan runs (`triangle`): exported as Trilu of
    ConstantOfShape(the run-time shape), it runs in ONNX Runtime at any length and imports back."""
    import onnxruntime as ort
    program = dlc.compile(source="input x: f32[N, T, 4]\noutput y = attention(x, x, x, causal=true)\n"
                                 "output m = triangle([T, T], k=1, upper=true)\n")
    program.to_onnx(str(tmp_path / "c.onnx"))
    session = ort.InferenceSession(str(tmp_path / "c.onnx"))
    back = from_onnx(str(tmp_path / "c.onnx"))
    for t in (3, 6):
        x = np.random.default_rng(t).standard_normal((2, t, 4)).astype(np.float32)
        ref = program(x=x)
        for name, got in zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})):
            np.testing.assert_allclose(got, ref[name], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(back(x=x)[name], ref[name], rtol=1e-5, atol=1e-6)
