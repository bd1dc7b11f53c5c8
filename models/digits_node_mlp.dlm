# The baseline for models/digits_gcn.dlm: the same layers without the graph, trained on the same labelled
# nodes (python examples/digits_gcn.py compares them; docs/graphs.md).
input x: f32[N, 64]
input labelled: i32[L]
input y: i32[L]

h = dense(dropout(x, 0.5), 64, name="fc1") |> relu
output logits = dense(dropout(h, 0.5), 10, name="fc2")

train {
    known = gather(logits, labelled)
    loss = cross_entropy(known, y)
    metrics = [accuracy(known, y)]
    optimizer = adam(lr=0.01, weight_decay=5e-4)
    epochs = 200
}
