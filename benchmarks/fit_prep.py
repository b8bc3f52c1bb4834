"""Seconds ``fit-vectors --max-samples 200000`` spends outside the trainer at 100k and 1M vectors (issue 26, item 4).

Real SciFact all-MiniLM-L6-v2 vectors tiled with N(0, 0.01) noise (as ``benchmarks/scale.py`` makes them), fit by
:func:`st_matryoshka.api.fit_vectors_files` (what ``fit-vectors`` runs) with 2 unsupervised epochs; "outside" is the
whole call minus the trainer's stages: the input check, the principal axes (the D×D second moment), sampling, the
int8 calibration and saving. Each size runs twice in its own process (the second, warm-cache run is reported), with
its minor page faults; "read" is one pass summing the memory-mapped file (what reading it costs at least).

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fit_prep.py --data-root ../shared/data \\
        --work /tmp/prof
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CHILD = """
import json, resource, shutil, sys, time
import numpy as np
from st_matryoshka import api
path, out = sys.argv[1], sys.argv[2]
shutil.rmtree(out, ignore_errors=True)
start = time.perf_counter()
_, meta, stages = api.fit_vectors_files(path, [192, 96, 48, 24], out, max_samples=200000, unsupervised_epochs=2)
total = time.perf_counter() - start
trainer = sum(s.seconds for s in stages)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"total": total, "trainer": trainer, "outside": total - trainer, "minor_faults": ru.ru_minflt}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--work", default="/tmp/st_matryoshka_prep")
    parser.add_argument("--sizes", nargs="+", type=int, default=[100000, 1000000])
    parser.add_argument("--out", default="benchmarks/results/fit_prep.json")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(__file__))
    from scale import tiled

    os.makedirs(args.work, exist_ok=True)
    base = np.load(os.path.join(args.data_root, "scifact", "embeddings", "all-MiniLM-L6-v2", "corpus.npy"))
    results = {"threads": os.environ.get("OMP_NUM_THREADS")}
    for n in args.sizes:
        path = os.path.join(args.work, f"tiled-{n}.npy")
        tiled(base, n, path)
        start = time.perf_counter()
        data = np.load(path, mmap_mode="r")
        for begin in range(0, n, 65536):
            np.asarray(data[begin : begin + 65536]).sum()
        read = time.perf_counter() - start
        runs = []
        for _ in range(2):
            child = subprocess.run(
                [sys.executable, "-c", CHILD, path, os.path.join(args.work, "model")],
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
        results[str(n)] = {**runs[-1], "read_seconds": read}
        print(n, json.dumps(results[str(n)]), flush=True)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
