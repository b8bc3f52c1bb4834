"""The quantiser: index precisions, int8 ranges, codes, bytes per vector and byte budgets.

Bytes are what an index pays per vector, so a dim is stored at each precision Sentence-Transformers'
``quantize_embeddings`` offers: ``float32``; ``int8`` with per-dimension ranges of the unit-normalised prefix (a
trained model's are calibrated on its training corpus and stored in its ``st_matryoshka.json``,
:func:`calibrate_int8`); ``binary`` as the sign bits, 8 dims a byte. :func:`quantize_prefix` is the same code as a
differentiable (straight-through) operation for quantisation-aware training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from st_matryoshka._validation import ParameterError

PRECISIONS = ("float32", "int8", "binary")
CALIBRATION_ROWS = 262_144
"""Documents int8 ranges are calibrated on at most (evenly spaced over a larger corpus)."""


def check_precisions(precisions: Sequence[str], dims: Sequence[int], rescore: int | None = None) -> list[str]:
    """Validate ``precisions`` against ``dims`` and ``rescore``; returns them as a list.

    Raises:
        ParameterError: naming ``precisions`` (unknown, or ``binary`` with a dim not divisible by 8) or ``rescore``.
    """
    precisions = [precisions] if isinstance(precisions, str) else list(precisions)
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ParameterError("precisions", f"precisions must be among {list(PRECISIONS)}, got {precisions!r}")
    if "binary" in precisions:
        odd = [d for d in dims if d % 8]
        if odd:
            raise ParameterError(
                "precisions", f"precisions: binary codes pack 8 dims a byte; dims {odd} are not divisible by 8"
            )
    if rescore is not None and rescore < 100:
        raise ParameterError("rescore", f"rescore must be at least 100 (the Recall@100 cut-off), got {rescore}")
    return precisions


def calibration_rows(n: int, max_rows: int | None = CALIBRATION_ROWS) -> np.ndarray:
    """The corpus rows int8 ranges are calibrated on: all ``n``, or ``max_rows`` evenly spaced ones (sorted)."""
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_rows).round().astype(np.int64))


def calibrate_int8(
    adaptor: Any,
    corpus_vectors: Any,
    dims: Sequence[int],
    chunk_size: int = 65536,
    max_rows: int | None = CALIBRATION_ROWS,
) -> dict[str, list[list[float]]]:
    """int8 ranges of the unit-normalised output prefix at each of ``dims``: ``{dim: [[lows], [highs]]}``.

    ``adaptor`` maps backbone vectors (``{"sentence_embedding": x}``, as in a SentenceTransformer) and
    ``corpus_vectors`` (an array or memory-mapped ``.npy``) is read ``chunk_size`` rows at a time. A corpus of more
    than ``max_rows`` documents is calibrated on ``max_rows`` evenly spaced ones (:func:`calibration_rows`): the
    adaptor's forward pass over every document cost 16 s of a 1M-vector fit, while the per-coordinate minimum and
    maximum of a quarter-million documents already bound nearly all of them (as ST's ``calibration_embeddings``
    do; values beyond clip to the end levels). The ranges are stored with the model (``int8_ranges`` of its
    metadata), so an index quantised later uses the scale the model was calibrated with.

    Example:
        ::

            ranges = calibrate_int8(adaptor, corpus_vectors, [384, 48])
            len(ranges["48"][0])
            # => 48
    """
    lows: dict[int, np.ndarray] = {}
    highs: dict[int, np.ndarray] = {}
    was_training = getattr(adaptor, "training", False)
    if hasattr(adaptor, "eval"):
        adaptor.eval()
    rows = calibration_rows(len(corpus_vectors), max_rows)
    with torch.no_grad():
        for start in range(0, len(rows), chunk_size):
            part = rows[start : start + chunk_size]
            chunk = (
                corpus_vectors[part[0] : part[-1] + 1] if len(part) == part[-1] - part[0] + 1 else corpus_vectors[part]
            )
            x = torch.from_numpy(np.array(chunk, dtype=np.float32))
            out = adaptor({"sentence_embedding": x})["sentence_embedding"].numpy()
            for dim in dims:
                prefix = normalised_prefix(out, dim)
                low, high = prefix.min(axis=0), prefix.max(axis=0)
                lows[dim] = low if dim not in lows else np.minimum(lows[dim], low)
                highs[dim] = high if dim not in highs else np.maximum(highs[dim], high)
    if was_training:
        adaptor.train()
    return {str(d): [lows[d].astype(np.float32).tolist(), highs[d].astype(np.float32).tolist()] for d in dims}


def normalised_prefix(vectors: np.ndarray, dim: int) -> np.ndarray:
    """The first ``dim`` coordinates of each row, scaled to unit length (the vectors cosine similarity compares)."""
    prefix = vectors[:, :dim]
    return (prefix / np.linalg.norm(prefix, axis=1, keepdims=True).clip(1e-12)).astype(np.float32, copy=False)


def stored_ranges(ranges: dict[str, list[list[float]]] | None, dim: int) -> np.ndarray | None:
    """The stored int8 ranges of ``dim`` as a ``(2, dim)`` array, or ``None`` when the model has none for it."""
    if not ranges or str(dim) not in ranges:
        return None
    value = np.asarray(ranges[str(dim)], dtype=np.float32)
    if value.shape != (2, dim) or not np.all(value[1] >= value[0]):
        raise ValueError(f"int8_ranges[{dim!r}] must be [[{dim} lows], [{dim} highs]] with lows <= highs")
    return value


def index_codes(prefix: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    """Quantised codes through ST's ``quantize_embeddings``, as floats ready for dot products (binary: ±1)."""
    from sentence_transformers.util.quantization import quantize_embeddings

    if precision == "float32":
        return prefix
    if ranges is not None:  # ST casts out-of-range values with wrap-around: clip queries to the corpus ranges first
        prefix = np.clip(prefix, ranges[0], ranges[1])
    codes = quantize_embeddings(prefix, precision=precision, ranges=ranges)
    if precision == "binary":
        bits = np.unpackbits(codes.view(np.uint8) ^ 0x80, axis=1)[:, : prefix.shape[1]]  # int8 offset undone
        return bits.astype(np.float32) * 2 - 1
    # int8 codes are scored as the values they stand for (code + 128) * step + start, as an int8 index does: the raw
    # codes carry a per-dimension offset that would distort every dot product.
    steps = (ranges[1] - ranges[0]) / 255
    return ((codes.astype(np.float32) + 128) * steps + ranges[0]).astype(np.float32)


