#!/usr/bin/env bash
# The GPU evidence in one run (on a machine with CUDA, CuPy and PyTorch):
#   build, GPU tests, the main suite's tests on "cupy", `minicnn bench` on the GPU
#   (CuPy kernels against cuDNN through PyTorch), and LeNet-5 trained with --backend cupy.
# Usage: OUT=benchmarks/results bash benchmarks/gpu_run.sh   (logs and JSON land in $OUT)
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-run}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 MINICNN_HYPOTHESIS_PROFILE="${MINICNN_HYPOTHESIS_PROFILE:-ci}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
SECONDS=0
python -m pip install --no-build-isolation --no-deps --no-index -e . -q >"$OUT/build.log" 2>&1; echo "build exit $? (${SECONDS}s)"
python -c "import minicnn as mc; print('backends', mc.available_backends())"
timeout 100 python -m pytest tests/gpu -q -p no:cacheprovider >"$OUT/tests-gpu.log" 2>&1; echo "tests/gpu exit $?: $(tail -1 "$OUT/tests-gpu.log") (${SECONDS}s)"
timeout 120 python -m pytest tests -q -p no:cacheprovider --ignore=tests/gpu -k cupy >"$OUT/tests-cupy.log" 2>&1; echo "main suite on cupy exit $?: $(tail -1 "$OUT/tests-cupy.log") (${SECONDS}s)"
timeout 120 python -m minicnn bench --impls cupy torch-cuda --repeats 30 --out "$OUT/gpu-bench" 2>&1 | tail -14; echo "bench (${SECONDS}s)"
timeout 150 python -m minicnn train --backend cupy --out "$OUT/train-cupy" --no-plots --quiet 2>&1 | tail -4; echo "train (${SECONDS}s)"
python - "$OUT/train-cupy/metrics.json" <<'PY' 2>&1 | tee "$OUT/train-cupy.txt"
import json, sys
m = json.load(open(sys.argv[1]))
print("test_accuracy", m["test_accuracy"], "time_s", round(m["time_s"], 1), "backend", m["backend"])
print("images/s per epoch", [round(e["images_per_s"]) for e in m["epochs"]])
PY
