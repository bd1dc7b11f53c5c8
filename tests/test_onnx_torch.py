"""ONNX import of what PyTorch and Hugging Face export: the committed fixtures (tests/onnx_fixtures, written by
make_fixtures.py from models.py with torch 2.13, TorchScript and dynamo exporters, opset 17) imported, run at
two batch sizes (and two sequence lengths where that axis is dynamic) and compared with ONNX Runtime. With
torch installed, a few patterns are also exported afresh."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from dlc.onnx import OnnxImportError, from_onnx
from dlc.onnx.importer import import_model

FIXTURES = Path(__file__).parent / "onnx_fixtures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.onnx"))


def feeds(session, n: int, t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    out = {}
    for i in session.get_inputs():
        shape = [n if d == "N" else t if d in ("T", "S") else d for d in i.shape]
        if i.type == "tensor(float)":
            out[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif i.type == "tensor(bool)":
            out[i.name] = np.zeros(shape, bool)
            out[i.name][-1, -2:] = True  # padding at the end of the last sequence
        elif i.name == "mask":  # an attention mask: padding at the end of the last sequence
            out[i.name] = np.ones(shape, np.int64)
            out[i.name][-1, -2:] = 0
        else:
            out[i.name] = rng.integers(0, 50, shape).astype(np.int64)
    return out


def reference_session(path: Path):
    """ONNX Runtime on the file. The dynamo exporter writes opset 18 and converts down to 17, but leaves
    Split's opset-18 `num_outputs` attribute, which ONNX Runtime rejects (dlc reads it): the reference runs
    the same graph with opset 17's `split` sizes instead."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    model = onnx.load(str(path))
    splits = [n for n in model.graph.node if n.op_type == "Split" and any(a.name == "num_outputs"
                                                                            for a in n.attribute)]
    if not splits:
        return ort.InferenceSession(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    dims = {vi.name: vi.type.tensor_type.shape.dim for vi in [*inferred.graph.value_info, *inferred.graph.input]}
    for i, node in enumerate(splits):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        n = next(a.i for a in node.attribute if a.name == "num_outputs")
        size = dims[node.input[0]][axis].dim_value
        sizes = [-(-size // n)] * (n - 1) + [size - (n - 1) * -(-size // n)]
        model.graph.initializer.append(numpy_helper.from_array(np.array(sizes, np.int64), f"split_sizes_{i}"))
        node.input.append(f"split_sizes_{i}")
        kept = [a for a in node.attribute if a.name != "num_outputs"]
        del node.attribute[:]
        node.attribute.extend(kept)
    return ort.InferenceSession(model.SerializeToString())


def max_rel_error(path: Path, dims: dict[str, int] | None = None) -> float:
    converted = import_model(path, dims)
    program = from_onnx(path, dims=dims)
    session = reference_session(path)
    dynamic_t = any("T" in i.shape for i in session.get_inputs()) and not (dims and "T" in dims)
    rng = np.random.default_rng(0)
    errors = []
    for n, t in ((1, 7), (3, 5)) if dynamic_t else ((1, 7), (3, 7)):
        x = feeds(session, n, t, rng)
        expected = session.run(None, x)
        got = program(**{converted.input_names[k]: v for k, v in x.items()})
        for out, ref in zip(session.get_outputs(), expected):
            value = got[converted.output_names[out.name]]
            assert value.shape == ref.shape, out.name
            errors.append(float(np.max(np.abs(value - ref)) / max(float(np.max(np.abs(ref))), 1e-12)))
    return max(errors)


@pytest.mark.parametrize("name", CASES)
def test_exported_model_matches_onnxruntime(name: str) -> None:
    assert max_rel_error(FIXTURES / f"{name}.onnx") <= 1e-4


def text_of(name: str, dims: dict[str, int] | None = None) -> str:
    return import_model(FIXTURES / f"{name}.onnx", dims).text


def test_shape_arithmetic_folds_over_a_symbolic_batch() -> None:
    """`B, d = x.shape; x.reshape(B, 2, d // 2)`: Shape -> Gather -> Div -> Concat folds, N stays symbolic."""
    text = text_of("reshape_div")
    assert "input x: f32[N, 32]" in text and ", [N, 2, 16])" in text, text
    assert "input x: f32[N, 32]" in text_of("dynamo_reshape_div")  # dynamo writes [-1, 2, 16] itself


def test_class_token_expanded_to_the_batch() -> None:
    text = text_of("cls_token")
    assert "broadcast_to(" in text and "[N, 1, 8]" in text, text


def test_zero_initial_state_is_a_constant_not_a_parameter() -> None:
    """Regression: a GRU without an initial state; the exporter's zero state [1, N, 16] is `full`, with the
    batch symbolic or bound, and never a (trainable) parameter."""
    for dims in (None, {"N": 2}):
        converted = import_model(FIXTURES / "gru_no_state.onnx", dims)
        assert all(k.startswith("gru.") for k in converted.params), sorted(converted.params)
        assert "full([1, " in converted.text


def test_recurrent_layers_keep_module_names() -> None:
    names = set(import_model(FIXTURES / "lstm_stack.onnx").params)
    assert {"lstm.l0.ih.weight", "lstm.l0_reverse.hh.weight", "lstm_2.l0.bias"} <= names, sorted(names)


def test_dlc_recurrent_layers_round_trip_with_their_names(tmp_path: Path) -> None:
    """Regression: dlc exports a bidirectional layer as one ONNX node per direction; the reverse one ran
    unrolled under names like y_29_W0. The pair imports as one bidirectional layer with its parameter names."""
    import dlc
    source = ("input x: f32[N, 6, 3]\n"
              "enc = lstm(x, 5, bidirectional=true)\n"
              "dec = gru(enc, 4, bidirectional=true)\n"
              "out = rnn(dec, 3, activation=\"relu\")\n"
              "output y = out\n")
    program = dlc.compile(source=source)
    program.to_onnx(str(tmp_path / "m.onnx"))
    back = from_onnx(str(tmp_path / "m.onnx"))
    assert set(back.params) == set(program.params)
    x = np.random.default_rng(3).standard_normal((4, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(back(x=x)["y"], program(x=x)["y"], rtol=1e-5, atol=1e-6)


def test_position_ids_become_a_slice_of_the_table() -> None:
    """arange(T) position ids looked up in an embedding table: the table's first T rows, T symbolic."""
    text = text_of("embed_positions")
    assert "input ids: i64[N, T]" in text and ", 0, 0, T)" in text, text


def test_hugging_face_models_import_with_module_names() -> None:
    converted = import_model(FIXTURES / "hf_bert.onnx")
    assert "input ids: i64[N, T]" in converted.text
    assert "model.encoder.layer.1.attention.self.query.weight" in converted.params
    assert 'layer_norm(' in converted.text and "erf(" in converted.text


def test_causal_mask_over_a_symbolic_length() -> None:
    """Regression: GPT-2's causal mask is a Trilu over [T, T] (TorchScript) or ids compared along two axes
    (transformers' mask functions, with an attention mask): with T symbolic, each was refused for want of a
    static shape. The first is causal=true again; the second dlc's `triangle`, built when the plan runs."""
    gpt2 = text_of("hf_gpt2")
    assert "input ids: i64[N, T]" in gpt2 and gpt2.count("causal=true") == 2, gpt2
    assert "triangle(" not in gpt2 and "where(" not in gpt2  # the mask's own statements are gone
    masked = text_of("hf_gpt2_mask")
    assert "triangle([1, 1, T, T], k=0, upper=false" in masked and masked.count("masked_attention(") == 2, masked


def test_unsupported_nodes_are_all_listed_with_opset_and_reason() -> None:
    """The shape-arithmetic refusals keep the importer's contract: every node at once, op, opset, reason."""
    from onnx import TensorProto, helper
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Add", ["n", "one"], ["n1"], name="grow"),
             helper.make_node("Unsqueeze", ["n1", "axes"], ["n1v"]),
             helper.make_node("ConstantOfShape", ["n1v"], ["z"], name="zeros"),
             helper.make_node("Hardmax", ["x"], ["y"], name="hm")]
    inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
             helper.make_tensor("one", TensorProto.INT64, [], [1]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [0])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    with pytest.raises(OnnxImportError) as e:
        import_model(model)
    msg = str(e.value)
    assert "cannot import 2 node(s)" in msg, msg
    assert "node 'grow' (Add, opset 17): the sum N + 1 of a symbolic dimension" in msg, msg
    assert "node 'hm' (Hardmax, opset 17)" in msg


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize("dynamo", [False, True])
def test_fresh_torch_export_imports(tmp_path: Path, dynamo: bool) -> None:
    """With torch installed, the shape-arithmetic and recurrent patterns exported afresh (this torch version)."""
    sys.path.insert(0, str(FIXTURES))
    try:
        import models
    finally:
        sys.path.remove(str(FIXTURES))
    for name in ("reshape_div",) if dynamo else ("reshape_div", "gru_no_state"):  # dynamo export is slow
        path = tmp_path / f"{name}.onnx"
        models.export(name, str(path), dynamo=dynamo)
        assert max_rel_error(path) <= 1e-4


def test_decomposed_attention_becomes_dlc_attention() -> None:
    """MatMul -> scale -> Add mask -> Softmax -> MatMul is dlc's attention: a key padding mask (Where between
    0 and -inf) is masked_attention with `mask == 0`, a constant lower-triangular one causal=true, and
    Hugging Face's Where(IsNaN(p), 0, p) guard is absorbed."""
    mha = text_of("mha_batch_first")
    assert mha.count("masked_attention(") == 1 and "softmax(" not in mha, mha
    decoder = text_of("decoder")
    assert "causal=true" in decoder and decoder.count("attention(") == 2, decoder
    gpt2 = text_of("hf_gpt2")
    assert gpt2.count("causal=true") == 2 and "softmax(" not in gpt2
    assert "**" not in gpt2  # the tanh GELU's x ** 3 is x * x * x
    distil = text_of("hf_distilbert")
    assert distil.count("attention(") == 2 and "softmax(" not in distil and "!=" not in distil


def test_hugging_face_attention_mask_gather_is_the_mask_reshaped() -> None:
    """Regression: transformers builds the [N, 1, T, T] mask by gathering the flattened [N, T] mask at
    batch * T + position (Range, Mul by T, Add, Gather): that index is followed at import time and the
    gather is the mask itself, reshaped, with N and T symbolic."""
    text = text_of("hf_bert_mask")
    assert "input mask: i64[N, T]" in text and "[N, 1, 1, T, 1])" in text, text
    # The mask is computed after the first q @ kT in the walk: converted early, so attention still matches.
    assert text.count("masked_attention(") == 2 and "softmax(" not in text, text


@pytest.mark.parametrize("name", ["hf_bert_mask", "hf_gpt2_mask", "dynamo_hf_bert_mask", "dynamo_hf_gpt2_mask"])
def test_queries_with_every_key_masked_match_onnxruntime(name: str) -> None:
    """Regression: left padding under GPT-2's causal mask (and an all-padding BERT row) leaves queries with
    no key to attend; ONNX gives NaN there, which Hugging Face's Where(IsNaN) guard turns into 0, while
    masked_attention averages the values. The absorbed guard now zeroes those rows. (The dynamo exports mask
    with the lowest f32 instead of -inf: there the softmax averages too, and the guard never fires.)"""
    path = FIXTURES / f"{name}.onnx"
    converted = import_model(path)
    assert "masked_attention(" in converted.text
    program = from_onnx(path)
    ids = np.random.default_rng(5).integers(0, 100, (3, 7))
    mask = np.ones((3, 7), np.int64)
    mask[1, :2] = 0  # left padding
    mask[2, :] = 0  # nothing to attend to
    expected = reference_session(path).run(None, {"ids": ids, "mask": mask})[0]
    got = program(ids=ids, mask=mask)["hidden"]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(expected))))


def test_dynamo_exports_of_transformers() -> None:
    """Regression: the dynamo exporter's transformers did not import (nn.TransformerEncoder and ViT failed to
    export with the fixtures' dict of dynamic shapes or the encoder's mask check; GPT-2's causal mask and
    BERT's mask functions compare, Max and GatherND ids; the masks use the lowest f32, not -inf). Each now
    imports with its attention recognized (the fixtures are compared with ONNX Runtime above)."""
    assert text_of("dynamo_hf_gpt2").count("causal=true") == 2
    assert text_of("dynamo_encoder_batch_first").count("causal=true") == 2
    decoder = text_of("dynamo_decoder")
    assert "causal=true" in decoder and decoder.count("attention(") == 2, decoder
    bert = text_of("dynamo_hf_bert_mask")
    assert "input mask: i64[N, T]" in bert and "[N, 1, 1, T])" in bert, bert  # GatherND: the mask, reshaped
    assert bert.count("masked_attention(") == 2 and "softmax(" not in bert, bert
    assert "input pixels: f32[N, 3, 32, 32]" in text_of("dynamo_hf_vit")


def test_mobilenet_runs_its_separable_blocks_in_the_blocked_layout() -> None:
    """The depthwise-separable fixture (models.py mobilenet) matches ONNX Runtime (above) with its depthwise and
    pointwise convolutions on the blocked kernels, wherever the CPU has them (passes/layout.py)."""
    from dlc import _core
    program = from_onnx(FIXTURES / "mobilenet.onnx")
    kernels = [s.kernel for s in program.model.inference_plan({"N": 2}, False).steps]
    assert kernels.count("conv2d_nchwc") >= (6 if _core.nchwc_block_size() else 0)
