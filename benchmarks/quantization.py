"""Bytes frontier per method, with and without quantisation-aware training, on provided vectors only.

For each set and backbone (vectors in ``<set>/embeddings/<backbone>``; the transformer never runs), every variant is
fit with :func:`st_matryoshka.vectors.fit_vectors` (the engine ``fit-vectors`` and ``train`` use), with its int8
calibration stored as ``train`` stores it, and scored on the test split at every dim as float32, int8 (the stored
ranges; the corpus' ranges for truncation), symmetric binary (documents and queries as sign bits,
Hamming-equivalent) and asymmetric binary (float query prefix against the documents' sign bits, every document:
nothing but the bits is stored per document). Supervised variants train on the set's ``train`` qrels. Each set also
gets ``truncation_centred``: the base model's unit vectors minus the corpus mean (its centred sign bits, the bar for
binary codes).

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization.py --data-root ../shared/data
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization.py --data-root ../shared/data \
        --sets scifact --backbone all-mpnet-base-v2 --variants pca matryoshka_adaptor matryoshka_adaptor_binary \
        search_adaptor matryoshka_adaptor_supervised

The default variants are the unsupervised ones (``UNSUPERVISED``); ``_unbalanced`` variants train for binary codes
from the plain principal-axes start (``balance_bits=False``), the others with ``--precision binary`` balance it.

Results go to ``benchmarks/results/quantization.json`` keyed ``<set>`` (MiniLM) or ``<set>/<backbone>``; seed 42
(the default) fills the tables, other ``--seeds`` go under the set's ``seeds`` for the seed-spread table;
``benchmarks/render.py`` writes the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

import st_matryoshka
from st_matryoshka.config import METHOD_CONFIGS, VectorData
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.evaluation.quantized import evaluate_quantized
from st_matryoshka.surgery import fast_model
from st_matryoshka.vectors import apply_vectors

SMALL_DIMS = [384, 192, 96, 48, 24]
VARIANTS = {
    "pca": ("pca", False, {}),
    "pca_balanced": ("pca", False, {"balance_bits": True}),
    "matryoshka_adaptor": ("matryoshka-adaptor", False, {}),
    "matryoshka_adaptor_balanced": ("matryoshka-adaptor", False, {"balance_bits": True}),
    "matryoshka_adaptor_centred": ("matryoshka-adaptor", False, {"center_input": True}),
    "matryoshka_adaptor_binary_unbalanced": (
        "matryoshka-adaptor",
        False,
        {"precisions": ["binary"], "balance_bits": False},
    ),
    "matryoshka_adaptor_binary": ("matryoshka-adaptor", False, {"precisions": ["binary"]}),
    "matryoshka_adaptor_binary_guarded": ("matryoshka-adaptor", False, {"precisions": ["binary"]}),
    "matryoshka_adaptor_binary_thresholds": (
        "matryoshka-adaptor",
        False,
        {"precisions": ["binary"], "bit_thresholds": "median"},
    ),
    "matryoshka_adaptor_binary_dims96": (
        "matryoshka-adaptor",
        False,
        {"precisions": ["binary"], "dims": [96, 48, 24]},
    ),
    "matryoshka_adaptor_binary_dims24": ("matryoshka-adaptor", False, {"precisions": ["binary"], "dims": [24]}),
    "matryoshka_adaptor_binary_dims192": ("matryoshka-adaptor", False, {"precisions": ["binary"], "dims": [192]}),
    "matryoshka_adaptor_binary_dims96_only": ("matryoshka-adaptor", False, {"precisions": ["binary"], "dims": [96]}),
    "matryoshka_adaptor_binary_centred": (
        "matryoshka-adaptor",
        False,
        {"precisions": ["binary"], "center_input": True},
    ),
    "search_adaptor": ("search-adaptor", True, {}),
    "matryoshka_adaptor_supervised": ("matryoshka-adaptor", True, {}),
    "matryoshka_adaptor_supervised_binary_unbalanced": (
        "matryoshka-adaptor",
        True,
        {"precisions": ["binary"], "balance_bits": False},
    ),
    "matryoshka_adaptor_supervised_binary": ("matryoshka-adaptor", True, {"precisions": ["binary"]}),
    "smec": ("smec", True, {}),
}
GUARDED = {"matryoshka_adaptor_binary_guarded"}
for _name, (_, _, _config) in VARIANTS.items():  # measured before issue 33's code guard: run as they were
    if "binary" in _config.get("precisions", []) and _name not in GUARDED:
        _config.setdefault("code_guard", False)

UNSUPERVISED = [
    "pca",
    "pca_balanced",
    "matryoshka_adaptor",
    "matryoshka_adaptor_balanced",
    "matryoshka_adaptor_centred",
    "matryoshka_adaptor_binary_unbalanced",
    "matryoshka_adaptor_binary",
    "matryoshka_adaptor_binary_dims96",
    "matryoshka_adaptor_binary_dims24",
    "matryoshka_adaptor_binary_dims192",
    "matryoshka_adaptor_binary_dims96_only",
    "matryoshka_adaptor_binary_centred",
]


def scores(
    data, corpus: np.ndarray, queries: np.ndarray, dims, int8_ranges=None, unseen=None
) -> dict[str, dict[str, float]]:
    """NDCG@10 per precision (float32, int8, binary, binary_asym) and dim; with ``unseen`` (the test queries whose
    relevant documents no train qrel names), also float32, binary and binary_asym on those (``<precision>_unseen``)."""
    scorer = fast_model(list(data.corpus) + list(data.queries), np.concatenate([corpus, queries]), [])
    out = {}
    for precision in ("float32", "int8", "binary"):
        out[precision] = evaluate_quantized(scorer, data, dims, precision, int8_ranges=int8_ranges)["ndcg_at_10"]
    out["binary_asym"] = evaluate_quantized(scorer, data, dims, "binary", rescore=len(data.corpus))["ndcg_at_10"]
    if unseen is not None:
        for precision in ("float32", "binary"):
            out[f"{precision}_unseen"] = evaluate_quantized(scorer, unseen, dims, precision)["ndcg_at_10"]
        asym = evaluate_quantized(scorer, unseen, dims, "binary", rescore=len(data.corpus))
        out["binary_asym_unseen"] = asym["ndcg_at_10"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--backbone", default="all-MiniLM-L6-v2")
    parser.add_argument("--variants", nargs="+", default=UNSUPERVISED, choices=list(VARIANTS))
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[42],
        help="Training seeds; seed 42 is the tables' run, the others go under the set's 'seeds' (the spread table).",
    )
    parser.add_argument("--out", default="benchmarks/results/quantization.json")
    args = parser.parse_args()
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", args.backbone), test)
        width = cv.shape[1]
        dims = [width, *[d for d in SMALL_DIMS if d < width]]
        key = name if args.backbone == "all-MiniLM-L6-v2" else f"{name}/{args.backbone}"
        results = json.load(open(args.out)) if os.path.exists(args.out) else {}
        row = results.get(key, {})
        train_qrels, unseen = None, None  # read once per set: the unseen-document queries and supervised variants
        if os.path.exists(os.path.join(folder, "qrels", "train.tsv")):
            train_qrels = load_beir(folder, "train").qrels
            train_docs = {d for docs in train_qrels.values() for d in docs}
            unseen = test.with_qrels({q: r for q, r in test.qrels.items() if not set(r) & train_docs})
            row["unseen_queries"] = len(unseen.qrels)
        row["truncation"] = scores(test, cv, qv, dims, unseen=unseen)
        unit = cv / np.linalg.norm(cv, axis=1, keepdims=True)  # the base model's centred sign bits: free, and a bar
        mean = unit.mean(axis=0)
        queries = qv / np.linalg.norm(qv, axis=1, keepdims=True)
        row["truncation_centred"] = scores(test, unit - mean, queries - mean, dims, unseen=unseen)
        row.setdefault("fit_seconds", {})
        for variant, seed in [(v, seed) for v in args.variants for seed in args.seeds]:
            method, supervised, config = VARIANTS[variant]
            if supervised and train_qrels is None:
                print(f"{name}: no train qrels, {variant} skipped")
                continue
            qrels = train_qrels if supervised else None
            start = time.perf_counter()
            config = dict(config, seed=seed)
            trained = config.pop("dims", dims[1:])  # a variant may train fewer dims (all are still scored)
            data = VectorData(
                queries=qv if supervised else None, qrels=qrels, corpus_ids=test.corpus_ids,
                query_ids=test.query_ids if supervised else None, name=name,
            )  # fmt: skip
            settings = METHOD_CONFIGS[method](dims=trained, supervised=supervised, **config)
            fitted = st_matryoshka.train(cv, data, settings)
            adaptor, meta, stages = fitted.adaptor, fitted.metadata, fitted.stages
            seconds = time.perf_counter() - start
            outputs = [apply_vectors(adaptor, x, dim=width) for x in (cv, qv)]
            result = scores(test, *outputs, dims, meta.int8_ranges, unseen)
            codes = meta.selection.get("codes")
            if codes:  # what the code guard kept (issue 33)
                result["codes"] = {"kept": codes["kept"], "block": codes["block"]}
            if seed == 42:
                row["fit_seconds"][variant] = seconds
                if stages:  # the label-free criterion the last stage was selected by (what a user sees without labels)
                    row.setdefault("criterion", {})[variant] = {"metric": stages[-1].metric, "best": stages[-1].best}
                row[variant] = result
            else:
                row.setdefault("seeds", {}).setdefault(variant, {})[str(seed)] = result
            binary = {d: round(result["binary"][str(d)], 4) for d in dims}
            print(name, args.backbone, variant, seed, json.dumps(binary), f"{seconds:.0f}s", flush=True)
            latest = json.load(open(args.out)) if os.path.exists(args.out) else {}
            latest[key] = row
            os.makedirs(os.path.dirname(args.out), exist_ok=True)
            with open(args.out + ".tmp", "w") as f:
                json.dump(latest, f, indent=2)
            os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
