#!/usr/bin/env bash
# Create .venv with the CPU torch wheel first (pip would otherwise pull a CUDA build), then the package.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
