#!/usr/bin/env bash
# Fresh machine: set up .venv (if missing), train unsupervised + supervised adaptors for all-MiniLM-L6-v2 on
# SciFact from the provided embeddings, and print the per-dim table against plain truncation.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/st-matryoshka ] || bash scripts/setup.sh
export HF_HUB_OFFLINE=1
DATA="${ST_MATRYOSHKA_DATA:-$(cd .. && pwd)/shared/data}/scifact"
EMB="$DATA/embeddings/all-MiniLM-L6-v2"
OUT="${OUT:-runs/demo}"
mkdir -p "$OUT"
st() { .venv/bin/st-matryoshka "$@"; }
st train --model all-MiniLM-L6-v2 --data "$DATA" --embeddings "$EMB" --method matryoshka-adaptor \
  --dims 192,96,48,24 --output "$OUT/unsupervised" --overwrite
st train --model all-MiniLM-L6-v2 --data "$DATA" --embeddings "$EMB" --method matryoshka-adaptor --supervised \
  --train-split train --dims 192,96,48,24 --output "$OUT/supervised" --overwrite
for m in truncation unsupervised supervised; do
  model="$OUT/$m"; [ "$m" = truncation ] && model=all-MiniLM-L6-v2
  echo "== $m"
  st evaluate --model "$model" --data "$DATA" --embeddings "$EMB" --split test --dims 384,192,96,48,24 \
    --json "$OUT/$m.json" --overwrite
done
