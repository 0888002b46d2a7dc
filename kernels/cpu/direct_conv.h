/* Direct convolution for small layers (LeNet's C3): 16 output channels at a time.
 *
 * Why: for a layer like C3 (16 filters of 6x5x5 on 14x14 maps) the im2col
 * matrix is as large as the work it feeds, and BLAS gets little speed out of
 * products this small. Here the 16 filters' weights for one tap fill one
 * vector register, and each input pixel under that tap is broadcast and
 * multiplied into the partial sums of 4 neighbouring outputs at once:
 *
 *     acc[b][o] += W[o, c, p, q] * X[c, i + p, j + b + q]     (o = 16 lanes)
 *
 * which is the cross-correlation of deck 003_7c437a475fa69432.txt,
 * "Correlación cruzada", with the sum over the filters' channels (c) and
 * taps (p, q) done in registers. The weight gradient uses the same shape of
 * loop: dW[o, c, p, q] += sum_{i,j} dY[o, i, j] * X[c, i + p, j + q].
 *
 * One copy per instruction set, picked at run time (multiversion.h), each with its own register
 * blocking (numbers: AMD EPYC Zen 5, 2 cores, one thread, medians of 21 alternating calls; "v3
 * build" is MINICNN_SINGLE_TARGET=x86-64-v3, the AVX2 copy alone; im2col + BLAS for reference):
 * - AVX-512: 16 filters in one zmm, 2 rows x 4 pixels = 8 accumulators (below), unchanged:
 *   C3 forward (64x6x14x14, 16x6x5x5) 0.22 ms, the 64->64 3x3 layer on 56x56, padded, batch 32,
 *   51-55 ms (im2col 0.92 and 94 ms). float64: the same tiles as 2 zmm of 8 doubles.
 * - AVX2: 16 filters as 2 ymm x 6 pixels x 1 row = 12 accumulators + 2 weight vectors + 1
 *   broadcast pixel = 15 of 16 registers (AVX2 has no broadcast operand). Before, gcc split the
 *   16-float vectors of the AVX-512 shape into ymm halves and spilled: C3 forward 1.49 -> 0.44 ms,
 *   the 56x56 layer 497 -> 76 ms, C3 weight gradient (batch 64) 7.2 -> 0.32 ms. Tried on the v3
 *   build: 2 rows x 3 pixels (C3 0.48, 56x56 92 ms), 1 x 4 (0.44, 96 ms), 2 x 4 (16
 *   accumulators: spills, 0.72 ms). float64: 8 filters (2 ymm of 4) x 6 pixels.
 * - baseline (SSE2): the AVX2 blocking with 4-float xmm vectors: C3 forward 1.60 -> 1.39 ms.
 * Only stride 1, no dilation, one group, C_out a multiple of 16 and output
 * rows of at least 4 pixels; the caller checks. The kernel computes "valid"
 * correlations: for a padded layer the caller first copies each image into a
 * zero-bordered one (conv2d.pyx, pad_image), and the same forward kernel gives
 * the input gradient of a stride-1 layer as the correlation of the error,
 * padded by F - 1 - P, with the filters rotated by 180 degrees and their input
 * and output channels swapped (deck 002, "Aprendizaje: Backpropagation", eq. 2).
 */
#ifndef MINICNN_DIRECT_CONV_H
#define MINICNN_DIRECT_CONV_H

#include <stddef.h>

#if defined(__GNUC__) /* gcc and clang: vector extensions and statement expressions */
#define MINICNN_HAVE_DIRECT 1

#include "multiversion.h"

#define MINICNN_LANES 16 /* filters per block of the AVX-512 copy (the caller needs C_out % 16 == 0) */
#define MINICNN_PIXELS 4

