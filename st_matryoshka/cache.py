"""On-disk cache of frozen-backbone embeddings, keyed by the backbone's identity and the text."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from st_matryoshka._io import umask
from st_matryoshka._validation import ParameterError
from st_matryoshka.data import load_embeddings_dir
from st_matryoshka.surgery import backbone_dim, backbone_of

logger = logging.getLogger(__name__)

CACHE_ENV = "ST_MATRYOSHKA_CACHE"
"""Environment variable naming the cache folder; default ``~/.cache/st_matryoshka``."""


def default_cache_dir() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "st_matryoshka")


def model_fingerprint(model: torch.nn.Module) -> str:
    """A hash of the model's module classes, configurations and every parameter and buffer.

    Two models that compute the same function from the same weights get the same fingerprint, whatever their path,
    so a trained adaptor model reuses the backbone embeddings cached for its base model.
    """
    digest = hashlib.sha256()
    for module in model.children():
        digest.update(f"{type(module).__module__}.{type(module).__qualname__}".encode())
        config: dict[str, Any] = {}
        if hasattr(module, "get_config_dict"):
            config = module.get_config_dict()
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    digest.update(str(getattr(model, "max_seq_length", "")).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Backbone embeddings on disk: each text is encoded once per backbone, ever.

    The folder ``<cache_dir>/<fingerprint>/`` holds shards (``.npz`` with a ``keys`` array of SHA-256 text hashes and
    a ``vectors`` array), each written to a temporary file and renamed into place, so an interrupted run never
    leaves a half-written shard.

    Args:
        backbone: The frozen part of the model (everything before the adaptor), a SentenceTransformer.
        cache_dir: Root folder; ``None`` uses ``$ST_MATRYOSHKA_CACHE`` or ``~/.cache/st_matryoshka``.
        batch_size: Encoding batch size.

    Example:
        ::

            from st_matryoshka.cache import EmbeddingCache

            cache = EmbeddingCache(backbone)  # backbone = SentenceTransformer(modules=[transformer, pooling])
            vectors = cache.encode(["a text", "another"])  # encodes once, later calls read the disk
    """

    def __init__(self, backbone: Any, cache_dir: str | None = None, batch_size: int = 32) -> None:
        self.backbone = backbone
        self.fingerprint = model_fingerprint(backbone)
        self.folder = os.path.join(cache_dir or default_cache_dir(), self.fingerprint)
        self.batch_size = batch_size
        self._stored: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        """Every stored vector, read once per cache object.

        A shard that cannot be read (truncated, not a zip, wrong arrays) is renamed to ``*.corrupt`` with a warning
        naming it, and the texts it held are simply encoded again; a shard whose keys are all in earlier shards (a
        duplicate, e.g. from two runs that encoded the same texts at once) is removed.
        """
        if self._stored is not None:
            return self._stored
        stored: dict[str, np.ndarray] = {}
        names = sorted(os.listdir(self.folder)) if os.path.isdir(self.folder) else []
        for name in names:
            if not name.endswith(".npz"):
                continue
            path = os.path.join(self.folder, name)
            try:
                with np.load(path, allow_pickle=False) as shard:
                    keys, vectors = shard["keys"].tolist(), np.asarray(shard["vectors"])
                if vectors.ndim != 2 or len(keys) != len(vectors) or not np.isfinite(vectors).all():
                    raise ValueError(f"keys {len(keys)} and vectors {vectors.shape} do not match")
            except FileNotFoundError:
                continue  # another process set this shard aside (a duplicate or a damaged one) since it was listed
            except Exception as exc:  # BadZipFile, EOFError, KeyError, ValueError, OSError: all mean unreadable
                logger.warning(
                    f"embedding cache: shard {path} is damaged ({type(exc).__name__}: {exc}); it is set aside as "
                    f"{name}.corrupt and its texts are encoded again"
                )
                with contextlib.suppress(FileNotFoundError):  # another process may have set it aside first
                    os.replace(path, path + ".corrupt")
                continue
            if keys and all(k in stored for k in keys):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # a duplicate of what earlier shards hold
                continue
            stored.update(zip(keys, vectors))
        self._stored = stored
        return stored

    def encode(
        self, texts: Sequence[str], show_progress_bar: bool = True, prompt: str | None = None, **encode_kwargs: Any
    ) -> np.ndarray:
        """Return the backbone embeddings of ``texts`` (float32, in order), encoding only uncached texts.

        Args:
            texts: Texts to embed.
            show_progress_bar: Show ST's progress bar while encoding uncached texts.
            prompt: A prompt the backbone puts before each text (e.g. ``"query: "``); part of the cache key, so a
                text cached as a document is not served as a query.
            **encode_kwargs: Passed to ``SentenceTransformer.encode``, e.g. ``device=["cuda:0", "cuda:1"]`` for
                multi-process encoding of a large corpus.
        """
        keys = [text_key(prompt + t if prompt else t) for t in texts]
        stored = self._load()
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in stored:
                missing.setdefault(key, text)
        if missing:
            logger.info(
                f"Encoding {len(missing)} uncached texts with the backbone ({len(texts) - len(missing)} cached)"
            )
            vectors = self.backbone.encode(
                list(missing.values()),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=show_progress_bar,
                prompt=prompt or None,
                **encode_kwargs,
            ).astype(np.float32)
            if not np.isfinite(vectors).all():
                raise ValueError("the backbone produced NaN or inf embeddings; nothing was cached")
            os.makedirs(self.folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, keys=np.array(list(missing)), vectors=vectors)
            os.chmod(tmp, 0o666 & ~umask())  # like any other new file, not mkstemp's 0600
            os.replace(tmp, os.path.join(self.folder, f"shard-{uuid.uuid4().hex}.npz"))
            stored.update(zip(missing, vectors))
        return np.stack([stored[k] for k in keys]).astype(np.float32, copy=False)


def backbone_vectors(
    model: Any,
    data: Any,
    embeddings: str | None = None,
    cache_dir: str | None = None,
    batch_size: int = 32,
    device: str | list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corpus and query backbone embeddings of ``data`` for ``model``: from an ``embeddings`` folder or the cache.

    The library entry point the CLI, recipes and benchmarks use. The model's query and document prompts are applied
    (and key the cache); ``device`` goes to ST's ``encode`` for uncached texts: one device, or a list for its
    multi-process encoding.

    Example:
        ::

            from st_matryoshka.cache import backbone_vectors

            corpus_vectors, query_vectors = backbone_vectors(model, load_beir("../shared/data/scifact"))
    """
    width = backbone_dim(model)
    if embeddings:
        if not os.path.isdir(embeddings):
            raise ParameterError("embeddings", f"embeddings: folder {embeddings!r} does not exist")
        return load_embeddings_dir(embeddings, data, dim=width, argument="embeddings")
    cache = EmbeddingCache(backbone_of(model), cache_dir=cache_dir, batch_size=batch_size)
    logger.info(f"Backbone cache: {cache.folder}")
    query_prompt, document_prompt = retrieval_prompts(model)
    kwargs = {"device": device} if device is not None else {}
    return (
        cache.encode(data.corpus, prompt=document_prompt, **kwargs),
        cache.encode(data.queries, prompt=query_prompt, **kwargs),
    )


def retrieval_prompts(model) -> tuple[str | None, str | None]:
    """The model's query and document prompts (ST's ``query`` and ``document``/``passage``/``corpus`` names)."""
    prompts = getattr(model, "prompts", None) or {}
    document = next((prompts[k] for k in ("document", "passage", "corpus") if prompts.get(k)), None)
    return prompts.get("query") or None, document
