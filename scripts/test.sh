#!/usr/bin/env bash
# Fresh machine: set up .venv (if missing) and run lint + the whole test suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/st-matryoshka ] || bash scripts/setup.sh
export HF_HUB_OFFLINE=1
export ST_MATRYOSHKA_DATA="${ST_MATRYOSHKA_DATA:-$(cd .. && pwd)/shared/data}"
.venv/bin/ruff check .
.venv/bin/python -m pytest -q
