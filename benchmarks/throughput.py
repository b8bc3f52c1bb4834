"""Encode throughput of all-MiniLM-L6-v2 bare, with a trained-size MatryoshkaAdaptor as our module, and with the
same adaptor in its native form (Sentence-Transformers' Normalize + Dense modules, what every save writes), in one run.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --data ../shared/data/scifact --docs 128 --rounds 9
Rounds rotate the order of the three models so that machine load affects all alike; ratios are of the summed times,
and each round's ratios are recorded too. The heads (the modules after Pooling) are also timed alone on real pooled
batches of 32, many repeats, where the machine's noise is small.
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
from st_matryoshka.surgery import backbone_of, head_of, native_model, with_adaptor


def _randomised(adaptor: MatryoshkaAdaptor) -> MatryoshkaAdaptor:
    """A default-size adaptor with non-zero weights (a fresh one's last layer is zero; the cost is the same)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in adaptor.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return adaptor.eval()


def _time_head(head: list[torch.nn.Module], pooled: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(repeats):
            features = {"sentence_embedding": pooled}
            for module in head:
                features = module(features)
        return (time.perf_counter() - start) / (repeats * len(pooled))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--docs", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args()
    texts = load_beir(args.data, None).corpus[: args.docs]
    base = load_model("all-MiniLM-L6-v2")
    module_form = with_adaptor(base, _randomised(MatryoshkaAdaptor(384, num_layers=1)))
    native = native_model(module_form)
    models = {"base": base, "module": module_form, "native": native}
    check = module_form.encode(texts[:32])
    difference = float(abs(native.encode(texts[:32]) - check).max())
    times = dict.fromkeys(models, 0.0)
    per_round = []
    names = list(models)
    for r in range(args.rounds):
        order = names[r % 3 :] + names[: r % 3]
        pair = {}
        for name in order:
            start = time.perf_counter()
            models[name].encode(texts, batch_size=32)
            pair[name] = time.perf_counter() - start
            times[name] += pair[name]
        per_round.append(
            {"native_vs_module": pair["module"] / pair["native"], "native_vs_base": pair["base"] / pair["native"]}
        )
    n = len(texts) * args.rounds
    result = {
        "texts": len(texts),
        "rounds": args.rounds,
        "threads": torch.get_num_threads(),
        "max_abs_difference": difference,
        "texts_per_s": {name: n / seconds for name, seconds in times.items()},
        "native_modules": [type(m).__name__ for m in native],
        "per_round": per_round,
    }
    tps = result["texts_per_s"]
    result["native_vs_module"] = tps["native"] / tps["module"]
    result["native_vs_base"] = tps["native"] / tps["base"]
    pooled = torch.as_tensor(backbone_of(base).encode(texts[:32], batch_size=32))
    repeats = 2000
    heads = {"module": head_of(module_form), "native": head_of(native), "base": head_of(base)}
    _time_head(heads["native"], pooled, 50)  # warm-up
    result["head_ms_per_text"] = {name: 1000 * _time_head(head, pooled, repeats) for name, head in heads.items()}
    base_ms = 1000 * times["base"] / n
    result["base_ms_per_text"] = base_ms
    head = result["head_ms_per_text"]
    # throughput with each head on the bare model's measured per-text cost, the head replacing base's Normalize
    result["component_ratio"] = {k: base_ms / (base_ms - head["base"] + head[k]) for k in ("module", "native")}
    result["component_native_vs_module"] = result["component_ratio"]["native"] / result["component_ratio"]["module"]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
