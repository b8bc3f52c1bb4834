"""Adaptors on a SentenceTransformer: where the frozen backbone ends, inserting a trained adaptor, metadata, saving.

Training itself is :func:`st_matryoshka.engine.fit_adaptor` on the backbone's cached vectors (the transformer never
runs); :func:`train_matryoshka_adaptor` is its model-level wrapper: the trained adaptor is inserted into the real
model, so ``model.encode(texts, truncate_dim=k)`` works. The configs and engine helpers are re-exported here for
existing imports.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_matryoshka._io import atomic_folder, is_main_process
from st_matryoshka._validation import ParameterError
from st_matryoshka.config import AdaptorTrainingConfig, search_adaptor_config
from st_matryoshka.data import RetrievalData
from st_matryoshka.engine import StageResult, fit_adaptor, pca_adaptor
from st_matryoshka.metadata import TRAINING_FILE, MatryoshkaMetadata
from st_matryoshka.model_card import MatryoshkaModelCardData, dataset_key
from st_matryoshka.native import RECORD_FOLDER
from st_matryoshka.quantization import calibrate_int8, calibration_rows
from st_matryoshka.surgery import backbone_dim, fresh_card_data, head_of, native_model, trainable_of, with_adaptor

__all__ = [
    "AdaptorTrainingConfig",  # documented import (README); its home is st_matryoshka.config
    "fit_pca_adaptor",
    "metadata_for",
    "native_with_metadata",
    "save_model_atomic",
    "search_adaptor_config",
    "train_adaptor",
    "train_matryoshka_adaptor",
    "training_metadata",
]

logger = logging.getLogger(__name__)


def train_adaptor(
    model: SentenceTransformer | None,
    method: str,
    data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    config: AdaptorTrainingConfig,
    supervised: bool = False,
    summary: dict[str, Any] | None = None,
    data_name: str | None = None,
    callbacks: list[Any] | None = None,
) -> tuple[SentenceTransformer | None, torch.nn.Module, MatryoshkaMetadata, list[StageResult]]:
    """Fit → attach → metadata → calibrate, in one place: every way to train goes through here.

    Args:
        model: The base SentenceTransformer (must contain Pooling), or ``None`` for vectors alone.
        method: ``matryoshka-adaptor``, ``pca``, ``search-adaptor`` or ``smec``.
        data: The data; with ``supervised`` its qrels must be the training split.
        corpus_vectors: Backbone embeddings of ``data.corpus``, in order (an array or memory-mapped ``.npy``).
        query_vectors: Backbone embeddings of ``data.queries``, in order.
        config: The method's config (:func:`st_matryoshka.config.config_for`).
        supervised: Run the supervised phase after the unsupervised one.
        summary: The training record the metadata is built from (method, data, settings); default: the method,
            ``supervised`` and ``config``.
        data_name: What the corpus is, for the int8 calibration record (default: ``data.name``).
        callbacks: Extra trainer callbacks for every phase.

    Returns:
        ``(model with the adaptor or None, adaptor, metadata, stage results)``; the model's card data holds the
        metadata, so ``model.save`` writes the card.
    """
    width = backbone_dim(model) if model is not None else int(corpus_vectors.shape[1])
    adaptor, stages = fit_adaptor(method, width, data, corpus_vectors, query_vectors, config, supervised, callbacks)
    trained = with_adaptor(model, adaptor) if model is not None else None
    summary = summary or {"method": method, "supervised": supervised, "config": dict(config.__dict__)}
    metadata = metadata_for(width, head_of(trained) if trained is not None else [adaptor], summary, stages)
    calibrate(metadata, adaptor, corpus_vectors, data.name if data_name is None else data_name)
    adaptor.matryoshka_metadata = metadata  # model.save writes it beside the modules
    if trained is not None:
        trained.model_card_data.matryoshka = metadata
    return trained, adaptor, metadata, stages


def train_matryoshka_adaptor(
    model: SentenceTransformer,
    corpus_data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
    supervised: bool = False,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Train an adaptor for ``model`` and return ``(model with the adaptor, stage results)``.

    Deprecated: use ``st_matryoshka.train(model, data, MatryoshkaAdaptorConfig(...), source=BackboneSource(
    corpus_vectors=..., query_vectors=...))``, which names the method instead of guessing it from the config; this
    name goes in the next release.

    Args:
        model: The base SentenceTransformer (must contain Pooling).
        corpus_data: The data; for ``supervised=True`` its qrels must be the training split.
        corpus_vectors: Backbone embeddings of ``corpus_data.corpus``, in order.
        query_vectors: Backbone embeddings of ``corpus_data.queries``, in order.
        config: Hyper-parameters.
        supervised: Run the supervised stage after the unsupervised one.

    Example:
        ::

            config = AdaptorTrainingConfig()
            trained, stages = train_matryoshka_adaptor(model, load_beir(path, "train"), cv, qv, config)
            trained.encode(["a query"], truncate_dim=48)
    """
    warnings.warn(
        "train_matryoshka_adaptor is deprecated and goes in the next release: use st_matryoshka.train(model, data, "
        "MatryoshkaAdaptorConfig(...) or SearchAdaptorConfig(...), source=BackboneSource(corpus_vectors=..., "
        "query_vectors=...))",
        DeprecationWarning,
        stacklevel=2,
    )
    # search_adaptor_config is the one linear, supervised-only configuration
    method = "search-adaptor" if config.num_layers == 0 and config.unsupervised_epochs == 0 else "matryoshka-adaptor"
    trained, _, _, stages = train_adaptor(
        model, method, corpus_data, corpus_vectors, query_vectors, config, supervised
    )
    return trained, stages


