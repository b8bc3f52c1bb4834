"""BENCHMARKS.md section "Scale" (scale.json)."""

from __future__ import annotations

import json
import os


def scale_section() -> list[str]:
    """fit-vectors / apply-vectors against corpus size (benchmarks/scale.py)."""
    path = "benchmarks/results/scale.json"
    if not os.path.exists(path):
        return []
    res = json.load(open(path))
    st = res["settings"]
    out = [
        "## Scale: fit-vectors and apply-vectors on 100k to 1M vectors",
        "",
        "    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scale.py --data-root ../shared/data --work /tmp/scale",
        "",
        "Real SciFact embeddings (all-MiniLM-L6-v2, 384-d; all-mpnet-base-v2, 768-d) tiled with N(0, 0.01) noise to N "
        f"rows, 2 threads. Unsupervised Matryoshka-Adaptor, dims D/2 … D/16, `--max-samples {st['max_samples']}` over "
        f"{st['epochs']} epochs (a seeded sample of the corpus), batch {st['batch_size']}; principal axes, NaN scan "
        f"and apply read the memory-mapped file {st['chunk_size']:,} rows at a time; the criterion holds out at most "
        "1,000 documents and searches at most 20,000. Fit and apply each run in their own process: `fit s` is the "
        "whole process (start-up, NaN scan, principal axes, training, saving), `training s` the trainer's stages, "
        "and seconds per 1M samples divide the latter; peak RssAnon is the process' anonymous memory (not the "
        "file's page cache), polled every 20 ms. apply-vectors writes D/8 dims as float32. With the cap, the fit "
        "holds at most the sampled rows (262,144 × D floats) plus one chunk; what still grows with N is the ids "
        "(one key string per vector).",
        "",
        "| width | vectors | training samples | fit s | training s | s per 1M samples | fit peak RssAnon MiB "
        "| apply s | apply vectors/s | apply peak RssAnon MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        out.append(
            f"| {r['width']} | {r['n']:,} | {r['training_samples']:,} | {r['fit_seconds']:.1f} | "
            f"{r['train_seconds']:.1f} | {r['seconds_per_million_samples']:.0f} | {r['fit_peak_rss_anon_mib']:.0f} | "
            f"{r['apply_seconds']:.1f} | {r['apply_vectors_per_second']:,.0f} | {r['apply_peak_rss_anon_mib']:.0f} |"
        )
    out += ["", "![time and memory against corpus size](benchmarks/scale.png)", ""]
    return out
