"""Issue 39: every adaptor is Sentence-Transformers' own modules when saved, exactly, and continues exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from st_matryoshka._validation import ParameterError
from st_matryoshka.export import export_model
from st_matryoshka.loading import load_model
from st_matryoshka.metadata import MatryoshkaMetadata
from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.models.smec import plan_stages
from st_matryoshka.native import TOLERANCE, check_native, native_modules
from st_matryoshka.surgery import native_model, with_adaptor
from st_matryoshka.training import save_model_atomic

TEXTS = ["Vitamin D and bone density.", "Aspirin after a heart attack.", "The Moon's orbit.", "T cells."]


def _randomised(adaptor: MatryoshkaAdaptor, seed: int = 0) -> MatryoshkaAdaptor:
    """Every weight and buffer away from its start, so a fold that drops any of them fails."""
    generator = torch.Generator().manual_seed(seed)
    dim = adaptor.embedding_dim
    with torch.no_grad():
        for parameter in adaptor.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        if adaptor.use_rotation:
            adaptor.rotation.copy_(torch.linalg.qr(torch.randn(dim, dim, generator=generator))[0])
        if adaptor.center_input:
            adaptor.center.copy_(0.05 * torch.randn(dim, generator=generator))
        if adaptor.base_block:
            adaptor.base_center.copy_(0.05 * torch.randn(adaptor.base_block, generator=generator))
    return adaptor.eval()


KINDS = {
    "mlp-gelu (default)": lambda d: MatryoshkaAdaptor(d),
    "mlp-relu": lambda d: MatryoshkaAdaptor(d, activation="relu"),
    "mlp-silu": lambda d: MatryoshkaAdaptor(d, activation="silu"),
    "mlp-tanh": lambda d: MatryoshkaAdaptor(d, activation="tanh"),
    "two layers, narrow hidden": lambda d: MatryoshkaAdaptor(d, num_layers=2, hidden_dim=d // 2),
    "two tanh layers": lambda d: MatryoshkaAdaptor(d, num_layers=2, activation="tanh"),
    "linear (pca, search-adaptor)": lambda d: MatryoshkaAdaptor(d, num_layers=0, center_input=True),
    "centred, no rotation": lambda d: MatryoshkaAdaptor(d, center_input=True, use_rotation=False),
    "unnormalised input": lambda d: MatryoshkaAdaptor(d, normalize_input=False),
    "bit thresholds": lambda d: MatryoshkaAdaptor(d, bit_thresholds=True),
    "base block and thresholds": lambda d: MatryoshkaAdaptor(d, bit_thresholds=True, base_block=d // 4),
    "linear with base block": lambda d: MatryoshkaAdaptor(d, num_layers=0, base_block=d // 4),
    "smec": lambda d: SMECAdaptor(d, stages=plan_stages(d, [d // 2, d // 4])),
    "smec linear": lambda d: SMECAdaptor(d, stages=plan_stages(d, [d // 2]), num_layers=0),
    "smec unnormalised output": lambda d: SMECAdaptor(d, stages=plan_stages(d, [d // 2]), normalize_output=False),
    "smec two layers": lambda d: SMECAdaptor(d, stages=plan_stages(d, [d // 2]), num_layers=2),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_adaptor_folds_exactly_into_sentence_transformers_modules(kind):
    adaptor = _randomised(KINDS[kind](16))
    modules = native_modules(adaptor)
    assert all(type(m).__module__.startswith("sentence_transformers.") for m in modules)
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(3)) * 4.0
    expected = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    features = {"sentence_embedding": x.clone()}
    for module in modules:
        features = module(features)
    assert (features["sentence_embedding"] - expected).abs().max() <= TOLERANCE * 4  # outputs of norm ~4
    assert not torch.allclose(expected, torch.nn.functional.normalize(x, dim=-1), atol=1e-2)  # it does something


def test_a_fold_that_does_not_compute_the_module_is_refused():
    adaptor = _randomised(MatryoshkaAdaptor(16))
    modules = native_modules(adaptor)
    with torch.no_grad():
        modules[-1].linear.bias.add_(1e-3)
    with pytest.raises(ValueError, match=r"MatryoshkaAdaptor: its native form differs from it by 1\.0\de-03"):
        check_native(adaptor, modules)


def test_tei_servable_layout_uses_only_tanh_and_identity():
    """text-embeddings-inference runs Dense with Tanh or Identity only: a tanh adaptor without input normalisation
    is two such Dense modules (the skip carried through tanh(εx)/ε)."""
    adaptor = _randomised(MatryoshkaAdaptor(16, activation="tanh", normalize_input=False))
    modules = native_modules(adaptor)
    assert [type(m).__name__ for m in modules] == ["Dense", "Dense"]
    names = [m.get_config_dict()["activation_function"] for m in modules]
    assert names == ["torch.nn.modules.activation.Tanh", "torch.nn.modules.linear.Identity"]


@pytest.fixture(scope="module")
def saved_kinds(tmp_path_factory, _minilm):
    """One saved model folder per kind (MiniLM + the adaptor), with the embeddings the trained module gives."""
    import copy

    root = tmp_path_factory.mktemp("native")
    chosen = ["mlp-gelu (default)", "two tanh layers", "linear (pca, search-adaptor)", "base block and thresholds"]
    chosen += ["smec", "smec unnormalised output"]
    folders = {}
    for i, kind in enumerate(chosen):
        adaptor = _randomised(KINDS[kind](384), seed=i)
        model = with_adaptor(copy.deepcopy(_minilm), adaptor)
        folder = root / f"kind{i}"
        meta = MatryoshkaMetadata(dims=[384, *adaptor.trained_dims[1:]] if hasattr(adaptor, "stages") else [384, 96])
        save_model_atomic(model, str(folder), metadata=meta)
        expected = {d: model.encode(TEXTS, truncate_dim=d) for d in meta.dims}
        folders[kind] = (folder, adaptor, expected)
    return folders


BLOCKED = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "st_matryoshka" or name.startswith("st_matryoshka."):
                raise ImportError(f"{name} is blocked in this process")

    sys.meta_path.insert(0, _Block())
    from sentence_transformers import SentenceTransformer

    out = {}
    for folder, dims in json.loads(sys.argv[1]).items():
        model = SentenceTransformer(folder, device="cpu")
        assert all(type(m).__module__.startswith("sentence_transformers.") for m in model)
        out.update({f"{folder}|{d}": model.encode(json.loads(sys.argv[3]), truncate_dim=d) for d in dims})
    np.savez(sys.argv[2], **out)
    """
)


