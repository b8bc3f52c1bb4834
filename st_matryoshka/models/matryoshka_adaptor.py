"""Residual Matryoshka-Adaptor module (Yoon et al. 2024)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from st_matryoshka.models.base import StMatryoshkaModule

REFERENCE_KEY = "st_matryoshka.reference_embedding"
"""Features key holding the adaptor's (rotated, normalised) input during training; losses compare against it."""

RESIDUAL_KEY = "st_matryoshka.residual"
"""Features key holding the body's residual ``f(z)`` during training (the reconstruction term penalises it)."""

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def principal_axes(moment: torch.Tensor) -> torch.Tensor:
    """The principal axes of a symmetric second-moment matrix, as rows, largest eigenvalue first.

    Each axis has its largest entry positive, so the same data always gives the same axes.
    """
    _, vectors = torch.linalg.eigh(moment)
    axes = vectors.flip(1).T
    signs = torch.sign(axes.gather(1, axes.abs().argmax(dim=1, keepdim=True)))
    return axes * signs


def itq_rotation(codes: torch.Tensor, iterations: int = 50) -> torch.Tensor:
    """The orthogonal ``R`` that brings ``codes @ R`` close to its own signs (ITQ, Gong & Lazebnik 2011).

    Iterative quantisation alternates ``B = sign(V R)`` and the orthogonal Procrustes solution of
    ``min_R ||B − V R||``, starting from the identity, so the same ``codes`` always give the same ``R``. Rotating a
    block of coordinates by it spreads the block's variance over its coordinates, so each sign bit carries a similar
    share of the block's information; dot products inside the block are unchanged.

    Args:
        codes: ``(n, c)`` rows (float64 recommended).
        iterations: Alternations.

    Returns:
        The ``(c, c)`` rotation, same dtype as ``codes``.

    Example:
        ::

            import torch
            from st_matryoshka.models.matryoshka_adaptor import itq_rotation

            v = torch.randn(500, 8, dtype=torch.float64) * torch.tensor([4.0, 2, 1, 1, 0.5, 0.5, 0.1, 0.1])
            r = itq_rotation(v)
            print(torch.allclose(r @ r.T, torch.eye(8, dtype=torch.float64)))
            # => True
    """
    rotation = torch.eye(codes.shape[1], dtype=codes.dtype)
    for _ in range(iterations):
        u, _, vt = torch.linalg.svd(codes.T @ torch.sign(codes @ rotation))
        rotation = u @ vt
    return rotation


def evenly_spaced(embeddings: torch.Tensor | Any, sample: int) -> torch.Tensor:
    """At most ``sample`` evenly spaced rows of ``embeddings`` (tensor, array or memory map) as a float tensor."""
    n = embeddings.shape[0]
    rows = np.linspace(0, n - 1, min(n, sample)).round().astype(np.int64)
    if isinstance(embeddings, torch.Tensor):
        return embeddings[torch.from_numpy(rows)]
    return torch.from_numpy(np.array(embeddings[rows], dtype=np.float32))


