"""BENCHMARKS.md section "Supervision that pays", from benchmarks/results/interpolation.json.

The rows "before issue 32" come from the runs of issue 24 (benchmarks/results/supervision*.json, the code of that
time). Called by render.py; ``python benchmarks/render_supervision.py`` prints the section (and writes the plot).
"""

from __future__ import annotations

import glob
import json
import os
import statistics

DIMS = ["384", "192", "96", "48", "24"]
SMALL = ["96", "48", "24"]
PLOT = "benchmarks/label_curve.png"
RESULTS = "benchmarks/results/interpolation.json"
RUN = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/supervision.py --data-root ../shared/data "
OUT = " --out benchmarks/results/interpolation.json"
COMMANDS = [
    RUN + "--sets scifact --labels all --methods matryoshka-adaptor smec --variants default --seeds 42 1 2 3 4" + OUT,
    RUN + "--sets scifact --labels all --methods matryoshka-adaptor --variants query_hash document_disjoint "
    "--seeds 42 1 2" + OUT,
    RUN + "--sets scifact --labels all --methods matryoshka-adaptor --variants guarded_stopping --seeds 42 1" + OUT,
    RUN + "--sets scifact --labels all --methods matryoshka-adaptor --variants sup_distill --seeds 42" + OUT,
    RUN + "--sets cranfield cisi --labels 8 32 all --methods matryoshka-adaptor smec --seeds 1 2 42" + OUT,
    RUN + "--sets scifact --labels 8 32 128 --methods matryoshka-adaptor smec --seeds 1 2 42" + OUT,
]
METHODS = {"matryoshka-adaptor": "Matryoshka-Adaptor", "smec": "SMEC"}
VARIANTS = {
    "default": "defaults (`both` validation, interpolating guard)",
    "document_disjoint": "`--validation-split document-disjoint` (choose and guard on new-document queries)",
    "query_hash": "`--validation-split query-hash` (choose and guard on queries about cited documents)",
    "guarded_stopping": "defaults + `guarded_stopping` (early stopping admits only what the guard would)",
    "sup_distill": "defaults + L_distill in the supervised phase (`supervised_distill_weight` 1)",
}
BEFORE = {  # (method, variant in supervision*.json): label
    ("matryoshka-adaptor", "default"): "before issue 32: document-disjoint validation, keep-or-drop guard",
    ("matryoshka-adaptor", "query_hash"): "before issue 24: query-hash validation, keep-or-drop guard",
    ("smec", "default"): "before issue 32: document-disjoint validation, keep-or-drop guard",
}
LABEL_ORDER = ["8", "32", "128", "all"]


def load(path: str = RESULTS) -> dict:
    return json.load(open(path)) if os.path.exists(path) else {}


def load_before() -> dict:
    merged: dict = {}
    for path in sorted(glob.glob("benchmarks/results/supervision*.json")):
        for name, res in json.load(open(path)).items():
            for method, variants in res.get("supervised", {}).items():
                for variant, by_labels in variants.items():
                    runs = by_labels.get("all", {})
                    merged.setdefault(name, {}).setdefault((method, variant), {}).update(runs)
    return merged


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def column(runs: dict, key: str, dim: str) -> list[float]:
    return [run[key][dim] for run in runs.values() if key in run]


def runs_of(res: dict, method: str, variant: str = "default", labels: str = "all") -> dict:
    return res.get("supervised", {}).get(method, {}).get(variant, {}).get(labels, {})


def chosen(runs: dict) -> str:
    """The kept ``a`` per seed, e.g. ``42: 0.5, 1: 0.1``."""
    return ", ".join(f"{seed}: {run.get('selection', {}).get('interpolation', '-')}" for seed, run in runs.items())


