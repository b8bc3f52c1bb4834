"""fit-vectors on raw vectors only, on every shared set: against truncation, PCA, and train --embeddings.

For each set: the unsupervised Matryoshka-Adaptor fit by ``fit-vectors`` (:func:`st_matryoshka.api.fit_vectors_files`)
on ``corpus.npy`` alone (no model, no texts), applied with :func:`st_matryoshka.vectors.apply_vectors`, with and
without ``--center``; the same configuration through ``train --embeddings`` (:func:`st_matryoshka.api.train`, the
SentenceTransformer path); PCA of the same vectors; truncation.
NDCG@10 on the test split.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/vectors.py --data-root ../shared/data

Results go to ``benchmarks/results/vectors.json``; ``benchmarks/render.py`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import numpy as np

from st_matryoshka import api
from st_matryoshka.config import BackboneSource
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.evaluation import evaluate_per_dim
from st_matryoshka.surgery import fast_model
from st_matryoshka.vectors import apply_vectors, load_adaptor

DIMS = [384, 192, 96, 48, 24]


def ndcg(data, corpus: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    scorer = fast_model(list(data.corpus) + list(data.queries), np.concatenate([corpus, queries]), [])
    return evaluate_per_dim(scorer, data, DIMS)["ndcg_at_10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--out", default="benchmarks/results/vectors.json")
    args = parser.parse_args()
    results = {}
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        emb = os.path.join(folder, "embeddings", "all-MiniLM-L6-v2")
        data = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(emb, data, dim=384)
        rows = {"truncation": ndcg(data, cv, qv)}
        with tempfile.TemporaryDirectory() as work:
            fits = {"pca": {"method": "pca"}, "fit_vectors": {}, "fit_vectors_center": {"center_input": True}}
            for row, settings in fits.items():
                out = os.path.join(work, row)
                api.fit_vectors_files(os.path.join(emb, "corpus.npy"), DIMS[1:], out, **settings)
                adaptor = load_adaptor(out)
                applied = [apply_vectors(adaptor, x, dim=384) for x in (cv, qv)]
                rows[row] = ndcg(data, *applied)
            model = os.path.join(work, "train")
            api.train("all-MiniLM-L6-v2", folder, DIMS[1:], model, source=BackboneSource(embeddings=emb))
            scores = api.evaluate(model, folder, DIMS, split="test", source=BackboneSource(embeddings=emb))
            rows["train_embeddings"] = scores["float32"]["ndcg_at_10"]
        results[name] = rows
        print(name, json.dumps({k: round(v["48"], 4) for k, v in rows.items()}), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
