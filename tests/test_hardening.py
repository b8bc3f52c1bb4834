"""Hostile and careless input: one line naming the argument, file or row, exit code 2, no traceback, no code run."""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest

from st_matryoshka.cli import main


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("st-matryoshka: error:"), lines
    return lines[0]


@pytest.fixture(scope="module")
def pca_model(tmp_path_factory, scifact_tiny):
    out = tmp_path_factory.mktemp("models") / "pca"
    args = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny)]
    args += ["--embeddings", str(scifact_tiny / "embeddings"), "--method", "pca", "--dims", "96,48"]
    args += ["--output", str(out)]
    assert main(args) == 0
    return out


PAYLOAD = "import pathlib\npathlib.Path({marker!r}).write_text('code from the model folder ran')\n"


@pytest.fixture()
def planted(pca_model, tmp_path):
    """Copies of a real model carrying a payload that would write a marker file if imported."""
    marker = tmp_path / "PAYLOAD_RAN"
    folders = {}
    auto_map = tmp_path / "auto_map"
    shutil.copytree(pca_model, auto_map)
    config = json.loads((auto_map / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil_model.EvilModel", "AutoConfig": "evil_model.EvilConfig"}
    (auto_map / "config.json").write_text(json.dumps(config))
    (auto_map / "evil_model.py").write_text(PAYLOAD.format(marker=str(marker)))
    folders["auto_map"] = (auto_map, "config.json: auto_map")
    module_type = tmp_path / "module_type"
    shutil.copytree(pca_model, module_type)
    entries = json.loads((module_type / "modules.json").read_text())
    entries[2]["type"] = "evil_module.Evil"
    (module_type / "modules.json").write_text(json.dumps(entries))
    (module_type / "evil_module.py").write_text(PAYLOAD.format(marker=str(marker)))
    folders["module_type"] = (module_type, "modules.json: module type 'evil_module.Evil'")
    for folder, _ in folders.values():  # extend reads the training record first: make it an SMEC one
        record = json.loads((folder / "st_matryoshka_training.json").read_text())
        (folder / "st_matryoshka_training.json").write_text(json.dumps({**record, "method": "smec"}))
    return folders, marker


@pytest.mark.parametrize("kind", ["auto_map", "module_type"])
def test_no_command_runs_code_planted_in_a_model_folder(planted, kind, scifact_tiny, tmp_path, capsys, monkeypatch):
    folders, marker = planted
    folder, where = folders[kind]
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    data = ["--data", str(scifact_tiny), "--embeddings", str(scifact_tiny / "embeddings")]
    commands = {
        "evaluate": ["evaluate", "--model", str(folder), *data, "--dims", "48"],
        "train": ["train", "--model", str(folder), *data, "--dims", "48", "--output", str(tmp_path / "t")],
        "mteb": ["mteb", "--model", str(folder), *data, "--dims", "48", "--output", str(tmp_path / "m")],
        "extend": ["extend", "--model", str(folder), "--dims", "24", "--output", str(tmp_path / "e")],
        "export": ["export", "--model", str(folder), "--output", str(tmp_path / "x")],
        "push": ["push", "--model", str(folder), "--repo-id", "org/name"],
    }
    for name, argv in commands.items():
        line = _fails(argv, capsys)
        assert where in line and "refused" in line and "--trust-remote-code" in line, (name, line)
        assert not marker.exists(), f"{name} ran code from the model folder"


def _corrupt(path, data: bytes) -> None:
    path.write_bytes(data)


def test_bad_input_table(pca_model, scifact_tiny, tmp_path, capsys, monkeypatch):
    """Every case: exit 2, one line naming the argument, file or row, before any training."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "a_file").write_text("x")
    emb = ["--embeddings", str(scifact_tiny / "embeddings")]
    train = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), *emb, "--dims", "48"]
    evaluate = ["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), *emb, "--dims", "48"]

    def data_copy(name: str, corpus_line: dict | None = None, raw_line: str | None = None):
        folder = tmp_path / name
        shutil.copytree(scifact_tiny, folder)
        lines = (folder / "corpus.jsonl").read_text().splitlines()
        lines[3] = raw_line if raw_line is not None else json.dumps(corpus_line)
        (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
        return folder

    def embeddings_copy(name: str, corpus: np.ndarray | bytes):
        folder = tmp_path / name
        shutil.copytree(scifact_tiny / "embeddings", folder)
        if isinstance(corpus, bytes):
            (folder / "corpus.npy").write_bytes(corpus)
        else:
            np.save(folder / "corpus.npy", corpus)
        return folder

    def model_copy(name: str, damage) -> str:
        folder = tmp_path / name
        shutil.copytree(pca_model, folder)
        damage(folder)
        return str(folder)

    good = np.load(scifact_tiny / "embeddings" / "corpus.npy")
    zeros = good.copy()
    zeros[[4, 9]] = 0.0
    npy_bytes = (scifact_tiny / "embeddings" / "corpus.npy").read_bytes()
    cases = [
        # where the output cannot go: found before any work
        ([*train, "--output", str(tmp_path / "a_file" / "model")], "a_file' is a file"),
        ([*train, "--output", str(tmp_path / "a_file")], "a_file' already holds files"),
        ([*evaluate, "--json", str(tmp_path / "a_file" / "s.json")], "--json: cannot create"),
        # mistyped paths are local paths, not Hub ids
        (["evaluate", "--model", "all-MiniLM-L6-v2", "--data", "data/scifcat", "--dims", "48"], "data/scifcat"),
        (["evaluate", "--model", "models/nope", "--data", str(scifact_tiny), "--dims", "48"], "models/nope"),
        (
            ["evaluate", "--model", "nobody/nothing", "--data", str(scifact_tiny), "--dims", "48"],
            "not a local folder, and not found on the Hub (offline)",
        ),
        # damaged model files
        ([*evaluate[:2], model_copy("trunc", lambda f: _corrupt(f / "model.safetensors", b"\x08\x00")),
          *evaluate[3:]], "model.safetensors is damaged"),
        ([*evaluate[:2], model_copy("modjson", lambda f: _corrupt(f / "modules.json", b"{not json")),
          *evaluate[3:]], "modules.json is not a valid modules.json"),
        # damaged or meaningless embeddings
        ([*train[:-4], "--embeddings", str(embeddings_copy("e1", npy_bytes[:200])), "--dims", "48", "--output", "o"],
         "corpus.npy is not a readable .npy array"),
        ([*train[:-4], "--embeddings", str(embeddings_copy("e2", b"garbage" * 40)), "--dims", "48", "--output", "o"],
         "corpus.npy is not a readable .npy array"),
        ([*train[:-4], "--embeddings", str(embeddings_copy("e3", (good * 100).astype(np.int64))), "--dims", "48",
          "--output", "o"], "has dtype int64; embeddings must be floating point"),
        ([*train[:-4], "--embeddings", str(embeddings_copy("e4", zeros)), "--dims", "48", "--output", "o"],
         "has 2 all-zero or constant rows (rows 4, 9)"),
        # wrong types in the data, named by line
        ([*train[:4], str(data_copy("d1", {"_id": "x1", "title": "", "text": None})), *emb, "--dims", "48",
          "--output", "o"], "corpus.jsonl line 4: 'text' must be a string, got NoneType"),
        ([*train[:4], str(data_copy("d2", {"_id": "x2", "title": "", "text": 12})), *emb, "--dims", "48",
          "--output", "o"], "corpus.jsonl line 4: 'text' must be a string, got int 12"),
        ([*train[:4], str(data_copy("d3", raw_line='{"_id": "x3", "title": "", "text": "bad \\ud800 text"}')), *emb,
          "--dims", "48", "--output", "o"], "corpus.jsonl line 4: 'text' holds a lone surrogate"),
        # a supervised run that cannot run fails before the unsupervised stage, not after it
        ([*train, "--supervised", "--train-split", "test", "--num-negatives", "60", "--output", "o"],
         "--num-negatives=60 exceeds the 50 candidate negatives"),
        ([*evaluate, "--device", "gpu0"], "--device: 'gpu0' is not a torch device"),
        # already handled before this issue, kept handled
        ([*train[:-2], "--dims", "48,96", "--output", "o"], "--dims must be strictly descending"),
        ([*train[:-4], "--embeddings", str(tmp_path / "missing"), "--dims", "48", "--output", "o"], "--embeddings"),
    ]  # fmt: skip
    for argv, message in cases:
        line = _fails(argv, capsys)
        assert message in line, (argv, line)
    assert not (tmp_path / "o").exists()


def test_corrupted_cache_shard_is_named_set_aside_and_re_encoded(minilm, tmp_path, caplog):
    from st_matryoshka.cache import EmbeddingCache
    from st_matryoshka.surgery import backbone_of

    texts = ["Aspirin and heart attacks.", "Orbital mechanics of the moon.", "Bone density and vitamin D."]
    cache = EmbeddingCache(backbone_of(minilm), cache_dir=str(tmp_path))
    first = cache.encode(texts, show_progress_bar=False)
    (shard,) = [p for p in os.listdir(cache.folder) if p.endswith(".npz")]
    mode = stat.S_IMODE(os.stat(os.path.join(cache.folder, shard)).st_mode)
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask  # the user's umask, not mkstemp's 0600
    path = os.path.join(cache.folder, shard)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    again = EmbeddingCache(backbone_of(minilm), cache_dir=str(tmp_path)).encode(texts, show_progress_bar=False)
    assert np.allclose(first, again, atol=1e-5)
    assert f"shard {path} is damaged" in caplog.text
    assert os.path.exists(path + ".corrupt")
    # a third run reads the new shard and encodes nothing
    third = EmbeddingCache(backbone_of(minilm), cache_dir=str(tmp_path))
    third.backbone = None  # would fail if it tried to encode
    assert np.allclose(third.encode(texts, show_progress_bar=False), first, atol=1e-6)


def test_saved_models_use_the_umask_and_killed_saves_are_cleaned_up(pca_model, tmp_path):
    from st_matryoshka.loading import load_model
    from st_matryoshka.training import save_model_atomic

    stale = tmp_path / ".tmp-st_matryoshka-999999999-abc"  # a save whose process is gone
    stale.mkdir()
    (stale / "half.bin").write_bytes(b"x")
    model = load_model(str(pca_model))
    save_model_atomic(model, str(tmp_path / "saved"))
    assert not stale.exists()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(tmp_path / "saved").st_mode) == 0o777 & ~mask
    for root, _, files in os.walk(tmp_path / "saved"):  # safetensors writes 0600 through its own temporary file
        for name in files:
            assert stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode) == 0o666 & ~mask, name


def test_overwrite_replaces_only_a_model_folder(pca_model, scifact_tiny, tmp_path, capsys, monkeypatch):
    """Issue 27, case 1: --overwrite never deletes a data folder, the current directory or a user's files."""
    data = tmp_path / "small"
    shutil.copytree(scifact_tiny, data)
    emb = ["--embeddings", str(data / "embeddings")]
    train = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(data), *emb, "--method", "pca", "--dims", "48"]
    thesis = tmp_path / "v"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("years of work")
    line = _fails([*train, "--output", str(thesis), "--overwrite"], capsys)
    assert "is not a model folder (it holds thesis.txt)" in line
    monkeypatch.chdir(thesis)
    assert "is the current directory" in _fails([*train, "--output", ".", "--overwrite"], capsys)
    assert "is the current directory" in _fails([*train, "--output", str(tmp_path), "--overwrite"], capsys)
    monkeypatch.chdir(tmp_path)
    assert "holds the input" in _fails([*train, "--output", str(data), "--overwrite"], capsys)
    assert "holds the input" in _fails([*train, "--output", str(data / "embeddings"), "--overwrite"], capsys)
    assert (thesis / "thesis.txt").read_text() == "years of work" and (data / "corpus.jsonl").exists()
    model = tmp_path / "model"
    assert main([*train, "--output", str(model)]) == 0
    (model / "notes.txt").write_text("mine")
    assert main([*train, "--output", str(model), "--overwrite"]) == 0  # a model folder is replaced ...
    assert (model / "notes.txt").read_text() == "mine" and (model / "st_matryoshka.json").exists()  # ... not notes
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".tmp-", ".old-"))]


