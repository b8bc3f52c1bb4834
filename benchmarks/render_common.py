"""Shared pieces of the BENCHMARKS.md renderers: the dims and the per-dim table."""

from __future__ import annotations

DIMS = ["384", "192", "96", "48", "24"]


def table(row: dict, methods: list[str]) -> list[str]:
    lines = ["| method | " + " | ".join(DIMS) + " |", "|---|" + "---|" * len(DIMS)]
    for m in methods:
        if m in row:
            lines.append(f"| {m} | " + " | ".join(f"{row[m][d]:.4f}" for d in DIMS) + " |")
    return lines


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{mean:.4f} ± {sd:.4f}"
