# Transformer layers (Vaswani et al., 2017) as reusable blocks, post-norm as in the paper:
#   from "transformer_lib.dlm" import encoder_layer, decoder_layer
# Inputs are batch-first [batch, time, d_model]. Each call owns its parameters (attn.q.weight, ff1.weight, ...).
# No dropout: wrap the sub-layer outputs in dropout(...) in a copy of these blocks to add it.

# Self-attention + residual -> layer norm -> feed-forward (ReLU) + residual -> layer norm.
# causal=true gives the decoder-only (language model) layer: position i sees positions <= i.
block encoder_layer(x, d_model: int, heads: int, d_ff: int, causal: bool = false) {
    a = multi_head_attention(x, d_model, heads, causal=causal, name="attn")
    h = layer_norm(x + a, name="norm1")
    f = dense(h, d_ff, activation="relu", name="ff1")
    g = dense(f, d_model, name="ff2")
    return layer_norm(h + g, name="norm2")
}

# Causal self-attention, then attention over the encoder output `memory`, then the feed-forward network.
block decoder_layer(x, memory, d_model: int, heads: int, d_ff: int) {
    a = multi_head_attention(x, d_model, heads, causal=true, name="self_attn")
    h1 = layer_norm(x + a, name="norm1")
    c = cross_attention(h1, memory, d_model, heads, name="cross_attn")
    h2 = layer_norm(h1 + c, name="norm2")
    f = dense(h2, d_ff, activation="relu", name="ff1")
    g = dense(f, d_model, name="ff2")
    return layer_norm(h2 + g, name="norm3")
}
