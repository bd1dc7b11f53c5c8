# Character-level language model over bytes (vocabulary 256), trained on the Python standard library's
# source (`dlc train models/char_lstm.dlm --data pysource`; python/dlc/text.py). x holds byte ids and y the
# next byte at every position; T is free (bound from the data, 128 by default). Sample with dlc.text.sample.
input x: i32[N, T]
input y: i32[N, T]

e = embedding(x, 256, 64)
h = lstm(e, 256)
output logits = dense(h, 256)

train {
    loss = cross_entropy(logits, y)
    optimizer = adam(lr=3e-3)
    schedule = cosine(steps=660, warmup=30, min_lr=3e-4)     # one epoch of 2.7 MB at batch 32, T 128
    clip_norm = 1.0
    batch_size = 32
    epochs = 1
}
