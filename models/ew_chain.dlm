# Reference workload "ew_chain" (benchmarks/workloads.md): memory-bound on purpose. Each [2048, 4096]
# f32 tensor is 32 MiB, larger than the last-level cache, so every pass over it unfused is a trip to memory:
# the case where fusion pays by physics. Batch is the symbolic N (2048 in the benchmarks).
input x: f32[N, 4096]

param scale: f32[4096] = 1.0
param shift: f32[4096] = 0.0

h = gelu(x * scale + shift) + x
n = layer_norm(h)
output y = tanh(n) * 0.5 + 0.5

train {
    loss = mean(y * y)
    optimizer = adam(lr=1e-3)
}
