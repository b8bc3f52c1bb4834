"""st_matryoshka: learned Matryoshka adaptors that keep Sentence-Transformers embeddings good when truncated."""

from __future__ import annotations

from st_matryoshka._version import __version__
from st_matryoshka.loading import load_model
from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.metadata import MatryoshkaMetadata, matryoshka_dims
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor, SMECAdaptor

__all__ = [
    "CachedEmbeddings",
    "MatryoshkaAdaptor",
    "MatryoshkaMetadata",
    "MatryoshkaRankLoss",
    "MatryoshkaUnsupervisedLoss",
    "SMECAdaptor",
    "__version__",
    "load_model",
    "matryoshka_dims",
]
