"""Vector databases that scale out: a model's codes in Milvus, its float prefixes in Qdrant.

:class:`VectorIndex` serves one process; past one machine a corpus goes to a database, and these classes hand over
exactly what the package measured, with the same interface (``create``/``add``/``save``/``open``/``search``) and the
same refusals:

- **Milvus** (:class:`MilvusIndex`): the searched field holds the codes :class:`VectorIndex` would hold
  (``binary``: the sign bits of the unit-normalised prefix, ``BINARY_VECTOR`` with the Hamming metric;
  ``float32``: the prefix with the inner product), and with ``rescore_store="int8"`` an ``ARRAY`` of the int8 codes
  beside them; ``search(rescore=K)`` fetches the top ``K`` with their int8 vectors and re-ranks them by the float
  query, as the FAISS index does. A URI ending in ``.db`` is a Milvus Lite file (embedded, PyPI ``milvus-lite``);
  an ``http://`` or ``https://`` URI reaches a Milvus server or cluster through the same client.
- **Qdrant** (:class:`QdrantIndex`): Qdrant computes its own binary codes from floats, so the collection holds the
  truncated, unit-normalised float prefix with Qdrant's binary quantisation on (``precision="binary"``) and
  ``search(rescore=K)`` asks it to rescore the top ``K`` with the original vectors. ``path`` opens Qdrant's local
  mode (embedded; it searches exactly and ignores quantisation), ``url`` a Qdrant server or cluster.

The collection records what ``index.json`` records for a folder (:class:`~st_matryoshka.index.IndexInfo`: model
name and weights fingerprint, dim, precision, int8 ranges, versions): in the Milvus collection's description, in
the Qdrant collection's metadata. Opening it with another model or dim is refused in one line. Documents are added
in batches; each batch inserts only the ids the collection does not hold yet, so a build that crashed is finished
by running it again: nothing the database acknowledged is sent twice or lost.

Example:
    ::

        import numpy as np
        from st_matryoshka.vectordb import MilvusIndex

        docs = np.random.default_rng(0).standard_normal((1000, 384)).astype("float32")
        index = MilvusIndex.create("runs/docs.db", dim=48, precision="binary", rescore_store="int8")
        index.add(docs, ids=[f"d{i}" for i in range(1000)])
        index.save()
        scores, ids = MilvusIndex.open("runs/docs.db").search(docs[:2], top_k=3, rescore=50)
        print(ids[0][0])
        # => d0
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from st_matryoshka._validation import ParameterError
from st_matryoshka._version import __version__
from st_matryoshka.index import (
    STORES,
    IndexInfo,
    check_batch,
    check_ranges,
    check_search,
)
from st_matryoshka.quantization import check_precisions, int8_codes, int8_values, normalised_prefix, sign_bits

DATABASES = ("milvus", "qdrant")
COLLECTION = "st_matryoshka"
RECORD_KEY = "st_matryoshka"
ID_LENGTH = 512  # longest document id a Milvus collection takes (VARCHAR primary key)
INSERT_ROWS = 2048  # rows per insert request
SEARCH_QUERIES = 16  # queries per Milvus search request (a rescoring answer carries K int8 vectors per query)


def require_milvus() -> Any:
    """Pymilvus' ``MilvusClient``, or an error saying which extra installs it."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ImportError(
            "engine 'milvus' needs pymilvus and milvus-lite: pip install 'st_matryoshka[vectordb]'"
        ) from None
    return MilvusClient


def require_qdrant() -> Any:
    """qdrant-client's ``QdrantClient``, or an error saying which extra installs it."""
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise ImportError("engine 'qdrant' needs qdrant-client: pip install 'st_matryoshka[vectordb]'") from None
    return QdrantClient


def database_versions(engine: str) -> dict[str, str]:
    """The versions that made a collection: st_matryoshka, the database client, Sentence-Transformers, NumPy."""
    from importlib.metadata import PackageNotFoundError, version

    import sentence_transformers

    names = {"milvus": ["pymilvus", "milvus-lite"], "qdrant": ["qdrant-client"]}[engine]
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return {
        "st_matryoshka": __version__,
        **found,
        "sentence_transformers": sentence_transformers.__version__,
        "numpy": np.__version__,
    }


def describe(target: str, collection: str) -> str:
    """How messages name a collection: ``'runs/docs.db' (collection 'st_matryoshka')``."""
    return f"{target!r} (collection {collection!r})"


