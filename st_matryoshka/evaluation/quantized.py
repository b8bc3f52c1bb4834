"""Retrieval scores of quantised prefixes: dims × precisions (float32, int8, binary), with optional rescoring.

Bytes are what an index pays per vector, so a dim is scored at each precision Sentence-Transformers'
``quantize_embeddings`` offers. Documents and queries are both quantised (symmetric codes): int8 with per-dimension
ranges of the unit-normalised prefix (a trained model's are calibrated on its training corpus and stored in its
``st_matryoshka.json``, :func:`calibrate_int8`; otherwise computed once on the scored corpus, never per batch;
scored as the values the codes stand for),
binary as the sign bits (8 dims a byte, scored by the ±1 dot product, Hamming-equivalent). With ``rescore=K`` the
top ``K`` documents by code score are re-ranked by the float query prefix against the same document codes: only the
codes are stored per document, so the bytes per vector do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from st_matryoshka.data import RetrievalData
from st_matryoshka.quantization import (
    bytes_per_vector,
    check_precisions,
    index_codes,
    normalised_prefix,
    stored_ranges,
)


def _metrics(
    scores: np.ndarray, data: RetrievalData, query_rows: list[int], k_ndcg: int = 10, k_recall: int = 100
) -> tuple[float, float]:
    """NDCG@10 (graded, linear gain) and Recall@100 of a (queries × corpus) score matrix, ties broken by corpus id."""
    ndcgs, recalls = [], []
    discount = 1.0 / np.log2(np.arange(2, k_recall + 2))
    for row, qid in zip(scores, query_rows):
        grades = data.qrels[data.query_ids[qid]]
        top = np.argsort(-row, kind="stable")[: max(k_recall, k_ndcg)]
        ranked = sorted(top.tolist(), key=lambda j: (-row[j], data.corpus_ids[j]))
        gains = np.array([grades.get(data.corpus_ids[j], 0) for j in ranked], dtype=np.float64)
        ideal = np.array(sorted(grades.values(), reverse=True)[:k_ndcg], dtype=np.float64)
        dcg = float((gains[:k_ndcg] * discount[: len(gains[:k_ndcg])]).sum())
        ndcgs.append(dcg / float((ideal * discount[: len(ideal)]).sum()))
        found = {data.corpus_ids[j] for j in ranked[:k_recall]} & set(grades)
        recalls.append(len(found) / len(grades))
    return float(np.mean(ndcgs)), float(np.mean(recalls))


def evaluate_quantized(
    model: Any,
    data: RetrievalData,
    dims: Sequence[int],
    precision: str,
    rescore: int | None = None,
    batch_size: int = 512,
    int8_ranges: dict[str, list[list[float]]] | None = None,
) -> dict[str, dict[str, float]]:
    """NDCG@10 and Recall@100 at each dim with quantised codes, and the bytes per vector of each.

    Args:
        model: A SentenceTransformer (e.g. the cached-vector fast model); its full-width outputs are encoded once.
        data: The data with the qrels to score.
        dims: Prefix sizes.
        precision: ``int8`` or ``binary`` (``float32`` gives the float scores, as ``evaluate_per_dim``).
        rescore: Re-rank the top ``rescore`` documents by the float query prefix against the document codes.
        batch_size: Queries scored at a time.
        int8_ranges: The model's stored calibration (``MatryoshkaMetadata.int8_ranges``); dims without one use the
            ranges of the scored corpus.

    Returns:
        ``{"ndcg_at_10": {dim: v}, "recall_at_100": {dim: v}, "bytes_per_vector": {dim: bytes}}``.

    Example:
        ::

            scores = evaluate_quantized(fast_model, load_beir(path, "test"), [384, 48], "binary", rescore=100)
    """
    check_precisions([precision], dims, rescore)
    query_rows = [i for i, q in enumerate(data.query_ids) if q in data.qrels]
    kw = {"convert_to_numpy": True, "batch_size": batch_size, "show_progress_bar": False}
    corpus = model.encode(list(data.corpus), **kw).astype(np.float32)
    queries = model.encode([data.queries[i] for i in query_rows], **kw).astype(np.float32)
    out: dict[str, dict[str, float]] = {"ndcg_at_10": {}, "recall_at_100": {}, "bytes_per_vector": {}}
    for dim in dims:
        c, q = normalised_prefix(corpus, dim), normalised_prefix(queries, dim)
        ranges = None
        if precision == "int8":
            ranges = stored_ranges(int8_ranges, dim)
            if ranges is None:
                ranges = np.stack([c.min(axis=0), c.max(axis=0)])
        doc_codes = index_codes(c, precision, ranges)
        query_codes = index_codes(q, precision, ranges)
        scores = np.concatenate(
            [query_codes[i : i + batch_size] @ doc_codes.T for i in range(0, len(query_codes), batch_size)]
        )
        if rescore is not None and precision != "float32":
            candidates = np.argpartition(-scores, min(rescore, scores.shape[1]) - 1, axis=1)[:, :rescore]
            rescored = np.full_like(scores, -np.inf)
            exact = np.einsum("qd,qkd->qk", q, doc_codes[candidates])
            np.put_along_axis(rescored, candidates, exact, axis=1)
            scores = rescored
        ndcg, recall = _metrics(scores, data, query_rows)
        out["ndcg_at_10"][str(dim)] = ndcg
        out["recall_at_100"][str(dim)] = recall
        out["bytes_per_vector"][str(dim)] = bytes_per_vector(dim)[precision]
    return out
