from __future__ import annotations

from st_matryoshka.losses.cross_batch_memory import SelectableCrossBatchMemory
from st_matryoshka.losses.matryoshka_rank import MatryoshkaRankLoss
from st_matryoshka.losses.matryoshka_unsupervised import MatryoshkaUnsupervisedLoss

__all__ = ["MatryoshkaRankLoss", "MatryoshkaUnsupervisedLoss", "SelectableCrossBatchMemory"]