def sign_bits(prefix: np.ndarray) -> np.ndarray:
    """The packed sign bits of unit-normalised rows, as ST's ``quantize_embeddings(..., precision="ubinary")``."""
    from sentence_transformers.util.quantization import quantize_embeddings

    return quantize_embeddings(prefix, precision="ubinary")


def int8_codes(prefix: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """ST's int8 codes of unit-normalised rows: ``(x − low) / step − 128`` with ``step = (high − low) / 255``."""
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1.0, steps)
    return np.clip(np.floor((prefix - ranges[0]) / steps) - 128, -128, 127).astype(np.int8)


def int8_values(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """The values int8 ``codes`` stand for (the inverse of :func:`int8_codes`, up to the step)."""
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1.0, steps)
    return (ranges[0] + (codes.astype(np.float32) + 128.0) * steps).astype(np.float32)


def bytes_per_vector(dim: int) -> dict[str, int]:
    """Bytes one ``dim``-d vector takes as float32, int8 and binary, measured through ST's ``quantize_embeddings``."""
    from sentence_transformers.util.quantization import quantize_embeddings

    sample = np.random.default_rng(0).standard_normal((4, dim)).astype(np.float32)
    out = {"float32": sample[0].nbytes}
    for precision in ("int8", "binary"):
        codes = quantize_embeddings(sample, precision=precision, calibration_embeddings=sample)
        out[precision] = int(codes.nbytes // len(codes))
    return out


def budget_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """At each byte budget of any Pareto point: each method's best row within that many bytes (``None`` if none).

    Example:
        ::

            for line in budget_table(rows):
                print(line["bytes"], {m: r and r["ndcg_at_10"] for m, r in line["best"].items()})
    """
    fronts = pareto_fronts(rows)
    budgets = sorted({r["bytes"] for front in fronts.values() for r in front})
    table = []
    for budget in budgets:
        best = {}
        for method, front in fronts.items():
            within = [r for r in front if r["bytes"] <= budget]
            best[method] = within[-1] if within else None
        table.append({"bytes": budget, "best": best})
    return table


def pareto_fronts(rows: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{method: its Pareto front}``, methods in the order they first appear in ``rows``."""
    methods = dict.fromkeys(r["method"] for r in rows)
    return {m: pareto_front([r for r in rows if r["method"] == m]) for m in methods}


def pareto_front(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that no row with as few or fewer bytes beats on NDCG@10, cheapest first."""
    front: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["bytes"], -r["ndcg_at_10"])):
        if not front or row["ndcg_at_10"] > front[-1]["ndcg_at_10"]:
            front.append(row)
    return front


def quantize_prefix(prefix: torch.Tensor, precision: str) -> torch.Tensor:
    """Unit-length codes of unit-length ``prefix`` rows as an index at ``precision`` stores them, straight-through.

    The forward pass gives the codes' own vectors (``binary``: the sign bits as ±1, the ``quantize_embeddings``
    binary code; ``int8``: its 256 levels per coordinate over the batch's range), so the similarities the losses
    compare are those of the codes; the backward pass is the identity (straight-through estimator), so the adaptor
    learns outputs whose codes keep the similarities. ``float32`` returns ``prefix`` unchanged.

    Example:
        ::

            import torch
            from st_matryoshka.quantization import quantize_prefix

            codes = quantize_prefix(torch.nn.functional.normalize(torch.randn(2, 8), dim=-1), "binary")
            print(sorted(set(codes.abs().flatten().tolist())))
            # => [0.3535533845424652]
    """
    if precision == "float32":
        return prefix
    if precision == "binary":
        scaled = prefix * prefix.shape[1] ** 0.5  # entries of order ±1
        bits = torch.where(scaled > 0, 1.0, -1.0).to(scaled.dtype)  # quantize_embeddings packs x > 0: zero is -1
        codes = scaled + (bits - scaled).detach()
    elif precision == "int8":  # quantize_embeddings' levels: floor((x − low) / step) in [0, 255], as the index stores
        low = prefix.detach().min(dim=0).values
        step = (prefix.detach().max(dim=0).values - low) / 255
        step = torch.where(step == 0, torch.ones_like(step), step)
        levels = torch.floor((prefix - low) / step).clamp(0, 255)
        codes = prefix + (levels * step + low - prefix).detach()
    else:
        raise ParameterError("precisions", f"precisions must be among {list(PRECISIONS)}, got {[precision]!r}")
    return F.normalize(codes, dim=-1)
