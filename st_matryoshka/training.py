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
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Module
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

from st_matryoshka._io import atomic_folder, is_main_process
from st_matryoshka.config import AdaptorTrainingConfig, search_adaptor_config
from st_matryoshka.data import RetrievalData
from st_matryoshka.engine import (
    StageResult,
    check_supervised_data,
    chunked_top_k,
    data_fast_model,
    fast_model,
    fast_model_of_rows,
    fit_adaptor,
    holdout_split,
    pca_adaptor,
)
from st_matryoshka.metadata import TRAINING_FILE, MatryoshkaMetadata
from st_matryoshka.model_card import MatryoshkaModelCardData, copy_card_data, dataset_key

__all__ = [
    "AdaptorTrainingConfig",
    "StageResult",
    "backbone_dim",
    "backbone_of",
    "check_supervised_data",
    "chunked_top_k",
    "data_fast_model",
    "fast_model",
    "fast_model_of_rows",
    "fit_pca_adaptor",
    "head_of",
    "holdout_split",
    "metadata_for",
    "pca_adaptor",
    "rebuild",
    "save_model_atomic",
    "search_adaptor_config",
    "split_index",
    "train_matryoshka_adaptor",
    "training_metadata",
    "with_adaptor",
    "with_metadata",
]

logger = logging.getLogger(__name__)


def split_index(model: SentenceTransformer) -> int:
    """Where the frozen backbone ends: at the first st_matryoshka module, else before Normalize, else the end.

    Raises:
        ValueError: if the backbone part has no Pooling module.
    """
    modules = list(model)
    index = len(modules)
    for i, module in enumerate(modules):
        if type(module).__module__.startswith("st_matryoshka.") or isinstance(module, Normalize):
            index = i
            break
    if not any(isinstance(m, Pooling) for m in modules[:index]):
        names = [type(m).__name__ for m in modules]
        raise ValueError(f"--model: the model has no Pooling module before the adaptor position (modules: {names})")
    return index


def backbone_of(model: SentenceTransformer) -> SentenceTransformer:
    """The frozen part of ``model`` as its own SentenceTransformer (sharing the modules, no copy)."""
    return SentenceTransformer(modules=list(model)[: split_index(model)], device=str(model.device))


def head_of(model: SentenceTransformer) -> list[torch.nn.Module]:
    """The modules after the backbone (adaptors, Normalize)."""
    return list(model)[split_index(model) :]


def backbone_dim(model: SentenceTransformer) -> int:
    for module in reversed(list(model)[: split_index(model)]):
        if hasattr(module, "get_embedding_dimension"):
            return int(module.get_embedding_dimension())
    raise ValueError("--model: cannot tell the backbone's embedding width")


def with_adaptor(model: SentenceTransformer, adaptor: Module) -> SentenceTransformer:
    """A new SentenceTransformer: ``model``'s backbone, then ``adaptor``, then the rest (e.g. Normalize).

    Any st_matryoshka module already in ``model`` is replaced.
    """
    modules = list(model)
    index = split_index(model)
    rest = [m for m in modules[index:] if not type(m).__module__.startswith("st_matryoshka.")]
    return rebuild(model, [*modules[:index], adaptor, *rest], fresh_card_data(model))


def rebuild(
    model: SentenceTransformer, modules: Sequence[torch.nn.Module], card: MatryoshkaModelCardData | None = None
) -> SentenceTransformer:
    """A new SentenceTransformer of ``modules`` with ``model``'s prompts, similarity function and ``truncate_dim``.

    Its card data is ``card``, or a copy of ``model``'s st_matryoshka card data (never the same object: saving one
    model must not change another's card).
    """
    if card is None:
        source = model.model_card_data
        card = copy_card_data(source) if isinstance(source, MatryoshkaModelCardData) else fresh_card_data(model)
    return SentenceTransformer(
        modules=list(modules),
        device=str(model.device),
        model_card_data=card,
        prompts=dict(model.prompts),
        default_prompt_name=model.default_prompt_name,
        similarity_fn_name=model.similarity_fn_name,
        truncate_dim=model.truncate_dim,
    )


def fresh_card_data(model: SentenceTransformer) -> MatryoshkaModelCardData:
    """New card data for a model derived from ``model`` (never the base model's own object), keeping its language."""
    card = MatryoshkaModelCardData(language=list(model.model_card_data.language or []))
    card.license = model.model_card_data.license
    return card


