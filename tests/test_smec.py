from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

import st_matryoshka
from st_matryoshka.callbacks import GradientVarianceCallback, Stage, StageCallback
from st_matryoshka.cli import main
from st_matryoshka.config import BackboneSource, SMECConfig, SMECTrainingConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.losses import MatryoshkaUnsupervisedLoss, SelectableCrossBatchMemory
from st_matryoshka.models import CachedEmbeddings, SMECAdaptor
from st_matryoshka.models.smec import plan_stages
from st_matryoshka.native import native_modules
from st_matryoshka.surgery import with_adaptor
from st_matryoshka.training_smec import extend_smec

TEXTS = ["Aspirin and heart attacks.", "Orbital mechanics of the moon.", "Bone density and vitamin D.", "T cells."]


def _randomised(adaptor: SMECAdaptor, seed: int = 0) -> SMECAdaptor:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adaptor.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return adaptor


def _cos(x: torch.Tensor) -> torch.Tensor:
    x = F.normalize(x, dim=-1)
    return x @ x.T


def test_plan_stages_halves_or_needs_allow_any_dims():
    assert plan_stages(384, [192, 96, 48, 24]) == [[0, 384, 192], [0, 192, 96], [0, 96, 48], [0, 48, 24]]
    with pytest.raises(ValueError, match="dims: 100 is not half of 192.*allow_any_dims=True"):
        plan_stages(384, [192, 100])
    assert plan_stages(384, [128, 100], allow_any_dims=True) == [[0, 384, 128], [0, 128, 100]]
    with pytest.raises(ValueError, match="strictly descending below 384"):
        plan_stages(384, [384, 192])


def test_ads_inference_is_a_prefix_ordered_permutation_and_exports_to_dense():
    adaptor = _randomised(SMECAdaptor(16, stages=plan_stages(16, [8, 4, 2]))).eval()
    for i in range(3):
        order, gate = adaptor._order(i)
        assert gate is None
        assert sorted(order.tolist()) == list(range(adaptor.stages[i][1]))  # no dimension twice
    x = torch.randn(6, 16)
    out = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    assert out.shape == (6, 16)
    body = adaptor.body().eval()({"sentence_embedding": x.clone()})["sentence_embedding"]
    # Every trained dim is a prefix: the 4-d prefix is stage 2's output, unchanged (up to rotation) by stage 3.
    after_two = adaptor.apply_stages(body, upto=2)
    assert torch.allclose(_cos(out[:, :4]), _cos(after_two[:, :4]), atol=1e-5)
    assert not torch.allclose(_cos(out[:, :4]), _cos(body[:, :4]), atol=1e-3)
    features = {"sentence_embedding": x.clone()}
    for module in native_modules(adaptor):
        features = module(features)
    assert torch.allclose(features["sentence_embedding"], out, atol=1e-5)
    matrix = adaptor.stage_matrix()
    assert torch.allclose(matrix @ matrix.T, torch.eye(16), atol=1e-5)


def test_init_stage_starts_from_pca_of_its_block_and_saves(tmp_path):
    adaptor = _randomised(SMECAdaptor(16, stages=plan_stages(16, [8, 4]))).eval()
    generator = torch.Generator().manual_seed(1)
    corpus = torch.randn(300, 16, generator=generator) * torch.linspace(3.0, 0.2, 16)
    before = adaptor({"sentence_embedding": corpus.clone()})["sentence_embedding"].detach()
    adaptor.init_stage(1, corpus.numpy())
    after = adaptor({"sentence_embedding": corpus.clone()})["sentence_embedding"].detach()
    assert torch.equal(after[:, 8:], before[:, 8:])  # only the stage's block [0, 8) changes
    assert torch.allclose(_cos(after[:, :8]), _cos(before[:, :8]), atol=1e-5)  # ... by a rotation
    moment = after[:, :8].T @ after[:, :8]
    diagonal = torch.diagonal(moment)
    assert torch.all(diagonal[:-1] >= diagonal[1:])  # principal axes, largest first
    assert torch.allclose(moment, torch.diag(diagonal), atol=1e-3 * float(diagonal[0]))
    assert float((after[:, :4] ** 2).sum()) > float((before[:, :4] ** 2).sum())
    features = {"sentence_embedding": corpus.clone()}
    for module in native_modules(adaptor):
        features = module(features)
    assert torch.allclose(features["sentence_embedding"], after, atol=1e-5)
    adaptor.save(str(tmp_path))
    loaded = SMECAdaptor.load(str(tmp_path)).eval()
    assert not torch.equal(loaded.stage_basis(1), torch.eye(8))
    assert torch.equal(loaded({"sentence_embedding": corpus.clone()})["sentence_embedding"], after)
    # A state saved before stages had a basis loads strictly, with the identity basis it was trained with.
    fresh = SMECAdaptor(16, stages=plan_stages(16, [8, 4]))
    old_state = {k: v for k, v in fresh.state_dict().items() if not k.startswith("stage_basis_")}
    adaptor.load_state_dict(old_state)
    assert torch.equal(adaptor.stage_basis(1), torch.eye(8))
    with pytest.raises(ValueError, match="index must name one of the 2 stages, got 2"):
        adaptor.init_stage(2, corpus)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(n > 0, 16\), got \(300, 15\)"):
        adaptor.init_stage(0, corpus[:, :15])
    with pytest.raises(ValueError, match="init_stage needs stage_rotation=True"):
        SMECAdaptor(16, stages=plan_stages(16, [8]), stage_rotation=False).init_stage(0, corpus)


