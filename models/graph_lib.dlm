# Graph network layers as blocks, for graphs given as edge lists (docs/graphs.md):
#   from "graph_lib.dlm" import gcn, sage
# h: node features [N, F]; src, dst: integer inputs [E], edge e carries a message from node src[e] to dst[e];
# nodes: the node count (the dimension N of the caller's input), the rows of each aggregation.

# Kipf & Welling's graph convolution, H' = D^-1/2 A D^-1/2 H W + b, where A holds the edges (give each node
# a self-loop for their A + I) and D is its in-degree: every message is scaled by 1/sqrt(deg(src) deg(dst)).
block gcn(h, src, dst, nodes, units: int) {
    deg = scatter_add(ones(like=dst, dtype="f32"), dst, nodes)
    coef = rsqrt(gather(deg, src) * gather(deg, dst))
    msg = gather(h, src) * unsqueeze(coef, 1)
    return dense(scatter_add(msg, dst, nodes), units, name="lin")
}

# GraphSAGE (Hamilton et al.) with the mean aggregator: W1 h_v + W2 mean of h_u over the edges u -> v.
block sage(h, src, dst, nodes, units: int) {
    deg = scatter_add(ones(like=dst, dtype="f32"), dst, nodes)
    neighbours = scatter_add(gather(h, src), dst, nodes) / unsqueeze(maximum(deg, ones(like=deg)), 1)
    return dense(h, units, name="self") + dense(neighbours, units, bias=false, name="neigh")
}