/* 16 lanes of T as one value: one AVX-512 register for float (two for double). */
typedef float minicnn_v16f __attribute__((vector_size(16 * sizeof(float))));
typedef double minicnn_v16d __attribute__((vector_size(16 * sizeof(double))));
/* one AVX2 register (ymm) and one SSE / NEON register (xmm) */
typedef float minicnn_v8f __attribute__((vector_size(32)));
typedef double minicnn_v8d __attribute__((vector_size(64)));
typedef double minicnn_v4d __attribute__((vector_size(32)));
typedef float minicnn_v4f __attribute__((vector_size(16)));
typedef double minicnn_v2d __attribute__((vector_size(16)));

#define MINICNN_LOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })
#define MINICNN_STORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))

/* y_t[(i*OW + j)*O + o] = sum_{c,p,q} w_t[((c*KH + p)*KW + q)*O + o] * x[(c*H + i + p)*W + j + q]
 * for one image; w_t is the weight with the tap index first (K x O).
 *
 * Register blocking: 2 output rows x 4 output pixels x 16 filters = 8 vector accumulators.
 * A fused multiply-add takes 4 cycles and two can start per cycle, so 8 independent sums
 * keep the arithmetic units busy; each weight vector loaded feeds 8 of them. An odd last
 * row is done again with its predecessor (the same values are written twice). */
#define MINICNN_DEFINE_DIRECT_FORWARD(NAME, ATTR, T, V)                                               \
    ATTR static void NAME(const T *x, const T *w_t, T *y_t, ptrdiff_t C, ptrdiff_t H, \
                                          ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        /* rows of the second accumulator set: i + 1, or i itself for a one-row output */            \
        const ptrdiff_t next = OH > 1 ? 1 : 0;                                                        \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += MINICNN_LANES)                                           \
            for (ptrdiff_t i0 = 0; i0 < OH; i0 += 2) {                                                \
                const ptrdiff_t i = i0 + 1 < OH ? i0 : OH - 1 - next;                                 \
                for (ptrdiff_t j0 = 0; j0 < OW; j0 += MINICNN_PIXELS) {                               \
                    const ptrdiff_t nb = OW - j0 < MINICNN_PIXELS ? OW - j0 : MINICNN_PIXELS;         \
                    /* the last block of a row shifts left to end at the last column (needs OW >= 4); \
                       outputs it computes twice get the same value twice */                          \
                    const ptrdiff_t shift = nb < MINICNN_PIXELS ? nb - MINICNN_PIXELS : 0;            \
                    V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                         \
                    V b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};                                         \
                    for (ptrdiff_t c = 0; c < C; ++c)                                                 \
                        for (ptrdiff_t p = 0; p < KH; ++p) {                                          \
                            const T *row = x + (c * H + i + p) * W + j0 + shift;                      \
                            const T *row2 = row + next * W;                                           \
                            const T *wk = w_t + ((c * KH + p) * KW) * O + o0;                         \
                            for (ptrdiff_t q = 0; q < KW; ++q, wk += O) {                             \
                                const V wv = MINICNN_LOAD(V, wk);                                     \
                                a0 += wv * row[q];                                                    \
                                a1 += wv * row[q + 1];                                                \
                                a2 += wv * row[q + 2];                                                \
                                a3 += wv * row[q + 3];                                                \
                                b0 += wv * row2[q];                                                   \
                                b1 += wv * row2[q + 1];                                               \
                                b2 += wv * row2[q + 2];                                               \
                                b3 += wv * row2[q + 3];                                               \
                            }                                                                         \
                        }                                                                             \
                    T *out = y_t + (i * OW + j0 + shift) * O + o0;                                    \
                    MINICNN_STORE(out, a0);                                                           \
                    MINICNN_STORE(out + O, a1);                                                       \
                    MINICNN_STORE(out + 2 * O, a2);                                                   \
                    MINICNN_STORE(out + 3 * O, a3);                                                   \
                    out += next * OW * O;                                                             \
                    MINICNN_STORE(out, b0);                                                           \
                    MINICNN_STORE(out + O, b1);                                                       \
                    MINICNN_STORE(out + 2 * O, b2);                                                   \
                    MINICNN_STORE(out + 3 * O, b3);                                                   \
                }                                                                                     \
            }                                                                                         \
    }

