/* Direct convolution vectorised along the output row: 16 neighbouring output pixels at a time.
 *
 * Why: the 16-lane kernel of direct_conv.h puts 16 OUTPUT CHANNELS in a vector, so it needs
 * C_out % 16 == 0. Layers with few output channels (LeNet's C1 has 6) and the input gradient of
 * C3 (a correlation whose "output channels" are C3's 6 input channels) do not fit it, and
 * through im2col + GEMM they are products with a tiny dimension (6 rows, or K = 16), where BLAS
 * is slow. Their rows, though, are long (28 or 14 pixels): here the vector holds 16 pixels of one
 * output row, and each weight is broadcast to all of them:
 *
 *     y[o, i, j0:j0+16] += w[o, c, p, q] * x[c, i + p, j0 + q : j0 + q + 16]
 *
 * the cross-correlation of deck 003_7c437a475fa69432.txt ("Correlación cruzada") for 16 values
 * of j at once (stride 1, no padding: the padding the input gradient needs is made by the
 * caller, see conv2d.pyx). The 16 input pixels are an unaligned load of 16 consecutive values.
 *
 * Register blocking: one load of 16 pixels feeds OB multiply-adds (OB output channels that share
 * the tap), and a tile of RB output rows x OB channels gives RB*OB independent accumulators, so
 * the multiply-adds of consecutive taps do not wait for each other (an FMA takes ~4 cycles; with
 * 8 or more chains the FMA units never idle). Tiles (OB x RB): 6x2 (12 chains, LeNet's 6
 * channels in one pass), 4x2, 2x4 and 1x8 (8 chains) for what remains of C_out, and OB x 1 for
 * images with fewer rows than RB. 12 sixteen-float accumulators use 12 of the 32 AVX-512
 * registers (the AVX2 and baseline tiles are at the end of this note).
 *
 * Loop order, inside a tile: channel c, tap row p, tap column q (the taps of the sum), then the
 * RB rows and OB channels of the tile (unrolled). The weights are read as w_t[(c*KH + p)*KW + q]
 * [o], the OB channels of one tap side by side; outside the tile: channel blocks, rows, columns,
 * so a tile's weights and input rows stay in L1.
 *
 * Tails: the output must have at least 16 columns and RB rows (or use the 1-row tile). The last
 * tile of a row starts at OW - 16 instead of a multiple of 16 (shifted left) and the last row
 * block at OH - RB: the outputs they compute twice get the same value twice (the same sums in
 * the same order), so results do not depend on the tiling. Narrower images are widened by the
 * caller into a zero-padded copy. No read goes past column j + q <= OW - 1 + KW - 1, the last
 * input column.
 *
 * Zero borders: for the input gradient the caller pads dY with F-1 zero rows and columns on each
 * side. A tile skips the taps whose input rows (for all its RB rows) or 16 columns fall wholly in
 * that border: they would add exact zeros (a quarter of the work for LeNet's C3).
 *
 * One copy per instruction set, picked at run time (multiversion.h); the vector width, and so the
 * lane count (minicnn_row_lanes(), row_lanes() in Python), differs. Measured on AMD EPYC Zen 5,
 * 2 cores, one thread, medians of 21 alternating calls (v3 build = MINICNN_SINGLE_TARGET=x86-64-v3):
 * - AVX-512: 16 pixels per zmm, the tiles above (unchanged): C1 forward (64x1x32x32, 6x1x5x5)
 *   0.13 ms, im2col 1.03 ms. float64: the same tiles as 2 zmm of 8 doubles (a 16-double vector
 *   type went through memory: 3.5 -> 0.24 ms).
 * - AVX2: 8 pixels per ymm; tiles 3x4 (12 accumulators + 3 broadcast weights + 1 input vector =
 *   16 registers), 2x4, 1x8. With the AVX-512 tiles gcc split every 16-float vector and spilled:
 *   C1 forward 7.8 -> 0.29 ms (batch 256: 31.6 -> 1.08), the input gradient of C3 (dY 64x16x10x10
 *   padded by 4) 23.2 -> 0.72 ms (im2col 0.83). Tried on the v3 build (C1, batch 64 / 256):
 *   3x4 0.22 / 1.06 ms, 6x2 0.29 / 1.42, 4x2 0.24 / 1.15, 3x3 0.22 / 1.19. float64: 8 pixels as
 *   2 ymm, tiles 3x2, 2x2, 1x4.
 * - baseline: 4 pixels per xmm, the AVX2 tiles: C1 forward 5.6 -> 0.40 ms, C3's dX 17.2 -> 1.9 ms.
 * Other compilers get stubs and the caller never routes work here.
 */
