"""Per-dimension retrieval scores with ST's InformationRetrievalEvaluator and ``truncate_dim``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sentence_transformers.base.evaluation import SequentialEvaluator

from st_matryoshka.data import RetrievalData
from st_matryoshka.evaluation.graded import GradedInformationRetrievalEvaluator


def dim_evaluators(
    data: RetrievalData, dims: Sequence[int], name: str = "", batch_size: int = 256
) -> list[GradedInformationRetrievalEvaluator]:
    """One evaluator per dim (cosine; graded NDCG@10, Recall@100), named ``<name>_dim<k>``."""
    if not data.qrels:
        raise ValueError(f"data {data.name!r} has no queries with relevant documents in this split")
    queries = {qid: text for qid, text in data.query_dict().items() if qid in data.qrels}
    return [
        GradedInformationRetrievalEvaluator(
            queries,
            data.corpus_dict(),
            data.qrels,
            ndcg_at_k=[10],
            precision_recall_at_k=[100],
            accuracy_at_k=[10],
            mrr_at_k=[10],
            map_at_k=[100],
            name=f"{name or data.name}_dim{dim}",
            truncate_dim=dim,
            batch_size=batch_size,
            main_score_function="cosine",
            write_csv=False,
        )
        for dim in dims
    ]


def matryoshka_evaluator(
    data: RetrievalData, dims: Sequence[int], name: str = "", batch_size: int = 256
) -> SequentialEvaluator:
    """A SequentialEvaluator whose main score (``sequential_score``) is the mean NDCG@10 over ``dims``."""
    return SequentialEvaluator(
        dim_evaluators(data, dims, name=name, batch_size=batch_size),
        main_score_function=lambda scores: float(np.mean(scores)),
    )


def evaluate_per_dim(
    model: Any, data: RetrievalData, dims: Sequence[int], batch_size: int = 256
) -> dict[str, dict[str, float]]:
    """Score ``model`` at every dim: ``{"ndcg_at_10": {"384": ...}, "recall_at_100": {...}}``.

    Args:
        model: A SentenceTransformer; for speed, one whose input module is
            :class:`~st_matryoshka.models.CachedEmbeddings` (see :func:`st_matryoshka.surgery.fast_model`).
        data: Data with the qrels of the split to score.
        dims: Dimensions to score at (each through ``truncate_dim``).
        batch_size: Encoding batch size.

    Example:
        ::

            scores = evaluate_per_dim(fast, load_beir("../shared/data/scifact"), [384, 48])
            print(scores["ndcg_at_10"]["384"])
            # => 0.6451 (all-MiniLM-L6-v2, no adaptor)
    """
    result: dict[str, dict[str, float]] = {"ndcg_at_10": {}, "recall_at_100": {}}
    for dim, evaluator in zip(dims, dim_evaluators(data, dims, batch_size=batch_size)):
        metrics = evaluator(model)
        result["ndcg_at_10"][str(dim)] = float(metrics[f"{evaluator.name}_cosine_ndcg@10"])
        result["recall_at_100"][str(dim)] = float(metrics[f"{evaluator.name}_cosine_recall@100"])
    return result