/* dw_t[((c*KH + p)*KW + q)*O + o] += sum_{i,j} x[(c*H + i + p)*W + j + q] * dy_t[(i*OW + j)*O + o]
 * for one image; dy_t is the output gradient with the pixel index first (P x O).
 *
 * Register blocking: 4 taps q (of one kernel row p) x 2 pixels j = 8 vector accumulators;
 * each error vector dy_t[i, j] loaded feeds the 4 taps. Taps left over (KW not a multiple
 * of 4) are done one at a time with 2 accumulators. */
#define MINICNN_DEFINE_DIRECT_WEIGHT_GRAD(NAME, ATTR, T, V)                                           \
    ATTR static void NAME(const T *x, const T *dy_t, T *dw_t, ptrdiff_t C, ptrdiff_t H, \
                                          ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += MINICNN_LANES)                                           \
            for (ptrdiff_t c = 0; c < C; ++c)                                                         \
                for (ptrdiff_t p = 0; p < KH; ++p) {                                                  \
                    ptrdiff_t q = 0;                                                                  \
                    for (; q + 4 <= KW; q += 4) {                                                     \
                        V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                     \
                        V b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};                                     \
                        for (ptrdiff_t i = 0; i < OH; ++i) {                                          \
                            const T *row = x + (c * H + i + p) * W + q;                               \
                            const T *g = dy_t + (i * OW) * O + o0;                                    \
                            ptrdiff_t j = 0;                                                          \
                            for (; j + 1 < OW; j += 2) {                                              \
                                const V g0 = MINICNN_LOAD(V, g + j * O);                              \
                                const V g1 = MINICNN_LOAD(V, g + (j + 1) * O);                        \
                                a0 += g0 * row[j];                                                    \
                                a1 += g0 * row[j + 1];                                                \
                                a2 += g0 * row[j + 2];                                                \
                                a3 += g0 * row[j + 3];                                                \
                                b0 += g1 * row[j + 1];                                                \
                                b1 += g1 * row[j + 2];                                                \
                                b2 += g1 * row[j + 3];                                                \
                                b3 += g1 * row[j + 4];                                                \
                            }                                                                         \
                            if (j < OW) {                                                             \
                                const V g0 = MINICNN_LOAD(V, g + j * O);                              \
                                a0 += g0 * row[j];                                                    \
                                a1 += g0 * row[j + 1];                                                \
                                a2 += g0 * row[j + 2];                                                \
                                a3 += g0 * row[j + 3];                                                \
                            }                                                                         \
                        }                                                                             \
                        T *dst = dw_t + ((c * KH + p) * KW + q) * O + o0;                             \
                        V s0 = MINICNN_LOAD(V, dst) + (a0 + b0);                                      \
                        V s1 = MINICNN_LOAD(V, dst + O) + (a1 + b1);                                  \
                        V s2 = MINICNN_LOAD(V, dst + 2 * O) + (a2 + b2);                              \
                        V s3 = MINICNN_LOAD(V, dst + 3 * O) + (a3 + b3);                              \
                        MINICNN_STORE(dst, s0);                                                       \
                        MINICNN_STORE(dst + O, s1);                                                   \
                        MINICNN_STORE(dst + 2 * O, s2);                                               \
                        MINICNN_STORE(dst + 3 * O, s3);                                               \
                    }                                                                                 \
                    for (; q < KW; ++q) {                                                             \
                        V a0 = {0}, a1 = {0};                                                         \
                        for (ptrdiff_t i = 0; i < OH; ++i) {                                          \
                            const T *row = x + (c * H + i + p) * W + q;                               \
                            const T *g = dy_t + (i * OW) * O + o0;                                    \
                            ptrdiff_t j = 0;                                                          \
                            for (; j + 1 < OW; j += 2) {                                              \
                                a0 += MINICNN_LOAD(V, g + j * O) * row[j];                            \
                                a1 += MINICNN_LOAD(V, g + (j + 1) * O) * row[j + 1];                  \
                            }                                                                         \
                            if (j < OW)                                                               \
                                a0 += MINICNN_LOAD(V, g + j * O) * row[j];                            \
                        }                                                                             \
                        T *dst = dw_t + ((c * KH + p) * KW + q) * O + o0;                             \
                        V sum = MINICNN_LOAD(V, dst) + (a0 + a1);                                     \
                        MINICNN_STORE(dst, sum);                                                      \
                    }                                                                                 \
                }                                                                                     \
    }


