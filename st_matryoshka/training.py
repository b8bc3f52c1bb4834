"""Train a Matryoshka-Adaptor on a frozen Sentence-Transformer with SentenceTransformerTrainer, on cached vectors.

The transformer never runs during training: backbone embeddings come from the on-disk cache or from precomputed
arrays, and a :class:`~st_matryoshka.models.CachedEmbeddings` input module serves them to the adaptor. The adaptor
instance trained here is then inserted into the real model, so ``model.encode(texts, truncate_dim=k)`` works.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Module
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

from st_matryoshka._io import atomic_folder, is_main_process
from st_matryoshka._validation import check_dims
from st_matryoshka.callbacks import BestStateCallback, quiet_progress
from st_matryoshka.data import RetrievalData, split_queries
from st_matryoshka.evaluation import NeighbourOverlapEvaluator, matryoshka_evaluator
from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.metadata import TRAINING_FILE, MatryoshkaMetadata
from st_matryoshka.model_card import MatryoshkaModelCardData, copy_card_data, dataset_key
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor

logger = logging.getLogger(__name__)


def split_index(model: SentenceTransformer) -> int:
    """Where the frozen backbone ends: at the first st_matryoshka module, else before Normalize, else the end.

    Raises:
        ValueError: if the backbone part has no Pooling module.
    """
    modules = list(model)
    index = len(modules)
    for i, module in enumerate(modules):
        if type(module).__module__.startswith("st_matryoshka.") or isinstance(module, Normalize):
            index = i
            break
    if not any(isinstance(m, Pooling) for m in modules[:index]):
        names = [type(m).__name__ for m in modules]
        raise ValueError(f"--model: the model has no Pooling module before the adaptor position (modules: {names})")
    return index


def backbone_of(model: SentenceTransformer) -> SentenceTransformer:
    """The frozen part of ``model`` as its own SentenceTransformer (sharing the modules, no copy)."""
    return SentenceTransformer(modules=list(model)[: split_index(model)], device=str(model.device))


def head_of(model: SentenceTransformer) -> list[torch.nn.Module]:
    """The modules after the backbone (adaptors, Normalize)."""
    return list(model)[split_index(model) :]


def backbone_dim(model: SentenceTransformer) -> int:
    for module in reversed(list(model)[: split_index(model)]):
        if hasattr(module, "get_embedding_dimension"):
            return int(module.get_embedding_dimension())
    raise ValueError("--model: cannot tell the backbone's embedding width")


def with_adaptor(model: SentenceTransformer, adaptor: Module) -> SentenceTransformer:
    """A new SentenceTransformer: ``model``'s backbone, then ``adaptor``, then the rest (e.g. Normalize).

    Any st_matryoshka module already in ``model`` is replaced.
    """
    modules = list(model)
    index = split_index(model)
    rest = [m for m in modules[index:] if not type(m).__module__.startswith("st_matryoshka.")]
    return rebuild(model, [*modules[:index], adaptor, *rest], fresh_card_data(model))


def rebuild(
    model: SentenceTransformer, modules: Sequence[torch.nn.Module], card: MatryoshkaModelCardData | None = None
) -> SentenceTransformer:
    """A new SentenceTransformer of ``modules`` with ``model``'s prompts, similarity function and ``truncate_dim``.

    Its card data is ``card``, or a copy of ``model``'s st_matryoshka card data (never the same object: saving one
    model must not change another's card).
    """
    if card is None:
        source = model.model_card_data
        card = copy_card_data(source) if isinstance(source, MatryoshkaModelCardData) else fresh_card_data(model)
    return SentenceTransformer(
        modules=list(modules),
        device=str(model.device),
        model_card_data=card,
        prompts=dict(model.prompts),
        default_prompt_name=model.default_prompt_name,
        similarity_fn_name=model.similarity_fn_name,
        truncate_dim=model.truncate_dim,
    )


def fresh_card_data(model: SentenceTransformer) -> MatryoshkaModelCardData:
    """New card data for a model derived from ``model`` (never the base model's own object), keeping its language."""
    card = MatryoshkaModelCardData(language=list(model.model_card_data.language or []))
    card.license = model.model_card_data.license
    return card


def fast_model(texts: Sequence[str], vectors: np.ndarray, head: Sequence[torch.nn.Module]) -> SentenceTransformer:
    """``[CachedEmbeddings(texts, vectors), *head]``: the model's output for known texts, without the transformer."""
    # Own card data (no widget examples to compute): the trainer records the losses there, and training copies them.
    card = MatryoshkaModelCardData()
    return SentenceTransformer(modules=[CachedEmbeddings(texts, vectors), *head], device="cpu", model_card_data=card)


def fast_model_of_rows(
    texts: Sequence[str], vectors: Any, rows: np.ndarray, head: Sequence[torch.nn.Module]
) -> SentenceTransformer:
    """:func:`fast_model` over the given rows only (sorted indices), so a large memory-mapped corpus is not loaded."""
    if len(rows) == len(texts):
        return fast_model(texts, vectors, head)
    return fast_model([texts[i] for i in rows], np.asarray(vectors[rows]), head)


def data_fast_model(
    data: RetrievalData, corpus_vectors: np.ndarray, query_vectors: np.ndarray, head: Sequence[torch.nn.Module]
) -> SentenceTransformer:
    """:func:`fast_model` over ``data``'s corpus and queries with their backbone vectors."""
    return fast_model(list(data.corpus) + list(data.queries), np.concatenate([corpus_vectors, query_vectors]), head)


@dataclass
class AdaptorTrainingConfig:
    """Hyper-parameters of :func:`train_matryoshka_adaptor`; defaults are the ones the benchmarks use.

    Args:
        dims: Matryoshka dims to train, strictly descending; the full width is always added to the loss.
        hidden_dim: Hidden width of the adaptor MLP (``None``: the embedding width).
        num_layers: Hidden layers of the adaptor MLP (``0``: linear).
        pca_init: Initialise the adaptor's rotation with the corpus' principal axes.
        center_input: Centre the input on the corpus mean before the rotation (classic PCA start; changes the
            full-width similarities).
        top_k: Neighbours per item in ``L_topk``.
        distill_weight: Weight of ``L_distill`` in the unsupervised stage (``0``: the paper's loss). ``None``: 1.0
            when the unsupervised stage is the last one, 0.0 when a supervised stage follows (measured on SciFact:
            starting the supervised stage from the L_distill-trained adaptor cost about 0.01 NDCG@10 at 96 dims).
        unsupervised_epochs: Maximum epochs of the unsupervised stage (``0`` skips it).
        unsupervised_lr: Learning rate of the unsupervised stage.
        unsupervised_batch_size: Batch size of the unsupervised stage.
        holdout_fraction: Corpus fraction held out for the label-free validation criterion.
        holdout_max: At most this many held-out documents (a fixed-size criterion sample on a large corpus).
        criterion_corpus_max: The criterion searches neighbours among at most this many documents (the held-out
            ones plus a seeded sample); every shared data set is below it, so there the whole corpus is searched.
        max_samples: Training samples per phase at most (``None``: no cap): the unsupervised phase trains on a seeded
            sample of the corpus of ``max_samples / epochs`` documents, the supervised phase on the first
            ``max_samples`` rows of its passes. With a cap, a 1M-vector corpus costs about what 100k cost.
        overlap_k: ``k`` of the neighbour-overlap criterion.
        supervised_epochs: Maximum passes over the train qrels in the supervised stage.
        supervised_lr: Learning rate of the supervised stage.
        supervised_batch_size: Queries per batch in the supervised stage.
        num_negatives: Hard negatives per (query, relevant document) row, re-drawn every pass.
        negative_pool: Negatives are drawn from the top ``negative_pool`` non-relevant documents (backbone ranking).
        validation_fraction: Fraction of the train queries held out (by a hash of the id) for early stopping.
        unsupervised_weight: α in ``L_rank + α · L_unsup``.
        patience: Evaluations without improvement before a stage stops.
        seed: Random seed.
    """

    dims: list[int] = field(default_factory=lambda: [192, 96, 48, 24])
    hidden_dim: int | None = None
    num_layers: int = 1
    pca_init: bool = True
    center_input: bool = False
    top_k: int = 10
    distill_weight: float | None = None
    unsupervised_epochs: int = 30
    unsupervised_lr: float = 1e-3
    unsupervised_batch_size: int = 512
    holdout_fraction: float = 0.1
    holdout_max: int = 1000
    criterion_corpus_max: int = 20000
    max_samples: int | None = None
    overlap_k: int = 10
    supervised_epochs: int = 40
    supervised_lr: float = 2e-3
    supervised_batch_size: int = 64
    num_negatives: int = 16
    negative_pool: int = 50
    validation_fraction: float = 0.15
    unsupervised_weight: float = 1.0
    patience: int = 5
    seed: int = 42

    def __post_init__(self) -> None:
        self.dims = check_dims(self.dims, name="dims")
        if self.center_input and not self.pca_init:
            raise ValueError("center_input=True needs pca_init=True (the mean is set with the principal axes)")
        for name in ("holdout_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        if self.criterion_corpus_max <= self.holdout_max:
            raise ValueError(
                f"criterion_corpus_max={self.criterion_corpus_max} must exceed holdout_max={self.holdout_max}"
            )
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 1):
            raise ValueError(f"max_samples must be a positive int or None, got {self.max_samples!r}")
        names = ("unsupervised_batch_size", "supervised_batch_size", "num_negatives", "negative_pool", "top_k")
        for name in (*names, "holdout_max", "criterion_corpus_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")

    def resolved_distill_weight(self, supervised: bool) -> float:
        """``distill_weight``, or its default when ``None``: 0.0 before a supervised stage, else 1.0."""
        if self.distill_weight is not None:
            return self.distill_weight
        return 0.0 if supervised else 1.0


@dataclass
class StageResult:
    """What one training stage did: criterion scores per evaluation, the chosen step and the time taken."""

    name: str
    metric: str
    history: list[tuple[int, float]]
    best_step: int | None
    best: float | None
    seconds: float
    epoch_seconds: float
    losses: dict[str, str] = field(default_factory=dict)
    """``{loss name: citation}`` as the trainer recorded them in the training model's card data."""


def _training_args(out: str, epochs: float, batch_size: int, lr: float, seed: int, eval_steps: int | None) -> Any:
    return SentenceTransformerTrainingArguments(
        output_dir=out,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        eval_strategy="steps" if eval_steps else "epoch",
        eval_steps=eval_steps,
        eval_on_start=True,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        dataloader_drop_last=True,
    )


def _run_stage(
    name: str,
    model: SentenceTransformer,
    adaptor: torch.nn.Module,
    args: Any,
    train_dataset: Dataset,
    loss: torch.nn.Module,
    evaluator: Any,
    metric: str,
    patience: int,
    steps_per_epoch: int,
) -> StageResult:
    callback = BestStateCallback(adaptor, metric=metric, patience=patience)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator, callbacks=[callback]
    )
    quiet_progress(trainer)
    start = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - start
    steps = max(1, output.global_step)
    train_seconds = float(output.metrics.get("train_runtime", seconds))
    return StageResult(
        name=name,
        metric=metric,
        history=callback.history,
        best_step=callback.best_step,
        best=callback.best,
        seconds=seconds,
        epoch_seconds=train_seconds / steps * steps_per_epoch,
        losses=dict(model.model_card_data.citations),
    )


