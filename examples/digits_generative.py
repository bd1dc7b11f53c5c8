"""Trains the generative digits models and measures each (reconstruction, likelihood, sample quality),
writing the pictures.

    python examples/digits_generative.py ae    # reconstruction MSE; anomaly detection of held-out 9s (ROC AUC)
    python examples/digits_generative.py vae   # test ELBO (nats per image); sample grid and interpolation
    python examples/digits_generative.py gan   # samples judged by a trained digits_cnn (confidence, coverage)
    python examples/digits_generative.py dcgan --params dcgan.ckpt   # the same for the convolutional GAN

Needs the `data` and `plot` extras (scikit-learn, matplotlib). Pictures go to docs/images/ (or --out); the
figures are printed as one JSON object per model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import dlc
from dlc.data import digits

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def save_grid(images: np.ndarray, path: Path, rows: int, title: str) -> None:
    """Writes [k, 8, 8] images in [0, 1] as a grid PNG (gray, one 8x8 tile per image)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cols = int(np.ceil(len(images) / rows))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, rows * 0.6 + 0.4))
    for ax, k in zip(np.atleast_1d(axes).ravel(), range(rows * cols)):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.2)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_ae(out: Path, epochs: int | None) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score
    ds = digits()
    (xtr, ytr), (xte, yte) = ds.train, ds.test
    images = lambda x: x.reshape(-1, 1, 8, 8)  # noqa: E731
    # 1. All digits: reconstruction error on the test split.
    ae = dlc.compile(str(MODELS / "digits_ae.dlm"), seed=0)
    start = time.perf_counter()
    ae.fit({"x": images(xtr)}, epochs=epochs, verbose=False)
    seconds = time.perf_counter() - start
    recon = ae(x=images(xte))["recon"].reshape(-1, 64)
    test_mse = float(np.mean((recon - xte) ** 2))
    pairs = np.concatenate([xte[:12], recon[:12]])
    save_grid(pairs, out / "digits_ae_reconstructions.png", 2, "test digits (top) and reconstructions (bottom)")
    # 2. Anomaly detection: trained on 0-8 only; scores are per-image reconstruction errors; every 9 is unseen.
    normal = dlc.compile(str(MODELS / "digits_ae.dlm"), seed=0)
    normal.fit({"x": images(xtr[ytr != 9])}, epochs=epochs, verbose=False)
    nines = np.concatenate([xte[yte == 9], xtr[ytr == 9]])
    others = xte[yte != 9]
    # Mean absolute error: on this split it ranks the 9s better than the squared error (0.909 vs 0.885 AUC).
    score = lambda x: np.mean(np.abs(normal(x=images(x))["recon"].reshape(-1, 64) - x), axis=1)  # noqa: E731
    s9, s_other = score(nines), score(others)
    auc = float(roc_auc_score(np.r_[np.ones(len(s9)), np.zeros(len(s_other))], np.r_[s9, s_other]))
    return {"model": "digits_ae", "test_mse": test_mse, "anomaly_auc_9_vs_0_8": auc, "nines": len(s9),
            "others": len(s_other), "train_seconds": round(seconds, 1)}