def test_init_stage_reads_a_read_only_memory_mapped_corpus_in_chunks(tmp_path):
    import warnings

    corpus = (torch.randn(300, 16, generator=torch.Generator().manual_seed(2)) * torch.linspace(3.0, 0.2, 16)).numpy()
    np.save(tmp_path / "corpus.npy", corpus)
    in_memory = _randomised(SMECAdaptor(16, stages=plan_stages(16, [8, 4]))).eval()
    mapped = _randomised(SMECAdaptor(16, stages=plan_stages(16, [8, 4]))).eval()
    in_memory.init_stage(0, corpus)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when a tensor is made from a non-writable array
        mapped.init_stage(0, np.load(tmp_path / "corpus.npy", mmap_mode="r"), chunk_size=7)
    assert torch.allclose(mapped.stage_basis(0), in_memory.stage_basis(0), atol=1e-5)


def test_linear_smec_folds_into_normalize_and_dense(minilm, tmp_path):
    adaptor = _randomised(SMECAdaptor(384, stages=plan_stages(384, [192, 96]), num_layers=0), seed=1).eval()
    model = SentenceTransformer(modules=[*minilm, adaptor], device="cpu")
    native = SentenceTransformer(modules=[*minilm, *native_modules(adaptor)], device="cpu")
    native.save(str(tmp_path / "native"))
    loaded = SentenceTransformer(str(tmp_path / "native"), device="cpu")  # no trust_remote_code needed
    expected = model.encode(TEXTS, truncate_dim=96)
    assert np.allclose(loaded.encode(TEXTS, truncate_dim=96), expected, atol=1e-5)


def test_gumbel_training_selects_consistently_and_trains_logits():
    adaptor = SMECAdaptor(16, stages=plan_stages(16, [8])).train()
    adaptor.temperature = 1.0
    adaptor.resample_noise(torch.Generator().manual_seed(0))
    x = torch.randn(5, 16)
    first = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    second = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    assert torch.equal(first, second)  # one noise draw per step: query and document columns agree
    eval_out = adaptor.eval()({"sentence_embedding": x.clone()})["sentence_embedding"]
    # Same numbers, other order: noise changed the selection but never duplicates or drops a dimension.
    assert not torch.equal(first[:, :8], eval_out[:, :8])
    assert torch.allclose(first.sort(dim=1).values, eval_out.sort(dim=1).values, atol=1e-6)
    adaptor.train()
    first = adaptor({"sentence_embedding": x.clone()})["sentence_embedding"]
    first[:, :8].pow(2).sum().backward()
    assert adaptor.importance[0].grad is not None and adaptor.importance[0].grad.abs().sum() > 0


def test_cross_batch_memory_is_fifo_of_backbone_vectors():
    memory = SelectableCrossBatchMemory(4, memory_size=5, top_k=2)
    batches = [torch.full((3, 4), float(i + 1)) for i in range(3)]
    for batch in batches:
        memory.enqueue(batch)
    assert int(memory.filled) == 5
    # batch 1 filled slots 0-2, batch 2 slots 3, 4, 0, batch 3 slots 1-3: the oldest entries go first
    assert memory.memory[:, 0].tolist() == [2.0, 3.0, 3.0, 3.0, 2.0]
    assert int(memory.pointer) == 4
    with pytest.raises(ValueError, match="memory_size=5 is smaller than the 6 embeddings"):
        memory.enqueue(torch.randn(6, 4))
    with pytest.raises(ValueError, match="top_k=6 must not exceed memory_size=5"):
        SelectableCrossBatchMemory(4, memory_size=5, top_k=6)
    assert {"memory", "pointer", "filled"} <= {name for name, _ in memory.named_buffers()}


