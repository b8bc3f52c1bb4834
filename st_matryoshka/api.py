"""The public API: one function per job, as ``st-matryoshka`` runs it.

Each function takes what a command takes (a model name or folder, a BEIR folder or Hub id, dims, an output folder)
and does the whole job: load, train or score, record, save. The command line parses its flags and calls these;
recipes and benchmarks call them too. Errors are :class:`~st_matryoshka._validation.ParameterError` naming this
module's parameters (the command line turns them into its flags).

=================================  ===============================================================================
job                                function
=================================  ===============================================================================
train any method, from a model     :func:`train` (fit → attach → metadata → calibrate → save)
train from vectors only            :func:`fit_vectors_files` / :func:`apply_vectors_file` (arrays:
                                   :func:`fit_vectors` / :func:`apply_vectors`)
add a dim to an SMEC model         :func:`extend`
score per dim and precision        :func:`evaluate` (``record=True`` writes the scores into the model and card)
the bytes frontier                 :func:`frontier`
MTEB per dim                       :func:`mteb`
a search index of the codes        :func:`index_build` / :func:`index_search` (:mod:`st_matryoshka.index`)
Hub folder / push                  :func:`export_model` / :func:`push_to_hub` (:mod:`st_matryoshka.export`)
load a trained model               :func:`load_model` (:mod:`st_matryoshka.loading`)
=================================  ===============================================================================
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from st_matryoshka._io import (
    TMP_PREFIX,
    check_creatable,
    check_free_space,
    check_output_free,
    check_writable_file,
    inside,
    umask,
)
from st_matryoshka._validation import ParameterError, check_dims
from st_matryoshka.cache import backbone_vectors, model_fingerprint, retrieval_prompts
from st_matryoshka.config import METHODS, BackboneSource, SMECTrainingConfig, VectorData, config_for
from st_matryoshka.data import RetrievalData, load_beir
from st_matryoshka.engine import StageResult, pca_adaptor
from st_matryoshka.evaluation import evaluate_per_dim
from st_matryoshka.evaluation.frontier import FRONTIER_FILES, write_frontier
from st_matryoshka.evaluation.frontier import frontier as frontier_rows
from st_matryoshka.evaluation.quantized import evaluate_quantized
from st_matryoshka.export import export_model, push_to_hub
from st_matryoshka.index import VectorIndex
from st_matryoshka.loading import load_model, resolve_model_path
from st_matryoshka.metadata import METADATA_FILE, TRAINING_FILE, MatryoshkaMetadata, matryoshka_dims
from st_matryoshka.model_card import dataset_key, write_card_files
from st_matryoshka.quantization import bytes_per_vector, check_precisions, stored_ranges
from st_matryoshka.surgery import (
    backbone_dim,
    backbone_of,
    data_fast_model,
    head_of,
    head_outputs,
    smec_adaptor_of,
)
from st_matryoshka.training import (
    calibrate,
    fit_pca_adaptor,
    native_with_metadata,
    save_model_atomic,
    stage_summary,
    train_adaptor,
    training_metadata,
)
from st_matryoshka.training_smec import extend_smec
from st_matryoshka.vector_files import read_ids, read_vectors
from st_matryoshka.vectordb import DATABASE_CLASSES, DATABASES, check_record
from st_matryoshka.vectors import apply_vectors, fit_vector_data, fit_vectors, load_adaptor, save_adaptor

__all__ = [
    "Trained",
    "apply_vectors",
    "apply_vectors_file",
    "evaluate",
    "export_model",
    "extend",
    "fit_vectors",
    "fit_vectors_files",
    "frontier",
    "index_build",
    "index_search",
    "load_model",
    "mteb",
    "push_to_hub",
    "train",
]

logger = logging.getLogger(__name__)


@dataclass
class Trained:
    """What every training returns (:func:`st_matryoshka.train`, :func:`train`, :func:`extend`).

    The model (``None`` when vectors alone were trained), its adaptor, its metadata and the stages run. ``model``
    holds only Sentence-Transformers' own modules (the adaptor folded into ``Dense``,
    :func:`~st_matryoshka.surgery.native_model`), so its plain ``model.save(path)`` writes a folder that
    ``SentenceTransformer(path)`` loads without this package; ``adaptor`` is the trainable module, written beside.
    """

    model: SentenceTransformer | None
    adaptor: torch.nn.Module
    metadata: MatryoshkaMetadata
    stages: list[StageResult]
    record: dict[str, Any] = field(default_factory=dict)
    """The training record saved as ``st_matryoshka_training.json``."""

    def __post_init__(self) -> None:
        if self.model is None:
            return
        self.model = native_with_metadata(self.model, self.metadata)

    def save(self, output: str, overwrite: bool = False) -> None:
        """Write the model folder (or, for vectors alone, the adaptor folder) to ``output``, atomically.

        Args:
            output: A new or empty folder; ``overwrite`` replaces a model folder.
            overwrite: Replace a model already in ``output``.
        """
        if self.model is None:
            save_adaptor(self.adaptor, output, self.metadata, overwrite=overwrite)  # type: ignore[arg-type]
        else:
            extra = self.record or None
            save_model_atomic(self.model, output, overwrite=overwrite, extra=extra, metadata=self.metadata)


def load_with_dims(model: str | SentenceTransformer, dims: Sequence[int], trust_remote_code: bool = False):
    """``(model, dims)``: ``model`` loaded (a name, folder or Hub id) and ``dims`` checked against its width."""
    dims = check_dims(dims, name="dims")
    loaded = load_model(model, trust_remote_code=trust_remote_code) if isinstance(model, str) else model
    width = backbone_dim(loaded)
    if dims[0] > width:
        raise ParameterError("dims", f"dims must not exceed the model's embedding width {width}, got {dims!r}")
    return loaded, dims


def stored_int8_ranges(model: str, precisions: Sequence[str]) -> dict | None:
    """The int8 ranges stored with an st_matryoshka model; a notice when it is one of ours saved without them."""
    try:
        meta = matryoshka_dims(resolve_model_path(model))
    except ValueError:
        return None  # not an st_matryoshka model: ranges come from the scored corpus, as for any base model
    if "int8" in precisions and not meta.int8_ranges:
        logger.warning(
            f"model: {model} has no stored int8 calibration (saved by st_matryoshka "
            f"{meta.st_matryoshka_version or 'before 0.4'}); int8 ranges are computed from the data's corpus"
        )
    return meta.int8_ranges or None


def trained_dims_of(model: str) -> list[int] | None:
    """The trained dims recorded in a model's ``st_matryoshka.json`` (folder or Hub cache), if it has one."""
    try:
        return matryoshka_dims(resolve_model_path(model)).dims
    except ValueError:
        return None


