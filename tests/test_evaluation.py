from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
from transformers import TrainerControl, TrainerState

from st_matryoshka.evaluation import GradedInformationRetrievalEvaluator, NeighbourOverlapEvaluator
from st_matryoshka.models import CachedEmbeddings


@pytest.fixture()
def table_model():
    rng = np.random.default_rng(0)
    texts = [f"d{i}" for i in range(30)] + [f"q{i}" for i in range(5)]
    return SentenceTransformer(
        modules=[CachedEmbeddings(texts, rng.normal(size=(35, 8)).astype("float32"))], device="cpu"
    ), texts


def test_graded_ndcg_equals_st_on_binary_and_uses_grades(table_model):
    model, _ = table_model
    queries = {f"q{i}": f"q{i}" for i in range(5)}
    corpus = {f"d{i}": f"d{i}" for i in range(30)}
    binary = {f"q{i}": {f"d{i}": 1, f"d{i + 10}": 1} for i in range(5)}
    kw = {"ndcg_at_k": [10], "main_score_function": "cosine", "write_csv": False}
    ours = GradedInformationRetrievalEvaluator(queries, corpus, binary, **kw)(model)
    st = InformationRetrievalEvaluator(queries, corpus, {q: set(d) for q, d in binary.items()}, **kw)(model)
    assert ours["cosine_ndcg@10"] == pytest.approx(st["cosine_ndcg@10"])
    assert ours["cosine_recall@10"] == st["cosine_recall@10"]
    # graded: put the most relevant document where the model ranks it, and check the value by hand
    q_emb = model.encode(["q0"])[0]
    d_emb = model.encode([f"d{i}" for i in range(30)])
    order = np.argsort(-(d_emb @ q_emb / np.linalg.norm(d_emb, axis=1)))
    grades = {"q0": {f"d{order[1]}": 3, f"d{order[20]}": 1}}
    value = GradedInformationRetrievalEvaluator({"q0": "q0"}, corpus, grades, **kw)(model)["cosine_ndcg@10"]
    expected = (3 / math.log2(3)) / (3 / math.log2(2) + 1 / math.log2(3))
    assert value == pytest.approx(expected)


def test_neighbour_overlap_is_one_for_the_reference_itself(table_model):
    model, texts = table_model
    vectors = model.encode(texts)
    evaluator = NeighbourOverlapEvaluator(texts[:5], texts, vectors[:5], vectors, dims=[8, 4], k=3, name="h")
    metrics = evaluator(model)
    assert metrics["h_overlap@3_dim8"] == 1.0
    assert metrics["h_overlap@3_dim4"] < 1.0
    assert evaluator.primary_metric == "h_geomean_overlap@3"
    assert metrics["h_geomean_overlap@3"] == pytest.approx(math.sqrt(metrics["h_overlap@3_dim4"]))


def test_one_joint_stage_restores_its_best_weights_and_stops_on_patience():
    from st_matryoshka.callbacks import Stage, StageCallback

    module = torch.nn.Linear(2, 2)
    loss = type("Loss", (), {"set_matryoshka_dims": lambda self, dims: None})()
    stage = Stage("joint", list(module.parameters()), [2, 1], ["a", "b"], aggregate="geomean")
    starts = iter([{"a": 0.25, "b": 1.0}])  # the start score comes from the evaluator: geomean 0.5
    callback = StageCallback(module, loss, [stage], module, lambda model: next(starts), patience=2, max_evaluations=9)
    state, control = TrainerState(), TrainerControl()
    callback.on_train_begin(None, state, control)
    for step, (a, b) in enumerate([(0.49, 1.0), (0.36, 1.0), (0.16, 1.0)], start=1):  # geomeans 0.7, 0.6, 0.4
        state.global_step = step
        with torch.no_grad():
            module.weight.fill_(float(step))
        callback.on_evaluate(None, state, control, metrics={"eval_a": a, "eval_b": b})
    assert control.should_training_stop and stage.best_step == 1 and stage.best == pytest.approx(0.7)
    assert torch.all(module.weight == 1.0)
    with pytest.raises(KeyError, match="not among the evaluation metrics"):
        StageCallback(module, loss, [Stage("x", [], [2], ["c"])], module, lambda m: {"a": 1.0}).on_train_begin(
            None, TrainerState(), TrainerControl()
        )
    with pytest.raises(ValueError, match="aggregate must be one of"):
        Stage("x", [], [2], ["a"], aggregate="max")
    with pytest.raises(ValueError, match="patience must be a positive int, got 0"):
        StageCallback(module, loss, [stage], module, lambda m: {}, patience=0)


