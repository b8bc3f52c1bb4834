"""BENCHMARKS.md section "From codes to an index: what search costs" (search.json)."""

from __future__ import annotations

import json
import os

COMMAND = (
    "OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/search.py --data-root ../shared/data "
    "--sizes 100000 1000000 --work /tmp/search"
)


def mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def quality_table(res: dict) -> list[str]:
    full = res["quality"]["float32 flat (exact)"]
    lines = ["| index | NDCG@10 | of float flat |", "|---|---:|---:|"]
    for name, value in res["quality"].items():
        lines.append(f"| {name} | {value:.4f} | {value / full:.3f} |")
    return lines


def cost_table(n: str, rows: dict) -> list[str]:
    base = rows["float32 flat (exact)"]
    lines = [
        f"{int(n):,} documents:",
        "",
        "| index | codes in RAM (MiB) | int8 store on disk (MiB) | build s | QPS 1 thread | QPS 2 threads | "
        "× float flat (2 thr) | recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {mib(r['bytes'].get('index.faiss', 0))} | {mib(r['bytes'].get('rescore.bin', 0))} | "
            f"{r['build_seconds']:.1f} | {r['qps_1']:.0f} | {r['qps_2']:.0f} | {r['qps_2'] / base['qps_2']:.1f} | "
            f"{r['recall_at_10']:.3f} |"
        )
    return lines


def floor_line(res: dict) -> list[str]:
    rows = res["cost"].get("1000000") or res["cost"][max(res["cost"], key=int)]
    n = 1000000 if "1000000" in res["cost"] else int(max(res["cost"], key=int))
    bandwidth = res["read_bytes_per_second"]
    floor = bandwidth / (n * 48)
    plain = rows.get("ours binary 48 B, no rescore")
    reached = (
        f"; exact Hamming search (48 B, no rescoring) answers {plain['qps_1']:.0f} per second on one thread, "
        f"{plain['qps_1'] / floor:.2f} of that floor"
        if plain
        else ""
    )
    return [
        f"Physical floor: an exact Hamming scan reads N × 48 bytes per query; one thread here reads "
        f"{bandwidth / 1e9:.1f} GB/s, so at {n:,} documents at most {floor:.0f} queries per second{reached}.",
    ]


def search_section() -> list[str]:
    path = "benchmarks/results/search.json"
    if not os.path.exists(path):
        return []
    res = json.load(open(path))
    out = [
        "## From codes to an index: what search costs (issue 26)",
        "",
        f"    {COMMAND}",
        "",
        "`st_matryoshka.index.VectorIndex` (what `st-matryoshka index build` / `index search` run): FAISS "
        "`IndexFlatIP` / `IndexBinaryFlat` / `IndexScalarQuantizer` (int8, the model's ranges) / HNSW, queries as "
        "float (asymmetric), `+ rescore`: the top 100 by code re-ranked by the float query against int8 vectors "
        "memory-mapped from disk. `base` is all-MiniLM-L6-v2 itself, `ours` an unsupervised binary-trained "
        "Matryoshka-Adaptor fit on SciFact's corpus vectors (no labels; "
        f"{res['fit_seconds']:.0f} s). Quality: the real SciFact corpus and test queries. Cost: SciFact vectors "
        "tiled with N(0, 0.01) noise, 1,000 tiled test queries, recall@10 against exact float search of the same "
        "model's full-width output; RAM holds the FAISS file's codes (plus the HNSW graph), the int8 store stays "
        "on disk.",
        "",
        *quality_table(res),
        "",
    ]
    for n, rows in res["cost"].items():
        out += [*cost_table(n, rows), ""]
    out += [*floor_line(res), ""]
    return out
