#!/usr/bin/env bash
# Installs the pinned requirements, makes the built-in synthetic egocentric scene, trains on it,
# renders the test views and the hands decomposition, and prints the metrics table.
# Extra arguments go to full_eval.py (e.g. --iterations 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
python3 full_eval.py --synthetic output/demo "$@"
