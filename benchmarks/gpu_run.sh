#!/usr/bin/env bash
# The GPU evidence in one run (on a machine with CUDA, CuPy and PyTorch), under 10 minutes:
#   1. build; the .cu files compile to PTX (nvcc, if present) and with NVRTC (tests/gpu);
#   2. tests/gpu: CuPy kernels (im2col, direct, implicit GEMM, TF32, fused kernels, the captured step)
#      against the NumPy reference and cuDNN;
#   3. the main suite's tests on "cupy";
#   4. `minicnn bench` kernels on the GPU: C1, C3, mid 3x3 for cupy (im2col), cupy-implicit-gemm(-tf32)
#      and cuDNN through PyTorch (the "x of cuDNN" targets), and the LeNet-5 step at batch 64/256/1024;
#   5. `minicnn bench --device gpu`: LeNet-5 images/s over batch sizes, CPU and GPU side by side, the
#      crossover batch and the plot;
#   6. LeNet-5 trained with --backend cupy (the captured step), its accuracy and images/s;
#   7. targets.txt: the GPU step's targets (see README.md) read from the JSON files.
# Usage: OUT=benchmarks/results/gpu-h200-<date> bash benchmarks/gpu_run.sh   (logs, JSON, plots land in $OUT)
# Every stage has its own timeout, so one stage that hangs leaves the others' results.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-run}"
mkdir -p "$OUT"
PY="${PYTHON:-python}"
export PYTHONUNBUFFERED=1 MINICNN_HYPOTHESIS_PROFILE="${MINICNN_HYPOTHESIS_PROFILE:-ci}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
nproc | sed 's/^/cpu cores: /' | tee -a "$OUT/device.txt"
SECONDS=0
"$PY" -m pip install --no-build-isolation --no-deps --no-index -e . -q >"$OUT/build.log" 2>&1; echo "build exit $? (${SECONDS}s)"
timeout 60 bash .ci/compile_cuda.sh >"$OUT/ptx.log" 2>&1; echo "ptx exit $? (${SECONDS}s)"
"$PY" -c "import minicnn as mc; print('backends', mc.available_backends())" | tee -a "$OUT/device.txt"
timeout 120 "$PY" -m pytest tests/gpu -q -p no:cacheprovider -rfEs >"$OUT/tests-gpu.log" 2>&1
echo "tests/gpu exit $?: $(tail -1 "$OUT/tests-gpu.log") (${SECONDS}s)"
timeout 75 "$PY" -m pytest tests -q -p no:cacheprovider --ignore=tests/gpu -k cupy >"$OUT/tests-cupy.log" 2>&1
echo "main suite on cupy exit $?: $(tail -1 "$OUT/tests-cupy.log") (${SECONDS}s)"
timeout 80 "$PY" -m minicnn bench --cases conv_c1 conv_c3 conv_mid train_b64 train_b256 train_b1024 \
    --impls cupy cupy-implicit-gemm cupy-implicit-gemm-tf32 torch-cuda --repeats 30 --out "$OUT/gpu-bench" \
    >"$OUT/gpu-bench.txt" 2>&1; echo "bench exit $? (${SECONDS}s)"; tail -12 "$OUT/gpu-bench.txt"
timeout 120 "$PY" -m minicnn bench --device gpu --batches 1 4 16 64 256 1024 --cpu-max-batch 1024 --repeats 5 \
    --out "$OUT/lenet" >"$OUT/sweep.txt" 2>&1; echo "sweep exit $? (${SECONDS}s)"; tail -12 "$OUT/sweep.txt"
timeout 80 "$PY" -m minicnn train --backend cupy --out "$OUT/train-cupy" --no-plots --quiet >"$OUT/train-cupy.log" 2>&1
echo "train exit $? (${SECONDS}s)"
"$PY" - "$OUT" <<'PY' 2>&1 | tee "$OUT/targets.txt"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None
bench, sweep, train = load("gpu-bench.json"), load("lenet-sweep.json"), load("train-cupy/metrics.json")
if train:
    print("train --backend cupy: test_accuracy", train["test_accuracy"], "time_s", round(train["time_s"], 1),
          "images/s per epoch", [round(e["images_per_s"]) for e in train["epochs"]])
if bench:
    rows = {row["case"]: row for row in bench["results"]}
    for case, target in (("conv_c1", 0.8), ("conv_c3", 0.8), ("conv_mid", 0.5)):
        if case in rows:
            ratios = rows[case]["ratio_torch_over_minicnn"]
            best = max(ratios.items(), key=lambda kv: kv[1]) if ratios else (None, 0)
            print(f"{case}: cuDNN time / minicnn time = {ratios} (target >= {target}: "
                  f"{'met' if best[1] >= target else 'NOT met'} by {best[0]})")
    print("cudnn allow_tf32 during the bench:", bench["machine"].get("torch_cudnn_allow_tf32"))
if sweep:
    gpu = sweep["seconds_per_step"].get("gpu", {})
    cpu = sweep["images_per_s"].get("cpu", {})
    if "256" in gpu:
        print(f"LeNet-5 step, batch 256, captured GPU step: {gpu['256'] * 1e3:.3f} ms (target <= 1 ms: "
              f"{'met' if gpu['256'] <= 1e-3 else 'NOT met'}); captured: {sweep['captured'].get('gpu')}")
    rates = sweep["images_per_s"].get("gpu", {})
    if rates and cpu:
        best = max(rates[b] / cpu[b] for b in rates if b in cpu)
        print(f"GPU / CPU images/s, best batch: {best:.1f}x (target >= 10x: {'met' if best >= 10 else 'NOT met'})")
    print("crossover:", sweep.get("crossover"))
PY
echo "total ${SECONDS}s"