def test_a_save_never_replaces_what_another_process_wrote_meanwhile(pca_model, tmp_path):
    """Issue 27, case 2: the final move is exclusive; the first model stays whole and the second save fails."""
    from st_matryoshka._io import atomic_folder

    out = tmp_path / "model"
    with pytest.raises(ValueError, match="was written by another process while this one ran"):
        with atomic_folder(str(out)) as tmp:
            with open(os.path.join(tmp, "weights.bin"), "w") as f:
                f.write("second")
            shutil.copytree(pca_model, out)  # another run finished first
    assert (out / "st_matryoshka.json").exists() and not (out / "weights.bin").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith((".tmp-", ".old-"))]
    with atomic_folder(str(out), overwrite=True) as tmp:  # with overwrite, what the last save wrote is replaced
        with open(os.path.join(tmp, "modules.json"), "w") as f:
            f.write("[]")
    assert sorted(os.listdir(out)) == [".st_matryoshka_files", "modules.json"]


def test_evaluate_json_is_a_new_file_and_never_the_models_own(pca_model, scifact_tiny, tmp_path, capsys):
    """Issue 27, case 3."""
    emb = ["--embeddings", str(scifact_tiny / "embeddings")]
    evaluate = ["evaluate", "--model", str(pca_model), "--data", str(scifact_tiny), *emb, "--dims", "48"]
    own = pca_model / "st_matryoshka.json"
    before = own.read_text()
    assert "exists; pass --overwrite" in _fails([*evaluate, "--json", str(own)], capsys)
    assert "inside the model folder" in _fails([*evaluate, "--json", str(own), "--overwrite"], capsys)
    assert own.read_text() == before
    scores = tmp_path / "s.json"
    scores.write_text("{}")
    assert "exists; pass --overwrite" in _fails([*evaluate, "--json", str(scores)], capsys)
    assert main([*evaluate, "--json", str(scores), "--overwrite"]) == 0
    assert "ndcg_at_10" in json.loads(scores.read_text())
    assert sorted(os.listdir(tmp_path)) == ["s.json"]  # no temporary file left


