/* 2x2 max pooling with stride 2 (LeNet's S2 and S4), 8 windows at a time, float32.
 *
 * Why: the scalar loop reads its four candidates two by two (a stride-2 pattern
 * the compiler does not vectorise) and spends about 6 ns per window here.
 * Here one row pair of 16 input columns is loaded as two 16-lane vectors; the
 * even and odd columns are separated by one permutation each, which lines up
 * the four candidates of 8 windows in four 8-lane vectors:
 *
 *     a = top[2j]   b = top[2j+1]   c = bottom[2j]   d = bottom[2j+1]     (j = j0 .. j0+7)
 *
 * The maximum is then three vector max operations (deck 003_7c437a475fa69432.txt,
 * "CAPA DE SUBMUESTREO O DECIMACIÓN"), and the winner's position, the first of
 * a, b, c, d holding the maximum (row-major order, as in PyTorch), is computed
 * from the comparisons with no branch:  k = [a != m] * (1 + [b != m] * (1 + [c != m])).
 *
 * Backward ("se actualiza sólo la neurona ganadora", deck 003, "RETRO-PROPAGACIÓN"):
 * each window's error goes to the pixel whose offset from the window's corner
 * (0, 1, W or W+1) the forward pass recorded, and 0 to the other three, so the
 * two rows of 16 pixels are written with two compare-selects.
 *
 * A row whose last block would run past the row end is shifted left to end at
 * the last window (rows of at least 8 windows); windows done twice get the same
 * values twice. A row pair holding a NaN returns 0 so that the caller uses its
 * scalar loop, under which a NaN wins (as in PyTorch).
 */
#ifndef MINICNN_POOL_2X2_H
#define MINICNN_POOL_2X2_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 12))
#define MINICNN_HAVE_POOL_2X2 1

#include "multiversion.h"
#define MINICNN_POOL_MULTIVERSION MINICNN_CLONES

#define MINICNN_POOL_WINDOWS 8 /* windows per block: 16 input columns */

typedef float minicnn_f16 __attribute__((vector_size(16 * sizeof(float))));
typedef float minicnn_f8 __attribute__((vector_size(8 * sizeof(float))));
typedef int32_t minicnn_i16 __attribute__((vector_size(16 * sizeof(int32_t))));
typedef int32_t minicnn_i8 __attribute__((vector_size(8 * sizeof(int32_t))));
typedef int64_t minicnn_l8 __attribute__((vector_size(8 * sizeof(int64_t))));

#define MINICNN_VLOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })
#define MINICNN_VSTORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))
#define MINICNN_EVENS(v) __builtin_shufflevector((v), (v), 0, 2, 4, 6, 8, 10, 12, 14)
#define MINICNN_ODDS(v) __builtin_shufflevector((v), (v), 1, 3, 5, 7, 9, 11, 13, 15)
#define MINICNN_TWICE(v) __builtin_shufflevector((v), (v), 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)

/* lanes of `a` where `mask` is all ones, lanes of `b` elsewhere (C has no ?: on vectors); macros,
 * not functions, so that no vector crosses a call boundary outside the target_clones copies */
#define MINICNN_SELECT8(mask, a, b) ((minicnn_f8)(((minicnn_i8)(a) & (mask)) | ((minicnn_i8)(b) & ~(mask))))
#define MINICNN_LARGER8(a, b) ({ const minicnn_f8 _a = (a), _b = (b); MINICNN_SELECT8(_a > _b, _a, _b); })

/* One output row: the windows over input rows `top` and `top + W`. `y` and `argmax` are the
 * output row (ow >= 8 entries); `base` is the flat index of top[0] in its plane. */