def scifact_tables(res: dict, before: dict) -> list[str]:
    out = []
    for key, title in (("ndcg_at_10", "all test queries"), ("ndcg_at_10_unseen", "unseen-document queries")):
        n = res["baselines"]["test_queries" if key == "ndcg_at_10" else "unseen_queries"]
        out += [
            f"SciFact, {title} ({n}), NDCG@10, mean ± sd over seeds (`a`: the guard's choice per seed):",
            "",
            "| method | seeds | " + " | ".join(DIMS) + " | a |",
            "|---|---|" + "---|" * len(DIMS) + "---|",
        ]
        for label, kind in (("truncation", "truncation"), ("PCA", "pca")):
            if key in res["baselines"][kind]:
                cells = " | ".join(f"{res['baselines'][kind][key][d]:.4f}" for d in DIMS)
                out.append(f"| {label} | - | {cells} | |")
        unsup = res.get("unsupervised", {})
        out.append(
            f"| unsupervised Matryoshka-Adaptor | {len(unsup)} | "
            + " | ".join(mean_sd(column(unsup, key, d)) for d in DIMS)
            + " | |"
        )
        for variant, label in VARIANTS.items():
            for method, name in METHODS.items():
                runs = runs_of(res, method, variant)
                if runs:
                    cells = " | ".join(mean_sd(column(runs, key, d)) for d in DIMS)
                    out.append(f"| {name}, {label} | {len(runs)} | {cells} | {chosen(runs)} |")
        for (method, variant), label in BEFORE.items():
            runs = before.get("scifact", {}).get((method, variant), {})
            if runs:
                cells = " | ".join(mean_sd(column(runs, key, d)) for d in DIMS)
                out.append(f"| {METHODS[method]}, {label} | {len(runs)} | {cells} | |")
        out.append("")
    return out


def goal_lines(res: dict) -> list[str]:
    """The issue's SciFact goals, met or not, from the defaults' means."""
    ma, smec = runs_of(res, "matryoshka-adaptor"), runs_of(res, "smec")
    unsup = res.get("unsupervised", {})
    if not ma:
        return []
    mean = {d: statistics.mean(column(ma, "ndcg_at_10", d)) for d in DIMS}
    goals = {"96": 0.72, "48": 0.66, "24": 0.54}
    lines = [
        "- Matryoshka-Adaptor, all test queries, goal ≥ 0.72 / 0.66 / 0.54 at 96 / 48 / 24: "
        + " / ".join(f"{mean[d]:.4f}" for d in SMALL)
        + (" (met)" if all(mean[d] >= goals[d] for d in SMALL) else " (not met)")
    ]
    if smec:
        smec_mean = {d: statistics.mean(column(smec, "ndcg_at_10", d)) for d in DIMS}
        met = all(smec_mean[d] >= mean[d] for d in ("48", "24"))
        lines.append(
            "- SMEC ≥ the Matryoshka-Adaptor at 48 and 24 (all test queries): "
            + " / ".join(f"{smec_mean[d]:.4f} against {mean[d]:.4f}" for d in ("48", "24"))
            + (" (met)" if met else " (not met)")
        )
    key = "ndcg_at_10_unseen"
    base = {d: statistics.mean(column(unsup, key, d)) for d in DIMS}
    for method, runs in (("Matryoshka-Adaptor", ma), ("SMEC", smec)):
        if runs:
            diffs = {d: statistics.mean(column(runs, key, d)) - base[d] for d in DIMS}
            met = all(v >= -0.005 for v in diffs.values())
            lines.append(
                f"- {method} on unseen-document queries minus the unsupervised adaptor (goal ≥ −0.005 at every dim): "
                + ", ".join(f"{d}: {v:+.4f}" for d, v in diffs.items())
                + (" (met)" if met else " (not met)")
            )
    return lines


def curve_section(results: dict) -> list[str]:
    out = []
    for name in ("scifact", "cranfield", "cisi"):
        res = results.get(name)
        if not res or "supervised" not in res:
            continue
        keys = ["ndcg_at_10"] + (["ndcg_at_10_unseen"] if res["baselines"].get("unseen_queries") else [])
        for key in keys:
            which = "all test queries" if key == "ndcg_at_10" else "unseen-document queries"
            out += [
                f"{name}, {which} ({res['baselines']['train_queries']} training queries at 'all'); NDCG@10 at "
                "96 / 48 / 24, mean over seeds 1, 2, 42; `a` per seed:",
                "",
                "| method | labels | 96 | 48 | 24 | a |",
                "|---|---|---|---|---|---|",
            ]
            unsup = {s: r for s, r in res.get("unsupervised", {}).items() if s in ("1", "2", "42")}
            cells = " | ".join(f"{statistics.mean(column(unsup, key, d)):.4f}" for d in SMALL)
            out.append(f"| unsupervised | 0 | {cells} | |")
            for method, label in METHODS.items():
                for labels in LABEL_ORDER:
                    runs = {s: r for s, r in runs_of(res, method, "default", labels).items() if s in ("1", "2", "42")}
                    if runs:
                        cells = " | ".join(f"{statistics.mean(column(runs, key, d)):.4f}" for d in SMALL)
                        out.append(f"| {label} | {labels} | {cells} | {chosen(runs)} |")
            out.append("")
    return out