/* ---- The AVX2 and baseline copies: blockings that fit 16 registers ----
 *
 * A vector V holds VL filters (8 floats in a ymm register, 4 in an xmm one) and a block of filters
 * is NV vectors (NV*VL filters; 16 floats or 8 doubles on AVX2, so C_out % 16 == 0 is still all the
 * caller needs). A tile is RB output rows x PX output pixels x NV vectors = RB*PX*NV accumulators;
 * per tap it loads NV weight vectors and broadcasts RB*PX input pixels. AVX2 has no broadcast
 * operand, so each pixel takes a register while it is used: accumulators + NV + 1 <= 16.
 * The last block of a row shifts left to end at the last column (needs OW >= PX; rows of 4 or 5
 * pixels use 4-pixel tiles), the last row block shifts up: outputs computed twice get the same
 * value twice (the same sums in the same order). */
#define MINICNN_DIRECT_FIT_LOOPS(T, V, VL, NV, RB, PX)                                                \
    do {                                                                                              \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += (NV) * (VL))                                             \
            for (ptrdiff_t i0 = 0; i0 < OH; i0 += (RB)) {                                             \
                const ptrdiff_t i = i0 + (RB) <= OH ? i0 : (OH >= (RB) ? OH - (RB) : 0);              \
                ptrdiff_t rows[RB], outs[RB]; /* offsets of the tile's rows from row i (in x, y_t) */ \
                for (int t = 0; t < (RB); ++t) {                                                      \
                    const ptrdiff_t r = (RB) == 1 ? 0 : (i + t < OH ? t : OH - 1 - i);                \
                    rows[t] = r * W;                                                                  \
                    outs[t] = r * OW * O;                                                             \
                }                                                                                     \
                for (ptrdiff_t j0 = 0; j0 < OW; j0 += (PX)) {                                         \
                    const ptrdiff_t j = j0 + (PX) <= OW ? j0 : OW - (PX);                             \
                    V acc[RB][PX][NV];                                                                \
                    for (int t = 0; t < (RB); ++t)                                                    \
                        for (int b = 0; b < (PX); ++b)                                                \
                            for (int v = 0; v < (NV); ++v)                                            \
                                acc[t][b][v] = (V){0};                                                \
                    for (ptrdiff_t c = 0; c < C; ++c)                                                 \
                        for (ptrdiff_t p = 0; p < KH; ++p) {                                          \
                            const T *row = x + (c * H + i + p) * W + j;                               \
                            const T *wk = w_t + ((c * KH + p) * KW) * O + o0;                         \
                            for (ptrdiff_t q = 0; q < KW; ++q, wk += O) {                             \
                                V wv[NV];                                                             \
                                for (int v = 0; v < (NV); ++v)                                        \
                                    wv[v] = MINICNN_LOAD(V, wk + v * (VL));                           \
                                for (int t = 0; t < (RB); ++t)                                        \
                                    for (int b = 0; b < (PX); ++b) {                                  \
                                        const T xs = row[rows[t] + q + b];                            \
                                        for (int v = 0; v < (NV); ++v)                                \
                                            acc[t][b][v] += wv[v] * xs;                               \
                                    }                                                                 \
                            }                                                                         \
                        }                                                                             \
                    T *out = y_t + (i * OW + j) * O + o0;                                             \
                    for (int t = 0; t < (RB); ++t)                                                    \
                        for (int b = 0; b < (PX); ++b)                                                \
                            for (int v = 0; v < (NV); ++v)                                            \
                                MINICNN_STORE(out + outs[t] + b * O + v * (VL), acc[t][b][v]);        \
                }                                                                                     \
            }                                                                                         \
    } while (0)

