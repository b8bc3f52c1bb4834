"""Train and extend SMEC adaptors (Zhang et al. 2025): the model-level wrappers of the engine's ``smec`` plan.

SMEC = a :class:`~st_matryoshka.models.SMECAdaptor` (Matryoshka-Adaptor body, then reduction stages with Adaptive
Dimension Selection), trained stage by stage (SMRL: one :class:`~st_matryoshka.callbacks.Stage` per dim) with the
Selectable Cross-Batch Memory in the unsupervised term, by :func:`st_matryoshka.engine.fit_adaptor`. Each switch of
:class:`SMECTrainingConfig` turns one component off, for the ablation: with all three off this is the supervised
Matryoshka-Adaptor (MRL-style: one joint stage, one loss over every dim).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize

from st_matryoshka._validation import ParameterError
from st_matryoshka.config import SMECTrainingConfig
from st_matryoshka.data import RetrievalData
from st_matryoshka.engine import StageResult, check_supervised_data, fit_adaptor, keyed_data, train_phases
from st_matryoshka.models import SMECAdaptor
from st_matryoshka.training import backbone_dim, head_of, rebuild, split_index, with_adaptor, with_metadata

__all__ = ["SMECTrainingConfig", "extend_smec", "keyed_data", "smec_adaptor_of", "train_smec"]


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
    width = backbone_dim(model)
    adaptor, results = fit_adaptor("smec", width, data, corpus_vectors, query_vectors, config, supervised, callbacks)
    trained = _with_smec(model, adaptor)
    return with_metadata(trained, "smec", config, supervised, results, corpus_vectors, data.name), results


def _with_smec(model: SentenceTransformer, adaptor: SMECAdaptor) -> SentenceTransformer:
    """``model`` with ``adaptor``; a Normalize after it is dropped when the adaptor's output is already unit-length."""
    combined = with_adaptor(model, adaptor)
    if not adaptor.normalize_output:
        return combined
    modules = [m for i, m in enumerate(combined) if i <= split_index(combined) or not isinstance(m, Normalize)]
    return rebuild(combined, modules)


def smec_adaptor_of(model: SentenceTransformer) -> SMECAdaptor:
    """The :class:`SMECAdaptor` of ``model``, or an error naming what the model holds instead."""
    found = [m for m in head_of(model) if isinstance(m, SMECAdaptor)]
    if len(found) != 1:
        names = [type(m).__name__ for m in model]
        raise ParameterError("model", f"model: expected one SMECAdaptor module, found modules {names}")
    return found[0]


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
    config.check_memory(supervised)
    if supervised:
        check_supervised_data(data, config)
    if tuple(corpus_vectors.shape) != (len(data.corpus), adaptor.embedding_dim):
        raise ParameterError(
            "corpus_vectors",
            f"corpus_vectors have shape {tuple(corpus_vectors.shape)}, expected ({len(data.corpus)}, "
            f"{adaptor.embedding_dim})",
        )
    index = adaptor.add_stage(dim)
    if not adaptor.stage_parameters(index):
        raise ParameterError(
            "model",
            f"model: the adaptor has neither ADS nor stage rotations (use_ads={adaptor.use_ads}, "
            f"stage_rotation={adaptor.stage_rotation}), so a new stage has nothing to learn"
        )
    results = train_phases(
        adaptor, data, corpus_vectors, query_vectors, config, supervised, indices=[index], train_body=False
    )
    return _with_smec(model, adaptor), results
