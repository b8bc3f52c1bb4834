"""SMEC ablation (the paper's Table 1): +SMRL, +ADS, +S-XBM and full SMEC against the supervised Matryoshka-Adaptor.

Usage (from the repository root, offline):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/smec.py --data-root ../shared/data \
        --sets scifact cranfield msmarco-5k --out benchmarks/results/smec.json
The MRL baseline row is the supervised Matryoshka-Adaptor of benchmarks/results/core_loop.json (same data, same
split, same defaults). Sets without a train split use core_loop's fixed hash split of the test queries. Uses the
provided all-MiniLM-L6-v2 embeddings; the transformer never runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from core_loop import DIMS, SPLIT_SALT, score

import st_matryoshka
from st_matryoshka.config import BackboneSource, SMECConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import head_of

VARIANTS = {
    "smrl": {"smrl": True, "ads": False, "xbm": False},
    "ads": {"smrl": False, "ads": True, "xbm": False},
    "xbm": {"smrl": False, "ads": False, "xbm": True},
    "smec": {"smrl": True, "ads": True, "xbm": True},
    # The same two with every stage starting from where it was left instead of from PCA of its input block.
    "smrl_no_stage_pca": {"smrl": True, "ads": False, "xbm": False, "stage_pca_init": False},
    "smec_no_stage_pca": {"smrl": True, "ads": True, "xbm": True, "stage_pca_init": False},
    # Full SMEC whose first stage trains the body with the loss over every dim (--body-all-dims).
    "smec_body_all_dims": {"smrl": True, "ads": True, "xbm": True, "body_all_dims": True},
    # ... and whose body stage runs to its cap (patience = the 40-pass cap), keeping its best evaluation.
    "smec_body_all_dims_to_cap": {"smrl": True, "ads": True, "xbm": True, "body_all_dims": True, "body_patience": 40},
    "smrl_body_to_cap": {"smrl": True, "ads": False, "xbm": False, "body_patience": 40},
}
# The SMRL variants as they were run while the body's unsupervised stage was early-stopped (then the default).
VARIANTS.update(
    {
        f"{k}_body_early_stop": {**v, "unsupervised_body_early_stop": True}
        for k, v in list(VARIANTS.items())
        if v["smrl"]
    }
)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "msmarco-5k"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default="benchmarks/results/smec.json")
    parser.add_argument("--force", action="store_true", help="Re-run variants already in --out.")
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    base = load_model("all-MiniLM-L6-v2")
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
        has_train = os.path.exists(os.path.join(folder, "qrels", "train.tsv"))
        if has_train:
            train = load_beir(folder, "train")
        else:
            train, test = test.split_by_query(0.5, salt=SPLIT_SALT)
        train_docs = {d for docs in train.qrels.values() for d in docs}
        unseen = test.with_qrels({q: r for q, r in test.qrels.items() if not set(r) & train_docs})
        row = results.setdefault(name, {})
        for variant in args.variants:
            if variant in row and not args.force:
                continue
            torch.manual_seed(0)
            config = SMECConfig(dims=[192, 96, 48, 24], **VARIANTS[variant])
            start = time.perf_counter()
            vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)
            trained = st_matryoshka.train(base, train, config, source=vectors)
            model, stages = trained.model, trained.stages
            seconds = time.perf_counter() - start
            row[variant] = {
                "ndcg_at_10": score(head_of(model), test, cv, qv, DIMS),
                "train_seconds": seconds,
                "stages": [
                    {
                        "name": s.name,
                        "best": s.best,
                        "best_step": s.best_step,
                        "evaluations": len(s.history),
                        "seconds": s.seconds,
                    }
                    for s in stages
                ],
            }
            if has_train and unseen.qrels:
                row[variant]["ndcg_at_10_unseen"] = score(head_of(model), unseen, cv, qv, DIMS)
                row["unseen_queries"] = len(unseen.qrels)
            # Re-read before writing, so runs over different sets can share one results file.
            os.makedirs(os.path.dirname(args.out), exist_ok=True)
            latest = json.load(open(args.out)) if os.path.exists(args.out) else {}
            latest.setdefault(name, {}).update(row)
            tmp = f"{args.out}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(latest, f, indent=2)
            os.replace(tmp, args.out)
            print(name, variant, json.dumps(row[variant]["ndcg_at_10"]), f"{seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
