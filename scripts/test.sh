#!/usr/bin/env bash
# Installs the pinned requirements (and Chromium for the viewer's browser test, where apt-get can)
# and runs the CPU test suite (CUDA tests skip without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
bash scripts/install_chromium.sh
python3 -m pytest -q -m "not slow" "$@"
