#!/usr/bin/env bash
# Compile every CUDA kernel source (kernels/gpu/*.cu) to PTX, so a syntax or
# type error fails CI on machines with the CUDA toolkit but no GPU.
#
# The sources end with extern "C" instantiations of every template for float
# and double, so this compiles all the code the CuPy backend can launch.
# Every architecture in MINICNN_CUDA_ARCH (default "sm_75 sm_80 sm_90": the
# CUDA-core fallback of the TF32 tensor-core kernels, Ampere, Hopper) is
# compiled; PTX to SASS through ptxas as well, so an mma.sync operand or type
# error fails here too.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v nvcc >/dev/null 2>&1; then
    echo "nvcc not found, skipping PTX check"
    exit 0
fi

archs="${MINICNN_CUDA_ARCH:-sm_75 sm_80 sm_90}"
out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT

shopt -s nullglob
sources=(kernels/gpu/*.cu)
if [ ${#sources[@]} -eq 0 ]; then
    echo "no kernels/gpu/*.cu found" >&2
    exit 1
fi

failed=0
for arch in $archs; do
    for source in "${sources[@]}"; do
        ptx="$out_dir/$(basename "${source%.cu}")-$arch.ptx"
        # --std=c++14 as cupy_backend.py passes to NVRTC; warnings count as errors.
        if nvcc -ptx -arch="$arch" --std=c++14 -Werror all-warnings "$source" -o "$ptx" \
            && ptxas -arch="$arch" "$ptx" -o "${ptx%.ptx}.cubin"; then
            entries=$(grep -c '^\.visible \.entry' "$ptx" || true)
            echo "ok   $arch $source ($entries kernels: $(grep -o '^\.visible \.entry [A-Za-z0-9_]*' "$ptx" | awk '{print $3}' | tr '\n' ' '))"
        else
            echo "FAIL $arch $source" >&2
            failed=1
        fi
    done
done
exit "$failed"