#define MINICNN_DEFINE_DIRECT_FORWARD_FIT(NAME, ATTR, T, V, VL, NV, RB, PX)                           \
    ATTR static void NAME(const T *x, const T *w_t, T *y_t, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,    \
                          ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)                                    \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        if (OW >= (PX))                                                                               \
            MINICNN_DIRECT_FIT_LOOPS(T, V, VL, NV, RB, PX);                                           \
        else /* rows of 4 or 5 pixels */                                                              \
            MINICNN_DIRECT_FIT_LOOPS(T, V, VL, NV, RB, 4);                                            \
    }

/* Weight gradient: a tile is QB taps (of one kernel row p) x JB chains x NV vectors; chain u takes
 * the pixels j = u mod JB, and the chains are added in order at the end. JB is chosen so that the
 * tile has at most 12 accumulators: each error vector loaded feeds QB taps, each broadcast pixel NV
 * multiply-adds. Taps go in blocks of QBMAX, the last block shorter. */
#define MINICNN_DIRECT_WG_JB(QB, NV) ((12 / ((QB) * (NV))) > 0 ? (12 / ((QB) * (NV))) : 1)
#define MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, QB)                                                  \
    do {                                                                                              \
        enum { JB = MINICNN_DIRECT_WG_JB(QB, NV) };                                                   \
        V acc[QB][JB][NV];                                                                            \
        for (int t = 0; t < (QB); ++t)                                                                \
            for (int u = 0; u < JB; ++u)                                                              \
                for (int v = 0; v < (NV); ++v)                                                        \
                    acc[t][u][v] = (V){0};                                                            \
        for (ptrdiff_t i = 0; i < OH; ++i) {                                                          \
            const T *row = x + (c * H + i + p) * W + q;                                               \
            const T *g = dy_t + (i * OW) * O + o0;                                                    \
            ptrdiff_t j = 0;                                                                          \
            for (; j + JB <= OW; j += JB)                                                             \
                for (int u = 0; u < JB; ++u) {                                                        \
                    V gv[NV];                                                                         \
                    for (int v = 0; v < (NV); ++v)                                                    \
                        gv[v] = MINICNN_LOAD(V, g + (j + u) * O + v * (VL));                          \
                    for (int t = 0; t < (QB); ++t) {                                                  \
                        const T xs = row[j + u + t];                                                  \
                        for (int v = 0; v < (NV); ++v)                                                \
                            acc[t][u][v] += gv[v] * xs;                                               \
                    }                                                                                 \
                }                                                                                     \
            for (; j < OW; ++j) {                                                                     \
                V gv[NV];                                                                             \
                for (int v = 0; v < (NV); ++v)                                                        \
                    gv[v] = MINICNN_LOAD(V, g + j * O + v * (VL));                                    \
                for (int t = 0; t < (QB); ++t) {                                                      \
                    const T xs = row[j + t];                                                          \
                    for (int v = 0; v < (NV); ++v)                                                    \
                        acc[t][0][v] += gv[v] * xs;                                                   \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        T *dst = dw_t + ((c * KH + p) * KW + q) * O + o0;                                             \
        for (int t = 0; t < (QB); ++t)                                                                \
            for (int v = 0; v < (NV); ++v) {                                                          \
                V s = acc[t][0][v];                                                                   \
                for (int u = 1; u < JB; ++u)                                                          \
                    s += acc[t][u][v];                                                                \
                s = MINICNN_LOAD(V, dst + t * O + v * (VL)) + s;                                      \
                MINICNN_STORE(dst + t * O + v * (VL), s);                                             \
            }                                                                                         \
    } while (0)

#define MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(NAME, ATTR, T, V, VL, NV)                               \
    ATTR static void NAME(const T *x, const T *dy_t, T *dw_t, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,  \
                          ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)                                    \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += (NV) * (VL))                                             \
            for (ptrdiff_t c = 0; c < C; ++c)                                                         \
                for (ptrdiff_t p = 0; p < KH; ++p)                                                    \
                    for (ptrdiff_t q = 0; q < KW;) {                                                  \
                        const ptrdiff_t qb = KW - q < 5 ? KW - q : 5;                                 \
                        switch (qb) {                                                                 \
                        case 1: MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, 1); break;                   \
                        case 2: MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, 2); break;                   \
                        case 3: MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, 3); break;                   \
                        case 4: MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, 4); break;                   \
                        default: MINICNN_DIRECT_WG_FIT_TILE(T, V, VL, NV, 5); break;                  \
                        }                                                                             \
                        q += qb;                                                                      \
                    }                                                                                 \
    }

