"""Render BENCHMARKS.md from benchmarks/results/*.json (figures are never typed by hand).

One module renders each section (``render_core``, ``render_smec``, ``render_timing``, ``render_supervision``,
``render_vectors``, ``render_frontier``, ``render_quantization``, ``render_thresholds``, ``render_scale``,
``render_search``, ``render_vectordb``, ``render_published``); this one puts them in order. Run from the repository
root: ``.venv/bin/python benchmarks/render.py``.
"""

from __future__ import annotations

import os

from render_core import comparison_section, core_results, opening, set_section
from render_frontier import frontier_section
from render_published import published_section
from render_quantization import quantization_section
from render_scale import scale_section
from render_search import search_section
from render_smec import smec_section
from render_supervision import corpus_section, supervision_section
from render_thresholds import thresholds_section
from render_timing import mteb_timing_section, serving_section, throughput_section
from render_vectordb import vectordb_section
from render_vectors import vectors_section


def main() -> None:
    res = core_results()
    out = opening()
    for name, row in res.items():
        out += set_section(name, row)
    out += comparison_section()
    out += smec_section(res)
    out += serving_section()
    out += throughput_section()
    out += mteb_timing_section()
    out += corpus_section()
    out += supervision_section()
    out += vectors_section()
    out += frontier_section()
    out += quantization_section()
    out += thresholds_section()
    out += scale_section()
    out += search_section()
    out += vectordb_section()
    out += published_section()
    extra = "benchmarks/results/notes.md"
    if os.path.exists(extra):
        out += [open(extra).read()]
    open("BENCHMARKS.md", "w").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