def test_memory_loss_stores_reference_not_adapted_vectors():
    vectors = np.random.default_rng(0).normal(size=(12, 8)).astype("float32")
    texts = [f"t{i}" for i in range(12)]
    adaptor = _randomised(SMECAdaptor(8, stages=plan_stages(8, [4])))
    model = SentenceTransformer(modules=[CachedEmbeddings(texts, vectors), adaptor], device="cpu").train()
    loss = MatryoshkaUnsupervisedLoss(model, [8, 4], top_k=3, memory_size=20)
    first = loss([model.preprocess(texts[:6])])
    assert float(first["topk"]) == 0.0  # the memory was empty
    second = loss([model.preprocess(texts[6:])])
    assert float(second["topk"].detach()) > 0.0
    stored = loss.memory.memory[:12]
    reference = adaptor.reference(torch.as_tensor(vectors))
    assert torch.allclose(stored, reference, atol=1e-6)


def test_config_rejects_bad_smec_settings():
    with pytest.raises(ValueError, match="memory_size=300 is smaller than a batch .*unsupervised_batch_size=512"):
        SMECTrainingConfig(memory_size=300)
    # the supervised batch (64 x 18 texts) counts only for a supervised run
    config = SMECTrainingConfig(memory_size=1000)
    config.check_memory(supervised=False)
    with pytest.raises(ValueError, match=r"memory_size=1000 is smaller than a batch \(1152 embeddings"):
        config.check_memory(supervised=True)
    with pytest.raises(ValueError, match="top_k=6000 must not exceed memory_size=5000"):
        SMECTrainingConfig(top_k=6000)
    with pytest.raises(ValueError, match=r"must be two finite numbers > 0, got \(0.5, 0.0\)"):
        SMECTrainingConfig(temperature_start=0.5, temperature_end=0.0)


def test_balance_bits_default_follows_the_precisions_and_the_method():
    """The config resolves balance_bits: on for binary training from the PCA start, never for SMEC."""
    from st_matryoshka.config import AdaptorTrainingConfig

    assert AdaptorTrainingConfig(precisions=["binary"]).balance_bits is True
    assert AdaptorTrainingConfig(precisions=["int8"]).balance_bits is False
    assert AdaptorTrainingConfig(precisions=["binary"], pca_init=False).balance_bits is False
    assert AdaptorTrainingConfig(balance_bits=True).balance_bits is True
    assert SMECTrainingConfig(precisions=["binary"]).balance_bits is False
    with pytest.raises(ValueError, match=r"balance_bits must be of type bool \| None, got 'yes'"):
        AdaptorTrainingConfig(balance_bits="yes")
    with pytest.raises(ValueError, match="balance_bits=True applies to the Matryoshka-Adaptor and Search-Adaptor"):
        SMECTrainingConfig(balance_bits=True)


@pytest.fixture(scope="module")
def slice_data(scifact_slice):
    data = load_beir(str(scifact_slice), "train")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    return data, cv, qv


class _BodyProbe(TrainerCallback):
    """Records, per step, whether the body trains and a copy of its last weight."""

    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, model=None, **kwargs):
        adaptor = next((m for m in model if isinstance(m, SMECAdaptor)), None)
        if adaptor is None:  # supervised SMEC's unsupervised phase trains the body alone, as a MatryoshkaAdaptor
            return
        weight = adaptor.residual[-1].weight
        self.steps.append((weight.requires_grad, weight.detach().clone()))


