"""Unsupervised Matryoshka-Adaptor loss: pairwise, top-k and reconstruction terms over prefixes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from st_matryoshka._validation import check_dims
from st_matryoshka.losses.cross_batch_memory import SelectableCrossBatchMemory
from st_matryoshka.models.matryoshka_adaptor import REFERENCE_KEY, RESIDUAL_KEY
from st_matryoshka.quantization import check_precisions, quantize_prefix


def similarity_preservation_terms(
    embeddings: torch.Tensor,
    reference: torch.Tensor,
    matryoshka_dims: Sequence[int],
    top_k: int,
    temperature: float = 0.05,
    precisions: Sequence[tuple[str, float]] = (("float32", 1.0),),
    thresholds: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(L_pair, L_topk, L_distill)`` summed over ``matryoshka_dims`` (and weighted ``precisions``).

    ``L_pair`` is the mean absolute difference between the cosine similarity of every pair of prefixes
    ``ê_i[:m], ê_j[:m]`` and that of the full reference embeddings ``e_i, e_j``; ``L_topk`` is the same restricted
    to each item's ``top_k`` most similar items under the reference. ``L_distill`` is the KL divergence from each
    item's softmax over the other items' reference similarities (``/ temperature``) to the same softmax over prefix
    similarities: it weighs near neighbours most, which is what retrieval needs. Each ``(precision, weight)`` adds
    the three terms computed on the prefixes' codes at that precision (:func:`quantize_prefix`), times ``weight``.
    ``thresholds`` (the adaptor's bit thresholds, subtracted in its output) are added back for the float32 terms:
    they move the codes only, and the float terms keep the similarities of the output before them.
    """
    ref = F.normalize(reference, dim=-1)
    target = ref @ ref.T
    n = target.shape[0]
    off_diag = ~torch.eye(n, dtype=torch.bool, device=target.device)
    k = min(top_k, n - 1)
    neighbours = target.masked_fill(~off_diag, float("-inf")).topk(k, dim=1).indices if k > 0 else None
    pair = embeddings.new_zeros(())
    topk = embeddings.new_zeros(())
    distill = embeddings.new_zeros(())
    teacher = (target / temperature).masked_fill(~off_diag, float("-inf")).softmax(dim=1)
    log_teacher = teacher.clamp_min(1e-12).log()
    for dim in matryoshka_dims:
        normalised = F.normalize(embeddings[:, :dim], dim=-1)
        for precision, weight in precisions:
            if precision == "float32" and thresholds is not None:
                prefix = F.normalize(embeddings[:, :dim] + thresholds[:dim], dim=-1)
            else:
                prefix = quantize_prefix(normalised, precision)
            sims = prefix @ prefix.T
            diff = (sims - target).abs()
            pair = pair + weight * diff[off_diag].mean()
            if neighbours is not None:
                topk = topk + weight * diff.gather(1, neighbours).mean()
            log_student = (sims / temperature).masked_fill(~off_diag, float("-inf")).log_softmax(dim=1)
            kl = teacher * (log_teacher - log_student.masked_fill(~off_diag, 0.0))
            distill = distill + weight * kl.sum(dim=1).mean()
    return pair, topk, distill


