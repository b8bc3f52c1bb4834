from __future__ import annotations

from st_matryoshka.evaluation.graded import GradedInformationRetrievalEvaluator
from st_matryoshka.evaluation.mteb_runner import mteb_model_meta
from st_matryoshka.evaluation.neighbour_overlap import NeighbourOverlapEvaluator
from st_matryoshka.evaluation.retrieval import dim_evaluators, evaluate_per_dim, matryoshka_evaluator

__all__ = [
    "GradedInformationRetrievalEvaluator",
    "NeighbourOverlapEvaluator",
    "dim_evaluators",
    "evaluate_per_dim",
    "matryoshka_evaluator",
    "mteb_model_meta",
]