def record_folder_of(model: str) -> str:
    """The local folder of ``model`` for ``record=True``, checked before any work: it must hold st_matryoshka.json."""
    folder = resolve_model_path(model)
    if not os.path.isfile(os.path.join(folder, METADATA_FILE)):
        raise ParameterError("record", f"record: {model!r} is not an st_matryoshka model folder (no {METADATA_FILE})")
    try:
        MatryoshkaMetadata.load(folder)  # unreadable metadata fails now, not after the scoring
    except ValueError as exc:
        raise ParameterError("record", f"record: {exc}") from None
    return folder


def train(
    model: str | SentenceTransformer,
    data: str,
    dims: Sequence[int],
    output: str | None = None,
    method: str = "matryoshka-adaptor",
    supervised: bool = False,
    train_split: str = "train",
    default_dim: int | None = None,
    overwrite: bool = False,
    callbacks: list[Any] | None = None,
    source: BackboneSource | None = None,
    **config: Any,
) -> Trained:
    """Train ``method``'s adaptor for ``model`` on ``data`` and save it to ``output`` (``st-matryoshka train``).

    Args:
        model: A SentenceTransformer, or its name, folder or Hub id (``all-MiniLM-L6-v2`` works offline).
        data: A BEIR folder or Hub dataset id; its corpus trains the unsupervised phase.
        dims: Dims to train, strictly descending, below the model's width.
        output: Save the trained model here (a new or empty folder; ``overwrite`` to replace); ``None`` keeps it in
            memory only.
        method: ``matryoshka-adaptor``, ``pca``, ``search-adaptor`` or ``smec``.
        supervised: Add the supervised phase on the ``train_split`` qrels.
        train_split: The qrels split the supervised phase trains on.
        default_dim: Saved as ST's ``truncate_dim``: one of ``dims`` or the width.
        overwrite: Replace an existing ``output``.
        callbacks: Extra trainer callbacks for every phase.
        source: Where the backbone vectors come from and how the model loads (precomputed ``embeddings``, the
            cache, batch size, device, ``trust_remote_code``): :class:`~st_matryoshka.config.BackboneSource`.
        **config: Fields of the method's config (:func:`st_matryoshka.config.config_for`).

    Returns:
        :class:`Trained`.

    Example:
        ::

            from st_matryoshka.api import train

            trained = train("all-MiniLM-L6-v2", "../shared/data/scifact", [192, 96, 48], "runs/scifact",
                            source=BackboneSource(embeddings="../shared/data/scifact/embeddings/all-MiniLM-L6-v2"))
            print(trained.metadata.dims)
            # => [384, 192, 96, 48]
            trained.model.encode(["a query"], truncate_dim=48).shape
            # => (1, 48)
    """
    source = source or BackboneSource()
    check_dims(dims, name="dims")
    if method not in METHODS:
        raise ParameterError("method", f"method must be one of {list(METHODS)}, got {method!r}")
    if output is not None:
        inputs = [data, source.embeddings, model if isinstance(model, str) else None]
        check_output_free(output, overwrite, argument="output", inputs=inputs)
    if method == "pca" and supervised:
        raise ParameterError("supervised", "supervised does not apply to method 'pca' (nothing is trained)")
    if method == "search-adaptor" and not supervised:
        raise ParameterError("supervised", "supervised: method 'search-adaptor' is supervised; it needs train_split")
    loaded, dims = load_with_dims(model, dims, source.trust_remote_code)
    width = backbone_dim(loaded)
    if output is not None:
        weights = sum(p.numel() * p.element_size() for p in loaded.parameters())
        check_free_space(output, weights + 4 * width * width * 4 + 10_000_000, argument="output")
    if default_dim is not None and default_dim not in {width, *dims}:
        raise ParameterError("default_dim", f"default_dim must be one of dims or the width {width}, got {default_dim}")
    settings = config_for(method, dims, width, **config)
    retrieval = load_beir(data, split=train_split if supervised else None)
    corpus_vectors, query_vectors = backbone_vectors(loaded, retrieval, *source.encoding())
    start = time.perf_counter()
    record = {
        "method": method,
        "supervised": supervised,
        "train_split": train_split,
        "base_model": model if isinstance(model, str) else None,
        "data": os.path.abspath(data) if os.path.isdir(data) else data,
        "embeddings": os.path.abspath(source.embeddings) if source.embeddings else None,
        "config": settings.__dict__,
        "default_dim": default_dim,
    }
    trained, adaptor, metadata, stages = train_adaptor(
        loaded, method, retrieval, corpus_vectors, query_vectors, settings, supervised, record, data, callbacks
    )
    record.update(stages=stage_summary(stages), train_seconds=time.perf_counter() - start)
    result = Trained(trained, adaptor, metadata, stages, record)  # folds the adaptor once, for memory and the save
    if output is not None:
        result.save(output, overwrite=overwrite)
    return result