def calibrate(metadata: MatryoshkaMetadata, adaptor: torch.nn.Module, corpus_vectors: Any, data_name: str) -> None:
    """Store in ``metadata`` the int8 ranges of ``adaptor``'s outputs on the training corpus at every trained dim.

    See :func:`st_matryoshka.quantization.calibrate_int8`; ``int8_calibration`` names the data and counts
    its documents.
    """
    metadata.int8_ranges = calibrate_int8(adaptor, corpus_vectors, metadata.dims)
    used = len(calibration_rows(len(corpus_vectors)))
    metadata.int8_calibration = {"data": dataset_key(data_name) or None, "documents": used}
    if used < len(corpus_vectors):
        metadata.int8_calibration["corpus_documents"] = int(len(corpus_vectors))


def fit_pca_adaptor(model: SentenceTransformer, corpus_vectors: np.ndarray) -> SentenceTransformer:
    """The PCA baseline as a module of ``model``: see :func:`pca_adaptor`."""
    trained = with_adaptor(model, pca_adaptor(backbone_dim(model), corpus_vectors))
    trained.model_card_data.matryoshka = MatryoshkaMetadata(dims=[backbone_dim(model)], method="pca")
    return trained


def training_metadata(
    model: SentenceTransformer, summary: dict[str, Any], stages: Sequence[StageResult] = ()
) -> MatryoshkaMetadata:
    """The :class:`MatryoshkaMetadata` of a model trained as ``summary`` (the CLI's training record) describes."""
    return metadata_for(backbone_dim(model), head_of(model), summary, stages)


