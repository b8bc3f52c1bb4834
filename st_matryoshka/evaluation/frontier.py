"""The compression frontier: NDCG@10 against bytes per vector over dims × precisions, with each method's Pareto front.

A user pays for bytes in the index, not dims. :func:`frontier` scores a model, the base model's truncation and PCA
of the same vectors at every (dim, precision) with :func:`~st_matryoshka.evaluation.quantized.evaluate_quantized`,
and :func:`pareto_front` keeps, per method, the points no cheaper point beats.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from st_matryoshka.data import RetrievalData
from st_matryoshka.evaluation.quantized import evaluate_quantized
from st_matryoshka.model_card import plot_frontier
from st_matryoshka.quantization import check_precisions, pareto_fronts
from st_matryoshka.surgery import data_fast_model


def frontier(
    heads: dict[str, Sequence[Any]],
    data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    dims: Sequence[int],
    precisions: Sequence[str] = ("float32", "int8", "binary"),
    rescore: int | None = None,
    int8_ranges: dict[str, dict[str, list[list[float]]]] | None = None,
) -> list[dict[str, Any]]:
    """Score every ``(method, dim, precision)``; one row each with its bytes per vector.

    Args:
        heads: ``{method name: modules after the backbone}`` (``[]`` is truncation), run on the backbone vectors.
        data: The data with the qrels to score.
        corpus_vectors: Backbone vectors of ``data.corpus``.
        query_vectors: Backbone vectors of ``data.queries``.
        dims: Prefix sizes.
        precisions: Any of ``float32``, ``int8``, ``binary``.
        rescore: See :func:`~st_matryoshka.evaluation.quantized.evaluate_quantized`.
        int8_ranges: ``{method name: stored int8 ranges}`` for methods calibrated at training time; the others use
            the ranges of ``data``'s corpus.

    Example:
        ::

            rows = frontier({"truncation": [], "model": head_of(model)}, data, cv, qv, [384, 96, 48])
    """
    precisions = check_precisions(precisions, dims, rescore)
    rows = []
    for method, head in heads.items():
        fast = data_fast_model(data, corpus_vectors, query_vectors, head)
        for precision in precisions:
            ranges = (int8_ranges or {}).get(method)
            scores = evaluate_quantized(fast, data, dims, precision, rescore=rescore, int8_ranges=ranges)
            for dim in dims:
                rows.append(
                    {
                        "method": method,
                        "dim": dim,
                        "precision": precision,
                        "bytes": scores["bytes_per_vector"][str(dim)],
                        "ndcg_at_10": scores["ndcg_at_10"][str(dim)],
                        "recall_at_100": scores["recall_at_100"][str(dim)],
                    }
                )
    return rows


FRONTIER_FILES = ("frontier.json", "frontier.md", "frontier.png")
"""What :func:`write_frontier` writes into its folder."""


def write_frontier(rows: Sequence[dict[str, Any]], output: str, title: str = "") -> None:
    """``frontier.json``, ``frontier.md`` (every point, Pareto points marked) and ``frontier.png`` in ``output``."""
    os.makedirs(output, exist_ok=True)
    fronts = pareto_fronts(rows)
    json_file, md_file, png_file = (os.path.join(output, name) for name in FRONTIER_FILES)
    with open(json_file, "w", encoding="utf-8") as f:
        json.dump({"rows": list(rows), "pareto": fronts}, f, indent=2)
    speed = all("qps" in r for r in rows) and bool(rows)
    lines = [
        "| method | dim | precision | bytes | NDCG@10 | Recall@100 |" + (" queries/s |" if speed else "") + " Pareto |"
    ]
    lines.append("|---|---:|---|---:|---:|---:|" + ("---:|" if speed else "") + "---|")
    for r in sorted(rows, key=lambda r: (r["bytes"], r["method"])):
        mark = "yes" if r in fronts[r["method"]] else ""
        qps = f" {r['qps']:.0f} |" if speed else ""
        lines.append(
            f"| {r['method']} | {r['dim']} | {r['precision']} | {r['bytes']} | {r['ndcg_at_10']:.4f} | "
            f"{r['recall_at_100']:.4f} |{qps} {mark} |"
        )
    if speed:
        lines.append(
            f"\nQueries per second: an exact FAISS index of the corpus at each dim and precision, "
            f"{rows[0]['qps_threads']} threads (the same for every method at one dim and precision)."
        )
    with open(md_file, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    plot_frontier(rows, png_file, title)
