"""Trainer callbacks: the engine's stage callback (best weights, early stopping, SMRL stages), gradient statistics."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_callback import ProgressCallback

from st_matryoshka._validation import ParameterError

logger = logging.getLogger(__name__)


class MetricsToLogProgressCallback(ProgressCallback):
    """transformers' progress bar without the metric dicts it prints at every evaluation.

    The per-evaluation metrics go to the ``st_matryoshka.training`` logger (``st-matryoshka -v`` shows them), so the
    console keeps one progress bar per training phase and the stage summaries.

    Example:
        ::

            trainer.pop_callback(ProgressCallback)
            trainer.add_callback(MetricsToLogProgressCallback())
    """

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, logs: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items())
            logging.getLogger("st_matryoshka.training").info(f"step {state.global_step}: {metrics}")


def quiet_progress(trainer: Any) -> Any:
    """Swap ``trainer``'s progress callback for :class:`MetricsToLogProgressCallback`; returns the trainer."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(MetricsToLogProgressCallback())
    return trainer


AGGREGATES = ("mean", "geomean")

STOP_REQUESTED = threading.Event()
"""Set to end training at the next step: :class:`StageCallback` then raises ``KeyboardInterrupt``, so the run unwinds
as on Ctrl-C (temporary folders removed, nothing saved). The command line sets it on SIGTERM, whose own exception
can be lost when the signal arrives inside a destructor."""


@dataclass
class Stage:
    """One stage of a training phase: what it trains, what its loss covers, and how it is scored.

    A method is a plan of stages (:mod:`st_matryoshka.engine`): one joint stage for the Matryoshka-Adaptor and the
    Search-Adaptor, one stage per dim for SMEC's sequential training (SMRL).

    Args:
        name: Label for logs and results, e.g. ``"joint"`` or ``"192->96"``.
        parameters: The tensors this stage trains; everything else in the module is frozen while it runs.
        loss_dims: Prefix sizes the loss covers during this stage.
        metric_keys: Evaluator metric names (without the trainer's ``eval_`` prefix) whose ``aggregate`` picks the
            stage's best weights and stops it.
        aggregate: ``"mean"`` or ``"geomean"`` (geometric mean: one collapsing dim cannot hide behind the others)
            of the ``metric_keys``.
        on_start: Called as the stage starts, before its start score (e.g. to initialise its parameters from data).
        select_best: Keep the best-scoring weights and stop after ``patience`` evaluations without improvement;
            ``False`` runs the stage to ``max_evaluations`` and keeps its last weights (a fixed-length stage whose
            score is only recorded; ``best``/``best_step`` then name the kept, last evaluation).
        patience: This stage's evaluations without improvement before it stops (``None``: the callback's).
        floor_keys: Evaluator metric names that must not fall: an evaluation where any of them is more than
            ``floor_tolerance`` below its value at the stage's start cannot become the stage's best (it counts as
            no improvement). The supervised phase's guard puts the document-disjoint validation queries here.
        floor_tolerance: How far below its start a ``floor_keys`` metric may fall.
    """

    name: str
    parameters: list[torch.nn.Parameter]
    loss_dims: list[int]
    metric_keys: list[str]
    aggregate: str = "mean"
    on_start: Callable[[], None] | None = None
    select_best: bool = True
    patience: int | None = None
    floor_keys: list[str] = field(default_factory=list)
    floor_tolerance: float = 0.0
    history: list[tuple[int, float]] = field(default_factory=list)
    best: float | None = None
    best_step: int | None = None
    start_step: int = 0
    end_step: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {list(AGGREGATES)}, got {self.aggregate!r}")
        if not self.metric_keys:
            raise ValueError(f"stage {self.name!r}: metric_keys must name at least one metric, got []")