def extend(
    model: str,
    dims: Sequence[int],
    output: str,
    data: str | None = None,
    allow_any_dims: bool = False,
    overwrite: bool = False,
    source: BackboneSource | None = None,
) -> Trained:
    """Add ``dims`` to a trained SMEC model, training only the new stages; save the result to ``output``.

    The data and embeddings default to those the model was trained on (its training record); every trained dim keeps
    its similarities, so the scores and notes already recorded carry over.

    Example:
        ::

            from st_matryoshka.api import extend

            extended = extend("runs/scifact-smec", [12], "runs/scifact-smec-12")
            print(extended.metadata.dims)
            # => [384, 192, 96, 48, 24, 12]
    """
    source = source or BackboneSource()
    new_dims = check_dims(dims, name="dims")
    check_output_free(output, overwrite, argument="output", inputs=[model, data, source.embeddings])
    folder = resolve_model_path(model)
    info_path = os.path.join(folder, TRAINING_FILE)
    if not os.path.isfile(info_path):
        raise ParameterError("model", f"model: {model!r} has no {TRAINING_FILE}; train it with method 'smec'")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    if info.get("method") != "smec":
        raise ParameterError("model", f"model: {model!r} was trained with method {info.get('method')!r}, not 'smec'")
    loaded = load_model(model, trust_remote_code=source.trust_remote_code)
    data_path = data or info["data"]
    supervised = bool(info.get("supervised"))
    retrieval = load_beir(data_path, split=info.get("train_split", "train") if supervised else None)
    source = replace(source, embeddings=source.embeddings or info.get("embeddings"))
    corpus_vectors, query_vectors = backbone_vectors(loaded, retrieval, *source.encoding())
    known = {f.name for f in fields(SMECTrainingConfig)}
    saved = {k: v for k, v in info.get("config", {}).items() if k in known}
    start = time.perf_counter()
    stages: list[StageResult] = []
    for dim in new_dims:
        config = SMECTrainingConfig(**{**saved, "dims": [dim], "allow_any_dims": allow_any_dims})
        loaded, added = extend_smec(loaded, retrieval, corpus_vectors, query_vectors, dim, config, supervised)
        stages += added
    adaptor = smec_adaptor_of(loaded)  # the extended copy
    info["config"] = {**info.get("config", {}), "dims": [d for d in adaptor.trained_dims if d < adaptor.embedding_dim]}
    info["extensions"] = [
        *info.get("extensions", []),
        {"dims": new_dims, "stages": stage_summary(stages), "train_seconds": time.perf_counter() - start},
    ]
    metadata = training_metadata(loaded, info, stages)
    if os.path.isfile(os.path.join(folder, METADATA_FILE)):
        previous = MatryoshkaMetadata.load(folder)
        # An extension leaves every trained dim's similarities unchanged: earlier scores still hold.
        metadata.scores, metadata.eval_split, metadata.notes = previous.scores, previous.eval_split, previous.notes
        metadata.default_dim, metadata.license = previous.default_dim, previous.license
        metadata.losses = {**previous.losses, **metadata.losses}
    calibrate(metadata, adaptor, corpus_vectors, data_path)  # the new dim's int8 ranges too
    result = Trained(loaded, adaptor, metadata, stages, info)
    result.save(output, overwrite=overwrite)
    return result


