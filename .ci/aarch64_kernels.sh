#!/usr/bin/env bash
# The C kernels (kernels/cpu/*.h) must compile for aarch64: there __builtin_cpu_supports and the
# x86 target attributes do not exist, and every kernel gets its one baseline copy (NEON-width
# vectors). A small C file includes every header and calls every kernel (so none is discarded
# before it is type-checked), compiled with the cross compiler, -O2 -Wall -Werror.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=aarch64-linux-gnu-gcc
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "== $cc not found; installing gcc-aarch64-linux-gnu"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu; } >/dev/null; then
        echo "ERROR: cannot install gcc-aarch64-linux-gnu (apt-get failed); the aarch64 check did not run" >&2
        exit 1
    fi
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "ERROR: gcc-aarch64-linux-gnu installed but $cc is still missing" >&2
        exit 1
    fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/all_kernels.c" <<'C'
#include <stdint.h>
#include "multiversion.h"
#include "direct_conv.h"
#include "direct_rows.h"
#include "direct_rows_grad.h"
#include "batch_lanes.h"
#include "pool_2x2.h"
#include "winograd.h"

/* Every kernel once per element type, with run-time sizes (nothing folds away). */
#define ALL_KERNELS(T, S)                                                                              \
    void all_##S(const T *a, const T *b, T *c, T *d, ptrdiff_t n)                                      \
    {                                                                                                  \
        minicnn_direct_forward_##S(a, b, c, n, n, n, 16, 3, 3);                                        \
        minicnn_direct_weight_grad_##S(a, b, c, n, n, n, 16, 3, 3);                                    \
        minicnn_rows_conv_##S(a, n, n * n, b, d, c, n, n * n, n, 6, n, n, 5, 5, 0, n, 0, n);           \
        minicnn_rows_weight_grad_##S(a, b, n, 1, n, n, 6, 5, 5, c, d);                                 \
        minicnn_lanes_pack_##S(a, 3, n, c);                                                            \
        minicnn_lanes_unpack_##S(a, 3, n, c);                                                          \
        minicnn_lanes_input_grad_##S(a, b, c, 6, n, n, 16, 5, 5);                                      \
        minicnn_lanes_weight_grad_##S(a, b, c, d, 6, n, n, 16, 5, 5);                                  \
        minicnn_wino_filter_##S(a, (int)n, c, n);                                                      \
        minicnn_wino_input_##S(a, (int)n, (int)n, -1, -1, 7, c, n);                                    \
        minicnn_wino_output_##S(a, n, 7, b[0], c, (int)n, 13, 1);                                      \
        minicnn_wino_grad_##S(a, (int)n, (int)n, 0, 0, 7, c, n);                                       \
        minicnn_wino4_filter_##S(a, (int)n, c, n);                                                     \
        minicnn_wino4_input_##S(a, (int)n, (int)n, -1, -1, 7, c, n);                                   \
        minicnn_wino4_output_##S(a, n, 7, b[0], c, (int)n, 27, 3);                                     \
        minicnn_wino4_grad_##S(a, (int)n, (int)n, 0, 0, 7, c, n);                                      \
    }
ALL_KERNELS(float, f32)
ALL_KERNELS(double, f64)

int all_pool(const float *top, float *y, int64_t *argmax, float *dtop, ptrdiff_t w)
{
    int ok = 1;
#if MINICNN_HAVE_POOL_2X2
    ok = minicnn_max_pool_2x2_row_f32(top, y, argmax, w, w / 2, 0);
    minicnn_max_pool_2x2_grad_row_f32(y, argmax, dtop, w, w / 2, 0);
#endif
    return ok;
}

/* the run-time facts conv2d.pyx reports */
const char *isa(void) { return minicnn_isa_name(); }
ptrdiff_t lanes(void)
{
    return minicnn_row_lanes() + minicnn_rows_grad_lanes_f32() + minicnn_rows_grad_lanes_f64() +
           minicnn_lanes_group_f32() + minicnn_lanes_group_f64() + MINICNN_HAVE_DIRECT + MINICNN_HAVE_ROWS +
           MINICNN_HAVE_ROWS_GRAD + MINICNN_LANES_HAVE_KERNELS;
}
C

start=$(date +%s)
"$cc" -O2 -Wall -Werror -Ikernels/cpu -c "$tmp/all_kernels.c" -o "$tmp/all_kernels.o"
echo "== kernels/cpu/*.h compile for aarch64 ($("$cc" -dumpmachine), -O2 -Wall -Werror): OK in $(( $(date +%s) - start )) s"