def test_non_finite_and_empty_settings_are_refused_by_flag(scifact_tiny, tmp_path, capsys):
    """Issue 27, cases 4 and 8: NaN/inf settings and --supervised-epochs 0 fail before any training."""
    emb = ["--embeddings", str(scifact_tiny / "embeddings")]
    train = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), *emb, "--output", "o"]
    smec = [*train, "--method", "smec", "--dims", "192,96"]
    cases = [
        ([*smec, "--temperature", "0.5,nan"], "two finite numbers > 0"),
        ([*smec, "--temperature", "inf,0.1"], "two finite numbers > 0"),
        ([*smec, "--stage-lr-multiplier", "inf"], "--stage-lr-multiplier must be a finite number > 0"),
        ([*train, "--dims", "48", "--distill-weight", "nan"], "--distill-weight must be a finite number >= 0"),
        ([*train, "--dims", "48", "--distill-weight", "inf"], "--distill-weight must be a finite number >= 0"),
        ([*train, "--dims", "48", "--supervised", "--train-split", "test", "--supervised-epochs", "0"],
         "--supervised-epochs must be a positive int"),
    ]  # fmt: skip
    for argv, message in cases:
        line = _fails(argv, capsys)
        assert message in line, (argv, line)
    assert not (tmp_path / "o").exists()


