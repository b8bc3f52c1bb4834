from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer

from st_matryoshka.models import MatryoshkaAdaptor
from st_matryoshka.surgery import backbone_of, native_model, with_adaptor
from st_matryoshka.training import fit_pca_adaptor

TEXTS = ["Aspirin and heart attacks.", "Orbital mechanics of the moon.", "Bone density and vitamin D."]


def test_exported_pca_model_loads_without_remote_code(minilm, tmp_path):
    corpus_vectors = backbone_of(minilm).encode(TEXTS * 4 + [t.upper() for t in TEXTS])
    pca = fit_pca_adaptor(minilm, corpus_vectors)
    native = native_model(pca)
    assert [type(m).__name__ for m in native] == ["Transformer", "Pooling", "Normalize", "Dense", "Normalize"]
    native.save(str(tmp_path / "native"))
    loaded = SentenceTransformer(str(tmp_path / "native"), device="cpu")
    a = pca.encode(TEXTS, truncate_dim=8)
    b = loaded.encode(TEXTS, truncate_dim=8)
    assert np.allclose(a, b, atol=1e-5)
    # the PCA module's leading coordinates are the classic centred projection (the model ends in Normalize)
    unit = corpus_vectors / np.linalg.norm(corpus_vectors, axis=1, keepdims=True)
    mean = unit.mean(0)
    _, _, vt = np.linalg.svd(unit - mean, full_matrices=False)
    q = backbone_of(minilm).encode(TEXTS)
    centred = q / np.linalg.norm(q, axis=1, keepdims=True) - mean
    full = pca.encode(TEXTS)
    scale = np.linalg.norm(centred, axis=1, keepdims=True)
    assert np.allclose(np.abs(full[:, :2] * scale), np.abs(centred @ vt[:2].T), atol=1e-4)


def test_bit_thresholds_travel_with_the_exported_model(minilm, tmp_path):
    """A plain SentenceTransformer reproduces the codes of a model with bit thresholds (issue 26, item 2)."""
    from sentence_transformers.util import quantize_embeddings

    corpus_vectors = backbone_of(minilm).encode(TEXTS * 4 + [t.upper() for t in TEXTS])
    adaptor = MatryoshkaAdaptor(384, num_layers=0, bit_thresholds=True)
    adaptor.init_rotation(corpus_vectors)
    adaptor.init_thresholds(corpus_vectors)
    model = with_adaptor(minilm, adaptor.eval())
    native_model(model).save(str(tmp_path / "native"))
    loaded = SentenceTransformer(str(tmp_path / "native"), device="cpu")
    ours = quantize_embeddings(model.encode(TEXTS, truncate_dim=16), precision="ubinary")
    assert np.array_equal(loaded.encode(TEXTS, truncate_dim=16, precision="ubinary"), ours)
    unthresholded = quantize_embeddings(
        with_adaptor(minilm, MatryoshkaAdaptor(384, num_layers=0).eval()).encode(TEXTS, truncate_dim=16),
        precision="ubinary",
    )
    assert not np.array_equal(ours, unthresholded)
