"""Semi-supervised node classification on the digits graph: every one of the 1,797 digits is
a node of a k-nearest-neighbour graph, 10 nodes per class are labelled, and models/digits_gcn.dlm (two graph
convolutions), models/digits_sage.dlm (two GraphSAGE layers) and models/digits_node_mlp.dlm (the same layers
without the graph) train on those 100 labels; each is scored on the 1,697 other nodes. Repeated for several
draws of the labelled nodes.

    python examples/digits_gcn.py [--draws 5] [--steps 200] [--k 8] [--metric tangent] [--out docs/images]

Needs the `data` and `plot` extras (scikit-learn, matplotlib). Prints one JSON object and writes
digits_gcn_accuracy.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import dlc
from dlc.data import GRAPH_METRICS, NodeData, digits_graph

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"GCN": "digits_gcn.dlm", "GraphSAGE": "digits_sage.dlm", "MLP": "digits_node_mlp.dlm"}


def accuracy(model: str, graph: NodeData, steps: int, seed: int = 0) -> float:
    """Full-batch training (the whole graph each step, the loss on the labelled nodes), then the accuracy on
    the unlabelled nodes in evaluation mode (no dropout)."""
    program = dlc.compile(str(ROOT / "models" / model), seed=seed)
    feeds = {"x": graph.x, "src": graph.src, "dst": graph.dst, "labelled": graph.labelled,
             "y": graph.labels[graph.labelled]}
    feeds = {k: v for k, v in feeds.items() if k in program.inputs}
    for _ in range(steps):
        program.train_step(**feeds)
    program.eval()
    logits = program(**{k: v for k, v in feeds.items() if k in ("x", "src", "dst")})["logits"]
    rest = graph.unlabelled
    return float((logits.argmax(1)[rest] == graph.labels[rest]).mean())


def plot(results: dict[str, list[float]], title: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3))
    names = list(results)
    means = [100 * np.mean(results[n]) for n in names]
    ax.bar(names, means, color=["#3465a4", "#73a946", "#999999"])
    for i, n in enumerate(names):
        ax.scatter([i] * len(results[n]), [100 * a for a in results[n]], color="black", s=8, zorder=3)
        ax.text(i, 100 * max(results[n]) + 0.6, f"{means[i]:.1f}%", ha="center", fontsize=9)
    ax.set_ylim(80, 100)
    ax.set_ylabel("accuracy on the unlabelled nodes (%)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=5, help="draws of the labelled nodes (seeds 0, 1, ...)")
    parser.add_argument("--steps", type=int, default=200, help="full-batch training steps per model")
    parser.add_argument("--k", type=int, default=8, help="neighbours per node")
    parser.add_argument("--metric", choices=GRAPH_METRICS, default="tangent", help="distance between images")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name in MODELS}
    start = time.perf_counter()
    for draw in range(args.draws):
        graph = digits_graph(k=args.k, per_class=10, seed=draw, metric=args.metric)
        for name, model in MODELS.items():
            results[name].append(accuracy(model, graph, args.steps))
    title = f"digits {args.k}-NN graph ({args.metric} distance), 10 labels per class"
    plot(results, title, args.out / "digits_gcn_accuracy.png")
    summary = {name: {"mean": round(float(np.mean(a)), 4), "min": round(min(a), 4), "max": round(max(a), 4),
                      "draws": [round(x, 4) for x in a]} for name, a in results.items()}
    summary["edges"] = int(len(graph.src))
    between = graph.src != graph.dst  # self-loops aside
    same = graph.labels[graph.src[between]] == graph.labels[graph.dst[between]]
    summary["same_class_edges"] = round(float(same.mean()), 4)
    summary["gcn_minus_mlp_points"] = round(100 * (np.mean(results["GCN"]) - np.mean(results["MLP"])), 1)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