def test_quantized_scores_and_the_precision_contract(scifact_slice, tmp_path, capsys):
    import json

    from st_matryoshka.cli import main
    from st_matryoshka.data import load_beir, load_embeddings_dir
    from st_matryoshka.evaluation import evaluate_per_dim
    from st_matryoshka.evaluation.quantized import evaluate_quantized
    from st_matryoshka.surgery import data_fast_model

    data = load_beir(str(scifact_slice), "test")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    fast = data_fast_model(data, cv, qv, [])
    ours = evaluate_quantized(fast, data, [384, 48], "float32")
    theirs = evaluate_per_dim(fast, data, [384, 48])
    for metric in ("ndcg_at_10", "recall_at_100"):  # our metric code is ST's evaluator on floats
        assert ours[metric] == pytest.approx(theirs[metric], abs=1e-9)
    args = ["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_slice), "--split", "test"]
    args += ["--embeddings", str(scifact_slice / "embeddings"), "--dims", "384,96,48"]
    one = tmp_path / "binary.json"
    assert main([*args, "--precision", "binary", "--json", str(one)]) == 0
    binary = json.loads(one.read_text())
    assert set(binary) == {"ndcg_at_10", "recall_at_100"} and set(binary["ndcg_at_10"]) == {"384", "96", "48"}
    several = tmp_path / "all.json"
    assert main([*args, "--precision", "float32,int8,binary", "--rescore", "100", "--json", str(several)]) == 0
    result = json.loads(several.read_text())
    assert set(result) == {"float32", "int8", "binary"}
    assert result["binary"]["bytes_per_vector"] == {"384": 48, "96": 12, "48": 6}
    assert result["int8"]["bytes_per_vector"]["384"] == 384 and result["float32"]["bytes_per_vector"]["48"] == 192
    # int8 loses almost nothing; rescoring binary codes with the float query recovers part of what binary loses
    assert abs(result["int8"]["ndcg_at_10"]["384"] - result["float32"]["ndcg_at_10"]["384"]) < 0.01
    assert result["binary"]["ndcg_at_10"]["384"] > binary["ndcg_at_10"]["384"]
    for extra, message in (
        (["--precision", "int4"], "--precision must be among"),
        (["--precision", "binary", "--dims", "384,20"], "not divisible by 8"),
        (["--precision", "binary", "--rescore", "50"], "--rescore must be at least 100"),
    ):
        with pytest.raises(SystemExit):
            main([*args, *extra])
        assert message in capsys.readouterr().err


def test_frontier_command_writes_table_plot_and_pareto_fronts(scifact_slice, tmp_path, capsys):
    import json

    from st_matryoshka.cli import main
    from st_matryoshka.quantization import pareto_front

    model = tmp_path / "pca"
    args = ["--data", str(scifact_slice), "--embeddings", str(scifact_slice / "embeddings")]
    assert main(["train", "--model", "all-MiniLM-L6-v2", *args, "--method", "pca", "--dims", "96,48",
                 "--output", str(model)]) == 0  # fmt: skip
    out = tmp_path / "frontier"
    assert main(["frontier", "--model", str(model), *args, "--dims", "384,96,48", "--output", str(out)]) == 0
    result = json.loads((out / "frontier.json").read_text())
    rows = result["rows"]
    assert {r["method"] for r in rows} == {"truncation", "PCA", "model"} and len(rows) == 3 * 3 * 3
    assert {(r["dim"], r["precision"], r["bytes"]) for r in rows} >= {(384, "binary", 48), (48, "float32", 192)}
    for method, front in result["pareto"].items():
        assert front == pareto_front([r for r in rows if r["method"] == method])
        assert all(a["bytes"] < b["bytes"] and a["ndcg_at_10"] < b["ndcg_at_10"] for a, b in zip(front, front[1:]))
    # the PCA model and PCA fit on the same corpus are the same map
    by_key = {(r["method"], r["dim"], r["precision"]): r["ndcg_at_10"] for r in rows}
    assert by_key[("model", 48, "float32")] == pytest.approx(by_key[("PCA", 48, "float32")], abs=1e-6)
    assert (out / "frontier.png").stat().st_size > 5_000 and "| Pareto |" in (out / "frontier.md").read_text()
    # --record stores the points with the model; its card then shows the best config per byte budget and the plot
    argv = ["frontier", "--model", str(model), *args, "--dims", "384,96,48", "--output", str(out), "--record"]
    (out / "frontier.md").write_text("my notes")  # issue 42: a file of the same name is not replaced unasked
    with pytest.raises(SystemExit):
        main(argv)
    assert (out / "frontier.md").read_text() == "my notes"
    assert main([*argv, "--overwrite"]) == 0
    card = (model / "README.md").read_text()
    assert "### Index size against quality" in card and "![NDCG@10 against bytes per vector" in card
    key = scifact_slice.name
    assert (model / f"frontier_{key}.png").stat().st_size > 5_000
    section = card.split("### Index size against quality")[1]
    budget_48 = next(line for line in section.splitlines() if line.startswith("| 48 |"))
    model_cell, truncation_cell = budget_48.split("|")[2:4]  # this model's column first
    assert truncation_cell.strip() == f"{by_key[('truncation', 384, 'binary')]:.4f} (384-d binary)"
    best = max((v, d, p) for (m, d, p), v in by_key.items() if m == "model" and d * {"float32": 4, "int8": 1,
               "binary": 1 / 8}[p] <= 48)  # fmt: skip
    assert model_cell.strip() == f"{best[0]:.4f} ({best[1]}-d {best[2]})"
    with pytest.raises(SystemExit):  # a base model has no folder to record into
        main(["frontier", "--model", "all-MiniLM-L6-v2", *args, "--dims", "48", "--output", str(tmp_path / "new"),
              "--record"])  # fmt: skip


def test_frontier_speed_adds_queries_per_second_to_rows_table_and_card(scifact_slice, tmp_path):
    """frontier --speed: one FAISS measurement per (dim, precision), shared by the methods, in the json, the table
    and the recorded card (issue 26, item 3). No speed is asserted: a unit test is no benchmark."""
    import json

    from st_matryoshka.cli import main

    model = tmp_path / "pca"
    args = ["--data", str(scifact_slice), "--embeddings", str(scifact_slice / "embeddings")]
    assert main(["train", "--model", "all-MiniLM-L6-v2", *args, "--method", "pca", "--dims", "48",
                 "--output", str(model)]) == 0  # fmt: skip
    out = tmp_path / "frontier"
    argv = ["frontier", "--model", str(model), *args, "--dims", "384,48", "--precision", "float32,binary"]
    assert main([*argv, "--output", str(out), "--speed", "--record"]) == 0
    rows = json.loads((out / "frontier.json").read_text())["rows"]
    assert all(r["qps"] > 0 and r["qps_threads"] >= 1 for r in rows)
    for key in {(r["dim"], r["precision"]) for r in rows}:
        assert len({r["qps"] for r in rows if (r["dim"], r["precision"]) == key}) == 1
    assert "| queries/s |" in (out / "frontier.md").read_text()
    assert " q/s)" in (model / "README.md").read_text()