def test_empty_task_list_long_repo_id_and_negative_seed_are_refused(pca_model, scifact_tiny, tmp_path, capsys):
    """Issue 27, cases 10 and 12."""
    line = _fails(["mteb", "--model", str(pca_model), "--tasks", " , ", "--dims", "48", "--output", "m"], capsys)
    assert "--tasks must name at least one MTEB task" in line
    long_id = "org/" + "n" * 120
    line = _fails(["export", "--model", str(pca_model), "--output", str(tmp_path / "x"), "--repo-id", long_id], capsys)
    assert "caps an org and a name at 96 characters" in line
    emb = ["--embeddings", str(scifact_tiny / "embeddings")]
    train = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), *emb, "--dims", "48"]
    assert "--seed must be an int from 0" in _fails([*train, "--seed", "-1", "--output", str(tmp_path / "o")], capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path / "o").exists()


def test_a_full_disk_is_one_line_before_any_vector_is_written(scifact_tiny, tmp_path, capsys, monkeypatch):
    """Issue 27, case 5: memory-mapped outputs reserve their blocks first (no SIGBUS), no temporary file left."""
    corpus = str(scifact_tiny / "embeddings" / "corpus.npy")
    assert main(["fit-vectors", "--corpus", corpus, "--method", "pca", "--dims", "48", "--output",
                 str(tmp_path / "pca")]) == 0  # fmt: skip

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    mine = tmp_path / "v.npy.tmp.npy"  # a user's file beside the output is never used as the temporary one
    mine.write_text("keep")
    argv = ["apply-vectors", "--model", str(tmp_path / "pca"), "--input", corpus, "--dim", "48", "--output",
            str(tmp_path / "v.npy")]  # fmt: skip
    assert main(argv) == 0 and mine.read_text() == "keep"
    monkeypatch.setattr(os, "posix_fallocate", full)
    out = tmp_path / "out" / "v.npy"
    out.parent.mkdir()
    argv = ["apply-vectors", "--model", str(tmp_path / "pca"), "--input", corpus, "--dim", "48", "--output", str(out)]
    line = _fails(argv, capsys)
    assert "No space left on device" in line and f"{out.parent}/.tmp-st_matryoshka-" in line
    assert os.listdir(out.parent) == []