def check_record(info: IndexInfo, where: str, model_fingerprint: str | None, dim: int | None) -> None:
    """Refuse a collection built with another model or dim, in one line naming the argument."""
    if model_fingerprint is not None and model_fingerprint != info.model_fingerprint:
        name = info.model or "unnamed"
        raise ParameterError("model", f"model: the index {where} was built with another model ({name})")
    if dim is not None and dim != info.dim:
        raise ParameterError("dim", f"dim: the index {where} holds {info.dim}-d codes, not {dim}-d")


def parse_record(text: Any, where: str) -> IndexInfo:
    """The :class:`IndexInfo` a collection records (JSON text or a dict)."""
    try:
        data = json.loads(text) if isinstance(text, str) else dict(text)
        return IndexInfo(**data)
    except (ValueError, TypeError) as exc:
        raise ParameterError("index", f"index: {where} has no valid st_matryoshka record ({exc})") from None


class DatabaseIndex:
    """What :class:`MilvusIndex` and :class:`QdrantIndex` share: the record, batches with resume, rescoring.

    Subclasses implement ``_connect``, ``_read_record``, ``_create_collection``, ``_missing``, ``_insert``,
    ``_count``, ``_flush`` and ``_search``.
    """

    engine = ""

    def __init__(self, target: str, collection: str, info: IndexInfo, client: Any, exists: bool) -> None:
        self.target, self.collection, self.info, self.client = target, collection, info, client
        self._exists = exists
        self.where = describe(target, collection)

    @classmethod
    def _existing(
        cls, client: Any, target: str, collection: str, model_fingerprint: str | None, dim: int | None
    ) -> DatabaseIndex | None:
        """The collection ``target`` holds, its record checked against the model and dim and its rows counted.

        ``None`` when there is no such collection. A refused collection's client is closed (Qdrant's local mode lets
        one client at a time open a folder).
        """
        info = cls._read_record(client, collection, target)
        if info is None:
            return None
        try:
            check_record(info, describe(target, collection), model_fingerprint, dim)
        except ParameterError:
            client.close()
            raise
        info.count = cls._count(client, collection)
        return cls(target, collection, info, client, exists=True)

    # -- building

    @classmethod
    def create(
        cls,
        target: str,
        dim: int,
        precision: str = "binary",
        rescore_store: str | None = None,
        ranges: Any = None,
        model: str = "",
        model_fingerprint: str = "",
        collection: str = COLLECTION,
    ) -> DatabaseIndex:
        """A collection to add documents to: a new one, or the one a crashed build left (then ``add`` resumes).

        Args:
            target: Milvus: a Milvus Lite file (``*.db``) or a server URI; Qdrant: a local folder or a server URL.
            dim: The prefix indexed.
            precision: ``binary`` or ``float32`` (Milvus: the codes stored; Qdrant: its binary quantisation on or
                off).
            rescore_store: Milvus: ``int8`` stores the int8 codes beside the searched ones, for ``rescore``.
            ranges: int8 ranges ``(2, dim)`` of the unit-normalised prefix (else from the first batch).
            model: The model's name or folder, recorded.
            model_fingerprint: A hash of the model's weights; :meth:`open` compares it, and an existing collection
                with another fingerprint, dim or precision is refused.
            collection: The collection's name.
        """
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ParameterError("dim", f"dim must be a positive int, got {dim!r}")
        check_precisions([precision], [dim])
        if precision not in ("binary", "float32"):
            raise ParameterError(
                "precision", f"engine {cls.engine!r} indexes binary or float32 codes, got {precision!r}"
            )
        if rescore_store not in (None, *STORES):
            raise ParameterError("rescore_store", f"rescore_store must be None or 'int8', got {rescore_store!r}")
        ranges = check_ranges(ranges, dim)
        client = cls._connect(cls._checked_target(target, create=True))
        found = cls._existing(client, target, collection, model_fingerprint, dim)
        if found is not None:
            if (found.info.precision, found.info.rescore_store) != (precision, rescore_store):
                found.close()
                raise ParameterError(
                    "precision",
                    f"precision: the index {found.where} holds {found.info.precision} codes (rescore_store "
                    f"{found.info.rescore_store}), not {precision} ({rescore_store}); choose another collection",
                )
            return found
        kind = "hnsw" if cls.engine == "qdrant" else "flat"
        info = IndexInfo(dim, precision, kind, rescore_store, ranges, model, model_fingerprint, 0)
        info.engine, info.versions = cls.engine, database_versions(cls.engine)
        return cls(target, collection, info, client, exists=False)

    def add(self, vectors: np.ndarray, ids: Sequence[str] | None = None) -> None:
        """Add a batch of model outputs (``(n, ≥ dim)``), skipping ids the collection already holds."""
        vectors, ids = check_batch(vectors, ids, self.info.dim, self.info.count)
        if ids and max(len(i.encode("utf-8")) for i in ids) > ID_LENGTH:
            raise ParameterError("ids", f"ids: a document id is longer than {ID_LENGTH} bytes")
        prefix = normalised_prefix(vectors, self.info.dim)
        if self.info.ranges is None and self.info.rescore_store == "int8":
            self.info.ranges = np.stack([prefix.min(axis=0), prefix.max(axis=0)]).tolist()
        if not self._exists:
            self._create_collection()
            self._exists = True
        for start in range(0, len(ids), INSERT_ROWS):
            chunk = ids[start : start + INSERT_ROWS]
            missing = self._missing(chunk)
            if missing:
                rows = np.array([start + i for i, doc in enumerate(chunk) if doc in missing])
                self._insert([ids[i] for i in rows], prefix[rows])
        self.info.count = self._count(self.client, self.collection)

    def save(self) -> None:
        """Make everything added durable (Milvus: flush; Qdrant writes on every call)."""
        if not self._exists:
            raise ParameterError("vectors", "the index is empty: add vectors before saving")
        self._flush()

    def close(self) -> None:
        """Release the client (Qdrant's local mode lets one client at a time open a folder)."""
        self.client.close()

    def __enter__(self) -> DatabaseIndex:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading

    @classmethod
    def open(
        cls,
        target: str,
        collection: str = COLLECTION,
        model_fingerprint: str | None = None,
        dim: int | None = None,
    ) -> DatabaseIndex:
        """Open a collection; refuse it in one line when ``model_fingerprint`` or ``dim`` differ from its record.

        A local target that does not exist is refused before anything is created.
        """
        client = cls._connect(cls._checked_target(target, create=False))
        found = cls._existing(client, target, collection, model_fingerprint, dim)
        if found is None:
            client.close()
            raise ParameterError("index", f"index: {describe(target, collection)} holds no st_matryoshka collection")
        return found

    def search(
        self, queries: np.ndarray, top_k: int = 10, rescore: int | None = None
    ) -> tuple[np.ndarray, list[list[str]]]:
        """The ``top_k`` documents of each query: ``(scores (q, top_k), ids)``, as :meth:`VectorIndex.search`."""
        if self.info.count == 0:
            raise ParameterError("index", "index: it holds no documents")
        check_search(top_k, rescore)
        prefix = normalised_prefix(np.asarray(queries, dtype=np.float32), self.info.dim)
        return self._search(prefix, top_k, rescore)

    # -- per database

    @staticmethod
    def _connect(target: str) -> Any:
        raise NotImplementedError

    @staticmethod
    def _checked_target(target: str, create: bool) -> str:
        """``target``, after refusing a local one this database must not touch (see each database's own)."""
        return target

    @staticmethod
    def _read_record(client: Any, collection: str, target: str) -> IndexInfo | None:
        raise NotImplementedError

    @staticmethod
    def _count(client: Any, collection: str) -> int:
        raise NotImplementedError

    def _create_collection(self) -> None:
        raise NotImplementedError

    def _missing(self, ids: list[str]) -> set[str]:
        raise NotImplementedError

    def _insert(self, ids: list[str], prefix: np.ndarray) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        raise NotImplementedError

    def _search(self, prefix: np.ndarray, top_k: int, rescore: int | None) -> tuple[np.ndarray, list[list[str]]]:
        raise NotImplementedError


