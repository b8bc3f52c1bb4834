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
    return out + prep_lines()


def prep_lines() -> list[str]:
    """Seconds fit-vectors spends outside the trainer (fit_prep.json), against one read of the file."""
    path = "benchmarks/results/fit_prep.json"
    if not os.path.exists(path):
        return []
    res = json.load(open(path))
    sizes = sorted((k for k in res if k.isdigit()), key=int)
    lines = [
        "Outside the trainer (`fit-vectors --max-samples 200000`, 2 unsupervised epochs, "
        f"{res.get('threads') or '?'} threads; warm cache; the input check, principal axes, sampling, int8 "
        "calibration and saving):",
        "",
        "    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fit_prep.py --data-root ../shared/data "
        "--work /tmp/prof",
        "",
        "| vectors | outside the trainer s | trainer s | minor page faults | one read of the file s |",
        "|---|---|---|---|---|",
    ]
    for n in sizes:
        r = res[n]
        lines.append(
            f"| {int(n):,} | {r['outside']:.1f} | {r['trainer']:.1f} | {r['minor_faults'] / 1e6:.2f}M | "
            f"{r['read_seconds']:.1f} |"
        )
    if len(sizes) >= 2:
        small, large = res[sizes[0]], res[sizes[-1]]
        grows = large["outside"] - small["outside"]
        lines += [
            "",
            f"From {int(sizes[0]):,} to {int(sizes[-1]):,} vectors the time outside the trainer grows by "
            f"{grows:.1f} s. Measured the same way before this change (the int8 calibration mapped every document, "
            "the input check made copies): 37–38 s outside the trainer at 1M with 4.78M minor page faults. Of what "
            "still grows with N, the principal axes' float64 second moment is most (about 8 s at 1M under the "
            "profiler): kept in float64, as the axes every trained model starts from depend on it.",
        ]
    return [*lines, ""]
