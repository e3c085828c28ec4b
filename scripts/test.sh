#!/usr/bin/env bash
# Installs the pinned requirements and runs the CPU test suite (CUDA tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
python3 -m pytest -q -m "not slow" "$@"
