"""Retrieval data in BEIR layout (local folder or Hugging Face Hub dataset) and precomputed embedding folders."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np

from st_matryoshka._validation import ParameterError

logger = logging.getLogger(__name__)

INT_PATTERN = re.compile(r"[+-]?\d+")
"""A qrels score: an optionally signed integer (``--3`` is not one)."""

DATA_ENV = "ST_MATRYOSHKA_DATA"
"""Environment variable naming the folder that holds BEIR data sets, e.g. ``../shared/data``."""


@dataclass
class RetrievalData:
    """A retrieval data set: corpus and queries in file order, and the qrels of one split.

    Args:
        corpus_ids: Document ids in file order.
        corpus: Document texts (``title + " " + text`` when a title exists), aligned with ``corpus_ids``.
        query_ids: Query ids in file order.
        queries: Query texts, aligned with ``query_ids``.
        qrels: ``{query_id: {doc_id: relevance}}`` for one split, restricted to known ids and relevance > 0.
        name: A short name for logs and reports.
    """

    corpus_ids: list[str]
    corpus: list[str]
    query_ids: list[str]
    queries: list[str]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    name: str = ""

    def corpus_dict(self) -> dict[str, str]:
        return dict(zip(self.corpus_ids, self.corpus))

    def query_dict(self) -> dict[str, str]:
        return dict(zip(self.query_ids, self.queries))

    def relevant_docs(self) -> dict[str, set[str]]:
        return {qid: set(docs) for qid, docs in self.qrels.items()}

    def with_qrels(self, qrels: dict[str, dict[str, int]]) -> RetrievalData:
        return RetrievalData(self.corpus_ids, self.corpus, self.query_ids, self.queries, qrels, self.name)

    def split_by_query(self, fraction: float, salt: str = "st_matryoshka") -> tuple[RetrievalData, RetrievalData]:
        """``(kept, held_out)`` copies whose qrels are split by :func:`split_queries` (a hash of the query id)."""
        kept, held = split_queries(sorted(self.qrels), fraction, salt=salt)
        return self.with_qrels({q: self.qrels[q] for q in kept}), self.with_qrels({q: self.qrels[q] for q in held})


def resolve_data_path(path: str) -> str:
    """Return ``path`` if it exists, else ``$ST_MATRYOSHKA_DATA/path`` if that exists, else ``path`` unchanged."""
    if os.path.isdir(path) or os.path.isabs(path):
        return path
    root = os.environ.get(DATA_ENV)
    if root and os.path.isdir(os.path.join(root, path)):
        return os.path.join(root, path)
    return path


def _read_jsonl(path: str, required: tuple[str, ...]) -> list[dict]:
    rows = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ParameterError(
                    "path_or_id", f"path_or_id: {path} line {line_no} is not UTF-8 (byte {exc.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ParameterError(
                    "path_or_id", f"path_or_id: {path} line {line_no} is not valid JSON ({exc.msg})"
                ) from None
            except RecursionError:
                raise ParameterError(
                    "path_or_id", f"path_or_id: {path} line {line_no} is nested too deeply to be a JSON row"
                ) from None
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise ParameterError(
                    "path_or_id", f"path_or_id: {path} line {line_no} lacks one of the fields {list(required)}"
                )
            for key in ("_id", "text", "title"):
                value = row.get(key)
                allowed = (str, int) if key == "_id" else (str,)
                wrong = isinstance(value, bool) or not isinstance(value, allowed)
                if wrong and (key in required or value is not None):
                    got = f"{type(value).__name__} {value!r:.40}"
                    raise ParameterError(
                        "path_or_id", f"path_or_id: {path} line {line_no}: {key!r} must be a string, got {got}"
                    )
                if isinstance(value, str):
                    try:
                        value.encode("utf-8")
                    except UnicodeEncodeError:
                        raise ParameterError(
                            "path_or_id",
                            f"path_or_id: {path} line {line_no}: {key!r} holds a lone surrogate (invalid Unicode)",
                        ) from None
            rows.append(row)
    if not rows:
        raise ParameterError("path_or_id", f"path_or_id: {path} holds no rows")
    return rows


def document_text(title: str | None, text: str) -> str:
    """The one text of a document that every part of st_matryoshka embeds: ``(title + " " + text).strip()``.

    This is MTEB's own join (``mteb._create_dataloaders``), so the loader, the embedding cache and the MTEB task see
    the same string: a title-only document (empty ``text``, as in CACM-style collections) is its title without a
    trailing space, and leading or trailing whitespace is dropped.

    Example:
        ::

            from st_matryoshka.data import document_text

            print(repr(document_text("Orbits", "")), repr(document_text(None, " Moon. ")))
            # => 'Orbits' 'Moon.'
    """
    return f"{title} {text}".strip() if title else text.strip()


def _doc_text(row: dict) -> str:
    return document_text(row.get("title"), row["text"])


def _clean_qrels(
    raw: list[tuple[str, str, int]], query_ids: set[str], corpus_ids: set[str], source: str
) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    unknown_q = unknown_d = 0
    for qid, did, score in raw:
        if qid not in query_ids:
            unknown_q += 1
            continue
        if did not in corpus_ids:
            unknown_d += 1
            continue
        if score > 0:
            qrels.setdefault(qid, {})[did] = score
    if unknown_q or unknown_d:
        logger.warning(
            f"{source}: skipped {unknown_q} qrels rows with an unknown query id and {unknown_d} with an unknown "
            "document id"
        )
    return qrels


def load_beir(path_or_id: str, split: str | None = "test") -> RetrievalData:
    """Load a BEIR-layout folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or a Hub dataset.

    A local folder is used when it exists (directly or under ``$ST_MATRYOSHKA_DATA``); otherwise ``path_or_id`` is
    read as a Hugging Face Hub dataset id in MTEB's layout (configs ``corpus``, ``queries`` and ``default`` qrels,
    e.g. ``mteb/scifact``). qrels rows naming unknown query or document ids are counted, reported and skipped.

    Args:
        path_or_id: Folder or Hub dataset id.
        split: qrels split, e.g. ``"test"`` or ``"train"``; ``None`` loads no qrels (unsupervised training).

    Returns:
        The data set with the split's qrels.

    Example:
        ::

            from st_matryoshka.data import load_beir

            data = load_beir("../shared/data/scifact", split="test")
            print(len(data.corpus), len(data.qrels))
            # => 5183 300
    """
    folder = resolve_data_path(path_or_id)
    if not os.path.isdir(folder):
        from st_matryoshka.loading import looks_local

        if re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", path_or_id) and not looks_local(path_or_id):
            return _load_hub(path_or_id, split)
        raise ParameterError(
            "path_or_id",
            f"path_or_id: folder {path_or_id!r} does not exist (nor is it a Hub dataset id like 'mteb/scifact')",
        )
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise ParameterError("path_or_id", f"path_or_id: {folder!r} has no {name}")
    qrels_path = os.path.join(folder, "qrels", f"{split}.tsv")
    if split is not None and not os.path.isfile(qrels_path):
        available = (
            sorted(p[:-4] for p in os.listdir(os.path.join(folder, "qrels")))
            if os.path.isdir(os.path.join(folder, "qrels"))
            else []
        )
        raise ParameterError(
            "path_or_id", f"path_or_id: {folder!r} has no qrels/{split}.tsv (splits found: {available})"
        )
    corpus_rows = _read_jsonl(os.path.join(folder, "corpus.jsonl"), ("_id", "text"))
    query_rows = _read_jsonl(os.path.join(folder, "queries.jsonl"), ("_id", "text"))
    corpus_ids = [str(r["_id"]) for r in corpus_rows]
    query_ids = [str(r["_id"]) for r in query_rows]
    for kind, ids in (("corpus", corpus_ids), ("queries", query_ids)):
        if len(set(ids)) != len(ids):
            raise ParameterError(
                "path_or_id", f"path_or_id: {folder!r} {kind} has {len(ids) - len(set(ids))} duplicate _id values"
            )
    raw = []
    with open(qrels_path if split is not None else os.devnull, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        for line_no, row in enumerate(reader, start=1):
            if line_no == 1 and row and not INT_PATTERN.fullmatch(row[-1].strip()):
                continue  # header
            if not row:
                continue
            if len(row) < 3 or not INT_PATTERN.fullmatch(row[2].strip()):
                raise ParameterError(
                    "path_or_id", f"path_or_id: {qrels_path} line {line_no} is not 'query-id<TAB>corpus-id<TAB>score'"
                )
            raw.append((row[0], row[1], int(row[2].strip())))
    qrels = _clean_qrels(raw, set(query_ids), set(corpus_ids), qrels_path)
    return RetrievalData(
        corpus_ids,
        [_doc_text(r) for r in corpus_rows],
        query_ids,
        [r["text"] for r in query_rows],
        qrels,
        name=os.path.basename(os.path.normpath(folder)),
    )


def _load_hub(dataset_id: str, split: str) -> RetrievalData:
    """Load an MTEB-layout retrieval dataset from the Hugging Face Hub (needs network access)."""
    from datasets import load_dataset

    try:
        corpus = load_dataset(dataset_id, "corpus", split="corpus")
        queries = load_dataset(dataset_id, "queries", split="queries")
        qrels_ds = load_dataset(dataset_id, "default", split=split) if split is not None else []
    except Exception as exc:  # offline, unknown id, missing config: all mean "cannot be had"
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or "offline" in str(exc).lower()
        where = "offline" if offline else type(exc).__name__
        raise ParameterError(
            "path_or_id", f"path_or_id: {dataset_id!r} is not a local folder, and not found on the Hub ({where})"
        ) from None
    corpus_ids = [str(i) for i in corpus["_id"]]
    query_ids = [str(i) for i in queries["_id"]]
    raw = [(str(r["query-id"]), str(r["corpus-id"]), int(r["score"])) for r in qrels_ds]
    qrels = _clean_qrels(raw, set(query_ids), set(corpus_ids), dataset_id)
    return RetrievalData(
        corpus_ids,
        [_doc_text(r) for r in corpus],
        query_ids,
        list(queries["text"]),
        qrels,
        name=dataset_id.split("/")[-1],
    )


def load_embeddings_dir(
    folder: str, data: RetrievalData, dim: int | None = None, argument: str = "folder"
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``corpus.npy`` and ``queries.npy`` (rows in file order) and check them against the data and model.

    Args:
        folder: Folder holding ``corpus.npy`` and ``queries.npy``.
        data: The data set the rows belong to.
        dim: The model's backbone width; ``None`` skips the width check.
        argument: The caller's name for ``folder``, which errors name.

    Returns:
        ``(corpus_embeddings, query_embeddings)`` as float32 arrays.
    """
    out = []
    for name, n_rows in (("corpus.npy", len(data.corpus)), ("queries.npy", len(data.queries))):
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ParameterError(argument, f"{argument}: {folder!r} has no {name}")
        array = load_npy(path, argument)
        if array.ndim != 2 or array.shape[0] != n_rows:
            raise ParameterError(
                argument,
                f"{argument}: {path} has shape {array.shape}, expected ({n_rows}, dim): one row per line of "
                f"{name.replace('.npy', '.jsonl')}",
            )
        if dim is not None and array.shape[1] != dim:
            raise ParameterError(
                argument, f"{argument}: {path} has width {array.shape[1]}, but the model's backbone gives {dim}"
            )
        out.append(check_vectors(array, argument, path))
    return out[0], out[1]


