"""st_matryoshka: learned Matryoshka adaptors that keep Sentence-Transformers embeddings good when truncated."""

from __future__ import annotations

from typing import Any

from st_matryoshka._version import __version__
from st_matryoshka.config import MatryoshkaAdaptorConfig, PCAConfig, SearchAdaptorConfig, SMECConfig
from st_matryoshka.loading import load_model
from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.metadata import MatryoshkaMetadata, matryoshka_dims
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor, SMECAdaptor

__all__ = [
    "CachedEmbeddings",
    "MatryoshkaAdaptor",
    "MatryoshkaAdaptorConfig",
    "MatryoshkaMetadata",
    "MatryoshkaRankLoss",
    "MatryoshkaUnsupervisedLoss",
    "PCAConfig",
    "SMECAdaptor",
    "SMECConfig",
    "SearchAdaptorConfig",
    "__version__",
    "load_model",
    "matryoshka_dims",
    "train",
]


def __getattr__(name: str) -> Any:
    """``st_matryoshka.train`` (:func:`st_matryoshka.pipeline.train`), imported on first use.

    It brings in the trainer, FAISS and the database clients, which loading a model does not need.
    """
    if name == "train":
        from st_matryoshka.pipeline import train

        return train
    raise AttributeError(f"module 'st_matryoshka' has no attribute {name!r}")
