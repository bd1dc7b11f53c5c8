# Reference workload "gru": a sequence classifier. One GRU layer (hidden 128) reads x [N, 32, 64]
# (batch-first: batch, time, features); its state at the last time step feeds dense 10.
# Cross-entropy, Adam lr 1e-3. Batch is the symbolic N.
input x: f32[N, 32, 64]
input y: i32[N]

h = gru(x, 128, return_sequences=false)
output logits = dense(h, 10)

train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=1e-3)
}
