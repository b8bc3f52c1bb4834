"""Issue 42 (in part): the Python API's configs and loaded models refuse what would silently go wrong."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from st_matryoshka import MatryoshkaAdaptorConfig, PCAConfig, SearchAdaptorConfig, SMECConfig
from st_matryoshka._validation import ParameterError
from st_matryoshka.loading import load_model
from st_matryoshka.metadata import MatryoshkaMetadata
from st_matryoshka.models import MatryoshkaAdaptor
from st_matryoshka.native import native_modules
from st_matryoshka.surgery import with_adaptor
from st_matryoshka.training import save_model_atomic


@pytest.mark.parametrize(
    ("config", "kwargs", "message"),
    [
        (MatryoshkaAdaptorConfig, {"supervised": "no"}, "supervised must be of type bool, got 'no'"),
        (MatryoshkaAdaptorConfig, {"pca_init": "no"}, "pca_init must be of type bool, got 'no'"),
        (SMECConfig, {"smrl": "false"}, "smrl must be of type bool, got 'false'"),
        (SMECConfig, {"allow_any_dims": "no"}, "allow_any_dims must be of type bool, got 'no'"),
        (MatryoshkaAdaptorConfig, {"interpolation_steps": True}, "interpolation_steps must be of type int, got True"),
        (MatryoshkaAdaptorConfig, {"unsupervised_epochs": "2"}, "unsupervised_epochs must be of type int, got '2'"),
        (MatryoshkaAdaptorConfig, {"unsupervised_epochs": -1}, "unsupervised_epochs must be an int >= 0, got -1"),
        (MatryoshkaAdaptorConfig, {"dims": None}, "dims must be a non-empty list of positive ints, got None"),
        (MatryoshkaAdaptorConfig, {"activation": "swish"}, "activation must be one of"),
        (PCAConfig, {"supervised": True}, "supervised does not apply to method 'pca'"),
        (SearchAdaptorConfig, {"supervised": False}, "method 'search-adaptor' is supervised; it needs train_split"),
    ],
)
def test_config_fields_are_checked_by_type_and_method_rule(config, kwargs, message):
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        config(**kwargs)
    assert exc.value.parameter == next(iter(kwargs))


@pytest.fixture()
def saved(minilm, tmp_path):
    adaptor = MatryoshkaAdaptor(384, num_layers=1).eval()
    folder = tmp_path / "model"
    save_model_atomic(with_adaptor(minilm, adaptor), str(folder), metadata=MatryoshkaMetadata(dims=[384, 96]))
    return folder


def test_a_non_finite_weight_is_refused_at_load_naming_the_tensor(saved, tmp_path):
    for target, name in (("3_Dense", "linear.bias"), ("st_matryoshka_adaptor", "residual.0.bias")):
        folder = tmp_path / target
        shutil.copytree(saved, folder)
        weights = folder / target / "model.safetensors"
        state = load_file(str(weights))
        state[name][0] = float("nan")
        save_file(state, str(weights))
        with pytest.raises(ParameterError, match=rf"model: .*{name.replace('.', '[.]')}.* holds NaN or infinity"):
            load_model(str(folder))


def test_a_non_finite_adaptor_has_no_native_form():
    adaptor = MatryoshkaAdaptor(8).eval()
    with torch.no_grad():
        adaptor.rotation[0, 0] = float("inf")
    with pytest.raises(ValueError, match="MatryoshkaAdaptor: tensor rotation holds NaN or infinity"):
        native_modules(adaptor)


def test_a_saved_truncate_dim_that_is_no_size_is_refused(saved):
    config = saved / "config_sentence_transformers.json"
    data = json.loads(config.read_text())
    for value in (-5, 0, 385, True):
        config.write_text(json.dumps({**data, "truncate_dim": value}))
        with pytest.raises(ParameterError, match=r"config_sentence_transformers\.json: truncate_dim must be an int"):
            load_model(str(saved))


def test_overwrite_replaces_only_what_a_save_wrote(minilm, tmp_path):
    """--overwrite / overwrite=True on a model folder keeps the user's files and folders (a manifest of what each
    save wrote); a folder saved before manifests keeps every name a save does not write."""
    from st_matryoshka._io import MANIFEST

    folder = tmp_path / "model"
    meta = MatryoshkaMetadata(dims=[384, 96])
    save_model_atomic(with_adaptor(minilm, MatryoshkaAdaptor(384).eval()), str(folder), metadata=meta)
    assert (folder / MANIFEST).is_file() and "modules.json" in (folder / MANIFEST).read_text().split()
    (folder / "notes.txt").write_text("mine")
    (folder / "experiments").mkdir()
    (folder / "experiments" / "run1.json").write_text("{}")
    linear = with_adaptor(minilm, MatryoshkaAdaptor(384, num_layers=0).eval())
    save_model_atomic(linear, str(folder), overwrite=True, metadata=meta)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "experiments" / "run1.json").is_file()
    assert not (folder / "4_Dense").exists()  # the old save's second Dense went with it
    assert "notes.txt" not in (folder / MANIFEST).read_text().split()
    # before manifests: only the names a save writes are replaced
    (folder / MANIFEST).unlink()
    save_model_atomic(linear, str(folder), overwrite=True, metadata=meta)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "experiments" / "run1.json").is_file()
    # a user's file under a name this save writes: refused, nothing replaced
    (folder / MANIFEST).write_text("modules.json\n")
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(ParameterError, match="is not from an earlier save, and this save writes the same name"):
        save_model_atomic(linear, str(folder), overwrite=True, metadata=meta)
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.fixture()
def small_vectors(tmp_path):
    generator = torch.Generator().manual_seed(0)
    return torch.nn.functional.normalize(torch.randn(300, 32, generator=generator), dim=-1).numpy()


def test_an_input_inside_the_output_is_refused_on_the_python_path(small_vectors, minilm, scifact_slice, tmp_path):
    """train(vectors.npy, output=the folder holding it, overwrite=True) refused before any work, the file kept; so is
    a RetrievalData run whose output is the input model's folder."""
    import numpy as np

    import st_matryoshka
    from st_matryoshka.config import BackboneSource
    from st_matryoshka.data import load_beir, load_embeddings_dir

    folder = tmp_path / "out"
    folder.mkdir()
    np.save(folder / "corpus.npy", small_vectors)
    (folder / "modules.json").write_text("[]")  # looks like a model folder, so overwrite alone would allow it
    config = MatryoshkaAdaptorConfig(dims=[16, 8], unsupervised_epochs=1)
    with pytest.raises(ParameterError, match="output: .* holds the input .*corpus.npy"):
        st_matryoshka.train(str(folder / "corpus.npy"), None, config, output=str(folder), overwrite=True)
    assert np.array_equal(np.load(folder / "corpus.npy"), small_vectors)
    model = tmp_path / "model"
    meta = MatryoshkaMetadata(dims=[384, 96])
    save_model_atomic(with_adaptor(minilm, MatryoshkaAdaptor(384).eval()), str(model), metadata=meta)
    data = load_beir(str(scifact_slice), "train")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    source = BackboneSource(corpus_vectors=cv, query_vectors=qv)
    before = (model / "st_matryoshka_adaptor" / "model.safetensors").read_bytes()
    with pytest.raises(ParameterError, match="output: .* holds the input"):
        st_matryoshka.train(str(model), data, MatryoshkaAdaptorConfig(dims=[96]), output=str(model), source=source,
                            overwrite=True)  # fmt: skip
    assert (model / "st_matryoshka_adaptor" / "model.safetensors").read_bytes() == before


