"""Publishing: metadata, cards, export, push, and loading as from the Hub (offline, without st_matryoshka)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from st_matryoshka.cli import main
from st_matryoshka.loading import load_model
from st_matryoshka.metadata import MatryoshkaMetadata, matryoshka_dims

TEXTS = [
    "Vitamin D deficiency is associated with lower bone density.",
    "Aspirin lowers the risk of a second heart attack.",
    "The Moon takes about 27 days to orbit the Earth.",
    "Regulatory T cells suppress autoimmunity.",
]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _train(data: Path, out: Path, *extra: str) -> None:
    args = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(data), "--embeddings", str(data / "embeddings")]
    assert main([*args, "--output", str(out), *extra]) == 0


@pytest.fixture(scope="module")
def published(tmp_path_factory, scifact_slice):
    """Three trained models (PCA fit on Cranfield, an MLP Matryoshka-Adaptor and an SMEC model on a SciFact slice),
    each exported to a Hub-ready folder and laid out in a Hub cache as ``st-test/<name>``."""
    root = tmp_path_factory.mktemp("publish")
    scifact = root / "scifact"  # the slice under SciFact's own name, so the card and MTEB meta name the data set
    scifact.symlink_to(scifact_slice)
    cranfield = SHARED / "cranfield"
    models = {}
    assert (
        main(
            [
                "train",
                "--model",
                "all-MiniLM-L6-v2",
                "--data",
                str(cranfield),
                "--embeddings",
                str(cranfield / "embeddings" / "all-MiniLM-L6-v2"),
                "--method",
                "pca",
                "--dims",
                "192,96,48,24",
                "--output",
                str(root / "pca"),
            ]
        )
        == 0
    )
    models["pca"] = root / "pca"
    _train(scifact, root / "mlp", "--dims", "96,48,24", "--unsupervised-epochs", "2", "--default-dim", "48")
    models["mlp"] = root / "mlp"
    smec = ["--method", "smec", "--supervised", "--dims", "192,96,48,24", "--unsupervised-epochs", "1"]
    smec += ["--supervised-epochs", "1", "--unsupervised-batch-size", "256", "--supervised-batch-size", "16"]
    _train(scifact, root / "smec", *smec, "--num-negatives", "4")
    models["smec"] = root / "smec"
    cache = root / "hub-cache"
    for name, folder in models.items():
        hub = root / f"{name}-hub"
        assert main(["export", "--model", str(folder), "--output", str(hub), "--repo-id", f"st-test/{name}"]) == 0
        snapshot = cache / f"models--st-test--{name}" / "snapshots" / REVISION
        shutil.copytree(hub, snapshot)
        (cache / f"models--st-test--{name}" / "refs").mkdir()
        (cache / f"models--st-test--{name}" / "refs" / "main").write_text(REVISION)
    return {"root": root, "models": models, "cache": cache}


BLOCKED_RUNNER = textwrap.dedent(
    """
    import json, re, sys
    import numpy as np

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "st_matryoshka" or name.startswith("st_matryoshka."):
                raise ImportError(f"{name} is blocked in this process")
            return None

    sys.meta_path.insert(0, _Block())
    try:
        import st_matryoshka  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("st_matryoshka must not be importable here")
    from sentence_transformers import SentenceTransformer

    repo, dims, out, texts = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    model = SentenceTransformer(repo, device="cpu")  # no trust_remote_code
    assert all(type(m).__module__.startswith("sentence_transformers.") for m in model), list(model)
    np.savez(out, **{str(d): model.encode(texts, truncate_dim=d) for d in dims})
    """
)


def _hub_env(cache: Path, tmp: Path) -> dict[str, str]:
    """An offline environment reading the test Hub cache; transformers copies remote code into its own modules
    cache keyed by the (fixed) revision, so each test gets a fresh one: a copy from an earlier run is never used."""
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp / "modules")}


def _run_blocked(cache: Path, repo: str, dims: list[int], out: Path) -> subprocess.CompletedProcess:
    script = out.parent / "blocked_runner.py"
    script.write_text(BLOCKED_RUNNER)
    env = _hub_env(cache, out.parent)
    argv = [sys.executable, str(script), repo, json.dumps(dims), str(out)]
    return subprocess.run([*argv, json.dumps(TEXTS)], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", ["pca", "mlp", "smec"])
@pytest.mark.parametrize("where", ["hub", "training-folder"])
def test_saved_model_loads_in_plain_sentence_transformers_without_st_matryoshka(published, name, where, tmp_path):
    """Issue 39: the training output and its export load by path or repo id in a process where st_matryoshka cannot
    be imported, without trust_remote_code, within 1e-5 of the trained module at every trained dim."""
    folder = published["models"][name]
    original = load_model(str(folder), device="cpu")
    assert any(type(m).__module__.startswith("st_matryoshka.") for m in original)  # the trainable module is back
    dims = matryoshka_dims(str(folder)).dims
    repo = f"st-test/{name}" if where == "hub" else str(folder)
    result = _run_blocked(published["cache"], repo, dims, tmp_path / "out.npz")
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = np.load(tmp_path / "out.npz")
    for dim in dims:
        expected = original.encode(TEXTS, truncate_dim=dim)
        assert np.abs(loaded[str(dim)] - expected).max() <= 1e-5, dim
    saved = published["root"] / f"{name}-hub" if where == "hub" else folder
    entries = json.loads((saved / "modules.json").read_text())
    assert all(e["type"].startswith("sentence_transformers.") for e in entries)
    assert not (saved / "st_matryoshka_modules.py").exists()
    assert (saved / "st_matryoshka_adaptor" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_cards_first_python_block_runs_as_written(published, tmp_path):
    for name in ("pca", "mlp", "smec"):
        card = (published["root"] / f"{name}-hub" / "README.md").read_text()
        block = re.search(r"```python\n(.*?)```", card, re.S).group(1)
        assert f'SentenceTransformer("st-test/{name}"' in block
        prelude = BLOCKED_RUNNER.split("from sentence_transformers import SentenceTransformer")[0]
        script = tmp_path / f"card_{name}.py"
        script.write_text(prelude + "\n" + block)
        env = _hub_env(published["cache"], tmp_path)
        result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        expected = [line[len("# => ") :] for line in block.splitlines() if line.startswith("# => ")]
        assert result.stdout.split("\n")[: len(expected)] == expected


def test_metadata_default_dim_and_card_contents(published):
    hub = published["root"] / "mlp-hub"
    meta = matryoshka_dims(str(hub))
    assert meta.dims == [384, 96, 48, 24] and meta.default_dim == 48 and meta.method == "matryoshka-adaptor"
    # the int8 calibration of the training corpus travels with the model, one range pair per trained dim
    assert {d: len(meta.int8_ranges[str(d)][0]) for d in meta.dims} == {d: d for d in meta.dims}
    config = json.loads((hub / "config_sentence_transformers.json").read_text())
    assert config["truncate_dim"] == 48
    card = (hub / "README.md").read_text()
    yaml = card.split("---")[1]
    for line in ("library_name: sentence-transformers", "- matryoshka", "- st-matryoshka", "- matryoshka-adaptor"):
        assert line in yaml
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in yaml and "- mteb/scifact" in yaml
    assert "has not been evaluated yet" in card  # no scores recorded: the card says so instead of empty tables
    assert "| 48 | 192 | 48 | 6 |" in card  # bytes per vector: float32, int8, binary
    # the trainer's loss names and citations reach the saved card
    assert "MatryoshkaUnsupervisedLoss" in card and "yoon2024matryoshka" in card
    assert "trust_remote_code" not in card and 'SentenceTransformer("st-test/mlp")' in card
    assert not (hub / "st_matryoshka_training.json").exists()  # local paths stay local


def test_recorded_scores_reach_metadata_card_and_model_index(published, scifact_slice, tmp_path):
    folder = tmp_path / "smec"
    shutil.copytree(published["models"]["smec"], folder)
    data = published["root"] / "scifact"
    args = ["evaluate", "--model", str(folder), "--data", str(data), "--split", "test"]
    assert main([*args, "--embeddings", str(data / "embeddings"), "--dims", "384,96,24", "--record"]) == 0
    meta = MatryoshkaMetadata.load(str(folder))
    scores = meta.scores["scifact"]
    assert set(scores) == {"model", "truncation", "pca"}
    assert set(scores["pca"]["ndcg_at_10"]) == {"384", "96", "24"}
    # PCA and truncation agree at full width up to PCA's centring; at 24 dims PCA beats truncation on this corpus
    assert scores["pca"]["ndcg_at_10"]["24"] > scores["truncation"]["ndcg_at_10"]["24"]
    card = (folder / "README.md").read_text()
    assert "| 24 | **" in card and (folder / "matryoshka_dims.png").is_file()
    assert "have a relevant document that the training qrels also cite" in card
    hub = tmp_path / "hub"
    assert main(["export", "--model", str(folder), "--output", str(hub), "--repo-id", "st-test/smec"]) == 0
    yaml = (hub / "README.md").read_text().split("---")[1]
    assert "model-index:" in yaml and "truncate_dim: 24" in yaml and "type: ndcg_at_10" in yaml
    assert (hub / "matryoshka_dims.png").is_file()


def test_matryoshka_dims_by_repo_id_from_the_hub_cache(published, tmp_path):
    code = "from st_matryoshka import matryoshka_dims; print(matryoshka_dims('st-test/smec').dims)"
    env = _hub_env(published["cache"], tmp_path)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[384, 192, 96, 48, 24]"


MTEB_RUNNER = textwrap.dedent(
    """
    import sys
    import mteb
    from st_matryoshka.data import load_beir
    from st_matryoshka.evaluation import mteb_model_meta
    from st_matryoshka.evaluation.mteb_runner import beir_task

    meta = mteb_model_meta("st-test/mlp", register=True)
    print("META", meta.embed_dim, sorted(meta.training_datasets), meta.adapted_from, meta.revision)
    model = mteb.get_model("st-test/mlp", embed_dim=48)
    task = beir_task(load_beir(sys.argv[1], "test"))
    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    print("SCORE", result.task_results[0].get_score())

    from st_matryoshka.cli import main

    argv = ["mteb", "--model", "st-test/mlp", "--data", sys.argv[1], "--embeddings", sys.argv[1] + "/embeddings"]
    assert main([*argv, "--dims", "96,48", "--output", sys.argv[2]]) == 0
    """
)


@pytest.mark.slow
def test_mteb_get_model_and_evaluate_from_the_hub_cache(published, scifact_tiny, tmp_path):
    script = tmp_path / "mteb_runner.py"
    script.write_text(MTEB_RUNNER)
    env = _hub_env(published["cache"], tmp_path)
    out = tmp_path / "mteb-results"
    argv = [sys.executable, str(script), str(scifact_tiny), str(out)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    # st-matryoshka mteb --model ORG/NAME: from the Hub cache, results under the model's meta and Hub revision
    experiments = out / "results" / "st-test__mlp" / REVISION / "experiments"
    assert sorted(p.name for p in experiments.iterdir()) == ["embed_dim_48", "embed_dim_96"]
    meta_files = list((out / "results" / "st-test__mlp" / REVISION).rglob("model_meta.json"))
    assert meta_files
    assert json.loads(meta_files[0].read_text())["adapted_from"] == "sentence-transformers/all-MiniLM-L6-v2"
    meta_line = next(line for line in result.stdout.splitlines() if line.startswith("META"))
    assert f"[384, 96, 48, 24] ['SciFact'] sentence-transformers/all-MiniLM-L6-v2 {REVISION}" in meta_line
    score = float(next(line for line in result.stdout.splitlines() if line.startswith("SCORE")).split()[1])
    assert 0.2 < score <= 1.0


def test_push_uploads_the_exported_folder_once(published, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs.get("private")))
        from huggingface_hub import RepoUrl

        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, branch, **kwargs):
        calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, repo_id, folder_path, revision=None, **kwargs):
        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        card = (Path(folder_path) / "README.md").read_text()
        calls.append(("upload_folder", repo_id, revision, files, card))

        class Commit:
            commit_url = f"https://huggingface.co/{repo_id}/commit/1"

        return Commit()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    argv = ["push", "--model", str(published["models"]["mlp"]), "--repo-id", "st-test/pushed", "--private"]
    assert main([*argv, "--revision", "v1"]) == 0
    assert [c[0] for c in calls] == ["create_repo", "create_branch", "upload_folder"]
    assert calls[0] == ("create_repo", "st-test/pushed", True)
    _, repo, revision, files, card = calls[2]
    assert (repo, revision) == ("st-test/pushed", "v1")
    for expected in ("README.md", "modules.json", "st_matryoshka.json", "st_matryoshka_adaptor/model.safetensors"):
        assert expected in files
    assert "st_matryoshka_training.json" not in files and "st_matryoshka_modules.py" not in files
    assert 'SentenceTransformer("st-test/pushed")' in card


def _one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("st-matryoshka: error:"), errors
    return errors[0]


def test_push_without_network_is_one_line(published, monkeypatch, capsys):
    """Issue 27, case 9: a token and no Hub (offline here) end in one line, not a ConnectError traceback."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    with pytest.raises(SystemExit) as exc:
        main(["push", "--model", str(published["models"]["pca"]), "--repo-id", "st-test/unreachable"])
    assert exc.value.code == 2
    assert "the Hub could not be reached or refused 'st-test/unreachable'" in _one_error(capsys)