MINICNN_POOL_MULTIVERSION static int minicnn_max_pool_2x2_row_f32(const float *top, float *y, int64_t *argmax,
                                                                   ptrdiff_t W, ptrdiff_t ow, int64_t base)
{
    const float *bottom = top + W;
    int has_nan = 0;
    for (ptrdiff_t k = 0; k < 2 * ow; ++k)
        has_nan |= (top[k] != top[k]) | (bottom[k] != bottom[k]);
    if (has_nan)
        return 0;
    const minicnn_i8 column = {0, 2, 4, 6, 8, 10, 12, 14}; /* window j0+l starts at input column 2*j0 + 2l */
    const int32_t width = (int32_t)W;
    for (ptrdiff_t j0 = 0; j0 < ow; j0 += MINICNN_POOL_WINDOWS) {
        if (j0 + MINICNN_POOL_WINDOWS > ow)
            j0 = ow - MINICNN_POOL_WINDOWS;
        const minicnn_f16 t = MINICNN_VLOAD(minicnn_f16, top + 2 * j0);
        const minicnn_f16 u = MINICNN_VLOAD(minicnn_f16, bottom + 2 * j0);
        const minicnn_f8 a = MINICNN_EVENS(t), b = MINICNN_ODDS(t), c = MINICNN_EVENS(u), d = MINICNN_ODDS(u);
        const minicnn_f8 best = MINICNN_LARGER8(MINICNN_LARGER8(a, b), MINICNN_LARGER8(c, d));
        /* comparisons give -1 (true) or 0; k = 0..3 numbers a, b, c, d */
        const minicnn_i8 not_a = -(a != best), not_b = -(b != best), not_c = -(c != best);
        const minicnn_i8 k = not_a * (1 + not_b * (1 + not_c));
        const minicnn_i8 offset = column + (k & 1) + (k >> 1) * width;
        const minicnn_l8 where = __builtin_convertvector(offset, minicnn_l8) + (base + 2 * j0);
        MINICNN_VSTORE(y + j0, best);
        MINICNN_VSTORE(argmax + j0, where);
        if (j0 + MINICNN_POOL_WINDOWS >= ow)
            break;
    }
    return 1;
}

/* Backward of one output row: `dtop` is input row 2i of dx (rows 2i and 2i+1 are written),
 * `base` the flat index of its first pixel; every argmax is one of its window's four pixels. */
MINICNN_POOL_MULTIVERSION static void minicnn_max_pool_2x2_grad_row_f32(const float *dy, const int64_t *argmax,
                                                                        float *dtop, ptrdiff_t W, ptrdiff_t ow,
                                                                        int64_t base)
{
    const minicnn_l8 column = {0, 2, 4, 6, 8, 10, 12, 14};
    const minicnn_i16 in_top = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1};
    const minicnn_i16 in_bottom = in_top + (int32_t)W;
    for (ptrdiff_t j0 = 0; j0 < ow; j0 += MINICNN_POOL_WINDOWS) {
        if (j0 + MINICNN_POOL_WINDOWS > ow)
            j0 = ow - MINICNN_POOL_WINDOWS;
        const minicnn_f8 err = MINICNN_VLOAD(minicnn_f8, dy + j0);
        const minicnn_l8 where = MINICNN_VLOAD(minicnn_l8, argmax + j0);
        /* the winner's offset from its window's top-left pixel: 0, 1, W or W+1 */
        const minicnn_i8 offset = __builtin_convertvector(where - (base + 2 * j0) - column, minicnn_i8);
        const minicnn_f16 err2 = MINICNN_TWICE(err);
        const minicnn_i16 offset2 = MINICNN_TWICE(offset);
        const minicnn_i16 bits = (minicnn_i16)err2;
        const minicnn_f16 top_row = (minicnn_f16)(bits & (offset2 == in_top));
        const minicnn_f16 bottom_row = (minicnn_f16)(bits & (offset2 == in_bottom));
        MINICNN_VSTORE(dtop + 2 * j0, top_row);
        MINICNN_VSTORE(dtop + W + 2 * j0, bottom_row);
        if (j0 + MINICNN_POOL_WINDOWS >= ow)
            break;
    }
}

#else /* other compilers: the caller keeps its scalar loops */
#define MINICNN_HAVE_POOL_2X2 0
#define MINICNN_POOL_WINDOWS 8
static int minicnn_max_pool_2x2_row_f32(const float *top, float *y, int64_t *argmax, ptrdiff_t W, ptrdiff_t ow,
                                        int64_t base)
{
    (void)top; (void)y; (void)argmax; (void)W; (void)ow; (void)base;
    return 0;
}
static void minicnn_max_pool_2x2_grad_row_f32(const float *dy, const int64_t *argmax, float *dtop, ptrdiff_t W,
                                              ptrdiff_t ow, int64_t base)
{
    (void)dy; (void)argmax; (void)dtop; (void)W; (void)ow; (void)base;
}
#endif

#endif
