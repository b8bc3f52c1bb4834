from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import REPO


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_compare_methods_smoke(scifact_slice, tmp_path):
    # the recipe reads <folder>/embeddings/<name>/: the slice keeps its vectors directly under embeddings/
    (scifact_slice / "embeddings" / "minilm").mkdir(exist_ok=True)
    for name in ("corpus.npy", "queries.npy"):
        target = scifact_slice / "embeddings" / "minilm" / name
        if not target.exists():
            target.symlink_to(scifact_slice / "embeddings" / name)
    recipe = _recipe("compare_methods")
    recipe.main(
        [str(scifact_slice), "--out", str(tmp_path), "--smoke", "--dims", "96,48", "--embeddings-name", "minilm",
         "--precision", "float32,binary"]
    )  # fmt: skip
    results = json.loads((tmp_path / "compare.json").read_text())
    rows = results[scifact_slice.name]
    assert set(rows) == {"truncation", "pca", "search_adaptor", "unsupervised", "supervised", "smec"}
    assert all(set(scores) == {"384", "96", "48", "384@binary", "96@binary", "48@binary"} for scores in rows.values())
    assert rows["truncation"]["384@binary"] < rows["truncation"]["384"]  # sign bits lose some quality
    # PCA fit on the corpus beats plain truncation at 48 dims on real data
    assert rows["pca"]["48"] > rows["truncation"]["48"]
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert "| Search-Adaptor |" in (tmp_path / "compare.md").read_text()
    assert "| SMEC |" in (tmp_path / "compare.md").read_text()
    assert "binary codes (documents and queries)" in (tmp_path / "compare.md").read_text()


@pytest.mark.slow
def test_publish_scifact_smoke(scifact_slice, tmp_path):
    data = tmp_path / "scifact"  # the slice under SciFact's name, as the cards name their training data
    data.symlink_to(scifact_slice)
    recipe = _recipe("publish_scifact")
    args = ["--data", str(data), "--embeddings", str(scifact_slice / "embeddings"), "--out", str(tmp_path / "runs")]
    recipe.main([*args, "--cards", str(tmp_path / "cards"), "--smoke"])
    for name in recipe.MODELS:
        card = (tmp_path / "cards" / name / "README.md").read_text()
        exported = (tmp_path / "runs" / f"{name}-hub" / "README.md").read_text()
        assert card == exported  # the card in cards/ is the one the Hub folder carries
        assert "### SciFact (test)" in card and "| 24 | **" in card
        assert f"st-matryoshka/{name}" in card
        # the bytes frontier (frontier --record) and the stored int8 calibration travel with the card
        assert "### Index size against quality: SciFact" in card and "frontier_scifact.png" in card
        assert (tmp_path / "cards" / name / "frontier_scifact.png").stat().st_size > 5_000
        assert "`int8_ranges`" in card
