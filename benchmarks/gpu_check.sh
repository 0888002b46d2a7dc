#!/usr/bin/env bash
# GPU check for the "cupy" backend, in one short run on a machine with a GPU:
#
#   1. build and install minicnn in place (Cython kernels too), in the background;
#   2. the GPU tests (tests/gpu): CuPy backend against the NumPy reference and cuDNN;
#   3. timing of the mid convolution (x 32x64x56x56, w 64x64x3x3, padding 1,
#      float32, forward + backward) for minicnn's CuPy backend and for PyTorch
#      cuDNN, both synchronised, median of 20 runs after warm-up;
#   4. the install's result, and that the installed package finds its .cu sources;
#   5. the main suite's backend agreement and property tests on "cupy", in the time left.
#
# Usage, from anywhere:  bash benchmarks/gpu_check.sh
# Logs go to $OUT (default benchmarks/results/gpu_check). Safe to rerun.
# MINICNN_GPU_CHECK_BUDGET (seconds, default 185) bounds the whole run;
# MINICNN_GPU_CHECK_SKIP_BUILD=1 skips the install (a rerun on the same machine).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
BUDGET="${MINICNN_GPU_CHECK_BUDGET:-185}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the source tree, whether or not the install succeeds
export MINICNN_HYPOTHESIS_PROFILE="${MINICNN_HYPOTHESIS_PROFILE:-ci}"

left() { echo $(( BUDGET - SECONDS )); }
at_least() { local value=$(( $1 )); [ "$value" -lt "$2" ] && value=$2; echo "$value"; }  # timeout 0 would mean none

echo "== device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "nvidia-smi unavailable"
"$PY" - <<'EOF'
import sys
print("python", sys.version.split()[0])
for name in ("numpy", "cupy", "torch", "Cython", "hypothesis"):
    try:
        module = __import__(name)
        print(name, module.__version__)
    except Exception as exc:
        print(name, "unavailable:", exc)
EOF

echo "== build (background): pip install --no-build-isolation -e ."
if [ "${MINICNN_GPU_CHECK_SKIP_BUILD:-0}" = 1 ]; then
    echo "skipped (MINICNN_GPU_CHECK_SKIP_BUILD=1)" >"$OUT/build.log"
    build_pid=
else
    # --no-deps --no-index: the GPU machine is offline and already has the dependencies.
    ( timeout 150 "$PY" -m pip install --no-build-isolation --no-deps --no-index -e . -q >"$OUT/build.log" 2>&1
      echo "exit status $?" >>"$OUT/build.log" ) &
    build_pid=$!
fi

echo "== GPU tests (tests/gpu)"
timeout "$(at_least "$(left) - 60" 30)" "$PY" -m pytest tests/gpu -q --maxfail=5 -rfE -p no:cacheprovider 2>&1 | tee "$OUT/pytest_gpu.log" | tail -25
echo "GPU tests exit status ${PIPESTATUS[0]}"

echo "== timing: mid conv, float32, forward + backward (dx, dw, db)"
timeout 45 "$PY" - <<'EOF' 2>&1 | tee "$OUT/timing.txt"
import time

import numpy as np

import minicnn as mc
import minicnn.functional as F

if "cupy" not in mc.available_backends():
    raise SystemExit(f"no timing: {mc.backends.unavailable_reason('cupy')}")
cupy = __import__("cupy")
gpu = mc.get_backend("cupy")
rng = np.random.default_rng(0)
shape_x, shape_w, padding = (32, 64, 56, 56), (64, 64, 3, 3), 1
x = cupy.asarray(rng.standard_normal(shape_x, dtype=np.float32))
w = cupy.asarray(rng.standard_normal(shape_w, dtype=np.float32) * np.float32(1 / 24))
b = cupy.asarray(rng.standard_normal(64, dtype=np.float32))
dy = cupy.asarray(rng.standard_normal(shape_x, dtype=np.float32))


def median_ms(step, sync, warmup=3, repeats=20):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


sync_cupy = cupy.cuda.Device().synchronize
results = {}
for algorithm, repeats in (("im2col", 20), ("direct", 3)):
    gpu.conv_algorithm = algorithm
    results[f"minicnn cupy {algorithm} forward"] = median_ms(
        lambda: F.conv2d(x, w, b, padding=padding), sync_cupy, warmup=2, repeats=repeats)
    results[f"minicnn cupy {algorithm} fwd+bwd"] = median_ms(
        lambda: (F.conv2d(x, w, b, padding=padding), F.conv2d_grad(x, w, dy, padding=padding)),
        sync_cupy, warmup=1 if algorithm == "direct" else 3, repeats=repeats)
gpu.conv_algorithm = "im2col"
ours = [F.conv2d(x, w, b, padding=padding), *F.conv2d_grad(x, w, dy, padding=padding)]

try:
    import torch
    if not torch.cuda.is_available():
        raise RuntimeError("torch has no CUDA device")
    tx = torch.from_dlpack(x).requires_grad_(True)
    tw = torch.from_dlpack(w).requires_grad_(True)
    tb = torch.from_dlpack(b).requires_grad_(True)
    tdy = torch.from_dlpack(dy)
    torch.backends.cudnn.benchmark = True

    def torch_forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, padding=padding)

    def torch_step():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, padding=padding).backward(tdy)

    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        label = "cuDNN " + ("TF32" if tf32 else "fp32")
        results[f"torch {label} forward"] = median_ms(torch_forward, torch.cuda.synchronize)
        results[f"torch {label} fwd+bwd"] = median_ms(torch_step, torch.cuda.synchronize)
    torch.backends.cudnn.allow_tf32 = False
    torch_step()
    reference = [torch_forward(), tx.grad, tw.grad, tb.grad]
    for name, got, want in zip(("y", "dx", "dw", "db"), ours, reference):
        want = want.detach().cpu().numpy()
        error = float(np.abs(got.get() - want).max() / np.abs(want).max())
        print(f"agreement with cuDNN fp32, {name}: max |diff| / max |ref| = {error:.2e}")
except Exception as exc:
    print("torch cuDNN timing skipped:", type(exc).__name__, exc)

print(f"{'what':40s} {'median ms':>10s}")
for name, ms in results.items():
    print(f"{name:40s} {ms:10.3f}")
EOF

echo "== build result"
[ -n "$build_pid" ] && wait "$build_pid"
tail -5 "$OUT/build.log"
( cd /tmp && env -u PYTHONPATH timeout 30 "$PY" -c "
import importlib.resources, minicnn
from minicnn.backends import cupy_backend
print('installed minicnn at', minicnn.__file__)
print('kernel sources at', importlib.resources.files('minicnn.kernels.gpu'))
print('conv2d.cu chars:', len(cupy_backend.kernel_source('conv2d.cu')))
print('backends from the install:', minicnn.available_backends())
" ) 2>&1 | tee -a "$OUT/build.log"

echo "== backend agreement and properties on cupy (main suite, $(left) s left)"
if [ "$(left)" -gt 15 ]; then
    timeout "$(at_least "$(left) - 5" 10)" "$PY" -m pytest tests/test_functional.py tests/test_properties.py tests/test_nn.py tests/test_graph.py -k cupy -q \
        --maxfail=5 -rfE -p no:cacheprovider 2>&1 | tee "$OUT/pytest_agreement.log" | tail -20
    echo "agreement tests exit status ${PIPESTATUS[0]} (124: ran out of time)"
else
    echo "no time left for the agreement tests"
fi
echo "== done in ${SECONDS} s"
