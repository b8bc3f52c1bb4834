"""SMEC adaptor (Zhang et al. 2025): a Matryoshka-Adaptor body followed by sequential reduction stages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from st_matryoshka.models.matryoshka_adaptor import MatryoshkaAdaptor, principal_axes


def plan_stages(embedding_dim: int, dims: Sequence[int], allow_any_dims: bool = False) -> list[list[int]]:
    """The SMRL stages ``[start, end, keep]`` that reduce ``embedding_dim`` to each of ``dims`` in turn.

    Stage ``s`` reduces the prefix of the previous dim ``d_{s-1}`` (the full width for the first) to ``d_s``:
    ``[0, d_{s-1}, d_s]``. Without ``allow_any_dims`` every dim must be exactly half the previous one (the
    paper's ``D → D/2 → D/4`` path).

    Raises:
        ValueError: naming the first dim that breaks the halving path or is not in ``(0, embedding_dim)``.
    """
    dims = list(dims)
    if not dims:
        raise ValueError(f"dims must name at least one dim below {embedding_dim}, got {dims!r}")
    previous = embedding_dim
    stages = []
    for dim in dims:
        if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim < previous:
            raise ValueError(f"dims must be ints strictly descending below {embedding_dim}, got {dims!r}")
        if not allow_any_dims and dim * 2 != previous:
            raise ValueError(
                f"dims: {dim} is not half of {previous}; SMRL halves the width at every stage "
                f"({embedding_dim} → {embedding_dim // 2} → ...). Pass allow_any_dims=True for "
                f"other steps, got dims={dims!r}"
            )
        stages.append([0, previous, dim])
        previous = dim
    return stages


def _initial_logits(width: int) -> torch.Tensor:
    """Descending ADS logits: the untrained selection keeps the first ``keep`` dims of the block, in order."""
    return torch.linspace(2.0, -2.0, width)


class SMECAdaptor(MatryoshkaAdaptor):
    """Matryoshka-Adaptor body plus SMEC reduction stages; every trained dim is a prefix of the output.

    The body is :class:`MatryoshkaAdaptor` (``ê = z + f(z)``, full width). Then each stage ``[start, end, keep]``
    acts on the block ``y[start:end]`` of the running output: an optional orthogonal rotation (``stage_rotation``,
    ``Q = exp(A − Aᵀ) · B`` with a learnable generator ``A``, zero at start, and a fixed basis buffer ``B``, identity
    unless set by :meth:`init_stage`) and, with ``use_ads``, Adaptive Dimension
    Selection: learnable importance logits over the block, the ``keep`` most important dimensions moved to the front
    of the block (most important first), the rest after them. The stage's dim is ``start + keep``, and the output
    stays full width, so ``model.encode(texts, truncate_dim=dim)`` returns exactly that stage's embedding.

    Design choices where the paper (arXiv 2510.12474, sec. 3.2–3.3) leaves room:

    - **Prefix-safe stages.** A stage only permutes and rotates its block, an orthogonal map, so all cosine
      similarities of every larger prefix are unchanged by it: training a smaller dim cannot degrade a larger one.
      A later stage therefore learns a linear orthogonal projection of the frozen previous embedding; all
      non-linearity lives in the body, trained in the first stage.
    - **ADS in training** draws Gumbel noise once per optimizer step (:meth:`resample_noise`, so the query and
      document columns of a batch select the same dimensions), selects the top ``keep`` of
      ``logits + temperature · G``, and passes gradients to the logits with a straight-through sigmoid relaxation of
      that top-k (``sigmoid((score − threshold) / temperature)``). At inference the selection is the deterministic
      top-k of the logits (a permutation: no dimension twice).
    - **Stages start from PCA.** :meth:`init_stage` sets a stage's basis ``B`` to the principal axes of its input
      block over the corpus (largest variance first, uncentred like :meth:`init_rotation`), so before training the
      stage is PCA of the frozen previous embedding, not its truncation; training then rotates from there. The
      training functions call it as each stage starts (``SMECTrainingConfig.stage_pca_init``).
    - **Continued training** adds a stage with :meth:`add_stage`: a smaller dim acts on the smallest trained
      prefix, an intermediate dim (e.g. D/3) on the block between its trained neighbours, so every smaller trained
      prefix is untouched bit for bit.

    Selection and rotations compose to one fixed orthogonal matrix (:meth:`stage_matrix`), which
    :func:`st_matryoshka.native.native_modules` writes as ST's own ``Dense``.

    Args:
        embedding_dim: Width ``D`` of the incoming embedding (and of the output).
        stages: ``[start, end, keep]`` per stage in training order; see :func:`plan_stages`.
        use_ads: Learn which dimensions each stage keeps; otherwise a stage keeps the first ``keep``.
        stage_rotation: Give each stage a learnable orthogonal rotation of its block.
        normalize_output: L2-normalise the body's output before the stages. The stages are orthogonal, so the
            output is unit length and a ``Normalize`` module after the adaptor is redundant (the training
            functions leave it out). Then an extension leaves the outputs outside its block bit-identical.
        hidden_dim: See :class:`MatryoshkaAdaptor`.
        num_layers: See :class:`MatryoshkaAdaptor`.
        activation: See :class:`MatryoshkaAdaptor`.
        normalize_input: See :class:`MatryoshkaAdaptor`.
        use_rotation: See :class:`MatryoshkaAdaptor` (the fixed PCA rotation before the body).
        center_input: See :class:`MatryoshkaAdaptor`.

    References:
        Zhang et al., "SMEC: Rethinking Matryoshka Representation Learning for Retrieval Embedding Compression",
        https://arxiv.org/abs/2510.12474

    Example:
        ::

            import torch
            from st_matryoshka.models import SMECAdaptor
            from st_matryoshka.models.smec import plan_stages

            adaptor = SMECAdaptor(8, stages=plan_stages(8, [4, 2])).eval()
            out = adaptor({"sentence_embedding": torch.randn(3, 8)})["sentence_embedding"]
            print(out.shape, adaptor.trained_dims)
            # => torch.Size([3, 8]) [8, 4, 2]
    """

    config_keys: list[str] = [
        "embedding_dim",
        "stages",
        "use_ads",
        "stage_rotation",
        "normalize_output",
        "hidden_dim",
        "num_layers",
        "activation",
        "normalize_input",
        "use_rotation",
        "center_input",
    ]

    def __init__(
        self,
        embedding_dim: int,
        stages: Sequence[Sequence[int]] | None = None,
        use_ads: bool = True,
        stage_rotation: bool = True,
        normalize_output: bool = True,
        hidden_dim: int | None = None,
        num_layers: int = 1,
        activation: str = "gelu",
        normalize_input: bool = True,
        use_rotation: bool = True,
        center_input: bool = False,
    ) -> None:
        super().__init__(
            embedding_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            activation=activation,
            normalize_input=normalize_input,
            use_rotation=use_rotation,
            center_input=center_input,
        )
        self.use_ads = bool(use_ads)
        self.stage_rotation = bool(stage_rotation)
        self.normalize_output = bool(normalize_output)
        self.stages: list[list[int]] = []
        self.importance = nn.ParameterList()
        self.stage_skew = nn.ParameterList()
        self.temperature = 1.0
        self._noise: dict[int, torch.Tensor] = {}
        self._step_cache: dict[int, torch.Tensor] | None = None
        self._matrix_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for stage in stages or []:
            self._append_stage(list(stage))

    def _append_stage(self, stage: list[int]) -> int:
        if len(stage) != 3 or any(not isinstance(v, int) or isinstance(v, bool) for v in stage):
            raise ValueError(f"stages must be [start, end, keep] int triples, got {stage!r}")
        start, end, keep = stage
        if not 0 <= start < end <= self.embedding_dim or not 0 < keep < end - start:
            raise ValueError(
                f"stage [start, end, keep] must have 0 <= start < end <= {self.embedding_dim} and "
                f"0 < keep < end - start, got {stage!r}"
            )
        dim = start + keep
        if dim in self.trained_dims:
            raise ValueError(f"dim {dim} is already trained (trained dims: {self.trained_dims})")
        width = end - start
        self.stages.append([start, end, keep])
        self.importance.append(nn.Parameter(_initial_logits(width) if self.use_ads else torch.zeros(0)))
        self.stage_skew.append(nn.Parameter(torch.zeros(width, width) if self.stage_rotation else torch.zeros(0)))
        index = len(self.stages) - 1
        self.register_buffer(f"stage_basis_{index}", torch.eye(width) if self.stage_rotation else torch.zeros(0))
        return index

    @property
    def trained_dims(self) -> list[int]:
        """The full width and every stage's dim, descending: the prefixes this adaptor was built for."""
        return sorted({self.embedding_dim, *(start + keep for start, _, keep in self.stages)}, reverse=True)

    def add_stage(self, dim: int) -> int:
        """Add a stage producing ``dim``, placed between its trained neighbours; returns the stage's index.

        A dim below the smallest trained one reduces that prefix (``[0, smallest, dim]``); an intermediate dim
        re-orders the block between the next smaller trained dim ``lo`` and the next larger ``hi``
        (``[lo, hi, dim − lo]``), so prefixes up to ``lo`` stay bit-identical.
        """
        if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim < self.embedding_dim:
            raise ValueError(f"dim must be an int in (0, {self.embedding_dim}), got {dim!r}")
        trained = self.trained_dims
        lo = max([d for d in trained if d < dim], default=0)
        hi = min(d for d in trained if d > dim) if dim not in trained else dim
        return self._append_stage([lo, hi, dim - lo])

    def stage_basis(self, index: int) -> torch.Tensor:
        """The fixed basis ``B`` of stage ``index``'s rotation (``Q = exp(A − Aᵀ) · B``)."""
        return getattr(self, f"stage_basis_{index}")

    @torch.no_grad()
    def init_stage(self, index: int, embeddings: torch.Tensor | np.ndarray, chunk_size: int = 8192) -> None:
        """Start stage ``index`` as PCA of its input block: the block's principal axes first, largest variance first.

        Runs the body and the stages before ``index`` on ``embeddings`` (in eval mode), takes the uncentred second
        moment of the stage's block, and sets the stage's basis to its eigenvectors; the rotation generator goes back
        to zero and the ADS logits to their initial descending ramp, so the stage keeps the top ``keep`` principal
        directions until training moves it. Nothing outside the stage changes.

        Args:
            index: The stage to initialise; it needs ``stage_rotation=True``.
            embeddings: ``(n, embedding_dim)`` backbone embeddings of the corpus, e.g. from the embedding cache.
            chunk_size: Rows run through the body at a time.

        Raises:
            ValueError: if the adaptor has no stage rotations, ``index`` is not a stage, or ``embeddings`` has the
                wrong shape.
        """
        if not self.stage_rotation:
            raise ValueError("init_stage needs stage_rotation=True, got stage_rotation=False")
        if not isinstance(index, int) or not 0 <= index < len(self.stages):
            raise ValueError(f"index must name one of the {len(self.stages)} stages, got {index!r}")
        shape = tuple(embeddings.shape)
        if len(shape) != 2 or shape[0] == 0 or shape[1] != self.embedding_dim:
            raise ValueError(f"embeddings must have shape (n > 0, {self.embedding_dim}), got {shape}")
        start, end, _ = self.stages[index]
        basis = self.stage_basis(index)
        was_training = self.training
        self.eval()
        try:
            moment = torch.zeros(end - start, end - start, dtype=torch.float64, device=basis.device)
            for begin in range(0, shape[0], chunk_size):
                rows = embeddings[begin : begin + chunk_size]  # a memory-mapped corpus is read a chunk at a time
                rows = torch.from_numpy(np.array(rows)) if isinstance(rows, np.ndarray) else torch.as_tensor(rows)
                z = self.reference(rows.to(device=basis.device, dtype=basis.dtype))
                block = self.head(z + self.residual(z), upto=index)[:, start:end].to(torch.float64)
                moment += block.T @ block
        finally:
            self.train(was_training)
        basis.copy_(principal_axes(moment).to(basis.dtype))
        self.stage_skew[index].zero_()
        if self.use_ads:
            self.importance[index].copy_(_initial_logits(end - start))
        self._matrix_cache.pop(index, None)
        if self._step_cache is not None:
            self._step_cache.pop(index, None)

    def stage_parameters(self, index: int) -> list[nn.Parameter]:
        """The learnable tensors of stage ``index`` (its importance logits and rotation generator, when used)."""
        return [p for p in (self.importance[index], self.stage_skew[index]) if p.numel() > 0]

    def body_parameters(self) -> list[nn.Parameter]:
        return list(self.residual.parameters())

    def parameter_groups(self, lr: float, stage_lr_multiplier: float = 1.0) -> list[dict[str, Any]]:
        """Optimizer groups: the stages' own parameters at ``stage_lr_multiplier`` times ``lr``, the rest at ``lr``."""
        stage = {id(p) for i in range(len(self.stages)) for p in self.stage_parameters(i)}
        groups = [
            {"params": [p for p in self.parameters() if id(p) not in stage], "lr": lr},
            {"params": [p for p in self.parameters() if id(p) in stage], "lr": lr * stage_lr_multiplier},
        ]
        return [g for g in groups if g["params"]]

    def resample_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw fresh Gumbel noise for every stage whose logits are being trained (call once per optimizer step).

        It also starts a per-step cache of the rotation matrices, so the columns of one batch share them; without
        calls to this method nothing is cached.
        """
        self._noise = {}
        self._step_cache = {}
        for i, logits in enumerate(self.importance):
            if logits.numel() > 0 and logits.requires_grad:
                u = torch.rand(logits.shape, generator=generator).clamp(1e-9, 1 - 1e-9)
                self._noise[i] = (-torch.log(-torch.log(u))).to(logits.device)

    def end_steps(self) -> None:
        """Drop the per-step rotation cache started by :meth:`resample_noise` (call when training ends)."""
        self._step_cache = None

    def _rotation(self, index: int) -> torch.Tensor:
        skew = self.stage_skew[index]
        if torch.is_grad_enabled() and skew.requires_grad:
            # Within one optimizer step (between two resample_noise calls) every column reuses one graph node.
            if self._step_cache is not None and index in self._step_cache:
                return self._step_cache[index]
            upper = skew.triu(1)
            matrix = torch.linalg.matrix_exp(upper - upper.T) @ self.stage_basis(index)
            if self._step_cache is not None:
                self._step_cache[index] = matrix
            return matrix
        # Keyed by the generator's values: fused optimizers update parameters without bumping ``_version``.
        # (init_stage and load_state_dict, which change the basis, drop the entry.)
        cached = self._matrix_cache.get(index)
        if cached is None or cached[0].device != skew.device or not torch.equal(cached[0], skew.detach()):
            with torch.inference_mode(False), torch.no_grad():  # usable later in autograd, e.g. after evaluation
                upper = skew.triu(1)
                cached = (skew.detach().clone(), torch.linalg.matrix_exp(upper - upper.T) @ self.stage_basis(index))
            self._matrix_cache[index] = cached
        return cached[1]

    def _order(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The block's permutation (kept dims first, most important first) and the straight-through gate."""
        keep = self.stages[index][2]
        logits = self.importance[index]
        score = logits
        noise = self._noise.get(index) if self.training else None
        if noise is not None:
            score = logits + self.temperature * noise
        order = torch.argsort(score.detach(), descending=True, stable=True)
        gate = None
        if self.training and torch.is_grad_enabled() and logits.requires_grad:
            ranked = score.detach()[order]
            threshold = (ranked[keep - 1] + ranked[keep]) / 2
            soft = torch.sigmoid((score - threshold) / self.temperature)[order]
            gate = 1.0 + soft - soft.detach()
        return order, gate

    def apply_stages(self, y: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Run stages ``0 .. upto-1`` (all by default) on body outputs ``y``."""
        for i, (start, end, _) in enumerate(self.stages[:upto]):
            block = y[:, start:end]
            if self.stage_rotation:
                block = block @ self._rotation(i).T
            if self.use_ads:
                order, gate = self._order(i)
                block = block[:, order]
                if gate is not None:
                    block = block * gate
            y = torch.cat([y[:, :start], block, y[:, end:]], dim=1)
        return y

    def head(self, y: torch.Tensor, upto: int | None = None) -> torch.Tensor:
        """Body output ``y`` → output: normalised (with ``normalize_output``), then stages ``0 .. upto-1``."""
        if self.normalize_output:
            y = F.normalize(y, dim=-1)
        return self.apply_stages(y, upto=upto)

    @torch.no_grad()
    def stage_matrix(self) -> torch.Tensor:
        """The fixed ``(D, D)`` orthogonal matrix ``M`` of all stages at inference: output ``= M · body``."""
        was_training = self.training
        self.eval()
        try:
            eye = torch.eye(self.embedding_dim, device=self.rotation.device, dtype=self.rotation.dtype)
            return self.apply_stages(eye).T.contiguous()
        finally:
            self.train(was_training)

    def body(self) -> MatryoshkaAdaptor:
        """A :class:`MatryoshkaAdaptor` with this adaptor's body weights (output before stages and normalisation)."""
        config = {key: getattr(self, key) for key in MatryoshkaAdaptor.config_keys}
        body = MatryoshkaAdaptor(**config)
        state = {k: v for k, v in self.state_dict().items() if k in body.state_dict()}
        body.load_state_dict(state)
        return body.train(self.training)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        self._matrix_cache = {}
        if self.stage_rotation:
            # Models saved before stages had a basis rotated by exp(A − Aᵀ) alone: their basis is the identity.
            state_dict = dict(state_dict)
            for i, (start, end, _) in enumerate(self.stages):
                state_dict.setdefault(f"stage_basis_{i}", torch.eye(end - start))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
