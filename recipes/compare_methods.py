"""Train and score every method on BEIR folders; write a markdown table and a PNG plot (NDCG@10 against dim).

Methods: truncation (the base model), PCA (``--method pca``), Search-Adaptor, Matryoshka-Adaptor unsupervised and
supervised, and SMEC (``--method smec --supervised``; dims need not halve here). A folder without
``qrels/train.tsv`` is split by a hash of the query id (half trains the supervised
methods, every method is scored on the other half).

    HF_HUB_OFFLINE=1 .venv/bin/python recipes/compare_methods.py ../shared/data/scifact ../shared/data/cranfield \
        --out runs/compare
    HF_HUB_OFFLINE=1 .venv/bin/python recipes/compare_methods.py ../shared/data/scifact --out runs/smoke --smoke

Backbone vectors come from ``<folder>/embeddings/<model name>/`` when present, else from the embedding cache.
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from st_matryoshka.cache import backbone_vectors  # noqa: E402
from st_matryoshka.data import RetrievalData, load_beir  # noqa: E402
from st_matryoshka.evaluation import evaluate_per_dim  # noqa: E402
from st_matryoshka.loading import load_model  # noqa: E402
from st_matryoshka.training import (  # noqa: E402
    AdaptorTrainingConfig,
    backbone_dim,
    data_fast_model,
    fit_pca_adaptor,
    head_of,
    search_adaptor_config,
    train_matryoshka_adaptor,
)
from st_matryoshka.training_smec import SMECTrainingConfig, train_smec  # noqa: E402

LABELS = {
    "truncation": "truncation",
    "pca": "PCA",
    "search_adaptor": "Search-Adaptor",
    "unsupervised": "Matryoshka-Adaptor (unsup.)",
    "supervised": "Matryoshka-Adaptor (sup.)",
    "smec": "SMEC",
}


def splits(folder: str) -> tuple[RetrievalData, RetrievalData]:
    """``(train, test)``; without a train split, a fixed hash split of the test queries (as in the benchmarks)."""
    test = load_beir(folder, "test")
    if os.path.isfile(os.path.join(folder, "qrels", "train.tsv")):
        return load_beir(folder, "train"), test
    return test.split_by_query(0.5, salt="st_matryoshka-benchmark")


def compare_folder(model, folder: str, dims: list[int], smoke: bool, embeddings_name: str) -> dict:
    train, test = splits(folder)
    emb = os.path.join(folder, "embeddings", embeddings_name)
    cv, qv = backbone_vectors(model, test, emb if os.path.isdir(emb) else None, cache_dir=None, batch_size=32)

    def score(trained) -> dict[str, float]:
        fast = data_fast_model(test, cv, qv, head_of(trained))
        return evaluate_per_dim(fast, test, [backbone_dim(model), *dims])["ndcg_at_10"]

    quick = {"unsupervised_epochs": 2, "supervised_epochs": 2} if smoke else {}
    config = AdaptorTrainingConfig(dims=dims, **quick)
    rows = {"truncation": score(model), "pca": score(fit_pca_adaptor(model, cv))}
    sa = search_adaptor_config(dims, **({"supervised_epochs": 2} if smoke else {}))
    rows["search_adaptor"] = score(train_matryoshka_adaptor(model, train, cv, qv, sa, supervised=True)[0])
    rows["unsupervised"] = score(train_matryoshka_adaptor(model, train, cv, qv, config)[0])
    rows["supervised"] = score(train_matryoshka_adaptor(model, train, cv, qv, config, supervised=True)[0])
    smec_quick = {**quick, "supervised_batch_size": 16, "num_negatives": 4} if smoke else {}
    smec = SMECTrainingConfig(dims=dims, allow_any_dims=True, **smec_quick)
    rows["smec"] = score(train_smec(model, train, cv, qv, smec, supervised=True)[0])
    return rows


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = []
    for name, rows in results.items():
        dims = sorted({d for scores in rows.values() for d in scores}, key=int, reverse=True)
        lines += [f"### {name}", "", "| method | " + " | ".join(dims) + " |", "|---|" + "---|" * len(dims)]
        for method, scores in rows.items():
            lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(f"{scores[d]:.4f}" for d in dims) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]], path: str, titles: dict[str, str] | None = None) -> None:
    """One panel per data set, one line per method, NDCG@10 against dim (log scale)."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items()):
        for method, scores in rows.items():
            dims = sorted(int(d) for d in scores)
            ax.plot(dims, [scores[str(d)] for d in dims], marker="o", label=LABELS.get(method, method))
        ticks = sorted({int(d) for scores in rows.values() for d in scores})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.set_title((titles or {}).get(name, name), fontsize=9)
        ax.set_xlabel("dimension")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("NDCG@10")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="BEIR folders.")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--embeddings-name", default="all-MiniLM-L6-v2", help="Subfolder of <folder>/embeddings/.")
    parser.add_argument("--dims", default="192,96,48,24")
    parser.add_argument("--out", required=True, help="Folder for compare.md, compare.json and compare.png.")
    parser.add_argument("--smoke", action="store_true", help="Two epochs per stage: checks the pipeline, not quality.")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    dims = [int(d) for d in args.dims.split(",")]
    results = {}
    for folder in args.folders:
        name = os.path.basename(os.path.normpath(folder))
        results[name] = compare_folder(model, folder, dims, args.smoke, args.embeddings_name)
        print(name, json.dumps({m: round(s[str(dims[-1])], 4) for m, s in results[name].items()}), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(markdown(results))
    plot(results, os.path.join(args.out, "compare.png"))


if __name__ == "__main__":
    main()
