#!/usr/bin/env bash
# Fresh machine: set up .venv (if missing) and run lint + the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/st-matryoshka ] || bash scripts/setup.sh
# a .venv made before the layer check, the USearch engine or the vector databases gets the dev extra again
{ [ -x .venv/bin/lint-imports ] && .venv/bin/python -c "import usearch, pymilvus, milvus_lite, qdrant_client" 2>/dev/null; } \
    || .venv/bin/python -m pip install -q -e ".[dev]"
export HF_HUB_OFFLINE=1
export GRPC_VERBOSITY="${GRPC_VERBOSITY:-NONE}"  # Milvus Lite's gRPC server logs its shutdown after the summary
export ST_MATRYOSHKA_DATA="${ST_MATRYOSHKA_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
.venv/bin/python -m pytest -q --durations=20  # the slowest tests, so the slow marker stays true
