"""PyTorch models for the ONNX import tests: the patterns people export (shape arithmetic on a dynamic batch,
attention layers, recurrent layers without initial states, Hugging Face transformers from random-weight
configs). `make_fixtures.py` exports them to the small .onnx files committed next to this file, so the tests
run against ONNX Runtime without torch; with torch installed the tests export them afresh too.

Each entry: name -> (build() -> (module, example inputs), input names, dynamic axes {input: {axis: name}}).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _torch() -> Any:
    import torch
    return torch


def reshape_div() -> tuple[Any, tuple[Any, ...]]:
    """`B, d = x.shape; x.reshape(B, 2, d // 2)` on a dynamic batch (d is a fixed 32)."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(16, 8)

        def forward(self, x: Any) -> Any:
            b, d = x.shape
            return self.fc(x.reshape(b, 2, d // 2)).flatten(1)

    return M(), (torch.randn(3, 32),)


def cls_token() -> tuple[Any, tuple[Any, ...]]:
    """A ViT class token: `cls.expand(x.shape[0], -1, -1)` concatenated in front of the patches."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cls = torch.nn.Parameter(torch.randn(1, 1, 8))
            self.proj = torch.nn.Linear(6, 8)

        def forward(self, x: Any) -> Any:
            h = self.proj(x)
            return torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)

    return M(), (torch.randn(2, 5, 6),)


def gru_no_state() -> tuple[Any, tuple[Any, ...]]:
    """nn.GRU called without an initial state (the exporter writes a zero state of shape [1, N, H])."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(6, 16, batch_first=True)

        def forward(self, x: Any) -> Any:
            y, h = self.gru(x)
            return y, h

    return M(), (torch.randn(2, 5, 6),)


def lstm_stack() -> tuple[Any, tuple[Any, ...]]:
    """A 2-layer bidirectional LSTM with initial states given, time-first."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(6, 8, num_layers=2, bidirectional=True)

        def forward(self, x: Any, h0: Any, c0: Any) -> Any:
            y, (h, c) = self.lstm(x, (h0, c0))
            return y, h, c

    return M(), (torch.randn(5, 2, 6), torch.randn(4, 2, 8), torch.randn(4, 2, 8))


def rnn_bidir() -> tuple[Any, tuple[Any, ...]]:
    """A 2-layer bidirectional tanh RNN without an initial state, batch-first."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = torch.nn.RNN(4, 6, num_layers=2, bidirectional=True, batch_first=True)

        def forward(self, x: Any) -> Any:
            return self.rnn(x)[0]

    return M(), (torch.randn(3, 5, 4),)


def mha(batch_first: bool) -> Callable[[], tuple[Any, tuple[Any, ...]]]:
    def build() -> tuple[Any, tuple[Any, ...]]:
        """nn.MultiheadAttention, self-attention with a key padding mask, need_weights=False."""
        torch = _torch()

        class M(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.attn = torch.nn.MultiheadAttention(16, 4, batch_first=batch_first)

            def forward(self, x: Any, pad: Any) -> Any:
                return self.attn(x, x, x, key_padding_mask=pad, need_weights=False)[0]

        x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
        pad = torch.zeros(2, 5, dtype=torch.bool)
        pad[1, 3:] = True
        return M(), (x, pad)
    return build


def encoder_layer(batch_first: bool) -> Callable[[], tuple[Any, tuple[Any, ...]]]:
    def build() -> tuple[Any, tuple[Any, ...]]:
        """nn.TransformerEncoder of two GELU layers with a causal float mask."""
        torch = _torch()

        class M(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, activation="gelu",
                                                         batch_first=batch_first)
                self.enc = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

            def forward(self, x: Any) -> Any:
                t = x.shape[1] if batch_first else x.shape[0]
                mask = torch.nn.Transformer.generate_square_subsequent_mask(t)
                # is_causal=True spares the encoder comparing the mask with a causal one, a check on tensor
                # values that torch.export cannot trace.
                return self.enc(x, mask=mask, is_causal=True)

        x = torch.randn(2, 5, 16) if batch_first else torch.randn(5, 2, 16)
        return M(), (x,)
    return build


def decoder_layer() -> tuple[Any, tuple[Any, ...]]:
    """nn.TransformerDecoderLayer (relu, post-norm) with a causal target mask and a memory padding mask."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dec = torch.nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)

        def forward(self, tgt: Any, memory: Any) -> Any:
            mask = torch.triu(torch.full((tgt.shape[1], tgt.shape[1]), float("-inf")), diagonal=1)
            return self.dec(tgt, memory, tgt_mask=mask)

    return M(), (torch.randn(2, 4, 16), torch.randn(2, 6, 16))


def embed_positions() -> tuple[Any, tuple[Any, ...]]:
    """Token and position embeddings (position ids from arange over the sequence) and LayerNorm."""
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tok = torch.nn.Embedding(50, 16)
            self.pos = torch.nn.Embedding(32, 16)
            self.norm = torch.nn.LayerNorm(16)

        def forward(self, ids: Any) -> Any:
            positions = torch.arange(ids.shape[1]).unsqueeze(0)
            return self.norm(self.tok(ids) + self.pos(positions))

    return M(), (torch.randint(0, 50, (2, 7)),)


# ---- Hugging Face transformers, built offline from small random-weight configs ----

# The size of the Hugging Face models: the fixtures' (benchmarks/onnx_speed.py --hf exports larger ones).
HF_SIZE = {"hidden": 32, "layers": 2, "heads": 4, "ffn": 64, "seq": 7, "image": 32}


def _text_config() -> dict[str, int]:
    return dict(hidden_size=HF_SIZE["hidden"], num_hidden_layers=HF_SIZE["layers"],
                num_attention_heads=HF_SIZE["heads"], intermediate_size=HF_SIZE["ffn"], vocab_size=100,
                max_position_embeddings=max(64, HF_SIZE["seq"]))


def _hf_text(cls_name: str, config_name: str, **config: Any) -> tuple[Any, tuple[Any, ...]]:
    torch = _torch()
    import transformers
    torch.manual_seed(0)
    inner = getattr(transformers, cls_name)(getattr(transformers, config_name)(**config)).eval()

    class Wrapped(torch.nn.Module):  # keyword arguments (their positions differ between models)
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, ids: Any) -> Any:
            return self.model(input_ids=ids).last_hidden_state

    return Wrapped(), (torch.randint(0, 100, (2, HF_SIZE["seq"])),)


def hf_bert() -> tuple[Any, tuple[Any, ...]]:
    return _hf_text("BertModel", "BertConfig", **_text_config())


def _with_mask(build: Callable[[], tuple[Any, tuple[Any, ...]]]) -> tuple[Any, tuple[Any, ...]]:
    """The model called with an attention mask too: transformers builds the [N, 1, T, T] mask by gathering
    the flattened [N, T] mask at batch * T + position (its vmap-style mask functions)."""
    torch = _torch()
    model, (ids,) = build()

    class WithMask(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.model

        def forward(self, ids: Any, mask: Any) -> Any:
            return self.model(input_ids=ids, attention_mask=mask).last_hidden_state

    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    return WithMask(), (ids, mask)


def hf_bert_mask() -> tuple[Any, tuple[Any, ...]]:
    return _with_mask(hf_bert)


def hf_gpt2_mask() -> tuple[Any, tuple[Any, ...]]:
    return _with_mask(hf_gpt2)


def hf_distilbert() -> tuple[Any, tuple[Any, ...]]:
    c = _text_config()
    return _hf_text("DistilBertModel", "DistilBertConfig", dim=c["hidden_size"], n_layers=c["num_hidden_layers"],
                    n_heads=c["num_attention_heads"], hidden_dim=c["intermediate_size"], vocab_size=100,
                    max_position_embeddings=c["max_position_embeddings"])


def hf_gpt2() -> tuple[Any, tuple[Any, ...]]:
    c = _text_config()
    return _hf_text("GPT2Model", "GPT2Config", n_embd=c["hidden_size"], n_layer=c["num_hidden_layers"],
                    n_head=c["num_attention_heads"], n_inner=c["intermediate_size"], vocab_size=100,
                    n_positions=c["max_position_embeddings"])


def hf_vit() -> tuple[Any, tuple[Any, ...]]:
    torch = _torch()
    import transformers
    torch.manual_seed(0)
    c = _text_config()
    config = transformers.ViTConfig(hidden_size=c["hidden_size"], num_hidden_layers=c["num_hidden_layers"],
                                    num_attention_heads=c["num_attention_heads"],
                                    intermediate_size=c["intermediate_size"], image_size=HF_SIZE["image"],
                                    patch_size=8, num_channels=3)
    image = HF_SIZE["image"]
    return transformers.ViTModel(config, add_pooling_layer=False).eval(), (torch.randn(2, 3, image, image),)


def mobilenet() -> tuple[Any, tuple[Any, ...]]:
    """A MobileNet-style network: a strided stem, then depthwise-separable blocks (depthwise 3x3 + batch norm +
    ReLU6, pointwise 1x1 + batch norm), one with a residual, global pooling and a classifier. Batch-norm
    statistics are randomized so the folded scale and shift are not the identity."""
    torch = _torch()
    nn = torch.nn

    def separable(cin: int, cout: int, stride: int) -> Any:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                             nn.ReLU6(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    class M(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
            self.b1 = separable(16, 16, 1)
            self.b2 = separable(16, 24, 2)
            self.b3 = separable(24, 40, 2)
            self.head = nn.Linear(40, 10)

        def forward(self, x: Any) -> Any:
            h = self.stem(x)
            h = torch.relu(h + self.b1(h))
            h = self.b3(torch.relu(self.b2(h)))
            return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))

    torch.manual_seed(0)
    model = M()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model.eval(), (torch.randn(2, 3, 32, 32),)


_SEQ = {"ids": {0: "N", 1: "T"}}

# name -> (build, input names, output names, dynamic axes)
Builder = Callable[[], tuple[Any, tuple[Any, ...]]]
MODELS: dict[str, tuple[Builder, list[str], list[str], dict[str, dict[int, str]]]] = {
    "reshape_div": (reshape_div, ["x"], ["y"], {"x": {0: "N"}}),
    "cls_token": (cls_token, ["x"], ["y"], {"x": {0: "N"}}),
    "gru_no_state": (gru_no_state, ["x"], ["y", "h"], {"x": {0: "N"}}),
    "lstm_stack": (lstm_stack, ["x", "h0", "c0"], ["y", "h", "c"],
                   {"x": {1: "N"}, "h0": {1: "N"}, "c0": {1: "N"}}),
    "rnn_bidir": (rnn_bidir, ["x"], ["y"], {"x": {0: "N"}}),
    # torch's attention traces the sequence lengths as constants: only the batch is dynamic.
    "mha_batch_first": (mha(True), ["x", "pad"], ["y"], {"x": {0: "N"}, "pad": {0: "N"}}),
    "mha_time_first": (mha(False), ["x", "pad"], ["y"], {"x": {1: "N"}, "pad": {0: "N"}}),
    "encoder_batch_first": (encoder_layer(True), ["x"], ["y"], {"x": {0: "N"}}),
    "encoder_time_first": (encoder_layer(False), ["x"], ["y"], {"x": {1: "N"}}),
    "decoder": (decoder_layer, ["tgt", "memory"], ["y"], {"tgt": {0: "N"}, "memory": {0: "N"}}),
    "embed_positions": (embed_positions, ["ids"], ["y"], {"ids": {0: "N", 1: "T"}}),
    "hf_bert": (hf_bert, ["ids"], ["hidden"], _SEQ),
    "hf_bert_mask": (hf_bert_mask, ["ids", "mask"], ["hidden"], {"ids": {0: "N", 1: "T"},
                                                               "mask": {0: "N", 1: "T"}}),
    "hf_gpt2_mask": (hf_gpt2_mask, ["ids", "mask"], ["hidden"], {"ids": {0: "N", 1: "T"},
                                                               "mask": {0: "N", 1: "T"}}),
    "hf_distilbert": (hf_distilbert, ["ids"], ["hidden"], _SEQ),
    "hf_gpt2": (hf_gpt2, ["ids"], ["hidden"], _SEQ),
    "hf_vit": (hf_vit, ["pixels"], ["hidden"], {"pixels": {0: "N"}}),
    "mobilenet": (mobilenet, ["x"], ["y"], {"x": {0: "N"}}),
}


def export(name: str, path: str, dynamo: bool = False) -> list[np.ndarray]:
    """Exports model `name` at opset 17 to `path`; returns the example inputs as arrays."""
    torch = _torch()
    build, inputs, outputs, axes = MODELS[name]
    torch.manual_seed(0)  # the same weights and example inputs at every export
    model, args = build()
    model.eval()
    # The fused "fast path" of nn.TransformerEncoderLayer in eval mode has no ONNX conversion.
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad():
        if dynamo:
            dims = {d: torch.export.Dim(d, min=2, max=4096) for n in inputs for d in axes.get(n, {}).values()}
            # By position: the dict form must use forward()'s argument names (ViTModel's pixel_values).
            shapes = tuple({a: dims[d] for a, d in axes.get(n, {}).items()} for n in inputs)
            torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, opset_version=17,
                              dynamo=True, dynamic_shapes=shapes, external_data=False)
        else:
            torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, opset_version=17,
                              dynamic_axes=axes, dynamo=False)
    return [a.numpy() for a in args]
