"""BENCHMARKS.md section "The bytes frontier" (the frontier folders)."""

from __future__ import annotations

import os


def frontier_section() -> list[str]:
    """The bytes frontier of the base model (st-matryoshka frontier), from its stored table."""
    folder = "benchmarks/results/frontier_scifact_base"
    if not os.path.exists(os.path.join(folder, "frontier.md")):
        return []
    return [
        "## Bytes frontier of the base model (SciFact)",
        "",
        "    HF_HUB_OFFLINE=1 .venv/bin/st-matryoshka frontier --model all-MiniLM-L6-v2 --data ../shared/data/scifact "
        "--embeddings ../shared/data/scifact/embeddings/all-MiniLM-L6-v2 --dims 384,192,96,48,24 "
        f"--output {folder}",
        "",
        "2 threads. all-MiniLM-L6-v2's truncation and PCA of the same vectors at every dim × precision, documents and "
        "queries both quantised through ST's `quantize_embeddings` (int8 ranges from the corpus prefix, scored as the "
        "values the codes stand for; binary as ±1 sign bits, no mean subtraction), NDCG@10 on test, no rescoring. "
        "`Pareto`: no cheaper point of the same method scores higher.",
        "",
        open(os.path.join(folder, "frontier.md")).read().rstrip("\n"),
        "",
        f"![NDCG@10 against bytes per vector]({folder}/frontier.png)",
        "",
    ]
