"""Train and extend SMEC adaptors (Zhang et al. 2025): the model-level wrappers of the engine's ``smec`` plan.

SMEC = a :class:`~st_matryoshka.models.SMECAdaptor` (Matryoshka-Adaptor body, then reduction stages with Adaptive
Dimension Selection), trained stage by stage (SMRL: one :class:`~st_matryoshka.callbacks.Stage` per dim) with the
Selectable Cross-Batch Memory in the unsupervised term, by :func:`st_matryoshka.engine.fit_adaptor`. Each switch of
:class:`SMECTrainingConfig` turns one component off, for the ablation: with all three off this is the supervised
Matryoshka-Adaptor (MRL-style: one joint stage, one loss over every dim).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer

from st_matryoshka._validation import ParameterError
from st_matryoshka.config import SMECTrainingConfig
from st_matryoshka.data import RetrievalData
from st_matryoshka.engine import StageResult, fit_adaptor
from st_matryoshka.surgery import smec_adaptor_of, with_adaptor
from st_matryoshka.training import train_adaptor

__all__ = ["SMECTrainingConfig", "extend_smec", "train_smec"]  # SMECTrainingConfig: documented import (README)


def train_smec(
    model: SentenceTransformer,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: SMECTrainingConfig,
    supervised: bool = True,
    callbacks: list[Any] | None = None,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Train a SMEC adaptor for ``model``; return ``(model with the adaptor, stage results)``.

    Deprecated: use ``st_matryoshka.train(model, data, SMECConfig(...), source=BackboneSource(corpus_vectors=...,
    query_vectors=...), callbacks=...)``; this name goes in the next release.

    Args:
        model: The base SentenceTransformer (must contain Pooling).
        data: The data; with ``supervised`` its qrels must be the training split.
        corpus_vectors: Backbone embeddings of ``data.corpus``, in order.
        query_vectors: Backbone embeddings of ``data.queries``, in order.
        config: Hyper-parameters, including the SMRL / ADS / S-XBM switches.
        supervised: Run the supervised phase after the unsupervised one.
        callbacks: Extra trainer callbacks (e.g. :class:`~st_matryoshka.callbacks.GradientVarianceCallback`).

    Example:
        ::

            config = SMECTrainingConfig(dims=[192, 96, 48, 24])
            trained, stages = train_smec(model, load_beir(path, "train"), cv, qv, config)
            trained.encode(["a query"], truncate_dim=24)
    """
    warnings.warn(
        "train_smec is deprecated and goes in the next release: use st_matryoshka.train(model, data, SMECConfig(...), "
        "source=BackboneSource(corpus_vectors=..., query_vectors=...))",
        DeprecationWarning,
        stacklevel=2,
    )
    trained, _, _, results = train_adaptor(
        model, "smec", data, corpus_vectors, query_vectors, config, supervised, callbacks=callbacks
    )
    return trained, results


def extend_smec(
    model: SentenceTransformer,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    dim: int,
    config: SMECTrainingConfig,
    supervised: bool = True,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Add one dim to a trained SMEC model, training only the new stage (SMEC's continued training).

    Without ``config.allow_any_dims`` the new dim must be half the smallest trained dim; with it, any untrained dim
    below the width works, including intermediate ones (between two trained dims). Every other parameter stays
    frozen: outputs at the trained dims below the new one are bit-identical, and at larger trained dims their
    similarities are unchanged (the new stage is a permutation and rotation of one block).

    Example:
        ::

            extended, stages = extend_smec(trained, data, cv, qv, 12, SMECTrainingConfig(dims=[12]))

    The caller's model is not changed: the new stage is trained on a copy of its adaptor, so a failed extension
    leaves nothing behind.
    """
    adaptor = copy.deepcopy(smec_adaptor_of(model))
    trained = adaptor.trained_dims
    smallest = trained[-1]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ParameterError("dim", f"dim: the new dim must be a positive int, got {dim!r}")
    if dim in trained:
        raise ParameterError("dim", f"dim: {dim} is already trained (trained dims: {trained})")
    if not config.allow_any_dims:
        if dim >= smallest:
            raise ParameterError(
                "dim",
                f"dim: {dim} is not smaller than the smallest trained dim {smallest} (trained dims: {trained}); "
                "set allow_any_dims to add an intermediate dim",
            )
        if dim * 2 != smallest:
            raise ParameterError(
                "dim",
                f"dim: {dim} is not half of the smallest trained dim {smallest}; set allow_any_dims for other steps",
            )
    if dim >= adaptor.embedding_dim:
        raise ParameterError("dim", f"dim: {dim} must be below the width {adaptor.embedding_dim}")
    # One new stage, trained alone with its own transition loss; ADS as the saved adaptor has it.
    config = replace(config, ads=adaptor.use_ads, smrl=True)
    index = adaptor.add_stage(dim)
    if not adaptor.stage_parameters(index):
        raise ParameterError(
            "model",
            f"model: the adaptor has neither ADS nor stage rotations (use_ads={adaptor.use_ads}, "
            f"stage_rotation={adaptor.stage_rotation}), so a new stage has nothing to learn",
        )
    width = adaptor.embedding_dim
    _, results = fit_adaptor(
        "smec", width, data, corpus_vectors, query_vectors, config, supervised, adaptor=adaptor, indices=[index]
    )
    return with_adaptor(model, adaptor), results
