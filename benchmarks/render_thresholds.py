"""BENCHMARKS.md section "Codes against the base model's bits (issue 33)": the code guard, bit thresholds and the
base model's own sign bits, 5 seeds per cell."""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter

THRESHOLDS = "matryoshka_adaptor_binary_thresholds"
PLAIN = "matryoshka_adaptor_binary"  # before the code guard (the runs are `--no-code-guard` now)
GUARDED = "matryoshka_adaptor_binary_guarded"  # `--precision binary` since issue 33
BUDGETS = (("384", 48), ("192", 24), ("96", 12))
CODES = (("binary", "sym"), ("binary_asym", "asym"))
TOLERANCE = 0.005  # the goal: at or above the better base bits minus this


def runs(res: dict, variant: str) -> list[dict]:
    """Seed 42 and the other seeds' scores of ``variant`` in one set's results."""
    return [res[variant], *res.get("seeds", {}).get(variant, {}).values()] if variant in res else []


def cell(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def kept_counts(guarded: list[dict]) -> str:
    """What the guard kept over the seeds, e.g. ``base centred bits from 96 ×3, trained ×2``."""
    names = []
    for run in guarded:
        codes = run.get("codes") or {"kept": "trained", "block": None}
        names.append(codes["kept"] if codes["block"] is None else f"{codes['kept']} from {codes['block'][0]}")
    return ", ".join(f"{name} ×{n}" for name, n in Counter(names).most_common())


def thresholds_section() -> list[str]:
    path = "benchmarks/results/thresholds.json"
    if not os.path.exists(path):
        return []
    results = json.load(open(path))
    lines = [
        "## Codes against the base model's bits (issue 33)",
        "",
        "    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/quantization.py "
        "--data-root ../shared/data \\",
        "        --variants matryoshka_adaptor_binary_guarded matryoshka_adaptor_binary "
        "matryoshka_adaptor_binary_thresholds \\",
        "        --seeds 42 1 2 3 4 --out benchmarks/results/thresholds.json",
        "",
        "`--precision binary` now ends with the code guard (`st_matryoshka.engine.guard_codes`, `--no-code-guard` "
        "turns it off): after training, the trained sign bits and, from each trained dim on to the width, the base "
        "model's own coordinates (plain, or minus the corpus mean: the identity map with a bias, which the saved "
        "model outputs there) are scored at every byte budget on held-out documents (top-10 overlap with the "
        "backbone's neighbours, symmetric and asymmetric codes averaged; no labels, no test queries); a choice is "
        "kept when it is at no budget more than 0.005 below the trained codes and more than 0.005 above them on the "
        "mean over budgets. Every prefix up to the kept block's start is the trained adaptor's, bit for bit. Cells: "
        "NDCG@10 on test as a fraction of the base model's full float32 score, mean ± sample sd over seeds 1, 2, 3, "
        "4, 42 (1 thread per process, two processes on two cores); `sym`: sign bits on both sides, `asym`: the float "
        "query against the documents' bits. Base model: its own sign bits (plain) and after subtracting the corpus "
        "mean of its unit vectors (centred), one value each. `before the guard`: the same training with "
        "`--no-code-guard` (`matryoshka_adaptor_binary`, same seeds and threads; the trained weights are the "
        "default's, so the two differ only where the guard kept a base block); `median thresholds`: "
        "`--precision binary --bit-thresholds median --no-code-guard` (issue 26). The goal: the default at or above "
        "the better base bits minus 0.005.",
        "",
        "| set | codes | bytes | base, plain bits | base, centred bits | before the guard | median thresholds | "
        "`--precision binary` (default: code guard) | default − better base | goal |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    unmet, gains24, moved, kept, lowered = [], [], [], [], []
    for name, res in results.items():
        full = res["truncation"]["float32"]["384"]
        before, thresholded, guarded = runs(res, PLAIN), runs(res, THRESHOLDS), runs(res, GUARDED)
        if not guarded:
            continue
        kept.append(f"{name}: {kept_counts(guarded)}")
        for key, label in CODES:
            for dim, size in BUDGETS:
                best = max(res["truncation"][key][dim], res["truncation_centred"][key][dim]) / full
                kinds = (("b", before), ("t", thresholded), ("g", guarded))
                values = {n: [r[key][dim] / full for r in rs] for n, rs in kinds}
                mean = statistics.mean(values["g"])
                met = mean >= best - TOLERANCE
                if not met:
                    unmet.append(f"{name} {size} B {label} ({mean - best:+.3f})")
                if size == 24:
                    gains24.append(mean - best)
                moved.append(mean - statistics.mean(values["b"]))
                if moved[-1] < -TOLERANCE:
                    lowered.append(f"{name} {size} B {label} ({moved[-1]:+.3f})")
                lines.append(
                    f"| {name} | {label} | {size} | {res['truncation'][key][dim] / full:.3f} | "
                    f"{res['truncation_centred'][key][dim] / full:.3f} | {cell(values['b'])} | "
                    + (cell(values["t"]) if values["t"] else "–")
                    + f" | {cell(values['g'])} | {mean - best:+.3f} | {'met' if met else 'not met'} |"
                )
    cells = len(moved)
    lines += [
        "",
        f"What the guard kept (5 seeds): {'; '.join(kept)}.",
        "",
        f"**Findings.** Against the same runs without the guard, the default's 5-seed mean moved by "
        f"{min(moved):+.3f} to {max(moved):+.3f} over the {cells} cells (mean {statistics.mean(moved):+.3f}); it "
        f"lowered {len(lowered)} by more than {TOLERANCE}"
        + (f" ({', '.join(lowered)}: a budget past the kept block's start, which the held-out criterion scored "
           "within the tolerance)" if lowered else "")
        + ". The "
        f"goal (at or above the better base bits minus {TOLERANCE}) is not met in {len(unmet)} of {cells} cells"
        + (f": {', '.join(unmet)}" if unmet else "")
        + f". At 24 bytes the default is {statistics.mean(gains24):+.3f} above the better base bits on average "
        f"(the goal: +0.03; {'met' if statistics.mean(gains24) >= 0.03 else 'not met'}). Median thresholds stay a "
        "flag (issue 26: at or below the plain runs on average).",
        "",
    ]
    return lines
