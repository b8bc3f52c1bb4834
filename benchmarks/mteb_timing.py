"""Time MTEB scoring of a BEIR folder at 5 dims from the provided embeddings, through the API the CLI calls.

Usage: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mteb_timing.py --data ../shared/data/scifact
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from st_matryoshka import api
from st_matryoshka.config import BackboneSource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="../shared/data/scifact")
    parser.add_argument("--dims", default="384,192,96,48,24")
    parser.add_argument("--out", default="benchmarks/results/mteb_timing.json")
    args = parser.parse_args()
    embeddings = os.path.join(args.data, "embeddings", "all-MiniLM-L6-v2")
    with tempfile.TemporaryDirectory() as output:
        start = time.perf_counter()
        dims = [int(d) for d in args.dims.split(",")]
        api.mteb("all-MiniLM-L6-v2", dims, output, data=args.data, source=BackboneSource(embeddings=embeddings))
        seconds = time.perf_counter() - start
    result = {"data": os.path.basename(os.path.normpath(args.data)), "dims": args.dims, "seconds": seconds}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
