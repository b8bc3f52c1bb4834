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

from st_matryoshka.models import MatryoshkaAdaptor


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


def export_to_st_modules(model: SentenceTransformer) -> SentenceTransformer:
    """A new SentenceTransformer with every MatryoshkaAdaptor of ``model`` replaced by ST-native modules.

    Args:
        model: A model with linear adaptors.

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
        if isinstance(module, MatryoshkaAdaptor):
            modules.extend(adaptor_to_dense(module))
        elif type(module).__module__.startswith("st_matryoshka."):
            raise ValueError(f"{type(module).__name__} has no ST-native equivalent")
        else:
            modules.append(module)
    return SentenceTransformer(modules=modules, device=str(model.device), model_card_data=model.model_card_data)
