# Reference workload "transformer": a sequence classifier with one post-norm encoder layer
# (4-head self-attention, d_model 128, feed-forward 128 -> 512 -> 128 with ReLU, no dropout),
# mean over the sequence, then dense 10. Cross-entropy, Adam lr 1e-3. Batch is the symbolic N.
from "transformer_lib.dlm" import encoder_layer

input x: f32[N, 64, 128]
input y: i32[N]

h = encoder_layer(x, 128, 4, 512)
pooled = mean(h, axis=1)
output logits = dense(pooled, 10)

train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=1e-3)
}
