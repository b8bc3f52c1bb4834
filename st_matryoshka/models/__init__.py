from __future__ import annotations

from st_matryoshka.models.cached_embeddings import CachedEmbeddings
from st_matryoshka.models.matryoshka_adaptor import MatryoshkaAdaptor
from st_matryoshka.models.smec import SMECAdaptor

__all__ = ["CachedEmbeddings", "MatryoshkaAdaptor", "SMECAdaptor"]