#ifndef MINICNN_DIRECT_ROWS_H
#define MINICNN_DIRECT_ROWS_H

#include <stddef.h>

#if defined(__GNUC__)
#define MINICNN_HAVE_ROWS 1

#include "multiversion.h"

typedef float minicnn_rows_v16f __attribute__((vector_size(16 * sizeof(float))));
typedef double minicnn_rows_v16d __attribute__((vector_size(16 * sizeof(double))));
typedef float minicnn_rows_v8f __attribute__((vector_size(8 * sizeof(float))));
typedef double minicnn_rows_v8d __attribute__((vector_size(8 * sizeof(double))));
typedef float minicnn_rows_v4f __attribute__((vector_size(4 * sizeof(float))));
typedef double minicnn_rows_v4d __attribute__((vector_size(4 * sizeof(double))));
typedef double minicnn_rows_v2d __attribute__((vector_size(2 * sizeof(double))));

#define MINICNN_ROWS_LOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })
#define MINICNN_ROWS_STORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))

/* Output pixels per vector (the same for float and double): 16 (AVX-512), 8 (AVX2), 4 (baseline). */
#define MINICNN_ROW_LANES_V4 16
#define MINICNN_ROW_LANES_V3 8
#define MINICNN_ROW_LANES_BASE 4
static inline ptrdiff_t minicnn_row_lanes(void)
{
    return MINICNN_BY_ISA(MINICNN_ROW_LANES_V4, MINICNN_ROW_LANES_V3, MINICNN_ROW_LANES_BASE);
}

/* One tile: output channels o0..o0+OB-1, rows i0..i0+RB-1, columns j0..j0+LANES-1.
 * x: C planes of rows with stride ldx (plane stride xcs); w_t: (C*KH*KW, O); y: O planes of rows
 * with stride ldy (plane stride ycs); bias: O values or NULL. A macro, so that OB and RB are
 * constants and the compiler keeps acc[][] in registers. */
#define MINICNN_ROWS_TILE(T, V, VL, LANES, OB, RB)                                                   \
    do {                                                                                             \
        enum { NV = (LANES) / (VL) }; /* vectors per LANES pixels: 1, or 2 for double on AVX2 */     \
        V acc[RB][OB][NV];                                                                           \
        for (int b = 0; b < (OB); ++b) {                                                             \
            V init = {0};                                                                            \
            if (bias)                                                                                \
                init += bias[o0 + b];                                                                \
            for (int t = 0; t < (RB); ++t)                                                           \
                for (int v = 0; v < NV; ++v)                                                         \
                    acc[t][b][v] = init;                                                             \
        }                                                                                            \
        /* taps whose rows (for all RB rows) or LANES columns lie wholly in the zero border are skipped */ \
        const ptrdiff_t p_lo = r_lo - i0 - ((RB) - 1) > 0 ? r_lo - i0 - ((RB) - 1) : 0;               \
        const ptrdiff_t p_hi = r_hi - i0 < KH ? r_hi - i0 : KH;                                      \
        const ptrdiff_t q_lo = c_lo - j0 - ((LANES) - 1) > 0 ? c_lo - j0 - ((LANES) - 1) : 0;         \
        const ptrdiff_t q_hi = c_hi - j0 < KW ? c_hi - j0 : KW;                                      \
        for (ptrdiff_t c = 0; c < C; ++c)                                                            \
            for (ptrdiff_t p = p_lo; p < p_hi; ++p) {                                                \
                const T *xp = x + c * xcs + (i0 + p) * ldx + j0;                                     \
                const T *wk = w_t + ((c * KH + p) * KW + q_lo) * O + o0;                             \
                for (ptrdiff_t q = q_lo; q < q_hi; ++q, wk += O) {                                   \
                    for (int t = 0; t < (RB); ++t)                                                   \
                        for (int v = 0; v < NV; ++v) {                                               \
                            const V xv = MINICNN_ROWS_LOAD(V, xp + t * ldx + q + v * (VL));          \
                            for (int b = 0; b < (OB); ++b)                                           \
                                acc[t][b][v] += xv * wk[b];                                          \
                        }                                                                            \
                }                                                                                    \
            }                                                                                        \
        for (int t = 0; t < (RB); ++t)                                                               \
            for (int b = 0; b < (OB); ++b)                                                           \
                for (int v = 0; v < NV; ++v)                                                         \
                    MINICNN_ROWS_STORE(y + (o0 + b) * ycs + (i0 + t) * ldy + j0 + v * (VL), acc[t][b][v]); \
    } while (0)

