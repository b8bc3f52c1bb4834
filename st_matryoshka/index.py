"""Search indexes over a model's codes: FAISS or USearch, flat or HNSW, float32, int8 or binary, rescoring from disk.

An index folder holds the index of the codes: with ``engine="faiss"`` (default) ``index.faiss`` (``IndexFlatIP`` /
``IndexHNSWFlat`` for float32, ``IndexScalarQuantizer`` with the model's int8 ranges for int8, ``IndexBinaryFlat`` /
``IndexBinaryHNSW`` for binary); with ``engine="usearch"`` ``index.usearch`` (USearch's HNSW over ``f32`` vectors
with the inner product or ``b1`` bits with the Hamming distance; ``flat`` searches it exhaustively), and the document
ids (``ids.txt``), optionally a rescoring store (``rescore.bin``: one int8 vector per document,
memory-mapped, read only for the shortlist) and ``index.json``: the model (name and weights fingerprint), dim,
precision, int8 ranges, document count and the library versions. Opening an index with another model or dim is
refused in one line. Documents are added in batches: memory holds the codes and one batch.

Vectors given to :meth:`VectorIndex.add` and :meth:`VectorIndex.search` are the model's outputs at full width
(:func:`st_matryoshka.api.index_build` computes them); the index takes the unit-normalised ``dim`` prefix, the same
codes ST's ``quantize_embeddings`` gives, so a query is scored against them as
:func:`st_matryoshka.evaluation.quantized.evaluate_quantized` scores: binary by Hamming distance on the sign bits (or,
with ``rescore``, a shortlist re-ranked by the float query against the stored int8 vectors).

Example:
    ::

        import numpy as np
        from st_matryoshka.index import VectorIndex

        docs = np.random.default_rng(0).standard_normal((1000, 384)).astype("float32")
        index = VectorIndex.create("runs/idx", dim=48, precision="binary", rescore_store="int8", ranges=None)
        index.add(docs, ids=[f"d{i}" for i in range(1000)])
        index.save()
        scores, ids = VectorIndex.open("runs/idx").search(docs[:2], top_k=3, rescore=50)
        print(ids[0][0])
        # => d0
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from st_matryoshka._io import follow_umask
from st_matryoshka._validation import ParameterError
from st_matryoshka._version import __version__
from st_matryoshka.quantization import check_precisions, int8_codes, int8_values, normalised_prefix, sign_bits

INDEX_FILE = "index.json"
FAISS_FILE = "index.faiss"
USEARCH_FILE = "index.usearch"
IDS_FILE = "ids.txt"
STORE_FILE = "rescore.bin"
KINDS = ("flat", "hnsw")
STORES = ("int8",)


def require_usearch():
    """USearch's ``Index``, or an error saying which extra installs it."""
    try:
        from usearch.index import Index
    except ImportError:
        raise ImportError("engine 'usearch' needs usearch: pip install 'st_matryoshka[index]'") from None
    return Index


def require_faiss():
    """FAISS, or an error saying which extra installs it."""
    try:
        import faiss
    except ImportError:
        raise ImportError("indexes need faiss: pip install 'st_matryoshka[index]' (faiss-cpu)") from None
    return faiss


@dataclass
class IndexInfo:
    """What ``index.json`` records: enough to refuse a mismatched model and to rebuild the same codes."""

    dim: int
    precision: str
    kind: str = "flat"
    rescore_store: str | None = None
    ranges: list[list[float]] | None = None
    """int8 ranges of the ``dim`` prefix, ``[[lows], [highs]]``: for int8 codes and the int8 rescoring store."""
    model: str = ""
    model_fingerprint: str = ""
    count: int = 0
    hnsw_m: int = 32
    versions: dict[str, str] = field(default_factory=dict)
    engine: str = "faiss"

    @property
    def file(self) -> str:
        """The engine's index file in the folder."""
        return BACKENDS[self.engine].file