@pytest.mark.slow
def test_smrl_freezes_finished_stages_and_extension_keeps_trained_dims(minilm, slice_data):
    data, cv, qv = slice_data
    config = SMECConfig(dims=[192, 96, 48, 24], **{**_tiny(), "unsupervised_epochs": 2})
    vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)

    def frozen_runs(probe: _BodyProbe) -> list[list[torch.Tensor]]:
        runs, previous = [], True
        for trains, weight in probe.steps:
            if not trains:
                if previous:
                    runs.append([])
                runs[-1].append(weight)
            previous = trains
        return runs

    # Without labels, SMEC's phase is SMRL: the body's stage runs to its cap (start + 2 evaluations) whatever the
    # patience (here 1) and keeps its last weights; then the body is frozen while the later stages train.
    probe = _BodyProbe()
    unlabelled = SMECConfig(**{**vars(config), "supervised": False})
    alone = st_matryoshka.train(minilm, data.with_qrels({}), unlabelled, source=vectors, callbacks=[probe]).stages
    assert alone[0].name == "unsupervised 384->192" and len(alone[0].history) == 3
    assert alone[0].best_step == alone[0].history[-1][0] > 0
    runs = frozen_runs(probe)
    assert len(runs) == 1 and all(torch.equal(runs[0][0], w) for w in runs[0])
    # With labels the body first trains as the unsupervised Matryoshka-Adaptor (issue 32), then SMRL's supervised
    # stages run, the body frozen after the first.
    probe = _BodyProbe()
    result = st_matryoshka.train(minilm, data, config, source=vectors, callbacks=[probe])
    trained, stages = with_adaptor(result.model, result.adaptor), result.stages  # the trainable module form
    names = [s.name for s in stages]
    assert names[0] == "unsupervised joint" and "supervised 384->192" in names and "supervised 48->24" in names
    runs = frozen_runs(probe)
    assert len(runs) == 1 and all(torch.equal(runs[0][0], w) for w in runs[0])
    adaptor = next(m for m in trained if isinstance(m, SMECAdaptor))
    assert adaptor.trained_dims == [384, 192, 96, 48, 24]
    before = {k: v.clone() for k, v in adaptor.state_dict().items()}
    texts = TEXTS * 2
    old = torch.as_tensor(trained.encode(texts))
    extended, _ = extend_smec(trained, data, cv, qv, 12, SMECTrainingConfig(dims=[12], **_tiny()))
    # the caller's model is untouched: the new stage lives on a copy of its adaptor
    assert adaptor.trained_dims == [384, 192, 96, 48, 24]
    assert all(torch.equal(before[k], v) for k, v in adaptor.state_dict().items())
    adaptor = next(m for m in extended if isinstance(m, SMECAdaptor))
    after = adaptor.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # no earlier parameter moved
    assert adaptor.trained_dims == [384, 192, 96, 48, 24, 12] and adaptor.stages[-1] == [0, 24, 12]
    # Whatever the new stage learned (here: random weights, so it surely moved), trained dims keep their outputs.
    _randomise_stage(adaptor, len(adaptor.stages) - 1)
    new = torch.as_tensor(extended.encode(texts))
    assert not torch.equal(old[:, :12], new[:, :12])
    assert torch.equal(old[:, 24:], new[:, 24:])  # outside the new stage's block: bit-identical
    for dim in (192, 96, 48, 24):  # inside it: a rotation, so every similarity is unchanged
        assert torch.allclose(_cos(old[:, :dim]), _cos(new[:, :dim]), atol=1e-5)
    # An intermediate dim re-orders only the block between its trained neighbours: smaller dims stay bit-identical.
    config = SMECTrainingConfig(dims=[64], allow_any_dims=True, **_tiny())
    intermediate, _ = extend_smec(extended, data, cv, qv, 64, config)
    adaptor = next(m for m in intermediate if isinstance(m, SMECAdaptor))
    assert adaptor.stages[-1] == [48, 96, 16]
    _randomise_stage(adaptor, len(adaptor.stages) - 1)
    newer = torch.as_tensor(intermediate.encode(texts))
    assert not torch.equal(new[:, 48:64], newer[:, 48:64])
    assert torch.equal(new[:, :48], newer[:, :48]) and torch.equal(new[:, 96:], newer[:, 96:])
    assert torch.allclose(_cos(new[:, :96]), _cos(newer[:, :96]), atol=1e-5)


class _Loss:
    def __init__(self):
        self.dims = []

    def set_matryoshka_dims(self, dims):
        self.dims.append(list(dims))


class _State:
    def __init__(self, step):
        self.global_step = step


