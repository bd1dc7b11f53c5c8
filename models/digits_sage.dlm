# Semi-supervised node classification on a k-nearest-neighbour graph of the digits: every image is a node,
# only 10 per class are labelled; two GraphSAGE layers (mean aggregator) instead of models/digits_gcn.dlm's GCN.
#   python examples/digits_gcn.py       (dlc.data.digits_graph builds the graph; docs/graphs.md)
from "graph_lib.dlm" import sage

input x: f32[N, 64]          # node features: the pixels of every image
input src: i32[E]            # edges src[e] -> dst[e], self-loops included
input dst: i32[E]
input labelled: i32[L]       # the nodes whose label training reads
input y: i32[L]              # their labels

h = sage(dropout(x, 0.5), src, dst, N, 64, name="sg1") |> relu
output logits = sage(dropout(h, 0.5), src, dst, N, 10, name="sg2")

train {
    known = gather(logits, labelled)
    loss = cross_entropy(known, y)
    metrics = [accuracy(known, y)]
    optimizer = adam(lr=0.01, weight_decay=5e-4)
    epochs = 200
}
