# Reference workload "gelu_mlp": elementwise-heavy on purpose, the case operator fusion exists for.
# dense 1024 -> gelu (exact, erf) -> layer norm (1024) -> gelu -> dense 256; loss: mean of the output squared.
input x: f32[N, 256]

h = dense(x, 1024) |> gelu |> layer_norm |> gelu
output y = dense(h, 256)

train {
    loss = mean(y * y)
    optimizer = adam(lr=1e-3)
}
