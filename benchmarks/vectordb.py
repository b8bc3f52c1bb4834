"""The codes in vector databases beside FAISS: NDCG@10 on real SciFact and queries per second at 100k documents.

Same model, same codes, same rescoring depth for every engine: ``ours`` is the unsupervised, binary-trained
Matryoshka-Adaptor of benchmarks/search.py (``st_matryoshka.train`` on SciFact's corpus vectors, seed 42, default
dims),
indexed at 384 dims as 48-byte sign bits with int8 rescoring of the top 100 (the int8 ranges of the real corpus
given to every engine). FAISS: :class:`st_matryoshka.index.VectorIndex` (flat). Milvus: Milvus Lite (embedded,
a ``.db`` file) through :class:`st_matryoshka.vectordb.MilvusIndex`: our sign bits as a ``BINARY_VECTOR`` searched
by Hamming distance, the int8 vectors beside them, re-ranked by the float query as FAISS does. Qdrant: Qdrant's
local mode through :class:`st_matryoshka.vectordb.QdrantIndex`: the 384-d float prefix with binary quantisation and
``rescore`` (local mode searches the floats exactly and ignores quantisation: a server computes the bits).

Quality: each engine built over the real SciFact corpus, NDCG@10 on its 300 test queries. Cost: SciFact's vectors
tiled with N(0, 0.01) noise to ``--size`` documents and its test queries to 1,000 (as benchmarks/search.py), build
seconds and queries per second (best of three passes over the 1,000 queries; the engines' own threads), and how
often each engine's top 10 equals FAISS's.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vectordb.py --data-root ../shared/data --size 100000 \\
        --work /tmp/st_matryoshka_vectordb

Results go to ``benchmarks/results/vectordb.json``; ``benchmarks/render.py`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import numpy as np
from search import ndcg_at_10, outputs, tiled

import st_matryoshka
from st_matryoshka.config import MatryoshkaAdaptorConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.index import VectorIndex
from st_matryoshka.quantization import normalised_prefix
from st_matryoshka.vectordb import MilvusIndex, QdrantIndex

DIM, RESCORE, BATCH = 384, 100, 16384
ENGINES = ("faiss", "milvus", "qdrant")


def build(engine: str, work: str, docs: np.ndarray, ids: list[str], ranges: list) -> tuple:
    """A fresh index of ``docs`` with ``engine``: ``(index, seconds)``."""
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    start = time.perf_counter()
    if engine == "faiss":
        index = VectorIndex.create(os.path.join(work, "index"), DIM, "binary", rescore_store="int8", ranges=ranges)
    elif engine == "milvus":
        index = MilvusIndex.create(os.path.join(work, "docs.db"), DIM, "binary", rescore_store="int8", ranges=ranges)
    else:
        index = QdrantIndex.create(os.path.join(work, "qdrant"), DIM, "binary")
    for begin in range(0, len(docs), BATCH):
        index.add(docs[begin : begin + BATCH], ids[begin : begin + BATCH])
    index.save()
    return index, time.perf_counter() - start


def qps(index, queries: np.ndarray) -> float:
    index.search(queries[:50], top_k=10, rescore=RESCORE)  # warm up
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        index.search(queries, top_k=10, rescore=RESCORE)
        best = min(best, time.perf_counter() - start)
    return len(queries) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--size", type=int, default=100000)
    parser.add_argument("--work", default="/tmp/st_matryoshka_vectordb")
    parser.add_argument("--out", default="benchmarks/results/vectordb.json")
    args = parser.parse_args()
    folder = os.path.join(args.data_root, "scifact")
    data = load_beir(folder, "test")
    cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), data, dim=384)
    config = MatryoshkaAdaptorConfig(dims=[192, 96, 48, 24], precisions=["binary"], seed=42)
    ours = st_matryoshka.train(cv, None, config).adaptor
    qids = [q for q in data.query_ids if q in data.qrels]
    rows_q = [data.query_ids.index(q) for q in qids]
    real_docs, real_queries = outputs(ours, cv), outputs(ours, qv[rows_q])
    prefix = normalised_prefix(real_docs, DIM)
    ranges = np.stack([prefix.min(axis=0), prefix.max(axis=0)]).tolist()
    results: dict = {"size": args.size, "dim": DIM, "rescore": RESCORE, "quality": {}, "cost": {}}
    for engine in ENGINES:
        index, _ = build(engine, os.path.join(args.work, f"real-{engine}"), real_docs, list(data.corpus_ids), ranges)
        _, ranked = index.search(real_queries, top_k=10, rescore=RESCORE)
        results["quality"][engine] = ndcg_at_10(ranked, qids, data.qrels)
        print("quality", engine, round(results["quality"][engine], 4), flush=True)
        if engine != "faiss":
            index.close()
    docs = outputs(ours, tiled(cv, args.size, seed=0))
    queries = outputs(ours, tiled(qv[rows_q], 1000, seed=1))
    ids = [str(i) for i in range(len(docs))]
    top = {}
    for engine in ENGINES:
        index, seconds = build(engine, os.path.join(args.work, f"n{args.size}-{engine}"), docs, ids, ranges)
        _, top[engine] = index.search(queries, top_k=10, rescore=RESCORE)
        entry = {"build_seconds": seconds, "qps": qps(index, queries)}
        entry["same_top10_as_faiss"] = float(np.mean([a == b for a, b in zip(top[engine], top["faiss"])]))
        results["cost"][engine] = entry
        print(args.size, engine, json.dumps(entry), flush=True)
        if engine != "faiss":
            index.close()
    import importlib.metadata as metadata

    results["versions"] = {p: metadata.version(p) for p in ("faiss-cpu", "pymilvus", "milvus-lite", "qdrant-client")}
    results["threads_available"] = os.cpu_count()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
