# Blocks, repeat and sharing: a residual MLP. Each call of `residual` owns its parameters
# (stack.0.fc1.weight, stack.1.fc1.weight, ...) unless share= names another call.
input x: f32[N, 32]

block residual(x, width: int, rate: float = 0.0) {
    h = dense(x, width, name="fc1") |> relu |> dropout(rate)
    y = dense(h, width, name="fc2")
    return relu(x + y)
}

h = dense(x, 64) |> relu
stack = h |> repeat 3 residual(64)
tied = residual(stack, 64, share="stack.2")
output out = dense(tied, 8)
