# Reference workload "mlp" (benchmarks/workloads.md): 784 -> 512 -> 256 -> 10 with ReLU,
# cross-entropy on logits, one Adam step (lr 1e-3) per training step. Batch is the symbolic N.
input x: f32[N, 784]
input y: i32[N]

h1 = dense(x, 512) |> relu
h2 = dense(h1, 256) |> relu
output logits = dense(h2, 10)

train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=1e-3)
}
