"""MTEB scoring per dimension: local BEIR folders as MTEB retrieval tasks, one MTEB experiment per dim.

Needs the ``mteb`` extra (``pip install st_matryoshka[mteb]``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

from st_matryoshka._validation import ParameterError
from st_matryoshka.data import RetrievalData

logger = logging.getLogger(__name__)


def _require_mteb() -> Any:
    try:
        import mteb
    except ImportError:
        raise ImportError("MTEB scoring needs the mteb extra: pip install 'st_matryoshka[mteb]'") from None
    return mteb


def data_revision(data: RetrievalData) -> str:
    """A content hash of the data (texts, ids and qrels), used as the MTEB dataset revision."""
    digest = hashlib.sha256()
    for part in (data.corpus_ids, data.corpus, data.query_ids, data.queries):
        digest.update(json.dumps(part).encode())
    digest.update(json.dumps(data.qrels, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def beir_task(data: RetrievalData, split: str = "test", name: str | None = None) -> Any:
    """An MTEB ``AbsTaskRetrieval`` over already loaded BEIR data; ``load_data`` downloads nothing.

    Corpus texts are passed as MTEB's ``text`` with an empty title. They were joined by
    :func:`st_matryoshka.data.document_text`, MTEB's own join, so MTEB embeds exactly the texts that
    :func:`st_matryoshka.data.load_beir` produced and that the embedding cache holds.

    Args:
        data: The data, with the qrels of ``split``.
        split: Split name recorded in the results.
        name: Task name; default ``Local<DataName>``.

    Example:
        ::

            task = beir_task(load_beir("../shared/data/scifact", "test"))
            mteb.evaluate(model, task)
    """
    _require_mteb()
    from datasets import Dataset
    from mteb.abstasks import AbsTaskRetrieval
    from mteb.abstasks.task_metadata import TaskMetadata

    task_name = name or "Local" + "".join(part.capitalize() for part in data.name.replace("_", "-").split("-"))
    metadata = TaskMetadata(
        name=task_name,
        dataset={"path": f"local/{data.name}", "revision": data_revision(data)},
        description=f"Local BEIR folder {data.name!r} ({len(data.corpus)} documents, {len(data.qrels)} queries).",
        reference=None,
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=[split],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators=None,
        dialect=None,
        sample_creation=None,
        bibtex_citation=None,
    )

    def load_data(self: Any, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        queries = data.query_dict()
        query_ids = [q for q in data.query_ids if q in data.qrels]
        corpus = Dataset.from_dict({"id": data.corpus_ids, "text": data.corpus, "title": [""] * len(data.corpus)})
        self.dataset = {
            "default": {
                split: {
                    "corpus": corpus,
                    "queries": Dataset.from_dict({"id": query_ids, "text": [queries[q] for q in query_ids]}),
                    "relevant_docs": data.qrels,
                    "top_ranked": None,
                }
            }
        }
        self.data_loaded = True

    task_class = type(task_name, (AbsTaskRetrieval,), {"metadata": metadata, "load_data": load_data})
    return task_class()


def named_tasks(names: Sequence[str]) -> list[Any]:
    """MTEB's own tasks by name (``SciFact``, ``NFCorpus``, ...); they download their data from the Hub.

    Raises:
        ValueError: for an unknown name, listing close matches.
    """
    mteb = _require_mteb()
    known = {task.metadata.name for task in mteb.get_tasks()}
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=5, cutoff=0.5)
            raise ParameterError("tasks", f"tasks: unknown MTEB task {name!r}; close matches: {close or 'none'}")
    return list(mteb.get_tasks(tasks=list(names)))


def _check_results_folder(output: str, model_folder: str) -> None:
    results = os.path.join(output, "results")
    if not os.path.isdir(results):
        return
    others = sorted(d for d in os.listdir(results) if d != model_folder)
    if others:
        raise ParameterError(
            "output", f"output: {output!r} holds results of another model ({others}); use another folder"
        )


def _mteb_loader(
    model_name: str,
    revision: str | None = None,
    device: str | None = None,
    embed_dim: int | None = None,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> Any:
    """The mteb loader of an st_matryoshka model: :func:`st_matryoshka.loading.load_model` wrapped for MTEB."""
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    from st_matryoshka.loading import load_model, local_model_folder

    model = load_model(
        local_model_folder(model_name, argument="model_name", revision=revision),
        trust_remote_code=trust_remote_code,
        device=device,
    )
    if embed_dim is not None:
        model.truncate_dim = embed_dim
    return SentenceTransformerEncoderWrapper(model, **kwargs)


def mteb_model_meta(
    model: str, name: str | None = None, revision: str | None = None, register: bool = False, loaded: Any = None
) -> Any:
    """An ``mteb.ModelMeta`` for a trained st_matryoshka model (a folder, or a Hub repo id read from the Hub cache).

    ``embed_dim`` is the list of trained dims, ``adapted_from`` the base model, ``training_datasets`` the MTEB tasks
    whose data trained the model (the unsupervised corpus counts), so a leaderboard knows where it is not zero-shot.
    The loader is :func:`st_matryoshka.loading.load_model` (the installed package's classes, no code from the model
    repository), so it needs no ``trust_remote_code``.

    Args:
        model: Model folder or ``org/name`` repo id.
        name: Name recorded in results; default: ``model`` when it is a repo id, else ``st-matryoshka/<folder>``.
        revision: Revision recorded in results; default: the Hub snapshot's commit, or a hash of a folder's weights.
        register: Add the meta to mteb's model registry, so that ``mteb.get_model(name)`` finds it (mteb otherwise
            asks the Hub API about an unknown model, which fails offline).
        loaded: The model, when the caller has already loaded it (saves a second load).

    Example:
        ::

            import mteb
            from st_matryoshka.evaluation import mteb_model_meta

            meta = mteb_model_meta("me/minilm-scifact-matryoshka", register=True)
            model = mteb.get_model("me/minilm-scifact-matryoshka")
            print(meta.embed_dim)
            # => [384, 192, 96, 48, 24]
    """
    _require_mteb()
    from st_matryoshka.cache import model_fingerprint
    from st_matryoshka.loading import load_model, local_model_folder
    from st_matryoshka.metadata import MatryoshkaMetadata
    from st_matryoshka.model_card import base_model_id, mteb_training_tasks

    folder = local_model_folder(model, argument="model")
    meta = MatryoshkaMetadata.load(folder)
    loaded = loaded if loaded is not None else load_model(folder, device="cpu")
    is_repo = not os.path.exists(model) and model.count("/") == 1
    if revision is None:
        snapshot = os.path.basename(os.path.normpath(folder))
        revision = snapshot if is_repo and len(snapshot) == 40 else model_fingerprint(loaded)
    name = name or (model if is_repo else f"st-matryoshka/{os.path.basename(os.path.normpath(folder))}")
    from mteb.models.model_meta import ModelMeta

    model_meta = ModelMeta(
        loader=_mteb_loader,
        loader_kwargs={},
        name=name,
        revision=revision,
        release_date=None,
        languages=None,
        n_parameters=sum(p.numel() for p in loaded.parameters()),
        memory_usage_mb=None,
        max_tokens=loaded.max_seq_length,
        embed_dim=list(meta.dims),
        license=meta.license,
        open_weights=True,
        public_training_code=None,
        public_training_data=None,
        framework=["Sentence Transformers", "PyTorch"],
        similarity_fn_name=loaded.similarity_fn_name or "cosine",
        use_instructions=False,
        training_datasets=set(mteb_training_tasks(meta)),
        adapted_from=base_model_id(meta.base_model),
    )
    if register:
        from mteb.models.model_implementations import MODEL_REGISTRY

        MODEL_REGISTRY[name] = model_meta
    return model_meta


def quantized_encoder(model: Any, dim: int, precision: str, int8_ranges: dict | None = None) -> Any:
    """An MTEB encoder for ``model`` that returns the vectors an index at ``precision`` compares.

    Each output is the unit-normalised ``dim`` prefix's code, as floats MTEB's cosine can score: ``binary`` the ±1
    sign bits (cosine of ±1 vectors ranks as Hamming distance does), ``int8`` the values the 256 levels stand for,
    with the model's stored ranges (queries and documents are encoded apart, so the ranges must be fixed first).

    Raises:
        ValueError: for int8 without stored ranges for ``dim``.

    Example:
        ::

            import mteb

            encoder = quantized_encoder(model, 48, "binary")  # what a 6-byte binary index of 48-d prefixes compares
            mteb.evaluate(encoder, mteb.get_tasks(["SciFact"]))
    """
    import numpy as np
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    from st_matryoshka.quantization import index_codes, normalised_prefix, stored_ranges

    ranges = stored_ranges(int8_ranges, dim) if precision == "int8" else None
    if precision == "int8" and ranges is None:
        raise ParameterError(
            "precisions",
            f"precisions: int8: the model has no stored int8 calibration for dim {dim} (train, fit-vectors and extend "
            "store it in st_matryoshka.json); MTEB encodes queries and documents apart, so ranges cannot be taken "
            "from the corpus",
        )

    class QuantizedEncoderWrapper(SentenceTransformerEncoderWrapper):
        def encode(self, inputs: Any, **kwargs: Any) -> Any:
            vectors = np.asarray(super().encode(inputs, **kwargs), dtype=np.float32)
            return index_codes(normalised_prefix(vectors, dim), precision, ranges)

    return QuantizedEncoderWrapper(model)


def run_mteb_per_dim(
    model: Any,
    tasks: Sequence[Any],
    dims: Sequence[int],
    output: str,
    model_name: str,
    revision: str,
    trained_dims: Sequence[int] | None = None,
    model_meta: Any | None = None,
    precisions: Sequence[str] = ("float32",),
    int8_ranges: dict | None = None,
) -> dict[str, dict[str, float]]:
    """Score ``model`` with MTEB at every dim (and precision); results go to ``output`` in MTEB's own layout.

    Each dim is one MTEB experiment (``experiment_kwargs={"embed_dim": k}``), so the results land in
    ``<output>/results/<model_name>/<revision>/experiments/embed_dim_<k>/`` and a leaderboard submission needs no
    hand editing. MTEB keys cached results by model name, revision and experiment: ``revision`` must identify the
    weights (e.g. :func:`st_matryoshka.cache.model_fingerprint`), or two models would share one cache entry. Every
    run overwrites its own entry, so a stale score is never returned.

    Args:
        model: A SentenceTransformer; for speed, the cached-embedding fast model (the transformer then runs once
            per text, not once per dim).
        tasks: MTEB tasks, e.g. from :func:`beir_task` or :func:`named_tasks`.
        dims: Dimensions to score (through ``truncate_dim``).
        output: Results folder (MTEB ``ResultCache`` root).
        model_name: ``org/name`` recorded in the results.
        revision: Weights identity recorded in the results.
        trained_dims: The dims the model was trained for; others get one warning (truncation is still defined).
        model_meta: The model's ``mteb.ModelMeta`` (:func:`mteb_model_meta`); results are written under it, with
            ``embed_dim`` set to each scored dim. Default: the meta mteb derives from the model.
        precisions: ``float32`` and/or the codes ``int8``, ``binary`` (:func:`quantized_encoder`); a code is its
            own experiment, ``embed_dim_<k>__precision_<p>``.
        int8_ranges: The model's stored int8 calibration (``MatryoshkaMetadata.int8_ranges``), for ``int8``.

    Returns:
        ``{task_name: {dim: main_score}}``; codes under ``"<dim>@<precision>"``.
    """
    mteb = _require_mteb()
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    model_folder = model_name.replace("/", "__").replace(" ", "_")
    _check_results_folder(output, model_folder)
    untrained = [d for d in dims if trained_dims is not None and d not in trained_dims]
    if untrained:
        logger.warning(f"dims {untrained} are not among the trained dims {list(trained_dims)}; scored by truncation")
    cache = mteb.ResultCache(output)
    scores: dict[str, dict[str, float]] = {}
    previous = model.truncate_dim
    try:
        for dim in dims:
            for precision in precisions:
                model.truncate_dim = dim
                experiment: dict[str, Any] = {"embed_dim": dim}
                if precision == "float32":
                    wrapper = SentenceTransformerEncoderWrapper(model)
                else:
                    wrapper = quantized_encoder(model, dim, precision, int8_ranges)
                    experiment["precision"] = precision
                meta = {"name": model_name, "revision": revision, "embed_dim": dim, "experiment_kwargs": experiment}
                wrapper.mteb_model_meta = (model_meta or wrapper.mteb_model_meta).model_copy(update=meta)
                result = mteb.evaluate(
                    wrapper, list(tasks), cache=cache, overwrite_strategy="always", show_progress_bar=False
                )
                key = str(dim) if precision == "float32" else f"{dim}@{precision}"
                for task_result in result.task_results:
                    scores.setdefault(task_result.task_name, {})[key] = float(task_result.get_score())
    finally:
        model.truncate_dim = previous
    return scores
