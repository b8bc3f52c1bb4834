"""BENCHMARKS.md section "fit-vectors on raw vectors" (vectors.json)."""

from __future__ import annotations

import json
import os

from render_common import DIMS, table


def vectors_section() -> list[str]:
    """fit-vectors on raw vectors only against truncation, PCA and train --embeddings (benchmarks/vectors.py)."""
    path = "benchmarks/results/vectors.json"
    if not os.path.exists(path):
        return []
    out = [
        "## Vectors only: fit-vectors on every shared set",
        "",
        "    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vectors.py --data-root ../shared/data",
        "",
        "1 thread, defaults (unsupervised Matryoshka-Adaptor, seed 42). `fit_vectors`: "
        "`st-matryoshka fit-vectors` on `corpus.npy` alone, applied with `apply_vectors`; `fit_vectors_center`: the "
        "same with `--center` (inputs centred on the corpus mean before the PCA rotation); `train_embeddings`: the "
        "default settings through `st-matryoshka train --embeddings` (the model path); `pca`: `fit-vectors --method "
        "pca`. NDCG@10 on test.",
        "",
    ]
    res = json.load(open(path))
    core_path = "benchmarks/results/core_loop.json"
    core = json.load(open(core_path)) if os.path.exists(core_path) else {}
    same = all(rows["fit_vectors"][d] == rows["train_embeddings"][d] for rows in res.values() for d in DIMS)
    cisi = res.get("cisi")
    if cisi:
        out += [
            f"`fit_vectors` {'equals' if same else 'differs from'} `train_embeddings` at every dim on every set: one "
            "code path. On CISI, PCA's gain is centring itself (its 384-d score is "
            f"{cisi['pca']['384'] - cisi['truncation']['384']:+.4f} against the uncentred base model), so the "
            "adaptor, which keeps the base model's similarities, stays "
            f"{cisi['fit_vectors']['24'] - cisi['pca']['24']:+.4f} from PCA at 24 dims; with `--center` it is "
            f"{cisi['fit_vectors_center']['48'] - cisi['pca']['48']:+.4f} / "
            f"{cisi['fit_vectors_center']['24'] - cisi['pca']['24']:+.4f} from PCA at 48 / 24, but centring costs on "
            "Cranfield and msmarco-5k (rows below), and the label-free criterion prefers the uncentred start on all "
            "four sets, so `--center` is a flag for corpora like CISI, not the default.",
            "",
        ]
    moved = [
        name
        for name, rows in res.items()
        if name in core and any(abs(rows["train_embeddings"][d] - core[name]["unsupervised"][d]) > 5e-5 for d in DIMS)
    ]
    if moved:
        out += [
            f"The `train_embeddings` row of {', '.join(moved)} differs from the core-loop table's unsupervised row "
            "(the same settings, run with 2 threads); the other sets match to four decimals. `bash scripts/demo.sh`, "
            "which trains the same model through `train` with 2 threads after the engine change, reproduces the "
            "core-loop row to four decimals: single runs at different thread counts are not bit-identical.",
            "",
        ]
    for name, rows in res.items():
        out += [f"### {name}", ""]
        out += table(rows, ["truncation", "pca", "fit_vectors", "fit_vectors_center", "train_embeddings"])
        out.append("")
    return out