def test_publishing_bad_input(published, monkeypatch, capsys, tmp_path):
    from huggingface_hub import HfApi

    model = str(published["models"]["pca"])
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))
    monkeypatch.setattr(HfApi, "upload_folder", lambda *a, **k: pytest.fail("nothing may be uploaded"))
    cases = [
        (["export", "--model", model, "--output", str(tmp_path / "a"), "--repo-id", "just-a-name"], "--repo-id must"),
        (["push", "--model", model, "--repo-id", "org/name"], "no Hugging Face token"),
        (["export", "--model", model, "--output", str(tmp_path / "b"), "--default-dim", "50"], "--default-dim must"),
        (["export", "--model", str(published["root"] / "nothing"), "--output", str(tmp_path / "c")], "does not exist"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert message in _one_error(capsys)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("x")
    with pytest.raises(SystemExit):
        main(["export", "--model", model, "--output", str(occupied)])
    assert "already holds files; pass --overwrite" in _one_error(capsys)
    assert (occupied / "keep.txt").read_text() == "x"
    with pytest.raises(SystemExit):  # --overwrite replaces a model folder, never a folder of other files
        main(["export", "--model", model, "--output", str(occupied), "--overwrite"])
    assert "is not a model folder (it holds keep.txt)" in _one_error(capsys)
    assert (occupied / "keep.txt").read_text() == "x"
    exported = tmp_path / "exported"
    assert main(["export", "--model", model, "--output", str(exported)]) == 0
    (exported / "keep.txt").write_text("x")
    assert main(["export", "--model", model, "--output", str(exported), "--overwrite"]) == 0
    assert (exported / "keep.txt").read_text() == "x" and (exported / "modules.json").is_file()  # issue 42


def test_metadata_from_a_newer_version_names_the_key_and_version(tmp_path):
    (tmp_path / "st_matryoshka.json").write_text(
        json.dumps({"dims": [384, 48], "st_matryoshka_version": "3.0.0", "index_shards": {}})
    )
    with pytest.raises(ValueError, match=r"unknown keys \['index_shards'\]: written by st_matryoshka 3.0.0"):
        matryoshka_dims(str(tmp_path))


def test_title_only_corpus_joins_like_mteb(tmp_path, scifact_tiny, capsys):
    """CACM-style documents (a title and an empty text) and stray whitespace: one join for loader, cache and MTEB."""
    from st_matryoshka.data import document_text, load_beir

    assert document_text("Orbits", "") == "Orbits"
    assert document_text("  Orbits ", " of the Moon  ") == "Orbits   of the Moon"
    assert document_text(None, "  body ") == "body"
    folder = tmp_path / "cacm"
    (folder / "qrels").mkdir(parents=True)
    rows = [json.loads(line) for line in (scifact_tiny / "corpus.jsonl").read_text().splitlines()]
    with open(folder / "corpus.jsonl", "w") as f:
        for i, row in enumerate(rows):
            text = "" if i % 2 == 0 else f"  {row['text'][:200]} "
            f.write(json.dumps({"_id": row["_id"], "title": row["title"], "text": text}) + "\n")
    shutil.copy(scifact_tiny / "queries.jsonl", folder / "queries.jsonl")
    shutil.copy(scifact_tiny / "qrels" / "test.tsv", folder / "qrels" / "test.tsv")
    data = load_beir(str(folder), "test")
    assert data.corpus[0] == rows[0]["title"].strip()
    args = ["mteb", "--model", "all-MiniLM-L6-v2", "--data", str(folder), "--dims", "384,48"]
    assert main([*args, "--output", str(tmp_path / "mteb"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert re.search(r"LocalCacm  384: [0-9.]+  48: [0-9.]+", capsys.readouterr().out)


MODEL_CARDS = Path(__file__).resolve().parents[1] / "model_cards"


@pytest.mark.parametrize("name", sorted(p.name for p in MODEL_CARDS.iterdir() if (p / "st_matryoshka.json").is_file()))
def test_model_cards_are_generated_from_stored_results(name):
    """Golden test: each card in model_cards/ is exactly what its st_matryoshka.json renders to (never hand-edited)."""
    from st_matryoshka.model_card import render_model_card

    folder = MODEL_CARDS / name
    meta = MatryoshkaMetadata.load(str(folder))
    assert meta.exported and meta.scores, "model_cards/ holds exported, evaluated models"
    rendered = render_model_card(meta, plot=True, frontier_plots=bool(meta.frontier))
    assert rendered == (folder / "README.md").read_text(encoding="utf-8")
    assert (folder / "matryoshka_dims.png").is_file()
    assert all((folder / f"frontier_{key}.png").is_file() for key in meta.frontier)


def test_derived_models_get_their_own_card_data(minilm):
    from st_matryoshka.models import MatryoshkaAdaptor
    from st_matryoshka.surgery import native_model, with_adaptor

    tags = list(minilm.model_card_data.tags)
    adapted = with_adaptor(minilm, MatryoshkaAdaptor(384, num_layers=0))
    exported = native_model(adapted)
    cards = [minilm.model_card_data, adapted.model_card_data, exported.model_card_data]
    assert len({id(c) for c in cards}) == 3
    adapted.model_card_data.add_tags("changed")
    assert minilm.model_card_data.tags == tags and "changed" not in exported.model_card_data.tags


def test_plain_save_of_a_trained_model_writes_our_card(minilm, tmp_path):
    from st_matryoshka.config import AdaptorTrainingConfig
    from st_matryoshka.models import MatryoshkaAdaptor
    from st_matryoshka.surgery import with_adaptor
    from st_matryoshka.training import training_metadata

    model = with_adaptor(minilm, MatryoshkaAdaptor(384))
    summary = {"method": "matryoshka-adaptor", "config": AdaptorTrainingConfig(dims=[96, 48]).__dict__}
    model.model_card_data.matryoshka = training_metadata(model, summary)
    assert matryoshka_dims(model).dims == [384, 96, 48]
    model.save(str(tmp_path / "plain"))  # ST's own save: the card renders from the attached metadata
    card = (tmp_path / "plain" / "README.md").read_text()
    assert "384, 96, 48 dims were trained" in card and "has not been evaluated yet" in card
