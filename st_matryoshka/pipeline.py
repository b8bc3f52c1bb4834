"""The one training entry point: ``st_matryoshka.train(model_or_vectors, data, config)``.

As PEFT's ``get_peft_model(model, LoraConfig(...))``, the method is the config's class
(:class:`~st_matryoshka.config.MatryoshkaAdaptorConfig`, :class:`~st_matryoshka.config.SearchAdaptorConfig`,
:class:`~st_matryoshka.config.PCAConfig`, :class:`~st_matryoshka.config.SMECConfig`), and what is trained on is the
first argument: a SentenceTransformer (or its name, folder or Hub id), whose adaptor goes after its Pooling, or the
vectors alone (an array or a ``.npy`` path), for embeddings from any provider. Either way the result is one
:class:`~st_matryoshka.api.Trained`, and with ``output`` the folder holds everything (modules, card,
``st_matryoshka.json``). ``st-matryoshka train`` and ``fit-vectors`` run the same functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_matryoshka._io import check_output_free
from st_matryoshka._validation import ParameterError
from st_matryoshka.api import Trained
from st_matryoshka.api import train as train_model
from st_matryoshka.config import (
    AdaptorTrainingConfig,
    BackboneSource,
    MatryoshkaAdaptorConfig,
    VectorData,
    config_for,
    method_settings,
)
from st_matryoshka.data import RetrievalData
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import backbone_dim
from st_matryoshka.training import save_model_atomic, train_adaptor
from st_matryoshka.vectors import fit_vector_data

__all__ = ["BackboneSource", "Trained", "VectorData", "train"]


def _is_vectors(value: Any) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor)) or (isinstance(value, str) and value.endswith(".npy"))


def train(
    model_or_vectors: str | SentenceTransformer | np.ndarray,
    data: str | RetrievalData | VectorData | None = None,
    config: AdaptorTrainingConfig | None = None,
    output: str | None = None,
    source: BackboneSource | None = None,
    train_split: str = "train",
    default_dim: int | None = None,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
) -> Trained:
    """Train the adaptor ``config`` describes on ``model_or_vectors`` and ``data``; save it to ``output``.

    Args:
        model_or_vectors: A SentenceTransformer or its name, folder or Hub id (``all-MiniLM-L6-v2`` works offline):
            the adaptor is appended after its Pooling. Or ``(n, D)`` corpus vectors (array, tensor or ``.npy``
            path): the adaptor alone is trained and saved.
        data: With a model, a BEIR folder or Hub dataset id (its corpus trains the unsupervised phase; its
            ``train_split`` qrels the supervised one), or a loaded :class:`~st_matryoshka.data.RetrievalData` whose
            qrels are the training ones, with its backbone vectors in ``source``. With vectors, ``None`` or a
            :class:`VectorData` (queries and qrels for the supervised phase).
        config: A per-method config (:data:`~st_matryoshka.config.METHOD_CONFIGS`); default
            ``MatryoshkaAdaptorConfig()`` (unsupervised, dims 192, 96, 48, 24).
        output: Save here (a new or empty folder; ``overwrite`` replaces a model folder); ``None``: memory only.
        source: With a model: :class:`BackboneSource` (precomputed vectors, cache, encoding).
        train_split: With a model: the qrels split the supervised phase trains on.
        default_dim: With a model: saved as Sentence-Transformers' ``truncate_dim``.
        overwrite: Replace a model already in ``output``.
        callbacks: Extra trainer callbacks for every phase (e.g.
            :class:`~st_matryoshka.callbacks.GradientVarianceCallback`).

    Returns:
        :class:`~st_matryoshka.api.Trained`: ``model`` (``None`` for vectors), ``adaptor``, ``metadata``,
        ``stages``.

    Raises:
        ParameterError: naming the argument or config field.

    Example:
        ::

            import st_matryoshka
            from st_matryoshka.config import MatryoshkaAdaptorConfig
            from st_matryoshka.pipeline import BackboneSource

            emb = "../shared/data/scifact/embeddings/all-MiniLM-L6-v2"
            trained = st_matryoshka.train("all-MiniLM-L6-v2", "../shared/data/scifact",
                                          MatryoshkaAdaptorConfig(dims=[192, 96, 48]), output="runs/scifact",
                                          source=BackboneSource(embeddings=emb))
            trained.model.encode(["a query"], truncate_dim=48).shape
            # => (1, 48)
    """
    config = config if config is not None else MatryoshkaAdaptorConfig()
    method = getattr(type(config), "method", None)
    if not isinstance(config, AdaptorTrainingConfig) or not isinstance(method, str):
        raise ParameterError(
            "config",
            "config must be a per-method config (MatryoshkaAdaptorConfig, SearchAdaptorConfig, PCAConfig, "
            f"SMECConfig), got {type(config).__name__}",
        )
    settings, supervised = method_settings(config), bool(config.supervised)  # type: ignore[attr-defined]
    if output is not None:  # before any work: an input inside the output is refused, with or without overwrite
        inputs = [model_or_vectors if isinstance(model_or_vectors, str) else None]
        inputs += [data if isinstance(data, str) else None, source.embeddings if source is not None else None]
        check_output_free(output, overwrite, argument="output", inputs=inputs)
    if _is_vectors(model_or_vectors):
        if source is not None or default_dim is not None or train_split != "train" or callbacks:
            raise ParameterError(
                "source", "source, train_split, default_dim and callbacks apply to a model, not to vectors"
            )
        if data is not None and not isinstance(data, VectorData):
            raise ParameterError("data", f"data: with vectors, a VectorData or None, got {type(data).__name__}")
        if supervised and (data is None or data.qrels is None):
            raise ParameterError("data", f"data: supervised {method} needs VectorData with queries and qrels")
        vectors = data if supervised and data is not None else VectorData(name=data.name if data else None)
        if data is not None and not supervised:
            vectors.corpus_ids = data.corpus_ids
        adaptor, metadata, stages = fit_vector_data(
            model_or_vectors, vectors, config.dims, method, output, overwrite, **settings
        )
        return Trained(None, adaptor, metadata, stages)
    source = source or BackboneSource()
    if isinstance(data, RetrievalData):
        return _train_loaded(model_or_vectors, data, config, output, source, default_dim, overwrite, callbacks)
    if not isinstance(data, str):
        raise ParameterError("data", f"data: with a model, a BEIR folder or Hub dataset id, got {type(data).__name__}")
    if source.corpus_vectors is not None or source.query_vectors is not None:
        raise ParameterError("source", "source: vectors in memory go with data as a RetrievalData, not a path")
    return train_model(
        model_or_vectors,
        data,
        config.dims,
        output,
        method=method,
        supervised=supervised,
        train_split=train_split,
        default_dim=default_dim,
        overwrite=overwrite,
        callbacks=callbacks,
        source=source,
        **settings,
    )


def _train_loaded(
    model: str | SentenceTransformer,
    data: RetrievalData,
    config: AdaptorTrainingConfig,
    output: str | None,
    source: BackboneSource,
    default_dim: int | None,
    overwrite: bool,
    callbacks: list[Any] | None,
) -> Trained:
    """:func:`train` on data and backbone vectors the caller already holds (a benchmark's, a recipe's)."""
    if source.corpus_vectors is None or source.query_vectors is None:
        raise ParameterError(
            "source", "source: with data as a RetrievalData, give its vectors (corpus_vectors, query_vectors)"
        )
    loaded = load_model(model, trust_remote_code=source.trust_remote_code) if isinstance(model, str) else model
    method = type(config).method  # type: ignore[attr-defined]
    settings = config_for(method, config.dims, backbone_dim(loaded), **method_settings(config))
    summary = {"method": method, "supervised": config.supervised, "config": dict(settings.__dict__)}  # type: ignore
    summary["default_dim"] = default_dim
    trained, adaptor, metadata, stages = train_adaptor(
        loaded,
        method,
        data,
        source.corpus_vectors,
        source.query_vectors,
        settings,
        bool(config.supervised),  # type: ignore[attr-defined]
        summary,
        callbacks=callbacks,
    )
    if output is not None:
        inputs = [model if isinstance(model, str) else None]
        save_model_atomic(trained, output, overwrite=overwrite, metadata=metadata, inputs=inputs)
    return Trained(trained, adaptor, metadata, stages)
