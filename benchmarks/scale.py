"""Scale: fit-vectors and apply-vectors on 100k, 300k and 1M vectors of width 384 and 768.

The vectors are real SciFact embeddings (all-MiniLM-L6-v2 for 384, all-mpnet-base-v2 for 768, from
``<data>/scifact/embeddings/``) tiled with small Gaussian noise (sd 0.01) to the size wanted, written as ``.npy``.
Each command runs in its own process; its peak anonymous memory (``RssAnon`` in ``/proc/<pid>/status``, not the page
cache of the memory-mapped file) is polled every 20 ms.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scale.py --data-root ../shared/data --work /tmp/scale

Results go to ``benchmarks/results/scale.json`` and ``benchmarks/scale.png``; ``benchmarks/render.py`` writes the
table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

EMBEDDINGS = {384: "all-MiniLM-L6-v2", 768: "all-mpnet-base-v2"}


def tiled(source: np.ndarray, n: int, path: str, seed: int = 0) -> None:
    """``n`` rows of ``source`` repeated with N(0, 0.01) noise, written chunk by chunk."""
    if os.path.exists(path) and np.load(path, mmap_mode="r").shape == (n, source.shape[1]):
        return
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, source.shape[1]))
    for start in range(0, n, len(source)):
        rows = source[: min(len(source), n - start)]
        out[start : start + len(rows)] = rows + 0.01 * rng.standard_normal(rows.shape).astype(np.float32)
    out.flush()
    del out


def run(argv: list[str]) -> dict[str, float]:
    """Run ``argv``; wall seconds, peak RssAnon (MiB) and the training seconds the command reports."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{process.stderr.read()[-3000:]}")
    stages = re.findall(r"evaluations, ([0-9.]+)s\)", process.stdout.read())
    return {"seconds": seconds, "peak_rss_anon_mib": peak / 1024, "train_seconds": sum(map(float, stages))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--work", default="/tmp/st_matryoshka_scale", help="Folder for the tiled .npy files.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--widths", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--max-samples", type=int, default=262_144)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    cli = [sys.executable, "-m", "st_matryoshka.cli"]
    results = []
    for width in args.widths:
        source = np.load(os.path.join(args.data_root, "scifact", "embeddings", EMBEDDINGS[width], "corpus.npy"))
        dims = ",".join(str(width // 2**k) for k in range(1, 5))
        for n in args.sizes:
            path = os.path.join(args.work, f"tiled-{width}-{n}.npy")
            tiled(source, n, path)
            model = os.path.join(args.work, f"model-{width}-{n}")
            fit = run([*cli, "fit-vectors", "--corpus", path, "--dims", dims, "--max-samples", str(args.max_samples),
                       "--unsupervised-epochs", str(args.epochs), "--output", model, "--overwrite"])  # fmt: skip
            meta = json.load(open(os.path.join(model, "st_matryoshka.json")))
            samples = min(n - min(1000, round(0.1 * n)), args.max_samples // args.epochs) * args.epochs
            applied = run([*cli, "apply-vectors", "--model", model, "--input", path, "--dim", str(width // 8),
                           "--output", os.path.join(args.work, "applied.npy"), "--overwrite"])  # fmt: skip
            row = {
                "width": width,
                "n": n,
                "dims": meta["dims"],
                "training_samples": samples,
                "fit_seconds": fit["seconds"],
                "train_seconds": fit["train_seconds"],
                "seconds_per_million_samples": fit["train_seconds"] / samples * 1e6,
                "fit_peak_rss_anon_mib": fit["peak_rss_anon_mib"],
                "apply_seconds": applied["seconds"],
                "apply_vectors_per_second": n / applied["seconds"],
                "apply_peak_rss_anon_mib": applied["peak_rss_anon_mib"],
                "threads": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count())),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    settings = {"max_samples": args.max_samples, "epochs": args.epochs, "batch_size": 512, "chunk_size": 65536}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"settings": settings, "runs": results}, f, indent=2)
    plot(results, "benchmarks/scale.png")


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for width in sorted({r["width"] for r in results}):
        rows = sorted((r for r in results if r["width"] == width), key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        axes[0].plot(ns, [r["fit_seconds"] for r in rows], marker="o", label=f"fit, {width}-d")
        axes[0].plot(ns, [r["apply_seconds"] for r in rows], marker="s", ls="--", label=f"apply, {width}-d")
        axes[1].plot(ns, [r["fit_peak_rss_anon_mib"] for r in rows], marker="o", label=f"fit, {width}-d")
        axes[1].plot(ns, [r["apply_peak_rss_anon_mib"] for r in rows], marker="s", ls="--", label=f"apply, {width}-d")
    for ax, label in zip(axes, ("seconds", "peak RssAnon (MiB)")):
        ax.set_xscale("log")
        ax.set_xlabel("vectors")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
