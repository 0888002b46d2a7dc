/* Winograd F(2x2, 3x3) input and output transforms for a row of tiles (kernels/cpu/winograd.pyx).
 *
 * Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016); the matrices and
 * the derivation are in minicnn/winograd.py. Both transforms run on a segment of tiles that are
 * neighbours in one row of tiles, so that each step is a loop along the row the compiler
 * vectorises (plain C compiled once per instruction set: MINICNN_CLONES, multiversion.h):
 *
 *  input:  the 4 input rows under the segment, zero-padded, are combined into t = B^T d (whole
 *          rows, contiguous), then each tile's columns into V = t B (reads of stride 2), stored as
 *          16 streams v[xi * stride + k] contiguous in the tile k;
 *  output: the 16 streams m[xi * stride + k] of the products give Y = A^T M A + b, two output rows
 *          of the segment, written through a row buffer so that the last tile of an odd-sized
 *          output is cropped by the copy;
 *  dY:     for the weight gradient, the 2 rows of dY under the segment give E = A e A^T, 16 streams
 *          like the input's.
 */
#ifndef MINICNN_WINOGRAD_H
#define MINICNN_WINOGRAD_H

#include <stddef.h>
#include <string.h>

#include "multiversion.h"

/* The longest segment of tiles (the tile block of the path is at most this). */
#define MINICNN_WINO_MAX_TILES 256
#define MINICNN_WINO_SPAN (2 * MINICNN_WINO_MAX_TILES + 2)

/* Channels of one filter transformed at a time (the filter transform's staging buffer). */
#define MINICNN_WINO_CHUNK 128

/* The streams of one transform never overlap (each is its own xi); tell the vectoriser so. */
#if defined(__GNUC__) && !defined(__clang__)
#define MINICNN_WINO_IVDEP _Pragma("GCC ivdep")
#elif defined(__clang__)
#define MINICNN_WINO_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#else
#define MINICNN_WINO_IVDEP
#endif

