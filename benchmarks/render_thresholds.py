"""BENCHMARKS.md section "Bit thresholds and the base model's own bits" (issue 26, item 2)."""

from __future__ import annotations

import json
import os
import statistics

THRESHOLDS = "matryoshka_adaptor_binary_thresholds"
PLAIN = "matryoshka_adaptor_binary"
BUDGETS = (("384", 48), ("192", 24), ("96", 12))
CODES = (("binary", "sym"), ("binary_asym", "asym"))


def runs(res: dict, variant: str) -> list[dict]:
    """Seed 42 and the other seeds' scores of ``variant`` in one set's results."""
    return [res[variant], *res.get("seeds", {}).get(variant, {}).values()] if variant in res else []


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def thresholds_section() -> list[str]:
    path, quant_path = "benchmarks/results/thresholds.json", "benchmarks/results/quantization.json"
    if not (os.path.exists(path) and os.path.exists(quant_path)):
        return []
    results, quant = json.load(open(path)), json.load(open(quant_path))
    lines = [
        "## Bit thresholds and the base model's own bits (issue 26, item 2)",
        "",
        "    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization.py "
        "--data-root ../shared/data \\",
        "        --variants matryoshka_adaptor_binary_thresholds --seeds 42 1 2 3 4 "
        "--out benchmarks/results/thresholds.json",
        "",
        "`--bit-thresholds median` gives the adaptor a per-coordinate threshold vector subtracted from its output "
        "(so a "
        'plain `SentenceTransformer` with `precision="ubinary"` reproduces the codes, and the Hub export folds it '
        "into the `Dense` bias), started at the corpus median of each coordinate (every bit splits the corpus in "
        "halves) and trained by the loss terms on codes; the float terms compare the output before the thresholds. "
        "Cells: NDCG@10 on test as a fraction of the base model's full float32 score, mean ± sample sd over seeds "
        "1, 2, 3, 4, 42 (1 thread); `sym`: sign bits on both sides, `asym`: the float query against the documents' "
        "bits. Base model: its own sign bits (plain) and after subtracting the corpus mean of its unit vectors "
        "(centred), one value each (nothing is trained). The default (`--precision binary`, no thresholds) runs are "
        "the quantisation section's seed-spread runs.",
        "",
        "| set | codes | bytes | base, plain bits | base, centred bits | `--precision binary` (default) | "
        "`--precision binary --bit-thresholds median` | default ≥ both base |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    higher, cells, unmet, lower_at = 0, 0, [], {size: 0 for _, size in BUDGETS}
    for name, res in results.items():
        full = res["truncation"]["float32"]["384"]
        default_runs, threshold_runs = runs(quant[name], PLAIN), runs(res, THRESHOLDS)
        for key, label in CODES:
            for dim, size in BUDGETS:
                base = res["truncation"][key][dim] / full
                centred = res["truncation_centred"][key][dim] / full
                default = [r[key][dim] / full for r in default_runs]
                thresholded = [r[key][dim] / full for r in threshold_runs]
                met = statistics.mean(default) >= max(base, centred)
                if not met:
                    unmet.append(f"{name} {size} B {label}")
                cells += 1
                higher += statistics.mean(thresholded) > statistics.mean(default)
                lower_at[size] += statistics.mean(thresholded) < statistics.mean(default)
                lines.append(
                    f"| {name} | {label} | {size} | {base:.3f} | {centred:.3f} | {cell(default)} | "
                    f"{cell(thresholded)} | {'yes' if met else 'no'} |"
                )
    lines += [
        "",
        f"**Findings.** Median thresholds raise the 5-seed mean in {higher} of {cells} cells and lower it in "
        + ", ".join(f"{n} at {size} B" for size, n in lower_at.items())
        + f" (of {cells // len(BUDGETS)} each), so they stay a flag and the default has none. The "
        "issue's goal (every trained model's codes at or above the base model's plain and centred bits, 5-seed "
        f"means) is not met in {len(unmet)} cells: {', '.join(unmet) or 'none'}. The gap is not the threshold: at 48 "
        "bytes every bit of the full width is kept, and the base model's own coordinates make better sign bits than "
        "the rotation this adaptor starts from (principal axes, balanced within blocks); on CISI, where "
        "centring also lifts the float score, `--center` gives the adaptor's 48-byte codes 0.932 (quantisation "
        "section, seed 42). Tried before the version measured here (seed 42 only): thresholds that the float terms "
        "also see (median or mean) gave lower 12-byte symmetric codes than the default on 4 of 4 sets.",
        "",
    ]
    return lines
