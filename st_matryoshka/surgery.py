"""Model surgery: where a SentenceTransformer's frozen backbone ends, attaching an adaptor, rebuilding a model.

Also the fast training model, :func:`fast_model`: cached backbone vectors in (a
:class:`~st_matryoshka.models.CachedEmbeddings` module) and the adaptor on top, so training and scoring never run
the transformer again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Module
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

from st_matryoshka._validation import ParameterError
from st_matryoshka.data import RetrievalData
from st_matryoshka.metadata import MatryoshkaMetadata
from st_matryoshka.model_card import MatryoshkaModelCardData, copy_card_data
from st_matryoshka.models import CachedEmbeddings, SMECAdaptor
from st_matryoshka.native import TrainableRecord, fold_modules


def trainable_of(model: SentenceTransformer) -> TrainableRecord | None:
    """The trainable adaptor of a native model in memory (:func:`native_model`), or ``None``."""
    return getattr(getattr(model, "model_card_data", None), "trainable", None)


def split_index(model: SentenceTransformer) -> int:
    """Where the frozen backbone ends.

    At the first st_matryoshka module, else at the native form of the model's trainable adaptor
    (:func:`native_model`), else before Normalize, else the end.

    Raises:
        ValueError: if the backbone part has no Pooling module.
    """
    modules = list(model)
    index = len(modules)
    record = trainable_of(model)
    ours = any(type(m).__module__.startswith("st_matryoshka.") for m in modules)
    if record is not None and not ours:
        index = record.indices[0]
    else:
        for i, module in enumerate(modules):
            if type(module).__module__.startswith("st_matryoshka.") or isinstance(module, Normalize):
                index = i
                break
    if not any(isinstance(m, Pooling) for m in modules[:index]):
        names = [type(m).__name__ for m in modules]
        raise ParameterError(
            "model", f"model: the model has no Pooling module before the adaptor position (modules: {names})"
        )
    return index


def backbone_of(model: SentenceTransformer) -> SentenceTransformer:
    """The frozen part of ``model`` as its own SentenceTransformer (sharing the modules, no copy)."""
    return SentenceTransformer(modules=list(model)[: split_index(model)], device=str(model.device))


def head_of(model: SentenceTransformer) -> list[torch.nn.Module]:
    """The modules after the backbone (adaptors, Normalize)."""
    return list(model)[split_index(model) :]


def backbone_dim(model: SentenceTransformer) -> int:
    for module in reversed(list(model)[: split_index(model)]):
        if hasattr(module, "get_embedding_dimension"):
            return int(module.get_embedding_dimension())
    raise ParameterError("model", "model: cannot tell the backbone's embedding width")


def with_adaptor(model: SentenceTransformer, adaptor: Module) -> SentenceTransformer:
    """A new SentenceTransformer: ``model``'s backbone, then ``adaptor``, then the rest (e.g. Normalize).

    The one way to attach an adaptor. Any st_matryoshka module already in ``model`` is replaced; a Normalize after
    an adaptor whose output is already unit-length (an SMEC adaptor with ``normalize_output``) is dropped.

    Example:
        ::

            from sentence_transformers import SentenceTransformer
            from st_matryoshka.models import MatryoshkaAdaptor
            from st_matryoshka.surgery import with_adaptor

            base = SentenceTransformer("all-MiniLM-L6-v2")
            model = with_adaptor(base, MatryoshkaAdaptor(384))
            print([type(m).__name__ for m in model])
            # => ['Transformer', 'Pooling', 'MatryoshkaAdaptor', 'Normalize']
    """
    modules = list(model)
    index = split_index(model)
    record = trainable_of(model)
    folded = set(record.indices) if record is not None else set()
    rest = [
        m
        for i, m in enumerate(modules)
        if i >= index and i not in folded and not type(m).__module__.startswith("st_matryoshka.")
    ]
    if isinstance(adaptor, SMECAdaptor) and adaptor.normalize_output:
        rest = [m for m in rest if not isinstance(m, Normalize)]
    return rebuild(model, [*modules[:index], adaptor, *rest], fresh_card_data(model))


def rebuild(
    model: SentenceTransformer, modules: Sequence[torch.nn.Module], card: MatryoshkaModelCardData | None = None
) -> SentenceTransformer:
    """A new SentenceTransformer of ``modules`` with ``model``'s prompts, similarity function and ``truncate_dim``.

    Its card data is ``card``, or a copy of ``model``'s st_matryoshka card data (never the same object: saving one
    model must not change another's card).
    """
    if card is None:
        source = model.model_card_data
        card = copy_card_data(source) if isinstance(source, MatryoshkaModelCardData) else fresh_card_data(model)
    return SentenceTransformer(
        modules=list(modules),
        device=str(model.device),
        model_card_data=card,
        prompts=dict(model.prompts),
        default_prompt_name=model.default_prompt_name,
        similarity_fn_name=model.similarity_fn_name,
        truncate_dim=model.truncate_dim,
    )


def native_model(model: SentenceTransformer) -> SentenceTransformer:
    """``model`` with its adaptor folded into Sentence-Transformers' own modules, for a native save.

    :func:`~st_matryoshka.native.fold_modules` does the folding; ``save`` then writes a folder that plain
    ``SentenceTransformer(path)`` loads.

    The new model's card data holds the trainable adaptor and the metadata, so ``save`` writes them beside the
    modules (``st_matryoshka_adaptor/``, ``st_matryoshka.json``). A model without an adaptor comes back as it is.

    Example:
        ::

            native = native_model(st_matryoshka.load_model("runs/scifact"))
            print([type(m).__name__ for m in native])
            # => ['Transformer', 'Pooling', 'Normalize', 'Dense', 'Dense', 'Normalize']
    """
    modules, record = fold_modules(list(model))
    if record is None:
        return model
    source = model.model_card_data
    card = copy_card_data(source) if isinstance(source, MatryoshkaModelCardData) else fresh_card_data(model)
    card.trainable = record
    if card.matryoshka is None:
        meta = getattr(record.module, "matryoshka_metadata", None)
        if isinstance(meta, dict):
            meta = MatryoshkaMetadata.from_dict(meta, source="the model's st_matryoshka.json")
        card.matryoshka = meta if isinstance(meta, MatryoshkaMetadata) else None
    return rebuild(model, modules, card)


def fresh_card_data(model: SentenceTransformer) -> MatryoshkaModelCardData:
    """New card data for a model derived from ``model`` (never the base model's own object), keeping its language."""
    card = MatryoshkaModelCardData(language=list(model.model_card_data.language or []))
    card.license = model.model_card_data.license
    return card


def smec_adaptor_of(model: SentenceTransformer) -> SMECAdaptor:
    """The :class:`SMECAdaptor` of ``model``, or an error naming what the model holds instead."""
    found = [m for m in head_of(model) if isinstance(m, SMECAdaptor)]
    record = trainable_of(model)
    if not found and record is not None and isinstance(record.module, SMECAdaptor):
        found = [record.module]  # a native model in memory: its trainable form
    if len(found) != 1:
        names = [type(m).__name__ for m in model]
        raise ParameterError("model", f"model: expected one SMECAdaptor module, found modules {names}")
    return found[0]


def fast_model(texts: Sequence[str], vectors: Any, head: Sequence[torch.nn.Module]) -> SentenceTransformer:
    """``[CachedEmbeddings(texts, vectors), *head]``: the model's output for known texts, without the transformer."""
    # Own card data (no widget examples to compute): the trainer records the losses there, and training copies them.
    card = MatryoshkaModelCardData()
    return SentenceTransformer(modules=[CachedEmbeddings(texts, vectors), *head], device="cpu", model_card_data=card)


def fast_model_of_rows(
    texts: Sequence[str], vectors: Any, rows: np.ndarray, head: Sequence[torch.nn.Module]
) -> SentenceTransformer:
    """:func:`fast_model` over the given rows only (sorted indices), so a large memory-mapped corpus is not loaded."""
    if len(rows) == len(texts):
        return fast_model(texts, vectors, head)
    return fast_model([texts[i] for i in rows], np.asarray(vectors[rows]), head)


def data_fast_model(
    data: RetrievalData, corpus_vectors: Any, query_vectors: Any, head: Sequence[torch.nn.Module]
) -> SentenceTransformer:
    """:func:`fast_model` over ``data``'s corpus and queries with their backbone vectors."""
    vectors = np.concatenate([np.asarray(corpus_vectors), np.asarray(query_vectors)])
    return fast_model(list(data.corpus) + list(data.queries), vectors, head)


def head_outputs(head: Sequence[torch.nn.Module], vectors: Any, chunk_size: int = 65536):
    """The outputs of ``head`` (modules after the backbone) for backbone ``vectors``, one chunk at a time.

    ``vectors`` may be a memory-mapped ``.npy``: only one chunk of rows is read and held at a time.
    """
    for module in head:
        module.eval()
    with torch.no_grad():
        for start in range(0, len(vectors), chunk_size):
            features = {
                "sentence_embedding": torch.from_numpy(np.array(vectors[start : start + chunk_size], np.float32))
            }
            for module in head:
                features = module(features)
            yield features["sentence_embedding"].numpy()
