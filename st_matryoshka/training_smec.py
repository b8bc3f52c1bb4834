"""Train and extend SMEC adaptors (Zhang et al. 2025) with SentenceTransformerTrainer on cached vectors.

SMEC = a :class:`~st_matryoshka.models.SMECAdaptor` (Matryoshka-Adaptor body, then reduction stages with Adaptive
Dimension Selection), trained stage by stage (SMRL, :class:`~st_matryoshka.callbacks.SMRLCallback`) with the
Selectable Cross-Batch Memory in the unsupervised term. Each switch turns one component off, for the ablation:
with all three off this is the supervised Matryoshka-Adaptor (MRL-style: one loss over every dim).
"""

from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize
from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer

from st_matryoshka.callbacks import SMRLCallback, SMRLStage, check_temperature, quiet_progress
from st_matryoshka.data import RetrievalData, split_queries
from st_matryoshka.evaluation import matryoshka_evaluator
from st_matryoshka.losses import MatryoshkaRankLoss, MatryoshkaUnsupervisedLoss
from st_matryoshka.models import SMECAdaptor
from st_matryoshka.models.smec import plan_stages
from st_matryoshka.training import (
    AdaptorTrainingConfig,
    StageResult,
    _supervised_rows,
    _training_args,
    backbone_dim,
    check_supervised_data,
    data_fast_model,
    fast_model_of_rows,
    head_of,
    holdout_split,
    rebuild,
    split_index,
    with_adaptor,
    with_metadata,
)


@dataclass
class SMECTrainingConfig(AdaptorTrainingConfig):
    """Hyper-parameters of :func:`train_smec`: those of :class:`AdaptorTrainingConfig` plus SMEC's.

    ``unsupervised_epochs`` and ``supervised_epochs`` cap each SMRL stage (not the whole run); ``patience`` is per
    stage.

    Args:
        smrl: Train stage by stage (each stage's transition loss only, earlier stages frozen); otherwise one joint
            stage with the loss over every dim (MRL-style). Also gives each stage a learnable rotation.
        ads: Adaptive Dimension Selection in every stage; otherwise a stage keeps the first dims.
        xbm: Selectable Cross-Batch Memory for the unsupervised ``L_topk`` term; otherwise in-batch neighbours.
        memory_size: Entries of the memory; must hold at least one batch.
        temperature_start: Gumbel temperature at the start of each stage.
        temperature_end: Gumbel temperature at the stage's step cap (exponential schedule).
        allow_any_dims: Accept dims that are not successive halvings of the width.
        stage_lr_multiplier: Learning rate of the stages' rotations and ADS logits relative to the phase's rate
            (the body keeps the phase's rate). On SciFact, 5 against 1 raised full SMEC's NDCG@10 at 48/24 from
            0.698/0.561 to 0.720/0.596 (one run each, stages starting from truncation; BENCHMARKS.md).
        stage_pca_init: With ``smrl``, start every stage (in both phases) from PCA of its input block over the
            corpus (:meth:`~st_matryoshka.models.SMECAdaptor.init_stage`) instead of from where the stage was left;
            the stage then learns a rotation away from PCA. A deviation from the paper, which starts stages from
            the previous embedding's truncation; BENCHMARKS.md has both over several seeds.
        unsupervised_body_early_stop: With ``smrl``, select the first unsupervised stage's weights (the body and its
            ``D → D/2`` stage) by its label-free criterion with early stopping, like every other stage. Off by
            default: that stage trains for ``unsupervised_epochs`` and keeps its last weights, as the
            Matryoshka-Adaptor trains for fixed epochs. The criterion (neighbour overlap at ``D/2``, against the
            backbone) is highest at the stage's PCA start, so selecting by it kept step 0 in every measured run and
            the body got no unsupervised training at all; BENCHMARKS.md compares both.
    """

    smrl: bool = True
    ads: bool = True
    xbm: bool = True
    memory_size: int = 5000
    temperature_start: float = 0.5
    temperature_end: float = 0.05
    allow_any_dims: bool = False
    stage_lr_multiplier: float = 5.0
    stage_pca_init: bool = True
    unsupervised_body_early_stop: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.stage_lr_multiplier > 0:
            raise ValueError(f"stage_lr_multiplier must be > 0, got {self.stage_lr_multiplier!r}")
        check_temperature((self.temperature_start, self.temperature_end))
        if self.xbm:
            if not isinstance(self.memory_size, int) or self.memory_size < 1:
                raise ValueError(f"memory_size must be a positive int, got {self.memory_size!r}")
            self.check_memory(supervised=False)
            if self.top_k > self.memory_size:
                raise ValueError(f"top_k={self.top_k} must not exceed memory_size={self.memory_size}")

    def check_memory(self, supervised: bool) -> None:
        """The memory must hold one batch of every phase that runs (the supervised one only when ``supervised``)."""
        if not self.xbm:
            return
        batches = {}
        if self.unsupervised_epochs > 0:
            batches[self.unsupervised_batch_size] = f"unsupervised_batch_size={self.unsupervised_batch_size}"
        if supervised:
            texts = self.supervised_batch_size * (self.num_negatives + 2)
            batches[texts] = f"supervised_batch_size={self.supervised_batch_size} x {self.num_negatives + 2} texts"
        largest = max(batches, default=0)
        if self.memory_size < largest:
            raise ValueError(
                f"memory_size={self.memory_size} is smaller than a batch ({largest} embeddings: {batches[largest]})"
            )


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


