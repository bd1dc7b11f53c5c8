# A small CNN for scikit-learn's 8x8 digits, with its training recipe and seeded augmentation.
#   dlc train models/digits_cnn.dlm --data digits
input x: f32[N, 1, 8, 8]
input y: i32[N]

c1 = conv2d(x, 32, kernel_size=3, padding=1, bias=false) |> batch_norm |> relu
c2 = conv2d(c1, 32, kernel_size=3, padding=1, bias=false) |> batch_norm |> relu |> max_pool2d(2)
c3 = conv2d(c2, 64, kernel_size=3, padding=1, bias=false) |> batch_norm |> relu
f = dense(dropout(flatten(c3), 0.3), 128) |> relu
output logits = dense(dropout(f, 0.3), 10)

train {
    loss = cross_entropy(logits, y, label_smoothing=0.05)
    metrics = [accuracy(logits, y)]
    optimizer = adamw(lr=2e-3, weight_decay=1e-4)
    schedule = cosine(steps=1150, warmup=50)
    augment = augment(crop=1, rotate=8, scale=0.08)
    epochs = 50
    batch_size = 64
}
