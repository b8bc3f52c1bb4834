"""Gradient-variance diagnostic of SMEC (Fig. 6a/7): MRL (joint loss over every dim) vs SMRL (first stage only).

Both train the same adaptor body on SciFact's train qrels with the rank loss + unsupervised terms for the same number
of steps, without early stopping. We record, every 10 optimizer steps, the variance across those steps of each
gradient entry of the body's last layer, rows 0-191 (the weights that produce the first 192 output dims, which every
MRL dim's loss touches), averaged over entries, and the mean absolute gradient.

Usage (from the repository root, offline):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec_gradients.py --data-root ../shared/data \
        --out benchmarks/results/smec_gradients.json --plot benchmarks/smec_gradients.png
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
from transformers import TrainerCallback

from st_matryoshka.callbacks import GradientVarianceCallback
from st_matryoshka.config import SMECTrainingConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.models import SMECAdaptor
from st_matryoshka.training_smec import train_smec


class _Track(TrainerCallback):
    """Attaches a GradientVarianceCallback to the adaptor once the trainer's model exists."""

    def __init__(self):
        self.inner = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        adaptor = next(m for m in model if isinstance(m, SMECAdaptor))
        self.inner = GradientVarianceCallback(adaptor.residual[-1].weight, rows=(0, 192), window=10)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self.inner.on_pre_optimizer_step(args, state, control, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--passes", type=int, default=15, help="Passes over the train qrels (no early stopping).")
    parser.add_argument("--out", default="benchmarks/results/smec_gradients.json")
    parser.add_argument("--plot", default="benchmarks/smec_gradients.png")
    args = parser.parse_args()
    folder = os.path.join(args.data_root, "scifact")
    train = load_beir(folder, "train")
    cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), train, dim=384)
    base = load_model("all-MiniLM-L6-v2")
    common = {"unsupervised_epochs": 0, "supervised_epochs": args.passes, "patience": args.passes + 1}
    # No stage PCA: stage 0 then keeps the body's rows 0-191 as the 192-d prefix, the rows tracked here.
    common.update(ads=False, xbm=False, stage_pca_init=False)
    runs = {
        # MRL: one joint stage, loss summed over 384, 192, 96, 48 and 24.
        "mrl": SMECTrainingConfig(dims=[192, 96, 48, 24], smrl=False, **common),
        # SMRL's first stage: the same body, loss over its transition 384 -> 192 only.
        "smrl": SMECTrainingConfig(dims=[192], smrl=True, **common),
    }
    results = {}
    for name, config in runs.items():
        torch.manual_seed(0)
        track = _Track()
        train_smec(base, train, cv, qv, config, supervised=True, callbacks=[track])
        points = track.inner.points
        results[name] = {
            "steps": [p[0] for p in points],
            "variance": [p[1] for p in points],
            "mean_abs_grad": [p[2] for p in points],
        }
        print(name, f"mean variance {np.mean(results[name]['variance']):.3e}", flush=True)
    n = min(len(results["mrl"]["variance"]), len(results["smrl"]["variance"]))
    ratios = np.array(results["mrl"]["variance"][:n]) / np.array(results["smrl"]["variance"][:n])
    results["variance_ratio_mrl_over_smrl"] = {
        "mean": float(ratios.mean()),
        "min": float(ratios.min()),
        "max": float(ratios.max()),
        "windows": n,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(json.dumps(results["variance_ratio_mrl_over_smrl"]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, label in (("mrl", "MRL (joint, 5 dims)"), ("smrl", "SMRL (stage 384→192)")):
        axes[0].plot(results[name]["steps"], results[name]["variance"], label=label)
        axes[1].plot(results[name]["steps"], results[name]["mean_abs_grad"], label=label)
    axes[0].set(yscale="log", xlabel="optimizer step", ylabel="gradient variance (rows 0-191)")
    axes[1].set(yscale="log", xlabel="optimizer step", ylabel="mean |gradient| (rows 0-191)")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("SciFact, all-MiniLM-L6-v2, adaptor body's last layer")
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
