"""Reading vectors, ids and qrels from files, for ``fit-vectors``, ``apply-vectors`` and ``index build``.

``.npy`` matrices are memory-mapped; a ``.parquet`` / ``.arrow`` column is copied in chunks to a temporary
memory-mapped ``.npy``. Every failure is a one-line :class:`~st_matryoshka._validation.ParameterError` naming the
argument and the file (and, for qrels, the line).
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
from collections.abc import Sequence

import numpy as np

from st_matryoshka._io import allocate
from st_matryoshka._validation import ParameterError
from st_matryoshka.data import _clean_qrels, check_npy_size

logger = logging.getLogger(__name__)


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
