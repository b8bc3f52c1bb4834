"""Comparison of every method per data set: Search-Adaptor runs here, the others come from core_loop.json.

Usage (after benchmarks/core_loop.py):
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/compare.py --data-root ../shared/data
Writes benchmarks/results/compare.json and benchmarks/compare.png (NDCG@10 against dim, one panel per data set,
one line per method). Sets without a train split use core_loop's fixed query split, so every line of a panel is
scored on the same queries.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from core_loop import score  # noqa: E402

from st_matryoshka.cli import load_model  # noqa: E402
from st_matryoshka.data import load_beir, load_embeddings_dir, split_queries  # noqa: E402
from st_matryoshka.training import head_of, search_adaptor_config, train_matryoshka_adaptor  # noqa: E402

METHODS = ["truncation", "pca", "search_adaptor", "unsupervised", "supervised"]
LABELS = {
    "truncation": "truncation",
    "pca": "PCA",
    "search_adaptor": "Search-Adaptor",
    "unsupervised": "Matryoshka-Adaptor (unsup.)",
    "supervised": "Matryoshka-Adaptor (sup.)",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    args = parser.parse_args()
    core = json.load(open("benchmarks/results/core_loop.json"))
    base = load_model("all-MiniLM-L6-v2")
    out = {}
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
        row = core[name]
        if "query_split" in row:
            fit, held = split_queries(sorted(test.qrels), 0.5, salt="st_matryoshka-benchmark")
            train = test.with_qrels({q: test.qrels[q] for q in fit})
            test = test.with_qrels({q: test.qrels[q] for q in held})
            rows = {m: row[f"{m}_split"] for m in METHODS if f"{m}_split" in row}
        else:
            train = load_beir(folder, "train")
            rows = {m: row[m] for m in METHODS if m in row}
        torch.manual_seed(0)
        config = search_adaptor_config([192, 96, 48, 24])
        model, _ = train_matryoshka_adaptor(base, train, cv, qv, config, supervised=True)
        rows["search_adaptor"] = score(head_of(model), test, cv, qv)
        out[name] = {m: rows[m] for m in METHODS if m in rows}
        print(name, json.dumps(out[name]["search_adaptor"]), flush=True)
    with open("benchmarks/results/compare.json", "w") as f:
        json.dump(out, f, indent=2)
    fig, axes = plt.subplots(1, len(out), figsize=(4.2 * len(out), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], out.items()):
        for method, scores in rows.items():
            dims = sorted(int(d) for d in scores)
            ax.plot(dims, [scores[str(d)] for d in dims], marker="o", label=LABELS[method])
        ax.set_xscale("log", base=2)
        ax.set_xticks([24, 48, 96, 192, 384], labels=["24", "48", "96", "192", "384"])
        split = " (held-out half of the queries)" if "query_split" in core[name] else ""
        ax.set_title(name + split, fontsize=9)
        ax.set_xlabel("dimension")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("NDCG@10")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig("benchmarks/compare.png", dpi=120)


if __name__ == "__main__":
    main()
