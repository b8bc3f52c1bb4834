"""The training engine: every method is a plan of stages that the same phases, trainer and callback run.

:func:`fit_adaptor` is the library's one training entry point (``st-matryoshka train`` and ``fit-vectors``, the
recipes, the benchmarks and :func:`st_matryoshka.vectors.fit_vectors` all call it). It builds the method's adaptor,
then :func:`train_phases` runs the unsupervised phase on the corpus and, when supervised, the supervised phase on the
training qrels. A phase is one ``SentenceTransformerTrainer`` run over the phase's plan of stages
(:func:`stage_plan`), selected and stopped by one :class:`~st_matryoshka.callbacks.StageCallback`:

======================  ===========================================================  ================================
method                  adaptor                                                      plan (per phase)
======================  ===========================================================  ================================
``matryoshka-adaptor``  :class:`~st_matryoshka.models.MatryoshkaAdaptor`             one joint stage over every dim
``search-adaptor``      the same, linear (``num_layers=0``), supervised phase only   one joint stage over every dim
``smec``                :class:`~st_matryoshka.models.SMECAdaptor`                   one stage per dim (SMRL), or one
                                                                                     joint stage (``smrl=False``)
``pca``                 the same, linear and centred; nothing trained                no stages
======================  ===========================================================  ================================

Criteria, for every method: an unsupervised stage is scored by the geometric mean, over its dims below the width,
of top-``overlap_k`` neighbour overlap with the backbone on held-out documents (label-free); a supervised stage by
the mean NDCG@10 over its dims on held-out training queries. So SMEC with ``smrl=False, ads=False, xbm=False`` is the
supervised Matryoshka-Adaptor: the same adaptor body, plan, losses and criteria.

Data: training rows hold keys (``c:<id>``, ``q:<id>``), never texts; the vectors stay where they are (an array or a
memory-mapped ``.npy``) and a :class:`~st_matryoshka.models.CachedEmbeddings` input module serves the rows a phase
touches. Nothing is N x N: neighbours come from the batch, the cross-batch memory or :func:`chunked_top_k`, and the
label-free criterion uses a fixed-size sample (:func:`holdout_split`).
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.evaluation import SequentialEvaluator
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
from transformers import Trainer

from st_matryoshka._validation import ParameterError, check_dims
from st_matryoshka.callbacks import Stage, StageCallback, quiet_progress
from st_matryoshka.config import METHODS, AdaptorTrainingConfig, SMECTrainingConfig
from st_matryoshka.data import RetrievalData, ValidationSplit, validation_split
from st_matryoshka.evaluation import NeighbourOverlapEvaluator, matryoshka_evaluator
from st_matryoshka.evaluation.retrieval import dim_evaluators
from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.models.matryoshka_adaptor import evenly_spaced
from st_matryoshka.models.smec import plan_stages
from st_matryoshka.quantization import quantize_prefix
from st_matryoshka.surgery import fast_model, fast_model_of_rows

logger = logging.getLogger(__name__)

PHASES = ("unsupervised", "supervised")


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
    selection: dict[str, Any] = field(default_factory=dict)
    """On a supervised phase's last result: which validation chose the weights and which were kept
    (:func:`interpolate_supervised`)."""


# ---------------------------------------------------------------------------------------------------------------------
# The training model: cached vectors in, the adaptor on top


def keyed_data(data: RetrievalData) -> RetrievalData:
    """``data`` with every text replaced by a short unique key (``c:<id>``, ``q:<id>``).

    Training rows then hold keys instead of document texts, so re-drawn negatives for many passes cost little
    memory; :class:`~st_matryoshka.models.CachedEmbeddings` serves the vectors by key.
    """
    return RetrievalData(
        data.corpus_ids,
        [f"c:{cid}" for cid in data.corpus_ids],
        data.query_ids,
        [f"q:{qid}" for qid in data.query_ids],
        data.qrels,
        data.name,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Phase data: the unsupervised sample and criterion, the supervised rows


def holdout_split(
    corpus: Sequence[str],
    corpus_vectors: Any,
    dims: Sequence[int],
    config: AdaptorTrainingConfig,
    epochs: float | None = None,
) -> tuple[Dataset, NeighbourOverlapEvaluator, np.ndarray]:
    """Split the corpus for the unsupervised phase: ``(training texts, criterion, rows served)``.

    A seeded ``holdout_fraction`` of the documents (at most ``holdout_max``) is held out and scored by
    top-``overlap_k`` neighbour overlap with the backbone at ``dims``, searching at most ``criterion_corpus_max``
    documents (the held-out ones plus a seeded sample; every shared data set is below that, so there the whole
    corpus is searched). With ``config.max_samples``, the training documents are a seeded sample of
    ``max_samples / epochs`` (``epochs``: the phase's passes, default ``unsupervised_epochs``), so the phase sees at
    most ``max_samples`` samples whatever the corpus size. The third value lists the corpus rows the phase touches
    (training, held-out and searched documents), sorted: the training model needs only those rows.
    """
    hold, train, search = holdout_rows(len(corpus), config)
    passes = epochs if epochs is not None else config.unsupervised_epochs
    if config.max_samples is not None and passes > 0 and len(train) * passes > config.max_samples:
        train = train[: max(config.unsupervised_batch_size, int(config.max_samples // passes))]
    if len(train) < config.unsupervised_batch_size:
        raise ParameterError(
            "unsupervised_batch_size",
            f"unsupervised_batch_size={config.unsupervised_batch_size} exceeds the {len(train)} training documents",
        )
    evaluator = NeighbourOverlapEvaluator(
        [corpus[i] for i in hold],
        [corpus[i] for i in search],
        corpus_vectors[hold],
        corpus_vectors[search],
        dims=list(dims),
        k=config.overlap_k,
        name="holdout",
        precisions=config.precisions,
    )
    used = np.unique(np.concatenate([train, hold, search]))
    return Dataset.from_dict({"text": [corpus[i] for i in train]}), evaluator, used


def holdout_rows(n: int, config: AdaptorTrainingConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label-free criterion's rows of an ``n``-document corpus: ``(held out, the rest, searched)``, seeded.

    ``holdout_fraction`` of the documents (at least ``overlap_k + 1``, at most ``holdout_max``) are held out; the
    searched rows are the whole corpus up to ``criterion_corpus_max`` documents, else the held-out ones plus a seeded
    sample of the rest (sorted).
    """
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    n_hold = min(max(config.overlap_k + 1, int(round(config.holdout_fraction * n))), config.holdout_max)
    hold, rest = order[:n_hold], order[n_hold:]
    if n <= config.criterion_corpus_max:
        return hold, rest, np.arange(n)
    others = rng.choice(rest, size=config.criterion_corpus_max - n_hold, replace=False)
    return hold, rest, np.sort(np.concatenate([hold, others]))


def chunked_top_k(queries: torch.Tensor, corpus_vectors: Any, k: int, chunk_size: int = 65536) -> torch.Tensor:
    """Indices of the ``k`` corpus rows most cosine-similar to each (normalised) query, best first.

    The corpus (an array, tensor or memory-mapped ``.npy``) is read ``chunk_size`` rows at a time, so memory is set by
    the chunk, not the corpus size.
    """
    best_scores = torch.empty(len(queries), 0)
    best_index = torch.empty(len(queries), 0, dtype=torch.long)
    for start in range(0, len(corpus_vectors), chunk_size):
        rows = torch.nn.functional.normalize(torch.tensor(np.asarray(corpus_vectors[start : start + chunk_size])))
        scores = torch.cat([best_scores, queries @ rows.T.to(queries.dtype)], dim=1)
        index = torch.cat([best_index, torch.arange(start, start + len(rows)).expand(len(queries), -1)], dim=1)
        best_scores, order = scores.topk(min(k, scores.shape[1]), dim=1)
        best_index = index.gather(1, order)
    return best_index


def supervised_rows(
    data: RetrievalData,
    query_ids: Sequence[str],
    query_vectors: dict[str, np.ndarray],
    corpus_vectors: Any,
    config: AdaptorTrainingConfig,
    used_docs: set[int] | None = None,
    exclude_docs: set[int] | None = None,
) -> Dataset:
    """Rows ``(query, positive, negative_1..n)`` with label ``[grade, 0, ..., 0]``, re-drawn for every pass.

    ``config.supervised_epochs`` passes over the qrels of ``query_ids``, at most ``config.max_samples`` rows. The
    negatives of a query are drawn from its top ``negative_pool`` non-relevant documents by the backbone
    (:func:`chunked_top_k`), leaving out the corpus rows in ``exclude_docs`` (the validation queries' relevant
    documents, so the training rows never name them). ``used_docs``, when given, receives the corpus rows the
    returned rows name.
    """
    rng = random.Random(config.seed)
    doc_index = {cid: i for i, cid in enumerate(data.corpus_ids)}
    q_t = torch.nn.functional.normalize(torch.as_tensor(np.stack([query_vectors[q] for q in query_ids])), dim=-1)
    excluded = exclude_docs or set()
    most_relevant = max(len(data.qrels[q]) for q in query_ids) + len(excluded)
    pool_size = min(config.negative_pool + most_relevant, len(data.corpus_ids))
    ranked = chunked_top_k(q_t, corpus_vectors, pool_size).tolist()
    queries = data.query_dict()
    pools = {}
    for qid, top in zip(query_ids, ranked):
        relevant = {doc_index[c] for c in data.qrels[qid]} | excluded
        pool = [j for j in top if j not in relevant][: config.negative_pool]
        if len(pool) < config.num_negatives:
            raise ParameterError(
                "num_negatives",
                f"num_negatives={config.num_negatives} exceeds the {len(pool)} candidate negatives of query {qid!r}",
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
    if used_docs is not None:
        keys = {key for i in range(config.num_negatives + 1) for key in columns[f"doc_{i}"]}
        used_docs.update(doc_index[c] for c, key in zip(data.corpus_ids, data.corpus) if key in keys)
    return Dataset.from_dict(columns)


def validation_corpus(
    data: RetrievalData,
    query_ids: Sequence[str],
    query_vectors: dict[str, np.ndarray],
    corpus_vectors: Any,
    config: AdaptorTrainingConfig,
) -> np.ndarray:
    """The corpus rows the supervised criterion searches for ``query_ids`` (sorted).

    The whole corpus up to ``criterion_corpus_max`` documents (every shared data set is below it); above, a
    fixed-size sample: the queries' relevant documents, each query's top documents by the backbone (the hard
    candidates: up to ``negative_pool`` per query, at most half the sample), and a seeded random fill up to
    ``criterion_corpus_max``. Scores on the sample are higher than on the
    whole corpus, but the criterion only compares the weights of one run with each other, and its cost stays fixed.
    """
    n = len(data.corpus_ids)
    if n <= config.criterion_corpus_max:
        return np.arange(n)
    doc_index = {cid: i for i, cid in enumerate(data.corpus_ids)}
    chosen = {doc_index[c] for q in query_ids for c in data.qrels[q]}
    per_query = min(config.negative_pool, (config.criterion_corpus_max - len(chosen)) // (2 * len(query_ids)))
    if per_query > 0:
        q_t = torch.nn.functional.normalize(torch.as_tensor(np.stack([query_vectors[q] for q in query_ids])), dim=-1)
        chosen.update(chunked_top_k(q_t, corpus_vectors, per_query).flatten().tolist())
    rng = np.random.default_rng(config.seed)
    fill = [int(i) for i in rng.choice(n, size=min(n, config.criterion_corpus_max), replace=False) if i not in chosen]
    chosen.update(fill[: max(0, config.criterion_corpus_max - len(chosen))])
    return np.array(sorted(chosen))


def check_supervised_data(data: RetrievalData, config: AdaptorTrainingConfig) -> None:
    """Everything the supervised phase needs from ``data``, checked before any training step.

    Raises:
        ValueError: if the split has no queries with relevant documents, too few to hold out a validation slice, or
            a corpus too small for ``num_negatives`` negatives per query.
    """
    if not data.qrels:
        raise ParameterError(
            "qrels", "qrels: the training split has no queries with a relevant document in the corpus"
        )
    if not isinstance(config.supervised_epochs, int) or config.supervised_epochs < 1:
        raise ParameterError(
            "supervised_epochs",
            f"supervised_epochs must be a positive int with supervised, got {config.supervised_epochs!r}",
        )
    split = validation_split(
        data.qrels, config.validation_fraction, config.validation_split, config.seed, config.min_validation_queries
    )
    # Too few validation queries: the supervised phase will not run (train_phases says so), nothing to refuse
    enough = enough_validation(split, config.min_validation_queries, config.corpus_mode)
    if (not split.fit or not split.held_out) and enough:
        raise ParameterError(
            "qrels",
            f"qrels: the training split has too few queries ({len(data.qrels)}) to hold out a validation slice "
            f"(validation_fraction={config.validation_fraction})",
        )
    most_relevant = max(len(docs) for docs in data.qrels.values())
    candidates = min(config.negative_pool, len(data.corpus_ids) - most_relevant)
    if candidates < config.num_negatives:
        raise ParameterError(
            "num_negatives",
            f"num_negatives={config.num_negatives} exceeds the {candidates} candidate negatives per query "
            f"(negative_pool={config.negative_pool}, {len(data.corpus_ids)} documents)",
        )


# ---------------------------------------------------------------------------------------------------------------------
# Plans and phases


def stage_plan(
    adaptor: MatryoshkaAdaptor,
    config: AdaptorTrainingConfig,
    phase: str,
    indices: Sequence[int] | None = None,
    train_body: bool = True,
    init_vectors: Any = None,
    select_on: str = "validation",
) -> list[Stage]:
    """The stages ``adaptor`` trains in ``phase`` (``"unsupervised"`` or ``"supervised"``), as ``config`` says.

    One joint stage (all trainable parameters, loss and criterion over every dim) unless the adaptor is an
    :class:`~st_matryoshka.models.SMECAdaptor` and ``config.smrl``: then one stage per SMEC stage in ``indices``
    (default: all), each training its own parameters for its own transition, the first one also the body when
    ``train_body``. With ``init_vectors`` each SMRL stage starts as PCA of its input block over them. In the
    unsupervised phase, unless ``config.unsupervised_body_early_stop``, the stage that trains the body runs to its cap
    and keeps its last weights.

    A supervised stage is scored by mean NDCG@10 over its dims on the ``select_on`` validation queries
    (``validation``, or ``seen``: those held out by a hash of the id under ``validation_split="both"``).

    Quantisation-aware training (``config.precisions`` beyond float32) runs its unsupervised stages to their cap and
    keeps their best evaluation: the criterion dips while the codes reorganise, then rises past its start (measured
    on SciFact: below the start for 5 evaluations, above it from the 6th).
    """
    if phase not in PHASES:
        raise ParameterError("phase", f"phase must be one of {list(PHASES)}, got {phase!r}")
    full = adaptor.embedding_dim
    unsupervised = phase == "unsupervised"
    metric = f"{select_on}_dim{{dim}}_cosine_ndcg@10"
    if unsupervised:
        metric = f"holdout_overlap@{config.overlap_k}_dim{{dim}}"
    aggregate = "geomean" if unsupervised else "mean"
    to_cap = config.unsupervised_epochs if unsupervised and len(config.precisions) > 1 else None

    def keys(dims: Sequence[int]) -> list[str]:
        # The float overlap with the backbone is 1.0 at the full width at the start and can only fall: it would veto
        # every change, so the label-free criterion leaves the full width out (its codes' overlap counts).
        found = [metric.format(dim=d) for d in dims if not (unsupervised and d == full)]
        if unsupervised:
            found += [metric.format(dim=d) + f"_{p}" for d in dims for p in config.precisions if p != "float32"]
        return found

    if not isinstance(adaptor, SMECAdaptor):
        dims = [full, *[d for d in config.dims if d < full]]
        params = list(adaptor.parameters())
        if not unsupervised and getattr(config, "supervised_parameters", "all") == "last-layer":
            params = list(adaptor.residual[-1].parameters())
        return [Stage("joint", params, dims, keys(dims), aggregate, patience=to_cap)]

    def dim_of(i: int) -> int:
        start, _, keep = adaptor.stages[i]
        return start + keep

    indices = list(range(len(adaptor.stages))) if indices is None else list(indices)
    if not getattr(config, "smrl", False):
        params = list(adaptor.body_parameters()) if train_body else []
        for i in indices:
            params += adaptor.stage_parameters(i)
        dims = sorted({full, *(dim_of(i) for i in indices)}, reverse=True)
        return [Stage("joint", params, dims, keys(dims), aggregate, patience=to_cap)]
    fixed_body = unsupervised and not config.unsupervised_body_early_stop
    stages = []
    for n, i in enumerate(indices):
        params = adaptor.stage_parameters(i)
        dims = [dim_of(i)]
        select_best = True
        patience = to_cap
        if n == 0 and train_body:
            params = adaptor.body_parameters() + params
            dims = [full, dim_of(i)]
            if config.body_all_dims:
                dims = sorted({full, *(dim_of(j) for j in indices)}, reverse=True)
            select_best = not fixed_body
            patience = config.body_patience if to_cap is None else to_cap
        _, end, _ = adaptor.stages[i]
        on_start = None if init_vectors is None else partial(adaptor.init_stage, i, init_vectors)
        name = f"{end}->{dim_of(i)}"
        stages.append(
            Stage(name, params, dims, keys(dims), aggregate, on_start, select_best=select_best, patience=patience)
        )
    return stages


def training_arguments(
    out: str, epochs: float, batch_size: int, lr: float, seed: int, eval_steps: int
) -> SentenceTransformerTrainingArguments:
    """The trainer's arguments for one phase: constant rate, evaluation every ``eval_steps``, nothing saved."""
    return SentenceTransformerTrainingArguments(
        output_dir=out,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        seed=seed,
        data_seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
        dataloader_drop_last=True,
    )


@dataclass
class PhaseSettings:
    """How one phase runs (:func:`run_phase`).

    Args:
        name: ``unsupervised`` or ``supervised`` (prefixes the stage results' names).
        epochs: Passes over the phase's dataset (all its stages together).
        batch_size: Training batch size.
        lr: Learning rate (SMEC's stages: times ``stage_lr_multiplier``).
        eval_steps: Steps between evaluations of the criterion.
        max_evaluations: Evaluations after which a stage ends whatever its patience.
    """

    name: str
    epochs: float
    batch_size: int
    lr: float
    eval_steps: int
    max_evaluations: int


def run_phase(
    phase: PhaseSettings,
    model: SentenceTransformer,
    adaptor: MatryoshkaAdaptor,
    loss: torch.nn.Module,
    stages: list[Stage],
    dataset: Dataset,
    evaluator: Any,
    config: AdaptorTrainingConfig,
    work_dir: str,
    callbacks: list[Any] | None = None,
) -> list[StageResult]:
    """One ``SentenceTransformerTrainer`` run of ``phase.epochs`` over ``dataset``, through ``stages`` in order.

    The trainer evaluates every ``phase.eval_steps``; a stage ends after ``phase.max_evaluations`` evaluations or its
    patience (``Stage.patience``, else ``config.patience``) of evaluations without improvement.

    The optimizer is the one the training arguments name (transformers' ``get_optimizer_cls_and_kwargs``), over the
    adaptor's own parameter groups (:meth:`~st_matryoshka.models.MatryoshkaAdaptor.parameter_groups`: SMEC's stages
    at ``stage_lr_multiplier`` times the phase's rate).
    """
    name, epochs, batch_size, lr = phase.name, phase.epochs, phase.batch_size, phase.lr
    eval_steps, max_evaluations = phase.eval_steps, phase.max_evaluations
    temperature = (getattr(config, "temperature_start", 0.5), getattr(config, "temperature_end", 0.05))
    callback = StageCallback(
        adaptor,
        loss,
        stages,
        model,
        evaluator,
        patience=config.patience,
        max_evaluations=max_evaluations,
        temperature=temperature,
        seed=config.seed,
    )
    args = training_arguments(work_dir, epochs, batch_size, lr, config.seed, eval_steps)
    groups = adaptor.parameter_groups(lr, getattr(config, "stage_lr_multiplier", 1.0))
    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
    groups = [{**g, "weight_decay": args.weight_decay} for g in groups]
    optimizer = optimizer_cls(groups, **optimizer_kwargs)
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[callback, *(callbacks or [])],
        optimizers=(optimizer, None),
    )
    quiet_progress(trainer)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    for p in adaptor.parameters():
        p.requires_grad_(True)
    results = []
    for stage in stages:
        steps = max(1, stage.end_step - stage.start_step)
        results.append(
            StageResult(
                name=f"{name} {stage.name}",
                metric=f"{stage.aggregate}(" + ", ".join(stage.metric_keys) + ")",
                history=stage.history,
                best_step=stage.best_step,
                best=stage.best,
                seconds=stage.seconds,
                epoch_seconds=stage.seconds / steps * eval_steps,
                losses=dict(model.model_card_data.citations),
            )
        )
    if len(stages) > 1:
        results.append(StageResult(f"{name} total", "", [], None, None, seconds, 0.0))
    return results


def train_phases(
    adaptor: MatryoshkaAdaptor,
    data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    config: AdaptorTrainingConfig,
    supervised: bool,
    indices: Sequence[int] | None = None,
    train_body: bool = True,
    callbacks: list[Any] | None = None,
) -> list[StageResult]:
    """The unsupervised phase on the corpus, then (with ``supervised``) the supervised phase on ``data.qrels``.

    Each phase runs the plan :func:`stage_plan` gives for ``adaptor`` and ``config`` (``indices`` and ``train_body``
    restrict an SMEC adaptor to some of its stages, as ``extend`` does). After the supervised phase the guard
    (:func:`interpolate_supervised`) keeps the weights between the two phases' states that validation prefers.
    Supervised SMEC's unsupervised phase trains its body as the Matryoshka-Adaptor's (its stages at their start), and
    its supervised stages continue from there without a PCA restart.
    """
    keyed = keyed_data(data)
    full = adaptor.embedding_dim
    all_dims = [full, *[d for d in config.dims if d < full]]
    if isinstance(adaptor, SMECAdaptor):
        all_dims = adaptor.trained_dims
    init_vectors = None
    if isinstance(adaptor, SMECAdaptor) and adaptor.stage_rotation and getattr(config, "stage_pca_init", False):
        init_vectors = corpus_vectors
    loss_settings = {
        "top_k": config.top_k,
        "memory_size": config.memory_size if getattr(config, "xbm", False) else None,
        "precisions": config.precisions,
        "quantization_weight": config.quantization_weight,
    }
    # Supervised SMEC starts from the unsupervised Matryoshka-Adaptor of the same seed: its body trains as that
    # adaptor does (one joint stage, in-batch neighbours), its stages stay at their start (the body's prefixes), so
    # where validation drops the supervised update SMEC is no worse than the Matryoshka-Adaptor (issue 32).
    body_first = isinstance(adaptor, SMECAdaptor) and supervised and train_body
    results: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="st_matryoshka_") as work:
        if config.unsupervised_epochs > 0:
            trainee = adaptor.body() if body_first else adaptor
            stages = stage_plan(trainee, config, "unsupervised", indices, train_body, init_vectors)
            passes = config.unsupervised_epochs * len(stages)
            dataset, evaluator, used = holdout_split(keyed.corpus, corpus_vectors, all_dims, config, epochs=passes)
            model = fast_model_of_rows(keyed.corpus, corpus_vectors, used, [trainee])
            distill = config.resolved_distill_weight()
            settings = {**loss_settings, "memory_size": None} if body_first else loss_settings
            loss = MatryoshkaUnsupervisedLoss(model, all_dims, distill_weight=distill, **settings)
            phase = PhaseSettings(
                name="unsupervised",
                epochs=passes,
                batch_size=config.unsupervised_batch_size,
                lr=config.unsupervised_lr,
                eval_steps=len(dataset) // config.unsupervised_batch_size,
                max_evaluations=config.unsupervised_epochs,
            )
            results += run_phase(
                phase,
                model=model,
                adaptor=trainee,
                loss=loss,
                stages=stages,
                dataset=dataset,
                evaluator=evaluator,
                config=config,
                work_dir=work,
                callbacks=callbacks,
            )
            if body_first:
                adaptor.load_state_dict({**adaptor.state_dict(), **trainee.state_dict()})
        if supervised:
            split = validation_split(
                keyed.qrels,
                config.validation_fraction,
                config.validation_split,
                config.seed,
                config.min_validation_queries,
            )
            log_split(split)
            if not enough_validation(split, config.min_validation_queries, config.corpus_mode):
                results.append(skipped_supervised(split, config))
            else:
                fit_ids, val_ids = split.fit, split.held_out
                # The supervised stages continue from where the unsupervised phase left them (no PCA restart), so the
                # guard can interpolate between the two states.
                select_on = "seen" if split.seen else "validation"
                stages = stage_plan(adaptor, config, "supervised", indices, train_body, select_on=select_on)
                if split.seen and config.guarded_stopping:
                    for stage in stages:  # early stopping admits only what the guard would: new documents kept
                        stage.floor_keys = [k.replace("seen_", "validation_", 1) for k in stage.metric_keys]
                        stage.floor_tolerance = config.guard_tolerance
                passes = config.supervised_epochs * len(stages)
                query_rows = {qid: i for i, qid in enumerate(keyed.query_ids) if qid in keyed.qrels}
                qvec = {qid: np.asarray(query_vectors[i]) for qid, i in query_rows.items()}
                used_docs: set[int] = set()
                doc_index = {cid: i for i, cid in enumerate(keyed.corpus_ids)}
                held_docs = None
                if split.kind != "query-hash":
                    held_docs = {doc_index[c] for q in val_ids for c in keyed.qrels[q]}
                pass_config = replace(config, supervised_epochs=passes)
                rows = supervised_rows(keyed, fit_ids, qvec, corpus_vectors, pass_config, used_docs, held_docs)
                steps_per_pass = max(1, len(rows) // passes // config.supervised_batch_size)
                searched = validation_corpus(keyed, [*val_ids, *split.seen], qvec, corpus_vectors, config)

                def held_out(ids: list[str]) -> RetrievalData:
                    return RetrievalData(
                        [keyed.corpus_ids[i] for i in searched],
                        [keyed.corpus[i] for i in searched],
                        ids,
                        [keyed.queries[query_rows[q]] for q in ids],
                        {q: keyed.qrels[q] for q in ids},
                        keyed.name,
                    )

                evaluator = validation_evaluator(held_out(val_ids), held_out(split.seen), all_dims)
                # The training model holds only the rows this phase touches: its queries, the documents its rows
                # name, and the criterion's documents; never the whole of a large corpus.
                doc_rows = sorted(used_docs.union(searched.tolist()))
                q_rows = sorted(query_rows.values())
                texts = [keyed.corpus[i] for i in doc_rows] + [keyed.queries[j] for j in q_rows]
                vectors = np.concatenate([np.asarray(corpus_vectors[doc_rows]), np.asarray(query_vectors[q_rows])])
                model = fast_model(texts, vectors, [adaptor])
                loss = MatryoshkaRankLoss(
                    model,
                    all_dims,
                    unsupervised_weight=config.unsupervised_weight,
                    distill_weight=config.supervised_distill_weight,
                    margin=config.supervised_margin,
                    l2sp_weight=config.supervised_l2sp_weight,
                    **loss_settings,
                )
                unsupervised_state = {k: v.detach().clone() for k, v in adaptor.state_dict().items()}
                settings = PhaseSettings(
                    name="supervised",
                    epochs=1,  # the rows already hold every pass (supervised_rows), one epoch over them
                    batch_size=config.supervised_batch_size,
                    lr=config.supervised_lr,
                    eval_steps=steps_per_pass,
                    max_evaluations=config.supervised_epochs,
                )
                phase = run_phase(
                    settings,
                    model=model,
                    adaptor=adaptor,
                    loss=loss,
                    stages=stages,
                    dataset=rows,
                    evaluator=evaluator,
                    config=config,
                    work_dir=work,
                    callbacks=callbacks,
                )
                phase[-1].selection = interpolate_supervised(
                    model, adaptor, evaluator, all_dims, unsupervised_state, split, config
                )
                results += phase
    adaptor.eval()
    return results


def validation_evaluator(unseen: RetrievalData, seen: RetrievalData, dims: Sequence[int]) -> Any:
    """The supervised phase's evaluator: NDCG@10 per dim on the held-out queries of the split, and on ``seen``.

    ``validation_dim<k>_cosine_ndcg@10`` scores the document-disjoint (or query-hash) queries; when ``seen`` has
    queries (``validation_split="both"``), ``seen_dim<k>_cosine_ndcg@10`` scores held-out queries whose documents
    training cites.
    """
    if not seen.qrels:
        return matryoshka_evaluator(unseen, dims, name="validation")
    evaluators = [*dim_evaluators(unseen, dims, name="validation"), *dim_evaluators(seen, dims, name="seen")]
    return SequentialEvaluator(evaluators, main_score_function=lambda scores: float(np.mean(scores)))


def log_split(split: ValidationSplit) -> None:
    """One line on how the supervised phase's validation queries were held out (and why, after a fallback)."""
    if split.reason:
        logger.warning(
            f"validation: {split.reason}; falling back to the query-hash split ({len(split.held_out)} "
            f"of {len(split.fit) + len(split.held_out)} queries held out, their documents may be cited)"
        )
    else:
        logger.info(
            f"validation: {split.kind} split, {len(split.held_out)} of "
            f"{len(split.fit) + len(split.held_out)} training queries held out"
        )


def validation_scores(model: SentenceTransformer, evaluator: Any, dims: Sequence[int]) -> dict[str, dict[int, float]]:
    """NDCG@10 per dim of ``model`` on the supervised phase's validation queries: ``{kind: {dim: score}}``.

    ``validation`` scores the split's held-out queries (document-disjoint unless the split fell back to query-hash);
    ``seen``, with ``validation_split="both"``, the queries held out by a hash of the id among the rest.
    """
    was_training = model.training
    metrics = evaluator(model)
    model.train(was_training)
    found = {}
    for kind in ("validation", "seen"):
        if f"{kind}_dim{dims[0]}_cosine_ndcg@10" in metrics:
            found[kind] = {d: float(metrics[f"{kind}_dim{d}_cosine_ndcg@10"]) for d in dims}
    return found


def interpolated_state(
    unsupervised: dict[str, torch.Tensor], supervised: dict[str, torch.Tensor], a: float
) -> dict[str, torch.Tensor]:
    """The weights ``(1 - a) * unsupervised + a * supervised`` (WiSE-FT, Wortsman et al. 2022, arXiv 2109.01903).

    ``a = 0`` and ``a = 1`` return the two states themselves, bit for bit. Floating tensors that differ are mixed;
    every other tensor must be equal in both (a buffer such as the PCA rotation, or an index), and is taken as it is.

    Raises:
        ValueError: if the states hold different keys, or a non-floating tensor differs between them.
    """
    if set(unsupervised) != set(supervised):
        raise ValueError(f"the states differ in keys: {sorted(set(unsupervised) ^ set(supervised))}")
    if a == 0:
        return dict(unsupervised)
    if a == 1:
        return dict(supervised)
    mixed = {}
    for key, sup in supervised.items():
        unsup = unsupervised[key]
        if sup.shape == unsup.shape and torch.equal(sup, unsup):
            mixed[key] = sup
        elif sup.is_floating_point() and sup.shape == unsup.shape:
            mixed[key] = torch.lerp(unsup, sup, a)
        else:
            raise ValueError(f"tensor {key!r} differs between the states and cannot be interpolated")
    return mixed


def interpolation_grid(steps: int) -> list[float]:
    """``a`` from 0 to 1 in ``steps`` equal steps (``steps=1``: the two end points, keep or drop)."""
    return [round(i / steps, 6) for i in range(steps + 1)]


def choose_interpolation(
    grid: list[dict[str, Any]], kinds: Sequence[str], tolerance: float, enough: bool
) -> tuple[int, str]:
    """Index of the chosen grid point and why: the best mean over dims on ``kinds[0]``, no dim below the floor.

    ``grid`` holds, per ``a`` (ascending, ``a = 0`` first), ``{kind: {dim: NDCG@10}}``. A point is admissible when,
    on every kind in ``kinds``, no dim is more than ``tolerance`` below the ``a = 0`` state (the unsupervised
    adaptor). Among admissible points the one with the highest mean over dims on ``kinds[0]`` is kept (the smaller
    ``a`` on a tie); a point above ``a = 0`` must beat it on that mean. Without ``enough`` validation queries,
    ``a = 0``.
    """
    if not enough:
        return 0, "too few validation queries"
    base = grid[0]

    def worst(point: dict[str, Any]) -> tuple[float, str, int]:
        return min((point[k][d] - base[k][d], k, d) for k in kinds for d in point[k])

    def mean(point: dict[str, Any]) -> float:
        return float(np.mean(list(point[kinds[0]].values())))

    best, reason = 0, "no interpolation scored higher than the unsupervised adaptor"
    for i, point in enumerate(grid[1:], start=1):
        drop, kind, dim = worst(point)
        if -drop > tolerance:
            if mean(point) > mean(grid[best]):
                reason = f"higher a scored higher but lost {-drop:.4f} at {dim} dims on the {kind} queries"
            continue
        if mean(point) > mean(grid[best]):
            best = i
    if best:
        reason = f"best mean NDCG@10 on the {kinds[0]} queries with no dim more than {tolerance} below a = 0"
    return best, reason


def enough_validation(split: ValidationSplit, min_queries: int, corpus: str = "growing") -> bool:
    """Whether every validation kind the guard uses holds at least ``min_queries`` queries (fewer cannot show a gain).

    With a ``fixed`` corpus and a split of both kinds, only the query-hash kind chooses and checks; the
    document-disjoint kind is reported, so its size does not matter.
    """
    if split.seen and corpus == "fixed":
        return len(split.seen) >= min_queries
    return len(split.held_out) >= min_queries and (not split.seen or len(split.seen) >= min_queries)


def skipped_supervised(split: ValidationSplit, config: AdaptorTrainingConfig) -> StageResult:
    """The supervised phase's result when its validation is too small to keep anything but ``a = 0``: not run."""
    counts = f"{len(split.held_out)}" + (f" and {len(split.seen)}" if split.seen else "")
    reason = (
        f"too few validation queries ({counts} held out, min_validation_queries={config.min_validation_queries}): "
        "the supervised phase did not run, since the guard could keep only the unsupervised adaptor"
    )
    logger.info(f"kept a = 0.0 (unsupervised): {reason}")
    selection = selection_record(split, config, 0.0, reason) | {"grid": []}
    return StageResult("supervised (not run)", "", [], None, None, 0.0, 0.0, selection=selection)


def selection_record(split: ValidationSplit, config: AdaptorTrainingConfig, a: float, reason: str) -> dict[str, Any]:
    """What ``selection`` records of every supervised run: the split, the kept ``a`` (and its name) and why."""
    return {
        "validation": split.kind,
        "validation_queries": len(split.held_out),
        "seen_queries": len(split.seen),
        "fallback_reason": split.reason,
        "kept": "unsupervised" if a == 0 else "supervised" if a == 1 else "interpolated",
        "interpolation": a,
        "reason": reason,
        "min_validation_queries": config.min_validation_queries,
        "guard_tolerance": config.guard_tolerance,
        "corpus_mode": config.corpus_mode,
    }


def interpolate_supervised(
    model: SentenceTransformer,
    adaptor: torch.nn.Module,
    evaluator: Any,
    dims: Sequence[int],
    unsupervised_state: dict[str, torch.Tensor],
    split: ValidationSplit,
    config: AdaptorTrainingConfig,
) -> dict[str, Any]:
    """The guard: keep the weights between the unsupervised adaptor and the supervised state that validation prefers.

    The states ``(1 - a) * unsupervised + a * supervised`` for ``a`` on :func:`interpolation_grid`
    (``config.interpolation_steps``) are scored on the validation queries at every trained dim, and
    :func:`choose_interpolation` keeps one: the highest mean NDCG@10 over the dims on the queries that choose (the
    query-hash ones with ``validation_split="both"``, else the held-out ones), among the states no dim of which is
    more than ``config.guard_tolerance`` below ``a = 0`` on any validation kind (with ``both``: the
    document-disjoint queries too, so the gain on the labels' corpus never costs new documents). With fewer than
    ``config.min_validation_queries`` validation queries of a kind, ``a = 0``. ``a = 0`` is the unsupervised adaptor
    and ``a = 1`` the supervised state, bit for bit; ``interpolation_steps=1`` is the keep-or-drop guard.

    The adaptor is left holding the chosen weights. One line says what was kept. Returns the record that
    ``st_matryoshka.json`` stores as ``selection``.
    """
    supervised_state = {k: v.detach().clone() for k, v in adaptor.state_dict().items()}
    grid = []
    for a in interpolation_grid(config.interpolation_steps):
        adaptor.load_state_dict(interpolated_state(unsupervised_state, supervised_state, a))
        grid.append({"a": a, **validation_scores(model, evaluator, dims)})
    kinds = ["seen", "validation"] if split.seen else ["validation"]
    guarded = kinds if config.corpus_mode == "growing" else kinds[:1]  # fixed: the queries that choose also check
    enough = enough_validation(split, config.min_validation_queries, config.corpus_mode)
    best, reason = choose_interpolation(grid, guarded, config.guard_tolerance, enough)
    a = grid[best]["a"]
    adaptor.load_state_dict(interpolated_state(unsupervised_state, supervised_state, a))
    record = selection_record(split, config, a, reason)
    where = f"{split.kind} validation, {len(split.held_out)} + {len(split.seen)} queries"
    logger.info(f"kept a = {a} ({record['kept']}): {reason} ({where})")

    def named(scores: dict[int, float]) -> dict[str, float]:
        return {str(d): v for d, v in scores.items()}

    record |= {
        "chosen_on": kinds[0],
        "supervised_ndcg_at_10": named(grid[-1]["validation"]),
        "unsupervised_ndcg_at_10": named(grid[0]["validation"]),
        "chosen_ndcg_at_10": named(grid[best]["validation"]),
        "grid": [{"a": p["a"], **{k: named(p[k]) for k in kinds}} for p in grid],
    }
    if split.seen:
        record |= {
            "seen_supervised_ndcg_at_10": named(grid[-1]["seen"]),
            "seen_unsupervised_ndcg_at_10": named(grid[0]["seen"]),
            "seen_chosen_ndcg_at_10": named(grid[best]["seen"]),
        }
    return record


# ---------------------------------------------------------------------------------------------------------------------
# Methods


def pca_adaptor(width: int, corpus_vectors: Any, balance_blocks: Sequence[int] | None = None) -> MatryoshkaAdaptor:
    """The PCA baseline as a module: a linear MatryoshkaAdaptor holding the corpus mean and principal axes.

    Its prefixes are the classic (centred) PCA projections fit on ``corpus_vectors``; nothing is trained, and
    :func:`st_matryoshka.native.native_modules` folds it into ST's ``Normalize`` + ``Dense``. With
    ``balance_blocks`` (the dims), the axes between consecutive dims are rotated for even sign bits (PCA-ITQ, see
    :meth:`MatryoshkaAdaptor.init_rotation`); the prefixes at those dims keep PCA's similarities.
    """
    adaptor = MatryoshkaAdaptor(width, num_layers=0, center_input=True)
    adaptor.init_rotation(corpus_vectors, balance_blocks=balance_blocks)
    return adaptor.eval()


def build_adaptor(method: str, width: int, config: AdaptorTrainingConfig, corpus_vectors: Any) -> MatryoshkaAdaptor:
    """The untrained adaptor of ``method`` for vectors of ``width``, its rotation started from ``corpus_vectors``."""
    torch.manual_seed(config.seed)
    if method == "smec":
        if not isinstance(config, SMECTrainingConfig):
            raise ParameterError("config", f"config: method 'smec' needs an SMECTrainingConfig, got {type(config)}")
        adaptor: MatryoshkaAdaptor = SMECAdaptor(
            width,
            stages=plan_stages(width, config.dims, allow_any_dims=config.allow_any_dims),
            use_ads=config.ads,
            stage_rotation=config.smrl,
            hidden_dim=config.hidden_dim,
            num_layers=config.num_layers,
            activation=config.activation,
            center_input=config.center_input,
        )
    else:
        check_dims(config.dims, name="dims", max_dim=width)
        if config.dims[-1] >= width:
            raise ParameterError("dims", f"dims must include a dim below the width {width}, got {config.dims!r}")
        adaptor = MatryoshkaAdaptor(
            width,
            hidden_dim=config.hidden_dim,
            num_layers=config.num_layers,
            activation=config.activation,
            center_input=config.center_input,
            bit_thresholds=config.bit_thresholds != "none",
        )
    if config.pca_init:
        adaptor.init_rotation(corpus_vectors, balance_blocks=config.dims if config.balance_bits else None)
    if adaptor.bit_thresholds:
        adaptor.init_thresholds(corpus_vectors, statistic=config.bit_thresholds)
    return adaptor


def fit_adaptor(
    method: str,
    width: int,
    data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    config: AdaptorTrainingConfig,
    supervised: bool,
    callbacks: list[Any] | None = None,
    adaptor: MatryoshkaAdaptor | None = None,
    indices: Sequence[int] | None = None,
) -> tuple[MatryoshkaAdaptor, list[StageResult]]:
    """Fit ``method``'s adaptor on backbone vectors: the one training entry point.

    Args:
        method: ``matryoshka-adaptor``, ``pca``, ``search-adaptor`` or ``smec``.
        width: The vectors' width.
        data: Corpus and queries (texts, or keys naming the rows) with the training qrels.
        corpus_vectors: ``(len(data.corpus), width)`` array, tensor or memory-mapped ``.npy``.
        query_vectors: ``(len(data.queries), width)``, or ``None`` without queries.
        config: The method's config (:func:`st_matryoshka.config.config_for`).
        supervised: Run the supervised phase on ``data.qrels`` after the unsupervised one.
        callbacks: Extra trainer callbacks for every phase (e.g.
            :class:`~st_matryoshka.callbacks.GradientVarianceCallback`).
        adaptor: Continue this (trained) SMEC adaptor instead of building one: only its stages ``indices`` train,
            the body and every other stage stay frozen (``extend``).
        indices: With ``adaptor``, the stages to train.

    Returns:
        ``(adaptor, stage results)``; PCA has no stages.

    Raises:
        ParameterError: naming the parameter (``method``, ``supervised``, ``corpus_vectors``, a config field).

    Example:
        ::

            from st_matryoshka.config import config_for
            from st_matryoshka.data import load_beir, load_embeddings_dir
            from st_matryoshka.engine import fit_adaptor

            data = load_beir("../shared/data/scifact")
            cv, qv = load_embeddings_dir("../shared/data/scifact/embeddings/all-MiniLM-L6-v2", data, dim=384)
            adaptor, stages = fit_adaptor("matryoshka-adaptor", 384, data, cv, qv, config_for("matryoshka-adaptor",
                                          [192, 96, 48, 24]), supervised=False)
            adaptor.trained_dims if hasattr(adaptor, "trained_dims") else [384, 192, 96, 48, 24]
    """
    if method not in METHODS:
        raise ParameterError("method", f"method must be one of {list(METHODS)}, got {method!r}")
    if tuple(corpus_vectors.shape) != (len(data.corpus), width):
        raise ParameterError(
            "corpus_vectors",
            f"corpus_vectors have shape {tuple(corpus_vectors.shape)}, expected ({len(data.corpus)}, {width})",
        )
    if method == "pca":
        if supervised:
            raise ParameterError("supervised", "supervised does not apply to method 'pca' (nothing is trained)")
        if config.bit_thresholds != "none":
            raise ParameterError(
                "bit_thresholds", "bit_thresholds does not apply to method 'pca' (nothing is trained)"
            )
        return pca_adaptor(width, corpus_vectors, config.dims if config.balance_bits else None), []
    if method == "search-adaptor" and not supervised:
        raise ParameterError("supervised", "supervised: method 'search-adaptor' is supervised; it needs qrels")
    if isinstance(config, SMECTrainingConfig):
        config.check_memory(supervised)
    if supervised:
        check_supervised_data(data, config)
    if adaptor is None:
        adaptor = build_adaptor(method, width, config, corpus_vectors)
        results = train_phases(adaptor, data, corpus_vectors, query_vectors, config, supervised, callbacks=callbacks)
    else:
        if method != "smec" or not isinstance(adaptor, SMECAdaptor) or not indices:
            raise ParameterError("adaptor", "adaptor: only an SMEC adaptor continues training, on given stage indices")
        results = train_phases(
            adaptor, data, corpus_vectors, query_vectors, config, supervised, indices, False, callbacks
        )
    if config.code_guard and not isinstance(adaptor, SMECAdaptor):
        record = guard_codes(adaptor, corpus_vectors, config)
        if results:
            results[-1].selection = {**results[-1].selection, "codes": record}
    check_finite_outputs(adaptor, corpus_vectors)
    return adaptor, results


CODE_CHOICES = ("trained", "base plain bits", "base centred bits")
"""What the code guard (:func:`guard_codes`) can keep from a block's start to the width."""


@torch.no_grad()
def guard_codes(adaptor: MatryoshkaAdaptor, corpus_vectors: Any, config: AdaptorTrainingConfig) -> dict[str, Any]:
    """Keep the sign bits that held-out documents score best over the byte budgets, never worse at any budget.

    A binary code of ``m`` dims spends its last bits on the coordinates the trained prefixes leave over, which carry
    little of the similarity; the base model's own coordinates there, plain or centred on the corpus mean, often
    make better bits (BENCHMARKS, "Codes against the base model's bits"). The budgets are the trained dims and the
    width that are multiples of 8. For each start ``s`` (a trained dim below the width), the coordinates from ``s``
    to the width can be the base model's own (:meth:`~st_matryoshka.models.MatryoshkaAdaptor.set_base_block`, plain
    or centred: the identity map with a bias). Every choice and the trained codes are scored at every budget on the
    label-free criterion's held-out documents (:func:`holdout_rows`): the overlap of their top-``overlap_k``
    neighbours by the budget's codes, symmetric (bits against bits) and asymmetric (the float prefix against bits),
    with their top-``overlap_k`` by the backbone's full-width cosine similarity, averaged. A choice is admissible when
    at no budget it is more than ``guard_tolerance`` below the trained codes and its mean over the budgets is more
    than ``guard_tolerance`` above theirs (a smaller difference is within the criterion's noise); the admissible
    choice with the highest mean is kept (the trained codes when none is) and set on ``adaptor``. Every prefix that
    ends at or before its start is unchanged, bit for bit; float prefixes past it change with the codes.

    Args:
        adaptor: The trained adaptor (``normalize_input``; a trained dim below its width).
        corpus_vectors: The training corpus' backbone vectors (array, tensor or memory-mapped ``.npy``).
        config: The training config (``dims``, ``overlap_k``, ``guard_tolerance`` and the criterion's sample).

    Returns:
        The record ``st_matryoshka.json`` keeps under ``selection["codes"]``: ``kept`` (one of
        :data:`CODE_CHOICES`), ``block`` (``[start, width]``, or ``None`` for the trained codes), ``budgets``
        (``{dim: bytes}``), ``criterion``, ``tolerance`` and ``scores`` (``{choice: {dim: {"symmetric": overlap,
        "asymmetric": overlap}}}``, choices named ``trained`` or ``<kind> from <start>``).
    """
    width = adaptor.embedding_dim
    budgets = [d for d in sorted({width, *config.dims}) if d % 8 == 0 and d <= width]
    starts = sorted(d for d in config.dims if d < width)
    hold, _, search = holdout_rows(len(corpus_vectors), config)
    adaptor.eval()
    adaptor.set_base_block(0)

    def rows(index: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(corpus_vectors[np.sort(index)], dtype=np.float32))

    probes, searched = rows(hold), rows(search)
    position = {int(r): i for i, r in enumerate(np.sort(search))}
    own = torch.tensor([position[int(r)] for r in np.sort(hold)])
    k = config.overlap_k

    def top(scores: torch.Tensor) -> torch.Tensor:
        scores[torch.arange(len(own)), own] = float("-inf")  # a document is not its own neighbour
        return scores.topk(k, dim=1).indices

    base_p, base_s = adaptor.normalized(probes), adaptor.normalized(searched)
    truth = top(base_p @ base_s.T)

    def overlap(found: torch.Tensor) -> float:
        return float((found.unsqueeze(2) == truth.unsqueeze(1)).any(dim=2).float().mean())

    def score(p: torch.Tensor, s: torch.Tensor) -> dict[int, dict[str, float]]:
        out = {}
        for dim in budgets:
            bits = quantize_prefix(s[:, :dim], "binary").T  # sign bits as the index sets them (x > 0)
            out[dim] = {
                "symmetric": overlap(top(quantize_prefix(p[:, :dim], "binary") @ bits)),
                "asymmetric": overlap(top(torch.nn.functional.normalize(p[:, :dim], dim=-1) @ bits)),
            }
        return out

    out_p = adaptor({"sentence_embedding": probes})["sentence_embedding"]
    out_s = adaptor({"sentence_embedding": searched})["sentence_embedding"]
    mean = adaptor.normalized(evenly_spaced(corpus_vectors, 100_000)).mean(dim=0)
    scores = {"trained": score(out_p, out_s)}
    choices: dict[str, tuple[str, int, torch.Tensor]] = {}
    for start in starts:
        for kind, center in (("base plain bits", torch.zeros_like(mean)), ("base centred bits", mean)):
            name = f"{kind} from {start}"
            choices[name] = (kind, start, center[start:])
            p = torch.cat([out_p[:, :start], base_p[:, start:] - center[start:]], dim=1)
            s = torch.cat([out_s[:, :start], base_s[:, start:] - center[start:]], dim=1)
            scores[name] = score(p, s)

    def value(name: str, dim: int) -> float:
        return sum(scores[name][dim].values()) / 2

    def mean_value(name: str) -> float:
        return sum(value(name, d) for d in budgets) / len(budgets)

    def admissible(name: str) -> bool:
        kept_everywhere = all(value(name, d) >= value("trained", d) - config.guard_tolerance for d in budgets)
        return kept_everywhere and mean_value(name) > mean_value("trained") + config.guard_tolerance

    kept = max(["trained", *filter(admissible, choices)], key=lambda n: (round(mean_value(n), 12), n == "trained"))
    block = None
    if kept != "trained":
        kind, start, center = choices[kept]
        adaptor.set_base_block(width - start, center)
        block = [start, width]
    logger.info("code guard: kept %s (held-out overlap, mean over budgets %.4f)", kept, mean_value(kept))
    return {
        "kept": kept if kept == "trained" else choices[kept][0],
        "block": block,
        "budgets": {str(d): d // 8 for d in budgets},
        "criterion": f"held-out documents' top-{k} overlap with the backbone, sign bits, mean of symmetric and "
        "asymmetric",
        "tolerance": config.guard_tolerance,
        "scores": {name: {str(d): v for d, v in by_dim.items()} for name, by_dim in scores.items()},
    }

def check_finite_outputs(adaptor: torch.nn.Module, corpus_vectors: Any, rows: int = 1024) -> None:
    """Raise when the trained ``adaptor`` maps any of the first ``rows`` corpus vectors to a non-finite value.

    A diverged run (a huge learning rate, say) must fail here, before anything is saved, not ship a model whose
    every output is NaN.
    """
    sample = torch.from_numpy(np.array(corpus_vectors[:rows], dtype=np.float32))  # a copy: the input may be read-only
    with torch.no_grad():
        out = adaptor.eval()({"sentence_embedding": sample})["sentence_embedding"]
    if not torch.isfinite(out).all():
        raise ValueError(
            "training diverged: the trained adaptor gives non-finite outputs on the training corpus; nothing saved "
            "(lower the learning rates or check the settings)"
        )