def holdout_split(
    corpus: Sequence[str],
    corpus_vectors: np.ndarray,
    dims: Sequence[int],
    config: AdaptorTrainingConfig,
    epochs: float | None = None,
) -> tuple[Dataset, NeighbourOverlapEvaluator, np.ndarray]:
    """Split the corpus for the unsupervised stage: ``(training texts, criterion, rows served)``.

    A seeded ``holdout_fraction`` of the documents (at most ``holdout_max``) is held out and scored by
    top-``overlap_k`` neighbour overlap with the backbone at ``dims``. With ``config.max_samples``, the training
    documents are a seeded sample of ``max_samples / epochs`` (``epochs``: the phase's passes, default
    ``unsupervised_epochs``), so the phase sees at most ``max_samples`` samples whatever the corpus size. The third
    value lists the corpus rows the phase touches (training, held-out and searched documents), sorted: the training
    model needs only those rows.
    """
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(corpus))
    n_hold = max(config.overlap_k + 1, int(round(config.holdout_fraction * len(corpus))))
    n_hold = min(n_hold, config.holdout_max)
    hold, train = order[:n_hold], order[n_hold:]
    passes = epochs if epochs is not None else config.unsupervised_epochs
    if config.max_samples is not None and passes > 0 and len(train) * passes > config.max_samples:
        train = train[: max(config.unsupervised_batch_size, int(config.max_samples // passes))]
    if len(train) < config.unsupervised_batch_size:
        raise ValueError(
            f"unsupervised_batch_size={config.unsupervised_batch_size} exceeds the {len(train)} training documents"
        )
    # The criterion searches a fixed-size sample of the corpus (all of it up to criterion_corpus_max documents,
    # which covers every shared data set), so its cost does not grow with the corpus.
    if len(corpus) <= config.criterion_corpus_max:
        search = np.arange(len(corpus))
    else:
        others = rng.choice(order[n_hold:], size=config.criterion_corpus_max - n_hold, replace=False)
        search = np.sort(np.concatenate([hold, others]))
    evaluator = NeighbourOverlapEvaluator(
        [corpus[i] for i in hold],
        [corpus[i] for i in search],
        corpus_vectors[hold],
        corpus_vectors[search],
        dims=list(dims),
        k=config.overlap_k,
        name="holdout",
    )
    used = np.unique(np.concatenate([train, hold, search]))
    return Dataset.from_dict({"text": [corpus[i] for i in train]}), evaluator, used


def train_unsupervised(
    adaptor: MatryoshkaAdaptor,
    corpus: Sequence[str],
    corpus_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
    work_dir: str,
    distill_weight: float = 1.0,
) -> StageResult:
    """Unsupervised stage on the corpus; stops and picks weights by neighbour overlap on a held-out corpus slice."""
    full = adaptor.embedding_dim
    loss_dims = [full, *[d for d in config.dims if d < full]]
    dataset, evaluator, used = holdout_split(corpus, corpus_vectors, [d for d in config.dims if d < full], config)
    model = fast_model_of_rows(corpus, corpus_vectors, used, [adaptor])
    loss = MatryoshkaUnsupervisedLoss(model, loss_dims, top_k=config.top_k, distill_weight=distill_weight)
    steps_per_epoch = len(dataset) // config.unsupervised_batch_size
    args = _training_args(
        work_dir, config.unsupervised_epochs, config.unsupervised_batch_size, config.unsupervised_lr, config.seed, None
    )
    return _run_stage(
        "unsupervised",
        model,
        adaptor,
        args,
        dataset,
        loss,
        evaluator,
        f"eval_{evaluator.primary_metric}",
        config.patience,
        steps_per_epoch,
    )


def chunked_top_k(queries: torch.Tensor, corpus_vectors: Any, k: int, chunk_size: int = 65536) -> torch.Tensor:
    """Indices of the ``k`` corpus rows most cosine-similar to each (normalised) query, best first.

    The corpus (an array, tensor or memory-mapped ``.npy``) is read ``chunk_size`` rows at a time, so memory is set by
    the chunk, not the corpus size.
    """
    best_scores = torch.empty(len(queries), 0)
    best_index = torch.empty(len(queries), 0, dtype=torch.long)
    for start in range(0, len(corpus_vectors), chunk_size):
        rows = torch.nn.functional.normalize(torch.as_tensor(np.asarray(corpus_vectors[start : start + chunk_size])))
        scores = torch.cat([best_scores, queries @ rows.T.to(queries.dtype)], dim=1)
        index = torch.cat([best_index, torch.arange(start, start + len(rows)).expand(len(queries), -1)], dim=1)
        best_scores, order = scores.topk(min(k, scores.shape[1]), dim=1)
        best_index = index.gather(1, order)
    return best_index


def _supervised_rows(
    data: RetrievalData,
    query_ids: Sequence[str],
    query_vectors: dict[str, np.ndarray],
    corpus_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
) -> Dataset:
    """Rows ``(query, positive, negative_1..n)`` with label ``[grade, 0, ..., 0]``, re-drawn for every pass."""
    rng = random.Random(config.seed)
    doc_index = {cid: i for i, cid in enumerate(data.corpus_ids)}
    q_t = torch.nn.functional.normalize(torch.as_tensor(np.stack([query_vectors[q] for q in query_ids])), dim=-1)
    most_relevant = max(len(data.qrels[q]) for q in query_ids)
    pool_size = min(config.negative_pool + most_relevant, len(data.corpus_ids))
    ranked = chunked_top_k(q_t, corpus_vectors, pool_size).tolist()
    queries = data.query_dict()
    pools = {}
    for qid, top in zip(query_ids, ranked):
        relevant = {doc_index[c] for c in data.qrels[qid]}
        pool = [j for j in top if j not in relevant][: config.negative_pool]
        if len(pool) < config.num_negatives:
            raise ValueError(
                f"num_negatives={config.num_negatives} exceeds the {len(pool)} candidate negatives of query {qid!r}"
            )
        pools[qid] = pool
    columns: dict[str, list[Any]] = {"query": [], **{f"doc_{i}": [] for i in range(config.num_negatives + 1)}}
    columns["label"] = []
    for _ in range(config.supervised_epochs):
        for qid in query_ids:
            for cid, grade in sorted(data.qrels[qid].items()):
                negatives = rng.sample(pools[qid], config.num_negatives)
                docs = [doc_index[cid], *negatives]
                columns["query"].append(queries[qid])
                for i, j in enumerate(docs):
                    columns[f"doc_{i}"].append(data.corpus[j])
                columns["label"].append([float(grade)] + [0.0] * config.num_negatives)
    if config.max_samples is not None:
        columns = {name: values[: config.max_samples] for name, values in columns.items()}
    return Dataset.from_dict(columns)


def check_supervised_data(data: RetrievalData, config: AdaptorTrainingConfig) -> None:
    """Everything the supervised stage needs from ``data``, checked before any training step.

    Raises:
        ValueError: if the split has no queries with relevant documents, too few to hold out a validation slice, or
            a corpus too small for ``num_negatives`` negatives per query.
    """
    if not data.qrels:
        raise ValueError("the train split has no queries with a relevant document in the corpus (check --train-split)")
    fit_ids, val_ids = split_queries(sorted(data.qrels), config.validation_fraction)
    if not fit_ids or not val_ids:
        raise ValueError(f"the train split has too few queries ({len(data.qrels)}) to hold out a validation slice")
    most_relevant = max(len(docs) for docs in data.qrels.values())
    candidates = min(config.negative_pool, len(data.corpus_ids) - most_relevant)
    if candidates < config.num_negatives:
        raise ValueError(
            f"num_negatives={config.num_negatives} exceeds the {candidates} candidate negatives per query "
            f"(negative_pool={config.negative_pool}, {len(data.corpus_ids)} documents)"
        )


def train_supervised(
    adaptor: MatryoshkaAdaptor,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
    work_dir: str,
) -> StageResult:
    """Supervised stage: rank loss + α · unsupervised terms on ``data.qrels`` (the train split).

    A fixed fraction of the train queries (by a hash of the id) is held out; training stops and keeps the weights
    with the best mean NDCG@10 over the full width and every dim on them.
    """
    full = adaptor.embedding_dim
    loss_dims = [full, *[d for d in config.dims if d < full]]
    fit_ids, val_ids = split_queries(sorted(data.qrels), config.validation_fraction)
    if not fit_ids or not val_ids:
        raise ValueError(f"the train split has too few queries ({len(data.qrels)}) to hold out a validation slice")
    model = data_fast_model(data, corpus_vectors, query_vectors, [adaptor])
    qvec = dict(zip(data.query_ids, query_vectors))
    rows = _supervised_rows(data, fit_ids, qvec, corpus_vectors, config)
    per_pass = len(rows) // config.supervised_epochs
    steps_per_pass = max(1, per_pass // config.supervised_batch_size)
    val_data = data.with_qrels({q: data.qrels[q] for q in val_ids})
    evaluator = matryoshka_evaluator(val_data, loss_dims, name="validation")
    loss = MatryoshkaRankLoss(model, loss_dims, unsupervised_weight=config.unsupervised_weight, top_k=config.top_k)
    args = _training_args(work_dir, 1, config.supervised_batch_size, config.supervised_lr, config.seed, steps_per_pass)
    return _run_stage(
        "supervised",
        model,
        adaptor,
        args,
        rows,
        loss,
        evaluator,
        "eval_sequential_score",
        config.patience,
        steps_per_pass,
    )


def train_matryoshka_adaptor(
    model: SentenceTransformer,
    corpus_data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: AdaptorTrainingConfig,
    supervised: bool = False,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Train an adaptor for ``model`` and return ``(model with the adaptor, stage results)``.

    Args:
        model: The base SentenceTransformer (must contain Pooling).
        corpus_data: The data; for ``supervised=True`` its qrels must be the training split.
        corpus_vectors: Backbone embeddings of ``corpus_data.corpus``, in order.
        query_vectors: Backbone embeddings of ``corpus_data.queries``, in order.
        config: Hyper-parameters.
        supervised: Run the supervised stage after the unsupervised one.

    Example:
        ::

            config = AdaptorTrainingConfig()
            trained, stages = train_matryoshka_adaptor(model, load_beir(path, "train"), cv, qv, config)
            trained.encode(["a query"], truncate_dim=48)
    """
    adaptor, stages = fit_matryoshka_adaptor(
        backbone_dim(model), corpus_data, corpus_vectors, query_vectors, config, supervised=supervised
    )
    # search_adaptor_config is the one linear, supervised-only configuration
    method = "search-adaptor" if config.num_layers == 0 and config.unsupervised_epochs == 0 else "matryoshka-adaptor"
    return with_metadata(with_adaptor(model, adaptor), method, config, supervised, stages), stages


def with_metadata(
    model: SentenceTransformer, method: str, config: Any, supervised: bool, stages: Sequence[StageResult]
) -> SentenceTransformer:
    """Attach the trained dims, method, settings and losses to ``model``'s card data; returns the model.

    ``matryoshka_dims(model)`` and the card (also when the model is saved with plain ``model.save``) read them.
    """
    summary = {"method": method, "supervised": supervised, "config": dict(config.__dict__)}
    model.model_card_data.matryoshka = training_metadata(model, summary, stages)
    return model


def fit_matryoshka_adaptor(
    width: int,
    corpus_data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    config: AdaptorTrainingConfig,
    supervised: bool = False,
) -> tuple[MatryoshkaAdaptor, list[StageResult]]:
    """Train a :class:`MatryoshkaAdaptor` of ``width`` on backbone vectors alone: ``(adaptor, stage results)``.

    The engine behind :func:`train_matryoshka_adaptor` and :func:`st_matryoshka.vectors.fit_vectors`: no
    SentenceTransformer is needed, only the vectors and the texts or keys that name their rows.
    """
    check_dims(config.dims, name="dims", max_dim=width)
    if config.dims[-1] >= width:
        raise ValueError(f"dims must include a dim below the model's width {width}, got {config.dims!r}")
    if tuple(corpus_vectors.shape) != (len(corpus_data.corpus), width):
        raise ValueError(
            f"corpus embeddings have shape {tuple(corpus_vectors.shape)}, expected ({len(corpus_data.corpus)}, "
            f"{width})"
        )
    if supervised:
        check_supervised_data(corpus_data, config)
    torch.manual_seed(config.seed)
    adaptor = MatryoshkaAdaptor(
        width, hidden_dim=config.hidden_dim, num_layers=config.num_layers, center_input=config.center_input
    )
    if config.pca_init:
        adaptor.init_rotation(corpus_vectors)
    stages: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="st_matryoshka_") as work:
        if config.unsupervised_epochs > 0:
            distill = config.resolved_distill_weight(supervised)
            stages.append(
                train_unsupervised(adaptor, corpus_data.corpus, corpus_vectors, config, work, distill_weight=distill)
            )
        if supervised:
            stages.append(train_supervised(adaptor, corpus_data, corpus_vectors, query_vectors, config, work))
    adaptor.eval()
    return adaptor, stages


def fit_pca_adaptor(model: SentenceTransformer, corpus_vectors: np.ndarray) -> SentenceTransformer:
    """The PCA baseline as a module of ``model``: see :func:`pca_adaptor`."""
    trained = with_adaptor(model, pca_adaptor(backbone_dim(model), corpus_vectors))
    trained.model_card_data.matryoshka = MatryoshkaMetadata(dims=[backbone_dim(model)], method="pca")
    return trained


def pca_adaptor(width: int, corpus_vectors: Any) -> MatryoshkaAdaptor:
    """The PCA baseline as a module: a linear MatryoshkaAdaptor holding the corpus mean and principal axes.

    Its prefixes are the classic (centred) PCA projections fit on ``corpus_vectors``; nothing is trained, and
    :func:`st_matryoshka.export.export_to_st_modules` folds it into ST's ``Normalize`` + ``Dense``.
    """
    adaptor = MatryoshkaAdaptor(width, num_layers=0, center_input=True)
    adaptor.init_rotation(corpus_vectors)
    return adaptor.eval()


def search_adaptor_config(dims: Sequence[int], **overrides: Any) -> AdaptorTrainingConfig:
    """Configuration of the Search-Adaptor baseline (Yoon et al. 2023, arXiv 2310.08750), Matryoshka-style.

    One linear map for all target dims (``num_layers=0``), started from the PCA rotation and trained with the rank
    loss over every prefix only: no unsupervised stage and no unsupervised terms. The paper trains one reduction per
    target size; a single Matryoshka-style map keeps the output truncatable by prefix, as every st_matryoshka model
    is, and folds into ST's ``Dense`` (:mod:`st_matryoshka.export`). Train it with ``supervised=True``.
    """
    settings = {"num_layers": 0, "unsupervised_epochs": 0, "unsupervised_weight": 0.0, **overrides}
    return AdaptorTrainingConfig(dims=list(dims), **settings)


def training_metadata(
    model: SentenceTransformer, summary: dict[str, Any], stages: Sequence[StageResult] = ()
) -> MatryoshkaMetadata:
    """The :class:`MatryoshkaMetadata` of a model trained as ``summary`` (the CLI's training record) describes."""
    return metadata_for(backbone_dim(model), head_of(model), summary, stages)


def metadata_for(
    width: int, head: Sequence[torch.nn.Module], summary: dict[str, Any], stages: Sequence[StageResult] = ()
) -> MatryoshkaMetadata:
    """:func:`training_metadata` from the backbone width and the modules after it (no SentenceTransformer needed)."""
    trained = [m for m in head if hasattr(m, "trained_dims")]
    dims = trained[0].trained_dims if trained else [width, *summary.get("config", {}).get("dims", [])]
    losses: dict[str, str] = {}
    for stage in stages:
        losses.update(stage.losses)
    data = summary.get("data")
    train_data = {"name": dataset_key(data)} if data else {}
    if summary.get("supervised"):
        train_data["split"] = summary.get("train_split", "train")
    config = {k: v for k, v in summary.get("config", {}).items() if k != "dims"}
    if summary.get("method") == "pca":
        config = {"center_input": True}  # the classic PCA baseline; no training settings apply
    return MatryoshkaMetadata(
        dims=[d for d in dims if d <= width],
        default_dim=summary.get("default_dim"),
        method=summary.get("method"),
        supervised=bool(summary.get("supervised")),
        base_model=summary.get("base_model"),
        train_data=train_data,
        config=config,
        losses=losses,
    )


def save_model_atomic(
    model: SentenceTransformer,
    output: str,
    overwrite: bool = False,
    extra: dict | None = None,
    metadata: MatryoshkaMetadata | None = None,
) -> None:
    """Save to a temporary folder beside ``output``, then move it into place.

    An existing non-empty ``output`` is refused unless ``overwrite``; it is replaced only after the new model is
    completely written, so an interrupted save never leaves a half-written model behind. ``extra`` is written as the
    training record (``st_matryoshka_training.json``), ``metadata`` as ``st_matryoshka.json``, and the model card is
    rendered from ``metadata``.
    """
    if metadata is not None:
        card = model.model_card_data
        if not isinstance(card, MatryoshkaModelCardData):
            card = fresh_card_data(model)
            model.model_card_data = card
            card.register_model(model)
        card.matryoshka = metadata
        model.truncate_dim = metadata.default_dim
    if not is_main_process():  # under torchrun every process holds the same weights; rank 0 writes them
        return
    with atomic_folder(output, overwrite=overwrite) as tmp:
        model.save(tmp)
        if metadata is not None and not os.path.isfile(os.path.join(tmp, "README.md")):
            raise ValueError("save: the model card could not be rendered (the log above says why); nothing written")
        if extra is not None:
            with open(os.path.join(tmp, TRAINING_FILE), "w", encoding="utf-8") as f:
                json.dump(extra, f, indent=2, default=str)
        if metadata is not None:
            metadata.save(tmp)


def stage_summary(stages: Sequence[StageResult]) -> list[dict[str, Any]]:
    return [asdict(s) for s in stages]