#define MINICNN_WINO_DEFINE(T, SUFFIX)                                                                   \
    /* d[p * ld + j] = src[(r0 + p) * width + c0 + j] for p < rows, j < span: the rows of the plane under a\
     * segment of tiles, zero outside the (height x width) plane (the padding, and whole tiles beyond it). */\
    MINICNN_CLONES static void minicnn_wino_rows_##SUFFIX(const T *src, int height, int width, int r0,  \
                                                          int c0, int rows, int span, T *d, int ld)     \
    {                                                                                                   \
        int lo = c0 < 0 ? -c0 : 0, hi = width - c0 < span ? width - c0 : span;                          \
        for (int p = 0; p < rows; p++) {                                                                \
            T *dp = d + (ptrdiff_t)p * ld;                                                              \
            int row = r0 + p;                                                                           \
            if (row < 0 || row >= height || hi <= lo) {                                                 \
                memset(dp, 0, sizeof(T) * span);                                                        \
                continue;                                                                               \
            }                                                                                           \
            if (lo > 0) memset(dp, 0, sizeof(T) * lo);                                                  \
            memcpy(dp + lo, src + (ptrdiff_t)row * width + c0 + lo, sizeof(T) * (hi - lo));             \
            if (hi < span) memset(dp + hi, 0, sizeof(T) * (span - hi));                                 \
        }                                                                                               \
    }                                                                                                   \
                                                                                                        \
    /* u[xi * stride + c] = (G g_c G^T)[xi] for the `channels` 3x3 kernels g_c = w[9c .. 9c + 8] of one  \
     * filter: the taps staged tap-major, so the loop over the channels is vectorised. */                \
    MINICNN_CLONES static void minicnn_wino_filter_##SUFFIX(const T *w, int channels, T *u,             \
                                                             ptrdiff_t stride)                           \
    {                                                                                                    \
        T g[9][MINICNN_WINO_CHUNK];                                                                      \
        for (int c0 = 0; c0 < channels; c0 += MINICNN_WINO_CHUNK) {                                      \
            int n = channels - c0 < MINICNN_WINO_CHUNK ? channels - c0 : MINICNN_WINO_CHUNK;             \
            for (int c = 0; c < n; c++)                                                                  \
                for (int k = 0; k < 9; k++) g[k][c] = w[(ptrdiff_t)(c0 + c) * 9 + k];                    \
            T *uc = u + c0;                                                                              \
            MINICNN_WINO_IVDEP                                                                           \
            for (int c = 0; c < n; c++) {                                                                \
                T t[4][3]; /* t = G g */                                                                 \
                for (int j = 0; j < 3; j++) {                                                            \
                    t[0][j] = g[j][c];                                                                   \
                    t[1][j] = (g[j][c] + g[3 + j][c] + g[6 + j][c]) * (T)0.5;                            \
                    t[2][j] = (g[j][c] - g[3 + j][c] + g[6 + j][c]) * (T)0.5;                            \
                    t[3][j] = g[6 + j][c];                                                               \
                }                                                                                        \
                for (int i = 0; i < 4; i++) { /* (G g) G^T */                                           \
                    uc[(4 * i) * stride + c] = t[i][0];                                                  \
                    uc[(4 * i + 1) * stride + c] = (t[i][0] + t[i][1] + t[i][2]) * (T)0.5;               \
                    uc[(4 * i + 2) * stride + c] = (t[i][0] - t[i][1] + t[i][2]) * (T)0.5;               \
                    uc[(4 * i + 3) * stride + c] = t[i][2];                                              \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* V[xi * stride + k] = (B^T d_k B)[xi] for the `tiles` 4x4 patches whose top-left pixel is         \
     * (r0, c0 + 2k) of the (height x width) plane `src`; pixels outside it read as zero. */             \
    MINICNN_CLONES static void minicnn_wino_input_##SUFFIX(const T *src, int height, int width, int r0,    \
                                                            int c0, int tiles, T *v, ptrdiff_t stride)    \
    {                                                                                                    \
        T d[4][MINICNN_WINO_SPAN];                                                                       \
        T te[4][MINICNN_WINO_MAX_TILES + 1], to[4][MINICNN_WINO_MAX_TILES + 1]; /* t = B^T d: even, odd columns */ \
        int span = 2 * tiles + 2;                                                                       \
        minicnn_wino_rows_##SUFFIX(src, height, width, r0, c0, 4, span, &d[0][0], MINICNN_WINO_SPAN);   \
        /* t = B^T d, rows d0 - d2, d1 + d2, d2 - d1, d1 - d3, split into even and odd columns */        \
        for (int j = 0; j <= tiles; j++) {                                                               \
            T a0 = d[0][2 * j], a1 = d[1][2 * j], a2 = d[2][2 * j], a3 = d[3][2 * j];                     \
            T b0 = d[0][2 * j + 1], b1 = d[1][2 * j + 1], b2 = d[2][2 * j + 1], b3 = d[3][2 * j + 1];     \
            te[0][j] = a0 - a2; te[1][j] = a1 + a2; te[2][j] = a2 - a1; te[3][j] = a1 - a3;             \
            to[0][j] = b0 - b2; to[1][j] = b1 + b2; to[2][j] = b2 - b1; to[3][j] = b1 - b3;             \
        }                                                                                                \
        for (int i = 0; i < 4; i++) { /* V = t B: columns t0 - t2, t1 + t2, t2 - t1, t1 - t3 */         \
            T *v0 = v + (4 * i) * stride, *v1 = v0 + stride, *v2 = v1 + stride, *v3 = v2 + stride;       \
            const T *e = te[i], *o = to[i];                                                              \
            MINICNN_WINO_IVDEP                                                                           \
            for (int k = 0; k < tiles; k++) { /* tile k: columns 2k, 2k + 1, 2k + 2, 2k + 3 */            \
                v0[k] = e[k] - e[k + 1];                                                                 \
                v1[k] = o[k] + e[k + 1];                                                                 \
                v2[k] = e[k + 1] - o[k];                                                                 \
                v3[k] = o[k] - o[k + 1];                                                                 \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* y rows 2ti, 2ti + 1 (the second when `two_rows`), columns c0 .. c0 + 2*tiles - 1 cropped to        \
     * `width` values from c0: (A^T M_k A) + bias for the `tiles` tiles of m[xi * stride + k]. */       \
    MINICNN_CLONES static void minicnn_wino_output_##SUFFIX(const T *m, ptrdiff_t stride, int tiles,      \
                                                             T bias, T *dst, int ow, int width,          \
                                                             int two_rows)                               \
    {                                                                                                    \
        T r0[2 * MINICNN_WINO_MAX_TILES], r1[2 * MINICNN_WINO_MAX_TILES];                               \
        const T *m0 = m, *m1 = m + stride, *m2 = m + 2 * stride, *m3 = m + 3 * stride;                   \
        const T *m4 = m + 4 * stride, *m5 = m + 5 * stride, *m6 = m + 6 * stride, *m7 = m + 7 * stride;  \
        const T *m8 = m + 8 * stride, *m9 = m + 9 * stride, *m10 = m + 10 * stride;                      \
        const T *m11 = m + 11 * stride, *m12 = m + 12 * stride, *m13 = m + 13 * stride;                  \
        const T *m14 = m + 14 * stride, *m15 = m + 15 * stride;                                          \
        MINICNN_WINO_IVDEP                                                                               \
        for (int k = 0; k < tiles; k++) {                                                                \
            /* s = A^T M: rows m0 + m1 + m2 and m1 - m2 - m3 (of the 4x4 tile) */                        \
            T s00 = m0[k] + m4[k] + m8[k], s01 = m1[k] + m5[k] + m9[k];                                  \
            T s02 = m2[k] + m6[k] + m10[k], s03 = m3[k] + m7[k] + m11[k];                                \
            T s10 = m4[k] - m8[k] - m12[k], s11 = m5[k] - m9[k] - m13[k];                                \
            T s12 = m6[k] - m10[k] - m14[k], s13 = m7[k] - m11[k] - m15[k];                              \
            r0[2 * k] = s00 + s01 + s02 + bias; /* (A^T M) A */                                          \
            r0[2 * k + 1] = s01 - s02 - s03 + bias;                                                      \
            r1[2 * k] = s10 + s11 + s12 + bias;                                                          \
            r1[2 * k + 1] = s11 - s12 - s13 + bias;                                                      \
        }                                                                                                \
        memcpy(dst, r0, sizeof(T) * width);                                                              \
        if (two_rows) memcpy(dst + ow, r1, sizeof(T) * width);                                           \
    }                                                                                                    \
                                                                                                         \
    /* E[xi * stride + k] = (A e_k A^T)[xi] for the `tiles` 2x2 tiles e_k of dY whose top-left pixel is  \
     * (r0, c0 + 2k) of the (height x width) plane `src` (the weight gradient's transform of dY, in      \
     * the place of the filter's); pixels beyond the plane read as zero. A = (A^T)^T turns a pair        \
     * (a, b) into (a, a + b, a - b, -b). */                                                             \
    MINICNN_CLONES static void minicnn_wino_grad_##SUFFIX(const T *src, int height, int width, int r0,     \
                                                           int c0, int tiles, T *e, ptrdiff_t stride)    \
    {                                                                                                    \
        T row[2][2 * MINICNN_WINO_MAX_TILES];                                                           \
        int span = 2 * tiles;                                                                           \
        minicnn_wino_rows_##SUFFIX(src, height, width, r0, c0, 2, span, &row[0][0], 2 * MINICNN_WINO_MAX_TILES);\
        T *e0 = e, *e1 = e + stride, *e2 = e + 2 * stride, *e3 = e + 3 * stride;                         \
        T *e4 = e + 4 * stride, *e5 = e + 5 * stride, *e6 = e + 6 * stride, *e7 = e + 7 * stride;        \
        T *e8 = e + 8 * stride, *e9 = e + 9 * stride, *e10 = e + 10 * stride, *e11 = e + 11 * stride;    \
        T *e12 = e + 12 * stride, *e13 = e + 13 * stride, *e14 = e + 14 * stride;                        \
        T *e15 = e + 15 * stride;                                                                        \
        const T *top = row[0], *bottom = row[1];                                                         \
        MINICNN_WINO_IVDEP                                                                               \
        for (int k = 0; k < tiles; k++) {                                                                \
            T a0 = top[2 * k], b0 = top[2 * k + 1], a1 = bottom[2 * k], b1 = bottom[2 * k + 1];          \
            /* t = A e: rows (r0, r0 + r1, r0 - r1, -r1), each a pair of columns (a, b) */               \
            T t0a = a0, t0b = b0, t1a = a0 + a1, t1b = b0 + b1;                                          \
            T t2a = a0 - a1, t2b = b0 - b1, t3a = -a1, t3b = -b1;                                        \
            /* (A e) A^T: each row's pair (a, b) -> (a, a + b, a - b, -b) */                             \
            e0[k] = t0a; e1[k] = t0a + t0b; e2[k] = t0a - t0b; e3[k] = -t0b;                             \
            e4[k] = t1a; e5[k] = t1a + t1b; e6[k] = t1a - t1b; e7[k] = -t1b;                             \
            e8[k] = t2a; e9[k] = t2a + t2b; e10[k] = t2a - t2b; e11[k] = -t2b;                           \
            e12[k] = t3a; e13[k] = t3a + t3b; e14[k] = t3a - t3b; e15[k] = -t3b;                         \
        }                                                                                                \
    }

MINICNN_WINO_DEFINE(float, f32)
MINICNN_WINO_DEFINE(double, f64)

/* F(4x4, 3x3): 6x6 transformed tiles, 36 streams (the matrices of minicnn/winograd.py, section 4.2 of
 * Lavin and Gray), the same three steps with tiles 4 outputs apart. */
#define MINICNN_WINO4_SPAN (4 * MINICNN_WINO_MAX_TILES + 2)

/* The filter polynomial at the points 0, 1, -1, 2, -2, infinity, scaled (a row of G4 times (a, b, c)). */
#define MINICNN_WINO4_G(T, a, b, c, out, step)                                                          \
    do {                                                                                                 \
        (out)[0 * (step)] = (a) * (T)0.25;                                                               \
        (out)[1 * (step)] = ((a) + (b) + (c)) * (T)(-1.0 / 6.0);                                         \
        (out)[2 * (step)] = ((a) - (b) + (c)) * (T)(-1.0 / 6.0);                                         \
        (out)[3 * (step)] = (a) * (T)(1.0 / 24.0) + (b) * (T)(1.0 / 12.0) + (c) * (T)(1.0 / 6.0);        \
        (out)[4 * (step)] = (a) * (T)(1.0 / 24.0) - (b) * (T)(1.0 / 12.0) + (c) * (T)(1.0 / 6.0);        \
        (out)[5 * (step)] = (c);                                                                         \
    } while (0)

#define MINICNN_WINO4_DEFINE(T, SUFFIX)                                                                  \
    /* u[xi * stride + c] = (G4 g_c G4^T)[xi], xi = 6 * row + column, for the `channels` 3x3 kernels  \
     * g_c = w[9c .. 9c + 8] of one filter. */                                                           \
    MINICNN_CLONES static void minicnn_wino4_filter_##SUFFIX(const T *w, int channels, T *u,            \
                                                              ptrdiff_t stride)                          \
    {                                                                                                    \
        T g[9][MINICNN_WINO_CHUNK];                                                                      \
        for (int c0 = 0; c0 < channels; c0 += MINICNN_WINO_CHUNK) {                                      \
            int n = channels - c0 < MINICNN_WINO_CHUNK ? channels - c0 : MINICNN_WINO_CHUNK;             \
            for (int c = 0; c < n; c++)                                                                  \
                for (int k = 0; k < 9; k++) g[k][c] = w[(ptrdiff_t)(c0 + c) * 9 + k];                    \
            T *uc = u + c0;                                                                              \
            MINICNN_WINO_IVDEP                                                                           \
            for (int c = 0; c < n; c++) {                                                                \
                T t[6][3]; /* t = G4 g, column by column */                                              \
                for (int j = 0; j < 3; j++) {                                                            \
                    T col[6];                                                                            \
                    MINICNN_WINO4_G(T, g[j][c], g[3 + j][c], g[6 + j][c], col, 1);                       \
                    for (int i = 0; i < 6; i++) t[i][j] = col[i];                                        \
                }                                                                                        \
                for (int i = 0; i < 6; i++) /* (G4 g) G4^T, row by row */                              \
                    MINICNN_WINO4_G(T, t[i][0], t[i][1], t[i][2], uc + (ptrdiff_t)(6 * i) * stride + c, stride); \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* V[xi * stride + k] = (B4^T d_k B4)[xi] for the `tiles` 6x6 patches whose top-left pixel is       \
     * (r0, c0 + 4k) of the (height x width) plane `src`; pixels outside it read as zero. */             \
    MINICNN_CLONES static void minicnn_wino4_input_##SUFFIX(const T *src, int height, int width, int r0,   \
                                                             int c0, int tiles, T *v, ptrdiff_t stride)   \
    {                                                                                                    \
        T d[6][MINICNN_WINO4_SPAN], t[6][MINICNN_WINO4_SPAN];                                           \
        int span = 4 * tiles + 2;                                                                       \
        minicnn_wino_rows_##SUFFIX(src, height, width, r0, c0, 6, span, &d[0][0], MINICNN_WINO4_SPAN);  \
        /* t = B4^T d on whole rows */                                                                   \
        MINICNN_WINO_IVDEP                                                                               \
        for (int j = 0; j < span; j++) {                                                                 \
            T a0 = d[0][j], a1 = d[1][j], a2 = d[2][j], a3 = d[3][j], a4 = d[4][j], a5 = d[5][j];       \
            t[0][j] = 4 * a0 - 5 * a2 + a4;                                                              \
            t[1][j] = -4 * (a1 + a2) + a3 + a4;                                                          \
            t[2][j] = 4 * (a1 - a2) - a3 + a4;                                                           \
            t[3][j] = 2 * (a3 - a1) - a2 + a4;                                                           \
            t[4][j] = 2 * (a1 - a3) - a2 + a4;                                                           \
            t[5][j] = 4 * a1 - 5 * a3 + a5;                                                              \
        }                                                                                                \
        for (int i = 0; i < 6; i++) { /* V = t B4: the same combinations of each tile's 6 columns */    \
            T *v0 = v + (6 * i) * stride;                                                                \
            const T *r = t[i];                                                                           \
            MINICNN_WINO_IVDEP                                                                           \
            for (int k = 0; k < tiles; k++) {                                                            \
                T a0 = r[4 * k], a1 = r[4 * k + 1], a2 = r[4 * k + 2], a3 = r[4 * k + 3];                \
                T a4 = r[4 * k + 4], a5 = r[4 * k + 5];                                                  \
                v0[k] = 4 * a0 - 5 * a2 + a4;                                                            \
                v0[stride + k] = -4 * (a1 + a2) + a3 + a4;                                               \
                v0[2 * stride + k] = 4 * (a1 - a2) - a3 + a4;                                            \
                v0[3 * stride + k] = 2 * (a3 - a1) - a2 + a4;                                            \
                v0[4 * stride + k] = 2 * (a1 - a3) - a2 + a4;                                            \
                v0[5 * stride + k] = 4 * a1 - 5 * a3 + a5;                                               \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
                                                                                                         \
    /* y rows 4ti .. 4ti + rows - 1, columns c0 .. c0 + 4*tiles - 1 cropped to `width` values:           \
     * (A4^T M_k A4) + bias for the `tiles` tiles of m[xi * stride + k]. */                              \
    MINICNN_CLONES static void minicnn_wino4_output_##SUFFIX(const T *m, ptrdiff_t stride, int tiles,     \
                                                              T bias, T *dst, int ow, int width,         \
                                                              int rows)                                  \
    {                                                                                                    \
        T out[4][4 * MINICNN_WINO_MAX_TILES];                                                           \
        MINICNN_WINO_IVDEP                                                                               \
        for (int k = 0; k < tiles; k++) {                                                                \
            T s[4][6]; /* s = A4^T M */                                                                  \
            for (int j = 0; j < 6; j++) {                                                                \
                T m0 = m[j * stride + k], m1 = m[(6 + j) * stride + k], m2 = m[(12 + j) * stride + k];   \
                T m3 = m[(18 + j) * stride + k], m4 = m[(24 + j) * stride + k];                          \
                T m5 = m[(30 + j) * stride + k];                                                         \
                T p12 = m1 + m2, n12 = m1 - m2, p34 = m3 + m4, n34 = m3 - m4;                            \
                s[0][j] = m0 + p12 + p34;                                                                \
                s[1][j] = n12 + 2 * n34;                                                                 \
                s[2][j] = p12 + 4 * p34;                                                                 \
                s[3][j] = n12 + 8 * n34 + m5;                                                            \
            }                                                                                            \
            for (int i = 0; i < 4; i++) { /* (A4^T M) A4 */                                              \
                T p12 = s[i][1] + s[i][2], n12 = s[i][1] - s[i][2];                                      \
                T p34 = s[i][3] + s[i][4], n34 = s[i][3] - s[i][4];                                      \
                out[i][4 * k] = s[i][0] + p12 + p34 + bias;                                              \
                out[i][4 * k + 1] = n12 + 2 * n34 + bias;                                                \
                out[i][4 * k + 2] = p12 + 4 * p34 + bias;                                                \
                out[i][4 * k + 3] = n12 + 8 * n34 + s[i][5] + bias;                                      \
            }                                                                                            \
        }                                                                                                \
        for (int i = 0; i < rows; i++) memcpy(dst + (ptrdiff_t)i * ow, out[i], sizeof(T) * width);     \
        }                                                                                                    \
                                                                                                         \
    /* E[xi * stride + k] = (A4 e_k A4^T)[xi] for the `tiles` 4x4 tiles e_k of dY whose top-left pixel  \
     * is (r0, c0 + 4k) of the (height x width) plane `src` (the F(3x3, 4x4) weight gradient); pixels    \
     * beyond the plane read as zero. A4 = (A4^T)^T turns (a, b, c, d) into                              \
     * (a, a + b + c + d, a - b + c - d, a + 2b + 4c + 8d, a - 2b + 4c - 8d, d). */                        \
    MINICNN_CLONES static void minicnn_wino4_grad_##SUFFIX(const T *src, int height, int width, int r0,    \
                                                            int c0, int tiles, T *e, ptrdiff_t stride)    \
    {                                                                                                    \
        T row[4][4 * MINICNN_WINO_MAX_TILES];                                                           \
        int span = 4 * tiles;                                                                           \
        minicnn_wino_rows_##SUFFIX(src, height, width, r0, c0, 4, span, &row[0][0], 4 * MINICNN_WINO_MAX_TILES);\
        MINICNN_WINO_IVDEP                                                                               \
        for (int k = 0; k < tiles; k++) {                                                                \
            T t[6][4]; /* t = A4 e, column by column */                                                  \
            for (int j = 0; j < 4; j++) {                                                                \
                T a = row[0][4 * k + j], b = row[1][4 * k + j], c = row[2][4 * k + j], d = row[3][4 * k + j]; \
                t[0][j] = a; t[1][j] = a + b + c + d; t[2][j] = a - b + c - d;                           \
                t[3][j] = a + 2 * b + 4 * c + 8 * d; t[4][j] = a - 2 * b + 4 * c - 8 * d; t[5][j] = d;   \
            }                                                                                            \
            for (int i = 0; i < 6; i++) { /* (A4 e) A4^T, row by row */                                  \
                T a = t[i][0], b = t[i][1], c = t[i][2], d = t[i][3];                                    \
                T *ei = e + (ptrdiff_t)(6 * i) * stride + k;                                             \
                ei[0] = a; ei[stride] = a + b + c + d; ei[2 * stride] = a - b + c - d;                   \
                ei[3 * stride] = a + 2 * b + 4 * c + 8 * d; ei[4 * stride] = a - 2 * b + 4 * c - 8 * d;  \
                ei[5 * stride] = d;                                                                      \
            }                                                                                            \
        }                                                                                                \
    }

MINICNN_WINO4_DEFINE(float, f32)
MINICNN_WINO4_DEFINE(double, f64)

#endif
