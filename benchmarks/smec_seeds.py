"""SMEC against the supervised Matryoshka-Adaptor (the MRL baseline) over several training seeds.

One seed per cell (benchmarks/smec.py) cannot tell a real gain from the spread of early stopping on a small
validation slice. This script trains both methods with each seed (the seed drives weight init, negative sampling,
batch order and Gumbel noise) and scores all test queries and the queries whose relevant documents never appear in
the train qrels.

Usage (from the repository root, offline):
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec_seeds.py --data-root ../shared/data \
        --sets scifact --methods mrl smec --seeds 42 1 2
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec_seeds.py --data-root ../shared/data \
        --sets scifact --methods smec --seeds 42 1 2 3 4 --body-all-dims --body-patience 40
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec_seeds.py --data-root ../shared/data \
        --sets scifact --methods smec --seeds 42 1 2 3 4 --after-engine
Results go to benchmarks/results/smec_seeds.json; runs already there are skipped, so two processes (one per
method) can share the file.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from core_loop import DIMS, load_set, score

from st_matryoshka.config import AdaptorTrainingConfig, SMECTrainingConfig
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import head_of
from st_matryoshka.training import train_matryoshka_adaptor
from st_matryoshka.training_smec import train_smec

TARGET_DIMS = [192, 96, 48, 24]


def train(
    method, base, data, cv, qv, seed, patience, stage_pca_init, ads=True, xbm=True, body_early_stop=False, body=None
):
    settings = {"dims": TARGET_DIMS, "seed": seed} | ({} if patience is None else {"patience": patience})
    if method == "mrl":
        return train_matryoshka_adaptor(base, data, cv, qv, AdaptorTrainingConfig(**settings), supervised=True)
    config = SMECTrainingConfig(
        **settings,
        stage_pca_init=stage_pca_init,
        ads=ads,
        xbm=xbm,
        unsupervised_body_early_stop=body_early_stop,
        **(body or {}),
    )
    return train_smec(base, data, cv, qv, config, supervised=True)


def save(path, name, method, seed, entry):
    """Merge one run into the results file (re-read first: another process may have written since)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    latest = json.load(open(path)) if os.path.exists(path) else {}
    latest.setdefault(name, {}).setdefault(method, {})[str(seed)] = entry
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(latest, f, indent=2)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact"])
    parser.add_argument("--methods", nargs="+", default=["mrl", "smec"], choices=["mrl", "smec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--patience", type=int, help="Override the default patience (results under METHOD_patienceN).")
    parser.add_argument(
        "--no-stage-pca-init",
        action="store_true",
        help="SMEC stages start where they were left, not from PCA (results under smec_no_stage_pca).",
    )
    parser.add_argument(
        "--no-ads", action="store_true", help="SMEC without Adaptive Dimension Selection (results under smec_no_ads)."
    )
    parser.add_argument(
        "--no-xbm",
        action="store_true",
        help="SMEC without Selectable Cross-Batch Memory (results under smec_no_xbm).",
    )
    parser.add_argument(
        "--unsupervised-body-early-stop",
        action="store_true",
        help="Select SMEC's unsupervised body weights by early stopping, the default before they trained for the "
        "full epochs (results under smec_..._body_early_stop).",
    )
    parser.add_argument(
        "--body-all-dims",
        action="store_true",
        help="SMEC's body stage takes its loss over every dim (results under smec_..._body_all_dims).",
    )
    parser.add_argument(
        "--body-patience", type=int, help="SMEC's body stage patience (results under smec_..._body_patienceN)."
    )
    parser.add_argument(
        "--after-engine",
        action="store_true",
        help="Rerun SMEC runs made before the engine change (issue 16) under their key + _after_engine.",
    )
    parser.add_argument("--out", default="benchmarks/results/smec_seeds.json")
    args = parser.parse_args()
    base = load_model("all-MiniLM-L6-v2")
    for name in args.sets:
        data, test, cv, qv, unseen = load_set(args.data_root, name)
        for method in args.methods:
            key = method + ("_no_stage_pca" if method == "smec" and args.no_stage_pca_init else "")
            key += "_no_ads" if method == "smec" and args.no_ads else ""
            key += "_no_xbm" if method == "smec" and args.no_xbm else ""
            key += "_body_early_stop" if method == "smec" and args.unsupervised_body_early_stop else ""
            key += "_body_all_dims" if method == "smec" and args.body_all_dims else ""
            key += f"_body_patience{args.body_patience}" if method == "smec" and args.body_patience else ""
            key += "" if args.patience is None else f"_patience{args.patience}"
            key += "_after_engine" if method == "smec" and args.after_engine else ""
            for seed in args.seeds:
                done = json.load(open(args.out)) if os.path.exists(args.out) else {}
                if str(seed) in done.get(name, {}).get(key, {}):
                    continue
                torch.manual_seed(0)
                start = time.perf_counter()
                model, _ = train(
                    method,
                    base,
                    data,
                    cv,
                    qv,
                    seed,
                    args.patience,
                    not args.no_stage_pca_init,
                    not args.no_ads,
                    not args.no_xbm,
                    args.unsupervised_body_early_stop,
                    {"body_all_dims": args.body_all_dims, "body_patience": args.body_patience},
                )
                seconds = time.perf_counter() - start
                entry = {"ndcg_at_10": score(head_of(model), test, cv, qv, DIMS), "train_seconds": seconds}
                if unseen is not None:
                    entry["ndcg_at_10_unseen"] = score(head_of(model), unseen, cv, qv, DIMS)
                    entry["unseen_queries"] = len(unseen.qrels)
                save(args.out, name, key, seed, entry)
                print(name, key, seed, json.dumps(entry["ndcg_at_10"]), f"{seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