class FaissBackend:
    """FAISS, for every precision.

    ``IndexFlatIP`` / ``IndexHNSWFlat`` (float32), ``IndexScalarQuantizer`` / ``IndexHNSWSQ`` with the model's ranges
    (int8), ``IndexBinaryFlat`` / ``IndexBinaryHNSW`` (binary).
    """

    name = "faiss"
    file = FAISS_FILE
    precisions = ("float32", "int8", "binary")

    def version(self) -> dict[str, str]:
        return {"faiss": require_faiss().__version__}

    def new(self, info: IndexInfo, ranges: np.ndarray | None) -> Any:
        faiss = require_faiss()
        d, kind = info.dim, info.kind
        if info.precision == "binary":
            return faiss.IndexBinaryFlat(d) if kind == "flat" else faiss.IndexBinaryHNSW(d, info.hnsw_m)
        if info.precision == "float32":
            if kind == "flat":
                return faiss.IndexFlatIP(d)
            return faiss.IndexHNSWFlat(d, info.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        if kind == "hnsw":
            index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, info.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(ranges, dtype=np.float32))  # min/max of these two rows: the ranges
        return index

    def add(self, index: Any, info: IndexInfo, prefix: np.ndarray, ranges: np.ndarray | None) -> None:
        if info.precision == "binary":
            index.add(sign_bits(prefix))
        elif info.precision == "int8":
            index.add(int8_values(int8_codes(prefix, ranges), ranges))  # FAISS stores them as its 8-bit codes
        else:
            index.add(prefix)

    def write(self, index: Any, info: IndexInfo, path: str) -> None:
        faiss = require_faiss()
        (faiss.write_index_binary if info.precision == "binary" else faiss.write_index)(index, path)

    def read(self, info: IndexInfo, path: str) -> tuple[Any, int]:
        faiss = require_faiss()
        index = (faiss.read_index_binary if info.precision == "binary" else faiss.read_index)(path)
        return index, index.ntotal

    def search(
        self, index: Any, info: IndexInfo, prefix: np.ndarray, shortlist: int, ef_search: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if info.kind == "hnsw" and hasattr(index, "hnsw"):
            index.hnsw.efSearch = max(ef_search, shortlist)
        if info.precision == "binary":
            distances, rows = index.search(sign_bits(prefix), shortlist)
            return (info.dim - 2 * distances).astype(np.float32), rows
        return index.search(prefix, shortlist)


class UsearchBackend:
    """USearch, for float32 and binary codes.

    Its HNSW over ``f32`` vectors with the inner product or ``b1`` bits with the Hamming distance; ``flat`` searches
    it exhaustively.
    """

    name = "usearch"
    file = USEARCH_FILE
    precisions = ("float32", "binary")

    def version(self) -> dict[str, str]:
        require_usearch()
        import usearch

        return {"usearch": usearch.__version__}

    def new(self, info: IndexInfo, ranges: np.ndarray | None) -> Any:
        binary = info.precision == "binary"
        return require_usearch()(
            ndim=info.dim,
            metric="hamming" if binary else "ip",
            dtype="b1" if binary else "f32",
            connectivity=info.hnsw_m,
        )

    def add(self, index: Any, info: IndexInfo, prefix: np.ndarray, ranges: np.ndarray | None) -> None:
        keys = np.arange(info.count, info.count + len(prefix), dtype=np.uint64)
        index.add(keys, sign_bits(prefix) if info.precision == "binary" else prefix)

    def write(self, index: Any, info: IndexInfo, path: str) -> None:
        index.save(path)

    def read(self, info: IndexInfo, path: str) -> tuple[Any, int]:
        index = require_usearch().restore(path)
        return index, len(index) if index is not None else -1

    def search(
        self, index: Any, info: IndexInfo, prefix: np.ndarray, shortlist: int, ef_search: int
    ) -> tuple[np.ndarray, np.ndarray]:
        binary = info.precision == "binary"
        index.expansion_search = max(ef_search, shortlist)
        found = index.search(sign_bits(prefix) if binary else prefix, shortlist, exact=info.kind == "flat")
        distances = np.asarray(found.distances, dtype=np.float32).reshape(len(prefix), -1)
        rows = np.asarray(found.keys, dtype=np.int64).reshape(len(prefix), -1)
        missing = np.arange(rows.shape[1])[None, :] >= np.asarray(found.counts).reshape(-1, 1)
        rows[missing] = -1  # USearch pads a short answer with key 0
        scores = info.dim - 2 * distances if binary else 1 - distances  # Hamming; inner-product distance 1 − dot
        return np.where(missing, -np.inf, scores).astype(np.float32), rows


BACKENDS = {b.name: b for b in (FaissBackend(), UsearchBackend())}
"""The search engines an index can use, by ``engine`` name: one class per engine, chosen once per index."""
ENGINES = tuple(BACKENDS)


def library_versions(engine: str = "faiss") -> dict[str, str]:
    """The versions that made an index: st_matryoshka, the engine (FAISS or USearch), Sentence-Transformers, NumPy."""
    import sentence_transformers

    return {
        "st_matryoshka": __version__,
        **BACKENDS[engine].version(),
        "sentence_transformers": sentence_transformers.__version__,
        "numpy": np.__version__,
    }


def check_batch(vectors: Any, ids: Sequence[str] | None, dim: int, count: int) -> tuple[np.ndarray, list[str]]:
    """A batch for an index: ``(n, >= dim)`` float32 model outputs and their ids (default: running row numbers)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] < dim:
        raise ParameterError("vectors", f"vectors must be (n, >= {dim}) model outputs, got shape {vectors.shape}")
    ids = [str(count + i) for i in range(len(vectors))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(vectors):
        raise ParameterError("ids", f"ids has {len(ids)} entries for {len(vectors)} vectors")
    return vectors, ids


def check_ranges(ranges: Any, dim: int) -> list[list[float]] | None:
    """int8 ranges ``(2, dim)`` as the record stores them (``None`` stays ``None``)."""
    if ranges is None:
        return None
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, dim):
        raise ParameterError("ranges", f"ranges must have shape (2, {dim}), got {ranges.shape}")
    return ranges.tolist()


def check_search(top_k: Any, rescore: Any) -> None:
    """``top_k`` a positive int; ``rescore`` ``None`` or an int of at least ``top_k``."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ParameterError("top_k", f"top_k must be a positive int, got {top_k!r}")
    if rescore is not None and (not isinstance(rescore, int) or rescore < top_k):
        raise ParameterError("rescore", f"rescore must be an int >= top_k ({top_k}), got {rescore!r}")


class SavedIds:
    """The ids of an index folder's first ``count`` documents, read from ``ids.txt`` when asked for.

    Memory holds one line end per document (4 bytes while the file is under 4 GiB), not a million Python strings;
    the file is scanned once in chunks and each id read with one ``pread``, so its pages are not mapped into the
    process.
    """

    def __init__(self, path: str, count: int, chunk: int = 1 << 24) -> None:
        self.path, self.count = path, count
        ends, offset = [], 0
        self._fd = os.open(path, os.O_RDONLY) if os.path.exists(path) else None
        while self._fd is not None and sum(map(len, ends)) < count:
            block = os.pread(self._fd, chunk, offset)
            if not block:
                break
            ends.append(np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + offset)  # each line's newline
            offset += len(block)
        found = np.concatenate(ends)[:count] if ends else np.zeros(0, dtype=np.int64)
        if len(found) < count:
            raise ParameterError("index", f"index: {path} holds {len(found)} ids, {count} recorded")
        self._ends = found.astype(np.uint32 if offset < 2**32 else np.int64)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def __len__(self) -> int:
        return self.count

    @property
    def nbytes(self) -> int:
        """Bytes of ``ids.txt`` that these ids take (what a later save keeps before appending)."""
        return int(self._ends[-1]) + 1 if self.count else 0

    def __getitem__(self, row: int) -> str:
        start = int(self._ends[row - 1]) + 1 if row > 0 else 0
        return os.pread(self._fd, int(self._ends[row]) - start, start).decode("utf-8")


class VectorIndex:
    """A FAISS or USearch index of one model's codes at one dim and precision, with its ids and rescoring store.

    Build with :meth:`create`, :meth:`add` batches, :meth:`save`; later :meth:`open` (refusing another model or dim)
    and :meth:`search`. See the module docstring.
    """

    def __init__(self, folder: str, info: IndexInfo, index: Any, ids: SavedIds | None = None) -> None:
        self.folder = folder
        self.info = info
        self.index = index
        self._saved_ids = ids  # the saved documents' ids, read from ids.txt on demand
        self._new_ids: list[str] = []  # ids added since the last save
        self._pending: list[np.ndarray] = []  # rescoring rows added since the last save
        self._saved = info.count  # rows the store on disk holds for certain

    def id_of(self, row: int) -> str:
        """The id of the document in ``row`` (saved or added since)."""
        saved = len(self._saved_ids) if self._saved_ids is not None else 0
        return self._saved_ids[row] if row < saved else self._new_ids[row - saved]

    # -- building

    @classmethod
    def create(
        cls,
        folder: str,
        dim: int,
        precision: str,
        kind: str = "flat",
        rescore_store: str | None = None,
        ranges: Any = None,
        model: str = "",
        model_fingerprint: str = "",
        hnsw_m: int = 32,
        engine: str = "faiss",
    ) -> VectorIndex:
        """A new, empty index to be written to ``folder`` (which must not exist or be empty).

        Args:
            folder: Where :meth:`save` writes the index.
            dim: The prefix indexed.
            precision: ``float32``, ``int8`` or ``binary`` (``dim`` divisible by 8).
            kind: ``flat`` (exact) or ``hnsw`` (graph, approximate).
            rescore_store: ``int8`` keeps one int8 vector per document on disk for :meth:`search`'s ``rescore``.
            ranges: int8 ranges ``(2, dim)`` of the unit-normalised prefix (the model's stored calibration); needed
                for int8 codes or an int8 store, else taken from the first batch added.
            model: The model's name or folder, recorded.
            model_fingerprint: A hash of the model's weights; :meth:`open` compares it.
            hnsw_m: Neighbours per node of the HNSW graph.
            engine: ``faiss`` or ``usearch`` (float32 and binary codes; ``flat`` is its exhaustive search).
        """
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ParameterError("dim", f"dim must be a positive int, got {dim!r}")
        check_precisions([precision], [dim])
        if kind not in KINDS:
            raise ParameterError("kind", f"kind must be one of {list(KINDS)}, got {kind!r}")
        if engine not in ENGINES:
            raise ParameterError("engine", f"engine must be one of {list(ENGINES)}, got {engine!r}")
        if precision not in BACKENDS[engine].precisions:
            raise ParameterError("engine", "engine 'usearch' indexes float32 and binary codes; int8 needs 'faiss'")
        if rescore_store not in (None, *STORES):
            raise ParameterError("rescore_store", f"rescore_store must be None or 'int8', got {rescore_store!r}")
        if os.path.isdir(folder) and os.listdir(folder):
            raise ParameterError("output", f"output: {folder!r} already holds files; choose a new folder")
        ranges = check_ranges(ranges, dim)
        info = IndexInfo(dim, precision, kind, rescore_store, ranges, model, model_fingerprint, 0, hnsw_m)
        info.engine = engine
        info.versions = library_versions(engine)
        return cls(folder, info, None)

    @property
    def backend(self) -> FaissBackend | UsearchBackend:
        """The engine's backend (:data:`BACKENDS`), chosen by the record's ``engine``."""
        return BACKENDS[self.info.engine]

    def add(self, vectors: np.ndarray, ids: Sequence[str] | None = None) -> None:
        """Add a batch of model outputs (``(n, ≥ dim)``); ``ids`` default to running row numbers."""
        vectors, ids = check_batch(vectors, ids, self.info.dim, self.info.count)
        prefix = normalised_prefix(vectors, self.info.dim)
        if self.info.ranges is None and (self.info.precision == "int8" or self.info.rescore_store == "int8"):
            self.info.ranges = np.stack([prefix.min(axis=0), prefix.max(axis=0)]).tolist()
        ranges = np.asarray(self.info.ranges, dtype=np.float32) if self.info.ranges is not None else None
        if self.index is None:
            self.index = self.backend.new(self.info, ranges)
        self.backend.add(self.index, self.info, prefix, ranges)
        if self.info.rescore_store == "int8":
            self._pending.append(int8_codes(prefix, ranges))
        self._new_ids += ids
        self.info.count += len(vectors)

    def save(self) -> None:
        """Write the index to its folder: new files beside the old ones, each moved into place when complete."""
        if self.index is None:
            raise ParameterError("vectors", "the index is empty: add vectors before saving")
        os.makedirs(self.folder, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".tmp-", dir=self.folder)
        try:
            self.backend.write(self.index, self.info, os.path.join(work, self.backend.file))
            ids_path = os.path.join(self.folder, IDS_FILE)
            with open(ids_path, "ab") as f:  # appended in place, like the store: ids are never all in memory
                f.truncate(self._saved_ids.nbytes if self._saved_ids is not None else 0)  # drop a crashed save's lines
                f.write("".join(f"{i}\n" for i in self._new_ids).encode("utf-8"))
            if self.info.rescore_store:
                store = os.path.join(self.folder, STORE_FILE)
                with open(store, "ab") as f:  # appended in place: the store is never held in memory
                    f.truncate(self._saved * self.info.dim)  # rows an interrupted save appended are dropped
                    for rows in self._pending:
                        f.write(rows.tobytes())
                self._pending = []
            with open(os.path.join(work, INDEX_FILE), "w", encoding="utf-8") as f:
                json.dump(asdict(self.info), f, indent=2)
            for name in (self.info.file, INDEX_FILE):  # index.json last: it names the count the others hold
                os.replace(os.path.join(work, name), os.path.join(self.folder, name))
            self._saved = self.info.count
            self._saved_ids, self._new_ids = SavedIds(ids_path, self.info.count), []
        finally:
            shutil.rmtree(work, ignore_errors=True)
        follow_umask(self.folder)

    # -- reading

    @staticmethod
    def read_info(folder: str) -> IndexInfo:
        """The record of an index folder (``index.json``) alone, without reading its codes."""
        path = os.path.join(folder, INDEX_FILE)
        if not os.path.isfile(path):
            raise ParameterError("index", f"index: {folder!r} is not an index folder (no {INDEX_FILE})")
        try:
            with open(path, encoding="utf-8") as f:
                return IndexInfo(**json.load(f))
        except (ValueError, TypeError) as exc:
            raise ParameterError("index", f"index: {path} is not a valid index record ({exc})") from None

    @classmethod
    def open(cls, folder: str, model_fingerprint: str | None = None, dim: int | None = None) -> VectorIndex:
        """Open an index folder; refuse it in one line when ``model_fingerprint`` or ``dim`` differ from its own."""
        info = cls.read_info(folder)
        if model_fingerprint is not None and model_fingerprint != info.model_fingerprint:
            raise ParameterError(
                "model", f"model: the index {folder!r} was built with another model ({info.model or 'unnamed'})"
            )
        if dim is not None and dim != info.dim:
            raise ParameterError("dim", f"dim: the index {folder!r} holds {info.dim}-d codes, not {dim}-d")
        backend = BACKENDS[info.engine]
        index, total = backend.read(info, os.path.join(folder, backend.file))
        if total != info.count:
            raise ParameterError("index", f"index: {folder!r} is inconsistent ({total} codes, {info.count} recorded)")
        ids = SavedIds(os.path.join(folder, IDS_FILE), info.count)
        return cls(folder, info, index, ids)

    def store(self) -> np.ndarray | None:
        """The rescoring store as a read-only memory map ``(count, dim)`` of int8 codes (``None`` without one)."""
        if not self.info.rescore_store:
            return None
        path = os.path.join(self.folder, STORE_FILE)
        return np.memmap(path, dtype=np.int8, mode="r", shape=(self.info.count, self.info.dim))

    def nbytes(self) -> dict[str, int]:
        """Bytes of the saved files: the FAISS index, the ids and the rescoring store."""
        sizes = {}
        for name in (*(b.file for b in BACKENDS.values()), IDS_FILE, STORE_FILE):
            path = os.path.join(self.folder, name)
            if os.path.isfile(path):
                sizes[name] = os.path.getsize(path)
        return sizes

    def search(
        self, queries: np.ndarray, top_k: int = 10, rescore: int | None = None, ef_search: int = 64
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The ``top_k`` documents of each query: ``(scores (q, top_k), ids)``.

        Queries are model outputs (float; never quantised: the asymmetric float query is free). binary ranks by
        Hamming distance on the sign bits (score: matching bits − differing bits, the ±1 dot product); float32 and
        int8 by the dot product with the unit-normalised prefix. With ``rescore=K`` the top ``K`` by code are
        re-ranked by the float query against the stored int8 vectors (needs ``rescore_store``).
        """
        if self.index is None or self.info.count == 0:
            raise ParameterError("index", "index: it holds no documents")
        check_search(top_k, rescore)
        if rescore is not None and not self.info.rescore_store:
            raise ParameterError(
                "rescore", "rescore needs an index built with a rescoring store (rescore_store='int8')"
            )
        prefix = normalised_prefix(np.asarray(queries, dtype=np.float32), self.info.dim)
        shortlist = min(rescore or top_k, self.info.count)
        scores, rows = self.backend.search(self.index, self.info, prefix, shortlist, ef_search)
        if rescore is not None:
            scores, rows = self._rescore(prefix, rows, top_k)
        scores, rows = scores[:, :top_k], rows[:, :top_k]
        return scores, [[self.id_of(int(r)) for r in row if r >= 0] for row in rows]

    def _rescore(self, prefix: np.ndarray, rows: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        ranges = np.asarray(self.info.ranges, dtype=np.float32)
        store = self.store()
        out_scores = np.full((len(prefix), top_k), -np.inf, dtype=np.float32)
        out_rows = np.full((len(prefix), top_k), -1, dtype=np.int64)
        for i, (query, candidates) in enumerate(zip(prefix, rows)):
            candidates = candidates[candidates >= 0]
            order = np.argsort(candidates)  # sorted reads from the memory map
            values = int8_values(np.asarray(store[candidates[order]]), ranges)
            scores = values @ query
            best = np.argsort(-scores)[:top_k]
            out_scores[i, : len(best)] = scores[best]
            out_rows[i, : len(best)] = candidates[order][best]
        return out_scores, out_rows


def queries_per_second(
    corpus: np.ndarray,
    queries: np.ndarray,
    dim: int,
    precision: str,
    rescore: int | None = None,
    top_k: int = 10,
    ranges: Any = None,
    min_seconds: float = 0.5,
) -> float:
    """Queries per second of an exact (flat) :class:`VectorIndex` of ``corpus``'s ``dim``-d codes at ``precision``.

    The index is built in a temporary folder (with an int8 rescoring store when ``rescore`` is set and the codes
    are not float32) and all ``queries`` are searched at once, repeated until ``min_seconds`` have passed; FAISS
    uses its own threads (``faiss.omp_get_max_threads()``). A flat index costs the same for any vectors of that shape,
    so this measures the index, not the model.

    Example:
        ::

            import numpy as np
            from st_matryoshka.index import queries_per_second

            docs = np.random.default_rng(0).standard_normal((10000, 384)).astype("float32")
            binary, float32 = (queries_per_second(docs, docs[:100], 384, p) for p in ("binary", "float32"))
            print(binary > float32)
            # => True
    """
    import time

    store = "int8" if rescore is not None and precision != "float32" else None
    with tempfile.TemporaryDirectory(prefix="st_matryoshka_speed_") as folder:
        index = VectorIndex.create(os.path.join(folder, "index"), dim, precision, rescore_store=store, ranges=ranges)
        index.add(corpus)
        index.save()
        searched, start = 0, time.perf_counter()
        while searched == 0 or time.perf_counter() - start < min_seconds:
            index.search(queries, top_k=top_k, rescore=rescore if store else None)
            searched += len(queries)
        return searched / (time.perf_counter() - start)
