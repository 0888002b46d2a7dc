#!/usr/bin/env bash
# The kernels' AVX2 and baseline copies, which an AVX-512 machine never runs by itself: build the
# kernels for one instruction set at a time (kernels/cpu/multiversion.h) and run the kernel tests,
# then build the usual run-time choice again.
set -euo pipefail
cd "$(dirname "$0")/.."

for target in x86-64-v3 x86-64; do
    echo "== kernels built for $target only"
    MINICNN_SINGLE_TARGET="$target" python -m pip install -q --no-deps -e .
    python -m pytest -q -p no:cacheprovider tests/test_functional.py tests/test_properties.py tests/test_graph.py \
        tests/test_plans.py tests/test_winograd.py tests/test_winograd_phases.py tests/test_kernel_isa.py \
        tests/test_api_fuzz.py
done
echo "== kernels built for AVX-512, AVX2 and baseline, chosen at run time"
python -m pip install -q --no-deps -e .