def metadata_for(
    width: int, head: Sequence[torch.nn.Module], summary: dict[str, Any], stages: Sequence[StageResult] = ()
) -> MatryoshkaMetadata:
    """:func:`training_metadata` from the backbone width and the modules after it (no SentenceTransformer needed)."""
    trained = [m for m in head if hasattr(m, "trained_dims")]
    dims = trained[0].trained_dims if trained else [width, *summary.get("config", {}).get("dims", [])]
    losses: dict[str, str] = {}
    selection: dict[str, Any] = {}
    for stage in stages:
        losses.update(stage.losses)
        selection = stage.selection or selection
    data = summary.get("data")
    train_data = {"name": dataset_key(data)} if data else {}
    if summary.get("supervised"):
        train_data["split"] = summary.get("train_split", "train")
    config = {k: v for k, v in summary.get("config", {}).items() if k != "dims"}
    if summary.get("method") == "pca":  # the classic PCA baseline; no training settings apply but balanced bits
        config = {"center_input": True, "balance_bits": bool(config.get("balance_bits"))}
    return MatryoshkaMetadata(
        dims=[d for d in dims if d <= width],
        default_dim=summary.get("default_dim"),
        method=summary.get("method"),
        supervised=bool(summary.get("supervised")),
        base_model=summary.get("base_model"),
        train_data=train_data,
        config=config,
        selection=selection,
        losses=losses,
    )


def native_with_metadata(model: SentenceTransformer, metadata: MatryoshkaMetadata | None) -> SentenceTransformer:
    """``model`` as Sentence-Transformers' own modules, carrying ``metadata``.

    The folding is :func:`~st_matryoshka.surgery.native_model`; ``metadata`` goes into the card data (which writes
    ``st_matryoshka.json`` and the trainable adaptor on any save), ``truncate_dim`` (``metadata.default_dim``) and
    the trainable adaptor. What :class:`~st_matryoshka.api.Trained` holds and :func:`save_model_atomic` writes.
    """
    model = native_model(model)
    if metadata is None:
        return model
    card = model.model_card_data
    if not isinstance(card, MatryoshkaModelCardData):
        card = fresh_card_data(model)
        model.model_card_data = card
        card.register_model(model)
    card.matryoshka = metadata
    model.truncate_dim = metadata.default_dim
    record = trainable_of(model)
    if record is not None:
        record.module.matryoshka_metadata = metadata
    return model


def save_model_atomic(
    model: SentenceTransformer,
    output: str,
    overwrite: bool = False,
    extra: dict | None = None,
    metadata: MatryoshkaMetadata | None = None,
    inputs: Sequence[str | None] = (),
) -> None:
    """Save to a temporary folder beside ``output``, then move it into place: the one way our models are written.

    ``inputs`` (the paths the run read) must not lie in ``output`` (:func:`~st_matryoshka._io.check_output_free`).

    The folder holds only Sentence-Transformers' own modules (:func:`~st_matryoshka.surgery.native_model`) and the
    trainable adaptor beside them (``st_matryoshka_adaptor/``), so plain ``SentenceTransformer(output)`` loads it.

    An existing non-empty ``output`` is refused unless ``overwrite``; it is replaced only after the new model is
    completely written, so an interrupted save never leaves a half-written model behind. ``extra`` is written as the
    training record (``st_matryoshka_training.json``), ``metadata`` as ``st_matryoshka.json``, and the model card is
    rendered from ``metadata``.
    """
    model = native_with_metadata(model, metadata)
    record = trainable_of(model)
    if not is_main_process():  # under torchrun every process holds the same weights; rank 0 writes them
        return
    with atomic_folder(output, overwrite=overwrite, inputs=inputs) as tmp:
        try:
            model.save(tmp)
        except ValueError:
            raise
        except Exception as exc:  # safetensors raises its own error type on a full disk
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ParameterError("output", f"output: cannot write {output!r}: {reason}") from None
        if metadata is not None and not os.path.isfile(os.path.join(tmp, "README.md")):
            raise ValueError("save: the model card could not be rendered (the log above says why); nothing written")
        if record is not None and not os.path.isdir(os.path.join(tmp, RECORD_FOLDER)):
            raise ValueError(f"save: the trainable adaptor ({RECORD_FOLDER}/) was not written; nothing written")
        if extra is not None:
            with open(os.path.join(tmp, TRAINING_FILE), "w", encoding="utf-8") as f:
                json.dump(extra, f, indent=2, default=str)
        if metadata is not None:
            metadata.save(tmp)


def stage_summary(stages: Sequence[StageResult]) -> list[dict[str, Any]]:
    return [asdict(s) for s in stages]