def curve_checks(results: dict) -> list[str]:
    """Cells more than 0.005 below the unsupervised adaptor, and the +0.02 goal with at least 128 labels."""
    below, short = [], []
    for name in ("scifact", "cranfield", "cisi"):
        res = results.get(name, {})
        unsup = {s: r for s, r in res.get("unsupervised", {}).items() if s in ("1", "2", "42")}
        for method, label in METHODS.items():
            for labels in LABEL_ORDER:
                runs = {s: r for s, r in runs_of(res, method, "default", labels).items() if s in ("1", "2", "42")}
                if not runs:
                    continue
                n = len(runs_of(res, method, "default", labels)) and (
                    res["baselines"]["train_queries"] if labels == "all" else int(labels)
                )
                for key in ("ndcg_at_10", "ndcg_at_10_unseen"):
                    if not column(runs, key, "96"):
                        continue
                    for d in DIMS:
                        diff = statistics.mean(column(runs, key, d)) - statistics.mean(column(unsup, key, d))
                        where = f"{name} {label} {labels} labels {d}-d{' unseen' if key.endswith('unseen') else ''}"
                        if diff < -0.005:
                            below.append(f"{where} ({diff:+.4f})")
                        if key == "ndcg_at_10" and n >= 128 and d in ("48", "24") and diff < 0.02:
                            short.append(f"{where} ({diff:+.4f})")
    return [
        "- Cells more than 0.005 below the unsupervised Matryoshka-Adaptor (3-seed means, every set, method, label "
        "count and dim, all and unseen-document queries): " + ("; ".join(below) if below else "none") + ".",
        "- With 128 or more labels, cells short of +0.02 over the unsupervised adaptor on all test queries at 48 and "
        "24 dims: " + ("; ".join(short) if short else "none") + ".",
    ]