class MatryoshkaUnsupervisedLoss(nn.Module):
    """Keeps the similarities of every prefix ``ê[:m]`` close to those of the original embedding ``e``.

    ``L = L_pair + α · L_topk + β · L_rec + δ · L_distill`` where, over all pairs ``(i, j)`` of the batch (all
    columns together), ``L_pair`` averages ``|cos(ê_i[:m], ê_j[:m]) − cos(e_i, e_j)|``, ``L_topk`` does the same
    over each item's ``top_k`` nearest neighbours under ``e``, both summed over ``matryoshka_dims``, and ``L_rec``
    is the mean squared norm of the adaptor's residual ``‖f(e)‖²`` (``‖ê − e‖²`` for a plain adaptor; for an
    adaptor with reduction stages, which only permute and rotate, the residual before them) that keeps the adapted
    embedding near the original.

    With ``memory_size`` set, ``L_topk`` takes each item's ``top_k`` neighbours from a
    :class:`~st_matryoshka.losses.SelectableCrossBatchMemory` of backbone embeddings from earlier batches instead of
    from the batch (SMEC's S-XBM, eq. 7); the memory entries are passed through the current adaptor.

    ``L_distill`` is our addition to the paper's loss (set ``distill_weight=0`` for the paper's): per item, the KL
    divergence between the softmax of its similarities to the rest of the batch under ``e`` and under ``ê[:m]``
    (``temperature`` 0.05). ``L_pair`` is ruled by the many far pairs; this term weighs near neighbours most. On
    the benchmark sets it is what makes the label-free neighbour-overlap criterion rise during training instead of
    fall (see BENCHMARKS.md for the ablation). Here ``e`` is the
    adaptor's own (normalised, rotated) input, which it exposes in training under
    :data:`~st_matryoshka.models.matryoshka_adaptor.REFERENCE_KEY`; rotation and normalisation leave cosine
    similarities unchanged, so the targets are those of the backbone.

    Args:
        model: A SentenceTransformer whose pipeline contains a
            :class:`~st_matryoshka.models.MatryoshkaAdaptor`.
        matryoshka_dims: Prefix sizes, strictly descending; include the full width to keep it intact.
        top_k: Neighbours per item for ``L_topk``.
        topk_weight: α, the weight of ``L_topk``.
        reconstruction_weight: β, the weight of ``L_rec``.
        distill_weight: δ, the weight of ``L_distill``; ``0`` gives the paper's loss.
        temperature: Softmax temperature of ``L_distill``.
        memory_size: Entries of the cross-batch memory; ``None`` (default) takes ``L_topk`` neighbours in-batch.
        precisions: Index precisions to train for (quantisation-aware training): ``int8`` and ``binary`` add
            ``L_pair``, ``L_topk`` (in-batch or over the memory) and ``L_distill`` computed on each prefix's codes
            (:func:`quantize_prefix`, straight-through), times ``quantization_weight``; ``float32`` is always trained.
        quantization_weight: Weight of the terms on codes.

    References:
        Yoon et al., "Matryoshka-Adaptor: Unsupervised and Supervised Tuning for Smaller Embedding Dimensions",
        EMNLP 2024, https://arxiv.org/abs/2407.20243

    Inputs:
        +---------------------------+--------+
        | Texts                     | Labels |
        +===========================+========+
        | (text) in one column      | none   |
        +---------------------------+--------+

    Example:
        ::

            import numpy as np, torch
            from sentence_transformers import SentenceTransformer
            from st_matryoshka.losses import MatryoshkaUnsupervisedLoss
            from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor

            vectors = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
            model = SentenceTransformer(
                modules=[CachedEmbeddings(list("abcd"), vectors), MatryoshkaAdaptor(8)], device="cpu"
            )
            loss = MatryoshkaUnsupervisedLoss(model, matryoshka_dims=[8, 4, 2], top_k=2)
            features = model.preprocess(list("abcd"))
            print(sorted(loss([features], None)))
            # => ['distill', 'pair', 'reconstruction', 'topk']
    """

    def __init__(
        self,
        model: nn.Module,
        matryoshka_dims: Sequence[int],
        top_k: int = 10,
        topk_weight: float = 1.0,
        reconstruction_weight: float = 1.0,
        distill_weight: float = 1.0,
        temperature: float = 0.05,
        memory_size: int | None = None,
        precisions: Sequence[str] = ("float32",),
        quantization_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.model = model
        check_precisions(precisions, [])
        if quantization_weight < 0:
            raise ValueError(f"quantization_weight must be >= 0, got {quantization_weight!r}")
        self.precisions = list(dict.fromkeys(["float32", *precisions]))
        self.quantization_weight = quantization_weight
        self.matryoshka_dims = check_dims(matryoshka_dims)
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        weights = (("topk_weight", topk_weight), ("reconstruction_weight", reconstruction_weight))
        for name, value in (*weights, ("distill_weight", distill_weight)):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.top_k = top_k
        self.topk_weight = topk_weight
        self.reconstruction_weight = reconstruction_weight
        self.distill_weight = distill_weight
        self.temperature = temperature
        self.memory_size = memory_size
        self.memory: SelectableCrossBatchMemory | None = None
        adaptors = [m for m in model if hasattr(m, "adapt") and hasattr(m, "embedding_dim")]
        self._adaptor: nn.Module | None = adaptors[0] if adaptors else None
        if memory_size is not None:
            if not adaptors:
                raise ValueError(f"memory_size={memory_size!r} needs a model with a MatryoshkaAdaptor module")
            self._adaptor = adaptors[0]
            self.memory = SelectableCrossBatchMemory(adaptors[0].embedding_dim, memory_size=memory_size, top_k=top_k)

    def weighted_precisions(self) -> list[tuple[str, float]]:
        """``(precision, weight)`` of every precision trained: float32 at 1, codes at ``quantization_weight``."""
        return [(p, 1.0 if p == "float32" else self.quantization_weight) for p in self.precisions]

    def set_matryoshka_dims(self, dims: Sequence[int]) -> None:
        """Change the prefix sizes the loss covers (used by :class:`~st_matryoshka.callbacks.StageCallback`)."""
        self.matryoshka_dims = check_dims(dims)

    def embed(self, sentence_features: Iterable[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the model on each column; return ``(adapted, reference, residual)``, columns concatenated."""
        adapted, reference, residual = [], [], []
        for features in sentence_features:
            out = self.model(features)
            if REFERENCE_KEY not in out:
                raise ValueError(
                    f"{type(self).__name__} needs a model with a MatryoshkaAdaptor in training mode: the features "
                    f"have no {REFERENCE_KEY!r}"
                )
            adapted.append(out["sentence_embedding"])
            reference.append(out[REFERENCE_KEY])
            residual.append(
                out[RESIDUAL_KEY] if RESIDUAL_KEY in out else out["sentence_embedding"] - out[REFERENCE_KEY]
            )
        return torch.cat(adapted), torch.cat(reference), torch.cat(residual)

    def terms(
        self, adapted: torch.Tensor, reference: torch.Tensor, residual: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The weighted loss terms for already computed adapted and reference embeddings (and body residual).

        With a memory, the batch's reference vectors are enqueued afterwards when gradients are enabled (training).
        """
        pair, topk, distill = similarity_preservation_terms(
            adapted,
            reference,
            self.matryoshka_dims,
            0 if self.memory is not None else self.top_k,
            self.temperature,
            self.weighted_precisions(),
            self._adaptor.thresholds if getattr(self._adaptor, "bit_thresholds", False) else None,
        )
        if self.memory is not None:  # L_topk over the memory's neighbours, on the prefixes and on their codes
            topk = self.memory.preservation_loss(
                adapted, reference, self._adaptor.adapt, self.matryoshka_dims, self.weighted_precisions()
            )
            if torch.is_grad_enabled():
                self.memory.enqueue(reference)
        if residual is None:
            residual = adapted - reference
        rec = residual.pow(2).sum(dim=-1).mean()
        terms = {"pair": pair, "topk": self.topk_weight * topk, "reconstruction": self.reconstruction_weight * rec}
        if self.distill_weight > 0:
            terms["distill"] = self.distill_weight * distill
        return terms

    def forward(
        self, sentence_features: Iterable[dict[str, Any]], labels: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return self.terms(*self.embed(sentence_features))

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "matryoshka_dims": self.matryoshka_dims,
            "top_k": self.top_k,
            "topk_weight": self.topk_weight,
            "reconstruction_weight": self.reconstruction_weight,
            "distill_weight": self.distill_weight,
            "temperature": self.temperature,
            "memory_size": self.memory_size,
            "precisions": self.precisions,
            "quantization_weight": self.quantization_weight,
        }

    @property
    def citation(self) -> str:
        return """
@inproceedings{yoon2024matryoshka,
    title={Matryoshka-Adaptor: Unsupervised and Supervised Tuning for Smaller Embedding Dimensions},
    author={Yoon, Jinsung and Sinha, Rajarishi and Arik, Sercan O and Pfister, Tomas},
    booktitle={Proceedings of the 2024 Conference on Empirical Methods in Natural Language Processing},
    year={2024}
}
"""
