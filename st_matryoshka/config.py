"""Training configurations: one dataclass per method family, with fields that mirror the command-line flags.

:class:`AdaptorTrainingConfig` holds the settings every method shares (the Matryoshka-Adaptor's, which the
Search-Adaptor reuses through :func:`search_adaptor_config`); :class:`SMECTrainingConfig` adds SMEC's switches. The
engine (:mod:`st_matryoshka.engine`) reads a config to build the method's plan of stages. Errors are
:class:`~st_matryoshka._validation.ParameterError` naming the field, which the CLI maps to its flag.
"""

from __future__ import annotations

import math
import types
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union, get_args, get_origin, get_type_hints

from st_matryoshka._validation import ParameterError, check_dims
from st_matryoshka.callbacks import check_temperature
from st_matryoshka.data import VALIDATION_SPLITS
from st_matryoshka.models.matryoshka_adaptor import ACTIVATIONS
from st_matryoshka.quantization import check_precisions

METHODS = ("matryoshka-adaptor", "pca", "search-adaptor", "smec")
"""Every method a config can describe; ``pca`` fits without training."""
SUPERVISED_PARAMETERS = ("all", "last-layer")
BIT_THRESHOLDS = ("median", "mean", "none")
CORPUS_MODES = ("fixed", "growing")
"""What the supervised guard protects (``corpus_mode``): a fixed corpus queried by new queries, or a growing one."""


