"""Fold st_matryoshka modules into Sentence-Transformers' own modules where the maths allows.

A model whose adaptors are all linear (``num_layers=0``, e.g. the PCA baseline) becomes a plain
``[Transformer, Pooling, Normalize, Dense, ...]`` model that loads with ``SentenceTransformer(path)``: no
``trust_remote_code``, no st_matryoshka install.
"""

from __future__ import annotations

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Dense
from sentence_transformers.sentence_transformer.modules import Normalize

from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor


def adaptor_to_dense(adaptor: MatryoshkaAdaptor) -> list[torch.nn.Module]:
    """ST modules computing exactly what a linear ``adaptor`` computes: ``[Normalize?, Dense]``.

    With ``z = R (normalize(x) − c)`` and ``ê = z + W z + b``, the map is ``ê = A · normalize(x) + d`` with
    ``A = (I + W) R`` and ``d = b − A c``: one ``Dense`` with identity activation, after ST's ``Normalize`` when
    the adaptor normalises its input.

    Raises:
        ValueError: if the adaptor has hidden layers (``num_layers > 0``), which no Dense can express.
    """
    if adaptor.num_layers != 0:
        raise ValueError(f"only linear adaptors (num_layers=0) fold into Dense, got num_layers={adaptor.num_layers}")
    dim = adaptor.embedding_dim
    with torch.no_grad():
        linear = adaptor.residual[-1]
        rotation = adaptor.rotation if adaptor.use_rotation else torch.eye(dim)
        matrix = (torch.eye(dim) + linear.weight) @ rotation
        center = adaptor.center if adaptor.center_input else torch.zeros(dim)
        bias = linear.bias - matrix @ center
    dense = Dense(dim, dim, bias=True, activation_function=None, init_weight=matrix.clone(), init_bias=bias.clone())
    return [Normalize(), dense] if adaptor.normalize_input else [dense]


def stages_to_dense(adaptor: SMECAdaptor) -> Dense:
    """ST's ``Dense`` computing an SMEC adaptor's selection and rotation stages: ``y ↦ M y`` (no bias).

    ``M`` is the fixed orthogonal matrix of all stages at inference (:meth:`SMECAdaptor.stage_matrix`): ADS'
    deterministic top-k is a permutation, so it is a linear map like the rotations.
    """
    matrix = adaptor.stage_matrix()
    dim = adaptor.embedding_dim
    return Dense(dim, dim, bias=False, activation_function=None, init_weight=matrix.clone())


def smec_to_st_modules(adaptor: SMECAdaptor) -> list[torch.nn.Module]:
    """Modules computing what ``adaptor`` computes, with the stages as ST's ``Dense``.

    A linear body (``num_layers=0``) becomes ST modules only: ``[Normalize?, Dense, Normalize, Dense]`` (one
    ``Dense`` without ``normalize_output``). Otherwise the body stays an st_matryoshka :class:`MatryoshkaAdaptor`
    (:meth:`SMECAdaptor.body`) followed by ``Normalize`` and the stages' ``Dense``.

    Example:
        ::

            modules = smec_to_st_modules(adaptor)  # [MatryoshkaAdaptor, Dense] for an MLP body
    """
    body = adaptor.body().eval()
    stages = stages_to_dense(adaptor)
    between = [Normalize()] if adaptor.normalize_output else []
    if adaptor.num_layers != 0:
        return [body, *between, stages]
    if between:
        return [*adaptor_to_dense(body), *between, stages]
    *normalize, dense = adaptor_to_dense(body)
    with torch.no_grad():
        matrix = stages.linear.weight @ dense.linear.weight
        bias = stages.linear.weight @ dense.linear.bias
    dim = adaptor.embedding_dim
    folded = Dense(dim, dim, bias=True, activation_function=None, init_weight=matrix.clone(), init_bias=bias.clone())
    return [*normalize, folded]


def export_to_st_modules(model: SentenceTransformer) -> SentenceTransformer:
    """A new SentenceTransformer with every MatryoshkaAdaptor of ``model`` replaced by ST-native modules.

    Args:
        model: A model with linear adaptors; an SMEC adaptor with an MLP body keeps the body as a
            MatryoshkaAdaptor and exports its stages as ``Dense``.

    Returns:
        A model with the same outputs (up to float rounding) built only from ``sentence_transformers`` modules.

    Example:
        ::

            native = export_to_st_modules(model)  # model trained with --method pca
            native.save("runs/pca-native")
            SentenceTransformer("runs/pca-native").encode(["text"], truncate_dim=48)
    """
    modules: list[torch.nn.Module] = []
    for module in model:
        if isinstance(module, SMECAdaptor):
            modules.extend(smec_to_st_modules(module))
        elif isinstance(module, MatryoshkaAdaptor):
            modules.extend(adaptor_to_dense(module))
        elif type(module).__module__.startswith("st_matryoshka."):
            raise ValueError(f"{type(module).__name__} has no ST-native equivalent")
        else:
            modules.append(module)
    return SentenceTransformer(modules=modules, device=str(model.device), model_card_data=model.model_card_data)