class MatryoshkaAdaptor(StMatryoshkaModule):
    """Residual adaptor ``ê = z + f(z)`` that makes every prefix ``ê[:m]`` a good ``m``-d embedding.

    Appended after Pooling (before Normalize), it reads ``features["sentence_embedding"]`` and writes the adapted
    embedding back under the same key, at full width: ST's ``truncate_dim`` chooses the size. The input is first
    L2-normalised (``normalize_input``), so pooled outputs and provider vectors that were already normalised give the
    same result, and then rotated by a fixed orthogonal matrix (``use_rotation``), identity unless set by
    :meth:`init_rotation`. ``f`` is an MLP with ``num_layers`` hidden layers whose last layer starts at zero, so
    the module is the identity map (up to the rotation) at initialisation; ``num_layers=0`` makes ``f`` linear.

    Initialising the rotation from the corpus' principal axes (:meth:`init_rotation`, uncentred) orders the
    dimensions by variance before training. Because it is orthogonal, full-width cosine similarities are unchanged,
    and the prefixes start from a PCA projection; the benchmarks ablate this choice. Input ``x`` goes through
    ``z = R · (normalize(x) − center)`` (each step as configured), then ``ê = z + f(z)``.

    Args:
        embedding_dim: Width ``D`` of the incoming embedding (and of the output).
        hidden_dim: Width of the hidden layers of ``f``; ``None`` means ``embedding_dim``.
        num_layers: Number of hidden layers of ``f``; ``0`` makes ``f`` a single linear map.
        activation: Activation between layers: one of ``"gelu"``, ``"relu"``, ``"silu"``, ``"tanh"``.
        normalize_input: L2-normalise the input before the rotation and ``f``.
        use_rotation: Apply the fixed orthogonal ``rotation`` buffer before ``f``.
        center_input: Subtract the fixed ``center`` buffer (set by :meth:`init_rotation` to the corpus mean) before
            the rotation. This changes full-width similarities (centring helps some corpora and hurts others, see
            BENCHMARKS.md), so it is off by default.
        bit_thresholds: Hold a trainable per-coordinate ``thresholds`` vector ``t`` subtracted from the output,
            ``ê = z + f(z) − t``: the bias before the sign of a binary code (``quantize_embeddings`` keeps ``ê > 0``),
            set from the corpus by :meth:`init_thresholds` and trained with the rest in quantisation-aware training.
            Exported and saved models carry it, so a plain ``SentenceTransformer`` reproduces the codes.
        base_block: The last ``base_block`` output coordinates are the base model's own: coordinate ``i`` of the
            (normalised) input minus ``base_center[i]`` (zero: the base model's plain sign bits; the corpus mean: its
            centred ones), the identity map with a bias, in place of what the rest of the map gives there. Set after
            binary training by the code guard (:func:`st_matryoshka.engine.guard_codes`) when it makes the full-width
            codes better; every prefix that ends before the block is unchanged. ``0`` (default): no such block.

    References:
        Yoon et al., "Matryoshka-Adaptor: Unsupervised and Supervised Tuning for Smaller Embedding Dimensions",
        EMNLP 2024, https://arxiv.org/abs/2407.20243

    Example:
        ::

            import torch
            from st_matryoshka.models import MatryoshkaAdaptor

            adaptor = MatryoshkaAdaptor(embedding_dim=8, num_layers=1).eval()
            x = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
            out = adaptor({"sentence_embedding": x})["sentence_embedding"]
            print(out.shape, torch.allclose(out, x))
            # => torch.Size([2, 8]) True
    """

    config_keys: list[str] = [
        "embedding_dim",
        "hidden_dim",
        "num_layers",
        "activation",
        "normalize_input",
        "use_rotation",
        "center_input",
        "bit_thresholds",
        "base_block",
    ]
    config_defaults: dict[str, Any] = {"bit_thresholds": False, "base_block": 0}  # added after 0.1.0: written if set

    def __init__(
        self,
        embedding_dim: int,
        hidden_dim: int | None = None,
        num_layers: int = 1,
        activation: str = "gelu",
        normalize_input: bool = True,
        use_rotation: bool = True,
        center_input: bool = False,
        bit_thresholds: bool = False,
        base_block: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(embedding_dim, int) or embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be a positive int, got {embedding_dim!r}")
        if hidden_dim is not None and (not isinstance(hidden_dim, int) or hidden_dim <= 0):
            raise ValueError(f"hidden_dim must be a positive int or None, got {hidden_dim!r}")
        if not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an int >= 0, got {num_layers!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not isinstance(base_block, int) or isinstance(base_block, bool) or not 0 <= base_block < embedding_dim:
            raise ValueError(f"base_block must be an int in [0, {embedding_dim}), got {base_block!r}")
        if base_block and not normalize_input:
            raise ValueError("base_block needs normalize_input=True (the block is the base model's unit vector)")
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.activation = activation
        self.normalize_input = normalize_input
        self.use_rotation = use_rotation
        self.center_input = center_input
        self.bit_thresholds = bool(bit_thresholds)
        self.base_block = base_block

        width = hidden_dim or embedding_dim
        layers: list[nn.Module] = []
        in_dim = embedding_dim
        for _ in range(num_layers):
            layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
            in_dim = width
        last = nn.Linear(in_dim, embedding_dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.residual = nn.Sequential(*layers, last)
        self.register_buffer("rotation", torch.eye(embedding_dim))
        self.register_buffer("center", torch.zeros(embedding_dim))
        if bit_thresholds:
            self.thresholds = nn.Parameter(torch.zeros(embedding_dim))
        if base_block:
            self.register_buffer("base_center", torch.zeros(base_block))

    @torch.no_grad()
    def init_rotation(
        self,
        embeddings: torch.Tensor | Any,
        chunk_size: int = 65536,
        balance_blocks: Sequence[int] | None = None,
        balance_sample: int = 100_000,
    ) -> None:
        """Set ``rotation`` to the principal axes of ``embeddings`` (largest variance first).

        With ``center_input`` the corpus mean is stored in ``center`` and subtracted first (classic PCA); otherwise
        the axes are uncentred and full-width cosine similarities stay exactly those of the backbone. Only the
        ``(D, D)`` second-moment matrix is built, accumulated over ``chunk_size`` rows at a time, so memory does not
        grow with the number of rows (a memory-mapped ``.npy`` works).

        With ``balance_blocks`` (prefix sizes, e.g. the trained dims), the coordinates between consecutive sizes
        (``[0, 24)``, ``[24, 48)``, ..., ``[192, D)``) are then rotated among themselves by :func:`itq_rotation`,
        fit on ``balance_sample`` evenly spaced rows. A principal-axes start gives the first coordinates of a block
        far more variance than its last ones, yet every sign bit of a binary code counts the same in a Hamming
        distance; the block rotation evens that out. It is orthogonal inside each block, so the similarities of every
        prefix that ends at a block boundary are those of the principal-axes start.

        Args:
            embeddings: ``(n, embedding_dim)`` backbone embeddings of the corpus (tensor or array).
            chunk_size: Rows read at a time.
            balance_blocks: Prefix sizes whose blocks are balanced for sign bits; ``None``: principal axes only.
            balance_sample: Rows the block rotations are fit on at most.
        """
        if not self.use_rotation:
            raise ValueError("init_rotation needs use_rotation=True, got use_rotation=False")
        if len(embeddings.shape) != 2 or embeddings.shape[1] != self.embedding_dim or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must have shape (n, {self.embedding_dim}), got {tuple(embeddings.shape)}")
        n, dim = embeddings.shape
        moment = torch.zeros(dim, dim, dtype=torch.float64)
        total = torch.zeros(dim, dtype=torch.float64)
        for start in range(0, n, chunk_size):
            rows = embeddings[start : start + chunk_size]
            is_tensor = isinstance(rows, torch.Tensor)
            x = rows.to(torch.float64) if is_tensor else torch.from_numpy(np.array(rows, dtype=np.float64))
            if self.normalize_input:
                x = F.normalize(x, dim=-1)
            moment += x.T @ x
            total += x.sum(dim=0)
        if self.center_input:
            mean = total / n
            self.center.copy_(mean.to(self.center.dtype))
            moment -= n * torch.outer(mean, mean)
        self.rotation.copy_(principal_axes(moment).to(self.rotation.dtype))
        if balance_blocks is not None:
            bounds = sorted({0, dim, *balance_blocks})
            if bounds[-1] != dim or bounds[0] != 0 or any(not isinstance(b, int) for b in bounds):
                raise ValueError(f"balance_blocks must be ints in (0, {dim}], got {list(balance_blocks)!r}")
            z = self.reference(evenly_spaced(embeddings, balance_sample).to(self.rotation)).to(torch.float64)
            rotation = self.rotation.to(torch.float64).clone()
            for start, end in zip(bounds, bounds[1:]):
                block = itq_rotation(z[:, start:end])
                rotation[start:end] = block.T @ rotation[start:end]
            self.rotation.copy_(rotation.to(self.rotation.dtype))

    @torch.no_grad()
    def init_thresholds(
        self, embeddings: torch.Tensor | Any, statistic: str = "median", sample: int = 100_000
    ) -> None:
        """Set ``thresholds`` to the ``statistic`` (``median`` or ``mean``) of each output coordinate over the corpus.

        Each sign bit then splits the corpus (the median: in halves), where a threshold at zero spends the first
        bit of an uncentred principal-axes start on the mean direction, nearly constant over the corpus. Computed on
        ``sample`` evenly spaced rows of ``embeddings`` (backbone vectors), through the module as it is now.

        Args:
            embeddings: ``(n, embedding_dim)`` backbone embeddings of the corpus (tensor or array).
            statistic: ``median`` (each bit set for half the corpus) or ``mean`` (centred sign bits).
            sample: Rows it is computed on at most.
        """
        if not self.bit_thresholds:
            raise ValueError("init_thresholds needs bit_thresholds=True, got bit_thresholds=False")
        if statistic not in ("median", "mean"):
            raise ValueError(f"statistic must be 'median' or 'mean', got {statistic!r}")
        x = evenly_spaced(embeddings, sample).to(self.rotation)
        self.thresholds.zero_()
        was_training = self.training
        out = self.eval().adapt(self.reference(x))
        self.train(was_training)
        value = out.median(dim=0).values if statistic == "median" else out.mean(dim=0)
        self.thresholds.copy_(value)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed part of the map, ``z = R · (normalize(x) − center)``: backbone geometry, nothing trainable.

        Normalisation is scale-free: rows whose largest entry is below 1e-6 or above 1e6 are divided by it first, so
        vectors scaled by 1e-15 or 1e20 (whose squared norm underflows or overflows float32) map as unscaled ones do;
        other rows are untouched, bit for bit.
        """
        x = self.normalized(x)
        if self.center_input:
            x = x - self.center
        if self.use_rotation:
            x = x @ self.rotation.T
        return x

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` L2-normalised (scale-free, see :meth:`reference`) with ``normalize_input``; ``x`` otherwise."""
        if not self.normalize_input:
            return x
        scale = x.detach().abs().amax(dim=-1, keepdim=True)
        extreme = ((scale < 1e-6) | (scale > 1e6)) & (scale > 0)  # elementwise: no device sync per batch
        x = torch.where(extreme, x / scale.clamp_min(torch.finfo(x.dtype).tiny), x)
        return F.normalize(x, dim=-1)

    def with_base_block(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``y`` with its last ``base_block`` coordinates replaced by the normalised input's, minus ``base_center``."""
        if not self.base_block:
            return y
        start = self.embedding_dim - self.base_block
        return torch.cat([y[..., :start], self.normalized(x)[..., start:] - self.base_center], dim=-1)

    @torch.no_grad()
    def set_base_block(self, size: int, center: torch.Tensor | None = None) -> None:
        """Make the last ``size`` output coordinates the base model's own, minus ``center`` (``None``: plain bits).

        ``size=0`` removes the block. The module's ``base_block`` and its ``base_center`` buffer change together,
        so it saves and loads as built with ``base_block=size``.
        """
        if not isinstance(size, int) or not 0 <= size < self.embedding_dim:
            raise ValueError(f"size must be an int in [0, {self.embedding_dim}), got {size!r}")
        if size and not self.normalize_input:
            raise ValueError("base_block needs normalize_input=True (the block is the base model's unit vector)")
        if center is not None and tuple(center.shape) != (size,):
            raise ValueError(f"center must have shape ({size},), got {tuple(center.shape)}")
        if hasattr(self, "base_center"):
            del self.base_center
        self.base_block = size
        if size:
            value = torch.zeros(size) if center is None else center.detach().float().cpu().clone()
            self.register_buffer("base_center", value.to(self.rotation.device))

    def head(self, y: torch.Tensor) -> torch.Tensor:
        """Maps applied after the residual body; none here (subclasses add reduction stages)."""
        return y

    def adapt(self, z: torch.Tensor) -> torch.Tensor:
        """The trainable part of the map, from :meth:`reference` output to the adapted embedding."""
        return self.threshold(self.head(z + self.residual(z)))

    def threshold(self, y: torch.Tensor) -> torch.Tensor:
        """``y − thresholds`` with ``bit_thresholds``; ``y`` otherwise."""
        return y - self.thresholds if self.bit_thresholds else y

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        z = self.reference(features["sentence_embedding"])
        residual = self.residual(z)
        if self.training:
            features[REFERENCE_KEY] = z
            features[RESIDUAL_KEY] = residual
        out = self.threshold(self.head(z + residual))
        features["sentence_embedding"] = self.with_base_block(out, features["sentence_embedding"])
        return features

    def parameter_groups(self, lr: float, stage_lr_multiplier: float = 1.0) -> list[dict[str, Any]]:
        """Optimizer groups: every parameter at ``lr`` (SMEC's stages take their own multiplier)."""
        return [{"params": list(self.parameters()), "lr": lr}]

    def get_embedding_dimension(self) -> int:
        return self.embedding_dim