def plot(results: dict, path: str = PLOT) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [(n, results[n]) for n in ("scifact", "cranfield", "cisi") if "supervised" in results.get(n, {})]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (name, res) in zip(axes[0], panels):
        xs = {"8": 8, "32": 32, "128": 128, "all": res["baselines"]["train_queries"]}
        unsup = {s: r for s, r in res.get("unsupervised", {}).items() if s in ("1", "2", "42")}
        for d, style in (("96", "-"), ("48", "--"), ("24", ":")):
            ax.axhline(statistics.mean(column(unsup, "ndcg_at_10", d)), color="grey", linestyle=style, linewidth=1)
            for method, color in (("matryoshka-adaptor", "tab:blue"), ("smec", "tab:orange")):
                points = []
                for labels, x in xs.items():
                    runs = {s: r for s, r in runs_of(res, method, "default", labels).items() if s in ("1", "2", "42")}
                    if runs:
                        points.append((x, statistics.mean(column(runs, "ndcg_at_10", d))))
                if points:
                    ax.plot(*zip(*sorted(points)), style, marker="o", color=color, label=f"{METHODS[method]} {d}-d")
        ax.set_xscale("log")
        ax.set_xlabel("labelled training queries")
        ax.set_ylabel("NDCG@10, all test queries")
        ax.set_title(f"{name} (grey: unsupervised, no labels)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def supervision_section() -> list[str]:
    results = load()
    res = results.get("scifact")
    if not res or "supervised" not in res:
        return []
    out = ["## Supervision that pays (issue 32)", ""]
    out += ["Measured before issue 40: the defaults of these runs guard as `--corpus-mode growing` does now.", ""]
    out += [f"    {c}" for c in COMMANDS]
    out += [
        "",
        "Model all-MiniLM-L6-v2, provided embeddings, 1 thread per process (up to four processes at once on the two "
        "cores). Supervised runs go through `fit_adaptor` with the CLI defaults: the unsupervised phase, then the "
        "supervised phase on the training qrels less two held-out slices (`both`: queries whose relevant documents "
        "no training query cites, and as many again by a hash of the id, about cited documents), stopped early on "
        "the second slice; then the guard scores the weights (1 − a) · unsupervised + a · supervised for a = 0, "
        "0.1, …, 1 and keeps the best mean NDCG@10 on the second slice among those at no dim more than 0.005 below "
        "a = 0 on either slice. With fewer than 10 queries in a slice the supervised phase does not run. Supervised "
        "SMEC trains its body as the unsupervised Matryoshka-Adaptor first, so where its guard keeps a = 0 it has "
        "that adaptor's weights (same seed; scores agree up to float rounding of near-tied documents). Label counts "
        "below 'all' are seeded subsets of the training queries; sets without a train split use the split-query "
        "protocol above (half of the test queries train). Rows 'before issue 32' are the runs of issue 24, with the "
        "code of that time.",
        "",
    ]
    out += scifact_tables(res, load_before())
    out += ["Goals (SciFact, defaults):", ""] + goal_lines(res) + [""]
    out += curve_section(results)
    out += ["**Checks.**", ""] + curve_checks(results) + [""]
    if plot(results):
        out += ["![NDCG@10 against labelled queries at 96 / 48 / 24 dims](benchmarks/label_curve.png)", ""]
    notes = "benchmarks/results/interpolation_notes.md"
    if os.path.exists(notes):
        out += [open(notes).read().rstrip(), ""]
    return out


if __name__ == "__main__":
    print("\n".join(supervision_section()))


CORPUS_RESULTS = "benchmarks/results/corpus_modes.json"


def corpus_section() -> list[str]:
    """Issue 40: the fixed-corpus default against the growing-corpus guard, both methods, SciFact, 5 seeds."""
    res = load(CORPUS_RESULTS).get("scifact")
    if not res:
        return []
    command = RUN + "--sets scifact --labels all --methods matryoshka-adaptor smec --variants fixed growing "
    out = [
        "## Fixed and growing corpus (issue 40)",
        "",
        f"    {command}--seeds 1 2 3 4 42 --out {CORPUS_RESULTS}",
        "",
        "SciFact, all-MiniLM-L6-v2, provided embeddings, 1 thread per process, two processes at once. `fixed` (the "
        "default since issue 40): the guard chooses a and checks every dim on held-out queries about documents "
        "training cites; `growing`: queries whose relevant documents no training query cites must also stay within "
        "0.005 of the unsupervised adaptor at every dim (the default before issue 40). NDCG@10, mean ± sd over "
        "seeds, on all test queries and on the test queries whose relevant documents no train qrel cites "
        f"({res.get('unseen_queries')} queries). The unsupervised rows: {res.get('unsupervised_source', 'this run')}.",
        "",
        "| method | corpus | queries | " + " | ".join(SMALL) + " | kept a (seed: a) |",
        "|---|---|---|" + "---|" * len(SMALL) + "---|",
    ]
    unsup = res.get("unsupervised", {})
    for key, label in (("ndcg_at_10", "all"), ("ndcg_at_10_unseen", "new documents")):
        if unsup:
            cells = " | ".join(mean_sd(column(unsup, key, d)) for d in SMALL)
            out.append(f"| unsupervised adaptor | – | {label} | {cells} | – |")
    for method, name in METHODS.items():
        for mode in ("fixed", "growing"):
            runs = runs_of(res, method, mode)
            if not runs:
                continue
            for key, label in (("ndcg_at_10", "all"), ("ndcg_at_10_unseen", "new documents")):
                cells = " | ".join(mean_sd(column(runs, key, d)) for d in SMALL)
                out.append(f"| {name} ({len(runs)} seeds) | {mode} | {label} | {cells} | {chosen(runs)} |")
    out.append("")
    fixed = {m: runs_of(res, m, "fixed") for m in METHODS}
    if all(fixed.values()):
        mean = {m: {d: statistics.mean(column(r, "ndcg_at_10", d)) for d in SMALL} for m, r in fixed.items()}
        goal = {"96": 0.72, "48": 0.66, "24": 0.54}
        ma = mean["matryoshka-adaptor"]
        out += [
            "Goals: Matryoshka-Adaptor ≥ 0.72 / 0.66 / 0.54 at 96 / 48 / 24 on all test queries: "
            + " / ".join(f"{ma[d]:.4f} ({'met' if ma[d] >= goal[d] else 'not met'})" for d in SMALL)
            + "; SMEC ≥ Matryoshka-Adaptor + 0.01 at 48 and 24: "
            + " / ".join(
                f"{mean['smec'][d] - ma[d]:+.4f} ({'met' if mean['smec'][d] - ma[d] >= 0.01 else 'not met'})"
                for d in ("48", "24")
            )
            + ".",
            "",
        ]
    return out
