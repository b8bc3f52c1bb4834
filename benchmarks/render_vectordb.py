"""BENCHMARKS.md section "Vector databases beside FAISS", from benchmarks/results/vectordb.json.

Called by render.py; ``python benchmarks/render_vectordb.py`` prints the section alone.
"""

from __future__ import annotations

import json
import os

RESULTS = "benchmarks/results/vectordb.json"
COMMAND = (
    "cd benchmarks && OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 ../.venv/bin/python vectordb.py "
    "--data-root ../../shared/data --size 100000 --work /tmp/st_matryoshka_vectordb --out results/vectordb.json"
)
LABELS = {
    "faiss": "FAISS flat (`VectorIndex`), 48 B sign bits + int8 rescoring",
    "milvus": "Milvus Lite (`--engine milvus`), the same codes + int8 rescoring",
    "qdrant": "Qdrant local mode (`--engine qdrant`), 384-d float prefix, binary quantisation + rescore",
}


def vectordb_section() -> list[str]:
    if not os.path.exists(RESULTS):
        return []
    res = json.load(open(RESULTS))
    out = ["## Vector databases beside FAISS (issue 35)", "", f"    {COMMAND}", ""]
    out += [
        "Model: an unsupervised binary-trained Matryoshka-Adaptor fit on SciFact's corpus vectors (seed 42, default "
        f"dims), indexed at {res['dim']} dims (48-byte sign bits), top {res['rescore']} rescored; every engine gets "
        "the int8 ranges of the real corpus. NDCG@10: the real SciFact corpus and its 300 test queries. Cost: "
        f"SciFact's vectors tiled with N(0, 0.01) noise to {res['size']:,} documents, 1,000 tiled queries, best of "
        f"three passes; the engines' own threads on a {res['threads_available']}-core machine. Versions: "
        + ", ".join(f"{k} {v}" for k, v in res.get("versions", {}).items())
        + ".",
        "",
        f"| engine | NDCG@10 (SciFact) | build s ({res['size']:,}) | queries/s | top 10 equal to FAISS's |",
        "|---|---:|---:|---:|---:|",
    ]
    for engine, label in LABELS.items():
        cost = res["cost"].get(engine, {})
        out.append(
            f"| {label} | {res['quality'][engine]:.4f} | {cost.get('build_seconds', float('nan')):.0f} | "
            f"{cost.get('qps', float('nan')):.0f} | {cost.get('same_top10_as_faiss', float('nan')):.3f} |"
        )
    notes = "benchmarks/results/vectordb_notes.md"
    if os.path.exists(notes):
        out += ["", open(notes).read().rstrip()]
    return out + [""]


if __name__ == "__main__":
    print("\n".join(vectordb_section()))
