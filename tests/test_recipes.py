from __future__ import annotations

import importlib.util
import json

from conftest import REPO


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_methods_smoke(scifact_slice, tmp_path):
    # the recipe reads <folder>/embeddings/<name>/: the slice keeps its vectors directly under embeddings/
    (scifact_slice / "embeddings" / "minilm").mkdir(exist_ok=True)
    for name in ("corpus.npy", "queries.npy"):
        target = scifact_slice / "embeddings" / "minilm" / name
        if not target.exists():
            target.symlink_to(scifact_slice / "embeddings" / name)
    recipe = _recipe("compare_methods")
    recipe.main(
        [str(scifact_slice), "--out", str(tmp_path), "--smoke", "--dims", "96,48", "--embeddings-name", "minilm"]
    )
    results = json.loads((tmp_path / "compare.json").read_text())
    rows = results[scifact_slice.name]
    assert set(rows) == {"truncation", "pca", "search_adaptor", "unsupervised", "supervised", "smec"}
    assert all(set(scores) == {"384", "96", "48"} for scores in rows.values())
    # PCA fit on the corpus beats plain truncation at 48 dims on real data
    assert rows["pca"]["48"] > rows["truncation"]["48"]
    assert (tmp_path / "compare.png").stat().st_size > 10_000
    assert "| Search-Adaptor |" in (tmp_path / "compare.md").read_text()
    assert "| SMEC |" in (tmp_path / "compare.md").read_text()
