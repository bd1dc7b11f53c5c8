# Reference workload "lenet" (benchmarks/workloads.md), NCHW:
# conv 6 k5 pad 2 -> relu -> max-pool 2 -> conv 16 k5 -> relu -> max-pool 2 -> flatten (400)
# -> dense 120 -> relu -> dense 84 -> relu -> dense 10; cross-entropy; Adam lr 1e-3.
input x: f32[N, 1, 28, 28]
input y: i32[N]

c1 = conv2d(x, 6, kernel_size=5, padding=2) |> relu |> max_pool2d(2)
c2 = conv2d(c1, 16, kernel_size=5) |> relu |> max_pool2d(2)
f3 = dense(flatten(c2), 120) |> relu
f4 = dense(f3, 84) |> relu
output logits = dense(f4, 10)

train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=1e-3)
}