/* The blocking of each level (see the note at the top for the measurements). */
#ifndef MINICNN_DIRECT_FIT_RB /* forward tile of the AVX2 and baseline copies: rows x pixels */
#define MINICNN_DIRECT_FIT_RB 1
#define MINICNN_DIRECT_FIT_PX 6
#endif
/* float on AVX-512: with C_out a multiple of 32, two zmm of 16 filters x 2 rows x 5 pixels = 20
 * accumulators (+2 weight vectors, of 32 registers): each broadcast pixel feeds 2 multiply-adds instead
 * of 1, each weight vector 10. One thread, AMD EPYC Zen 5: the 64->64 3x3 layer on 56x56 (one padded
 * image) 1.45 -> 1.08 ms (160 -> 214 GFLOP/s), 256->256 3x3 on 14x14 2.54 -> 1.33 ms (91 -> 174);
 * tried there: 2 rows x 4 (209 and 141 GFLOP/s), 2 x 6 (212, 149), 1 x 8 (207, 142), 3 x 4 (206),
 * 1 x 12 (195). Other layers (C3's 16 filters) keep the one-register tile above. */
#define MINICNN_DIRECT_FWD_f32_V4(F, A)                                                               \
    MINICNN_DEFINE_DIRECT_FORWARD(F##_one, A, float, minicnn_v16f)                                    \
    MINICNN_DEFINE_DIRECT_FORWARD_FIT(F##_two, A, float, minicnn_v16f, 16, 2, 2, 5)                   \
    A static void F(const float *x, const float *w_t, float *y_t, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, \
                    ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)                                          \
    {                                                                                                 \
        if (O % 32 == 0)                                                                              \
            F##_two(x, w_t, y_t, C, H, W, O, KH, KW);                                                 \
        else                                                                                          \
            F##_one(x, w_t, y_t, C, H, W, O, KH, KW);                                                 \
    }
/* double on AVX-512: the same 16 filters x 2 rows x 4 pixels, as 2 registers of 8 doubles each (a 16-double
 * vector type made gcc go through memory: 3.7 ms against 0.66 for C3's weight gradient, see the note) */
#define MINICNN_DIRECT_FWD_f64_V4(F, A) MINICNN_DEFINE_DIRECT_FORWARD_FIT(F, A, double, minicnn_v8d, 8, 2, 2, 4)
#define MINICNN_DIRECT_FWD_f32_V3(F, A) \
    MINICNN_DEFINE_DIRECT_FORWARD_FIT(F, A, float, minicnn_v8f, 8, 2, MINICNN_DIRECT_FIT_RB, MINICNN_DIRECT_FIT_PX)
#define MINICNN_DIRECT_FWD_f64_V3(F, A) \
    MINICNN_DEFINE_DIRECT_FORWARD_FIT(F, A, double, minicnn_v4d, 4, 2, MINICNN_DIRECT_FIT_RB, MINICNN_DIRECT_FIT_PX)
#define MINICNN_DIRECT_FWD_f32_BASE(F, A) \
    MINICNN_DEFINE_DIRECT_FORWARD_FIT(F, A, float, minicnn_v4f, 4, 2, MINICNN_DIRECT_FIT_RB, MINICNN_DIRECT_FIT_PX)
#define MINICNN_DIRECT_FWD_f64_BASE(F, A) \
    MINICNN_DEFINE_DIRECT_FORWARD_FIT(F, A, double, minicnn_v2d, 2, 2, MINICNN_DIRECT_FIT_RB, MINICNN_DIRECT_FIT_PX)
#define MINICNN_DIRECT_WG_f32_V4(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD(F, A, float, minicnn_v16f)
#define MINICNN_DIRECT_WG_f64_V4(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(F, A, double, minicnn_v8d, 8, 2)
#define MINICNN_DIRECT_WG_f32_V3(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(F, A, float, minicnn_v8f, 8, 2)
#define MINICNN_DIRECT_WG_f64_V3(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(F, A, double, minicnn_v4d, 4, 2)
#define MINICNN_DIRECT_WG_f32_BASE(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(F, A, float, minicnn_v4f, 4, 2)
#define MINICNN_DIRECT_WG_f64_BASE(F, A) MINICNN_DEFINE_DIRECT_WEIGHT_GRAD_FIT(F, A, double, minicnn_v2d, 2, 2)

#define MINICNN_DIRECT_FWD_f32(F, A, LEVEL) MINICNN_DIRECT_FWD_f32_##LEVEL(F, A)
#define MINICNN_DIRECT_FWD_f64(F, A, LEVEL) MINICNN_DIRECT_FWD_f64_##LEVEL(F, A)
#define MINICNN_DIRECT_WG_f32(F, A, LEVEL) MINICNN_DIRECT_WG_f32_##LEVEL(F, A)
#define MINICNN_DIRECT_WG_f64(F, A, LEVEL) MINICNN_DIRECT_WG_f64_##LEVEL(F, A)

#define MINICNN_DIRECT_PARAMS(T) \
    (const T *x, const T *w, T *y, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)
#define MINICNN_DIRECT_ARGS (x, w, y, C, H, W, O, KH, KW)
MINICNN_INSTANTIATE(MINICNN_DIRECT_FWD_f32, minicnn_direct_forward_f32, MINICNN_DIRECT_PARAMS(float), MINICNN_DIRECT_ARGS)
MINICNN_INSTANTIATE(MINICNN_DIRECT_FWD_f64, minicnn_direct_forward_f64, MINICNN_DIRECT_PARAMS(double), MINICNN_DIRECT_ARGS)
MINICNN_INSTANTIATE(MINICNN_DIRECT_WG_f32, minicnn_direct_weight_grad_f32, MINICNN_DIRECT_PARAMS(float), MINICNN_DIRECT_ARGS)
MINICNN_INSTANTIATE(MINICNN_DIRECT_WG_f64, minicnn_direct_weight_grad_f64, MINICNN_DIRECT_PARAMS(double), MINICNN_DIRECT_ARGS)

#else /* other compilers: no direct kernel; the caller asks minicnn_have_direct() first */
#define MINICNN_HAVE_DIRECT 0
#define MINICNN_STUB(NAME, T)                                                                      \
    static void NAME(const T *a, const T *b, T *c, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t O, \
                     ptrdiff_t KH, ptrdiff_t KW)                                                       \
    {                                                                                              \
        (void)a; (void)b; (void)c; (void)C; (void)H; (void)W; (void)O; (void)KH; (void)KW;          \
    }
MINICNN_STUB(minicnn_direct_forward_f32, float)
MINICNN_STUB(minicnn_direct_forward_f64, double)
MINICNN_STUB(minicnn_direct_weight_grad_f32, float)
MINICNN_STUB(minicnn_direct_weight_grad_f64, double)
#endif

#endif