@dataclass
class AdaptorTrainingConfig:
    """Hyper-parameters of :func:`train_matryoshka_adaptor`; defaults are the ones the benchmarks use.

    Args:
        dims: Matryoshka dims to train, strictly descending; the full width is always added to the loss.
        hidden_dim: Hidden width of the adaptor MLP (``None``: the embedding width).
        num_layers: Hidden layers of the adaptor MLP (``0``: linear).
        activation: The MLP's activation: ``gelu`` (default), ``relu``, ``silu`` or ``tanh``. Every one saves as
            Sentence-Transformers' own ``Dense`` modules; ``tanh`` is the one that text-embeddings-inference also
            runs (its ``Dense`` takes Tanh and Identity only; BENCHMARKS.md "Serving activation" measures it).
        pca_init: Initialise the adaptor's rotation with the corpus' principal axes.
        center_input: Centre the input on the corpus mean before the rotation (classic PCA start; changes the
            full-width similarities).
        top_k: Neighbours per item in ``L_topk``.
        distill_weight: Weight of ``L_distill`` in the unsupervised stage (``0``: the paper's loss). ``None``: 1.0,
            whether or not a supervised stage follows: without it the label-free criterion falls from the start,
            so the unsupervised stage kept its untrained start under ``supervised`` (issue 24; BENCHMARKS.md,
            "Supervision that pays").
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
        validation_fraction: Fraction of the train queries held out for the supervised stage's selection and early
            stopping.
        validation_split: How they are held out: ``both`` (default: whole groups of queries that share relevant
            documents, so no training query cites their documents, and as many again by a hash of the id from the
            rest, about documents training cites; early stopping and the interpolation's choice go by the second
            kind, the deployment of a fixed corpus and new queries, subject to the first kind never falling more
            than ``guard_tolerance`` below the unsupervised adaptor), ``document-disjoint`` (the first kind only:
            everything is chosen for documents no label cites, for a corpus that grows with such documents) or
            ``query-hash`` (by a hash of the id only). Too connected qrels fall back to ``query-hash`` with a
            logged line (:func:`st_matryoshka.data.validation_split`).
        corpus_mode: The deployment the guard protects (with ``validation_split="both"``). ``fixed`` (default): a
            corpus that stays as it is, queried by new queries (the BEIR protocol): the interpolation is chosen and
            checked on held-out queries about documents training cites; what it costs on held-out queries about
            documents no label cites is recorded in ``selection`` and stated on the card, not enforced.
            ``growing``: a corpus that grows with documents no label will cite: those queries must also never fall
            more than ``guard_tolerance`` below the unsupervised adaptor at any dim.
        min_validation_queries: At least this many validation queries are held out (at most half the qrels), and
            the supervised update is used only when at least this many of each kind validated it: on fewer, one
            query moves the mean NDCG@10 by 0.1 or more, so a gain cannot be told from noise and the unsupervised
            adaptor is kept.
        guard_tolerance: The guard (:func:`~st_matryoshka.engine.interpolate_supervised`) keeps only weights that,
            on every validation kind, are at no trained dim more than this below the unsupervised adaptor: the
            promise "never worse than unsupervised" is per dim, and a higher mean hid a loss at SMEC's smallest dim
            on Cranfield.
        interpolation_steps: The guard scores the weights ``(1 - a) * unsupervised + a * supervised`` for ``a`` in
            ``0, 1/n, ..., 1`` (WiSE-FT) and keeps the best admissible one; ``1`` only keeps or drops the
            supervised state (the guard before issue 32).
        guarded_stopping: With ``validation_split="both"``, an evaluation of the supervised phase can become its
            best (the ``a = 1`` state) only if no dim of the document-disjoint validation queries is more than
            ``guard_tolerance`` below the stage's start; otherwise it counts as no improvement.
        unsupervised_weight: α in ``L_rank + α · L_unsup``.
        supervised_parameters: What the supervised stage trains: ``all`` the adaptor's parameters, or ``last-layer``
            (the residual MLP's output layer only; fewer parameters to fit the cited documents with).
            Matryoshka-Adaptor and Search-Adaptor; SMEC's plan trains its stages as before.
        supervised_distill_weight: Weight of ``L_distill`` (the backbone's near-neighbour structure) inside the
            supervised stage's ``L_unsup``; ``0`` keeps the paper's unsupervised terms there.
        supervised_l2sp_weight: Weight of L2-SP in the supervised stage: the squared distance of the adaptor's
            weights from where the unsupervised stage left them (summed over parameters); ``0`` (default) adds none.
        supervised_margin: ``None`` (default) ranks with SMEC's eq. 8 (``log(1 + exp(s_neg − s_pos))``, never
            zero); a number ranks with DIVE's self-limiting hinge ``max(0, margin + s_neg − s_pos)``, whose gradient
            is zero once a pair is that far apart in cosine similarity.
        patience: Evaluations without improvement before a stage stops.
        seed: Random seed.
        precisions: Index precisions to train for (quantisation-aware training; ``float32`` is always trained):
            ``binary`` and ``int8`` add every loss term computed on the prefixes' codes (sign bits; 256 levels),
            straight-through, and the label-free criterion scores the codes' neighbours too. The output stays a float
            vector usable at every dim. ``binary`` needs every dim divisible by 8.
        quantization_weight: Weight of the loss terms on codes.
        balance_bits: After the principal-axes start, rotate the coordinates between consecutive trained dims among
            themselves (ITQ, :func:`~st_matryoshka.models.matryoshka_adaptor.itq_rotation`) so each sign bit of a
            block carries a similar share of its variance; the similarities of every trained prefix are unchanged.
            ``None`` (resolved here): on when ``binary`` is among ``precisions`` and ``pca_init`` is set (measured in
            BENCHMARKS.md, "Quantisation-aware training"). Matryoshka-Adaptor, Search-Adaptor and the PCA baseline
            only; SMEC's stages make their own reductions, so its config refuses ``True``.
        bit_thresholds: ``median`` or ``mean``: the adaptor holds per-coordinate thresholds subtracted from its output
            (:class:`~st_matryoshka.models.MatryoshkaAdaptor` ``bit_thresholds``), set to that statistic of the corpus
            at the start and trained by the loss terms on codes; ``none`` (default): no thresholds.
            Matryoshka-Adaptor and Search-Adaptor; SMEC's config refuses it.
        code_guard: After binary training, score the full-width sign bits three ways on held-out documents (the
            trained ones; the last block, from the largest trained dim below the width to the width, replaced by the
            base model's own coordinates, plain or centred on the corpus mean) and keep the best
            (:func:`~st_matryoshka.engine.guard_codes`); every smaller prefix is unchanged. ``None`` (resolved here):
            on when ``binary`` is among ``precisions``. Matryoshka-Adaptor and Search-Adaptor; SMEC's config
            refuses ``True``.
    """

    dims: list[int] = field(default_factory=lambda: [192, 96, 48, 24])
    hidden_dim: int | None = None
    num_layers: int = 1
    activation: str = "gelu"
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
    validation_split: str = "both"  # document-disjoint alone cost ~0.1 on SciFact's test queries (issue 32)
    corpus_mode: str = "fixed"
    min_validation_queries: int = 10
    guard_tolerance: float = 0.005  # "never worse" is per dim: a higher mean hid SMEC's −0.05 at 24 dims (Cranfield)
    interpolation_steps: int = 10
    guarded_stopping: bool = False
    unsupervised_weight: float = 1.0
    supervised_distill_weight: float = 0.0  # 1.0 and the others below: no better on unseen-document queries (ablation)
    supervised_parameters: str = "all"
    supervised_l2sp_weight: float = 0.0
    supervised_margin: float | None = None
    patience: int = 5
    seed: int = 42
    precisions: list[str] = field(default_factory=lambda: ["float32"])
    quantization_weight: float = 1.0
    balance_bits: bool | None = None
    bit_thresholds: str = "none"  # median: 5-seed means at or below none on 4 sets (BENCHMARKS, "Bit thresholds")
    code_guard: bool | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        self.dims = check_dims(self.dims, name="dims")
        for name in ("unsupervised_epochs", "supervised_epochs", "patience"):
            low = 1 if name == "patience" else 0
            if getattr(self, name) < low:
                raise ParameterError(name, f"{name} must be an int >= {low}, got {getattr(self, name)!r}")
        self.precisions = list(dict.fromkeys(["float32", *check_precisions(self.precisions, self.dims)]))
        if not isinstance(self.quantization_weight, (int, float)) or self.quantization_weight < 0:
            raise ParameterError(
                "quantization_weight", f"quantization_weight must be >= 0, got {self.quantization_weight!r}"
            )
        if self.balance_bits not in (None, True, False):
            raise ParameterError(
                "balance_bits", f"balance_bits must be True, False or None, got {self.balance_bits!r}"
            )
        if self.balance_bits and not self.pca_init:
            raise ParameterError(
                "balance_bits", "balance_bits=True needs pca_init=True (it balances the principal-axes start)"
            )
        if self.balance_bits is None:
            self.balance_bits = "binary" in self.precisions and self.pca_init
        if self.code_guard not in (None, True, False):
            raise ParameterError("code_guard", f"code_guard must be True, False or None, got {self.code_guard!r}")
        if self.code_guard and "binary" not in self.precisions:
            raise ParameterError("code_guard", "code_guard=True needs 'binary' among precisions (it guards sign bits)")
        if self.code_guard is None:
            self.code_guard = "binary" in self.precisions
        if self.activation not in ACTIVATIONS:
            raise ParameterError(
                "activation", f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.bit_thresholds not in BIT_THRESHOLDS:
            raise ParameterError(
                "bit_thresholds", f"bit_thresholds must be one of {list(BIT_THRESHOLDS)}, got {self.bit_thresholds!r}"
            )
        if self.center_input and not self.pca_init:
            raise ParameterError(
                "center_input", "center_input=True needs pca_init=True (the mean is set with the principal axes)"
            )
        if self.supervised_parameters not in SUPERVISED_PARAMETERS:
            raise ParameterError(
                "supervised_parameters",
                f"supervised_parameters must be one of {list(SUPERVISED_PARAMETERS)}, "
                f"got {self.supervised_parameters!r}",
            )
        if self.corpus_mode not in CORPUS_MODES:
            raise ParameterError(
                "corpus_mode", f"corpus_mode must be one of {list(CORPUS_MODES)}, got {self.corpus_mode!r}"
            )
        if self.validation_split not in VALIDATION_SPLITS:
            raise ParameterError(
                "validation_split",
                f"validation_split must be one of {list(VALIDATION_SPLITS)}, got {self.validation_split!r}",
            )
        for name in ("holdout_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ParameterError(name, f"{name} must be in (0, 1), got {value!r}")
        if self.criterion_corpus_max <= self.holdout_max:
            raise ParameterError(
                "criterion_corpus_max",
                f"criterion_corpus_max={self.criterion_corpus_max} must exceed holdout_max={self.holdout_max}",
            )
        if self.max_samples is not None and (not isinstance(self.max_samples, int) or self.max_samples < 1):
            raise ParameterError(
                "max_samples", f"max_samples must be a positive int or None, got {self.max_samples!r}"
            )
        names = ("unsupervised_batch_size", "supervised_batch_size", "num_negatives", "negative_pool", "top_k")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**32:
            raise ParameterError("seed", f"seed must be an int from 0 to 2**32 - 1, got {self.seed!r}")
        weights = (
            "unsupervised_weight",
            "supervised_distill_weight",
            "distill_weight",
            "quantization_weight",
            "supervised_l2sp_weight",
            "supervised_margin",
            "guard_tolerance",
        )
        for name in weights:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ParameterError(name, f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("unsupervised_lr", "supervised_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ParameterError(name, f"{name} must be a finite number > 0, got {value!r}")
        for name in (*names, "holdout_max", "criterion_corpus_max", "min_validation_queries", "interpolation_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ParameterError(name, f"{name} must be a positive int, got {value!r}")

    def resolved_distill_weight(self) -> float:
        """``distill_weight``, or its default when ``None``: 1.0, with or without a supervised stage after it.

        The unsupervised stage is the same whether a supervised one follows: with the paper's loss alone (0.0, the
        default before a supervised stage until issue 24) the label-free criterion only falls, and the stage kept
        its untrained start.
        """
        if self.distill_weight is not None:
            return self.distill_weight
        return 1.0


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
        stage_pca_init: With ``smrl``, start every stage of an SMRL unsupervised phase (SMEC without
            ``supervised``, and ``extend``) from PCA of its input block over the corpus
            (:meth:`~st_matryoshka.models.SMECAdaptor.init_stage`) instead of from where the stage was left; the
            stage then learns a rotation away from PCA. A deviation from the paper, which starts stages from the
            previous embedding's truncation; BENCHMARKS.md has both over several seeds. Supervised SMEC trains its
            body as the unsupervised Matryoshka-Adaptor first (so where the guard drops the supervised update it is
            that adaptor, issue 32) and its supervised stages continue from the body's prefixes: no PCA restart, so
            the guard can interpolate between the two states.
        unsupervised_body_early_stop: With ``smrl``, select the first unsupervised stage's weights (the body and its
            ``D → D/2`` stage) by its label-free criterion with early stopping, like every other stage. Off by
            default: that stage trains for ``unsupervised_epochs`` and keeps its last weights, as the
            Matryoshka-Adaptor trains for fixed epochs. The criterion (neighbour overlap at ``D/2``, against the
            backbone) is highest at the stage's PCA start, so selecting by it kept step 0 in every measured run and
            the body got no unsupervised training at all; BENCHMARKS.md compares both.
        body_all_dims: With ``smrl``, the first stage (which trains the body with the ``D → D/2`` stage) takes its
            loss and criterion over every trained dim, through the later stages at their start, instead of over
            ``D`` and ``D/2`` only; the later stages then train their own transitions as usual. The body is then
            trained as the Matryoshka-Adaptor's is (the full width included), for users who keep full-width vectors.
        body_patience: With ``smrl``, evaluations without improvement before the stage that trains the body stops
            (``None``: ``patience``). The body's supervised stage is scored on the mean of two dims on a few hundred
            validation queries; with patience 5 it stopped after about a third of the passes the joint stage of
            the Matryoshka-Adaptor trains (BENCHMARKS.md, SMEC at full width).
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
    body_all_dims: bool = False
    body_patience: int | None = None

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.balance_bits:
            raise ParameterError(
                "balance_bits", "balance_bits=True applies to the Matryoshka-Adaptor and Search-Adaptor, not to SMEC"
            )
        self.balance_bits = False  # SMEC's stages make their own reductions of the body's output
        if self.code_guard:
            raise ParameterError(
                "code_guard", "code_guard=True applies to the Matryoshka-Adaptor and Search-Adaptor, not to SMEC"
            )
        self.code_guard = False  # SMEC's stages reorder the output; no block of it is the base model's
        if self.bit_thresholds != "none":
            raise ParameterError(
                "bit_thresholds", "bit_thresholds applies to the Matryoshka-Adaptor and Search-Adaptor, not to SMEC"
            )
        super().__post_init__()
        if self.body_patience is not None and (not isinstance(self.body_patience, int) or self.body_patience < 1):
            raise ParameterError(
                "body_patience", f"body_patience must be a positive int or None, got {self.body_patience!r}"
            )
        if not (isinstance(self.stage_lr_multiplier, (int, float)) and 0 < self.stage_lr_multiplier < math.inf):
            raise ParameterError(
                "stage_lr_multiplier",
                f"stage_lr_multiplier must be a finite number > 0, got {self.stage_lr_multiplier!r}",
            )
        check_temperature((self.temperature_start, self.temperature_end))
        if self.xbm:
            if not isinstance(self.memory_size, int) or self.memory_size < 1:
                raise ParameterError("memory_size", f"memory_size must be a positive int, got {self.memory_size!r}")
            self.check_memory(supervised=False)
            if self.top_k > self.memory_size:
                raise ParameterError("top_k", f"top_k={self.top_k} must not exceed memory_size={self.memory_size}")

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
            raise ParameterError(
                "memory_size",
                f"memory_size={self.memory_size} is smaller than a batch ({largest} embeddings: {batches[largest]})",
            )


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the type ``hint`` names (a bool is no int, an int is a float; unions and lists)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = get_args(hint) or (Any,)
        return isinstance(value, (list, tuple)) and (item is Any or all(_matches(v, item) for v in value))
    return True


def check_field_types(config: Any) -> None:
    """Refuse a field whose value is not of its declared type, naming the field: the one type check of every config.

    ``supervised="no"`` is no bool, ``interpolation_steps=True`` no int, ``unsupervised_epochs="2"`` no int.

    ``dims`` is checked by :func:`~st_matryoshka._validation.check_dims` (any sequence of positive ints).
    """
    hints = get_type_hints(type(config))
    for item in fields(config):
        if item.name == "dims":
            continue
        value = getattr(config, item.name)
        hint = hints.get(item.name)
        if hint is not None and not _matches(value, hint):
            kind = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
            raise ParameterError(item.name, f"{item.name} must be of type {kind}, got {value!r}")


def search_adaptor_config(dims: Sequence[int], **overrides: Any) -> AdaptorTrainingConfig:
    """Configuration of the Search-Adaptor baseline (Yoon et al. 2023, arXiv 2310.08750), Matryoshka-style.

    One linear map for all target dims (``num_layers=0``), started from the PCA rotation and trained with the rank
    loss over every prefix only: no unsupervised stage and no unsupervised terms. The paper trains one reduction per
    target size; a single Matryoshka-style map keeps the output truncatable by prefix, as every st_matryoshka model
    is, and folds into ST's ``Dense`` (:mod:`st_matryoshka.export`). Train it with ``supervised=True``.
    """
    settings = {"num_layers": 0, "unsupervised_epochs": 0, "unsupervised_weight": 0.0, **overrides}
    return AdaptorTrainingConfig(dims=list(dims), **settings)


def config_for(method: str, dims: Sequence[int], width: int | None = None, **overrides: Any) -> AdaptorTrainingConfig:
    """The training config of ``method`` with ``dims`` and ``overrides`` (config field names).

    With ``width`` (the vectors' width), SMEC's dims leave it out: SMEC's stages reduce from it, it is not a stage.

    Example:
        ::

            config_for("smec", [192, 96, 48], supervised_epochs=10).smrl
            # => True
    """
    if method not in METHODS:
        raise ParameterError("method", f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "search-adaptor":
        return search_adaptor_config(dims, **overrides)
    if method == "smec":
        dims = [d for d in dims if width is None or d < width]
        return SMECTrainingConfig(dims=dims, **overrides)
    return AdaptorTrainingConfig(dims=list(dims), **overrides)


# ---------------------------------------------------------------------------------------------------------------------
# One config class per method, for st_matryoshka.train (as PEFT's get_peft_model(model, LoraConfig(...)))


@dataclass
class MatryoshkaAdaptorConfig(AdaptorTrainingConfig):
    """The Matryoshka-Adaptor (Yoon et al. 2024) for :func:`st_matryoshka.train`.

    Every field of :class:`AdaptorTrainingConfig`, plus ``supervised`` (add the supervised phase on the data's
    training qrels).

    Example:
        ::

            from st_matryoshka.config import MatryoshkaAdaptorConfig

            MatryoshkaAdaptorConfig(dims=[96, 48], precisions=["binary"]).method
            # => 'matryoshka-adaptor'
    """

    method: ClassVar[str] = "matryoshka-adaptor"
    supervised: bool = False


@dataclass
class SearchAdaptorConfig(AdaptorTrainingConfig):
    """The Search-Adaptor baseline (:func:`search_adaptor_config`): linear, supervised phase only."""

    method: ClassVar[str] = "search-adaptor"
    num_layers: int = 0
    unsupervised_epochs: int = 0
    unsupervised_weight: float = 0.0
    supervised: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.supervised:
            message = "supervised: method 'search-adaptor' is supervised; it needs train_split"
            raise ParameterError("supervised", message)


@dataclass
class PCAConfig(AdaptorTrainingConfig):
    """The PCA baseline: classic centred PCA of the corpus (``balance_bits``: PCA-ITQ); nothing is trained."""

    method: ClassVar[str] = "pca"
    supervised: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.supervised:
            raise ParameterError("supervised", "supervised does not apply to method 'pca' (nothing is trained)")


@dataclass
class SMECConfig(SMECTrainingConfig):
    """SMEC (Zhang et al. 2025) for :func:`st_matryoshka.train`.

    Every field of :class:`SMECTrainingConfig`, plus ``supervised`` (default ``True``: SMEC's rank loss needs the
    data's training qrels).
    """

    method: ClassVar[str] = "smec"
    supervised: bool = True


METHOD_CONFIGS: dict[str, type[AdaptorTrainingConfig]] = {
    c.method: c for c in (MatryoshkaAdaptorConfig, SearchAdaptorConfig, PCAConfig, SMECConfig)
}
"""The config class of each method (``method``: its name, as ``--method`` takes it)."""


def method_settings(config: AdaptorTrainingConfig) -> dict[str, Any]:
    """The fields of a per-method ``config`` as :func:`config_for` takes them: without ``dims`` and ``supervised``."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.name not in ("dims", "supervised")}


@dataclass
class BackboneSource:
    """Where a model's backbone vectors come from, and how it is loaded.

    Args:
        embeddings: A folder of precomputed backbone vectors (``corpus.npy``, ``queries.npy`` and their ids); without
            it the backbone encodes through the embedding cache.
        cache_dir: The embedding cache's folder.
        batch_size: Encoding batch size.
        device: Encoding device, or a list for Sentence-Transformers' multi-process encoding.
        trust_remote_code: Let Sentence-Transformers run code shipped with the model (never set on a user's behalf).
        corpus_vectors: Backbone vectors already in memory, one row per document of the data (with data given as a
            :class:`~st_matryoshka.data.RetrievalData`); nothing is read or encoded then.
        query_vectors: The same for the data's queries.
    """

    embeddings: str | None = None
    cache_dir: str | None = None
    batch_size: int = 32
    device: str | list[str] | None = None
    trust_remote_code: bool = False
    corpus_vectors: Any = None
    query_vectors: Any = None

    def encoding(self) -> tuple[str | None, str | None, int, str | list[str] | None]:
        """``(embeddings, cache_dir, batch_size, device)``, as ``cache.backbone_vectors`` takes them."""
        return self.embeddings, self.cache_dir, self.batch_size, self.device


@dataclass
class VectorData:
    """The supervised data of a vectors-only training: query vectors, qrels and the rows' ids.

    Args:
        queries: ``(m, D)`` query vectors or a ``.npy`` path.
        qrels: ``{query id: {corpus id: relevance}}`` or a BEIR ``.tsv`` path.
        corpus_ids: Ids of the corpus rows (default: row numbers as strings).
        query_ids: Ids of the query rows (default: row numbers as strings).
        name: What the corpus is, for the int8 calibration record.
    """

    queries: Any = None
    qrels: dict[str, dict[str, int]] | str | None = None
    corpus_ids: Sequence[str] | None = None
    query_ids: Sequence[str] | None = None
    name: str | None = None
