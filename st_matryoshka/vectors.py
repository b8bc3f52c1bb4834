"""Adaptors for raw embedding matrices: fit on vectors from any provider, apply to new vectors, save and load alone.

The Matryoshka-Adaptor paper's main use: a team has only vectors (OpenAI, Gemini, Cohere, Voyage, or its own model),
in a ``.npy`` file. :func:`fit_vectors` trains any method on them through the same modules, losses, trainer and
criteria as ``st-matryoshka train`` (:func:`st_matryoshka.engine.fit_adaptor` is the one entry point both use),
:func:`apply_vectors` maps new vectors to any trained dim in chunks, and :func:`save_adaptor` / :func:`load_adaptor`
keep the adaptor as ``config.json`` + ``model.safetensors`` + ``st_matryoshka.json``, no SentenceTransformer involved.
:func:`st_matryoshka.surgery.with_adaptor` puts the same module after Pooling in the SentenceTransformer whose
backbone produced the vectors. The file readers live in :mod:`st_matryoshka.vector_files` (importable from here too).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from st_matryoshka._io import allocate, atomic_folder, is_main_process
from st_matryoshka._validation import ParameterError
from st_matryoshka.config import VectorData, config_for
from st_matryoshka.data import RetrievalData
from st_matryoshka.metadata import METADATA_FILE, MatryoshkaMetadata
from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.quantization import check_precisions, normalised_prefix, stored_ranges
from st_matryoshka.surgery import head_outputs
from st_matryoshka.training import train_adaptor
from st_matryoshka.vector_files import read_column, read_ids, read_qrels, read_vectors  # noqa: F401 (old path)

logger = logging.getLogger(__name__)

ADAPTOR_CLASSES = {cls.__name__: cls for cls in (MatryoshkaAdaptor, SMECAdaptor)}


def vector_data(
    corpus_ids: Sequence[str], query_ids: Sequence[str] = (), qrels: dict[str, dict[str, int]] | None = None
) -> RetrievalData:
    """Retrieval data whose "texts" are row keys (``c:<id>``, ``q:<id>``): vectors are all there is."""
    return RetrievalData(
        list(corpus_ids),
        [f"c:{i}" for i in corpus_ids],
        list(query_ids),
        [f"q:{i}" for i in query_ids],
        qrels or {},
        name="vectors",
    )


def fit_vectors(
    corpus: np.ndarray | str,
    dims: Sequence[int],
    method: str = "matryoshka-adaptor",
    queries: np.ndarray | str | None = None,
    qrels: dict[str, dict[str, int]] | str | None = None,
    corpus_ids: Sequence[str] | None = None,
    query_ids: Sequence[str] | None = None,
    data_name: str | None = None,
    **config: Any,
) -> tuple[MatryoshkaAdaptor, MatryoshkaMetadata, list[Any]]:
    """Fit an adaptor on an embedding matrix; queries and qrels add the supervised stage.

    The returned metadata holds the int8 ranges of the adaptor's outputs on ``corpus`` at every trained dim
    (``int8_ranges``), as ``train`` stores them, so :func:`save_adaptor` writes a model ready for int8 indexes.

    Args:
        corpus: ``(n, D)`` corpus vectors, or a ``.npy`` path (memory-mapped).
        dims: Dims to train, strictly descending, below ``D``.
        method: ``matryoshka-adaptor``, ``pca``, ``search-adaptor`` or ``smec``.
        queries: ``(m, D)`` query vectors or a ``.npy`` path (with ``qrels``).
        qrels: ``{query id: {corpus id: relevance}}`` or a BEIR ``.tsv`` path; ids are rows' ids.
        corpus_ids: Ids of the corpus rows (default: row numbers as strings).
        query_ids: Ids of the query rows (default: row numbers as strings).
        data_name: What the corpus is, for the calibration record (default: its path, or none for an array).
        **config: ``AdaptorTrainingConfig`` / ``SMECTrainingConfig`` fields (``unsupervised_epochs``, ``seed``, ...).

    Returns:
        ``(adaptor, metadata, stage results)``.

    Example:
        ::

            import numpy as np
            from st_matryoshka.vectors import apply_vectors, fit_vectors

            corpus = np.load("corpus.npy", mmap_mode="r")
            adaptor, meta, _ = fit_vectors(corpus, dims=[192, 96, 48])
            apply_vectors(adaptor, corpus[:4], dim=48).shape
            # => (4, 48)
    """
    corpus_path = corpus if isinstance(corpus, str) else None
    corpus = read_vectors(corpus, "corpus") if isinstance(corpus, str) else _checked(corpus, "corpus")
    width = int(corpus.shape[1])
    corpus_ids = list(corpus_ids) if corpus_ids is not None else [str(i) for i in range(len(corpus))]
    if len(corpus_ids) != len(corpus):
        raise ValueError(f"corpus_ids has {len(corpus_ids)} ids, but corpus has {len(corpus)} rows")
    supervised = qrels is not None
    query_vectors = np.zeros((0, width), dtype=np.float32)
    if supervised:
        if queries is None:
            raise ValueError("qrels need the query vectors (queries)")
        query_vectors = read_vectors(queries, "queries", width) if isinstance(queries, str) else queries
        query_vectors = _checked(query_vectors, "queries", width)
        query_ids = list(query_ids) if query_ids is not None else [str(i) for i in range(len(query_vectors))]
        if len(query_ids) != len(query_vectors):
            raise ValueError(f"query_ids has {len(query_ids)} ids, but queries has {len(query_vectors)} rows")
        if isinstance(qrels, str):
            qrels = read_qrels(qrels, query_ids, corpus_ids)
    data = vector_data(corpus_ids, query_ids or [], qrels if supervised else None)
    settings = config_for(method, dims, width, **config)
    summary = {"method": method, "supervised": supervised, "base_model": "vectors", "config": settings.__dict__}
    name = data_name or (corpus_path or "")
    _, adaptor, meta, stages = train_adaptor(
        None, method, data, corpus, query_vectors, settings, supervised, summary, name
    )
    meta.adaptor_class = type(adaptor).__name__
    return adaptor, meta, stages


def fit_vector_data(
    corpus: np.ndarray | str,
    data: VectorData,
    dims: Sequence[int],
    method: str = "matryoshka-adaptor",
    output: str | None = None,
    overwrite: bool = False,
    **config: Any,
) -> tuple[MatryoshkaAdaptor, MatryoshkaMetadata, list[Any]]:
    """:func:`fit_vectors` with its supervision in a :class:`~st_matryoshka.config.VectorData`, saved to ``output``.

    What ``st_matryoshka.train`` runs for vectors and :func:`st_matryoshka.api.fit_vectors_files` for files.
    """
    adaptor, meta, stages = fit_vectors(
        corpus,
        dims,
        method=method,
        queries=data.queries,
        qrels=data.qrels,
        corpus_ids=data.corpus_ids,
        query_ids=data.query_ids,
        data_name=data.name,
        **config,
    )
    if output is not None:
        save_adaptor(adaptor, output, meta, overwrite=overwrite, inputs=[corpus if isinstance(corpus, str) else None])
    return adaptor, meta, stages


def _checked(array: Any, name: str, width: int | None = None) -> Any:
    from st_matryoshka.data import check_vectors

    return check_vectors(array if isinstance(array, np.memmap) else np.asarray(array), name, width=width)


def save_adaptor(
    adaptor: MatryoshkaAdaptor,
    folder: str,
    metadata: MatryoshkaMetadata,
    overwrite: bool = False,
    inputs: Sequence[str | None] = (),
):
    """Write ``config.json``, ``model.safetensors`` and ``st_matryoshka.json`` to ``folder`` (atomically).

    ``inputs`` (the paths the run read, such as the vectors' ``.npy``) must not lie in ``folder``.
    """
    metadata.adaptor_class = type(adaptor).__name__
    if not is_main_process():  # under torchrun every process holds the same weights; rank 0 writes them
        return
    with atomic_folder(folder, overwrite=overwrite, inputs=inputs) as tmp:
        adaptor.save(tmp)
        metadata.save(tmp)


def load_adaptor(folder: str, argument: str = "model") -> MatryoshkaAdaptor:
    """The adaptor saved by :func:`save_adaptor` (or a model folder's adaptor module), in eval mode."""
    if not os.path.isfile(os.path.join(folder, METADATA_FILE)):
        raise ParameterError(
            argument, f"{argument}: {folder!r} has no {METADATA_FILE}; save it with fit-vectors / save_adaptor"
        )
    meta = MatryoshkaMetadata.load(folder)
    cls = ADAPTOR_CLASSES.get(meta.adaptor_class or "")
    if cls is None:
        raise ParameterError(
            argument, f"{argument}: {folder!r} holds no standalone adaptor (adaptor_class={meta.adaptor_class!r})"
        )
    from st_matryoshka.loading import check_weight_files
    from st_matryoshka.native import check_finite

    check_weight_files(folder, argument)
    adaptor = cls.load(folder).eval()
    try:
        check_finite(adaptor, os.path.join(folder, "model.safetensors"))
    except ValueError as exc:
        raise ParameterError(argument, f"{argument}: {exc}") from None
    return adaptor


@torch.inference_mode()
def apply_vectors(
    adaptor: MatryoshkaAdaptor,
    vectors: Any,
    dim: int,
    precision: str = "float32",
    output: str | None = None,
    chunk_size: int = 65536,
    int8_ranges: dict[str, list[list[float]]] | None = None,
) -> np.ndarray:
    """Map vectors through ``adaptor`` and keep the first ``dim`` coordinates, chunk by chunk.

    Args:
        adaptor: A trained adaptor (:func:`load_adaptor`).
        vectors: ``(n, D)`` array or memory-mapped ``.npy``.
        dim: Output size (a trained dim is best; any ``1 <= dim <= D`` works).
        precision: ``float32`` (the raw prefix), or codes of the unit-normalised prefix through ST's
            ``quantize_embeddings``: ``int8`` or ``binary`` (``dim`` divisible by 8).
        int8_ranges: The model's stored int8 calibration (``MatryoshkaMetadata.int8_ranges``); without one for
            ``dim``, the ranges of these vectors' outputs (a first pass, with a notice).
        output: Write to this ``.npy`` as the chunks come (and return the memory map); otherwise return an array.
        chunk_size: Rows per chunk.
    """
    from sentence_transformers.util.quantization import quantize_embeddings

    width = adaptor.get_embedding_dimension()
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= width:
        raise ParameterError("dim", f"dim must be an int in [1, {width}], got {dim!r}")
    if precision == "binary" and dim % 8:
        raise ParameterError("dim", f"dim must be divisible by 8 for binary codes (8 dims a byte), got {dim}")
    check_precisions([precision], [dim])
    adaptor = adaptor.eval()

    def chunks():
        for out in head_outputs([adaptor], vectors, chunk_size):
            yield out[:, :dim] if precision == "float32" else normalised_prefix(out, dim)

    ranges = stored_ranges(int8_ranges, dim) if precision == "int8" else None
    if precision == "int8" and ranges is None:
        why = (
            f"it was calibrated at its trained dims {sorted(int(d) for d in int8_ranges)} only"
            if int8_ranges
            else "it was saved before st_matryoshka stored one"
        )
        logger.warning(
            f"the adaptor has no stored int8 calibration for dim {dim} ({why}): int8 ranges computed from these "
            "vectors' outputs"
        )
        lows, highs = zip(*((c.min(axis=0), c.max(axis=0)) for c in chunks()))
        ranges = np.stack([np.min(lows, axis=0), np.max(highs, axis=0)])
    out_dim = dim // 8 if precision == "binary" else dim
    dtype = {"float32": np.float32, "int8": np.int8, "binary": np.int8}[precision]
    if output is not None:
        result = np.lib.format.open_memmap(output, mode="w+", dtype=dtype, shape=(len(vectors), out_dim))
        allocate(output, "output")
    else:
        result = np.empty((len(vectors), out_dim), dtype=dtype)
    row = 0
    for chunk in chunks():
        if precision == "int8":  # ST's cast wraps out-of-range values around: clip to the calibrated ranges first
            chunk = np.clip(chunk, ranges[0], ranges[1])
        if precision != "float32":
            chunk = quantize_embeddings(chunk, precision=precision, ranges=ranges)
        result[row : row + len(chunk)] = chunk
        row += len(chunk)
    if output is not None:
        result.flush()
    return result
