from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from st_matryoshka.models import CachedEmbeddings, MatryoshkaAdaptor, SMECAdaptor
from st_matryoshka.models.smec import plan_stages

# One row per module configuration: every contract test runs over the whole table.
MODULES = {
    "mlp": lambda: MatryoshkaAdaptor(12, hidden_dim=20, num_layers=2),
    "linear": lambda: MatryoshkaAdaptor(12, num_layers=0),
    "no-rotation": lambda: MatryoshkaAdaptor(12, use_rotation=False, activation="tanh"),
    "raw-input": lambda: MatryoshkaAdaptor(12, normalize_input=False),
    "centred": lambda: MatryoshkaAdaptor(12, center_input=True),
    "bit-thresholds": lambda: MatryoshkaAdaptor(12, bit_thresholds=True),
}


def _smec_with_added_stage():
    adaptor = SMECAdaptor(12, stages=plan_stages(12, [6, 3]))
    adaptor.add_stage(2)
    return adaptor


# Every module st_matryoshka ships, and every SMEC variant, for the save → load → encode contract.
SMEC_VARIANTS = {
    "smec": lambda: SMECAdaptor(12, stages=plan_stages(12, [6, 3])),
    "smec-no-ads": lambda: SMECAdaptor(12, stages=plan_stages(12, [6, 3]), use_ads=False),
    "smec-no-rotation": lambda: SMECAdaptor(12, stages=plan_stages(12, [6, 3]), stage_rotation=False),
    "smec-no-normalize-output": lambda: SMECAdaptor(12, stages=plan_stages(12, [6, 3]), normalize_output=False),
    "smec-linear-body": lambda: SMECAdaptor(12, stages=plan_stages(12, [6, 3]), num_layers=0),
    "smec-after-add-stage": _smec_with_added_stage,
}
ALL_ADAPTORS = {**MODULES, **SMEC_VARIANTS}


@pytest.mark.parametrize("name", ALL_ADAPTORS)
def test_save_load_roundtrip(name, tmp_path):
    module = _perturb_any(ALL_ADAPTORS[name]())
    module.save(str(tmp_path))
    loaded = type(module).load(str(tmp_path)).eval()
    x = torch.randn(5, 12)
    out = module({"sentence_embedding": x.clone()})["sentence_embedding"]
    assert torch.equal(out, loaded({"sentence_embedding": x.clone()})["sentence_embedding"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("name", ALL_ADAPTORS)
def test_config_keys_mirror_constructor(name):
    module = ALL_ADAPTORS[name]()
    params = [p for p in inspect.signature(type(module).__init__).parameters if p != "self"]
    assert module.config_keys == params
    assert type(module)(**module.get_config_dict()).get_config_dict() == module.get_config_dict()


@pytest.mark.parametrize("name", ALL_ADAPTORS)
def test_identity_at_init_up_to_rotation(name):
    module = ALL_ADAPTORS[name]().eval()
    x = torch.randn(4, 12)
    out = module({"sentence_embedding": x})["sentence_embedding"]
    expected = F.normalize(x, dim=-1) if module.normalize_input else x
    assert torch.allclose(out, expected @ module.rotation.T if module.use_rotation else expected)
    assert out.shape == (4, module.get_embedding_dimension())


@pytest.mark.parametrize("name", ALL_ADAPTORS)
def test_eval_is_deterministic_and_has_no_training_keys(name):
    module = _perturb_any(ALL_ADAPTORS[name]())
    x = torch.randn(3, 12)
    first = module({"sentence_embedding": x})
    second = module({"sentence_embedding": x})
    assert torch.equal(first["sentence_embedding"], second["sentence_embedding"])
    assert set(first) == {"sentence_embedding"}
    module.train()
    assert "st_matryoshka.reference_embedding" in module({"sentence_embedding": x})


def test_rotation_is_orthogonal_and_orders_by_variance():
    torch.manual_seed(0)
    data = torch.randn(200, 12) * torch.linspace(0.1, 3.0, 12)
    module = MatryoshkaAdaptor(12, normalize_input=False)
    module.init_rotation(data)
    rot = module.rotation
    assert torch.allclose(rot @ rot.T, torch.eye(12), atol=1e-5)
    var = (data @ rot.T).pow(2).mean(0)
    assert torch.all(var[:-1] >= var[1:] - 1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"embedding_dim": 0}, "embedding_dim must be a positive int, got 0"),
        ({"embedding_dim": 8, "hidden_dim": -1}, "hidden_dim must be a positive int or None, got -1"),
        ({"embedding_dim": 8, "num_layers": -2}, "num_layers must be an int >= 0, got -2"),
        ({"embedding_dim": 8, "activation": "softmax"}, "activation must be one of .*'softmax'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MatryoshkaAdaptor(**kwargs)


def test_centred_rotation_is_pca_of_the_corpus():
    torch.manual_seed(0)
    data = torch.randn(300, 12) + 3.0
    module = MatryoshkaAdaptor(12, normalize_input=False, center_input=True).eval()
    module.init_rotation(data)
    assert torch.allclose(module.center, data.mean(0), atol=1e-5)
    out = module({"sentence_embedding": data})["sentence_embedding"]
    assert torch.allclose(out.mean(0), torch.zeros(12), atol=1e-4)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-3)


@pytest.mark.parametrize("statistic", ["median", "mean"])
def test_bit_thresholds_split_the_corpus_and_train(statistic):
    """Thresholds set from the corpus make each sign bit split it (median: in halves; mean: centred outputs), and the
    straight-through loss on the codes reaches them."""
    torch.manual_seed(0)
    data = torch.randn(301, 12) + 2.0  # one dominant mean direction: at zero threshold the first bit is constant
    module = MatryoshkaAdaptor(12, bit_thresholds=True)
    module.init_rotation(data)
    plain = module.eval()({"sentence_embedding": data})["sentence_embedding"]
    assert (plain[:, 0] > 0).all() or (plain[:, 0] <= 0).all()
    module.init_thresholds(data, statistic=statistic)
    out = module({"sentence_embedding": data})["sentence_embedding"]
    if statistic == "median":
        assert torch.equal((out > 0).sum(0), torch.full((12,), 150))
    else:
        assert torch.allclose(out.mean(0), torch.zeros(12), atol=1e-5)
    from st_matryoshka.quantization import quantize_prefix

    module.train()
    codes = quantize_prefix(F.normalize(module({"sentence_embedding": data})["sentence_embedding"], dim=-1), "binary")
    (codes @ torch.randn(12)).sum().backward()
    assert module.thresholds.grad is not None and module.thresholds.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="init_thresholds needs bit_thresholds=True"):
        MatryoshkaAdaptor(12).init_thresholds(data)