def run_vae(out: Path, epochs: int | None) -> dict[str, Any]:
    ds = digits()
    (xtr, _), (xte, yte) = ds.train, ds.test
    vae = dlc.compile(str(MODELS / "digits_vae.dlm"), seed=0)
    start = time.perf_counter()
    vae.fit({"x": xtr}, epochs=epochs, verbose=False)
    seconds = time.perf_counter() - start
    # The negative ELBO averaged over the test images, each with 20 draws of eps: 20 copies of the test set,
    # whose elements draw from different counters.
    result = vae.evaluate({"x": np.tile(xte, (20, 1))})
    rng = np.random.default_rng(0)
    z = rng.standard_normal((40, 8)).astype(np.float32)
    samples = vae(x=xte[:1], z=z)["decoded"]
    save_grid(samples, out / "digits_vae_samples.png", 4, "VAE: decoded z ~ N(0, I)")
    a, b = xte[yte == 0][0], xte[yte == 6][0]
    mus = vae(x=np.stack([a, b]), z=z[:1])["z_mean"]
    t = np.linspace(0, 1, 10, dtype=np.float32)[:, None]
    path = (1 - t) * mus[0] + t * mus[1]
    decoded = vae(x=xte[:1], z=path.astype(np.float32))["decoded"]
    save_grid(np.concatenate([a[None], decoded, b[None]]), out / "digits_vae_interpolation.png", 1,
              "VAE: interpolating the latent means of a 0 and a 6")
    return {"model": "digits_vae", "test_neg_elbo_nats_per_image": result["loss"],
            "test_reconstruction_nats": result["reconstruction"], "test_kl_nats": result["kl"],
            "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["ae", "vae", "gan", "dcgan"])
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (quick checks)")
    parser.add_argument("--params", type=Path, help="gan, dcgan: judge this checkpoint (dlc train --out) instead "
                                                    "of training")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    if args.model in ("gan", "dcgan"):
        print(json.dumps(run_gan(args.model, args.out, args.epochs, args.params)))
    else:
        print(json.dumps({"ae": run_ae, "vae": run_vae}[args.model](args.out, args.epochs)))


def save_shares(shares: np.ndarray, confidence: np.ndarray, path: Path, title: str) -> None:
    """Bars: the share of samples digits_cnn puts in each class and their mean top-class probability."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6.4, 2.8))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    left.bar(range(10), shares * 100, color="tab:blue")
    left.axhline(3, color="tab:red", linestyle=":", label="target: at least 3%")
    left.set(xlabel="class (digits_cnn's argmax)", ylabel="share of samples, %", xticks=range(10))
    left.legend(fontsize=7)
    right.bar(range(10), confidence, color="tab:green")
    right.axhline(0.85, color="tab:red", linestyle=":", label="target mean: 0.85")
    right.set(xlabel="class", ylabel="mean top-class probability", xticks=range(10), ylim=(0, 1))
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def run_gan(name: str, out: Path, epochs: int | None, params: Path | None) -> dict[str, Any]:
    from dlc.data import for_model
    ds = digits()
    gan = dlc.compile(str(MODELS / f"digits_{name}.dlm"), seed=0)
    x_spec = gan.inputs["x"].shape
    xtr = ds.train[0].reshape((-1, *x_spec[1:]))
    start = time.perf_counter()
    history: dict[str, list[float]] = {}
    if params is not None:
        gan.load_checkpoint(str(params))
    else:
        history = gan.fit({"x": xtr}, epochs=epochs, verbose=False)
    seconds = time.perf_counter() - start
    z = np.random.default_rng(0).standard_normal((1000, gan.inputs["z"].shape[1])).astype(np.float32)
    samples = gan(z=z)["sample"].reshape(1000, 64)
    title = {"gan": "GAN", "dcgan": "DCGAN"}[name]
    save_grid(samples[:60], out / f"digits_{name}_samples.png", 5, f"{title}: generated digits")
    # The judge: digits_cnn trained on the real training split.
    cnn = dlc.compile(str(MODELS / "digits_cnn.dlm"), seed=0)
    cnn.fit(for_model(cnn, *ds.train), epochs=20, verbose=False)
    judge_accuracy = cnn.evaluate(for_model(cnn, *ds.test))["accuracy"]
    probs = _softmax(cnn(x=samples.reshape(-1, 1, 8, 8))["logits"])
    real_confidence = float(_softmax(cnn(x=ds.test[0].reshape(-1, 1, 8, 8))["logits"]).max(1).mean())
    shares = np.bincount(probs.argmax(1), minlength=10) / len(probs)
    confidence = np.array([probs.max(1)[probs.argmax(1) == c].mean() if shares[c] else 0.0 for c in range(10)])
    save_shares(shares, confidence, out / f"digits_{name}_classes.png",
                f"{title}: 1,000 samples judged by digits_cnn (mean top-class probability {probs.max(1).mean():.3f})")
    result = {"model": f"digits_{name}", "samples": len(samples), "mean_top_class_prob": float(probs.max(1).mean()),
              "class_shares": [round(float(v), 3) for v in shares], "min_class_share": float(shares.min()),
              "judge_test_accuracy": judge_accuracy, "judge_mean_top_class_prob_on_real_test": real_confidence,
              "train_seconds": round(seconds, 1) if params is None else None,
              "final_losses": {k: v[-1] for k, v in history.items() if k.endswith("loss")}}
    if name == "dcgan":  # its categorical code is the argmax of z's first 10 entries: how digit-pure is each code?
        table = np.zeros((10, 10), int)
        np.add.at(table, (z[:, :10].argmax(1), probs.argmax(1)), 1)
        result["code_purity"] = round(float(table.max(1).sum() / len(z)), 3)
        result["code_to_class"] = [int(c) for c in table.argmax(1)]
    return result


if __name__ == "__main__":
    main()
