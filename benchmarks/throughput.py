"""Encode throughput of all-MiniLM-L6-v2 with and without a MatryoshkaAdaptor, measured in the same run.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --data ../shared/data/scifact --docs 256 --rounds 3
Rounds alternate base / adaptor so that machine load affects both alike; the ratio is of the summed times.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from st_matryoshka.cli import load_model
from st_matryoshka.data import load_beir
from st_matryoshka.models import MatryoshkaAdaptor
from st_matryoshka.training import with_adaptor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--docs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    texts = load_beir(args.data, None).corpus[: args.docs]
    base = load_model("all-MiniLM-L6-v2")
    adapted = with_adaptor(base, MatryoshkaAdaptor(384, num_layers=1).eval())
    times = {"base": 0.0, "adaptor": 0.0}
    base.encode(texts[:32])
    adapted.encode(texts[:32])
    for _ in range(args.rounds):
        for name, model in (("base", base), ("adaptor", adapted)):
            start = time.perf_counter()
            model.encode(texts, batch_size=32)
            times[name] += time.perf_counter() - start
    result = {
        "texts": len(texts),
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "base_texts_per_s": len(texts) * args.rounds / times["base"],
        "adaptor_texts_per_s": len(texts) * args.rounds / times["adaptor"],
    }
    result["ratio"] = result["adaptor_texts_per_s"] / result["base_texts_per_s"]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