def train_matryoshka_adaptor(
    model: SentenceTransformer,
    corpus_data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
    supervised: bool = False,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Train an adaptor for ``model`` and return ``(model with the adaptor, stage results)``.

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
    # search_adaptor_config is the one linear, supervised-only configuration
    method = "search-adaptor" if config.num_layers == 0 and config.unsupervised_epochs == 0 else "matryoshka-adaptor"
    width = backbone_dim(model)
    adaptor, stages = fit_adaptor(method, width, corpus_data, corpus_vectors, query_vectors, config, supervised)
    trained = with_adaptor(model, adaptor)
    return with_metadata(trained, method, config, supervised, stages, corpus_vectors, corpus_data.name), stages


def with_metadata(
    model: SentenceTransformer,
    method: str,
    config: Any,
    supervised: bool,
    stages: Sequence[StageResult],
    corpus_vectors: Any = None,
    data_name: str | None = None,
) -> SentenceTransformer:
    """Attach the trained dims, method, settings and losses to ``model``'s card data; returns the model.

    ``matryoshka_dims(model)`` and the card (also when the model is saved with plain ``model.save``) read them. With
    ``corpus_vectors`` (the training corpus' backbone vectors), the int8 calibration is stored too
    (:func:`calibrate`).
    """
    summary = {"method": method, "supervised": supervised, "config": dict(config.__dict__)}
    metadata = training_metadata(model, summary, stages)
    if corpus_vectors is not None:
        adaptors = [m for m in head_of(model) if type(m).__module__.startswith("st_matryoshka.")]
        calibrate(metadata, adaptors[0], corpus_vectors, data_name or "")
    model.model_card_data.matryoshka = metadata
    return model


def calibrate(metadata: MatryoshkaMetadata, adaptor: torch.nn.Module, corpus_vectors: Any, data_name: str) -> None:
    """Store in ``metadata`` the int8 ranges of ``adaptor``'s outputs on the training corpus at every trained dim.

    See :func:`st_matryoshka.evaluation.quantized.calibrate_int8`; ``int8_calibration`` names the data and counts
    its documents.
    """
    from st_matryoshka.evaluation.quantized import calibrate_int8

    metadata.int8_ranges = calibrate_int8(adaptor, corpus_vectors, metadata.dims)
    metadata.int8_calibration = {"data": dataset_key(data_name) or None, "documents": int(len(corpus_vectors))}


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


def save_model_atomic(
    model: SentenceTransformer,
    output: str,
    overwrite: bool = False,
    extra: dict | None = None,
    metadata: MatryoshkaMetadata | None = None,
) -> None:
    """Save to a temporary folder beside ``output``, then move it into place.

    An existing non-empty ``output`` is refused unless ``overwrite``; it is replaced only after the new model is
    completely written, so an interrupted save never leaves a half-written model behind. ``extra`` is written as the
    training record (``st_matryoshka_training.json``), ``metadata`` as ``st_matryoshka.json``, and the model card is
    rendered from ``metadata``.
    """
    if metadata is not None:
        card = model.model_card_data
        if not isinstance(card, MatryoshkaModelCardData):
            card = fresh_card_data(model)
            model.model_card_data = card
            card.register_model(model)
        card.matryoshka = metadata
        model.truncate_dim = metadata.default_dim
    if not is_main_process():  # under torchrun every process holds the same weights; rank 0 writes them
        return
    with atomic_folder(output, overwrite=overwrite) as tmp:
        try:
            model.save(tmp)
        except ValueError:
            raise
        except Exception as exc:  # safetensors raises its own error type on a full disk
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(f"--output: cannot write {output!r}: {reason}") from None
        if metadata is not None and not os.path.isfile(os.path.join(tmp, "README.md")):
            raise ValueError("save: the model card could not be rendered (the log above says why); nothing written")
        if extra is not None:
            with open(os.path.join(tmp, TRAINING_FILE), "w", encoding="utf-8") as f:
                json.dump(extra, f, indent=2, default=str)
        if metadata is not None:
            metadata.save(tmp)


def stage_summary(stages: Sequence[StageResult]) -> list[dict[str, Any]]:
    return [asdict(s) for s in stages]