def test_init_rotation_checks_shape():
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n, 8\), got \(3, 5\)"):
        MatryoshkaAdaptor(8).init_rotation(torch.randn(3, 5))


def _perturb_any(module):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for name, buffer in module.named_buffers():
            if name.startswith("stage_basis_") and buffer.numel():
                q, _ = torch.linalg.qr(torch.randn_like(buffer))
                buffer.copy_(q)
    if getattr(module, "use_rotation", False):
        module.init_rotation(torch.randn(50, 12))
    return module.eval()


@pytest.mark.parametrize("name", [*ALL_ADAPTORS, "cached-embeddings"])
def test_save_load_encode_contract_through_sentence_transformers(name, tmp_path):
    """Save a whole model, load it back with the package's loader, and get bit-identical embeddings."""
    from sentence_transformers import SentenceTransformer

    from st_matryoshka.loading import load_model

    texts = [f"text {i}" for i in range(6)]
    vectors = torch.randn(6, 12).numpy()
    modules = [CachedEmbeddings(texts, vectors)]
    if name != "cached-embeddings":
        modules.append(_perturb_any(ALL_ADAPTORS[name]()))
    model = SentenceTransformer(modules=modules, device="cpu")
    model.save(str(tmp_path / "model"))
    loaded = load_model(str(tmp_path / "model"), device="cpu")
    assert [type(m) for m in loaded] == [type(m) for m in model]
    assert np.array_equal(model.encode(texts), loaded.encode(texts))
    assert np.array_equal(model.encode(texts, truncate_dim=3), loaded.encode(texts, truncate_dim=3))


@pytest.mark.parametrize("cls", [MatryoshkaAdaptor, SMECAdaptor, CachedEmbeddings])
def test_config_keys_are_the_constructor_arguments_in_order(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    expected = [] if cls is CachedEmbeddings else params  # CachedEmbeddings' table is data, saved as weights
    assert cls.config_keys == expected


def test_unknown_config_key_names_the_key_and_the_writing_version(tmp_path):
    import json

    module = MatryoshkaAdaptor(12)
    module.save(str(tmp_path))
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "quantize": "binary"}))
    (tmp_path / "st_matryoshka.json").write_text(json.dumps({"dims": [12], "st_matryoshka_version": "9.9.0"}))
    with pytest.raises(ValueError, match=r"unknown keys \['quantize'\], written by st_matryoshka 9.9.0; upgrade"):
        MatryoshkaAdaptor.load(str(tmp_path))