def is_milvus_lite_file(path: str) -> bool:
    """Whether ``path`` is a Milvus Lite database: a SQLite file holding Milvus Lite's ``collection_meta`` table.

    Read through SQLite in read-only mode, so the file is not changed.
    """
    import sqlite3
    from urllib.request import pathname2url

    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                return False
        connection = sqlite3.connect(f"file:{pathname2url(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except (OSError, sqlite3.Error):
        return False
    return "collection_meta" in names


class MilvusIndex(DatabaseIndex):
    """A model's codes in a Milvus collection (Milvus Lite file or server); see the module docstring."""

    engine = "milvus"

    @staticmethod
    def _checked_target(target: str, create: bool) -> str:
        """Refuse a local file Milvus must not touch, before it opens the file.

        An existing file that is not a Milvus Lite database (an application's SQLite file) is never written to, and
        a missing one is not created when searching.
        """
        if not isinstance(target, str) or target.startswith(("http://", "https://")) or not target.endswith(".db"):
            return target
        if not os.path.exists(target):
            if not create:
                raise ParameterError("uri", f"uri: {target!r} does not exist; build the index first")
            return target
        if not is_milvus_lite_file(target):
            raise ParameterError(
                "uri", f"uri: {target!r} exists and is not a Milvus Lite database; nothing was written to it"
            )
        return target

    @staticmethod
    def _connect(target: str) -> Any:
        if not isinstance(target, str) or not (target.endswith(".db") or target.startswith(("http://", "https://"))):
            raise ParameterError("uri", f"uri must be a Milvus Lite file (*.db) or an http(s):// URI, got {target!r}")
        client = require_milvus()
        try:
            return client(target)
        except Exception as exc:  # pymilvus' own connection errors; the file itself is left as it was
            raise ParameterError("uri", f"uri: cannot open Milvus at {target!r} ({exc})") from None

    @staticmethod
    def _read_record(client: Any, collection: str, target: str) -> IndexInfo | None:
        if not client.has_collection(collection):
            return None
        description = client.describe_collection(collection).get("description", "")
        return parse_record(json.loads(description or "{}").get(RECORD_KEY, {}), f"{target!r} ({collection!r})")

    @staticmethod
    def _count(client: Any, collection: str) -> int:
        rows = client.query(collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def _create_collection(self) -> None:
        from pymilvus import DataType

        record = json.dumps({RECORD_KEY: asdict(self.info)})
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False, description=record)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=ID_LENGTH)
        binary = self.info.precision == "binary"
        schema.add_field("codes", DataType.BINARY_VECTOR if binary else DataType.FLOAT_VECTOR, dim=self.info.dim)
        if self.info.rescore_store == "int8":
            schema.add_field("rescore", DataType.ARRAY, element_type=DataType.INT8, max_capacity=self.info.dim)
        params = self.client.prepare_index_params()
        params.add_index(
            field_name="codes",
            index_type="BIN_FLAT" if binary else "FLAT",
            metric_type="HAMMING" if binary else "IP",
        )
        self.client.create_collection(self.collection, schema=schema, index_params=params)

    def _missing(self, ids: list[str]) -> set[str]:
        control = next((doc for doc in ids if any(ord(c) < 32 or ord(c) == 127 for c in doc)), None)
        if control is not None:  # Milvus's filter grammar cannot name it, so a rebuild would insert it again
            raise ParameterError(
                "ids", f"ids: {control!r} holds a control character (tab, newline), which Milvus cannot look up; "
                "nothing of this batch was sent"
            )
        if self.info.count == 0:
            return set(ids)
        # non-ASCII characters as themselves: Milvus reads no \\u escape, so an escaped 'café' never matched
        found = self.client.query(
            self.collection, filter=f"id in {json.dumps(ids, ensure_ascii=False)}", output_fields=["id"]
        )
        return set(ids) - {row["id"] for row in found}

    def _insert(self, ids: list[str], prefix: np.ndarray) -> None:
        codes = sign_bits(prefix) if self.info.precision == "binary" else prefix
        rows = [{"id": doc, "codes": c.tobytes() if c.dtype == np.uint8 else c.tolist()} for doc, c in zip(ids, codes)]
        if self.info.rescore_store == "int8":
            stored = int8_codes(prefix, np.asarray(self.info.ranges, dtype=np.float32))
            for row, values in zip(rows, stored):
                row["rescore"] = values.tolist()
        self.client.insert(self.collection, rows)

    def _flush(self) -> None:
        self.client.flush(self.collection)

    def _search(self, prefix: np.ndarray, top_k: int, rescore: int | None) -> tuple[np.ndarray, list[list[str]]]:
        if rescore is not None and self.info.rescore_store != "int8":
            raise ParameterError(
                "rescore", "rescore needs an index built with a rescoring store (rescore_store='int8')"
            )
        binary = self.info.precision == "binary"
        shortlist = min(rescore or top_k, self.info.count)
        data = [bits.tobytes() for bits in sign_bits(prefix)] if binary else prefix.tolist()
        fields = ["id", "rescore"] if rescore is not None else ["id"]
        metric = "HAMMING" if binary else "IP"
        hits = []
        for start in range(0, len(data), SEARCH_QUERIES):
            hits += self.client.search(
                self.collection,
                data=data[start : start + SEARCH_QUERIES],
                anns_field="codes",
                limit=shortlist,
                search_params={"metric_type": metric},
                output_fields=fields,
            )
        scores = np.full((len(prefix), top_k), -np.inf, dtype=np.float32)
        ids: list[list[str]] = []
        ranges = np.asarray(self.info.ranges, dtype=np.float32) if self.info.ranges is not None else None
        for i, (query, found) in enumerate(zip(prefix, hits)):
            names = [hit["entity"]["id"] for hit in found]
            if rescore is not None:
                values = int8_values(np.array([hit["entity"]["rescore"] for hit in found], dtype=np.int8), ranges)
                found_scores = values @ query if len(found) else np.zeros(0, dtype=np.float32)
                order = np.argsort(-found_scores, kind="stable")[:top_k]
            else:
                distance = np.array([hit["distance"] for hit in found], dtype=np.float32)
                found_scores = self.info.dim - 2 * distance if binary else distance
                order = np.arange(min(top_k, len(found)))
            scores[i, : len(order)] = found_scores[order]
            ids.append([names[j] for j in order])
        return scores, ids


