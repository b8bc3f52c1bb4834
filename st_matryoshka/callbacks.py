"""Trainer callbacks: keep the best weights by a validation metric, with early stopping."""

from __future__ import annotations

import logging
from typing import Any

import torch
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

logger = logging.getLogger(__name__)


class BestStateCallback(TrainerCallback):
    """Snapshots ``module``'s weights whenever the evaluator's primary metric improves; restores the best at the end.

    With ``eval_on_start=True`` in the training arguments the untrained state is scored first, so training can
    never end worse (by this metric) than where it started. After ``patience`` evaluations without improvement,
    training stops.

    Args:
        module: The trainable module (e.g. the adaptor); only its state is kept, in memory.
        metric: The key in the trainer's evaluation metrics, e.g. ``"eval_sequential_score"``.
        patience: Evaluations without improvement before stopping; ``None`` never stops early.
        greater_is_better: Direction of the metric.
        min_delta: Improvement needed to count as better.

    Example:
        ::

            callback = BestStateCallback(adaptor, metric="eval_sequential_score", patience=5)
            trainer = SentenceTransformerTrainer(model=model, args=args, ..., callbacks=[callback])
            trainer.train()  # adaptor now holds the best weights seen; callback.history has every score
    """

    def __init__(
        self,
        module: torch.nn.Module,
        metric: str,
        patience: int | None = 5,
        greater_is_better: bool = True,
        min_delta: float = 0.0,
    ) -> None:
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be a positive int or None, got {patience!r}")
        self.module = module
        self.metric = metric
        self.patience = patience
        self.greater_is_better = greater_is_better
        self.min_delta = min_delta
        self.best: float | None = None
        self.best_step: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.history: list[tuple[int, float]] = []
        self._bad_rounds = 0

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        delta = value - self.best if self.greater_is_better else self.best - value
        return delta > self.min_delta

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not metrics or self.metric not in metrics:
            raise KeyError(f"metric {self.metric!r} not among the evaluation metrics {sorted(metrics or {})}")
        value = float(metrics[self.metric])
        self.history.append((state.global_step, value))
        if self._improves(value):
            self.best, self.best_step, self._bad_rounds = value, state.global_step, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self._bad_rounds += 1
            if self.patience is not None and self._bad_rounds >= self.patience:
                control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
            logger.info(f"Restored the weights of step {self.best_step} ({self.metric} = {self.best:.4f})")
