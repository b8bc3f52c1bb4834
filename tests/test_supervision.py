"""Supervised training that generalises: document-disjoint validation, the guard, and the unsupervised phase."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from st_matryoshka._validation import ParameterError
from st_matryoshka.config import config_for
from st_matryoshka.data import document_components, load_beir, load_embeddings_dir, validation_split
from st_matryoshka.engine import (
    choose_interpolation,
    fit_adaptor,
    interpolate_supervised,
    interpolated_state,
    keyed_data,
    supervised_rows,
)
from st_matryoshka.evaluation import matryoshka_evaluator
from st_matryoshka.surgery import data_fast_model

QRELS = {
    "a": {"d1": 1},
    "b": {"d1": 1, "d2": 1},
    "c": {"d2": 1},
    "d": {"d3": 1},
    "e": {"d4": 1},
    "f": {"d5": 2},
    "g": {"d6": 1},
    "h": {"d6": 1},
    "i": {"d7": 1},
    "j": {"d8": 1},
}


def test_components_link_queries_through_shared_documents():
    groups = document_components(QRELS)
    assert ["a", "b", "c"] in groups and ["g", "h"] in groups and ["d"] in groups
    assert sorted(q for g in groups for q in g) == sorted(QRELS)


@pytest.mark.parametrize("seed", [0, 1, 2, 42])
def test_document_disjoint_split_shares_no_document_with_training(seed):
    split = validation_split(QRELS, 0.2, seed=seed)
    assert split.kind == "document-disjoint" and not split.reason
    assert sorted(split.fit + split.held_out) == sorted(QRELS) and split.held_out and split.fit
    cited = {d for q in split.fit for d in QRELS[q]}
    assert not cited & {d for q in split.held_out for d in QRELS[q]}
    assert split == validation_split(QRELS, 0.2, seed=seed)  # seeded


def test_both_adds_a_hash_held_out_slice_beside_the_document_disjoint_one():
    qrels = {f"q{i}": {f"d{i // 2}": 1} for i in range(60)}  # pairs of queries share a document
    split = validation_split(qrels, 0.2, kind="both")
    assert split.kind == "both" and split.seen and split.held_out
    assert sorted(split.fit + split.held_out + split.seen) == sorted(qrels)
    cited = {d for q in split.fit + split.seen for d in qrels[q]}
    assert not cited & {d for q in split.held_out for d in qrels[q]}


def test_connected_qrels_fall_back_to_the_hash_split_and_say_why():
    qrels = {q: {"shared": 1, f"own-{q}": 1} for q in "abcdefghijklmnopqrstuvwxyz"}
    split = validation_split(qrels, 0.15)
    assert split.kind == "query-hash" and "1 document-connected groups" in split.reason
    assert len(split.held_out) == 10 and sorted(split.fit + split.held_out) == sorted(qrels)  # min_queries
    assert len(validation_split(dict(list(qrels.items())[:8]), 0.15).held_out) == 4  # at most half
    assert validation_split(qrels, 0.15, kind="query-hash").reason == ""
    with pytest.raises(ValueError, match="validation split must be one of"):
        validation_split(qrels, 0.15, kind="random")


def test_config_checks_the_split_and_the_weights():
    from st_matryoshka._validation import ParameterError

    with pytest.raises(ParameterError, match="validation_split must be one of"):
        config_for("matryoshka-adaptor", [48], validation_split="docs")
    for name in ("supervised_distill_weight", "unsupervised_weight", "distill_weight"):
        with pytest.raises(ParameterError, match=f"{name} must be a finite number >= 0"):
            config_for("matryoshka-adaptor", [48], **{name: float("nan")})


@pytest.fixture(scope="module")
def slice_data(scifact_slice):
    data = load_beir(str(scifact_slice), "train")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    return data, cv, qv


SMALL = {"holdout_max": 100, "criterion_corpus_max": 1500, "unsupervised_batch_size": 256, "patience": 2}


def test_training_rows_never_name_the_validation_documents(slice_data):
    data, cv, qv = slice_data
    keyed = keyed_data(data)
    split = validation_split(keyed.qrels, 0.15)
    assert split.kind == "document-disjoint"
    doc_index = {c: i for i, c in enumerate(keyed.corpus_ids)}
    held = {doc_index[c] for q in split.held_out for c in keyed.qrels[q]}
    qvec = dict(zip(keyed.query_ids, qv))
    config = config_for("matryoshka-adaptor", [96, 48], supervised_epochs=3)
    named: set[int] = set()
    supervised_rows(keyed, split.fit, qvec, cv, config, named, exclude_docs=held)
    assert named and not named & held
    plain: set[int] = set()  # without the exclusion the backbone's hard negatives do name some of them
    supervised_rows(keyed, split.fit, qvec, cv, config, plain)
    assert plain & held


@pytest.mark.slow
def test_unsupervised_phase_trains_the_same_with_or_without_supervision(slice_data):
    """Issue 24: under supervised the unsupervised phase kept its untrained start (it trained without L_distill)."""
    data, cv, qv = slice_data
    config = config_for("matryoshka-adaptor", [96, 48, 24], 384, unsupervised_epochs=6, supervised_epochs=2, **SMALL)
    _, alone = fit_adaptor("matryoshka-adaptor", 384, data.with_qrels({}), cv, qv, config, supervised=False)
    _, both = fit_adaptor("matryoshka-adaptor", 384, data, cv, qv, config, supervised=True)
    assert both[0].name == alone[0].name == "unsupervised joint"
    assert both[0].history == alone[0].history and both[0].best_step == alone[0].best_step
    assert alone[0].best_step > 0  # on this slice the criterion rises: the phase does train
    assert both[-1].name == "supervised joint" and both[-1].selection["validation"] == "both"


def test_guard_restores_the_unsupervised_adaptor_when_validation_prefers_it(slice_data, caplog):
    data, cv, qv = slice_data
    config = config_for("matryoshka-adaptor", [96, 48], 384, unsupervised_epochs=2, **SMALL)
    adaptor, _ = fit_adaptor("matryoshka-adaptor", 384, data.with_qrels({}), cv, qv, config, supervised=False)
    good = {k: v.clone() for k, v in adaptor.state_dict().items()}
    split = validation_split(data.qrels, 0.15, kind="document-disjoint")
    val = data.with_qrels({q: data.qrels[q] for q in split.held_out})
    model = data_fast_model(val, cv, qv, [adaptor])
    evaluator = matryoshka_evaluator(val, [384, 96, 48], name="validation")
    with torch.no_grad():  # a "supervised" state that has forgotten everything
        for p in adaptor.parameters():
            p.copy_(torch.randn_like(p))
    caplog.set_level(logging.INFO, logger="st_matryoshka.engine")
    record = interpolate_supervised(model, adaptor, evaluator, [384, 96, 48], good, split, config)
    assert record["kept"] == "unsupervised" and record["interpolation"] == 0.0 and "kept a = 0.0" in caplog.text
    assert all(torch.equal(v, good[k]) for k, v in adaptor.state_dict().items())  # a = 0: the state, bit for bit
    assert record["validation_queries"] == len(split.held_out) and len(record["grid"]) == 11
    better = np.mean(list(record["unsupervised_ndcg_at_10"].values()))
    assert better > np.mean(list(record["supervised_ndcg_at_10"].values()))
    trained = {k: v.clone() for k, v in adaptor.state_dict().items()}
    noise = {k: torch.randn_like(v) for k, v in good.items()}
    keep_or_drop = config_for("matryoshka-adaptor", [96, 48], 384, interpolation_steps=1, **SMALL)
    record = interpolate_supervised(model, adaptor, evaluator, [384, 96, 48], noise, split, keep_or_drop)
    assert record["kept"] == "supervised" and record["interpolation"] == 1.0  # the better state stays
    assert all(torch.equal(v, trained[k]) for k, v in adaptor.state_dict().items())  # a = 1, bit for bit
    assert [p["a"] for p in record["grid"]] == [0.0, 1.0]
    few = config_for("matryoshka-adaptor", [96, 48], 384, min_validation_queries=len(split.held_out) + 1, **SMALL)
    record = interpolate_supervised(model, adaptor, evaluator, [384, 96, 48], noise, split, few)
    assert record["kept"] == "unsupervised" and "too few validation queries" in caplog.text
    assert all(torch.equal(v, noise[k]) for k, v in adaptor.state_dict().items())


def test_too_few_validation_queries_skip_the_supervised_phase(slice_data, caplog):
    """Eight labels hold out four queries per kind: the guard could keep only a = 0, so nothing trains."""
    data, cv, qv = slice_data
    few = data.with_qrels({q: data.qrels[q] for q in sorted(data.qrels)[:8]})
    config = config_for("matryoshka-adaptor", [96, 48], 384, unsupervised_epochs=2, **SMALL)
    caplog.set_level(logging.INFO, logger="st_matryoshka.engine")
    alone, _ = fit_adaptor("matryoshka-adaptor", 384, data.with_qrels({}), cv, qv, config, supervised=False)
    adaptor, stages = fit_adaptor("matryoshka-adaptor", 384, few, cv, qv, config, supervised=True)
    assert stages[-1].name == "supervised (not run)" and stages[-1].selection["kept"] == "unsupervised"
    assert stages[-1].selection["interpolation"] == 0.0 and "the supervised phase did not run" in caplog.text
    assert all(torch.equal(v, alone.state_dict()[k]) for k, v in adaptor.state_dict().items())
    three = data.with_qrels({q: data.qrels[q] for q in sorted(data.qrels)[:3]})  # `both` leaves no training query
    _, stages = fit_adaptor("matryoshka-adaptor", 384, three, cv, qv, config, supervised=True)
    assert stages[-1].selection["kept"] == "unsupervised"


def test_interpolated_state_mixes_what_differs_and_keeps_the_end_points_exact():
    unsup = {"w": torch.zeros(2, 2), "basis": torch.eye(2), "index": torch.tensor([0, 1])}
    sup = {"w": torch.ones(2, 2), "basis": torch.eye(2), "index": torch.tensor([0, 1])}
    assert interpolated_state(unsup, sup, 0.0)["w"] is unsup["w"]
    assert interpolated_state(unsup, sup, 1.0)["w"] is sup["w"]
    mixed = interpolated_state(unsup, sup, 0.3)
    assert torch.allclose(mixed["w"], torch.full((2, 2), 0.3)) and torch.equal(mixed["index"], unsup["index"])
    with pytest.raises(ValueError, match="'index' differs between the states"):
        interpolated_state(unsup, {**sup, "index": torch.tensor([1, 0])}, 0.5)
    with pytest.raises(ValueError, match="differ in keys"):
        interpolated_state(unsup, {"w": sup["w"]}, 0.5)


def point(a, seen, validation):
    return {"a": a, "seen": dict(zip((384, 48, 24), seen)), "validation": dict(zip((384, 48, 24), validation))}


def test_the_guard_keeps_an_interior_a_that_validation_favours():
    grid = [
        point(0.0, (0.60, 0.50, 0.40), (0.50, 0.40, 0.30)),
        point(0.5, (0.66, 0.56, 0.46), (0.50, 0.41, 0.30)),  # best admissible: the seen queries gain
        point(1.0, (0.70, 0.60, 0.50), (0.50, 0.40, 0.28)),  # higher still, but 0.02 below a = 0 at 24 dims
    ]
    best, reason = choose_interpolation(grid, ["seen", "validation"], 0.005, enough=True)
    assert best == 1 and "best mean" in reason
    assert choose_interpolation(grid, ["seen", "validation"], 0.05, enough=True)[0] == 2
    assert choose_interpolation(grid, ["seen", "validation"], 0.005, enough=False) == (0, "too few validation queries")
    flat = [point(0.0, (0.6, 0.5, 0.4), (0.5, 0.4, 0.3)), point(1.0, (0.6, 0.5, 0.4), (0.5, 0.4, 0.3))]
    assert choose_interpolation(flat, ["seen", "validation"], 0.005, enough=True)[0] == 0  # a tie keeps a = 0


def test_guard_refuses_a_higher_mean_that_hides_a_loss_at_one_dim(caplog):
    """SMEC on Cranfield: a supervised state ahead on the mean over dims but 0.05 behind at 24 dims was kept."""
    adaptor = torch.nn.Linear(1, 1, bias=False)
    scores = {1.0: {384: 0.70, 96: 0.62, 48: 0.55, 24: 0.40}, 2.0: {384: 0.72, 96: 0.68, 48: 0.60, 24: 0.35}}

    def evaluator(model):  # NDCG@10 per dim of whichever state the adaptor holds: 1 unsupervised, 2 supervised
        return {f"validation_dim{d}_cosine_ndcg@10": v for d, v in scores[float(adaptor.weight.detach())].items()}

    split = validation_split({f"q{i}": {f"d{i}": 1} for i in range(100)}, 0.2)
    unsupervised = {"weight": torch.ones(1, 1)}
    caplog.set_level(logging.INFO, logger="st_matryoshka.engine")
    for tolerance, kept in [(0.005, "unsupervised"), (0.06, "supervised")]:
        with torch.no_grad():
            adaptor.weight.fill_(2.0)
        config = config_for("matryoshka-adaptor", [96], guard_tolerance=tolerance, interpolation_steps=1)
        record = interpolate_supervised(adaptor, adaptor, evaluator, [384, 96, 48, 24], unsupervised, split, config)
        assert record["kept"] == kept and float(adaptor.weight.detach()) == (1.0 if kept == "unsupervised" else 2.0)
        assert record["guard_tolerance"] == tolerance
    assert "lost 0.0500 at 24 dims on the validation queries" in caplog.text


def test_supervised_smec_falls_back_to_the_unsupervised_matryoshka_adaptor(slice_data):
    """Issue 32: SMEC's state where validation drops its supervised update is the Matryoshka-Adaptor's, same seed."""
    data, cv, qv = slice_data
    settings = {"unsupervised_epochs": 3, "supervised_epochs": 1, "min_validation_queries": 10_000, **SMALL}
    ma, ma_stages = fit_adaptor(
        "matryoshka-adaptor", 384, data, cv, qv, config_for("matryoshka-adaptor", [192, 96], 384, **settings), False
    )
    smec, smec_stages = fit_adaptor("smec", 384, data, cv, qv, config_for("smec", [192, 96], 384, **settings), True)
    assert smec_stages[0].history == ma_stages[0].history  # the same unsupervised phase
    assert smec_stages[-1].selection["kept"] == "unsupervised"  # too few validation queries: a = 0
    x = {"sentence_embedding": torch.as_tensor(cv[:64])}
    with torch.no_grad():
        ours, theirs = smec.eval()(dict(x))["sentence_embedding"], ma.eval()(dict(x))["sentence_embedding"]
    for dim in (384, 192, 96):
        a, b = (torch.nn.functional.normalize(t[:, :dim], dim=-1) for t in (ours, theirs))
        torch.testing.assert_close(a @ a.T, b @ b.T, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_train_supervised_records_and_cards_the_selection(scifact_slice, tmp_path, capsys):
    from st_matryoshka.cli import main

    def argv(out, *extra):
        return ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_slice), "--embeddings",
                str(scifact_slice / "embeddings"), "--dims", "96,48", "--output", str(out), "--supervised",
                "--unsupervised-epochs", "2", "--supervised-epochs", "2", *extra]  # fmt: skip

    out = tmp_path / "model"
    assert main(argv(out)) == 0
    selection = json.loads((out / "st_matryoshka.json").read_text())["selection"]
    assert selection["validation"] == "both" and selection["kept"] in ("supervised", "interpolated", "unsupervised")
    assert 0.0 <= selection["interpolation"] <= 1.0 and selection["seen_queries"] >= 10
    assert set(selection["supervised_ndcg_at_10"]) == {"384", "96", "48"}
    card = (out / "README.md").read_text()
    assert "**Supervised selection:**" in card and "no training query cites" in card
    assert f"kept **a = {selection['interpolation']}**" in card and "queries about cited documents, kept" in card
    assert selection["corpus_mode"] == "fixed" and "what it costs on" in card and "--corpus-mode growing" in card
    assert selection["guard_tolerance"] == 0.005
    # issue 40: the growing corpus also holds the queries about uncited documents to the tolerance
    assert main(argv(tmp_path / "growing", "--corpus-mode", "growing")) == 0
    growing = json.loads((tmp_path / "growing" / "st_matryoshka.json").read_text())["selection"]
    assert growing["corpus_mode"] == "growing" and growing["validation"] == "both"
    card = (tmp_path / "growing" / "README.md").read_text()
    assert "never falling more than 0.005 below the unsupervised adaptor" in card
    for point in growing["grid"]:  # every admissible point the guard could keep
        if point["a"] == growing["interpolation"]:
            drops = [point["validation"][d] - growing["grid"][0]["validation"][d] for d in point["validation"]]
            assert min(drops) >= -0.005
    assert main(argv(tmp_path / "hash", "--validation-split", "query-hash")) == 0
    hashed = json.loads((tmp_path / "hash" / "st_matryoshka.json").read_text())["selection"]
    assert hashed["validation"] == "query-hash"
    assert "by a hash of the id" in (tmp_path / "hash" / "README.md").read_text()
    steps = ("--interpolation-steps", "1")
    disjoint_argv = argv(tmp_path / "disjoint", "--validation-split", "document-disjoint", *steps)
    assert main(disjoint_argv) == 0
    disjoint = json.loads((tmp_path / "disjoint" / "st_matryoshka.json").read_text())["selection"]
    assert disjoint["validation"] == "document-disjoint" and [p["a"] for p in disjoint["grid"]] == [0.0, 1.0]
    assert "no training query cites" in (tmp_path / "disjoint" / "README.md").read_text()


def test_a_fixed_corpus_guard_needs_enough_queries_of_the_kind_that_chooses_only():
    """Issue 40: with a fixed corpus the document-disjoint queries are reported, so too few of them (5 on some sets)
    no longer stop the supervised phase; a growing corpus still needs enough of both kinds."""
    from st_matryoshka.data import ValidationSplit
    from st_matryoshka.engine import enough_validation

    split = ValidationSplit(
        fit=[f"f{i}" for i in range(40)], held_out=[f"d{i}" for i in range(5)], seen=[f"s{i}" for i in range(12)],
        kind="both", reason="",
    )  # fmt: skip
    assert enough_validation(split, 10, "fixed") and not enough_validation(split, 10, "growing")
    from st_matryoshka import MatryoshkaAdaptorConfig

    assert MatryoshkaAdaptorConfig().corpus_mode == "fixed"
    with pytest.raises(ParameterError, match="corpus_mode must be one of"):
        MatryoshkaAdaptorConfig(corpus_mode="static")
