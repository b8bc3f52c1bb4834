"""Selectable Cross-Batch Memory (SMEC sec. 3.4): a FIFO bank of frozen-backbone embeddings."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from st_matryoshka.quantization import quantize_prefix


class SelectableCrossBatchMemory(nn.Module):
    """FIFO queue of frozen-backbone embeddings; each batch item is compared with its top-k most similar entries.

    Only backbone-side vectors (the adaptor's fixed reference ``z``, never adaptor outputs) are stored, so entries do
    not drift as the adaptor trains. The queue lives in registered buffers (``memory``, ``pointer``, ``filled``):
    it moves with the loss module between devices. Entries that are the same text as the query (cosine ≥
    ``1 − 1e-6``) are skipped, so an item is never its own neighbour.

    Args:
        embedding_dim: Width of the stored vectors.
        memory_size: Number of entries (SMEC's default 5,000).
        top_k: Memory neighbours per batch item.

    Example:
        ::

            import torch
            from st_matryoshka.losses import SelectableCrossBatchMemory

            memory = SelectableCrossBatchMemory(8, memory_size=16, top_k=2)
            memory.enqueue(torch.randn(10, 8))
            print(int(memory.filled), memory.neighbours(torch.randn(3, 8))[0].shape)
            # => 10 torch.Size([3, 2])
    """

    def __init__(self, embedding_dim: int, memory_size: int = 5000, top_k: int = 10) -> None:
        super().__init__()
        if not isinstance(memory_size, int) or memory_size < 1:
            raise ValueError(f"memory_size must be a positive int, got {memory_size!r}")
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive int, got {top_k!r}")
        if top_k > memory_size:
            raise ValueError(f"top_k={top_k} must not exceed memory_size={memory_size}")
        self.embedding_dim = embedding_dim
        self.memory_size = memory_size
        self.top_k = top_k
        self.register_buffer("memory", torch.zeros(memory_size, embedding_dim))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, vectors: torch.Tensor) -> None:
        """Append ``vectors`` (detached), overwriting the oldest entries when full."""
        n = vectors.shape[0]
        if n > self.memory_size:
            raise ValueError(
                f"memory_size={self.memory_size} is smaller than the {n} embeddings of one batch; raise memory_size "
                f"or lower the batch size"
            )
        index = (self.pointer + torch.arange(n, device=self.memory.device)) % self.memory_size
        self.memory[index] = vectors.detach().to(self.memory.dtype)
        self.pointer.copy_((self.pointer + n) % self.memory_size)
        self.filled.copy_(torch.clamp(self.filled + n, max=self.memory_size))

    @torch.no_grad()
    def neighbours(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, similarities)`` of each row's ``top_k`` most similar entries, ``(B, k)`` each.

        ``k`` is ``min(top_k, filled)``; with an empty memory both are ``(B, 0)``.
        """
        filled = int(self.filled)
        k = min(self.top_k, filled)
        stored = F.normalize(self.memory[:filled], dim=-1)
        sims = F.normalize(reference.to(self.memory.dtype), dim=-1) @ stored.T
        sims = sims.masked_fill(sims >= 1 - 1e-6, float("-inf"))
        values, indices = sims.topk(k, dim=1)
        return indices, values

    def preservation_loss(
        self,
        adapted: torch.Tensor,
        reference: torch.Tensor,
        adapt: Callable[[torch.Tensor], torch.Tensor],
        dims: Sequence[int],
        precisions: Sequence[tuple[str, float]] = (("float32", 1.0),),
    ) -> torch.Tensor:
        """SMEC eq. 7 over memory neighbours: ``mean |cos(e_i, e_j) − cos(ê_i[:d], ê_j[:d])|``, summed over ``dims``.

        ``adapt`` maps stored reference vectors to the current adaptor output (gradients flow through both sides).
        Rows whose neighbours are all skipped (no valid entry) contribute nothing. Each ``(precision, weight)`` adds
        the same term on both sides' codes at that precision
        (:func:`~st_matryoshka.quantization.quantize_prefix`), times ``weight``.
        """
        indices, target = self.neighbours(reference)
        valid = torch.isfinite(target)
        if indices.shape[1] == 0 or not valid.any():
            return adapted.new_zeros(())
        unique, inverse = torch.unique(indices, return_inverse=True)
        entries = adapt(self.memory[unique].to(adapted.dtype))
        total = adapted.new_zeros(())
        for dim in dims:
            a = F.normalize(adapted[:, :dim], dim=-1)
            b = F.normalize(entries[:, :dim], dim=-1)
            for precision, weight in precisions:
                sims = (quantize_prefix(a, precision) @ quantize_prefix(b, precision).T).gather(1, inverse)
                total = total + weight * (sims - target.to(sims.dtype)).abs()[valid].mean()
        return total
