"""Encode throughput of all-MiniLM-L6-v2 with and without a MatryoshkaAdaptor, measured in the same run.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --data ../shared/data/scifact --docs 256 --rounds 3
Rounds alternate base / adaptor (and which goes first) so that machine load affects both alike; the ratio is of the
summed times, and each round's ratio is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from st_matryoshka.data import load_beir
from st_matryoshka.loading import load_model
from st_matryoshka.models import MatryoshkaAdaptor
from st_matryoshka.surgery import backbone_of, split_index, with_adaptor


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
    per_round = []
    base.encode(texts[:32])
    adapted.encode(texts[:32])
    for r in range(args.rounds):
        pair = {}
        # alternate which model goes first, so warm-up and drift do not always favour the same one
        order = (("base", base), ("adaptor", adapted)) if r % 2 == 0 else (("adaptor", adapted), ("base", base))
        for name, model in order:
            start = time.perf_counter()
            model.encode(texts, batch_size=32)
            pair[name] = time.perf_counter() - start
            times[name] += pair[name]
        per_round.append(pair["base"] / pair["adaptor"])
    result = {
        "texts": len(texts),
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "base_texts_per_s": len(texts) * args.rounds / times["base"],
        "adaptor_texts_per_s": len(texts) * args.rounds / times["adaptor"],
    }
    result["ratio"] = result["adaptor_texts_per_s"] / result["base_texts_per_s"]
    # The adaptor's own cost, timed alone on real pooled batches of 32 (many repeats, so little noise).
    pooled = torch.as_tensor(backbone_of(base).encode(texts[:32], batch_size=32))
    module = adapted[split_index(adapted)]
    repeats = 500
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(repeats):
            module({"sentence_embedding": pooled})
        adaptor_seconds_per_text = (time.perf_counter() - start) / (repeats * len(pooled))
    base_seconds_per_text = times["base"] / (len(texts) * args.rounds)
    result["adaptor_ms_per_text"] = 1000 * adaptor_seconds_per_text
    result["base_ms_per_text"] = 1000 * base_seconds_per_text
    result["component_ratio"] = base_seconds_per_text / (base_seconds_per_text + adaptor_seconds_per_text)
    result["per_round_ratios"] = per_round
    result["median_round_ratio"] = sorted(per_round)[len(per_round) // 2]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
