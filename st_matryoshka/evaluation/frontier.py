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
from st_matryoshka.evaluation.quantized import check_precisions, evaluate_quantized


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
    from st_matryoshka.training import data_fast_model

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


def budget_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each byte budget of any Pareto point: each method's best row within that many bytes (``None`` if none).

    Example:
        ::

            for line in budget_table(rows):
                print(line["bytes"], {m: r and r["ndcg_at_10"] for m, r in line["best"].items()})
    """
    fronts = pareto_fronts(rows)
    budgets = sorted({r["bytes"] for front in fronts.values() for r in front})
    table = []
    for budget in budgets:
        best = {}
        for method, front in fronts.items():
            within = [r for r in front if r["bytes"] <= budget]
            best[method] = within[-1] if within else None
        table.append({"bytes": budget, "best": best})
    return table


def pareto_fronts(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{method: its Pareto front}``, methods in the order they first appear in ``rows``."""
    methods = dict.fromkeys(r["method"] for r in rows)
    return {m: pareto_front([r for r in rows if r["method"] == m]) for m in methods}


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that no row with as few or fewer bytes beats on NDCG@10, cheapest first."""
    front: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["bytes"], -r["ndcg_at_10"])):
        if not front or row["ndcg_at_10"] > front[-1]["ndcg_at_10"]:
            front.append(row)
    return front


def write_frontier(rows: Sequence[dict[str, Any]], output: str, title: str = "") -> None:
    """``frontier.json``, ``frontier.md`` (every point, Pareto points marked) and ``frontier.png`` in ``output``."""
    os.makedirs(output, exist_ok=True)
    fronts = pareto_fronts(rows)
    with open(os.path.join(output, "frontier.json"), "w", encoding="utf-8") as f:
        json.dump({"rows": list(rows), "pareto": fronts}, f, indent=2)
    lines = ["| method | dim | precision | bytes | NDCG@10 | Recall@100 | Pareto |"]
    lines.append("|---|---:|---|---:|---:|---:|---|")
    for r in sorted(rows, key=lambda r: (r["bytes"], r["method"])):
        mark = "yes" if r in fronts[r["method"]] else ""
        lines.append(
            f"| {r['method']} | {r['dim']} | {r['precision']} | {r['bytes']} | {r['ndcg_at_10']:.4f} | "
            f"{r['recall_at_100']:.4f} | {mark} |"
        )
    with open(os.path.join(output, "frontier.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    plot_frontier(rows, os.path.join(output, "frontier.png"), title)


def plot_frontier(rows: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """NDCG@10 against bytes per vector (log scale): every point, and each method's Pareto front as a step line."""
    fronts = pareto_fronts(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"float32": "o", "int8": "s", "binary": "^"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, method in enumerate(fronts):
        color = f"C{i}"
        for precision, marker in markers.items():
            points = [r for r in rows if r["method"] == method and r["precision"] == precision]
            if points:
                ax.scatter([r["bytes"] for r in points], [r["ndcg_at_10"] for r in points], marker=marker,
                           color=color, alpha=0.45, s=22)  # fmt: skip
        front = fronts[method]
        ax.step([r["bytes"] for r in front], [r["ndcg_at_10"] for r in front], where="post", color=color, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector (log scale); ○ float32, □ int8, △ binary")
    ax.set_ylabel("NDCG@10")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