class QdrantIndex(DatabaseIndex):
    """A model's float prefixes in a Qdrant collection, with Qdrant's binary quantisation; see the module docstring."""

    engine = "qdrant"

    @staticmethod
    def _checked_target(target: str, create: bool) -> str:
        """Refuse a local folder Qdrant must not touch, before it opens the folder.

        A missing folder is not created when searching; a file, or a folder of other files than Qdrant's local
        storage, is not written to when building.
        """
        if not isinstance(target, str) or target.startswith(("http://", "https://")):
            return target
        if not os.path.exists(target):
            if not create:
                raise ParameterError("path", f"path: {target!r} does not exist; build the index first")
            return target
        if not os.path.isdir(target):
            raise ParameterError("path", f"path: {target!r} is a file, not a Qdrant folder")
        entries = set(os.listdir(target)) - {".lock"}
        if entries and not os.path.isfile(os.path.join(target, "meta.json")):
            raise ParameterError(
                "path", f"path: {target!r} holds other files and is not a Qdrant folder; nothing was written to it"
            )
        return target

    @staticmethod
    def _connect(target: str) -> Any:
        client = require_qdrant()
        if isinstance(target, str) and target.startswith(("http://", "https://")):
            return client(url=target)
        return client(path=target)

    @staticmethod
    def _read_record(client: Any, collection: str, target: str) -> IndexInfo | None:
        if not client.collection_exists(collection):
            return None
        metadata = client.get_collection(collection).config.metadata or {}
        return parse_record(metadata.get(RECORD_KEY, {}), f"{target!r} ({collection!r})")

    @staticmethod
    def _count(client: Any, collection: str) -> int:
        return int(client.count(collection, exact=True).count)

    @staticmethod
    def point_id(doc: str) -> str:
        """Qdrant's id of a document: a UUID derived from its id (Qdrant takes only integers and UUIDs)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"st_matryoshka:{doc}"))

    def _create_collection(self) -> None:
        from qdrant_client import models

        quantization = None
        if self.info.precision == "binary":
            quantization = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
        self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.info.dim, distance=models.Distance.DOT),
            quantization_config=quantization,
            metadata={RECORD_KEY: asdict(self.info)},
        )

    def _missing(self, ids: list[str]) -> set[str]:
        if self.info.count == 0:
            return set(ids)
        found = self.client.retrieve(self.collection, ids=[self.point_id(doc) for doc in ids], with_payload=True)
        return set(ids) - {point.payload["id"] for point in found}

    def _insert(self, ids: list[str], prefix: np.ndarray) -> None:
        from qdrant_client import models

        batch = models.Batch(
            ids=[self.point_id(doc) for doc in ids], vectors=prefix.tolist(), payloads=[{"id": doc} for doc in ids]
        )
        self.client.upsert(self.collection, points=batch, wait=True)

    def _flush(self) -> None:
        return None  # upsert(wait=True) returns once Qdrant has applied the batch

    def _search(self, prefix: np.ndarray, top_k: int, rescore: int | None) -> tuple[np.ndarray, list[list[str]]]:
        import warnings

        from qdrant_client import models

        params = None
        if self.info.precision == "binary":
            oversampling = max(1.0, (rescore or top_k) / top_k)
            quantization = models.QuantizationSearchParams(rescore=rescore is not None, oversampling=oversampling)
            params = models.SearchParams(quantization=quantization)
        scores = np.full((len(prefix), top_k), -np.inf, dtype=np.float32)
        ids: list[list[str]] = []
        requests = [
            models.QueryRequest(query=q.tolist(), limit=top_k, params=params, with_payload=True) for q in prefix
        ]
        with warnings.catch_warnings():  # local mode says it searches exactly and ignores search_params
            warnings.simplefilter("ignore", UserWarning)
            answers = self.client.query_batch_points(self.collection, requests=requests)
        for i, answer in enumerate(answers):
            scores[i, : len(answer.points)] = [p.score for p in answer.points]
            ids.append([p.payload["id"] for p in answer.points])
        return scores, ids


DATABASE_CLASSES = {"milvus": MilvusIndex, "qdrant": QdrantIndex}
