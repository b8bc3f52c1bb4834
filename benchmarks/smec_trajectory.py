"""Test NDCG@10 at every evaluation of a SMEC run: what each stage's training does on test, and how much it jitters.

SMEC picks each stage's weights by the validation score of its own dim. This script records, at every evaluation of
the supervised phase, the test NDCG@10 at each trained dim on all test queries and on the queries whose relevant
documents never appear in the train qrels, with a ``TrainerCallback`` next to SMEC's own. For every stage it then
reports the test score of its dim at the stage's start (the stage initialised, earlier stages at their kept weights)
and at its kept weights, and the spread of the scores between consecutive evaluations.

Usage (from the repository root, offline):
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec_trajectory.py --data-root ../shared/data \
        --seeds 42 3
Results go to benchmarks/results/smec_trajectory.json (runs already there are skipped) and a plot to
benchmarks/smec_trajectory.png.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from core_loop import DIMS, score
from smec_seeds import save
from transformers import TrainerCallback

import st_matryoshka
from st_matryoshka.config import BackboneSource, SMECConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.models import SMECAdaptor
from st_matryoshka.surgery import head_of


class TestScores(TrainerCallback):
    """Scores the adaptor on test sets after every supervised evaluation (after SMEC's callback has acted)."""

    def __init__(self, sets, cv, qv, dims):
        self.sets, self.cv, self.qv, self.dims = sets, cv, qv, dims
        self.points = []

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        if not any(k.startswith("eval_validation") for k in metrics or {}):
            return  # the unsupervised phase
        adaptor = next(m for m in model if isinstance(m, SMECAdaptor))
        was = adaptor.training
        adaptor.eval()
        with torch.no_grad():
            scores = {n: score([adaptor], d, self.cv, self.qv, self.dims) for n, d in self.sets.items()}
        adaptor.train(was)
        self.points.append({"step": state.global_step, **scores})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 3])
    parser.add_argument(
        "--unsupervised-body-early-stop",
        action="store_true",
        help="Select the body's unsupervised weights by early stopping (the default when the committed runs were "
        "made).",
    )
    parser.add_argument("--out", default="benchmarks/results/smec_trajectory.json")
    parser.add_argument("--plot", default="benchmarks/smec_trajectory.png")
    args = parser.parse_args()
    folder = os.path.join(args.data_root, "scifact")
    test = load_beir(folder, "test")
    data = load_beir(folder, "train")
    cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
    train_docs = {d for docs in data.qrels.values() for d in docs}
    unseen = test.with_qrels({q: r for q, r in test.qrels.items() if not set(r) & train_docs})
    for seed in args.seeds:
        done = json.load(open(args.out)) if os.path.exists(args.out) else {}
        if str(seed) in done.get("scifact", {}).get("smec", {}):
            continue
        tracker = TestScores({"all": test, "unseen": unseen}, cv, qv, [int(d) for d in DIMS[1:]])
        torch.manual_seed(0)
        config = SMECConfig(
            dims=[192, 96, 48, 24], seed=seed, unsupervised_body_early_stop=args.unsupervised_body_early_stop
        )
        vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)
        base = load_model("all-MiniLM-L6-v2")
        trained = st_matryoshka.train(base, data, config, source=vectors, callbacks=[tracker])
        model, stages = trained.model, trained.stages
        final = {n: score(head_of(model), d, cv, qv, DIMS) for n, d in (("all", test), ("unseen", unseen))}
        supervised = [s for s in stages if s.name.startswith("supervised ") and s.history]
        starts = {s.name.removeprefix("supervised "): s.history[0][0] for s in supervised}
        kept = {s.name.removeprefix("supervised "): s.best_step for s in supervised}
        for point in tracker.points:  # at a stage switch the tracker runs after SMEC's callback: the new stage's start
            point["stage"] = max((step, name) for name, step in starts.items() if step <= point["step"])[1]
        entry = {"points": tracker.points, "final": final, "stage_start_steps": starts, "kept_steps": kept}
        save(args.out, "scifact", "smec", seed, entry)
        print("seed", seed, json.dumps(final), flush=True)
    plot(json.load(open(args.out))["scifact"]["smec"], args.plot)


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, part in zip(axes, ["all", "unseen"]):
        for seed, run in sorted(runs.items()):
            steps = [p["step"] for p in run["points"]]
            for dim, style in (("48", "-"), ("24", "--")):
                ax.plot(steps, [p[part][dim] for p in run["points"]], style, label=f"seed {seed}, {dim}-d")
            for step in run["kept_steps"].values():
                ax.axvline(step, color="grey", lw=0.5)
        ax.set_title(f"SciFact test, {part} queries")
        ax.set_xlabel("optimizer step (supervised phase; grey: kept step of each stage)")
    axes[0].set_ylabel("NDCG@10")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