def test_default_dim_without_output_is_the_models_truncate_dim(minilm, scifact_slice):
    import st_matryoshka
    from st_matryoshka.config import BackboneSource
    from st_matryoshka.data import load_beir, load_embeddings_dir

    data = load_beir(str(scifact_slice), "train")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    config = MatryoshkaAdaptorConfig(dims=[96, 24], unsupervised_epochs=1)
    source = BackboneSource(corpus_vectors=cv, query_vectors=qv)
    trained = st_matryoshka.train(minilm, data, config, source=source, default_dim=24)
    assert trained.metadata.default_dim == 24 and trained.model.truncate_dim == 24
    assert trained.model.encode(["a query"]).shape == (1, 24)


def test_databases_touch_no_file_that_is_not_theirs(tmp_path):
    """An application's SQLite file is not written to by a Milvus build; a search never creates a file or folder."""
    import os
    import sqlite3

    pytest.importorskip("pymilvus")
    pytest.importorskip("qdrant_client")
    from st_matryoshka.vectordb import MilvusIndex, QdrantIndex

    app = tmp_path / "app.db"
    connection = sqlite3.connect(app)
    connection.execute("CREATE TABLE users (name TEXT)")
    connection.execute("INSERT INTO users VALUES ('ada')")
    connection.commit()
    connection.close()
    before = app.read_bytes()
    with pytest.raises(ParameterError, match="uri: .*app.db' exists and is not a Milvus Lite database"):
        MilvusIndex.create(str(app), dim=32)
    assert app.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["app.db"]
    with pytest.raises(ParameterError, match="uri: .*missing.db' does not exist"):
        MilvusIndex.open(str(tmp_path / "missing.db"))
    with pytest.raises(ParameterError, match="path: .*missing' does not exist"):
        QdrantIndex.open(str(tmp_path / "missing"))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("years of work")
    with pytest.raises(ParameterError, match="path: .*mine' holds other files and is not a Qdrant folder"):
        QdrantIndex.create(str(tmp_path / "mine"), dim=32)
    assert sorted(os.listdir(tmp_path)) == ["app.db", "mine"] and os.listdir(tmp_path / "mine") == ["thesis.txt"]


def test_a_milvus_rebuild_sends_no_id_twice_whatever_its_characters(tmp_path):
    pytest.importorskip("pymilvus")
    import numpy as np

    from st_matryoshka.vectordb import MilvusIndex

    ids = ["café", "日本", 'x"y', "back\\slash", "q's"]
    docs = np.random.default_rng(0).standard_normal((len(ids), 64)).astype(np.float32)
    uri = str(tmp_path / "d.db")
    for _ in range(3):
        with MilvusIndex.create(uri, dim=32, precision="binary") as index:
            index.add(docs, ids)
            index.save()
        with MilvusIndex.open(uri) as opened:
            assert opened.info.count == len(ids)
    with MilvusIndex.create(uri, dim=32, precision="binary") as index:
        with pytest.raises(ParameterError, match=r"ids: 'a\\tb' holds a control character"):
            index.add(docs[:1], ["a\tb"])
