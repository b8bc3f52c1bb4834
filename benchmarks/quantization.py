"""Bytes frontier with quantisation-aware training: base truncation, PCA, the Matryoshka-Adaptor with and without it.

For each set, on the provided all-MiniLM-L6-v2 vectors (the transformer never runs): the unsupervised
Matryoshka-Adaptor fit by ``st-matryoshka fit-vectors`` with the default float32 training and with
``--precision binary`` (the binary codes' terms added to every loss, straight-through), PCA, and plain truncation,
each scored on the test split at every dim as float32, int8 (ranges stored with the model, or of the corpus for the
baselines), symmetric binary (documents and queries as sign bits, Hamming-equivalent) and asymmetric binary (float
query prefix against the documents' sign bits, every document: nothing but the bits is stored per document).

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization.py --data-root ../shared/data

Results go to ``benchmarks/results/quantization.json``; ``benchmarks/render.py`` writes the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

from st_matryoshka.cli import main as st_matryoshka
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.engine import fast_model
from st_matryoshka.evaluation.quantized import evaluate_quantized
from st_matryoshka.metadata import MatryoshkaMetadata
from st_matryoshka.vectors import apply_vectors, load_adaptor

DIMS = [384, 192, 96, 48, 24]
VARIANTS = {"matryoshka_adaptor": [], "matryoshka_adaptor_binary": ["--precision", "binary"]}


def scores(data, corpus: np.ndarray, queries: np.ndarray, int8_ranges=None) -> dict[str, dict[str, float]]:
    """NDCG@10 per precision (float32, int8, binary, binary_asym) and dim."""
    scorer = fast_model(list(data.corpus) + list(data.queries), np.concatenate([corpus, queries]), [])
    out = {}
    for precision in ("float32", "int8", "binary"):
        out[precision] = evaluate_quantized(scorer, data, DIMS, precision, int8_ranges=int8_ranges)["ndcg_at_10"]
    asym = evaluate_quantized(scorer, data, DIMS, "binary", rescore=len(data.corpus))
    out["binary_asym"] = asym["ndcg_at_10"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--out", default="benchmarks/results/quantization.json")
    args = parser.parse_args()
    results = json.load(open(args.out)) if os.path.exists(args.out) else {}
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        emb = os.path.join(folder, "embeddings", "all-MiniLM-L6-v2")
        data = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(emb, data, dim=384)
        row = {"truncation": scores(data, cv, qv)}
        with tempfile.TemporaryDirectory() as work:
            fits = {"pca": ["--method", "pca"], **VARIANTS}
            seconds = {}
            for method, flags in fits.items():
                out = os.path.join(work, method)
                start = time.perf_counter()
                argv = ["fit-vectors", "--corpus", os.path.join(emb, "corpus.npy"), *flags, "--output", out]
                if st_matryoshka([*argv, "--dims", ",".join(map(str, DIMS[1:]))]) != 0:
                    raise SystemExit(f"failed: {argv}")
                seconds[method] = time.perf_counter() - start
                adaptor = load_adaptor(out)
                ranges = MatryoshkaMetadata.load(out).int8_ranges
                row[method] = scores(data, *(apply_vectors(adaptor, x, dim=384) for x in (cv, qv)), ranges)
        row["fit_seconds"] = seconds
        results[name] = row
        print(name, json.dumps({m: row[m]["binary"]["384"] for m in row if m != "fit_seconds"}), flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
