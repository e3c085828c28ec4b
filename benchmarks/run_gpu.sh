#!/usr/bin/env bash
# Everything the CUDA work is measured by, in one run on a GPU machine:
#   1. build both extensions, run the CUDA tests;
#   2. the demo (scripts/demo.sh's schedule) with --rasterizer cuda;
#   3. a larger synthetic scene (40 frames, 640x360) trained with the CUDA rasterizer;
#   4. benchmarks/rasterizer.py: the random workload and that trained scene, against gsplat when it
#      is importable, with a kernel breakdown at 1M Gaussians;
#   5. compute-sanitizer memcheck and initcheck on small forward+backward calls;
#   6. with BASELINE_CSRC (another version's csrc folder): benchmarks/rasterizer_ab.py, that version
#      against the current one (and gsplat), interleaved in one process.
# Logs and JSON go to $OUT (default output/gpu), at most 8 files (the device tool's limit).
#   bash benchmarks/run_gpu.sh            # env: BIG_ITERATIONS (3000), BIG (scratch folder)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/gpu}
BIG=${BIG:-/tmp/egomask_big}
DEMO=${DEMO:-/tmp/egomask_demo}
mkdir -p "$OUT"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-16} PYTHONUNBUFFERED=1
SANITIZER=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
status=0
step() { echo "=== $* ($(date +%T))"; }
failed() { echo "!!! FAILED: $*"; status=1; }

step "background: generate the larger synthetic scene; build gsplat if installed"
rm -rf "$BIG" "$DEMO"
python -m scene.synthetic "$BIG/data" --frames 40 --width 640 --height 360 --points 3000 > /tmp/big_generate.log 2>&1 &
generate=$!
gsplat_build=
if python -c "import gsplat" 2>/dev/null; then
    python -c "from gsplat.cuda._backend import _C; print('gsplat extension ready:', _C is not None)" \
        > /tmp/gsplat_build.log 2>&1 &
    gsplat_build=$!
fi

baseline_build=
if [ -n "${BASELINE_CSRC:-}" ]; then
    python -c "from benchmarks.rasterizer_ab import load_baseline; load_baseline('$BASELINE_CSRC')" \
        > /tmp/baseline_build.log 2>&1 &
    baseline_build=$!
fi

step "build our extensions"
python -c "from utils.cuda_ext import load_knn, load_rasterizer; load_rasterizer(); load_knn(); print('built')" || exit 1

step "CUDA tests"
python -m pytest -q -p no:faulthandler -m cuda tests/cuda tests/scene/test_knn.py tests/scene/test_deform_model.py \
    > "$OUT/cuda_tests.log" 2>&1 || failed "CUDA tests"
tail -n 3 "$OUT/cuda_tests.log"

step "demo schedule with --rasterizer cuda"
python full_eval.py --synthetic "$DEMO" --rasterizer cuda > "$OUT/train.log" 2>&1 || failed "demo"
grep -E "it/s \(steps|PSNR|^synthetic" "$OUT/train.log" | tail -n 4
cp "$DEMO/full_eval.json" "$OUT/demo_full_eval.json"

step "larger trained scene"
wait "$generate" || failed "scene generation"
tail -n 1 /tmp/big_generate.log
python full_eval.py --synthetic "$BIG" --iterations "${BIG_ITERATIONS:-3000}" --llffhold 8 --rasterizer cuda \
    >> "$OUT/train.log" 2>&1 || failed "larger scene"
grep -E "it/s \(steps|PSNR|^synthetic" "$OUT/train.log" | tail -n 4
cp "$BIG/full_eval.json" "$OUT/big_full_eval.json"

step "rasterizer benchmark"
if [ -n "$gsplat_build" ]; then wait "$gsplat_build" || true; cat /tmp/gsplat_build.log | tail -n 2; fi
python benchmarks/rasterizer.py --profile 1000000 --model "$BIG/model" --cameras 3 --out "$OUT/rasterizer.json" \
    || failed "benchmark"

for tool in memcheck initcheck; do
    step "compute-sanitizer $tool"
    timeout 240 "$SANITIZER" --tool "$tool" --error-exitcode 3 python -m pytest -q -m cuda tests/cuda/test_sanitizer_cases.py \
        >> "$OUT/sanitizer.log" 2>&1 || failed "sanitizer $tool"
    tail -n 2 "$OUT/sanitizer.log"
done
if [ -n "$baseline_build" ]; then
    step "A/B against $BASELINE_CSRC"
    wait "$baseline_build" || { tail -n 5 /tmp/baseline_build.log; failed "baseline build"; }
    python benchmarks/rasterizer_ab.py --baseline-csrc "$BASELINE_CSRC" --model "$BIG/model" \
        --out "$OUT/rasterizer_ab.json" || failed "A/B"
fi
step "done (status $status)"
exit $status
