"""Train, score, export and card the SciFact models whose cards live in ``model_cards/``.

Steps, each a call of :mod:`st_matryoshka.api` that an ``st-matryoshka`` command makes (so this is also the worked
example of the Publish section):

1. ``train``: PCA, the supervised Matryoshka-Adaptor and SMEC on SciFact's corpus and train qrels, from the provided
   all-MiniLM-L6-v2 embeddings (``--default-dim 96`` for the adaptors).
2. ``evaluate --record``: NDCG@10 and Recall@100 on SciFact test at every trained dim, with the base model's
   truncation and PCA on the same queries, recorded in each model's ``st_matryoshka.json``; then
   ``frontier --record``: every trained dim as float32, int8 (the calibration ``train`` stored) and binary codes,
   against the base model's truncation and PCA, recorded too (the card's bytes frontier table and plot).
3. ``export --repo-id st-matryoshka/...``: the Hub-ready folders (what ``push`` would upload).
4. The exported ``st_matryoshka.json`` of each model is copied to ``model_cards/<name>/``, and the cards and plots are
   rendered from it (``python -m st_matryoshka.model_card model_cards``, the command that regenerates them).

    HF_HUB_OFFLINE=1 .venv/bin/python recipes/publish_scifact.py --data ../shared/data/scifact --out runs/publish
    HF_HUB_OFFLINE=1 .venv/bin/python recipes/publish_scifact.py --data ../shared/data/scifact --out runs/smoke \
        --smoke --cards runs/smoke/cards          # two epochs per stage, cards to a scratch folder
"""

from __future__ import annotations

import argparse
import os
import shutil

from st_matryoshka import api
from st_matryoshka.config import BackboneSource
from st_matryoshka.data import DATA_ENV
from st_matryoshka.metadata import METADATA_FILE
from st_matryoshka.model_card import render_folder

DIMS = [192, 96, 48, 24]
MODELS = {
    "all-MiniLM-L6-v2-scifact-pca": {"method": "pca"},
    "all-MiniLM-L6-v2-scifact-matryoshka-adaptor": {"method": "matryoshka-adaptor", "supervised": True},
    "all-MiniLM-L6-v2-scifact-smec": {"method": "smec", "supervised": True},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_data = os.path.join(os.environ.get(DATA_ENV, os.path.join("..", "shared", "data")), "scifact")
    parser.add_argument("--data", default=default_data, help="SciFact in BEIR layout (default $ST_MATRYOSHKA_DATA).")
    parser.add_argument("--embeddings", help="corpus.npy / queries.npy (default <data>/embeddings/all-MiniLM-L6-v2).")
    parser.add_argument("--out", required=True, help="Folder for the trained and exported models.")
    parser.add_argument("--cards", default="model_cards", help="Where the cards go (default model_cards/).")
    parser.add_argument("--org", default="st-matryoshka", help="Hub organisation named in the repo ids.")
    parser.add_argument("--smoke", action="store_true", help="Two epochs per stage: checks the pipeline, not quality.")
    args = parser.parse_args(argv)
    embeddings = args.embeddings or os.path.join(args.data, "embeddings", "all-MiniLM-L6-v2")
    quick = {"unsupervised_epochs": 2, "supervised_epochs": 2} if args.smoke else {}
    for name, method in MODELS.items():
        trained = os.path.join(args.out, name)
        hub = os.path.join(args.out, f"{name}-hub")
        extra = {} if method["method"] == "pca" else {**quick, "default_dim": 96}
        source = BackboneSource(embeddings=embeddings)
        api.train("all-MiniLM-L6-v2", args.data, DIMS, trained, overwrite=True, **method, **extra, source=source)
        api.evaluate(trained, args.data, [384, *DIMS], split="test", record=True, source=source)
        frontier = os.path.join(args.out, f"{name}-frontier")
        api.frontier(trained, args.data, [384, *DIMS], frontier, split="test", record=True, source=source)
        api.export_model(trained, hub, repo_id=f"{args.org}/{name}", overwrite=True)
        card_folder = os.path.join(args.cards, name)
        os.makedirs(card_folder, exist_ok=True)
        shutil.copy(os.path.join(hub, METADATA_FILE), os.path.join(card_folder, METADATA_FILE))
    for folder in render_folder(args.cards):
        print(f"card: {folder}/README.md")


if __name__ == "__main__":
    main()