def test_balanced_rotation_keeps_prefix_similarities_and_evens_sign_bits():
    """balance_blocks rotates inside each block only: prefix dot products at the block ends stay those of the
    principal-axes start, while the block's coordinates come closer to their signs (ITQ's objective)."""
    torch.manual_seed(0)
    data = torch.randn(400, 12) * torch.linspace(3.0, 0.1, 12)
    plain = MatryoshkaAdaptor(12, normalize_input=False).eval()
    plain.init_rotation(data)
    balanced = MatryoshkaAdaptor(12, normalize_input=False).eval()
    balanced.init_rotation(data, balance_blocks=[4, 8])
    rot = balanced.rotation
    assert torch.allclose(rot @ rot.T, torch.eye(12), atol=1e-5)
    assert not torch.allclose(rot, plain.rotation, atol=1e-3)
    a, b = (m({"sentence_embedding": data})["sentence_embedding"] for m in (plain, balanced))
    for end in (4, 8, 12):
        assert torch.allclose(a[:, :end] @ a[:, :end].T, b[:, :end] @ b[:, :end].T, atol=1e-3)
    for start, end in ((0, 4), (4, 8), (8, 12)):
        before, after = a[:, start:end], b[:, start:end]
        scale = before.abs().mean()
        gap = [torch.linalg.norm(torch.sign(x) * scale - x) for x in (before, after)]
        assert gap[1] < gap[0]
        spread = [x.pow(2).mean(0) for x in (before, after)]
        assert spread[1].max() / spread[1].min() < spread[0].max() / spread[0].min()


def test_balanced_rotation_checks_blocks():
    with pytest.raises(ValueError, match=r"balance_blocks must be ints in \(0, 8\], got \[4, 9\]"):
        MatryoshkaAdaptor(8).init_rotation(torch.randn(30, 8), balance_blocks=[4, 9])


# The config keys st_matryoshka 0.1.0 (the release before bit_thresholds) reads; it refuses any other key.
RELEASE_0_1_0_KEYS = {
    MatryoshkaAdaptor: {
        "embedding_dim", "hidden_dim", "num_layers", "activation", "normalize_input", "use_rotation", "center_input"
    },
    SMECAdaptor: {
        "embedding_dim", "stages", "use_ads", "stage_rotation", "normalize_output", "hidden_dim", "num_layers",
        "activation", "normalize_input", "use_rotation", "center_input",
    },
}  # fmt: skip


@pytest.mark.parametrize("cls", [MatryoshkaAdaptor, SMECAdaptor])
def test_a_module_saved_with_defaults_loads_in_the_previous_release(cls, tmp_path):
    """Issue 33: keys added since 0.1.0 are written only off their default, so 0.1.0's reader accepts the folder."""
    import json

    kwargs = {"stages": plan_stages(8, [4])} if cls is SMECAdaptor else {}
    module = cls(8, **kwargs)
    for name in ("default", "thresholds"):
        (tmp_path / name).mkdir()
    module.save(str(tmp_path / "default"))
    config = json.loads((tmp_path / "default" / "config.json").read_text())
    assert set(config) <= RELEASE_0_1_0_KEYS[cls]  # 0.1.0's load refuses any key outside its list
    reloaded = cls.load(str(tmp_path / "default"))
    assert reloaded.bit_thresholds is False and reloaded.get_config_dict() == module.get_config_dict()
    if cls is MatryoshkaAdaptor:  # off its default the key is written, and only then
        MatryoshkaAdaptor(8, bit_thresholds=True).save(str(tmp_path / "thresholds"))
        written = json.loads((tmp_path / "thresholds" / "config.json").read_text())
        assert written["bit_thresholds"] is True
        assert MatryoshkaAdaptor.load(str(tmp_path / "thresholds")).bit_thresholds is True


def test_base_block_is_the_base_models_own_coordinates_and_leaves_the_prefix_alone(tmp_path):
    """Issue 33: the last base_block outputs are the normalised input minus base_center; the rest is unchanged, and
    the block saves, loads and is written to config.json only when set."""
    import json

    torch.manual_seed(0)
    module = MatryoshkaAdaptor(8, num_layers=1)
    module.init_rotation(torch.randn(50, 8) + 0.5)
    with torch.no_grad():
        module.residual[-1].weight.normal_(std=0.1)
    module.eval()
    x = torch.randn(6, 8) * 3
    before = module({"sentence_embedding": x.clone()})["sentence_embedding"]
    center = torch.randn(3)
    module.set_base_block(3, center)
    after = module({"sentence_embedding": x.clone()})["sentence_embedding"]
    assert torch.equal(after[:, :5], before[:, :5])  # the prefix before the block, bit for bit
    assert torch.allclose(after[:, 5:], F.normalize(x, dim=-1)[:, 5:] - center)
    module.save(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["base_block"] == 3
    reloaded = MatryoshkaAdaptor.load(str(tmp_path)).eval()
    assert torch.equal(reloaded({"sentence_embedding": x.clone()})["sentence_embedding"], after)
    module.set_base_block(0)
    assert torch.equal(module({"sentence_embedding": x.clone()})["sentence_embedding"], before)
    assert "base_block" not in module.get_config_dict() and "base_center" not in module.state_dict()
    with pytest.raises(ValueError, match=r"center must have shape \(2,\), got \(3,\)"):
        module.set_base_block(2, center)
    with pytest.raises(ValueError, match=r"base_block must be an int in \[0, 8\), got 8"):
        MatryoshkaAdaptor(8, base_block=8)
    with pytest.raises(ValueError, match="base_block needs normalize_input=True"):
        MatryoshkaAdaptor(8, base_block=2, normalize_input=False)
