"""Supervised ranking loss across Matryoshka prefixes (SMEC eq. 8), joined with the unsupervised terms."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from st_matryoshka._validation import check_dims
from st_matryoshka.losses.matryoshka_unsupervised import MatryoshkaUnsupervisedLoss
from st_matryoshka.quantization import quantize_prefix


def rank_loss(
    query: torch.Tensor,
    docs: torch.Tensor,
    relevance: torch.Tensor,
    dims: Sequence[int],
    precisions: Sequence[tuple[str, float]] = (("float32", 1.0),),
    margin: float | None = None,
) -> torch.Tensor:
    """Eq. 8 of SMEC: ``Σ_m Σ_{j,k: y_ij > y_ik} (y_ij − y_ik) · log(1 + exp(s_ik[:m] − s_ij[:m]))``.

    The sum over pairs is divided by the total weight ``Σ (y_ij − y_ik)`` so the scale does not depend on the batch
    size; it is summed over ``dims``. With ``margin``, each pair's term is DIVE's self-limiting hinge
    ``max(0, margin + s_ik[:m] − s_ij[:m])`` instead: zero, with zero gradient, once the pair is ranked by ``margin``.

    Args:
        query: ``(B, D)`` query embeddings.
        docs: ``(N, D)`` candidate documents.
        relevance: ``(B, N)`` graded relevance of each document to each query (0 = not relevant).
        dims: Prefix sizes.
        precisions: ``(precision, weight)``: each adds the loss on both sides' codes at that precision
            (:func:`~st_matryoshka.quantization.quantize_prefix`), times ``weight``.
        margin: ``None`` for eq. 8; a cosine margin for the hinge (Zhao, "DIVE", arXiv 2605.20689).
    """
    pair_loss = F.softplus if margin is None else (lambda gap: F.relu(gap + margin))
    rows, cols = (relevance > 0).nonzero(as_tuple=True)
    if rows.numel() == 0:
        return query.new_zeros(())
    weight = (relevance[rows, cols].unsqueeze(1) - relevance[rows]).clamp(min=0)
    total = query.new_zeros(())
    for dim in dims:
        q, d = F.normalize(query[:, :dim], dim=-1), F.normalize(docs[:, :dim], dim=-1)
        for precision, scale in precisions:
            s = quantize_prefix(q, precision) @ quantize_prefix(d, precision).T
            gap = s[rows] - s[rows, cols].unsqueeze(1)
            total = total + scale * (weight * pair_loss(gap)).sum() / weight.sum().clamp(min=1e-12)
    return total


class MatryoshkaRankLoss(nn.Module):
    """Ranking loss over every prefix, plus the unsupervised Matryoshka terms (SMEC eq. 9).

    Each row holds a query, ``n`` documents and a label list of their ``n`` graded relevances (0 for negatives).
    Every query is ranked against all documents of the batch: its own documents carry their labels, other rows'
    documents count as non-relevant, except copies of its own relevant documents (same backbone embedding),
    which inherit the label. The total is ``L_rank + α · L_unsup``, where ``L_unsup`` is
    :class:`MatryoshkaUnsupervisedLoss` over all texts of the batch; terms are returned separately.

    Args:
        model: A SentenceTransformer whose pipeline contains a :class:`~st_matryoshka.models.MatryoshkaAdaptor`.
        matryoshka_dims: Prefix sizes, strictly descending; include the full width to keep it intact.
        unsupervised_weight: α; ``0`` trains on the ranking loss alone.
        top_k: Neighbours per item for the unsupervised ``L_topk`` term.
        distill_weight: Weight of the unsupervised ``L_distill`` term; ``0`` (default) keeps the paper's terms.
        memory_size: Entries of S-XBM's cross-batch memory for the unsupervised ``L_topk`` term; ``None`` (default)
            takes neighbours in-batch. See :class:`MatryoshkaUnsupervisedLoss`.
        precisions: Index precisions to train for: ``int8``/``binary`` add the rank loss and the unsupervised terms on
            the prefixes' codes (straight-through), times ``quantization_weight``.
        quantization_weight: Weight of the terms on codes.
        margin: ``None`` ranks with eq. 8; a number with the self-limiting hinge of :func:`rank_loss`.
        l2sp_weight: Weight of L2-SP, ``Σ ||θ − θ_0||²`` over the model's trainable parameters, ``θ_0`` their values
            when the loss is built (the unsupervised stage's weights); ``0`` (default) adds no term.

    References:
        Zhang et al., "SMEC: Rethinking Matryoshka Representation Learning for Retrieval Embedding Compression",
        https://arxiv.org/abs/2510.12474 (eq. 8, 9); Yoon et al. 2024, https://arxiv.org/abs/2407.20243

    Inputs:
        +-----------------------------------+------------------------------+
        | Texts                             | Labels                       |
        +===================================+==============================+
        | (query, doc_1, ..., doc_n)        | list of n relevance grades   |
        +-----------------------------------+------------------------------+

    Example:
        ::

            import numpy as np, torch
            from sentence_transformers import SentenceTransformer
            from st_matryoshka.losses import MatryoshkaRankLoss
            from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor

            vectors = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
            model = SentenceTransformer(
                modules=[CachedEmbeddings(["q1", "q2", "d1", "d2"], vectors), MatryoshkaAdaptor(8)], device="cpu"
            )
            loss = MatryoshkaRankLoss(model, matryoshka_dims=[8, 4])
            columns = [model.preprocess(["q1", "q2"]), model.preprocess(["d1", "d2"])]
            print(sorted(loss(columns, torch.tensor([[1.0], [1.0]]))))
            # => ['pair', 'rank', 'reconstruction', 'topk']
    """

    def __init__(
        self,
        model: nn.Module,
        matryoshka_dims: Sequence[int],
        unsupervised_weight: float = 1.0,
        top_k: int = 10,
        distill_weight: float = 0.0,
        memory_size: int | None = None,
        precisions: Sequence[str] = ("float32",),
        quantization_weight: float = 1.0,
        margin: float | None = None,
        l2sp_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.matryoshka_dims = check_dims(matryoshka_dims)
        if unsupervised_weight < 0:
            raise ValueError(f"unsupervised_weight must be >= 0, got {unsupervised_weight!r}")
        self.unsupervised_weight = unsupervised_weight
        self.top_k = top_k
        self.distill_weight = distill_weight
        self.memory_size = memory_size
        if margin is not None and not margin >= 0:
            raise ValueError(f"margin must be >= 0 or None, got {margin!r}")
        self.margin = margin
        if not l2sp_weight >= 0:
            raise ValueError(f"l2sp_weight must be >= 0, got {l2sp_weight!r}")
        self.l2sp_weight = l2sp_weight
        # L2-SP's anchor: the weights the supervised stage starts from (not a buffer: never saved with the loss).
        self.anchor = (
            {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
            if l2sp_weight
            else {}
        )
        self.unsupervised = MatryoshkaUnsupervisedLoss(
            model,
            self.matryoshka_dims,
            top_k=top_k,
            distill_weight=distill_weight,
            memory_size=memory_size,
            precisions=precisions,
            quantization_weight=quantization_weight,
        )

    def set_matryoshka_dims(self, dims: Sequence[int]) -> None:
        """Change the prefix sizes the loss covers (used by :class:`~st_matryoshka.callbacks.StageCallback`)."""
        self.matryoshka_dims = check_dims(dims)
        self.unsupervised.set_matryoshka_dims(dims)

    def forward(self, sentence_features: Iterable[dict[str, Any]], labels: torch.Tensor) -> dict[str, torch.Tensor]:
        columns = list(sentence_features)
        if len(columns) < 2:
            raise ValueError(f"{type(self).__name__} needs a query column and at least one document column")
        adapted, reference, residual = self.unsupervised.embed(columns)
        batch = adapted.shape[0] // len(columns)
        n_docs = len(columns) - 1
        labels = labels.to(adapted.dtype).reshape(batch, -1)
        if labels.shape[1] != n_docs:
            raise ValueError(f"labels must hold {n_docs} relevance grades per row, got shape {tuple(labels.shape)}")
        query, docs = adapted[:batch], adapted[batch:]
        # Document columns are stacked column-major: doc c of row r sits at c * batch + r.
        device = adapted.device
        relevance = torch.zeros(batch, docs.shape[0], dtype=adapted.dtype, device=device)
        row = torch.arange(batch, device=device).unsqueeze(1)
        relevance[row, torch.arange(n_docs, device=device) * batch + row] = labels
        # A copy of a relevant document elsewhere in the batch (same backbone embedding) inherits its grade.
        text_id = torch.unique(reference[batch:], dim=0, return_inverse=True)[1]
        rows, cols = (relevance > 0).nonzero(as_tuple=True)
        copies = (text_id[cols].unsqueeze(1) == text_id.unsqueeze(0)).to(adapted.dtype) * relevance[rows, cols, None]
        relevance = relevance.scatter_reduce(0, rows.unsqueeze(1).expand_as(copies), copies, "amax")
        weighted = self.unsupervised.weighted_precisions()
        terms = {"rank": rank_loss(query, docs, relevance, self.matryoshka_dims, weighted, self.margin)}
        if self.l2sp_weight:
            params = dict(self.model.named_parameters())
            drift = sum(
                ((params[name] - start.to(params[name].device)) ** 2).sum() for name, start in self.anchor.items()
            )
            terms["l2sp"] = self.l2sp_weight * drift
        if self.unsupervised_weight > 0:
            unsup = self.unsupervised.terms(adapted, reference, residual)
            terms.update({name: self.unsupervised_weight * value for name, value in unsup.items()})
        return terms

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "matryoshka_dims": self.matryoshka_dims,
            "unsupervised_weight": self.unsupervised_weight,
            "top_k": self.top_k,
            "distill_weight": self.distill_weight,
            "memory_size": self.memory_size,
            "precisions": self.unsupervised.precisions,
            "quantization_weight": self.unsupervised.quantization_weight,
            "margin": self.margin,
            "l2sp_weight": self.l2sp_weight,
        }

    @property
    def citation(self) -> str:
        return """
@article{zhang2025smec,
    title={SMEC: Rethinking Matryoshka Representation Learning for Retrieval Embedding Compression},
    author={Zhang, Biao and Chen, Lixin and Liu, Tong and Zheng, Bo},
    journal={arXiv preprint arXiv:2510.12474},
    year={2025}
}
"""