def test_smrl_stage_without_selection_runs_to_its_cap_and_keeps_its_last_weights():
    module = torch.nn.Linear(2, 2)
    first = Stage("a", [module.weight], [2], ["score"], select_best=False)
    second = Stage("b", [module.bias], [1], ["score"])
    scores = iter([1.0, 0.5])  # each stage's start score (from the evaluator); evaluations come as metrics
    loss = _Loss()
    callback = StageCallback(
        module, loss, [first, second], module, lambda model: {"score": next(scores)}, patience=1, max_evaluations=3
    )
    control = type("Control", (), {"should_training_stop": False})()
    callback.on_train_begin(None, _State(0), control)
    for step in (1, 2, 3):  # every evaluation is below the start score of 1.0
        assert callback.current == 0
        with torch.no_grad():
            module.weight.fill_(float(step))
        callback.on_evaluate(None, _State(step), control, metrics={"eval_score": 0.5 - step / 10})
    # Stage "a" ignored patience 1, ran to its cap of 3 evaluations and kept the weights of the last one.
    assert callback.current == 1 and first.end_step == 3 and first.best_step == 3 and loss.dims == [[2], [1]]
    assert torch.all(module.weight == 3.0)
    # Stage "b" selects: one evaluation without improvement ends it, and it restores its start weights.
    with torch.no_grad():
        module.weight.fill_(7.0)  # (frozen for "b" in training; moved here to see the restore)
    callback.on_evaluate(None, _State(4), control, metrics={"eval_score": 0.1})
    assert control.should_training_stop and second.end_step == 4 and second.best_step == 3
    assert torch.all(module.weight == 3.0)


def test_an_evaluation_below_the_floor_never_becomes_the_stage_best():
    """guarded_stopping: a higher score that cost the floor metric more than the tolerance is not kept."""
    module = torch.nn.Linear(2, 2)
    stage = Stage("s", [module.weight], [2], ["seen"], floor_keys=["new"], floor_tolerance=0.01)
    callback = StageCallback(
        module, _Loss(), [stage], module, lambda model: {"seen": 0.5, "new": 0.6}, patience=2, max_evaluations=9
    )
    control = type("Control", (), {"should_training_stop": False})()
    callback.on_train_begin(None, _State(0), control)
    callback.on_evaluate(None, _State(1), control, metrics={"eval_seen": 0.6, "eval_new": 0.595})  # within: best
    callback.on_evaluate(None, _State(2), control, metrics={"eval_seen": 0.9, "eval_new": 0.58})  # higher, below floor
    assert stage.best_step == 1 and stage.best == 0.6 and not control.should_training_stop
    callback.on_evaluate(None, _State(3), control, metrics={"eval_seen": 0.95, "eval_new": 0.55})
    assert control.should_training_stop and stage.best_step == 1  # two evaluations without an admissible gain


def _randomise_stage(adaptor: SMECAdaptor, index: int) -> None:
    generator = torch.Generator().manual_seed(index)
    with torch.no_grad():
        for p in adaptor.stage_parameters(index):
            p.copy_(torch.randn(p.shape, generator=generator))


def _tiny() -> dict:
    return {
        "unsupervised_epochs": 1,
        "supervised_epochs": 2,
        "unsupervised_batch_size": 256,
        "supervised_batch_size": 16,
        "num_negatives": 4,
        "patience": 1,
    }


def test_extend_rejects_dims_that_do_not_shrink(minilm, slice_data):
    data, cv, qv = slice_data
    adaptor = SMECAdaptor(384, stages=plan_stages(384, [192, 96]))
    model = SentenceTransformer(modules=[*minilm, adaptor], device="cpu")
    with pytest.raises(ValueError, match="dim: 100 is not smaller than the smallest trained dim 96"):
        extend_smec(model, data, cv, qv, 100, SMECTrainingConfig(dims=[100]))
    with pytest.raises(ValueError, match="dim: 40 is not half of the smallest trained dim 96"):
        extend_smec(model, data, cv, qv, 40, SMECTrainingConfig(dims=[40]))
    with pytest.raises(ValueError, match="dim: 192 is already trained"):
        extend_smec(model, data, cv, qv, 192, SMECTrainingConfig(dims=[192], allow_any_dims=True))


def test_gradient_variance_callback_windows():
    param = torch.nn.Parameter(torch.zeros(4, 3))
    tracker = GradientVarianceCallback(param, rows=(0, 2), window=2)
    for step, scale in enumerate([1.0, 3.0]):
        param.grad = torch.full((4, 3), scale)
        tracker.on_pre_optimizer_step(None, type("S", (), {"global_step": step})(), None)
    assert tracker.points == [(2, 2.0, 2.0)]  # variance of (1, 3) per entry, mean |grad| 2


