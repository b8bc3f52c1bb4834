"""Label-free validation: how well prefixes keep the full-width nearest neighbours."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sentence_transformers.base.evaluation import BaseEvaluator

from st_matryoshka._validation import check_dims
from st_matryoshka.quantization import check_precisions, index_codes


class NeighbourOverlapEvaluator(BaseEvaluator):
    """Mean overlap between each probe's top-k neighbours under the reference embedding and under each prefix.

    For every probe text and every dim ``m``, the ``k`` nearest corpus items by cosine similarity of ``ê[:m]`` are
    compared with the ``k`` nearest by the reference (frozen backbone, full width) embedding; the score is the
    fraction shared, averaged over probes. The primary metric ``<name>_geomean_overlap@k`` is the geometric mean over
    dims, so a relative change counts the same at every dim (an arithmetic mean would be ruled by the large dims,
    whose overlap is near 1 and can only fall). It needs no
    labels, so it can choose the stopping point of unsupervised training on a held-out slice of the corpus.

    Args:
        probes: Probe texts, e.g. a held-out slice of the corpus.
        corpus: Texts searched for neighbours (a probe found in the corpus is not its own neighbour).
        reference_probes: ``(len(probes), D)`` reference embeddings of the probes.
        reference_corpus: ``(len(corpus), D)`` reference embeddings of the corpus.
        dims: Prefix sizes to check.
        k: Neighbours per probe.
        name: Prefix of the metric names.
        batch_size: Encoding batch size.
        precisions: Also score the prefixes' codes at these index precisions (``int8``: 256 levels per coordinate
            over the corpus prefix's range; ``binary``: sign bits), as ``overlap@k_dim{m}_{precision}``: the
            criterion of quantisation-aware training. ``float32`` is always scored.

    Example:
        ::

            evaluator = NeighbourOverlapEvaluator(probes, corpus, ref_probes, ref_corpus, dims=[96, 48], k=10)
            print(evaluator(model)["geomean_overlap@10"])
    """

    def __init__(
        self,
        probes: Sequence[str],
        corpus: Sequence[str],
        reference_probes: np.ndarray,
        reference_corpus: np.ndarray,
        dims: Sequence[int],
        k: int = 10,
        name: str = "",
        batch_size: int = 512,
        precisions: Sequence[str] = ("float32",),
    ) -> None:
        super().__init__()
        self.precisions = list(dict.fromkeys(["float32", *check_precisions(precisions, [])]))
        if len(probes) != len(reference_probes) or len(corpus) != len(reference_corpus):
            raise ValueError("reference embeddings must have one row per probe and per corpus text")
        if not isinstance(k, int) or not 1 <= k < len(corpus):
            raise ValueError(f"k must be an int in [1, {len(corpus) - 1}], got {k!r}")
        self.probes, self.corpus = list(probes), list(corpus)
        self.dims = check_dims(dims, name="dims")
        self.k, self.name, self.batch_size = k, name, batch_size
        corpus_index = {text: i for i, text in enumerate(self.corpus)}
        self.self_index = torch.tensor([corpus_index.get(p, -1) for p in self.probes])
        self.reference_neighbours = self._neighbours(
            torch.as_tensor(reference_probes, dtype=torch.float32),
            torch.as_tensor(reference_corpus, dtype=torch.float32),
        )
        self.primary_metric = f"{name}_geomean_overlap@{k}" if name else f"geomean_overlap@{k}"

    def _neighbours(self, probes: torch.Tensor, corpus: torch.Tensor) -> torch.Tensor:
        scores = F.normalize(probes, dim=-1) @ F.normalize(corpus, dim=-1).T
        has_self = self.self_index >= 0
        scores[has_self, self.self_index[has_self]] = float("-inf")
        return scores.topk(self.k, dim=1).indices

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1, *args: Any, **kwargs: Any
    ) -> dict[str, float]:
        kw = {"convert_to_tensor": True, "batch_size": self.batch_size, "show_progress_bar": False}
        probes = model.encode(self.probes, **kw).float().cpu()
        corpus = model.encode(self.corpus, **kw).float().cpu()
        metrics: dict[str, float] = {}
        for dim in self.dims:
            for precision in self.precisions:
                p, c = _code_vectors(probes[:, :dim], corpus[:, :dim], precision)
                found = self._neighbours(p, c)
                shared = (found.unsqueeze(2) == self.reference_neighbours.unsqueeze(1)).any(dim=2).float().mean()
                suffix = "" if precision == "float32" else f"_{precision}"
                metrics[f"overlap@{self.k}_dim{dim}{suffix}"] = float(shared)
        metrics[f"geomean_overlap@{self.k}"] = float(np.exp(np.mean(np.log(np.maximum(list(metrics.values()), 1e-9)))))
        return self.prefix_name_to_metrics(metrics, self.name)


def _code_vectors(probes: torch.Tensor, corpus: torch.Tensor, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors an index at ``precision`` compares: the prefixes themselves, or the values of their codes.

    Codes come from :func:`~st_matryoshka.quantization.index_codes` (ST's ``quantize_embeddings``), the
    quantiser the index and ``evaluate`` use; int8 ranges are those of the corpus prefix.
    """
    if precision == "float32":
        return probes, corpus
    p = F.normalize(probes, dim=-1).numpy()
    c = F.normalize(corpus, dim=-1).numpy()
    ranges = np.stack([c.min(axis=0), c.max(axis=0)]) if precision == "int8" else None
    return tuple(torch.from_numpy(index_codes(x, precision, ranges)) for x in (p, c))