class StageCallback(TrainerCallback):
    """Runs a plan of stages inside one ``SentenceTransformerTrainer`` run; keeps each stage's best weights.

    The engine's one selection and stopping rule, for every method: a single joint stage (Matryoshka-Adaptor,
    Search-Adaptor) or SMEC's Sequential Matryoshka Representation Learning (SMEC sec. 3.2, one stage per dim).

    Stages run one after another. While a stage runs, only its parameters require gradients (the optimizer skips
    tensors without gradients, so frozen ones never move) and the loss covers only its transition
    (``loss.set_matryoshka_dims``). The stage is scored at its start and at every evaluation; after ``patience``
    evaluations without improvement, or ``max_evaluations`` evaluations, its best weights are restored and frozen and
    the next stage starts. When the last stage ends, training stops. Each step it also sets the adaptor's
    Gumbel temperature, annealed exponentially from ``temperature[0]`` to ``temperature[1]`` over a stage's
    ``max_evaluations * eval_steps`` steps, and draws fresh Gumbel noise (adaptors without them are left alone).

    Why not transformers' ``eval_on_start``, ``load_best_model_at_end`` and ``EarlyStoppingCallback``: they select
    and stop once per run, from checkpoints written to disk at every evaluation, while a plan selects per stage
    (each stage scored at its own start, after its ``on_start`` initialisation) and keeps the adaptor's few tensors
    in memory.

    Args:
        module: The adaptor being trained.
        loss: The training loss; must have ``set_matryoshka_dims``.
        stages: The stages, in training order.
        model: The SentenceTransformer the evaluator scores (the trainer's model).
        evaluator: The evaluator run at each stage's start (the trainer runs it at every evaluation).
        patience: Evaluations without improvement before a stage ends (stages that select their best weights).
        max_evaluations: Evaluations after which a stage ends regardless (the step cap).
        temperature: ``(start, end)`` of the Gumbel temperature schedule; both must be > 0.
        seed: Seed of the Gumbel noise.

    Example:
        ::

            callback = StageCallback(adaptor, loss, stages, model, evaluator, patience=3, max_evaluations=20)
            SentenceTransformerTrainer(model=model, args=args, train_dataset=rows, loss=loss,
                                       evaluator=evaluator, callbacks=[callback]).train()
            print([(s.name, s.best) for s in callback.stages])
    """

    def __init__(
        self,
        module: torch.nn.Module,
        loss: torch.nn.Module,
        stages: list[Stage],
        model: Any,
        evaluator: Any,
        patience: int = 5,
        max_evaluations: int = 40,
        temperature: tuple[float, float] = (0.5, 0.05),
        seed: int = 42,
    ) -> None:
        if not stages:
            raise ValueError("stages must hold at least one Stage, got []")
        if not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive int, got {patience!r}")
        if not isinstance(max_evaluations, int) or max_evaluations < 1:
            raise ValueError(f"max_evaluations must be a positive int, got {max_evaluations!r}")
        check_temperature(temperature)
        self.module, self.loss, self.stages = module, loss, stages
        self.model, self.evaluator = model, evaluator
        self.patience, self.max_evaluations, self.temperature = patience, max_evaluations, temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.current = 0
        self._evaluations = 0
        self._bad_rounds = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._floor: dict[str, float] | None = None
        self._started = 0.0
        self._finished = False

    def _score(self, metrics: dict[str, float]) -> float:
        stage = self.stages[self.current]
        clean = {k.removeprefix("eval_"): v for k, v in metrics.items()}
        missing = [k for k in stage.metric_keys if k not in clean]
        if missing:
            raise KeyError(f"metrics {missing} not among the evaluation metrics {sorted(clean)}")
        values = [clean[k] for k in stage.metric_keys]
        if stage.aggregate == "geomean":
            return float(np.exp(np.mean(np.log(np.maximum(values, 1e-9)))))
        return float(np.mean(values))

    def _admissible(self, metrics: dict[str, float]) -> bool:
        """Whether no floor metric of the current stage is more than its tolerance below the stage's start."""
        stage = self.stages[self.current]
        clean = {k.removeprefix("eval_"): v for k, v in metrics.items()}
        if self._floor is None:
            self._floor = {k: clean[k] for k in stage.floor_keys}
        return all(clean[k] >= start - stage.floor_tolerance for k, start in self._floor.items())

    def _record(self, step: int, value: float, admissible: bool = True) -> None:
        stage = self.stages[self.current]
        stage.history.append((step, value))
        if not admissible and stage.select_best:
            self._bad_rounds += 1
        elif stage.best is None or value > stage.best or not stage.select_best:
            stage.best, stage.best_step, self._bad_rounds = value, step, 0
            self._best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self._bad_rounds += 1

    def _activate(self, index: int, step: int) -> None:
        self.current, self._evaluations, self._bad_rounds, self._floor = index, 0, 0, None
        stage = self.stages[index]
        if stage.on_start is not None:
            stage.on_start()
        for p in self.module.parameters():
            p.requires_grad_(False)
        for p in stage.parameters:
            p.requires_grad_(True)
        self.loss.set_matryoshka_dims(stage.loss_dims)
        stage.start_step = step
        self._started = time.perf_counter()
        was_training = self.model.training
        metrics = self.evaluator(self.model)
        self.model.train(was_training)
        self._record(step, self._score(metrics), self._admissible(metrics))
        logger.info(f"stage {stage.name}: start score {stage.best:.4f}")

    def _finish(self, step: int) -> None:
        stage = self.stages[self.current]
        if self._best_state is not None:
            self.module.load_state_dict(self._best_state)
        stage.end_step, stage.seconds = step, time.perf_counter() - self._started
        for p in stage.parameters:
            p.requires_grad_(False)
        logger.info(f"stage {stage.name}: best {stage.best:.4f} at step {stage.best_step}")

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._activate(0, state.global_step)

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        start, end = self.temperature
        span = max(1, self.max_evaluations * max(1, int(args.eval_steps or 1)))
        progress = min(1.0, (state.global_step - self.stages[self.current].start_step) / span)
        if hasattr(self.module, "temperature"):
            self.module.temperature = start * (end / start) ** progress
        if hasattr(self.module, "resample_noise"):
            self.module.resample_noise(self.generator)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if STOP_REQUESTED.is_set():
            raise KeyboardInterrupt("stop requested")

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        if self._finished or state.global_step == self.stages[self.current].start_step:
            return
        self._evaluations += 1
        self._record(state.global_step, self._score(metrics or {}), self._admissible(metrics or {}))
        stage = self.stages[self.current]
        patience = stage.patience if stage.patience is not None else self.patience
        stopped = stage.select_best and self._bad_rounds >= patience
        if stopped or self._evaluations >= self.max_evaluations:
            self._finish(state.global_step)
            if self.current + 1 < len(self.stages):
                self._activate(self.current + 1, state.global_step)
            else:
                self._finished = True
                control.should_training_stop = True

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        if not self._finished:
            self._finish(state.global_step)
            self._finished = True
        if hasattr(self.module, "temperature"):
            self.module.temperature = self.temperature[1]
        if hasattr(self.module, "end_steps"):
            self.module.end_steps()


