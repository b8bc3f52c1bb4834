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

import st_matryoshka  # noqa: E402
from st_matryoshka.cache import backbone_vectors  # noqa: E402
from st_matryoshka.config import (  # noqa: E402
    BackboneSource,
    MatryoshkaAdaptorConfig,
    SearchAdaptorConfig,
    SMECConfig,
)
from st_matryoshka.data import RetrievalData, load_beir  # noqa: E402
from st_matryoshka.evaluation import evaluate_per_dim  # noqa: E402
from st_matryoshka.evaluation.quantized import evaluate_quantized  # noqa: E402
from st_matryoshka.loading import load_model  # noqa: E402
from st_matryoshka.quantization import check_precisions  # noqa: E402
from st_matryoshka.surgery import backbone_dim, data_fast_model, head_of
from st_matryoshka.training import fit_pca_adaptor  # noqa: E402

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


def compare_folder(
    model, folder: str, dims: list[int], smoke: bool, embeddings_name: str, precisions: tuple[str, ...] = ("float32",)
) -> dict:
    train, test = splits(folder)
    emb = os.path.join(folder, "embeddings", embeddings_name)
    cv, qv = backbone_vectors(model, test, emb if os.path.isdir(emb) else None, cache_dir=None, batch_size=32)

    def score(trained) -> dict[str, float]:
        """Float32 NDCG@10 per dim; with --precision, also ``<precision>: {dim: NDCG@10}`` for each code."""
        fast = data_fast_model(test, cv, qv, head_of(trained))
        all_dims = [backbone_dim(model), *dims]
        result = evaluate_per_dim(fast, test, all_dims)["ndcg_at_10"]
        meta = getattr(trained.model_card_data, "matryoshka", None)
        ranges = getattr(meta, "int8_ranges", None)  # stored at training time; the corpus' for the baselines
        for precision in precisions:
            if precision != "float32":
                codes = evaluate_quantized(fast, test, all_dims, precision, int8_ranges=ranges)["ndcg_at_10"]
                result.update({f"{d}@{precision}": v for d, v in codes.items()})
        return result

    vectors = BackboneSource(corpus_vectors=cv, query_vectors=qv)

    def fit(config):
        return st_matryoshka.train(model, train, config, source=vectors).model

    quick = {"unsupervised_epochs": 2, "supervised_epochs": 2} if smoke else {}
    rows = {"truncation": score(model), "pca": score(fit_pca_adaptor(model, cv))}
    rows["search_adaptor"] = score(fit(SearchAdaptorConfig(dims=dims, **({"supervised_epochs": 2} if smoke else {}))))
    rows["unsupervised"] = score(fit(MatryoshkaAdaptorConfig(dims=dims, **quick)))
    rows["supervised"] = score(fit(MatryoshkaAdaptorConfig(dims=dims, supervised=True, **quick)))
    smec_quick = {**quick, "supervised_batch_size": 16, "num_negatives": 4} if smoke else {}
    rows["smec"] = score(fit(SMECConfig(dims=dims, allow_any_dims=True, **smec_quick)))
    return rows


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One table per data set and precision (float32 keys are dims, codes' keys ``<dim>@<precision>``)."""
    lines = []
    for name, rows in results.items():
        keys = {k for scores in rows.values() for k in scores}
        precisions = ["float32", *sorted({k.split("@")[1] for k in keys if "@" in k})]
        for precision in precisions:
            suffix = "" if precision == "float32" else f"@{precision}"
            dims = sorted({k.split("@")[0] for k in keys if k.endswith(suffix) and ("@" in k) == bool(suffix)},
                          key=int, reverse=True)  # fmt: skip
            title = name if precision == "float32" else f"{name}, {precision} codes (documents and queries)"
            lines += [f"### {title}", "", "| method | " + " | ".join(dims) + " |", "|---|" + "---|" * len(dims)]
            for method, scores in rows.items():
                cells = " | ".join(f"{scores[d + suffix]:.4f}" for d in dims)
                lines.append(f"| {LABELS.get(method, method)} | {cells} |")
            lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict[str, float]]], path: str, titles: dict[str, str] | None = None) -> None:
    """One panel per data set, one line per method, NDCG@10 against dim (log scale)."""
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6), squeeze=False)
    for ax, (name, rows) in zip(axes[0], results.items()):
        for method, scores in rows.items():
            dims = sorted(int(d) for d in scores if "@" not in d)  # float32 only; codes are in the tables
            ax.plot(dims, [scores[str(d)] for d in dims], marker="o", label=LABELS.get(method, method))
        ticks = sorted({int(d) for scores in rows.values() for d in scores if "@" not in d})
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
    parser.add_argument(
        "--precision", default="float32", help="Comma-separated float32,int8,binary: also score each method's codes."
    )
    args = parser.parse_args(argv)
    model = load_model(args.model)
    dims = [int(d) for d in args.dims.split(",")]
    precisions = tuple(check_precisions([p.strip() for p in args.precision.split(",") if p.strip()], dims, None))
    results = {}
    for folder in args.folders:
        name = os.path.basename(os.path.normpath(folder))
        results[name] = compare_folder(model, folder, dims, args.smoke, args.embeddings_name, precisions)
        print(name, json.dumps({m: round(s[str(dims[-1])], 4) for m, s in results[name].items()}), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compare.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "compare.md"), "w") as f:
        f.write(markdown(results))
    plot(results, os.path.join(args.out, "compare.png"))


if __name__ == "__main__":
    main()