/* All tiles of OB channels starting at o0: row blocks of RB (the last one shifted up; RB = 1 when
 * the image has fewer rows), LANES columns each (the last one shifted left). */
#define MINICNN_ROWS_CHANNEL_BLOCK(T, V, VL, LANES, OB, RB)                                              \
    do {                                                                                             \
        for (ptrdiff_t ib = 0; ib < OH; ib += (OH >= (RB) ? (RB) : 1)) {                             \
            for (ptrdiff_t jb = 0; jb < OW; jb += (LANES)) {                                         \
                const ptrdiff_t j0 = jb + (LANES) <= OW ? jb : OW - (LANES);                         \
                if (OH >= (RB)) {                                                                    \
                    const ptrdiff_t i0 = ib + (RB) <= OH ? ib : OH - (RB);                           \
                    MINICNN_ROWS_TILE(T, V, VL, LANES, OB, RB);                                        \
                } else {                                                                             \
                    const ptrdiff_t i0 = ib;                                                         \
                    MINICNN_ROWS_TILE(T, V, VL, LANES, OB, 1);                                        \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* y[o, i, j] = bias[o] + sum_{c,p,q} w_t[(c*KH + p)*KW + q, o] * x[c, i + p, j + q]
 * for 0 <= i < OH, 0 <= j < OW; needs OW >= LANES, ldx >= OW + KW - 1 and OH + KH - 1 rows per plane.
 * x is zero outside rows r_lo..r_hi-1 and columns c_lo..c_hi-1 (the caller's zero padding; the
 * whole image: 0, OH + KH - 1, 0, OW + KW - 1): taps that would only read zeros are skipped.
 * Channel blocks: as many of OB1 channels as fit, then OB2, OB3, and OB4 (= 1) for the rest. */
#define MINICNN_DEFINE_ROWS_CONV(NAME, ATTR, T, V, VL, LANES, OB1, RB1, OB2, RB2, OB3, RB3, RB4)    \
    ATTR static void NAME(const T *x, ptrdiff_t ldx, ptrdiff_t xcs, const T *w_t, const T *bias, T *y, \
                          ptrdiff_t ldy, ptrdiff_t ycs, ptrdiff_t C, ptrdiff_t O, ptrdiff_t OH,       \
                          ptrdiff_t OW, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t r_lo, ptrdiff_t r_hi,   \
                          ptrdiff_t c_lo, ptrdiff_t c_hi)                                             \
    {                                                                                                 \
        ptrdiff_t o0 = 0;                                                                             \
        for (; O - o0 >= (OB1); o0 += (OB1))                                                          \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, VL, LANES, OB1, RB1);                                        \
        for (; O - o0 >= (OB2); o0 += (OB2))                                                          \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, VL, LANES, OB2, RB2);                                        \
        for (; O - o0 >= (OB3); o0 += (OB3))                                                          \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, VL, LANES, OB3, RB3);                                        \
        for (; o0 < O; o0 += 1)                                                                       \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, VL, LANES, 1, RB4);                                          \
    }

/* The tiles of each level, OB x RB (see the note at the top for why and what they measured). */
#define MINICNN_ROWS_f32_V4(F, A) \
    MINICNN_DEFINE_ROWS_CONV(F, A, float, minicnn_rows_v16f, 16, MINICNN_ROW_LANES_V4, 6, 2, 4, 2, 2, 4, 8)
#define MINICNN_ROWS_f64_V4(F, A) \
    MINICNN_DEFINE_ROWS_CONV(F, A, double, minicnn_rows_v8d, 8, MINICNN_ROW_LANES_V4, 6, 2, 4, 2, 2, 4, 8)
