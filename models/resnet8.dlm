# Reference workload "resnet8" (benchmarks/workloads.md), NCHW, 32x32 RGB:
# conv3x3 16 (no bias) -> batch norm -> relu -> block(16->16, s1) -> block(16->32, s2) -> block(32->64, s2)
# -> global average pool -> dense 10; cross-entropy; Adam lr 1e-3.
input x: f32[N, 3, 32, 32]
input y: i32[N]

# conv3x3(stride s) -> BN -> relu -> conv3x3 -> BN, plus a shortcut: the identity, or a strided 1x1 conv and
# BN when the shape changes (decided at compile time); sum -> relu.
block residual(x, filters: int, stride: int = 1) {
    h = conv2d(x, filters, kernel_size=3, stride=stride, padding=1, bias=false, name="conv1")
        |> batch_norm(name="bn1") |> relu
    h2 = conv2d(h, filters, kernel_size=3, padding=1, bias=false, name="conv2") |> batch_norm(name="bn2")
    shortcut = conv2d(x, filters, kernel_size=1, stride=stride, bias=false, name="proj")
               |> batch_norm(name="proj_bn") if stride != 1 else x
    return relu(h2 + shortcut)
}

stem = conv2d(x, 16, kernel_size=3, padding=1, bias=false) |> batch_norm |> relu
b1 = residual(stem, 16)
b2 = residual(b1, 32, stride=2)
b3 = residual(b2, 64, stride=2)
output logits = b3 |> global_avg_pool |> dense(10)

train {
    loss = cross_entropy(logits, y)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=1e-3)
}
