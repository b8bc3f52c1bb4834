from __future__ import annotations

import numpy as np
import pytest

from st_matryoshka.cache import model_fingerprint
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.evaluation import evaluate_per_dim
from st_matryoshka.evaluation.mteb_runner import beir_task, named_tasks, run_mteb_per_dim
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import fast_model, head_of


@pytest.fixture(scope="module")
def fast_and_data(scifact_slice):
    data = load_beir(str(scifact_slice), "test")
    cv, qv = load_embeddings_dir(str(scifact_slice / "embeddings"), data, dim=384)
    base = load_model("all-MiniLM-L6-v2")
    fast = fast_model(list(data.corpus) + list(data.queries), np.concatenate([cv, qv]), head_of(base))
    return fast, data, model_fingerprint(base)


def test_mteb_scores_per_dim_match_our_evaluator(fast_and_data, tmp_path):
    fast, data, revision = fast_and_data
    task = beir_task(data)
    scores = run_mteb_per_dim(fast, [task], [384, 48], str(tmp_path), "st-matryoshka/minilm", revision)
    ours = evaluate_per_dim(fast, data, [384, 48])["ndcg_at_10"]
    mteb_scores = scores[task.metadata.name]
    # MTEB's cache keys results by name + revision: a second dim must not return the first one's score
    assert abs(mteb_scores["384"] - mteb_scores["48"]) > 0.05
    for dim in ("384", "48"):
        assert mteb_scores[dim] == pytest.approx(ours[dim], abs=0.002)
    experiments = tmp_path / "results" / "st-matryoshka__minilm" / revision / "experiments"
    assert sorted(p.name for p in experiments.iterdir()) == ["embed_dim_384", "embed_dim_48"]
    assert (experiments / "embed_dim_48" / f"{task.metadata.name}.json").is_file()
    assert fast.truncate_dim is None


def test_results_folder_of_another_model_is_refused(fast_and_data, tmp_path):
    fast, data, revision = fast_and_data
    run_mteb_per_dim(fast, [beir_task(data)], [24], str(tmp_path), "st-matryoshka/a", revision)
    with pytest.raises(ValueError, match="holds results of another model"):
        run_mteb_per_dim(fast, [beir_task(data)], [24], str(tmp_path), "st-matryoshka/b", revision)


def test_untrained_dim_warns_once_and_still_scores(fast_and_data, tmp_path, caplog):
    fast, data, revision = fast_and_data
    scores = run_mteb_per_dim(
        fast, [beir_task(data)], [96, 40], str(tmp_path), "st-matryoshka/m", revision, trained_dims=[96, 48]
    )
    assert set(next(iter(scores.values()))) == {"96", "40"}
    assert caplog.text.count("are not among the trained dims") == 1


def test_unknown_task_name_lists_close_matches():
    with pytest.raises(ValueError, match=r"unknown MTEB task 'SciFakt'; close matches: \[.*'SciFact'"):
        named_tasks(["SciFakt"])


def test_mteb_cli_on_a_local_folder(scifact_slice, tmp_path, capsys):
    from st_matryoshka.cli import main

    args = ["mteb", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_slice)]
    args += ["--embeddings", str(scifact_slice / "embeddings"), "--dims", "384,48", "--output", str(tmp_path)]
    assert main(args) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("LocalScifact")][0]
    assert "384:" in line and "48:" in line
    assert list((tmp_path / "results" / "st-matryoshka__all-MiniLM-L6-v2").iterdir())


def test_mteb_scores_binary_codes_as_their_own_experiment(fast_and_data, tmp_path):
    """Sign bits through MTEB equal our own symmetric binary scoring; int8 needs the stored calibration."""
    from st_matryoshka.evaluation.quantized import evaluate_quantized

    fast, data, revision = fast_and_data
    task = beir_task(data)
    scores = run_mteb_per_dim(
        fast, [task], [48], str(tmp_path), "st-matryoshka/minilm", revision, precisions=["float32", "binary"]
    )[task.metadata.name]
    ours = evaluate_quantized(fast, data, [48], "binary")["ndcg_at_10"]["48"]
    assert scores["48@binary"] == pytest.approx(ours, abs=0.01) and scores["48@binary"] < scores["48"]
    experiments = tmp_path / "results" / "st-matryoshka__minilm" / revision / "experiments"
    assert sorted(p.name for p in experiments.iterdir()) == ["embed_dim_48", "embed_dim_48__precision_binary"]
    with pytest.raises(ValueError, match="no stored int8 calibration for dim 48"):
        run_mteb_per_dim(fast, [task], [48], str(tmp_path), "st-matryoshka/minilm", revision, precisions=["int8"])
