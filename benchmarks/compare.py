"""Comparison of every method per data set: Search-Adaptor runs here, the others come from core_loop.json.

Usage (after benchmarks/core_loop.py):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compare.py --data-root ../shared/data
Writes benchmarks/results/compare.json and benchmarks/compare.png (NDCG@10 against dim, one panel per data set,
one line per method). Sets without a train split use core_loop's fixed query split, so every line of a panel is
scored on the same queries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from core_loop import SPLIT_SALT, score

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes"))
from compare_methods import plot  # noqa: E402

import st_matryoshka
from st_matryoshka.config import BackboneSource, SearchAdaptorConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import head_of

METHODS = ["truncation", "pca", "search_adaptor", "unsupervised", "supervised"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    args = parser.parse_args()
    core = json.load(open("benchmarks/results/core_loop.json"))
    base = load_model("all-MiniLM-L6-v2")
    out = {}
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
        row = core[name]
        if "query_split" in row:
            train, test = test.split_by_query(0.5, salt=SPLIT_SALT)
            rows = {m: row[f"{m}_split"] for m in METHODS if f"{m}_split" in row}
        else:
            train = load_beir(folder, "train")
            rows = {m: row[m] for m in METHODS if m in row}
        torch.manual_seed(0)
        config = SearchAdaptorConfig(dims=[192, 96, 48, 24])
        vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)
        model = st_matryoshka.train(base, train, config, source=vectors).model
        rows["search_adaptor"] = score(head_of(model), test, cv, qv)
        out[name] = {m: rows[m] for m in METHODS if m in rows}
        print(name, json.dumps(out[name]["search_adaptor"]), flush=True)
    with open("benchmarks/results/compare.json", "w") as f:
        json.dump(out, f, indent=2)
    titles = {n: n + (" (held-out half of the queries)" if "query_split" in core[n] else "") for n in out}
    plot(out, "benchmarks/compare.png", titles)


if __name__ == "__main__":
    main()
