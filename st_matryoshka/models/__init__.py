from __future__ import annotations

from st_matryoshka.models.cached_embeddings import CachedEmbeddings
from st_matryoshka.models.matryoshka_adaptor import MatryoshkaAdaptor

__all__ = ["CachedEmbeddings", "MatryoshkaAdaptor"]
