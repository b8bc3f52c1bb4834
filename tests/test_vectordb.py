"""Issue 35: the codes in Milvus (Milvus Lite) and the float prefixes in Qdrant (local mode), built and searched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from st_matryoshka._validation import ParameterError
from st_matryoshka.index import VectorIndex
from st_matryoshka.vectordb import MilvusIndex, QdrantIndex

pytest.importorskip("pymilvus")
pytest.importorskip("qdrant_client")

DOCS = np.random.default_rng(0).standard_normal((600, 64)).astype(np.float32)
IDS = [f"doc-{i}" for i in range(len(DOCS))]
RANGES = [[-1.0] * 32, [1.0] * 32]


def test_milvus_codes_match_the_faiss_index_and_a_crashed_build_finishes(tmp_path):
    uri = str(tmp_path / "docs.db")
    settings = {"dim": 32, "precision": "binary", "rescore_store": "int8", "ranges": RANGES, "model_fingerprint": "m1"}
    with MilvusIndex.create(uri, **settings) as index:
        index.add(DOCS[:250], IDS[:250])  # acknowledged; then the build "crashes" (no save, client gone)
    with MilvusIndex.create(uri, **settings) as index:
        assert index.info.count == 250  # the rerun finds the collection and what it holds
        index.add(DOCS, IDS)  # the whole corpus again: only the 350 missing ids are inserted
        index.save()
    faiss_index = VectorIndex.create(str(tmp_path / "faiss"), 32, "binary", rescore_store="int8", ranges=RANGES)
    faiss_index.add(DOCS, IDS)
    faiss_index.save()
    with MilvusIndex.open(uri, model_fingerprint="m1", dim=32) as opened:
        assert opened.info.count == 600 and opened.info.engine == "milvus"
        for rescore in (None, 100):
            scores, ids = opened.search(DOCS[:20], top_k=5, rescore=rescore)
            expected_scores, expected = faiss_index.search(DOCS[:20], top_k=5, rescore=rescore)
            assert [row[0] for row in ids] == IDS[:20]  # each document finds itself
            assert ids == expected and np.allclose(scores, expected_scores, atol=1e-5)
    with pytest.raises(ParameterError, match="was built with another model"):
        MilvusIndex.open(uri, model_fingerprint="other")
    with pytest.raises(ParameterError, match="holds 32-d codes, not 48-d"):
        MilvusIndex.open(uri, dim=48)
    with pytest.raises(ParameterError, match="holds binary codes .* not float32"):
        MilvusIndex.create(uri, **{**settings, "precision": "float32"})
    with pytest.raises(ParameterError, match="uri must be a Milvus Lite file"):
        MilvusIndex.open(str(tmp_path / "docs.sqlite"))
    foreign = tmp_path / "notes.db"  # a user's own file with a .db name: refused, and left as it was
    foreign.write_text("my own data\n")
    with pytest.raises(ParameterError, match="uri: .* exists and is not a Milvus Lite database"):
        MilvusIndex.create(str(foreign), dim=32)
    assert foreign.read_text() == "my own data\n"


def test_qdrant_holds_the_float_prefix_with_binary_quantisation(tmp_path):
    path = str(tmp_path / "qdrant")
    with QdrantIndex.create(path, dim=32, precision="binary", model_fingerprint="m1") as index:
        index.add(DOCS[:300], IDS[:300])
    with QdrantIndex.create(path, dim=32, precision="binary", model_fingerprint="m1") as index:
        assert index.info.count == 300
        index.add(DOCS, IDS)
        index.save()
    with QdrantIndex.open(path, model_fingerprint="m1") as opened:
        assert opened.info.count == 600 and opened.info.kind == "hnsw"
        scores, ids = opened.search(DOCS[:10], top_k=3, rescore=30)
        assert [row[0] for row in ids] == IDS[:10] and np.allclose(scores[:, 0], 1.0, atol=1e-5)
        prefix = DOCS[:, :32] / np.linalg.norm(DOCS[:, :32], axis=1, keepdims=True)
        exact = np.argsort(-(prefix[:10] @ prefix.T), axis=1)[:, :3]  # local mode searches the floats exactly
        assert ids == [[IDS[j] for j in row] for row in exact]
    with pytest.raises(ParameterError, match="was built with another model"):
        QdrantIndex.open(path, model_fingerprint="other")


def test_index_commands_with_the_databases(scifact_slice, tmp_path, capsys):
    from st_matryoshka.cli import main

    data, emb = str(scifact_slice), str(scifact_slice / "embeddings")
    build = ["index", "build", "--model", "all-MiniLM-L6-v2", "--data", data, "--embeddings", emb, "--dim", "48"]
    queries = tmp_path / "queries.txt"
    queries.write_text("Aspirin reduces heart attacks.\nVitamin D and bone density\n")
    search = ["index", "search", "--queries", str(queries), "--top-k", "5", "--rescore", "50"]
    assert main([*build, "--rescore-store", "int8", "--output", str(tmp_path / "faiss")]) == 0
    assert main([*build, "--rescore-store", "int8", "--engine", "milvus", "--uri", str(tmp_path / "docs.db")]) == 0
    assert "indexed 1500 documents as 48-d binary in milvus" in capsys.readouterr().out
    assert main([*search, "--index", str(tmp_path / "faiss")]) == 0
    from_faiss = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main([*search, "--engine", "milvus", "--uri", str(tmp_path / "docs.db")]) == 0
    from_milvus = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["ids"] for r in from_milvus] == [r["ids"] for r in from_faiss] and len(from_milvus) == 2
    assert main([*build, "--engine", "qdrant", "--path", str(tmp_path / "qdrant")]) == 0
    assert main([*search, "--engine", "qdrant", "--path", str(tmp_path / "qdrant")]) == 0
    from_qdrant = [json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:]]
    assert all(len(r["ids"]) == 5 for r in from_qdrant)
    for argv, message in [
        ([*search, "--engine", "milvus", "--path", str(tmp_path / "x")], "--engine milvus takes --uri"),
        ([*build, "--engine", "qdrant", "--output", str(tmp_path / "y")], "--engine qdrant takes --path or --url"),
        ([*build, "--engine", "milvus", "--uri", str(tmp_path / "z.db"), "--precision", "int8"], "binary or float32"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