def test_sigterm_is_like_ctrl_c_exit_143_and_no_temporary_folder_left(scifact_tiny, tmp_path):
    """Issue 27, case 11."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    os.makedirs(env["TMPDIR"])
    argv = [sys.executable, "-m", "st_matryoshka.cli", "train", "--model", "all-MiniLM-L6-v2", "--data",
            str(scifact_tiny), "--embeddings", str(scifact_tiny / "embeddings"), "--dims", "48",
            "--unsupervised-batch-size", "16", "--unsupervised-epochs", "1000", "--precision", "binary",
            "--output", str(tmp_path / "m")]  # fmt: skip
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(n.startswith("st_matryoshka_") for n in os.listdir(env["TMPDIR"])):  # training has started
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-500:]
    assert (
        err.strip()
        .splitlines()[-1]
        .endswith("st-matryoshka: terminated (SIGTERM); nothing was saved by the unfinished step")
        or "terminated (SIGTERM)" in err
    )
    assert not [n for n in os.listdir(env["TMPDIR"]) if n.startswith("st_matryoshka_")]
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"embedding_dim": 200000}, "embedding_dim=200000 exceeds anything model.safetensors holds"),
        ({"num_layers": 100000}, "num_layers=100000 exceeds anything model.safetensors holds"),
        ({"hidden_dim": 10000000}, "hidden_dim=10000000 exceeds anything model.safetensors holds"),
        ({"embedding_dim": True}, "embedding_dim must be an int, got True"),
        ({"num_layers": 2}, "does not match model.safetensors: missing ['residual.2.bias'"),
        ({"hidden_dim": 100, "num_layers": 1}, "does not match model.safetensors"),
    ],
)
def test_module_config_is_checked_against_the_weights_before_allocating(pca_model, scifact_tiny, tmp_path, capsys,
                                                                         change, message):  # fmt: skip
    """Issue 27, case 6: sizes beyond the weights, wrong kinds and mismatched shapes, one line naming the key."""
    folder = tmp_path / "m"
    shutil.copytree(pca_model, folder)
    (config_path,) = folder.glob("st_matryoshka_adaptor/config.json")
    config = json.loads(config_path.read_text())
    config.update(change)
    config_path.write_text(json.dumps(config))
    argv = ["evaluate", "--model", str(folder), "--data", str(scifact_tiny), "--embeddings",
            str(scifact_tiny / "embeddings"), "--dims", "48"]  # fmt: skip
    assert message in _fails(argv, capsys)


def test_bad_bytes_and_values_name_their_file_line_or_key(pca_model, scifact_tiny, tmp_path, capsys):
    """Issue 27, cases 9 and 10: non-UTF-8 and deeply nested corpus lines, a '--3' score, damaged metadata."""
    emb = ["--embeddings", str(scifact_tiny / "embeddings")]

    def data_copy(name: str, corpus_line: bytes | None = None, qrels_row: str | None = None):
        folder = tmp_path / name
        shutil.copytree(scifact_tiny, folder)
        if corpus_line is not None:
            lines = (folder / "corpus.jsonl").read_bytes().splitlines()
            lines[3] = corpus_line
            (folder / "corpus.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        if qrels_row is not None:
            with open(folder / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
                f.write(qrels_row)
        return str(folder)

    def evaluate(data, model="all-MiniLM-L6-v2"):
        return ["evaluate", "--model", model, "--data", data, *emb, "--dims", "48"]

    def model_copy(name: str, metadata: bytes) -> str:
        folder = tmp_path / name
        shutil.copytree(pca_model, folder)
        (folder / "st_matryoshka.json").write_bytes(metadata)
        return str(folder)

    nested = b'{"_id": "x", "text": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    meta = json.loads((pca_model / "st_matryoshka.json").read_text())
    cases = [
        (evaluate(data_copy("utf", b'{"_id": "x", "text": "caf\xe9"}')), "corpus.jsonl line 4 is not UTF-8 (byte"),
        (evaluate(data_copy("deep", nested)), "corpus.jsonl line 4 is nested too deeply"),
        (evaluate(data_copy("score", qrels_row="q\td\t--3\n")), "is not 'query-id<TAB>corpus-id<TAB>score'"),
        (["export", "--model", model_copy("garbage", b"\xff\xfe garbage"), "--output", str(tmp_path / "x")],
         "st_matryoshka.json is not a JSON file"),
        (["export", "--model", model_copy("dims", json.dumps({**meta, "dims": "abc"}).encode()), "--output",
          str(tmp_path / "y")], "st_matryoshka.json: dims must be positive ints, got 'abc'"),
    ]  # fmt: skip
    for argv, message in cases:
        line = _fails(argv, capsys)
        assert message in line, (argv[:4], line)
    record = ["evaluate", "--model", model_copy("record", b"{"), "--data", str(scifact_tiny), *emb, "--dims", "48"]
    assert "--record:" in _fails([*record, "--record"], capsys)  # before any scoring


def test_a_npy_header_promising_more_rows_than_the_file_holds_is_refused_before_allocating(scifact_tiny, tmp_path,
                                                                                           capsys):  # fmt: skip
    """Issue 27, case 9: a header claiming 10¹² rows, in apply-vectors, fit-vectors and --embeddings."""
    raw = (scifact_tiny / "embeddings" / "corpus.npy").read_bytes()
    end = raw.index(b"\n")
    header = raw[:end]
    rows = header.split(b"'shape': (")[1].split(b",")[0]
    forged = header.replace(b"'shape': (" + rows + b",", b"'shape': (1000000000000,")
    forged = forged[: len(header)] if len(forged) > len(header) else forged
    forged = forged.rstrip(b" ") + b" " * (len(header) - len(forged.rstrip(b" ")))
    assert len(forged) == len(header)
    huge = tmp_path / "emb"
    shutil.copytree(scifact_tiny / "embeddings", huge)
    (huge / "corpus.npy").write_bytes(forged + raw[end:])
    expected = "is not a readable .npy array (its header says shape (1000000000000, 384)"
    assert expected in _fails(["fit-vectors", "--corpus", str(huge / "corpus.npy"), "--method", "pca", "--dims", "48",
                               "--output", str(tmp_path / "o")], capsys)  # fmt: skip
    assert expected in _fails(["evaluate", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny),
                               "--embeddings", str(huge), "--dims", "48"], capsys)  # fmt: skip


def test_bad_module_types_and_pickled_weights_are_one_line(pca_model, scifact_tiny, tmp_path, capsys):
    """Issue 27, case 9: a module type that names no class; a backbone pytorch_model.bin carrying a pickle payload."""
    import pickle

    bad_type = tmp_path / "bad_type"
    shutil.copytree(pca_model, bad_type)
    entries = json.loads((bad_type / "modules.json").read_text())
    entries[1]["type"] = "sentence_transformers.__init__"
    (bad_type / "modules.json").write_text(json.dumps(entries))
    data = ["--data", str(scifact_tiny), "--embeddings", str(scifact_tiny / "embeddings"), "--dims", "48"]
    line = _fails(["evaluate", "--model", str(bad_type), *data], capsys)
    assert "module type 'sentence_transformers.__init__' is not a Sentence-Transformers module" in line
    pickled = tmp_path / "pickled"
    shutil.copytree(pca_model, pickled)
    (pickled / "model.safetensors").unlink()
    marker = tmp_path / "PAYLOAD_RAN"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (pickled / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": Payload()}))
    line = _fails(["evaluate", "--model", str(pickled), *data], capsys)
    assert "cannot load" in line and not marker.exists()


def test_train_refuses_a_full_disk_before_training(scifact_tiny, tmp_path, capsys, monkeypatch):
    """Issue 27, case 5: train fails at once, not after training with a SafetensorError traceback."""
    import collections

    import st_matryoshka._io as io_module

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(io_module.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    argv = ["train", "--model", "all-MiniLM-L6-v2", "--data", str(scifact_tiny), "--embeddings",
            str(scifact_tiny / "embeddings"), "--dims", "48", "--output", str(tmp_path / "m")]  # fmt: skip
    line = _fails(argv, capsys)
    assert "--output:" in line and "MB free" in line and not (tmp_path / "m").exists()


@pytest.mark.parametrize("scale", [1e-15, 1e-30, 1e20, 1e30])
def test_inputs_at_any_scale_map_as_unscaled_ones(scale):
    """Issue 27, case 7: tiny or huge input vectors no longer collapse to one output row."""
    import torch

    from st_matryoshka.models import MatryoshkaAdaptor, SMECAdaptor
    from st_matryoshka.models.smec import plan_stages

    torch.manual_seed(0)
    x = torch.randn(6, 32)
    for adaptor in (MatryoshkaAdaptor(32), SMECAdaptor(32, stages=plan_stages(32, [16, 8]))):
        adaptor.init_rotation(torch.randn(200, 32))
        adaptor.eval()
        with torch.no_grad():
            plain = adaptor({"sentence_embedding": x})["sentence_embedding"]
            scaled = adaptor({"sentence_embedding": x * scale})["sentence_embedding"]
        assert torch.allclose(plain, scaled, atol=1e-5), type(adaptor).__name__
        assert torch.isfinite(scaled).all() and torch.cdist(scaled, scaled).triu(1).max() > 0.1


def test_a_shard_set_aside_by_another_process_meanwhile_is_skipped(minilm, tmp_path, monkeypatch):
    """Issue 27, case 11: concurrent readers of one cache; a listed shard that another process removed is skipped."""
    from st_matryoshka import cache as cache_module
    from st_matryoshka.cache import EmbeddingCache
    from st_matryoshka.surgery import backbone_of

    texts = ["Aspirin and heart attacks.", "Orbital mechanics of the moon."]
    first = EmbeddingCache(backbone_of(minilm), cache_dir=str(tmp_path)).encode(texts, show_progress_bar=False)
    listdir = os.listdir
    monkeypatch.setattr(cache_module.os, "listdir", lambda path: [*listdir(path), "0000-gone.npz"])
    reader = EmbeddingCache(backbone_of(minilm), cache_dir=str(tmp_path))
    reader.backbone = None  # everything is cached: it must not encode
    assert np.allclose(reader.encode(texts, show_progress_bar=False), first, atol=1e-6)