@pytest.mark.slow
def test_cli_smec_train_extend_and_errors(scifact_slice, tmp_path, capsys):
    base = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_slice)]
    base += ["--embeddings", str(scifact_slice / "embeddings"), "--method", "smec"]
    out = tmp_path / "smec"
    args = [*base, "--dims", "192,96,48,24", "--output", str(out), "--supervised"]
    args += ["--unsupervised-epochs", "1", "--supervised-epochs", "1", "--unsupervised-batch-size", "256"]
    args += ["--supervised-batch-size", "16", "--num-negatives", "4"]
    assert main(args) == 0
    info = json.loads((out / "st_matryoshka_training.json").read_text())
    assert info["method"] == "smec" and info["config"]["smrl"] and info["config"]["xbm"]
    out2 = tmp_path / "smec12"
    assert main(["extend", "--model", str(out), "--dims", "12", "--output", str(out2)]) == 0
    assert "trained dims [384, 192, 96, 48, 24, 12]" in capsys.readouterr().out
    model = load_model(str(out2))
    assert model.encode(TEXTS, truncate_dim=12).shape == (4, 12)
    errors = [
        ([*base, "--dims", "192,100", "--output", str(tmp_path / "a")], "dims: 100 is not half of 192"),
        ([*base, "--dims", "192,96", "--memory-size", "100", "--output", str(tmp_path / "b")], "--memory-size=100"),
        ([*base, "--dims", "192", "--temperature", "0.5,0", "--output", str(tmp_path / "c")], "--temperature"),
        (["extend", "--model", str(out), "--dims", "30", "--output", str(tmp_path / "d")], "--dims: 30 is not"),
        ([*base[:-2], "--dims", "96", "--no-ads", "--output", str(tmp_path / "e")], "need --method smec"),
    ]
    for argv, message in errors:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_stage_plans_of_every_method():
    """One engine: a joint stage for the Matryoshka-Adaptor, one per dim for SMEC, the body's loss as configured."""
    from st_matryoshka.config import AdaptorTrainingConfig
    from st_matryoshka.engine import stage_plan
    from st_matryoshka.models import MatryoshkaAdaptor

    plain = MatryoshkaAdaptor(32)
    (joint,) = stage_plan(plain, AdaptorTrainingConfig(dims=[16, 8]), "unsupervised")
    assert joint.loss_dims == [32, 16, 8] and joint.aggregate == "geomean"
    assert joint.metric_keys == ["holdout_overlap@10_dim16", "holdout_overlap@10_dim8"]  # full width left out
    assert len(joint.parameters) == len(list(plain.parameters()))
    smec = SMECAdaptor(32, stages=plan_stages(32, [16, 8]))
    stages = stage_plan(smec, SMECTrainingConfig(dims=[16, 8]), "supervised")
    assert [s.loss_dims for s in stages] == [[32, 16], [8]]
    assert stages[1].metric_keys == ["validation_dim8_cosine_ndcg@10"] and stages[1].aggregate == "mean"
    wide = stage_plan(smec, SMECTrainingConfig(dims=[16, 8], body_all_dims=True, body_patience=9), "supervised")
    assert [s.loss_dims for s in wide] == [[32, 16, 8], [8]] and [s.patience for s in wide] == [9, None]
    binary = stage_plan(plain, AdaptorTrainingConfig(dims=[16, 8], precisions=["binary"]), "unsupervised")[0]
    assert "holdout_overlap@10_dim32_binary" in binary.metric_keys
    assert binary.patience == 30 and joint.patience is None  # binary training runs its unsupervised stage to the cap


def test_a_stage_can_have_its_own_patience():
    module = torch.nn.Linear(2, 2)
    patient = Stage("body", [module.weight], [2], ["score"], patience=3)
    callback = StageCallback(module, _Loss(), [patient], module, lambda model: {"score": 1.0}, patience=1)
    control = type("Control", (), {"should_training_stop": False})()
    callback.on_train_begin(None, _State(0), control)
    for step in (1, 2):  # two evaluations without improvement: the callback's patience of 1 would have stopped it
        callback.on_evaluate(None, _State(step), control, metrics={"eval_score": 0.5})
        assert not control.should_training_stop
    callback.on_evaluate(None, _State(3), control, metrics={"eval_score": 0.5})
    assert control.should_training_stop and patient.best_step == 0
