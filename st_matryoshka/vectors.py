"""Adaptors for raw embedding matrices: fit on vectors from any provider, apply to new vectors, save and load alone.

The Matryoshka-Adaptor paper's main use: a team has only vectors (OpenAI, Gemini, Cohere, Voyage, or its own model),
in a ``.npy`` file. :func:`fit_vectors` trains any method on them through the same modules, losses, trainer and
criteria as ``st-matryoshka train`` (:func:`st_matryoshka.engine.fit_adaptor` is the one entry point both use),
:func:`apply_vectors` maps new vectors to any trained dim in chunks, and :func:`save_adaptor` / :func:`load_adaptor`
keep the adaptor as ``config.json`` + ``model.safetensors`` + ``st_matryoshka.json``, no SentenceTransformer involved.
:func:`st_matryoshka.surgery.with_adaptor` puts the same module after Pooling in the SentenceTransformer whose
backbone produced the vectors.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from st_matryoshka._io import allocate, atomic_folder, is_main_process
from st_matryoshka._validation import ParameterError
from st_matryoshka.config import VectorData, config_for
from st_matryoshka.data import RetrievalData, _clean_qrels, check_npy_size
from st_matryoshka.metadata import METADATA_FILE, MatryoshkaMetadata
from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.quantization import check_precisions, normalised_prefix, stored_ranges
from st_matryoshka.surgery import head_outputs
from st_matryoshka.training import train_adaptor

logger = logging.getLogger(__name__)

ADAPTOR_CLASSES = {cls.__name__: cls for cls in (MatryoshkaAdaptor, SMECAdaptor)}


def read_column(path: str, argument: str, column: str | None = None, chunk_rows: int = 65536) -> np.ndarray:
    """One column of vectors from a parquet or Arrow file, read through ``datasets``, returned memory-mapped.

    ``column`` defaults to ``embedding``, or to the only list-valued column. The vectors are copied ``chunk_rows``
    rows at a time into a temporary ``.npy`` in the temporary directory (``TMPDIR``; it needs room for the matrix),
    whose name is removed at once: the returned memory map keeps the data until it is dropped, and a large file never
    sits whole in memory (``datasets`` itself memory-maps the Arrow table).

    Raises:
        ValueError: naming ``argument`` and the file: unreadable, no such column, rows that are not one fixed-width
            list of numbers.
    """
    import tempfile

    from datasets import Dataset

    try:
        table = Dataset.from_parquet(path) if path.endswith(".parquet") else Dataset.from_file(path)
    except Exception as exc:  # not parquet/arrow, truncated: name the file
        raise ParameterError(
            argument, f"{argument}: {path} is not a readable {os.path.splitext(path)[1]} file ({exc})"
        ) from None
    names = [name for name, feature in table.features.items() if getattr(feature, "feature", None) is not None]
    if column is None:
        column = "embedding" if "embedding" in table.column_names else (names[0] if len(names) == 1 else None)
    if column not in table.column_names:
        raise ParameterError(
            argument,
            f"{argument}: {path} has no vector column {column!r}; pass column=... (columns: {table.column_names})",
        )
    if len(table) == 0:
        return np.empty((0, 0), dtype=np.float32)  # check_vectors names the empty matrix
    rows = table.with_format("numpy", columns=[column])
    width = None
    with tempfile.NamedTemporaryFile(prefix="st_matryoshka_", suffix=".npy") as tmp:
        out = None
        for start in range(0, len(table), chunk_rows):
            chunk = rows[start : start + chunk_rows][column]
            if not isinstance(chunk, np.ndarray) or chunk.ndim != 2 or (width is not None and chunk.shape[1] != width):
                raise ParameterError(
                    argument,
                    f"{argument}: {path} column {column!r} must hold one fixed-width list of numbers per row "
                    f"(rows {start}–{min(start + chunk_rows, len(table)) - 1} do not)",
                )
            if out is None:
                width = chunk.shape[1]
                dtype = np.float32 if chunk.dtype == np.float64 else chunk.dtype  # as check_vectors would convert it
                out = np.lib.format.open_memmap(tmp.name, mode="w+", dtype=dtype, shape=(len(table), width))
                allocate(tmp.name, f"{argument} (a temporary copy in TMPDIR)")
            out[start : start + len(chunk)] = chunk
        out.flush()
        del out
        return np.load(tmp.name, mmap_mode="r")  # the mapping outlives the name, removed on leaving the block


def read_vectors(path: str, argument: str, width: int | None = None, column: str | None = None) -> np.ndarray:
    """A ``.npy`` matrix, memory-mapped, checked: 2-d, non-empty, float (float16 converted with a notice), finite.

    A ``.parquet`` or ``.arrow`` file is read through ``datasets`` (one ``column`` of vectors; :func:`read_column`).

    Raises:
        ValueError: naming ``argument`` and the file: another dtype (integer or int8 codes are refused: they lost
            the scale the adaptor needs), a wrong width, no rows, non-finite values (with the first row numbers).
    """
    from st_matryoshka.data import check_vectors, load_npy

    if not os.path.isfile(path):
        raise ParameterError(argument, f"{argument}: file {path!r} does not exist")
    if path.endswith((".parquet", ".arrow")):
        array = read_column(path, argument, column)
    else:
        check_npy_size(path, argument)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            array = load_npy(path, argument)  # names what is wrong
    return check_vectors(array, argument, path, width)


def read_ids(path: str | None, n_rows: int, argument: str, matrix_argument: str) -> list[str]:
    """One id per line of ``path`` (row numbers ``"0", "1", ...`` without a file); the count must match the matrix."""
    if path is None:
        return [str(i) for i in range(n_rows)]
    if not os.path.isfile(path):
        raise ParameterError(argument, f"{argument}: file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        ids = [line.rstrip("\n") for line in f if line.strip()]
    if len(ids) != n_rows:
        raise ParameterError(
            argument, f"{argument}: {path} has {len(ids)} ids, but {matrix_argument} has {n_rows} rows"
        )
    if len(set(ids)) != len(ids):
        raise ParameterError(argument, f"{argument}: {path} has {len(ids) - len(set(ids))} duplicate ids")
    return ids


def read_qrels(path: str, query_ids: Sequence[str], corpus_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """BEIR qrels (``query-id<TAB>corpus-id<TAB>score``, optional header); unknown ids are counted and reported."""
    if not os.path.isfile(path):
        raise ParameterError("qrels", f"qrels: file {path!r} does not exist")
    raw = []
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), start=1):
            if not row or (line_no == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue
            if len(row) < 3 or not row[2].strip().lstrip("-").isdigit():
                raise ParameterError(
                    "qrels", f"qrels: {path} line {line_no} is not 'query-id<TAB>corpus-id<TAB>score'"
                )
            raw.append((row[0], row[1], int(row[2])))
    qrels = _clean_qrels(raw, set(query_ids), set(corpus_ids), f"qrels {path}")
    if not qrels:
        raise ParameterError(
            "qrels", f"qrels: no row of {path} names a known query and corpus id (see query_ids / corpus_ids)"
        )
    return qrels


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
        save_adaptor(adaptor, output, meta, overwrite=overwrite)
    return adaptor, meta, stages


def _checked(array: Any, name: str, width: int | None = None) -> Any:
    from st_matryoshka.data import check_vectors

    return check_vectors(array if isinstance(array, np.memmap) else np.asarray(array), name, width=width)


def save_adaptor(adaptor: MatryoshkaAdaptor, folder: str, metadata: MatryoshkaMetadata, overwrite: bool = False):
    """Write ``config.json``, ``model.safetensors`` and ``st_matryoshka.json`` to ``folder`` (atomically)."""
    metadata.adaptor_class = type(adaptor).__name__
    if not is_main_process():  # under torchrun every process holds the same weights; rank 0 writes them
        return
    with atomic_folder(folder, overwrite=overwrite) as tmp:
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

    check_weight_files(folder, argument)
    return cls.load(folder).eval()


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