def check_npy_size(path: str, argument: str) -> None:
    """Refuse a ``.npy`` whose header promises more (or less) data than the file holds, before anything is read.

    A header claiming 10¹² rows would otherwise make ``np.load`` try to allocate terabytes.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in readers:
                return  # a newer format: np.load checks it
            shape, _, dtype = readers[version](f)
            offset = f.tell()
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(argument, f"{argument}: {path} is not a readable .npy array ({reason})") from None
    if dtype.hasobject:
        return  # np.load refuses object arrays without pickles and says so
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual = os.path.getsize(path) - offset
    if expected != actual:
        raise ParameterError(
            argument,
            f"{argument}: {path} is not a readable .npy array (its header says shape {shape} of {dtype}, "
            f"{expected} bytes, but the file holds {actual})",
        )


def load_npy(path: str, argument: str) -> np.ndarray:
    """``np.load`` without pickles; a truncated or garbage file is one error naming it."""
    check_npy_size(path, argument)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterError(argument, f"{argument}: {path} is not a readable .npy array ({reason})") from None


def check_vectors(
    array: np.ndarray, argument: str, path: str | None = None, width: int | None = None, chunk_rows: int = 65536
) -> np.ndarray:
    """The one check of an embedding matrix (``--embeddings``, ``fit-vectors``, ``apply-vectors``, library arrays).

    Returns float32 vectors (a float32 memory-mapped array stays memory-mapped; float16 is converted with a notice).
    The values are checked ``chunk_rows`` rows at a time, so a memory-mapped file is never loaded whole.

    Raises:
        ValueError: naming ``argument`` (and ``path``): not a non-empty 2-d matrix, another width than ``width``, a
            non-float dtype (integer or int8 codes are refused rather than converted: a quantised index lost the
            scale the adaptor needs), NaN/inf rows, all-zero or constant rows (with the first row numbers).
    """
    where = f"{argument}: {path}" if path else argument
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{where} must be a non-empty (rows, dim) matrix, got shape {array.shape}")
    if width is not None and array.shape[1] != width:
        raise ValueError(f"{where} has width {array.shape[1]}, expected {width}")
    if array.dtype == np.float16:
        logger.warning(f"{where} is float16; converted to float32")
        array = np.asarray(array, dtype=np.float32)
    elif not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{where} has dtype {array.dtype}; embeddings must be floating point (quantised codes lost the scale "
            "the adaptor needs)"
        )
    not_finite: list[int] = []
    constant: list[int] = []
    for start in range(0, len(array), chunk_rows):
        rows = np.asarray(array[start : start + chunk_rows])
        highest, lowest = rows.max(axis=1), rows.min(axis=1)  # NaN propagates, inf shows: two passes, no copies
        finite = np.isfinite(highest) & np.isfinite(lowest)
        not_finite += (np.flatnonzero(~finite) + start).tolist()
        constant += (np.flatnonzero(finite & (highest == lowest)) + start).tolist()
    for bad, what in ((not_finite, "NaN or inf in {} rows"), (constant, "{} all-zero or constant rows")):
        if bad:
            shown = ", ".join(str(r) for r in bad[:5]) + (", ..." if len(bad) > 5 else "")
            raise ValueError(f"{where} has {what.format(len(bad))} (rows {shown})")
    return array if array.dtype == np.float32 else array.astype(np.float32)


def split_queries(query_ids: list[str], fraction: float, salt: str = "st_matryoshka") -> tuple[list[str], list[str]]:
    """Split query ids deterministically by a hash of the id: ``(kept, held_out)`` with ``fraction`` held out.

    The split depends only on each id (not on file order or a random seed), so it is reproducible everywhere.
    """
    held, kept = [], []
    for qid in query_ids:
        (held if query_hash(qid, salt) < fraction else kept).append(qid)
    return kept, held


def query_hash(qid: str, salt: str = "st_matryoshka") -> float:
    """A query id's position in [0, 1) by a salted hash: what :func:`split_queries` holds out below ``fraction``."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{qid}".encode()).digest()[:8], "big") / 2**64


