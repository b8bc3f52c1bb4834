from __future__ import annotations

import logging

import numpy as np
import pytest

from st_matryoshka.data import load_beir, load_embeddings_dir, split_queries


def _folder(tmp_path, corpus=None, queries=None, qrels=None):
    (tmp_path / "qrels").mkdir(parents=True, exist_ok=True)
    (tmp_path / "corpus.jsonl").write_text(
        corpus or '{"_id": "d1", "title": "T", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
    )
    (tmp_path / "queries.jsonl").write_text(queries or '{"_id": "q1", "text": "query one"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text(qrels or "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return tmp_path


def test_loads_and_joins_title(tmp_path):
    data = load_beir(str(_folder(tmp_path)), "test")
    assert data.corpus == ["T one", "two"] and data.qrels == {"q1": {"d1": 1}}


def test_malformed_json_line(tmp_path):
    folder = _folder(tmp_path, corpus='{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": \n')
    with pytest.raises(ValueError, match=r"path_or_id: .*corpus.jsonl line 2 is not valid JSON"):
        load_beir(str(folder))


def test_missing_file_and_split(tmp_path):
    folder = _folder(tmp_path)
    with pytest.raises(ValueError, match=r"has no qrels/train.tsv \(splits found: \['test'\]\)"):
        load_beir(str(folder), "train")
    (folder / "queries.jsonl").unlink()
    with pytest.raises(ValueError, match="has no queries.jsonl"):
        load_beir(str(folder))
    with pytest.raises(ValueError, match="folder './nowhere' does not exist"):
        load_beir("./nowhere")


def test_unknown_qrels_ids_are_counted_and_skipped(tmp_path, caplog):
    folder = _folder(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td1\t1\nq1\td9\t1\nq1\td8\t2\n")
    with caplog.at_level(logging.WARNING):
        data = load_beir(str(folder))
    assert data.qrels == {"q1": {"d1": 1}}
    assert "skipped 1 qrels rows with an unknown query id and 2 with an unknown document id" in caplog.text


def test_embeddings_are_checked(tmp_path):
    data = load_beir(str(_folder(tmp_path / "d")))
    emb = tmp_path / "e"
    emb.mkdir()
    np.save(emb / "corpus.npy", np.ones((3, 4), dtype="float32"))
    np.save(emb / "queries.npy", np.ones((1, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"corpus.npy has shape \(3, 4\), expected \(2, dim\)"):
        load_embeddings_dir(str(emb), data)
    np.save(emb / "corpus.npy", np.arange(8, dtype="float32").reshape(2, 4))  # rows must not be constant
    with pytest.raises(ValueError, match="has width 4, but the model's backbone gives 8"):
        load_embeddings_dir(str(emb), data, dim=8)
    np.save(emb / "queries.npy", np.array([[1.0, np.inf, 0, 0]], dtype="float32"))
    with pytest.raises(ValueError, match="queries.npy has NaN or inf in 1 rows"):
        load_embeddings_dir(str(emb), data, dim=4)


def test_query_split_is_stable_and_disjoint():
    ids = [str(i) for i in range(1000)]
    kept, held = split_queries(ids, 0.2)
    assert split_queries(list(reversed(ids)), 0.2)[1] == list(reversed(held))
    assert not set(kept) & set(held) and 150 < len(held) < 250


def test_split_by_query_partitions_qrels(tmp_path):
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td1\t1\n" for i in range(40))
    queries = "".join(f'{{"_id": "q{i}", "text": "query {i}"}}\n' for i in range(40))
    data = load_beir(str(_folder(tmp_path, queries=queries, qrels=qrels)))
    kept, held = data.split_by_query(0.5, salt="s")
    assert set(kept.qrels) | set(held.qrels) == set(data.qrels) and not set(kept.qrels) & set(held.qrels)
    assert sorted(held.qrels) == sorted(split_queries(sorted(data.qrels), 0.5, salt="s")[1])
    assert kept.corpus is data.corpus
