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
 * The compiler vectorises the 16-lane loops; gcc builds one copy per
 * instruction set (AVX-512, AVX2 + FMA, baseline) and picks one at run time.
 * Only stride 1, no padding, no dilation, one group, C_out a multiple of 16
 * and output rows of at least 4 pixels; the caller checks.
 */
#ifndef MINICNN_DIRECT_CONV_H
#define MINICNN_DIRECT_CONV_H

#include <stddef.h>

#if defined(__GNUC__) /* gcc and clang: vector extensions and statement expressions */
#define MINICNN_HAVE_DIRECT 1

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define MINICNN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MINICNN_MULTIVERSION
#endif

#define MINICNN_LANES 16
#define MINICNN_PIXELS 4

/* 16 lanes of T as one value: gcc maps it to one AVX-512 register, two AVX2 or four SSE ones. */
typedef float minicnn_v16f __attribute__((vector_size(16 * sizeof(float))));
typedef double minicnn_v16d __attribute__((vector_size(16 * sizeof(double))));

#define MINICNN_LOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })
#define MINICNN_STORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))

/* y_t[(i*OW + j)*O + o] = sum_{c,p,q} w_t[((c*KH + p)*KW + q)*O + o] * x[(c*H + i + p)*W + j + q]
 * for one image; w_t is the weight with the tap index first (K x O). */
#define MINICNN_DEFINE_DIRECT_FORWARD(NAME, T, V)                                                     \
    MINICNN_MULTIVERSION static void NAME(const T *x, const T *w_t, T *y_t, ptrdiff_t C, ptrdiff_t H, \
                                          ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += MINICNN_LANES)                                           \
            for (ptrdiff_t i = 0; i < OH; ++i)                                                        \
                for (ptrdiff_t j0 = 0; j0 < OW; j0 += MINICNN_PIXELS) {                               \
                    const ptrdiff_t nb = OW - j0 < MINICNN_PIXELS ? OW - j0 : MINICNN_PIXELS;         \
                    /* the last block of a row shifts left to end at the last column (needs OW >= 4); \
                       outputs it computes twice get the same value twice */                          \
                    const ptrdiff_t shift = nb < MINICNN_PIXELS ? nb - MINICNN_PIXELS : 0;            \
                    V a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};                                         \
                    for (ptrdiff_t c = 0; c < C; ++c)                                                 \
                        for (ptrdiff_t p = 0; p < KH; ++p) {                                          \
                            const T *row = x + (c * H + i + p) * W + j0 + shift;                      \
                            const T *wk = w_t + ((c * KH + p) * KW) * O + o0;                         \
                            for (ptrdiff_t q = 0; q < KW; ++q, wk += O) {                             \
                                const V wv = MINICNN_LOAD(V, wk);                                     \
                                a0 += wv * row[q];                                                    \
                                a1 += wv * row[q + 1];                                                \
                                a2 += wv * row[q + 2];                                                \
                                a3 += wv * row[q + 3];                                                \
                            }                                                                         \
                        }                                                                             \
                    T *out = y_t + (i * OW + j0 + shift) * O + o0;                                    \
                    MINICNN_STORE(out, a0);                                                           \
                    MINICNN_STORE(out + O, a1);                                                       \
                    MINICNN_STORE(out + 2 * O, a2);                                                   \
                    MINICNN_STORE(out + 3 * O, a3);                                                   \
                }                                                                                     \
    }

/* dw_t[((c*KH + p)*KW + q)*O + o] += sum_{i,j} x[(c*H + i + p)*W + j + q] * dy_t[(i*OW + j)*O + o]
 * for one image; dy_t is the output gradient with the pixel index first (P x O). */
#define MINICNN_DEFINE_DIRECT_WEIGHT_GRAD(NAME, T, V)                                                 \
    MINICNN_MULTIVERSION static void NAME(const T *x, const T *dy_t, T *dw_t, ptrdiff_t C, ptrdiff_t H, \
                                          ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        for (ptrdiff_t o0 = 0; o0 < O; o0 += MINICNN_LANES)                                           \
            for (ptrdiff_t c = 0; c < C; ++c)                                                         \
                for (ptrdiff_t p = 0; p < KH; ++p)                                                    \
                    for (ptrdiff_t q = 0; q < KW; ++q) {                                              \
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
                        V sum = MINICNN_LOAD(V, dst) + a0 + a1;                                       \
                        MINICNN_STORE(dst, sum);                                                      \
                    }                                                                                 \
    }

MINICNN_DEFINE_DIRECT_FORWARD(minicnn_direct_forward_f32, float, minicnn_v16f)
MINICNN_DEFINE_DIRECT_FORWARD(minicnn_direct_forward_f64, double, minicnn_v16d)
MINICNN_DEFINE_DIRECT_WEIGHT_GRAD(minicnn_direct_weight_grad_f32, float, minicnn_v16f)
MINICNN_DEFINE_DIRECT_WEIGHT_GRAD(minicnn_direct_weight_grad_f64, double, minicnn_v16d)

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
