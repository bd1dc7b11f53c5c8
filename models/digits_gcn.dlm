# Semi-supervised node classification on a k-nearest-neighbour graph of the digits: every image is a node,
# only 10 per class are labelled, and two graph convolutions spread what they teach along the edges.
#   python examples/digits_gcn.py       (dlc.data.digits_graph builds the graph; docs/graphs.md)
from "graph_lib.dlm" import gcn

input x: f32[N, 64]          # node features: the pixels of every image
input src: i32[E]            # edges src[e] -> dst[e], self-loops included
input dst: i32[E]
input labelled: i32[L]       # the nodes whose label training reads
input y: i32[L]              # their labels

h = gcn(dropout(x, 0.5), src, dst, N, 64, name="gc1") |> relu
output logits = gcn(dropout(h, 0.5), src, dst, N, 10, name="gc2")

train {
    known = gather(logits, labelled)
    loss = cross_entropy(known, y)
    metrics = [accuracy(known, y)]
    optimizer = adam(lr=0.01, weight_decay=5e-4)
    epochs = 200
}
