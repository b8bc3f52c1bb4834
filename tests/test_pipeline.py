"""st_matryoshka.train: one entry point for models and vectors, one config class per method (issue 34)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

import st_matryoshka
from st_matryoshka import MatryoshkaAdaptorConfig, PCAConfig, SearchAdaptorConfig
from st_matryoshka._validation import ParameterError
from st_matryoshka.api import Trained
from st_matryoshka.config import METHOD_CONFIGS, AdaptorTrainingConfig, BackboneSource
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.metadata import matryoshka_dims
from st_matryoshka.models import MatryoshkaAdaptor
from st_matryoshka.training import train_matryoshka_adaptor
from st_matryoshka.vectors import apply_vectors, fit_vectors, load_adaptor

QUICK = {"unsupervised_epochs": 1, "unsupervised_batch_size": 256, "seed": 7}


@pytest.fixture(scope="module")
def slice_vectors(scifact_slice):
    data = load_beir(str(scifact_slice), "train")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    return data, cv, qv


def test_vectors_train_as_fit_vectors_does_and_save_a_complete_folder(slice_vectors, tmp_path):
    """Vectors alone: the same adaptor as fit_vectors with the same settings, bit for bit, saved and loadable."""
    _, cv, _ = slice_vectors
    config = MatryoshkaAdaptorConfig(dims=[96, 48], **QUICK)
    trained = st_matryoshka.train(cv, None, config, output=str(tmp_path / "adaptor"))
    assert isinstance(trained, Trained) and trained.model is None and trained.metadata.dims == [384, 96, 48]
    reference, _, _ = fit_vectors(cv, [96, 48], **QUICK)
    x = cv[:64]
    assert np.array_equal(apply_vectors(trained.adaptor, x, 96), apply_vectors(reference, x, 96))
    loaded = load_adaptor(str(tmp_path / "adaptor"))
    assert np.array_equal(apply_vectors(loaded, x, 48), apply_vectors(reference, x, 48))
    assert matryoshka_dims(str(tmp_path / "adaptor")).dims == [384, 96, 48]


def test_a_model_with_data_in_memory_trains_as_the_deprecated_function_did(minilm, slice_vectors):
    """Model + RetrievalData + vectors in BackboneSource: the old train_matryoshka_adaptor's model, bit for bit, and
    that old name warns once it is called."""
    data, cv, qv = slice_vectors
    config = MatryoshkaAdaptorConfig(dims=[96, 48], **QUICK)
    torch.manual_seed(0)
    new = st_matryoshka.train(minilm, data, config, source=BackboneSource(corpus_vectors=cv, query_vectors=qv))
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match="use st_matryoshka.train"):
        old, _ = train_matryoshka_adaptor(minilm, data, cv, qv, AdaptorTrainingConfig(dims=[96, 48], **QUICK))
    texts = ["Aspirin lowers the risk of a heart attack.", "Vitamin D and bone density."]
    state = old[2].state_dict()  # the old function's model holds the module; the new result, its native form
    assert all(torch.equal(state[k], v) for k, v in new.adaptor.state_dict().items())
    for dim in (384, 96, 48):
        assert np.abs(new.model.encode(texts, truncate_dim=dim) - old.encode(texts, truncate_dim=dim)).max() <= 1e-5
    assert new.metadata.dims == [384, 96, 48] and new.stages[0].name == "unsupervised joint"


def test_a_model_trains_from_a_beir_folder_and_saves(minilm, scifact_slice, tmp_path):
    """Model + BEIR folder + precomputed vectors: the folder api.train writes, with the method from the config."""
    source = BackboneSource(embeddings=str(scifact_slice / "embeddings"))
    out = tmp_path / "model"
    trained = st_matryoshka.train(minilm, str(scifact_slice), PCAConfig(dims=[96, 48]), output=str(out), source=source)
    assert trained.model.encode(["a query"], truncate_dim=48).shape == (1, 48)
    assert json.loads((out / "st_matryoshka.json").read_text())["method"] == "pca"


def test_every_method_has_its_config_and_wrong_inputs_name_the_argument(slice_vectors):
    _, cv, _ = slice_vectors
    assert set(METHOD_CONFIGS) == {"matryoshka-adaptor", "search-adaptor", "pca", "smec"}
    assert SearchAdaptorConfig(dims=[96]).num_layers == 0 and SearchAdaptorConfig(dims=[96]).supervised
    with pytest.raises(ParameterError, match="config must be a per-method config"):
        st_matryoshka.train(cv, None, AdaptorTrainingConfig(dims=[96]))
    with pytest.raises(ParameterError, match="source, train_split, default_dim and callbacks apply to a model"):
        st_matryoshka.train(cv, None, MatryoshkaAdaptorConfig(dims=[96]), source=BackboneSource())
    with pytest.raises(ParameterError, match="supervised search-adaptor needs VectorData with queries and qrels"):
        st_matryoshka.train(cv, None, SearchAdaptorConfig(dims=[96]))
    with pytest.raises(ParameterError, match="with vectors, a VectorData or None, got str"):
        st_matryoshka.train(cv, "../shared/data/scifact", MatryoshkaAdaptorConfig(dims=[96]))


def test_sentence_transformers_own_save_writes_a_complete_folder(minilm, slice_vectors, tmp_path):
    """Issue 34: model.save / save_pretrained of a model holding our module writes st_matryoshka.json, so
    matryoshka_dims and load_model work on the folder; a loaded model saved again keeps it; a module saved on its own
    writes nothing outside its folder."""
    data, cv, qv = slice_vectors
    source = BackboneSource(corpus_vectors=cv, query_vectors=qv)
    trained = st_matryoshka.train(minilm, data, MatryoshkaAdaptorConfig(dims=[96, 48], **QUICK), source=source)
    trained.model.save(str(tmp_path / "saved"))
    assert matryoshka_dims(str(tmp_path / "saved")).dims == [384, 96, 48]
    assert matryoshka_dims(trained.model).int8_ranges  # the calibrated metadata, not a fresh one
    # issue 39: the plain save holds Sentence-Transformers' modules only, and the trainable adaptor beside them
    entries = json.loads((tmp_path / "saved" / "modules.json").read_text())
    assert all(e["type"].startswith("sentence_transformers.") for e in entries)
    plain = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    loaded = st_matryoshka.load_model(str(tmp_path / "saved"))
    adaptor = next(m for m in loaded if isinstance(m, MatryoshkaAdaptor))
    assert all(torch.equal(a, b) for a, b in zip(adaptor.state_dict().values(), trained.adaptor.state_dict().values()))
    texts = ["Vitamin D and bone density.", "Orbital mechanics."]
    assert np.abs(plain.encode(texts) - loaded.encode(texts)).max() <= 1e-5
    assert matryoshka_dims(loaded).dims == [384, 96, 48]
    loaded.save_pretrained(str(tmp_path / "again"))
    again = json.loads((tmp_path / "again" / "st_matryoshka.json").read_text())
    assert again == json.loads((tmp_path / "saved" / "st_matryoshka.json").read_text())
    (tmp_path / "alone" / "module").mkdir(parents=True)
    trained.adaptor.save(str(tmp_path / "alone" / "module"))
    assert not (tmp_path / "alone" / "st_matryoshka.json").exists()
