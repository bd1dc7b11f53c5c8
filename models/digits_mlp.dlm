# An MLP for scikit-learn's 8x8 digits (64 pixels in [0, 1], 10 classes), with its training recipe.
#   dlc train models/digits_mlp.dlm --data digits
input x: f32[N, 64]
input y: i32[N]

h1 = dense(x, 128, init="he_uniform") |> relu
h2 = dense(dropout(h1, 0.1), 64, init="he_uniform") |> relu
output logits = dense(h2, 10)

train {
    loss = cross_entropy(logits, y, label_smoothing=0.05)
    metrics = [accuracy(logits, y)]
    optimizer = adam(lr=3e-3)
    schedule = cosine(steps=1100, warmup=50)
    l2 = 1e-5
    epochs = 50
    batch_size = 64
}