def _stages(
    adaptor: SMECAdaptor,
    indices: list[int],
    train_body: bool,
    smrl: bool,
    metric: str,
    score_full: bool,
    init_vectors: np.ndarray | None = None,
    fixed_body: bool = False,
) -> list[SMRLStage]:
    """SMRL stages for adaptor stages ``indices`` (or one joint stage without ``smrl``).

    A stage is scored by the mean of ``metric`` over its loss dims; the full width only with ``score_full`` (the
    label-free overlap criterion is 1.0 there at the start and can only fall, so it would veto every change).
    With ``init_vectors`` (and ``smrl``) each stage starts as PCA of its block over them. With
    ``fixed_body`` the stage that trains the body runs to its cap and keeps its last weights.
    """
    full = adaptor.embedding_dim

    def keys(dims: list[int]) -> list[str]:
        return [metric.format(dim=d) for d in dims if score_full or d != full]

    def dim_of(i: int) -> int:
        start, _, keep = adaptor.stages[i]
        return start + keep

    if not smrl:
        params = list(adaptor.body_parameters()) if train_body else []
        for i in indices:
            params += adaptor.stage_parameters(i)
        dims = sorted({full, *(dim_of(i) for i in indices)}, reverse=True)
        return [SMRLStage("joint", params, dims, keys(dims))]
    stages = []
    for n, i in enumerate(indices):
        params = adaptor.stage_parameters(i)
        dims = [dim_of(i)]
        select_best = True
        if n == 0 and train_body:
            params = adaptor.body_parameters() + params
            dims = [full, dim_of(i)]
            select_best = not fixed_body
        start, end, _ = adaptor.stages[i]
        on_start = None if init_vectors is None else partial(adaptor.init_stage, i, init_vectors)
        stages.append(
            SMRLStage(f"{end}->{dim_of(i)}", params, dims, keys(dims), on_start=on_start, select_best=select_best)
        )
    return stages


def _run(
    name: str,
    model: SentenceTransformer,
    adaptor: SMECAdaptor,
    loss: torch.nn.Module,
    stages: list[SMRLStage],
    dataset: Dataset,
    evaluator: Any,
    config: SMECTrainingConfig,
    epochs: float,
    batch_size: int,
    lr: float,
    eval_steps: int,
    max_evaluations: int,
    work_dir: str,
    callbacks: list[Any] | None = None,
) -> list[StageResult]:
    callback = SMRLCallback(
        adaptor,
        loss,
        stages,
        model,
        evaluator,
        patience=config.patience,
        max_evaluations=max_evaluations,
        temperature=(config.temperature_start, config.temperature_end),
        seed=config.seed,
    )
    args = _training_args(work_dir, epochs, batch_size, lr, config.seed, eval_steps)
    args.eval_on_start = False
    stage_params = {id(p) for i in range(len(adaptor.stages)) for p in adaptor.stage_parameters(i)}
    groups = [
        {"params": [p for p in adaptor.parameters() if id(p) not in stage_params], "lr": lr},
        {"params": [p for p in adaptor.parameters() if id(p) in stage_params], "lr": lr * config.stage_lr_multiplier},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, weight_decay=0.0)
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
                metric="mean(" + ", ".join(stage.metric_keys) + ")",
                history=stage.history,
                best_step=stage.best_step,
                best=stage.best,
                seconds=stage.seconds,
                epoch_seconds=stage.seconds / steps * eval_steps,
                losses=dict(model.model_card_data.citations),
            )
        )
    results.append(StageResult(f"{name} total", "", [], None, None, seconds, 0.0))
    return results


