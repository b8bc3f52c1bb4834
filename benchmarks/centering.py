"""Extra rows per data set: the untrained adaptor (the start of training) and the ``--center`` option.

``unsupervised_start`` scores the adaptor before any training step (uncentred PCA rotation), so each table shows
where the unsupervised stage started; ``unsupervised_centered`` trains from classic (centred) PCA.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/centering.py --data-root ../shared/data
Writes benchmarks/results/centering.json; benchmarks/render.py adds the row to each table.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from core_loop import score

from st_matryoshka.config import AdaptorTrainingConfig
from st_matryoshka.data import load_beir, load_embeddings_dir
from st_matryoshka.loading import load_model
from st_matryoshka.surgery import head_of
from st_matryoshka.training import train_matryoshka_adaptor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default=os.environ.get("ST_MATRYOSHKA_DATA", "../shared/data"))
    parser.add_argument("--sets", nargs="+", default=["scifact", "cranfield", "cisi", "msmarco-5k"])
    parser.add_argument("--out", default="benchmarks/results/centering.json")
    args = parser.parse_args()
    base = load_model("all-MiniLM-L6-v2")
    results = {}
    for name in args.sets:
        folder = os.path.join(args.data_root, name)
        test = load_beir(folder, "test")
        cv, qv = load_embeddings_dir(os.path.join(folder, "embeddings", "all-MiniLM-L6-v2"), test, dim=384)
        torch.manual_seed(0)
        start_config = AdaptorTrainingConfig(dims=[192, 96, 48, 24], unsupervised_epochs=0)
        start, _ = train_matryoshka_adaptor(base, test.with_qrels({}), cv, qv, start_config)
        config = AdaptorTrainingConfig(dims=[192, 96, 48, 24], center_input=True)
        model, stages = train_matryoshka_adaptor(base, test.with_qrels({}), cv, qv, config)
        results[name] = {
            "unsupervised_start": score(head_of(start), test, cv, qv),
            "unsupervised_centered": score(head_of(model), test, cv, qv),
            "best_step": stages[0].best_step,
        }
        print(name, json.dumps(results[name]), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
