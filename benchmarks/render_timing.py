"""BENCHMARKS.md sections "Serving activation" (serving.json), "Encode throughput" (throughput.json) and "MTEB
scoring time" (mteb_timing.json)."""

from __future__ import annotations

import json
import os

from render_common import _mean_sd


def serving_section() -> list[str]:
    path = "benchmarks/results/serving.json"
    if not os.path.exists(path):
        return []
    results = json.load(open(path))
    sets = list(dict.fromkeys(key.split("/")[0] for key in results))
    activations = list(dict.fromkeys(key.split("/")[1] for key in results))
    dims = ["96", "48", "24"]
    threads = sorted({entry["threads"] for entry in results.values()})
    seeds = sorted({int(key.split("/")[2]) for key in results})
    out = [
        "## Serving activation (issue 39)",
        "",
        "    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/serving.py --data-root ../shared/data \\",
        "        --sets " + " ".join(sets) + " --seeds " + " ".join(str(s) for s in seeds),
        "",
        "The unsupervised Matryoshka-Adaptor (defaults, dims 192, 96, 48, 24) with its default GELU and with "
        "Tanh, the one activation besides Identity that text-embeddings-inference's `Dense` runs. Both are scored "
        "as saved: `Normalize`, `Dense` (the activation), `Dense` (Identity), `Normalize` (the Tanh model's "
        "activations: "
        + ", ".join(f"`{a}`" for a in next(e["activations"] for k, e in results.items() if "/tanh/" in k))
        + f"). NDCG@10 on all test queries, mean ± sd over seeds {', '.join(map(str, seeds))} "
        f"({', '.join(map(str, threads))} thread(s) per process, two processes at once).",
        "",
        "| set | activation | " + " | ".join(dims) + " |",
        "|---|---|" + "---|" * len(dims),
    ]
    gaps = []
    for name in sets:
        means = {}
        for activation in activations:
            runs = [e for k, e in results.items() if k.startswith(f"{name}/{activation}/")]
            if not runs:
                continue
            values = {d: [r["ndcg_at_10"][d] for r in runs] for d in dims}
            means[activation] = {d: sum(v) / len(v) for d, v in values.items()}
            cells = " | ".join(_mean_sd(values[d]) for d in dims)
            out.append(f"| {name} | {activation} ({len(runs)} seeds) | {cells} |")
        if "gelu" in means and "tanh" in means:
            diff = {d: means["tanh"][d] - means["gelu"][d] for d in dims}
            gaps += list(diff.values())
            out.append(f"| {name} | tanh − gelu | " + " | ".join(f"{diff[d]:+.4f}" for d in dims) + " |")
    if gaps:
        worst = min(gaps)
        within = sum(g >= -0.005 for g in gaps)
        out += [
            "",
            f"Tanh − GELU over the {len(gaps)} cells: mean {sum(gaps) / len(gaps):+.4f}, worst {worst:+.4f}; "
            f"{within} of {len(gaps)} cells within 0.005 of the default (or above it).",
        ]
    return out + [""]


def throughput_section() -> list[str]:
    path = "benchmarks/results/throughput.json"
    if not os.path.exists(path):
        return []
    t = json.load(open(path))
    if "texts_per_s" not in t:  # the earlier layout (bare model and module form only)
        return []
    tps, head = t["texts_per_s"], t["head_ms_per_text"]
    rounds = "; ".join(f"{r['native_vs_module']:.3f}" for r in t["per_round"])
    return [
        "## Encode throughput",
        "",
        f"    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --data ../shared/data/scifact "
        f"--docs {t['texts']} --rounds {t['rounds']}",
        "",
        f"all-MiniLM-L6-v2 on {t['texts']} SciFact abstracts x {t['rounds']} rounds (the order of the three models "
        f"rotating), {t['threads']} threads, alone on the machine; a default-size adaptor (one hidden layer of 384, "
        f"GELU) with random weights, as our module and in its native form "
        f"({', '.join(t['native_modules'][2:])} after Pooling; max |difference| {t['max_abs_difference']:.1e}):",
        "",
        "| model | texts/s | head after Pooling, ms per text |",
        "|---|---:|---:|",
        f"| bare all-MiniLM-L6-v2 | {tps['base']:.1f} | {head['base']:.4f} |",
        f"| with the adaptor module | {tps['module']:.1f} | {head['module']:.4f} |",
        f"| with the native modules | {tps['native']:.1f} | {head['native']:.4f} |",
        "",
        f"End to end, native / module = {t['native_vs_module']:.3f} and native / bare = {t['native_vs_base']:.3f} "
        f"(per round, native / module: {rounds}); on this shared 2-core machine these ratios carry the machine's "
        f"noise. Timed alone on pooled batches of 32 ({t['base_ms_per_text']:.1f} ms per text for the bare model), "
        f"the heads give throughput ratios of {t['component_ratio']['module']:.4f} (module) and "
        f"{t['component_ratio']['native']:.4f} (native) against the bare model: native / module = "
        f"{t['component_native_vs_module']:.4f}.",
        "",
    ]


def mteb_timing_section() -> list[str]:
    out: list[str] = []
    mt = "benchmarks/results/mteb_timing.json"
    if os.path.exists(mt):
        m = json.load(open(mt))
        out += [
            "## MTEB scoring time",
            "",
            "    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mteb_timing.py --data ../shared/data/scifact",
            "",
            f"`st-matryoshka mteb` on {m['data']} at dims {m['dims']} from the provided embeddings (local MTEB task, "
            f"one MTEB experiment per dim, model loading included): {m['seconds']:.1f} s.",
            "",
        ]
    return out
