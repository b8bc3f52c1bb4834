"""Input module that serves frozen-backbone embeddings from a table instead of running the transformer."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules.input_module import InputModule

try:
    from typing import Self
except ImportError:  # Python 3.10
    from typing_extensions import Self

logger = logging.getLogger(__name__)

ROW_KEY = "input_ids"
"""Features key of the row indices (named like token ids so ST's trainer collects the column)."""


class CachedEmbeddings(InputModule):
    """Looks texts up in a table of precomputed backbone embeddings.

    The transformer of an adaptor model is frozen, so its output for a text never changes. This module stands in for
    the backbone (everything up to and including Pooling) during training and evaluation:
    ``SentenceTransformer(modules=[CachedEmbeddings(texts, vectors), adaptor])`` trains with
    ``SentenceTransformerTrainer`` and scores with ST's evaluators at the cost of a table lookup. A text that is
    not in the table is an error naming it: the table is built from the data before training.

    Args:
        texts: The texts, one per row of ``embeddings``. A repeated text uses its first row (a warning counts the
            repeats whose vectors differ, e.g. a provider that embeds queries and documents differently).
        embeddings: ``(len(texts), dim)`` float array or tensor of backbone embeddings.

    Example:
        ::

            import numpy as np
            from sentence_transformers import SentenceTransformer
            from st_matryoshka.models import CachedEmbeddings

            table = CachedEmbeddings(["a", "b"], np.eye(2, dtype="float32"))
            model = SentenceTransformer(modules=[table], device="cpu")
            print(model.encode(["b", "a"]).tolist())
            # => [[0.0, 1.0], [1.0, 0.0]]
    """

    config_keys: list[str] = []

    def __init__(self, texts: Sequence[str], embeddings: np.ndarray | torch.Tensor) -> None:
        super().__init__()
        # A read-only (memory-mapped) array is copied; a writable float32 one is shared.
        table = torch.as_tensor(np.require(embeddings, dtype=np.float32, requirements=["W"]))
        if table.ndim != 2 or table.shape[0] != len(texts):
            raise ValueError(
                f"embeddings must have shape ({len(texts)}, dim) to match texts, got {tuple(table.shape)}"
            )
        if not torch.isfinite(table).all():
            bad = int((~torch.isfinite(table)).any(dim=1).sum())
            raise ValueError(f"embeddings contain NaN or inf in {bad} rows")
        self.texts = list(texts)
        self.row_of: dict[str, int] = {}
        conflicts = 0
        for row, text in enumerate(self.texts):
            first = self.row_of.setdefault(text, row)
            if first != row and not torch.allclose(table[first], table[row], atol=1e-4):
                conflicts += 1
        if conflicts:
            logger.warning(
                f"{conflicts} texts appear more than once with different embeddings; the first row of each is used"
            )
        self.register_buffer("table", table, persistent=False)

    def preprocess(self, inputs: Sequence[str], prompt: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        if prompt:
            inputs = self._prepend_prompt(list(inputs), prompt)
        rows = []
        for text in inputs:
            row = self.row_of.get(text)
            if row is None:
                raise KeyError(f"text not in the embedding table: {text[:80]!r}")
            rows.append(row)
        return {ROW_KEY: torch.tensor(rows, dtype=torch.long)}

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        features["sentence_embedding"] = self.table[features[ROW_KEY].to(self.table.device)]
        return features

    def get_embedding_dimension(self) -> int:
        return int(self.table.shape[1])

    @property
    def max_seq_length(self) -> int:
        return 10**9

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        save_file({"table": self.table.contiguous().cpu()}, os.path.join(output_path, "model.safetensors"))
        with open(os.path.join(output_path, "texts.json"), "w", encoding="utf-8") as f:
            json.dump(self.texts, f)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs: Any) -> Self:
        folder = os.path.join(model_name_or_path, subfolder)
        with open(os.path.join(folder, "texts.json"), encoding="utf-8") as f:
            texts = json.load(f)
        return cls(texts, load_file(os.path.join(folder, "model.safetensors"))["table"].numpy())
