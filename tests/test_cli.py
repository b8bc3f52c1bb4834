from __future__ import annotations

import json
import os
import re

import pytest

from st_matryoshka.cli import main


def _train(data, out, *extra):
    return main(
        [
            "train",
            "--model",
            "all-MiniLM-L6-v2",
            "--data",
            str(data),
            "--embeddings",
            str(data / "embeddings"),
            "--dims",
            "96,48,24",
            "--output",
            str(out),
            *extra,
        ]
    )


@pytest.mark.slow
def test_train_then_evaluate_supervised(scifact_slice, tmp_path, capsys):
    out = tmp_path / "model"
    assert _train(scifact_slice, out, "--supervised", "--unsupervised-epochs", "3", "--supervised-epochs", "4") == 0
    summary = json.loads((out / "st_matryoshka_training.json").read_text())
    for stage in summary["stages"]:
        # eval_on_start scores the untrained state: the kept weights are never worse than the start
        assert stage["best"] >= stage["history"][0][1]
    scores_file = tmp_path / "scores.json"
    args = ["evaluate", "--model", str(out), "--data", str(scifact_slice), "--split", "test"]
    args += ["--embeddings", str(scifact_slice / "embeddings"), "--dims", "384,96,24", "--json", str(scores_file)]
    assert main(args) == 0
    scores = json.loads(scores_file.read_text())
    assert set(scores) == {"ndcg_at_10", "recall_at_100"}
    assert set(scores["ndcg_at_10"]) == {"384", "96", "24"}
    assert all(0.0 <= v <= 1.0 for v in scores["recall_at_100"].values())
    base_file = tmp_path / "base.json"
    args[2] = "all-MiniLM-L6-v2"
    args[-1] = str(base_file)
    assert main(args) == 0
    base = json.loads(base_file.read_text())
    # the adaptor was trained on this corpus: it must beat plain truncation at 24 dims
    assert scores["ndcg_at_10"]["24"] > base["ndcg_at_10"]["24"]


@pytest.mark.slow
def test_evaluate_runs_the_transformer_through_the_cache(scifact_tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ST_MATRYOSHKA_CACHE", str(tmp_path / "cache"))
    scores_file = tmp_path / "s.json"
    args = ["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), "--split", "test"]
    args += ["--dims", "384,48", "--json", str(scores_file)]
    assert main(args) == 0
    from_cache = json.loads(scores_file.read_text())
    args += ["--embeddings", str(scifact_tiny / "embeddings"), "--overwrite"]  # the second run replaces s.json
    assert main(args) == 0
    provided = json.loads(scores_file.read_text())
    for metric in from_cache:
        for dim in ("384", "48"):
            assert abs(from_cache[metric][dim] - provided[metric][dim]) < 0.02
    assert any(os.scandir(tmp_path / "cache"))


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        ("96,0", r"--dims must be positive ints, got \[96, 0\]"),
        ("48,96", r"--dims must be strictly descending, got \[48, 96\]"),
        ("512,96", r"--dims must not exceed the model's embedding width 384, got \[512, 96\]"),
        ("a,b", r"--dims must be a comma-separated list of ints, got 'a,b'"),
        ("384", r"--dims must include a dim below the width 384, got \[384\]"),
    ],
)
def test_bad_dims_are_one_line_errors(scifact_tiny, tmp_path, capsys, dims, message):
    with pytest.raises(SystemExit) as exc:
        _train(scifact_tiny, tmp_path / "m", "--dims", dims)
    assert exc.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("st-matryoshka: error:")]
    assert len(errors) == 1 and re.search(message, errors[0])
    assert not (tmp_path / "m").exists()


def test_existing_output_is_refused_without_overwrite(scifact_tiny, tmp_path, capsys):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("other model")
    with pytest.raises(SystemExit):
        _train(scifact_tiny, out)
    assert "already holds files; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "other model"


def test_bad_embeddings_and_data(scifact_tiny, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _train(scifact_tiny, tmp_path / "m", "--embeddings", str(tmp_path / "missing"))
    assert "--embeddings: folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(tmp_path / "none"), "--dims", "48"])
    assert "--data: folder" in capsys.readouterr().err


def test_model_without_pooling(tmp_path, minilm, scifact_tiny, capsys):
    from sentence_transformers import SentenceTransformer

    SentenceTransformer(modules=[minilm[0]], device="cpu").save(str(tmp_path / "nopool"))
    with pytest.raises(SystemExit):
        main(["evaluate", "--model", str(tmp_path / "nopool"), "--data", str(scifact_tiny), "--dims", "48"])
    assert "no Pooling module" in capsys.readouterr().err


def test_pca_method_saves_a_linear_adaptor(scifact_tiny, tmp_path, capsys):
    out = tmp_path / "pca"
    assert _train(scifact_tiny, out, "--method", "pca") == 0
    config = json.loads((out / "st_matryoshka_adaptor" / "config.json").read_text())
    assert config["num_layers"] == 0 and config["center_input"] is True
    with pytest.raises(SystemExit):
        _train(scifact_tiny, tmp_path / "pca2", "--method", "pca", "--supervised")
    assert "--supervised does not apply to method 'pca'" in capsys.readouterr().err


def test_search_adaptor_is_a_supervised_linear_map(scifact_slice, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _train(scifact_slice, tmp_path / "sa0", "--method", "search-adaptor")
    assert "method 'search-adaptor' is supervised; it needs --train-split" in capsys.readouterr().err
    out = tmp_path / "sa"
    assert _train(scifact_slice, out, "--method", "search-adaptor", "--supervised", "--supervised-epochs", "2") == 0
    config = json.loads((out / "st_matryoshka_adaptor" / "config.json").read_text())
    assert config["num_layers"] == 0
    summary = json.loads((out / "st_matryoshka_training.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["supervised joint"]