@pytest.mark.slow
def test_every_saved_kind_loads_in_a_process_without_st_matryoshka(saved_kinds, tmp_path):
    script = tmp_path / "blocked.py"
    script.write_text(BLOCKED)
    plan = {str(folder): sorted(expected) for folder, _, expected in saved_kinds.values()}
    argv = [sys.executable, str(script), json.dumps(plan), str(tmp_path / "out.npz"), json.dumps(TEXTS)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    got = np.load(tmp_path / "out.npz")
    for kind, (folder, _, expected) in saved_kinds.items():
        entries = json.loads((folder / "modules.json").read_text())
        assert all(e["type"].startswith("sentence_transformers.") for e in entries), kind
        for dim, vectors in expected.items():
            assert np.abs(got[f"{folder}|{dim}"] - vectors).max() <= 1e-5, (kind, dim)


def test_load_model_gives_back_the_trained_module_exactly(saved_kinds):
    for kind, (folder, adaptor, expected) in saved_kinds.items():
        loaded = load_model(str(folder), device="cpu")
        modules = [m for m in loaded if isinstance(m, MatryoshkaAdaptor)]
        assert len(modules) == 1 and type(modules[0]) is type(adaptor), kind
        assert modules[0].get_config_dict() == adaptor.get_config_dict(), kind
        state, original = modules[0].state_dict(), adaptor.state_dict()
        assert state.keys() == original.keys() and all(torch.equal(state[k], original[k]) for k in state), kind
        for dim, vectors in expected.items():
            assert np.abs(loaded.encode(TEXTS, truncate_dim=dim) - vectors).max() <= 1e-6, (kind, dim)


def test_a_native_folder_edited_after_saving_is_refused(saved_kinds, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "edited"
    shutil.copytree(saved_kinds["mlp-gelu (default)"][0], folder)
    weights = folder / "3_Dense" / "model.safetensors"
    state = load_file(str(weights))
    state["linear.bias"] = state["linear.bias"] + 0.01
    save_file(state, str(weights))
    with pytest.raises(ParameterError, match=r"model: modules \[2, 3, 4\] do not compute what st_matryoshka_adaptor/"):
        load_model(str(folder))


def test_a_folder_saved_before_0_8_loads_and_converts(minilm, tmp_path):
    """Module types of our own in modules.json (what 0.7 wrote): load_model still loads it, export makes it native."""
    adaptor = _randomised(MatryoshkaAdaptor(384), seed=5)
    old = SentenceTransformer(modules=[*with_adaptor(minilm, adaptor)], device="cpu")
    old.save(str(tmp_path / "old"))
    MatryoshkaMetadata(dims=[384, 96], method="matryoshka-adaptor").save(str(tmp_path / "old"))
    types = [e["type"] for e in json.loads((tmp_path / "old" / "modules.json").read_text())]
    assert "st_matryoshka.models.matryoshka_adaptor.MatryoshkaAdaptor" in types
    loaded = load_model(str(tmp_path / "old"), device="cpu")
    expected = loaded.encode(TEXTS)
    export_model(str(tmp_path / "old"), str(tmp_path / "new"))
    plain = SentenceTransformer(str(tmp_path / "new"), device="cpu")
    assert all(type(m).__module__.startswith("sentence_transformers.") for m in plain)
    assert np.abs(plain.encode(TEXTS) - expected).max() <= 1e-5
    # the one-line conversion in Python does the same
    native_model(loaded).save(str(tmp_path / "new2"))
    assert np.abs(SentenceTransformer(str(tmp_path / "new2"), device="cpu").encode(TEXTS) - expected).max() <= 1e-5
    again = load_model(str(tmp_path / "new2"), device="cpu")
    assert isinstance(again[2], MatryoshkaAdaptor)