def check_temperature(temperature: tuple[float, float]) -> None:
    """Raise if a Gumbel temperature schedule ``(start, end)`` is not two positive numbers."""
    if len(temperature) != 2 or any(
        not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0 for t in temperature
    ):
        raise ParameterError(
            "temperature",
            f"temperature schedule (start, end) must be two finite numbers > 0, got {tuple(temperature)!r}",
        )


class GradientVarianceCallback(TrainerCallback):
    """Records the variance of a parameter's gradients over steps (SMEC Fig. 6a/7's diagnostic).

    Every ``window`` optimizer steps it stores the mean, over the selected gradient entries, of their variance across
    the window's steps, and the mean absolute gradient. ``rows`` picks the output rows of a weight matrix (e.g. the
    rows that feed the first 192 output dims).

    Args:
        parameter: The tensor whose gradients are tracked.
        rows: ``(start, end)`` rows of ``parameter`` to track; ``None`` tracks all.
        window: Steps per recorded point.

    Example:
        ::

            tracker = GradientVarianceCallback(adaptor.residual[-1].weight, rows=(0, 192))
            trainer = SentenceTransformerTrainer(..., callbacks=[tracker]); trainer.train()
            print(tracker.points[:3])  # [(step, variance, mean_abs_grad), ...]
    """

    def __init__(self, parameter: torch.Tensor, rows: tuple[int, int] | None = None, window: int = 10) -> None:
        if not isinstance(window, int) or window < 2:
            raise ValueError(f"window must be an int >= 2, got {window!r}")
        self.parameter, self.rows, self.window = parameter, rows, window
        self.points: list[tuple[int, float, float]] = []
        self._grads: list[torch.Tensor] = []

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        grad = self.parameter.grad
        if grad is None:
            return
        if self.rows is not None:
            grad = grad[self.rows[0] : self.rows[1]]
        self._grads.append(grad.detach().flatten().cpu().clone())
        if len(self._grads) == self.window:
            stacked = torch.stack(self._grads)
            variance = float(stacked.var(dim=0).mean())
            self.points.append((state.global_step + 1, variance, float(stacked.abs().mean())))
            self._grads = []
