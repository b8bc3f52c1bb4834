"""st_matryoshka: learned Matryoshka adaptors that keep Sentence-Transformers embeddings good when truncated."""

from __future__ import annotations

__version__ = "0.1.0"

from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor

__all__ = ["CachedEmbeddings", "MatryoshkaAdaptor", "MatryoshkaRankLoss", "MatryoshkaUnsupervisedLoss", "__version__"]
