#!/usr/bin/env bash
# The README's training-speed table in one run on a GPU machine. Generating the 640x360 synthetic
# scene takes one to two minutes of CPU, so it runs while the CUDA extensions build; then
# benchmarks/training_speed.py trains each NAME=SCENE given (e.g. glass=data/glass) and the
# synthetic scene, baseline and default one after the other. JSON and logs under OUT/<name>/.
#   bash benchmarks/run_training_speed.sh OUT [NAME=SCENE ...]     # env: ITERATIONS (3000)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash benchmarks/run_training_speed.sh OUT [NAME=SCENE ...]}
shift
ITERATIONS=${ITERATIONS:-3000}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} PYTHONUNBUFFERED=1
mkdir -p "$OUT/synthetic"
# training_speed.py reuses this folder (it holds scene_meta.json once written)
python -m scene.synthetic "$OUT/synthetic/synthetic_640x360_40f" --frames 40 --width 640 --height 360 \
    --overwrite > "$OUT/synthetic/generate.log" 2>&1 &
generate=$!
python -c "from utils.cuda_ext import load_knn, load_rasterizer; load_rasterizer(); load_knn(); print('extensions built')"
wait "$generate" || { tail -n 5 "$OUT/synthetic/generate.log"; exit 1; }
for scene in "$@"; do
    python benchmarks/training_speed.py --out "$OUT/${scene%%=*}" --scene "$scene" --no_synthetic \
        --iterations "$ITERATIONS"
done
python benchmarks/training_speed.py --out "$OUT/synthetic" --frames 40 --width 640 --height 360 \
    --iterations "$ITERATIONS"