#ifndef MINICNN_ROWS_FIT_TILES /* float tiles of the AVX2 and baseline copies: OB1, RB1, OB2, RB2, OB3, RB3, RB4 */
#define MINICNN_ROWS_FIT_TILES 3, 4, 2, 4, 2, 4, 8
#endif
#define MINICNN_ROWS_FIT_TILES_F64 3, 2, 2, 2, 2, 2, 4 /* double: 8 or 4 pixels are 2 registers */
#define MINICNN_ROWS_DEFINE_(...) MINICNN_DEFINE_ROWS_CONV(__VA_ARGS__)
#define MINICNN_ROWS_f32_V3(F, A) \
    MINICNN_ROWS_DEFINE_(F, A, float, minicnn_rows_v8f, 8, MINICNN_ROW_LANES_V3, MINICNN_ROWS_FIT_TILES)
#define MINICNN_ROWS_f64_V3(F, A) \
    MINICNN_ROWS_DEFINE_(F, A, double, minicnn_rows_v4d, 4, MINICNN_ROW_LANES_V3, MINICNN_ROWS_FIT_TILES_F64)
#define MINICNN_ROWS_f32_BASE(F, A) \
    MINICNN_ROWS_DEFINE_(F, A, float, minicnn_rows_v4f, 4, MINICNN_ROW_LANES_BASE, MINICNN_ROWS_FIT_TILES)
#define MINICNN_ROWS_f64_BASE(F, A) \
    MINICNN_ROWS_DEFINE_(F, A, double, minicnn_rows_v2d, 2, MINICNN_ROW_LANES_BASE, MINICNN_ROWS_FIT_TILES_F64)
#define MINICNN_ROWS_f32(F, A, LEVEL) MINICNN_ROWS_f32_##LEVEL(F, A)
#define MINICNN_ROWS_f64(F, A, LEVEL) MINICNN_ROWS_f64_##LEVEL(F, A)

#define MINICNN_ROWS_PARAMS(T)                                                                         \
    (const T *x, ptrdiff_t ldx, ptrdiff_t xcs, const T *w_t, const T *bias, T *y, ptrdiff_t ldy,       \
     ptrdiff_t ycs, ptrdiff_t C, ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW, ptrdiff_t KH, ptrdiff_t KW,  \
     ptrdiff_t r_lo, ptrdiff_t r_hi, ptrdiff_t c_lo, ptrdiff_t c_hi)
#define MINICNN_ROWS_ARGS (x, ldx, xcs, w_t, bias, y, ldy, ycs, C, O, OH, OW, KH, KW, r_lo, r_hi, c_lo, c_hi)
MINICNN_INSTANTIATE(MINICNN_ROWS_f32, minicnn_rows_conv_f32, MINICNN_ROWS_PARAMS(float), MINICNN_ROWS_ARGS)
MINICNN_INSTANTIATE(MINICNN_ROWS_f64, minicnn_rows_conv_f64, MINICNN_ROWS_PARAMS(double), MINICNN_ROWS_ARGS)

#else /* other compilers: no row kernel; the caller asks rows_available() first */
#define MINICNN_HAVE_ROWS 0
static inline ptrdiff_t minicnn_row_lanes(void) { return 16; }
#define MINICNN_ROWS_STUB(NAME, T)                                                                   \
    static void NAME(const T *x, ptrdiff_t ldx, ptrdiff_t xcs, const T *w_t, const T *bias, T *y,    \
                     ptrdiff_t ldy, ptrdiff_t ycs, ptrdiff_t C, ptrdiff_t O, ptrdiff_t OH,           \
                     ptrdiff_t OW, ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t r_lo, ptrdiff_t r_hi,       \
                     ptrdiff_t c_lo, ptrdiff_t c_hi)                                                 \
    {                                                                                                \
        (void)x; (void)ldx; (void)xcs; (void)w_t; (void)bias; (void)y; (void)ldy; (void)ycs;         \
        (void)C; (void)O; (void)OH; (void)OW; (void)KH; (void)KW;                                    \
        (void)r_lo; (void)r_hi; (void)c_lo; (void)c_hi;                                              \
    }
MINICNN_ROWS_STUB(minicnn_rows_conv_f32, float)
MINICNN_ROWS_STUB(minicnn_rows_conv_f64, double)
#endif

#endif
