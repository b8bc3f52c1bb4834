"""Core-loop benchmark: truncation, PCA, unsupervised and supervised Matryoshka-Adaptor, NDCG@10 per dim.

Usage (from the repository root, offline):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/core_loop.py --data-root ../shared/data \
        --sets scifact cranfield cisi msmarco-5k --out benchmarks/results/core_loop.json
Uses the provided all-MiniLM-L6-v2 embeddings; the transformer never runs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

import st_matryoshka
from st_matryoshka.config import BackboneSource, MatryoshkaAdaptorConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.evaluation import evaluate_per_dim
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import data_fast_model, head_of

DIMS = [384, 192, 96, 48, 24]
SPLIT_SALT = "st_matryoshka-benchmark"
"""Salt of the fixed query split used for sets without a train split (shared with compare.py and the recipe)."""


def load_set(data_root: str, name: str):
    """``(train, test, cv, qv, unseen)`` of a shared set, as the supervised benchmarks score it.

    Sets without a train split use the fixed split of the test queries (half trains, half is scored); ``unseen`` is
    the scored queries whose relevant documents no training qrel cites (``None`` when that is none or all of them).
    """
    folder = os.path.join(data_root, name)
    test = load_beir(folder, "test")
    cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
    if os.path.exists(os.path.join(folder, "qrels", "train.tsv")):
        train = load_beir(folder, "train")
    else:
        train, test = test.split_by_query(0.5, salt=SPLIT_SALT)
    train_docs = {d for docs in train.qrels.values() for d in docs}
    unseen_qrels = {q: r for q, r in test.qrels.items() if not set(r) & train_docs}
    unseen = test.with_qrels(unseen_qrels) if 0 < len(unseen_qrels) < len(test.qrels) else None
    return train, test, cv, qv, unseen


def score(model_head, data, cv, qv, dims=DIMS):
    return evaluate_per_dim(data_fast_model(data, cv, qv, model_head), data, dims)["ndcg_at_10"]


def pca_scores(data, cv, qv):
    mu = cv.mean(0)
    _, _, vt = np.linalg.svd(cv - mu, full_matrices=False)
    return score([], data, (cv - mu) @ vt.T, (qv - mu) @ vt.T)


def _model_stages(trained):
    """``(model, stages)`` of an ``st_matryoshka.train`` result."""
    return trained.model, trained.stages


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--out", default="benchmarks/results/core_loop.json")
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    base = load_model("all-MiniLM-L6-v2")
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        emb = os.path.join(folder, "embeddings", "all-MiniLM-L6-v2")
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(emb, test, dim=384)
        meta = json.load(open(os.path.join(emb, "meta.json")))
        row = {"truncation": score(head_of(base), test, cv, qv), "pca": pca_scores(test, cv, qv)}
        torch.manual_seed(0)
        vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)
        config = MatryoshkaAdaptorConfig(dims=[192, 96, 48, 24])
        t = time.perf_counter()
        unsup, stages = _model_stages(st_matryoshka.train(base, test.with_qrels({}), config, source=vectors))
        row["unsupervised"] = score(head_of(unsup), test, cv, qv)
        row["unsupervised_stage"] = {
            "criterion_history": stages[0].history,
            "best_step": stages[0].best_step,
            "epoch_seconds": stages[0].epoch_seconds,
            "train_seconds": time.perf_counter() - t,
            "embedding_pass_seconds": meta["encode_seconds"]["corpus"],
        }
        for key, ablation in (("no_pca_init", {"pca_init": False}), ("paper_loss", {"distill_weight": 0.0})):
            cfg = MatryoshkaAdaptorConfig(dims=[192, 96, 48, 24], **ablation)
            ablated = st_matryoshka.train(base, test.with_qrels({}), cfg, source=vectors).model
            row[f"unsupervised_{key}"] = score(head_of(ablated), test, cv, qv)
        has_train = os.path.exists(os.path.join(folder, "qrels", "train.tsv"))
        if not has_train:
            # No train split: a fixed split of the test queries by a hash of the id; half trains, half scores.
            train, test = test.split_by_query(0.5, salt=SPLIT_SALT)
            row["query_split"] = {"train_queries": len(train.qrels), "test_queries": len(test.qrels)}
            for key, head in (("truncation", head_of(base)), ("pca", None), ("unsupervised", head_of(unsup))):
                row[f"{key}_split"] = pca_scores(test, cv, qv) if head is None else score(head, test, cv, qv)
        else:
            train = load_beir(folder, "train")
        t = time.perf_counter()
        supervised = MatryoshkaAdaptorConfig(dims=[192, 96, 48, 24], supervised=True)
        sup, stages = _model_stages(st_matryoshka.train(base, train, supervised, source=vectors))
        row["supervised" if has_train else "supervised_split"] = score(head_of(sup), test, cv, qv)
        row["supervised_stage"] = {
            "criterion_history": stages[-1].history,
            "best_step": stages[-1].best_step,
            "train_seconds": time.perf_counter() - t,
        }
        if has_train:
            train_docs = {d for docs in train.qrels.values() for d in docs}
            unseen = test.with_qrels({q: r for q, r in test.qrels.items() if not set(r) & train_docs})
            row["unseen_queries"] = len(unseen.qrels)
            for key, head in (
                ("truncation", head_of(base)),
                ("unsupervised", head_of(unsup)),
                ("supervised", head_of(sup)),
            ):
                row[f"{key}_unseen"] = score(head, unseen, cv, qv)
        results[name] = row
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(name, json.dumps({k: v for k, v in row.items() if not k.endswith("_stage")}), flush=True)


if __name__ == "__main__":
    main()
