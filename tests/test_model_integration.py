from __future__ import annotations

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize

from st_matryoshka.cache import EmbeddingCache, model_fingerprint
from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor
from st_matryoshka.surgery import backbone_of, fast_model, head_of, split_index, with_adaptor

TEXTS = ["Aspirin reduces the risk of heart attack.", "The moon orbits the earth.", "Vitamin D and bone health."]


def _trained_adaptor(dim=384):
    torch.manual_seed(0)
    adaptor = MatryoshkaAdaptor(dim, num_layers=1)
    adaptor.init_rotation(torch.randn(500, dim))
    with torch.no_grad():
        adaptor.residual[-1].weight.normal_(std=0.05)
    return adaptor.eval()


def test_adaptor_goes_after_pooling_before_normalize(minilm):
    model = with_adaptor(minilm, _trained_adaptor())
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Transformer", "Pooling", "MatryoshkaAdaptor", "Normalize"]
    assert split_index(model) == 2
    assert isinstance(head_of(model)[-1], Normalize)


def test_saved_model_reproduces_embeddings_exactly(minilm, tmp_path):
    model = with_adaptor(minilm, _trained_adaptor())
    before = model.encode(TEXTS, convert_to_tensor=True)
    model.save(str(tmp_path / "m"))
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path / "m"), device="cpu")
    loaded = SentenceTransformer(str(tmp_path / "m"), device="cpu", trust_remote_code=True)
    after = loaded.encode(TEXTS, convert_to_tensor=True)
    assert torch.equal(before, after)
    short = loaded.encode(TEXTS, truncate_dim=48, convert_to_tensor=True)
    assert short.shape == (3, 48) and torch.equal(short, after[:, :48])


def test_fast_model_matches_full_model(minilm):
    model = with_adaptor(minilm, _trained_adaptor())
    vectors = backbone_of(model).encode(TEXTS)
    fast = fast_model(TEXTS, vectors, head_of(model))
    assert np.allclose(fast.encode(TEXTS), model.encode(TEXTS), atol=1e-5)


def test_normalised_provider_vectors_give_the_same_output(minilm):
    model = with_adaptor(minilm, _trained_adaptor())
    pooled = backbone_of(model).encode(TEXTS)
    normalised = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    a = fast_model(TEXTS, pooled, head_of(model)).encode(TEXTS)
    b = fast_model(TEXTS, normalised, head_of(model)).encode(TEXTS)
    assert np.allclose(a, b, atol=1e-6)


def test_model_without_pooling_is_refused(minilm):
    no_pool = SentenceTransformer(modules=[minilm[0]], device="cpu")
    with pytest.raises(ValueError, match="no Pooling module"):
        split_index(no_pool)


def test_cache_encodes_each_text_once(minilm, tmp_path):
    backbone = backbone_of(minilm)
    cache = EmbeddingCache(backbone, cache_dir=str(tmp_path))
    calls = []
    real_encode = backbone.encode

    class Spy:
        def encode(self, texts, **kwargs):
            calls.append(list(texts))
            return real_encode(texts, **kwargs)

    cache.backbone = Spy()
    first = cache.encode(TEXTS, show_progress_bar=False)
    second = cache.encode(list(reversed(TEXTS)) + ["A new text."], show_progress_bar=False)
    assert calls == [TEXTS, ["A new text."]]
    assert np.array_equal(second[:3], first[::-1])
    assert np.allclose(first, real_encode(TEXTS), atol=1e-6)
    # A fresh cache object on the same folder reads the shards back from disk.
    reread = EmbeddingCache(backbone, cache_dir=str(tmp_path))
    reread.backbone = Spy()
    assert np.array_equal(reread.encode(TEXTS, show_progress_bar=False), first)
    assert len(calls) == 2


def test_fingerprint_depends_on_weights_not_path(minilm):
    trained = with_adaptor(minilm, _trained_adaptor())
    before = model_fingerprint(backbone_of(minilm))
    assert model_fingerprint(backbone_of(trained)) == before
    with torch.no_grad():
        next(minilm.parameters()).add_(1e-3)
    assert model_fingerprint(backbone_of(minilm)) != before


def test_cached_embeddings_repeated_text_uses_first_row_and_warns(caplog):
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype="float32")
    table = CachedEmbeddings(["a", "b", "a"], vectors)
    assert "different embeddings" not in caplog.text
    table = CachedEmbeddings(["a", "b", "a"], vectors[[0, 1, 1]])
    assert "1 texts appear more than once with different embeddings" in caplog.text
    assert table.preprocess(["a"])["input_ids"].tolist() == [0]


def test_cached_embeddings_rejects_unknown_text_and_nan():
    table = CachedEmbeddings(["a", "b"], np.eye(2, dtype="float32"))
    with pytest.raises(KeyError, match="text not in the embedding table: 'c'"):
        table.preprocess(["a", "c"])
    with pytest.raises(ValueError, match="NaN or inf in 1 rows"):
        CachedEmbeddings(["a", "b"], np.array([[0.0, np.nan], [1.0, 0.0]], dtype="float32"))


def test_backbone_vectors_use_the_models_query_and_document_prompts(minilm, tmp_path):
    """A prompt-using retriever (e5/bge style): the cache keys by prompt, queries and documents get their own."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from st_matryoshka.cache import backbone_vectors
    from st_matryoshka.data import RetrievalData

    model = SentenceTransformer(
        modules=list(minilm), prompts={"query": "query: ", "document": "passage: "}, device="cpu"
    )
    text = "Vitamin D deficiency and bone density."
    data = RetrievalData(["d1", "d2"], [text, "The orbit of the Moon."], ["q1"], [text])
    cv, qv = backbone_vectors(model, data, None, str(tmp_path), 8)

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    assert np.allclose(unit(cv), model.encode_document(data.corpus), atol=1e-5)
    assert np.allclose(unit(qv), model.encode_query(data.queries), atol=1e-5)
    # the same text as a query and as a document: two cache entries, two vectors
    assert not np.allclose(qv[0], cv[0], atol=1e-3)
    cv2, qv2 = backbone_vectors(model, data, None, str(tmp_path), 8)  # served from the cache
    assert np.array_equal(cv, cv2) and np.array_equal(qv, qv2)