VALIDATION_SPLITS = ("document-disjoint", "query-hash", "both")
"""How the supervised phase holds out validation queries (:func:`validation_split`)."""


def document_components(qrels: dict[str, dict[str, int]]) -> list[list[str]]:
    """Connected components of the query–document graph of ``qrels``: each a sorted list of query ids.

    Two queries are in one component when a chain of shared relevant documents links them, so a whole component
    can be held out without any remaining query citing one of its documents.
    """
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for qid, docs in qrels.items():
        for doc in docs:
            a, b = find(f"q:{qid}"), find(f"d:{doc}")
            if a != b:
                parent[b] = a
    groups: dict[str, list[str]] = {}
    for qid in qrels:
        groups.setdefault(find(f"q:{qid}"), []).append(qid)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


@dataclass
class ValidationSplit:
    """The supervised phase's query split: ``fit`` trains, ``held_out`` selects and stops.

    Args:
        fit: Training query ids.
        held_out: Validation query ids.
        kind: ``document-disjoint`` (no training query cites a document of a validation query), ``both`` (that and
            ``seen``) or ``query-hash``.
        reason: Why a requested document-disjoint split fell back to ``query-hash`` (empty otherwise).
        seen: With ``both``: further held-out queries, by a hash of the id, whose documents training may cite.
    """

    fit: list[str]
    held_out: list[str]
    kind: str
    reason: str = ""
    seen: list[str] = field(default_factory=list)