def evaluate(
    model: str,
    data: str,
    dims: Sequence[int],
    split: str = "test",
    precisions: Sequence[str] = ("float32",),
    rescore: int | None = None,
    record: bool = False,
    source: BackboneSource | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """NDCG@10 and Recall@100 of ``model`` on ``data`` at every dim and precision: what ``evaluate`` prints.

    Args:
        model: A model name, folder or Hub id.
        data: A BEIR folder or Hub dataset id.
        dims: Dims to score.
        split: The qrels split scored.
        precisions: ``float32``, ``int8``, ``binary`` (int8 uses the model's stored calibration when it has one).
        rescore: Re-rank the top ``rescore`` documents by code score with the float query (at least 100).
        record: Also score the base model's truncation and PCA on the same queries and record all three in the model
            folder's ``st_matryoshka.json`` and card (needs float32 among ``precisions``).
        source: Where the backbone vectors come from and how the model loads (precomputed ``embeddings``, the
            cache, batch size, device, ``trust_remote_code``): :class:`~st_matryoshka.config.BackboneSource`.

    Returns:
        ``{precision: {"ndcg_at_10": {dim: v}, "recall_at_100": {dim: v}, "bytes_per_vector": {dim: bytes}}}``.

    Example:
        ::

            from st_matryoshka.api import evaluate

            scores = evaluate("runs/scifact", "../shared/data/scifact", [384, 48], precisions=["float32", "binary"])
            print(sorted(scores))
            # => ['binary', 'float32']
    """
    source = source or BackboneSource()
    precisions = check_precisions(precisions, check_dims(dims, name="dims"), rescore)
    if record and "float32" not in precisions:
        raise ParameterError("record", f"record records float32 scores: add float32 to precisions, got {precisions!r}")
    folder = record_folder_of(model) if record else None
    loaded, dims = load_with_dims(model, dims, source.trust_remote_code)
    retrieval = load_beir(data, split=split)
    vectors = backbone_vectors(loaded, retrieval, *source.encoding())
    fast = data_fast_model(retrieval, *vectors, head_of(loaded))
    ranges = stored_int8_ranges(model, precisions)
    sizes = {dim: bytes_per_vector(dim) for dim in dims}
    by_precision = {}
    for precision in precisions:
        if precision == "float32":
            result = evaluate_per_dim(fast, retrieval, dims)
        else:
            result = evaluate_quantized(fast, retrieval, dims, precision, rescore=rescore, int8_ranges=ranges)
        result["bytes_per_vector"] = {str(dim): sizes[dim][precision] for dim in dims}
        by_precision[precision] = result
    if folder is not None:
        record_scores(folder, loaded, retrieval, vectors, by_precision["float32"], dims, data, split)
    return by_precision


def record_scores(
    folder: str,
    model: SentenceTransformer,
    data: RetrievalData,
    vectors,
    scores: dict,
    dims,
    data_path: str,
    split: str,
) -> None:
    """Score the base model's truncation and PCA on the same queries; record all three in the folder's metadata."""
    meta = MatryoshkaMetadata.load(folder)
    truncation = evaluate_per_dim(data_fast_model(data, *vectors, []), data, dims)
    pca = head_of(fit_pca_adaptor(model, vectors[0]))
    pca_scores = evaluate_per_dim(data_fast_model(data, *vectors, pca), data, dims)
    key = dataset_key(data_path)
    note = None
    train_data = meta.train_data
    if meta.supervised and train_data.get("name") == key and train_data.get("split") not in (None, split):
        try:
            train_qrels = load_beir(data_path, split=train_data["split"]).qrels
        except ValueError:
            train_qrels = {}
        cited = {doc for docs in train_qrels.values() for doc in docs}
        overlap = sum(1 for docs in data.qrels.values() if set(docs) & cited)
        note = (
            f"This model was trained on the `{train_data['split']}` qrels of this data set: {overlap} of the "
            f"{len(data.qrels)} `{split}` queries have a relevant document that the training qrels also cite, "
            "so these scores are not zero-shot."
        )
    meta.record_scores(key, split, {"model": scores, "truncation": truncation, "pca": pca_scores}, note=note)
    meta.save(folder)
    write_card_files(folder, meta)


def frontier(
    model: str,
    data: str,
    dims: Sequence[int],
    output: str,
    split: str = "test",
    precisions: Sequence[str] = ("float32", "int8", "binary"),
    rescore: int | None = None,
    record: bool = False,
    speed: bool = False,
    source: BackboneSource | None = None,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """The bytes frontier: truncation, PCA and the model at every dim × precision; written to ``output``.

    ``output`` gets ``frontier.json``, ``frontier.md`` and ``frontier.png`` (files of those names already there
    are refused before any work, unless ``overwrite``; other files in it are left alone); with ``record`` the rows go
    into the model's ``st_matryoshka.json`` and its card shows each method's best point per byte budget. With
    ``speed`` each
    row also gets ``qps``: queries per second of an exact FAISS index of the corpus at that dim and precision (with
    ``rescore``, shortlist re-ranked from an int8 store), :func:`st_matryoshka.index.queries_per_second`, and
    ``qps_threads``, FAISS's thread count (needs the ``index`` extra).

    Example:
        ::

            from st_matryoshka.api import frontier

            rows = frontier("runs/scifact", "../shared/data/scifact", [384, 96, 48], "runs/frontier")
            print(sorted({r["method"] for r in rows}))
            # => ['PCA', 'model', 'truncation']
    """
    source = source or BackboneSource()
    precisions = check_precisions(precisions, check_dims(dims, name="dims"), rescore)
    check_creatable(os.path.join(output, "frontier.json"), "output")
    for name in FRONTIER_FILES:
        if os.path.lexists(os.path.join(output, name)) and not overwrite:
            raise ParameterError(
                "output", f"output: {os.path.join(output, name)!r} already exists; pass overwrite=True to replace it"
            )
    if speed:
        from st_matryoshka.index import require_faiss

        require_faiss()  # before any encoding: the extra is missing
    folder = record_folder_of(model) if record else None
    loaded, dims = load_with_dims(model, dims, source.trust_remote_code)
    retrieval = load_beir(data, split=split)
    corpus_vectors, query_vectors = backbone_vectors(loaded, retrieval, *source.encoding())
    heads = {"truncation": [], "PCA": [pca_adaptor(corpus_vectors.shape[1], corpus_vectors)]}
    head = head_of(loaded)
    if head and any(type(m).__module__.startswith("st_matryoshka.") for m in head):
        heads["model"] = head
    ranges = {"model": stored_int8_ranges(model, precisions)} if "model" in heads else None
    rows = frontier_rows(heads, retrieval, corpus_vectors, query_vectors, dims, precisions, rescore, ranges)
    if speed:
        add_speed(
            rows, np.asarray(corpus_vectors, dtype=np.float32), np.asarray(query_vectors, dtype=np.float32), rescore
        )
    write_frontier(rows, output, title=f"{os.path.basename(os.path.normpath(data))} ({split})")
    if folder is not None:
        meta = MatryoshkaMetadata.load(folder)
        meta.frontier[dataset_key(data)] = {"split": split, "rescore": rescore, "rows": rows}
        meta.save(folder)
        write_card_files(folder, meta)
    return rows


def add_speed(rows: list[dict[str, Any]], corpus: np.ndarray, queries: np.ndarray, rescore: int | None) -> None:
    """Give each frontier row ``qps`` and ``qps_threads``, measured once per (dim, precision).

    The methods share the figure: an exact index's cost depends on the shape of the codes, not on their values.
    """
    from st_matryoshka.index import queries_per_second, require_faiss

    threads = require_faiss().omp_get_max_threads()
    speeds: dict[tuple[int, str], float] = {}
    for row in rows:
        key = (row["dim"], row["precision"])
        if key not in speeds:
            speeds[key] = queries_per_second(corpus, queries, row["dim"], row["precision"], rescore=rescore)
            logger.info("%d-d %s: %.0f queries per second (%d threads)", *key, speeds[key], threads)
        row["qps"], row["qps_threads"] = round(speeds[key], 1), threads


def mteb(
    model: str,
    dims: Sequence[int],
    output: str,
    data: str | None = None,
    tasks: Sequence[str] = (),
    split: str = "test",
    precisions: Sequence[str] = ("float32",),
    model_name: str | None = None,
    revision: str | None = None,
    source: BackboneSource | None = None,
) -> dict[str, dict[str, float]]:
    """MTEB at every dim (each an MTEB experiment): a local BEIR folder as a task, or named MTEB tasks.

    Returns ``{task: {dim: main score}}``; MTEB's results land in ``output`` in its own layout.

    Example:
        ::

            from st_matryoshka.api import mteb

            scores = mteb("runs/scifact", [384, 48], "runs/mteb", data="../shared/data/scifact",
                          source=BackboneSource(embeddings="../shared/data/scifact/embeddings/all-MiniLM-L6-v2"))
            print(list(scores))
            # => ['scifact']
    """
    source = source or BackboneSource()
    from st_matryoshka.evaluation.mteb_runner import beir_task, mteb_model_meta, named_tasks, run_mteb_per_dim

    precisions = check_precisions(precisions, check_dims(dims, name="dims"))
    task_names = [t for t in tasks if t]
    if not data and not task_names:  # an empty list would select every MTEB task
        raise ParameterError("tasks", f"tasks must name at least one MTEB task (e.g. SciFact), got {list(tasks)!r}")
    loaded, dims = load_with_dims(model, dims, source.trust_remote_code)
    default_name = model if model.count("/") == 1 and not os.path.exists(model) else None
    name = model_name or default_name or f"st-matryoshka/{os.path.basename(os.path.normpath(model))}"
    if data:
        retrieval = load_beir(data, split=split)
        vectors = backbone_vectors(loaded, retrieval, *source.encoding())
        scorer = data_fast_model(retrieval, *vectors, head_of(loaded))
        task_list = [beir_task(retrieval, split=split)]
    else:
        scorer = loaded
        task_list = named_tasks(task_names)
    trained_dims = trained_dims_of(model)
    model_meta = mteb_model_meta(model, name=name, revision=revision, loaded=loaded) if trained_dims else None
    revision = model_meta.revision if model_meta else revision or model_fingerprint(loaded)
    return run_mteb_per_dim(
        scorer,
        task_list,
        dims,
        output,
        model_name=name,
        revision=revision,
        trained_dims=trained_dims,
        model_meta=model_meta,
        precisions=precisions,
        int8_ranges=stored_int8_ranges(model, precisions),
    )


def fit_vectors_files(
    corpus: str,
    dims: Sequence[int],
    output: str,
    method: str = "matryoshka-adaptor",
    queries: str | None = None,
    qrels: str | None = None,
    corpus_ids: str | None = None,
    query_ids: str | None = None,
    column: str | None = None,
    overwrite: bool = False,
    **config: Any,
) -> tuple[torch.nn.Module, MatryoshkaMetadata, list[StageResult]]:
    """:func:`fit_vectors` from files, saved to ``output`` (``st-matryoshka fit-vectors``).

    Args:
        corpus: ``(n, D)`` vectors: ``.npy`` (memory-mapped), or ``.parquet`` / ``.arrow`` (``column``).
        dims: Dims to train, strictly descending, below ``D`` (SMEC: at most ``D``).
        output: Folder for the adaptor (new or empty; ``overwrite`` replaces a model folder).
        method: ``matryoshka-adaptor``, ``pca``, ``search-adaptor`` or ``smec``.
        queries: ``(m, D)`` query vectors; with ``qrels``, adds the supervised phase.
        qrels: BEIR qrels ``.tsv`` naming rows by their ids.
        corpus_ids: A file of one id per corpus row (default: row numbers).
        query_ids: A file of one id per query row (default: row numbers).
        column: The vector column of a ``.parquet`` / ``.arrow`` input.
        overwrite: Replace a model already in ``output``.
        **config: Fields of the method's config.

    Example:
        ::

            from st_matryoshka.api import fit_vectors_files

            adaptor, meta, _ = fit_vectors_files("corpus.npy", [192, 96, 48], "runs/vectors")
            print(meta.dims)
            # => [384, 192, 96, 48]
    """
    paths = (queries, qrels, corpus_ids, query_ids, column)
    vectors, data = vector_inputs(corpus, dims, output, method, *paths, overwrite=overwrite)
    return fit_vector_data(vectors, data, dims, method, output, overwrite, **config)


def vector_inputs(
    corpus: str,
    dims: Sequence[int],
    output: str,
    method: str = "matryoshka-adaptor",
    queries: str | None = None,
    qrels: str | None = None,
    corpus_ids: str | None = None,
    query_ids: str | None = None,
    column: str | None = None,
    overwrite: bool = False,
) -> tuple[np.ndarray, VectorData]:
    """The inputs of a vectors-only training, read from files and checked (``output`` free) before any training.

    Returns:
        ``(corpus vectors, VectorData)`` as :func:`st_matryoshka.train` takes them; the data's ``name`` is the
        corpus path (the int8 calibration record).
    """
    dims = check_dims(dims, name="dims")
    check_output_free(output, overwrite, argument="output", inputs=[corpus, queries, qrels, corpus_ids, query_ids])
    vectors = read_vectors(corpus, "corpus", column=column)
    if dims[0] >= vectors.shape[1] and method != "smec":
        raise ParameterError("dims", f"dims must be below the vectors' width {vectors.shape[1]}, got {dims!r}")
    data = VectorData(corpus_ids=read_ids(corpus_ids, len(vectors), "corpus_ids", "corpus"), name=corpus)
    if qrels or queries:
        if not (qrels and queries):
            raise ParameterError("queries", "queries and qrels go together (the supervised phase needs both)")
        data.queries = read_vectors(queries, "queries", width=vectors.shape[1], column=column)
        data.query_ids = read_ids(query_ids, len(data.queries), "query_ids", "queries")
        data.qrels = qrels
    elif method == "search-adaptor":
        raise ParameterError("method", "method 'search-adaptor' is supervised: it needs queries and qrels")
    return vectors, data


def apply_vectors_file(
    model: str, input: str, dim: int, output: str, precision: str = "float32", overwrite: bool = False
) -> int:
    """Map the vectors in ``input`` through a ``fit-vectors`` adaptor to ``dim`` dims, into the ``.npy`` ``output``.

    Written chunk by chunk into a fresh temporary file beside ``output`` and moved into place when complete, so an
    interrupted run leaves no partial output (and never touches another file). Returns the number of rows.

    Example:
        ::

            from st_matryoshka.api import apply_vectors_file

            apply_vectors_file("runs/vectors", "corpus.npy", 48, "corpus-48.npy")
    """
    check_writable_file(output, "output")
    if os.path.exists(output) and not overwrite:
        raise ParameterError("output", f"output: {output!r} exists; pass overwrite=True to replace it")
    adaptor = load_adaptor(model)
    vectors = read_vectors(input, "input", width=adaptor.get_embedding_dimension())
    ranges = MatryoshkaMetadata.load(model).int8_ranges or None  # apply_vectors says when there are none
    # A fresh temporary name beside the output (never a user's "<output>.tmp.npy"), moved into place when complete
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=".npy", dir=os.path.dirname(os.path.abspath(output)))
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; the output follows the umask like any new file
    try:
        apply_vectors(adaptor, vectors, dim, precision=precision, output=tmp, int8_ranges=ranges)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(vectors)


def index_head(model: str, trust_remote_code: bool = False) -> tuple[Any, list[torch.nn.Module], str, dict | None]:
    """``(loaded, head, fingerprint, int8 ranges)`` of ``model``: a SentenceTransformer, or a ``fit-vectors`` folder.

    ``head`` maps backbone vectors to the model's outputs (the modules after the backbone; the adaptor alone for a
    ``fit-vectors`` folder), ``fingerprint`` identifies its weights for the index record.
    """
    folder = model if os.path.isdir(model) else None
    if folder and not os.path.isfile(os.path.join(folder, "modules.json")):
        adaptor = load_adaptor(folder)
        meta = MatryoshkaMetadata.load(folder)
        return None, [adaptor], model_fingerprint(adaptor), meta.int8_ranges or None
    loaded = load_model(model, trust_remote_code=trust_remote_code)
    return loaded, head_of(loaded), model_fingerprint(loaded), stored_int8_ranges(model, ["float32"])


def index_build(
    model: str,
    output: str,
    dim: int,
    precision: str = "binary",
    data: str | None = None,
    vectors: str | None = None,
    ids: str | None = None,
    rescore_store: str | None = None,
    kind: str = "flat",
    chunk_size: int = 65536,
    engine: str = "faiss",
    collection: str = "st_matryoshka",
    source: BackboneSource | None = None,
) -> Any:
    """Build a search index of ``model``'s ``dim``-d codes over a corpus (``st-matryoshka index build``).

    Args:
        model: A SentenceTransformer name or folder (with or without an adaptor), or a ``fit-vectors`` folder.
        output: The new index folder; with ``engine="milvus"`` the Milvus URI (a Milvus Lite ``.db`` file or an
            ``http(s)://`` server), with ``engine="qdrant"`` Qdrant's local folder or server URL. A database
            collection that a crashed build left is finished, not refused (:mod:`st_matryoshka.vectordb`).
        dim: The prefix indexed (a trained dim is best).
        precision: ``binary`` (default), ``int8`` or ``float32``.
        data: A BEIR folder: its corpus, encoded by the backbone (or read from ``embeddings`` / the cache).
        vectors: Or a ``.npy`` of backbone vectors (memory-mapped; what ``fit-vectors`` trained on).
        ids: With ``vectors``, a file of one id per row (default: row numbers).
        rescore_store: ``int8`` also stores one int8 vector per document on disk, for ``rescore`` at search.
        kind: ``flat`` (exact) or ``hnsw``.
        chunk_size: Rows mapped and added per batch (memory: the codes plus one batch).
        engine: ``faiss`` or ``usearch`` (float32 and binary codes), or the databases ``milvus`` (our binary or
            float32 codes, the int8 rescoring vectors beside them) and ``qdrant`` (the float prefix with Qdrant's
            binary quantisation and rescoring); returns a :class:`~st_matryoshka.vectordb.MilvusIndex` /
            :class:`~st_matryoshka.vectordb.QdrantIndex` for those (closed).
        collection: The database collection's name.
        source: Where the backbone vectors come from and how the model loads (precomputed ``embeddings``, the
            cache, batch size, device, ``trust_remote_code``): :class:`~st_matryoshka.config.BackboneSource`.

    Example:
        ::

            from st_matryoshka.api import index_build, index_search

            index_build("runs/scifact", "runs/scifact-idx", 384, data="../shared/data/scifact", rescore_store="int8",
                        source=BackboneSource(embeddings="../shared/data/scifact/embeddings/all-MiniLM-L6-v2"))
    """
    source = source or BackboneSource()
    if (data is None) == (vectors is None):
        raise ParameterError("data", "data or vectors: give exactly one corpus (a BEIR folder or a .npy of vectors)")
    database = engine in DATABASES
    if not database and os.path.isdir(output) and os.listdir(output):
        raise ParameterError("output", f"output: {output!r} already holds files; choose a new folder")
    if not database:
        check_output_free(output, False, argument="output", inputs=[model, data, vectors, ids])
    else:
        check_database_target(output, engine, inputs=[model, data, vectors, ids])
    loaded, head, fingerprint, ranges = index_head(model, source.trust_remote_code)
    if data is not None:
        if loaded is None:
            raise ParameterError("data", "data needs a SentenceTransformer model to encode it; give vectors instead")
        retrieval = load_beir(data, split=None)
        corpus, _ = backbone_vectors(loaded, retrieval, *source.encoding())
        doc_ids = list(retrieval.corpus_ids)
    else:
        corpus = read_vectors(vectors, "vectors")
        doc_ids = read_ids(ids, len(corpus), "ids", "vectors")
    name = os.path.abspath(model) if os.path.isdir(model) else model
    if database:
        if kind != "flat":
            raise ParameterError("kind", f"kind: engine {engine!r} builds its own index; leave kind at 'flat'")
        index = DATABASE_CLASSES[engine].create(
            output, dim, precision, rescore_store, stored_ranges(ranges, dim), name, fingerprint, collection
        )
    else:
        index = VectorIndex.create(
            output,
            dim,
            precision,
            kind=kind,
            rescore_store=rescore_store,
            ranges=stored_ranges(ranges, dim),
            model=name,
            model_fingerprint=fingerprint,
            engine=engine,
        )
    start = 0
    for outputs in head_outputs(head, corpus, chunk_size):
        if outputs.shape[1] < dim:
            raise ParameterError("dim", f"dim must not exceed the model's output width {outputs.shape[1]}, got {dim}")
        index.add(outputs, doc_ids[start : start + len(outputs)])
        start += len(outputs)
    index.save()
    if database:
        index.close()
    return index


def check_database_target(target: str, engine: str, inputs: Sequence[str | None]) -> None:
    """Refuse a local database target that overlaps the inputs, naming the parameter that gave it.

    Whether the target is the database's own (a Milvus Lite file, a Qdrant folder) is the database class's check
    (:class:`~st_matryoshka.vectordb.MilvusIndex`, :class:`~st_matryoshka.vectordb.QdrantIndex`), made before it opens
    anything.
    """
    local = isinstance(target, str) and not target.startswith(("http://", "https://"))
    argument = "uri" if engine == "milvus" else "path" if local else "url"
    if not isinstance(target, str) or not target:
        raise ParameterError(argument, f"{argument}: engine {engine!r} needs a URI, folder or URL, got {target!r}")
    if not local:
        return
    for path in inputs:
        if path and os.path.exists(path) and (inside(path, target) or inside(target, path)):
            raise ParameterError(
                argument, f"{argument}: {target!r} and the input {path!r} overlap; choose another place"
            )


def index_search(
    index: str,
    queries: str | np.ndarray | Sequence[str],
    top_k: int = 10,
    rescore: int | None = None,
    model: str | None = None,
    engine: str | None = None,
    collection: str = "st_matryoshka",
    source: BackboneSource | None = None,
) -> tuple[np.ndarray, list[list[str]]]:
    """Search an index folder: ``(scores, ids)`` of the ``top_k`` documents per query (``st-matryoshka index search``).

    Args:
        index: The index folder; with ``engine`` ``milvus`` or ``qdrant``, the database's URI, folder or URL.
        queries: Backbone query vectors (an array or a ``.npy`` path), query texts, or a text file of one query per
            line (texts need a SentenceTransformer model).
        top_k: Documents per query.
        rescore: Re-rank the top ``rescore`` by the float query against the stored int8 vectors.
        model: The model the index was built with (default: the one it records); another model is refused.
        engine: ``milvus`` or ``qdrant`` for a database collection (default: an index folder, FAISS or USearch).
        collection: The database collection's name.
        source: Where the backbone vectors come from and how the model loads (precomputed ``embeddings``, the
            cache, batch size, device, ``trust_remote_code``): :class:`~st_matryoshka.config.BackboneSource`.

    Example:
        ::

            from st_matryoshka.api import index_search

            scores, ids = index_search("runs/scifact-idx", ["Aspirin reduces heart attacks."], top_k=3, rescore=100)
    """
    source = source or BackboneSource()
    if engine is not None and engine not in DATABASES:
        raise ParameterError(
            "engine", f"engine must be None (an index folder) or one of {list(DATABASES)}, got {engine!r}"
        )
    if engine is None:
        info = VectorIndex.read_info(index)  # the codes are read once, by the open below
        loaded, head, fingerprint, _ = index_head(model or info.model, source.trust_remote_code)
        opened = VectorIndex.open(index, model_fingerprint=fingerprint)
        return opened.search(query_outputs(queries, loaded, head, source.batch_size), top_k=top_k, rescore=rescore)
    with DATABASE_CLASSES[engine].open(index, collection) as opened:  # one connection, closed whatever happens
        loaded, head, fingerprint, _ = index_head(model or opened.info.model, source.trust_remote_code)
        check_record(opened.info, opened.where, fingerprint, None)
        return opened.search(query_outputs(queries, loaded, head, source.batch_size), top_k=top_k, rescore=rescore)


def query_outputs(queries: Any, loaded: Any, head: Any, batch_size: int) -> np.ndarray:
    """The index-side outputs of ``queries`` (backbone vectors, a ``.npy`` path, texts or a file of texts)."""
    if isinstance(queries, str) and queries.endswith(".npy"):
        queries = read_vectors(queries, "queries")
    elif isinstance(queries, str):
        if not os.path.isfile(queries):
            raise ParameterError("queries", f"queries: file {queries!r} does not exist")
        try:
            with open(queries, encoding="utf-8") as f:
                queries = [line.rstrip("\n") for line in f if line.strip()]
        except UnicodeDecodeError as exc:
            raise ParameterError(
                "queries", f"queries: {queries!r} is not UTF-8 text (byte {exc.start}); one query per line"
            ) from None
        if not queries:
            raise ParameterError("queries", "queries: the file holds no query (one query per line)")
        if any("\x00" in q for q in queries):
            raise ParameterError("queries", "queries: the file holds NUL bytes: a binary file, not one query per line")
    if not len(queries):
        raise ParameterError("queries", "queries: no query given")
    if isinstance(queries[0], str):
        if loaded is None:
            raise ParameterError("queries", "queries as texts need a SentenceTransformer model; give vectors instead")
        prompt, _ = retrieval_prompts(loaded)
        vectors = backbone_of(loaded).encode(
            list(queries), batch_size=batch_size, prompt=prompt, convert_to_numpy=True
        )
    else:
        vectors = np.asarray(queries, dtype=np.float32)
    return np.concatenate(list(head_outputs(head, vectors)))


def json_inside_model(json_path: str, model: str) -> bool:
    """Whether ``json_path`` lies inside the local folder of ``model`` (a scores file must not go into a model)."""
    return os.path.isdir(model) and inside(json_path, resolve_model_path(model))
