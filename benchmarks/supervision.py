"""Supervision that pays (issues 24, 32): supervised training scored on all and on unseen-document queries.

For each set, label count and seed it trains the unsupervised adaptor (once per seed: it uses no labels) and the
supervised methods through the library's one training entry point (``fit_adaptor``, what ``st-matryoshka train``
calls), then scores NDCG@10 per dim on the test queries and on those whose relevant documents no train qrel cites.
Truncation and PCA are scored once per set. Label counts other than ``all`` are seeded subsets of the training
queries (the subset's seed is the run's seed). Sets without a train split use the split-query protocol of
BENCHMARKS.md (half of the test queries train, by a hash of the id, the other half is scored).

Variants (``--variants``) change one setting from the defaults, for the ablation:
    default            the CLI defaults (since issue 32: both validation kinds, the interpolating guard; the rows
                       recorded under this name were run before issue 40, so they are what ``growing`` is now)
    fixed              corpus_mode="fixed" (the default since issue 40): chosen and checked on query-hash queries
    growing            corpus_mode="growing": the document-disjoint queries are held to the tolerance too
    query_hash         validation queries held out by a hash of the id only (the split before issue 24)
    both               both validation kinds (the default since issue 32)
    document_disjoint  document-disjoint validation only (the default of issue 24, now with interpolation)
    keep_or_drop       interpolation_steps=1: the guard keeps or drops the supervised state (before issue 32)
    guarded_stopping   early stopping admits only evaluations no document-disjoint dim of which fell past the tolerance
    before_fix         query_hash and no L_distill in the unsupervised phase: the defaults before issue 24
    sup_distill        L_distill toward the backbone inside the supervised phase's L_unsup (weight 1)
    no_unsup_terms     the supervised phase without the unsupervised terms (L_rank alone)
    last_layer         the supervised phase trains the residual MLP's output layer only
    unsup_weight_4     the unsupervised terms weigh 4 (default 1) in the supervised phase
    l2sp_0.01, l2sp_0.1  L2-SP: weight x squared distance from the unsupervised phase's weights
    margin_0.1, margin_0.3  DIVE's self-limiting hinge (cosine margin 0.1 or 0.3) in place of SMEC's eq. 8
    mean_guard         the guard on the mean over dims only (before guard_tolerance; the defaults' runs then)

Usage (from the repository root, offline; one thread per process so two can run side by side):
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/supervision.py --data-root ../shared/data \
        --sets scifact --labels all --methods matryoshka-adaptor --variants default --seeds 1 2 3 4 42
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/supervision.py --data-root ../shared/data \
        --sets scifact --labels all --methods matryoshka-adaptor \
        --variants query_hash before_fix sup_distill no_unsup_terms --seeds 1 2 42
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/supervision.py --data-root ../shared/data \
        --sets scifact cranfield cisi --labels 8 32 128 all --methods matryoshka-adaptor smec --seeds 1 2 42
Results go to benchmarks/results/supervision.json; runs already there are skipped, so several processes can share
the file (each run is merged in as it finishes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

import torch
from core_loop import DIMS, load_set, pca_scores, score

from st_matryoshka.config import config_for
from st_matryoshka.engine import fit_adaptor

TARGET_DIMS = [192, 96, 48, 24]
VARIANTS = {
    "default": {},
    "fixed": {"corpus_mode": "fixed"},
    "growing": {"corpus_mode": "growing"},
    "query_hash": {"validation_split": "query-hash"},
    "both": {"validation_split": "both"},
    "before_fix": {"validation_split": "query-hash", "distill_weight": 0.0},
    "sup_distill": {"supervised_distill_weight": 1.0},
    "no_unsup_terms": {"unsupervised_weight": 0.0},
    "last_layer": {"supervised_parameters": "last-layer"},
    "unsup_weight_4": {"unsupervised_weight": 4.0},
    "l2sp_0.01": {"supervised_l2sp_weight": 0.01},
    "l2sp_0.1": {"supervised_l2sp_weight": 0.1},
    "margin_0.1": {"supervised_margin": 0.1},
    "margin_0.3": {"supervised_margin": 0.3},
    "mean_guard": {"guard_tolerance": 1.0},
    "document_disjoint": {"validation_split": "document-disjoint"},
    "keep_or_drop": {"interpolation_steps": 1},
    "guarded_stopping": {"guarded_stopping": True},
}


def label_subset(data, labels: str, seed: int):
    """``data`` with ``labels`` of its training queries (a seeded sample), or all of them."""
    if labels == "all":
        return data
    ids = random.Random(seed).sample(sorted(data.qrels), min(int(labels), len(data.qrels)))
    return data.with_qrels({q: data.qrels[q] for q in ids})


def save(path: str, keys: list[str], entry: dict) -> None:
    """Merge one run into the results file under ``keys`` (re-read first: another process may have written)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    latest = json.load(open(path)) if os.path.exists(path) else {}
    node = latest
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = entry
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(latest, f, indent=2)
    os.replace(tmp, path)