def validation_split(
    qrels: dict[str, dict[str, int]],
    fraction: float,
    kind: str = "document-disjoint",
    seed: int = 42,
    min_queries: int = 10,
) -> ValidationSplit:
    """Hold out about ``fraction`` of the queries of ``qrels`` for the supervised phase's selection.

    ``document-disjoint`` holds out whole connected components of the query–document graph
    (:func:`document_components`), in a seeded order, skipping a component that would take the held-out count past
    twice the wanted one (:func:`wanted`: ``fraction`` of the queries, at least ``min_queries``, at most half). The
    validation queries' relevant documents are then never cited by a training query, so validation measures
    retrieval of documents the labels never showed, as a user's next queries will need. When the qrels are too
    connected for that (fewer than half the wanted queries in components that fit), it falls back to
    ``query-hash`` (:func:`split_queries`, the split by a hash of the id used before, topped up to the wanted count)
    and says why in ``reason``. ``both`` holds out the document-disjoint queries and as many again, by a hash of the
    id, from the rest (``seen``: queries about documents that training cites), so selection can weigh both kinds of
    next query.

    Example:
        ::

            qrels = {"q1": {"d1": 1}, "q2": {"d1": 1}, "q3": {"d2": 1}, "q4": {"d3": 1}, "q5": {"d4": 1}}
            split = validation_split(qrels, 0.25)
            split.kind, len(split.held_out), sorted(split.held_out + split.fit) == sorted(qrels)
            # => ('document-disjoint', 3, True)
    """
    if kind not in VALIDATION_SPLITS:
        raise ValueError(f"validation split must be one of {list(VALIDATION_SPLITS)}, got {kind!r}")
    ids = sorted(qrels)
    if kind == "both":
        split = validation_split(qrels, fraction, "document-disjoint", seed, min_queries)
        if split.kind == "query-hash":
            return split
        fit, seen = hash_split(split.fit, fraction * len(ids) / max(1, len(split.fit)), min_queries)
        return ValidationSplit(fit, split.held_out, "both", seen=seen)
    if kind == "document-disjoint":
        want = wanted(len(ids), fraction, min_queries)
        components = document_components(qrels)
        order = np.random.default_rng(seed).permutation(len(components))
        held: list[str] = []
        for i in order:
            if len(held) >= want:
                break
            if len(held) + len(components[i]) <= max(2 * want, 1):
                held += components[i]
        if len(held) >= want / 2 and len(held) < len(ids):
            held_set = set(held)
            return ValidationSplit([q for q in ids if q not in held_set], sorted(held), kind)
        largest = max(len(c) for c in components)
        reason = (
            f"the {len(ids)} training queries form {len(components)} document-connected groups (largest "
            f"{largest} queries): too few to hold out {fraction:.0%} without sharing documents with training"
        )
        return ValidationSplit(*hash_split(ids, fraction, min_queries), "query-hash", reason)
    return ValidationSplit(*hash_split(ids, fraction, min_queries), "query-hash")


def wanted(n: int, fraction: float, min_queries: int) -> float:
    """How many of ``n`` queries to hold out: ``fraction`` of them, at least ``min_queries`` but at most half."""
    return max(fraction * n, min(float(min_queries), n / 2), 1.0)


def hash_split(ids: list[str], fraction: float, min_queries: int = 10) -> tuple[list[str], list[str]]:
    """:func:`split_queries`, topped up by the lowest hashes to :func:`wanted`'s count."""
    fit, held = split_queries(ids, fraction)
    missing = int(wanted(len(ids), fraction, min_queries)) - len(held)
    if missing > 0 and len(fit) > 1:
        extra = set(sorted(fit, key=query_hash)[:missing])
        fit, held = [q for q in fit if q not in extra], sorted([*held, *extra])
    return fit, held
