"""BENCHMARKS.md section "Published models" (model_cards/)."""

from __future__ import annotations

import json
import os

from render_common import table


def published_section() -> list[str]:
    """The scores of the models whose cards are in model_cards/ (recipes/publish_scifact.py), from their metadata."""
    if not os.path.isdir("model_cards"):
        return []
    out = [
        "## Published SciFact models (model_cards/)",
        "",
        "    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python recipes/publish_scifact.py "
        "--data ../shared/data/scifact --out runs/publish",
        "",
        "1 thread, seed 42, the defaults before issue 40 (their guard is `--corpus-mode growing` now; "
        "`--default-dim 96` for the adaptors); scored by `st-matryoshka evaluate "
        "--record` on SciFact test, NDCG@10, with the base model's truncation and PCA on the same queries. "
        "The cards are rendered from these `st_matryoshka.json` files.",
        "",
    ]
    for name in sorted(os.listdir("model_cards")):
        path = os.path.join("model_cards", name, "st_matryoshka.json")
        if not os.path.isfile(path):
            continue
        scores = json.load(open(path))["scores"].get("scifact", {})
        out += [f"### {name}", ""]
        out += table({kind: by["ndcg_at_10"] for kind, by in scores.items()}, ["truncation", "pca", "model"])
        out.append("")
    return out
