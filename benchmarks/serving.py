"""Serving activation (issue 39): the default adaptor (GELU) against one whose activations text-embeddings-inference
runs (Tanh), both as saved (Sentence-Transformers' Normalize + Dense modules), unsupervised, over seeds.

Usage: OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serving.py --data-root ../shared/data \
    --sets scifact cranfield cisi msmarco-5k --seeds 1 2 3 4 42
Writes benchmarks/results/serving.json (one entry per set, activation and seed; a rerun skips entries it holds).
NDCG@10 on every test query of the set, at 96, 48 and 24 dims, with the native head (what a served model computes).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from core_loop import score

import st_matryoshka
from st_matryoshka import MatryoshkaAdaptorConfig
from st_matryoshka.config import BackboneSource
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import head_of

DIMS = [96, 48, 24]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 42])
    parser.add_argument("--activations", nargs="+", default=["gelu", "tanh"])
    parser.add_argument("--out", default="benchmarks/results/serving.json")
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    base = load_model("all-MiniLM-L6-v2")
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
        source = BackboneSource(corpus_vectors=cv, query_vectors=qv)
        for activation in args.activations:
            for seed in args.seeds:
                key = f"{name}/{activation}/{seed}"
                if key in results:
                    continue
                config = MatryoshkaAdaptorConfig(seed=seed, activation=activation)
                start = time.perf_counter()
                trained = st_matryoshka.train(base, test.with_qrels({}), config, source=source)
                head = head_of(trained.model)
                results[key] = {
                    "ndcg_at_10": score(head, test, cv, qv, DIMS),
                    "modules": [type(m).__name__ for m in head],
                    "activations": [m.get_config_dict()["activation_function"] for m in head if hasattr(m, "linear")],
                    "train_seconds": time.perf_counter() - start,
                    "threads": torch.get_num_threads(),
                }
                print(key, json.dumps(results[key]["ndcg_at_10"]), flush=True)
                latest = json.load(open(args.out)) if os.path.exists(args.out) else {}
                with open(args.out, "w") as f:  # another process may share the file: merge, then write
                    json.dump({**latest, **results}, f, indent=2)


if __name__ == "__main__":
    main()
