"""InformationRetrievalEvaluator with graded relevance for NDCG (as pytrec_eval and MTEB compute it)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator


class GradedInformationRetrievalEvaluator(InformationRetrievalEvaluator):
    """ST's InformationRetrievalEvaluator whose NDCG uses graded relevance (linear gain).

    ST's evaluator takes relevant documents as sets, so NDCG treats every grade as 1; on graded sets (Cranfield,
    TREC-DL) that saturates (MS MARCO subsets score ~0.99). This subclass keeps every other metric as ST computes it
    and replaces NDCG@k with ``Σ rel_i / log2(i + 2)`` over the ranking, divided by the same sum over the ideal
    ranking of the grades, the definition pytrec_eval (and so MTEB) uses. On binary qrels it equals ST's NDCG.

    Args:
        queries: ``{qid: text}``.
        corpus: ``{doc_id: text}``.
        relevance: ``{qid: {doc_id: grade}}`` with grades > 0.
        **kwargs: Passed to InformationRetrievalEvaluator (``truncate_dim``, ``ndcg_at_k``, ``name``, ...).

    Example:
        ::

            grades = {"q1": {"d1": 3, "d2": 1}}
            evaluator = GradedInformationRetrievalEvaluator(queries, corpus, grades, truncate_dim=48)
            evaluator(model)
    """

    def __init__(
        self, queries: dict[str, str], corpus: dict[str, str], relevance: dict[str, dict[str, int]], **kwargs: Any
    ) -> None:
        bad = [(q, d, g) for q, docs in relevance.items() for d, g in docs.items() if not g > 0]
        if bad:
            raise ValueError(f"relevance grades must be > 0, got {bad[:3]}")
        super().__init__(queries, corpus, {q: set(docs) for q, docs in relevance.items()}, **kwargs)
        self.relevance = relevance

    def compute_metrics(self, queries_result_list: list[object]) -> dict[str, dict[int, float]]:
        scores = super().compute_metrics(queries_result_list)
        ndcg: dict[int, list[float]] = {k: [] for k in self.ndcg_at_k}
        for query_itr, hits in enumerate(queries_result_list):
            grades = self.relevance[self.queries_ids[query_itr]]
            ranked = sorted(hits, key=lambda x: (-x["score"], x["corpus_id"]))
            ideal = sorted(grades.values(), reverse=True)
            for k in self.ndcg_at_k:
                gains = [grades.get(hit["corpus_id"], 0) for hit in ranked[:k]]
                ndcg[k].append(self.compute_dcg_at_k(gains, k) / self.compute_dcg_at_k(ideal, k))
        scores["ndcg@k"] = {k: float(np.mean(v)) for k, v in ndcg.items()}
        return scores
