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
 * registers.
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
 * gcc builds one copy per instruction set (AVX-512, AVX2 + FMA, baseline) and picks one at run
 * time, as in direct_conv.h. Other compilers get stubs and the caller never routes work here.
 */
#ifndef MINICNN_DIRECT_ROWS_H
#define MINICNN_DIRECT_ROWS_H

#include <stddef.h>

#if defined(__GNUC__)
#define MINICNN_HAVE_ROWS 1

#include "multiversion.h"
#define MINICNN_ROWS_MULTIVERSION MINICNN_CLONES

#define MINICNN_ROW_LANES 16

typedef float minicnn_rows_v16f __attribute__((vector_size(16 * sizeof(float))));
typedef double minicnn_rows_v16d __attribute__((vector_size(16 * sizeof(double))));

#define MINICNN_ROWS_LOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })
#define MINICNN_ROWS_STORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))

/* One tile: output channels o0..o0+OB-1, rows i0..i0+RB-1, columns j0..j0+15.
 * x: C planes of rows with stride ldx (plane stride xcs); w_t: (C*KH*KW, O); y: O planes of rows
 * with stride ldy (plane stride ycs); bias: O values or NULL. A macro, so that OB and RB are
 * constants and the compiler keeps acc[][] in registers. */
#define MINICNN_ROWS_TILE(T, V, OB, RB)                                                              \
    do {                                                                                             \
        V acc[RB][OB];                                                                               \
        for (int b = 0; b < (OB); ++b) {                                                             \
            V init = {0};                                                                            \
            if (bias)                                                                                \
                init += bias[o0 + b];                                                                \
            for (int t = 0; t < (RB); ++t)                                                           \
                acc[t][b] = init;                                                                    \
        }                                                                                            \
        /* taps whose rows (for all RB rows) or 16 columns lie wholly in the zero border are skipped */ \
        const ptrdiff_t p_lo = r_lo - i0 - ((RB) - 1) > 0 ? r_lo - i0 - ((RB) - 1) : 0;               \
        const ptrdiff_t p_hi = r_hi - i0 < KH ? r_hi - i0 : KH;                                      \
        const ptrdiff_t q_lo = c_lo - j0 - (MINICNN_ROW_LANES - 1) > 0 ? c_lo - j0 - (MINICNN_ROW_LANES - 1) : 0; \
        const ptrdiff_t q_hi = c_hi - j0 < KW ? c_hi - j0 : KW;                                      \
        for (ptrdiff_t c = 0; c < C; ++c)                                                            \
            for (ptrdiff_t p = p_lo; p < p_hi; ++p) {                                                \
                const T *xp = x + c * xcs + (i0 + p) * ldx + j0;                                     \
                const T *wk = w_t + ((c * KH + p) * KW + q_lo) * O + o0;                             \
                for (ptrdiff_t q = q_lo; q < q_hi; ++q, wk += O) {                                   \
                    for (int t = 0; t < (RB); ++t) {                                                 \
                        const V xv = MINICNN_ROWS_LOAD(V, xp + t * ldx + q);                         \
                        for (int b = 0; b < (OB); ++b)                                               \
                            acc[t][b] += xv * wk[b];                                                 \
                    }                                                                                \
                }                                                                                    \
            }                                                                                        \
        for (int t = 0; t < (RB); ++t)                                                               \
            for (int b = 0; b < (OB); ++b)                                                           \
                MINICNN_ROWS_STORE(y + (o0 + b) * ycs + (i0 + t) * ldy + j0, acc[t][b]);             \
    } while (0)

/* All tiles of OB channels starting at o0: row blocks of RB (the last one shifted up; RB = 1 when
 * the image has fewer rows), 16 columns each (the last one shifted left). */
#define MINICNN_ROWS_CHANNEL_BLOCK(T, V, OB, RB)                                                     \
    do {                                                                                             \
        for (ptrdiff_t ib = 0; ib < OH; ib += (OH >= (RB) ? (RB) : 1)) {                             \
            for (ptrdiff_t jb = 0; jb < OW; jb += MINICNN_ROW_LANES) {                               \
                const ptrdiff_t j0 = jb + MINICNN_ROW_LANES <= OW ? jb : OW - MINICNN_ROW_LANES;     \
                if (OH >= (RB)) {                                                                    \
                    const ptrdiff_t i0 = ib + (RB) <= OH ? ib : OH - (RB);                           \
                    MINICNN_ROWS_TILE(T, V, OB, RB);                                                 \
                } else {                                                                             \
                    const ptrdiff_t i0 = ib;                                                         \
                    MINICNN_ROWS_TILE(T, V, OB, 1);                                                  \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* y[o, i, j] = bias[o] + sum_{c,p,q} w_t[(c*KH + p)*KW + q, o] * x[c, i + p, j + q]
 * for 0 <= i < OH, 0 <= j < OW; needs OW >= 16, ldx >= OW + KW - 1 and OH + KH - 1 rows per plane.
 * x is zero outside rows r_lo..r_hi-1 and columns c_lo..c_hi-1 (the caller's zero padding; the
 * whole image: 0, OH + KH - 1, 0, OW + KW - 1): taps that would only read zeros are skipped. */
#define MINICNN_DEFINE_ROWS_CONV(NAME, T, V)                                                          \
    MINICNN_ROWS_MULTIVERSION static void NAME(const T *x, ptrdiff_t ldx, ptrdiff_t xcs, const T *w_t,  \
                                               const T *bias, T *y, ptrdiff_t ldy, ptrdiff_t ycs,     \
                                               ptrdiff_t C, ptrdiff_t O, ptrdiff_t OH, ptrdiff_t OW,  \
                                               ptrdiff_t KH, ptrdiff_t KW, ptrdiff_t r_lo, ptrdiff_t r_hi, \
                                               ptrdiff_t c_lo, ptrdiff_t c_hi)                        \
    {                                                                                                 \
        ptrdiff_t o0 = 0;                                                                             \
        for (; O - o0 >= 6; o0 += 6)                                                                  \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, 6, 2);                                                   \
        for (; O - o0 >= 4; o0 += 4)                                                                  \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, 4, 2);                                                   \
        for (; O - o0 >= 2; o0 += 2)                                                                  \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, 2, 4);                                                   \
        for (; o0 < O; o0 += 1)                                                                       \
            MINICNN_ROWS_CHANNEL_BLOCK(T, V, 1, 8);                                                   \
    }

MINICNN_DEFINE_ROWS_CONV(minicnn_rows_conv_f32, float, minicnn_rows_v16f)
MINICNN_DEFINE_ROWS_CONV(minicnn_rows_conv_f64, double, minicnn_rows_v16d)

#else /* other compilers: no row kernel; the caller asks rows_available() first */
#define MINICNN_HAVE_ROWS 0
#define MINICNN_ROW_LANES 16
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