def lookup(path: str, keys: list[str]):
    node = json.load(open(path)) if os.path.exists(path) else {}
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def scores(adaptor, test, unseen, cv, qv) -> dict:
    head = [] if adaptor is None else [adaptor]
    out = {"ndcg_at_10": score(head, test, cv, qv, DIMS)}
    if unseen is not None:
        out["ndcg_at_10_unseen"] = score(head, unseen, cv, qv, DIMS)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact"])
    parser.add_argument("--labels", nargs="+", default=["all"], help="Training query counts, or 'all'.")
    parser.add_argument("--methods", nargs="+", default=["matryoshka-adaptor"], choices=["matryoshka-adaptor", "smec"])
    parser.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 42])
    parser.add_argument("--out", default="benchmarks/results/supervision.json")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    for name in args.sets:
        train, test, cv, qv, unseen = load_set(args.data_root, name)
        if lookup(args.out, [name, "baselines"]) is None:
            base = {"truncation": scores(None, test, unseen, cv, qv)}
            base["pca"] = {"ndcg_at_10": pca_scores(test, cv, qv)}
            if unseen is not None:
                base["pca"]["ndcg_at_10_unseen"] = pca_scores(unseen, cv, qv)
            base["test_queries"] = len(test.qrels)
            base["unseen_queries"] = len(unseen.qrels) if unseen is not None else None
            base["train_queries"] = len(train.qrels)
            save(args.out, [name, "baselines"], base)
        for seed in args.seeds:
            if lookup(args.out, [name, "unsupervised", str(seed)]) is None:
                config = config_for("matryoshka-adaptor", TARGET_DIMS, 384, seed=seed)
                start = time.perf_counter()
                adaptor, _ = fit_adaptor("matryoshka-adaptor", 384, train, cv, qv, config, supervised=False)
                entry = scores(adaptor, test, unseen, cv, qv) | {"train_seconds": time.perf_counter() - start}
                save(args.out, [name, "unsupervised", str(seed)], entry | {"threads": threads})
                print(name, "unsupervised", seed, json.dumps(entry["ndcg_at_10"]), flush=True)
            for labels in args.labels:
                if labels != "all" and int(labels) >= len(train.qrels):
                    continue  # that many labels is "all" on this set
                data = label_subset(train, labels, seed)
                for method in args.methods:
                    for variant in args.variants:
                        keys = [name, "supervised", method, variant, labels, str(seed)]
                        if lookup(args.out, keys) is not None:
                            continue
                        torch.manual_seed(0)
                        config = config_for(method, TARGET_DIMS, 384, seed=seed, **VARIANTS[variant])
                        start = time.perf_counter()
                        adaptor, stages = fit_adaptor(method, 384, data, cv, qv, config, supervised=True)
                        entry = scores(adaptor, test, unseen, cv, qv)
                        selection = next((s.selection for s in stages if s.selection), {})
                        entry |= {
                            "train_seconds": time.perf_counter() - start,
                            "threads": threads,
                            "train_queries": len(data.qrels),
                            "selection": selection,
                        }
                        save(args.out, keys, entry)
                        print(
                            name,
                            method,
                            variant,
                            labels,
                            seed,
                            selection.get("kept"),
                            selection.get("interpolation"),
                            json.dumps({k: round(v, 4) for k, v in entry["ndcg_at_10"].items()}),
                            json.dumps({k: round(v, 4) for k, v in entry.get("ndcg_at_10_unseen", {}).items()}),
                            f"{entry['train_seconds']:.0f}s",
                            flush=True,
                        )


if __name__ == "__main__":
    main()