def _train_phases(
    adaptor: SMECAdaptor,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: SMECTrainingConfig,
    indices: list[int],
    train_body: bool,
    supervised: bool,
    callbacks: list[Any] | None = None,
) -> list[StageResult]:
    """The unsupervised phase on the corpus, then (with ``supervised``) the supervised phase on ``data.qrels``."""
    keyed = keyed_data(data)
    all_dims = adaptor.trained_dims
    init_vectors = corpus_vectors if config.stage_pca_init and adaptor.stage_rotation else None
    results: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="st_matryoshka_") as work:
        if config.unsupervised_epochs > 0:
            n_stages = 1 if not config.smrl else len(indices)
            passes = config.unsupervised_epochs * n_stages
            dataset, evaluator, used = holdout_split(keyed.corpus, corpus_vectors, all_dims, config, epochs=passes)
            model = fast_model_of_rows(keyed.corpus, corpus_vectors, used, [adaptor])
            loss = MatryoshkaUnsupervisedLoss(
                model,
                all_dims,
                top_k=config.top_k,
                distill_weight=config.resolved_distill_weight(supervised),
                memory_size=config.memory_size if config.xbm else None,
            )
            metric = f"holdout_overlap@{config.overlap_k}_dim{{dim}}"
            fixed_body = not config.unsupervised_body_early_stop
            stages = _stages(adaptor, indices, train_body, config.smrl, metric, False, init_vectors, fixed_body)
            steps_per_epoch = len(dataset) // config.unsupervised_batch_size
            results += _run(
                "unsupervised",
                model,
                adaptor,
                loss,
                stages,
                dataset,
                evaluator,
                config,
                config.unsupervised_epochs * len(stages),
                config.unsupervised_batch_size,
                config.unsupervised_lr,
                steps_per_epoch,
                config.unsupervised_epochs,
                work,
                callbacks,
            )
        if supervised:
            fit_ids, val_ids = split_queries(sorted(keyed.qrels), config.validation_fraction)
            if not fit_ids or not val_ids:
                raise ValueError(
                    f"the train split has too few queries ({len(keyed.qrels)}) to hold out a validation slice"
                )
            model = data_fast_model(keyed, corpus_vectors, query_vectors, [adaptor])
            n_stages = 1 if not config.smrl else len(indices)
            passes = config.supervised_epochs * n_stages
            qvec = dict(zip(keyed.query_ids, query_vectors))
            rows_config = replace(config, supervised_epochs=passes)
            rows = _supervised_rows(keyed, fit_ids, qvec, corpus_vectors, rows_config)
            steps_per_pass = max(1, len(rows) // passes // config.supervised_batch_size)
            val = keyed.with_qrels({q: keyed.qrels[q] for q in val_ids})
            evaluator = matryoshka_evaluator(val, all_dims, name="validation")
            loss = MatryoshkaRankLoss(
                model,
                all_dims,
                unsupervised_weight=config.unsupervised_weight,
                top_k=config.top_k,
                memory_size=config.memory_size if config.xbm else None,
            )
            metric = "validation_dim{dim}_cosine_ndcg@10"
            stages = _stages(adaptor, indices, train_body, config.smrl, metric, True, init_vectors)
            results += _run(
                "supervised",
                model,
                adaptor,
                loss,
                stages,
                rows,
                evaluator,
                config,
                1,
                config.supervised_batch_size,
                config.supervised_lr,
                steps_per_pass,
                config.supervised_epochs,
                work,
                callbacks,
            )
    adaptor.eval()
    return results


def train_smec(
    model: SentenceTransformer,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    config: SMECTrainingConfig,
    supervised: bool = True,
    callbacks: list[Any] | None = None,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Train a SMEC adaptor for ``model``; return ``(model with the adaptor, stage results)``.

    Args:
        model: The base SentenceTransformer (must contain Pooling).
        data: The data; with ``supervised`` its qrels must be the training split.
        corpus_vectors: Backbone embeddings of ``data.corpus``, in order.
        query_vectors: Backbone embeddings of ``data.queries``, in order.
        config: Hyper-parameters, including the SMRL / ADS / S-XBM switches.
        supervised: Run the supervised phase after the unsupervised one.
        callbacks: Extra trainer callbacks (e.g. :class:`~st_matryoshka.callbacks.GradientVarianceCallback`).

    Example:
        ::

            config = SMECTrainingConfig(dims=[192, 96, 48, 24])
            trained, stages = train_smec(model, load_beir(path, "train"), cv, qv, config)
            trained.encode(["a query"], truncate_dim=24)
    """
    adaptor, results = fit_smec(
        backbone_dim(model), data, corpus_vectors, query_vectors, config, supervised=supervised, callbacks=callbacks
    )
    return with_metadata(_with_smec(model, adaptor), "smec", config, supervised, results), results


def fit_smec(
    width: int,
    data: RetrievalData,
    corpus_vectors: Any,
    query_vectors: Any,
    config: SMECTrainingConfig,
    supervised: bool = True,
    callbacks: list[Any] | None = None,
) -> tuple[SMECAdaptor, list[StageResult]]:
    """Train an :class:`SMECAdaptor` of ``width`` on backbone vectors alone: ``(adaptor, stage results)``.

    The engine behind :func:`train_smec` and :func:`st_matryoshka.vectors.fit_vectors`.
    """
    stages = plan_stages(width, config.dims, allow_any_dims=config.allow_any_dims)
    config.check_memory(supervised)
    if supervised:
        check_supervised_data(data, config)
    if tuple(corpus_vectors.shape) != (len(data.corpus), width):
        raise ValueError(
            f"corpus embeddings have shape {tuple(corpus_vectors.shape)}, expected ({len(data.corpus)}, {width})"
        )
    torch.manual_seed(config.seed)
    adaptor = SMECAdaptor(
        width,
        stages=stages,
        use_ads=config.ads,
        stage_rotation=config.smrl,
        hidden_dim=config.hidden_dim,
        num_layers=config.num_layers,
        center_input=config.center_input,
    )
    if config.pca_init:
        adaptor.init_rotation(corpus_vectors)
    indices = list(range(len(stages)))
    results = _train_phases(adaptor, data, corpus_vectors, query_vectors, config, indices, True, supervised, callbacks)
    return adaptor, results


def _with_smec(model: SentenceTransformer, adaptor: SMECAdaptor) -> SentenceTransformer:
    """``model`` with ``adaptor``; a Normalize after it is dropped when the adaptor's output is already unit-length."""
    combined = with_adaptor(model, adaptor)
    if not adaptor.normalize_output:
        return combined
    modules = [m for i, m in enumerate(combined) if i <= split_index(combined) or not isinstance(m, Normalize)]
    return rebuild(combined, modules)


def smec_adaptor_of(model: SentenceTransformer) -> SMECAdaptor:
    """The :class:`SMECAdaptor` of ``model``, or an error naming what the model holds instead."""
    found = [m for m in head_of(model) if isinstance(m, SMECAdaptor)]
    if len(found) != 1:
        names = [type(m).__name__ for m in model]
        raise ValueError(f"--model: expected one SMECAdaptor module, found modules {names}")
    return found[0]


def extend_smec(
    model: SentenceTransformer,
    data: RetrievalData,
    corpus_vectors: np.ndarray,
    query_vectors: np.ndarray,
    dim: int,
    config: SMECTrainingConfig,
    supervised: bool = True,
) -> tuple[SentenceTransformer, list[StageResult]]:
    """Add one dim to a trained SMEC model, training only the new stage (SMEC's continued training).

    Without ``config.allow_any_dims`` the new dim must be half the smallest trained dim; with it, any untrained dim
    below the width works, including intermediate ones (between two trained dims). Every other parameter stays
    frozen: outputs at the trained dims below the new one are bit-identical, and at larger trained dims their
    similarities are unchanged (the new stage is a permutation and rotation of one block).

    Example:
        ::

            extended, stages = extend_smec(trained, data, cv, qv, 12, SMECTrainingConfig(dims=[12]))

    The caller's model is not changed: the new stage is trained on a copy of its adaptor, so a failed extension
    leaves nothing behind.
    """
    adaptor = copy.deepcopy(smec_adaptor_of(model))
    trained = adaptor.trained_dims
    smallest = trained[-1]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise ValueError(f"--dims: the new dim must be a positive int, got {dim!r}")
    if dim in trained:
        raise ValueError(f"--dims: {dim} is already trained (trained dims: {trained})")
    if not config.allow_any_dims:
        if dim >= smallest:
            raise ValueError(
                f"--dims: {dim} is not smaller than the smallest trained dim {smallest} (trained dims: {trained}); "
                "pass --allow-any-dims to add an intermediate dim"
            )
        if dim * 2 != smallest:
            raise ValueError(
                f"--dims: {dim} is not half of the smallest trained dim {smallest}; pass --allow-any-dims for "
                "other steps"
            )
    if dim >= adaptor.embedding_dim:
        raise ValueError(f"--dims: {dim} must be below the width {adaptor.embedding_dim}")
    # One new stage, trained alone with its own transition loss; ADS as the saved adaptor has it.
    config = replace(config, ads=adaptor.use_ads, smrl=True)
    config.check_memory(supervised)
    if supervised:
        check_supervised_data(data, config)
    index = adaptor.add_stage(dim)
    if not adaptor.stage_parameters(index):
        raise ValueError(
            f"--model: the adaptor has neither ADS nor stage rotations (use_ads={adaptor.use_ads}, "
            f"stage_rotation={adaptor.stage_rotation}), so a new stage has nothing to learn"
        )
    results = _train_phases(adaptor, data, corpus_vectors, query_vectors, config, [index], False, supervised)
    return _with_smec(model, adaptor), results
