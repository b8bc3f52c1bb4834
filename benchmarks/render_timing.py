"""BENCHMARKS.md sections "Encode throughput" (throughput.json) and "MTEB scoring time" (mteb_timing.json)."""

from __future__ import annotations

import json
import os


def throughput_section() -> list[str]:
    out: list[str] = []
    tp = "benchmarks/results/throughput.json"
    if os.path.exists(tp):
        t = json.load(open(tp))
        out += [
            "## Encode throughput",
            "",
            f"    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --data ../shared/data/scifact "
            f"--docs {t['texts']} --rounds {t['rounds']}",
            "",
            f"all-MiniLM-L6-v2 on {t['texts']} SciFact abstracts x {t['rounds']} alternating rounds, "
            f"{t['threads']} threads: bare model {t['base_texts_per_s']:.1f} texts/s, with the adaptor "
            f"{t['adaptor_texts_per_s']:.1f} texts/s, ratio {t['ratio']:.3f} (per round: "
            + ", ".join(f"{r:.3f}" for r in t["per_round_ratios"])
            + "). That end-to-end ratio is dominated by this shared 2-core machine's noise; timed alone on "
            f"pooled batches of 32, the adaptor costs {t['adaptor_ms_per_text']:.4f} ms per text against "
            f"{t['base_ms_per_text']:.1f} ms per text for the bare model, a throughput ratio of "
            f"{t['component_ratio']:.4f}.",
            "",
        ]
    return out


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
