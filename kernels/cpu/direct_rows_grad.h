/* Weight gradient of a convolution with few output channels (LeNet's C1), vectorised along output rows.
 *
 * The formula (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2: the gradient
 * of a filter is the correlation of the layer's input with its error):
 *
 *     dW[o, c, p, q] = sum_n sum_{i,j} dY[n, o, i, j] * X[n, c, i + p, j + q]
 *     db[o]          = sum_n sum_{i,j} dY[n, o, i, j]
 *
 * direct_conv.h puts 16 OUTPUT CHANNELS in a vector's lanes; with 6 filters (C1) 10 of the 16 lanes
 * would idle. Here the lanes hold 16 neighbouring OUTPUT COLUMNS j instead: one row of dY is
 * contiguous in memory, and so is the row of X under tap (p, q) (it is the same row shifted by q,
 * an unaligned load). One multiply-add then does 16 terms of the sum over j:
 *
 *     acc[o][q] += dY[n, o, i, j0 : j0+16] * X[n, c, i + p, j0 + q : j0 + q + 16]
 *
 * and the 16 lanes of acc[o][q] are added together only once, at the end of a block of images.
 *
 * Register blocking. For one (c, p) a block of OB filters and QB taps keeps OB*QB accumulators in
 * registers; per 16 columns it loads OB rows of dY and QB shifted rows of X and does OB*QB
 * multiply-adds: every dY vector is used QB times, every X vector OB times. With OB = 3, QB = 5
 * that is 15 accumulators + 3 dY vectors + 1 X vector (+ 3 for db in one pass) = 22 of the 32
 * AVX-512 registers, and 8 loads for 15 multiply-adds. OB = 6 (all of C1's filters) would need 30
 * accumulators + the vectors and spill. 3 divides 6; a 5x5 filter is one QB block. float64 uses 8
 * lanes, so that one vector is still one register. That is the AVX-512 copy; the AVX2 copy has
 * one ymm per vector (8 floats, 4 doubles) and OB = 2: 10 accumulators + 2 dY + 1 X (+ 2 for db)
 * = 15 of its 16 registers, the baseline the same with xmm (4 floats, 2 doubles). The lane count
 * follows (minicnn_rows_grad_lanes_*(), rows_weight_grad_lanes() in Python).
 *
 * Loop order, outer to inner: c, p, filter block, tap block (each a pass over the block of
 * images), then image, row i, column vector j. The accumulators live across the whole pass, so
 * the horizontal sum and the store happen once per pass, not once per row or per image. The
 * pass with c = p = q0 = 0 reads every dY row of its filters and also sums them for db.
 *
 * Row tails: when OW is not a multiple of the lane count, the last vector of a row is shifted left
 * to end at the last column (OW - LANES), and its dY lanes that the previous vector already
 * covered are cleared with a bitwise mask (so they add exactly 0). Every load stays inside its
 * row: X is read up to column (OW - 1) + (KW - 1) = W - 1. This needs OW >= LANES (16 floats,
 * 8 doubles); the backend sends narrower layers to the im2col path (measured faster there).
 *
 * Determinism: the kernel WRITES the gradients of its block of images (not +=); the caller gives
 * each block its own buffer and sums them in block order, so the result depends neither on the
 * number of threads nor on which thread ran which block. The lanes are summed in a fixed order.
 *
 * Builds: one copy per instruction set, picked at run time (multiversion.h). Measured on AMD EPYC
 * Zen 5, 2 cores, one thread, medians of 21 alternating calls, C1's dW + db (64x1x32x32, 6x1x5x5):
 * AVX-512 0.16 ms (batch 256: 0.71), unchanged; im2col 0.80 ms. AVX2 (v3 build,
 * MINICNN_SINGLE_TARGET=x86-64-v3): 1.11 -> 0.34 ms (batch 256: 4.6 -> 1.37) against the AVX-512
 * blocking split into ymm halves; tried: OB = 2 with the X vector pinned 0.34 / 1.31 ms, not
 * pinned 0.37 / 1.60, OB = 3 pinned 0.33 / 1.48 (spills), OB = 3 not pinned 0.41 / 1.67.
 * Baseline 0.88 -> 0.42 ms. float64 (AVX2) 2.35 -> 0.44 ms. Other compilers get a stub; the
 * caller asks MINICNN_HAVE_ROWS_GRAD.
 */
#ifndef MINICNN_DIRECT_ROWS_GRAD_H
#define MINICNN_DIRECT_ROWS_GRAD_H

#include <stddef.h>

#define MINICNN_ROWS_OB 3 /* filters per register block, at most (AVX-512; 2 on AVX2) */
#define MINICNN_ROWS_QB 5 /* taps (kernel columns) per register block */

#if defined(__GNUC__) /* gcc and clang: vector extensions */
#define MINICNN_HAVE_ROWS_GRAD 1

#include "multiversion.h"

/* One 64-byte vector: 16 floats or 8 doubles (one AVX-512 register), and the integers of its lane width. */
typedef float minicnn_rows_vf __attribute__((vector_size(64)));
typedef int minicnn_rows_vfi __attribute__((vector_size(64)));
typedef double minicnn_rows_vd __attribute__((vector_size(64)));
typedef long long minicnn_rows_vdi __attribute__((vector_size(64)));

/* Unaligned loads through memcpy: the compiler emits one vector load, with no aliasing or alignment assumption. */
#define MINICNN_ROWS_GRAD_LOAD(V, ptr) ({ V _v; __builtin_memcpy(&_v, (ptr), sizeof _v); _v; })

/* BLOCK: one pass for a block of OB filters x QB taps; OB and QB are constants at every call
 * (the switch in the driver), so after inlining the loops over them unroll and acc[][] lives in
 * registers.
 *   x:  X[n0, c, p, q0], rows x_row apart, images x_image apart;
 *   dy: dY[n0, o0, 0, 0], rows dy_row apart, channels dy_channel apart, images dy_image apart;
 *   dw: dW[o0, c, p, q0], filters dw_o apart (written);
 *   db: db[o0] (written), or NULL in the passes that do not sum db. */
#define MINICNN_DEFINE_ROWS_BLOCK(BLOCK, T, V, VI, LANES, KEEP)                                         \
    static inline __attribute__((always_inline)) void BLOCK(                                           \
        const T *x, ptrdiff_t x_image, ptrdiff_t x_row, const T *dy, ptrdiff_t dy_image,                \
        ptrdiff_t dy_row, ptrdiff_t dy_channel, ptrdiff_t images, ptrdiff_t OH, ptrdiff_t OW,          \
        ptrdiff_t full, ptrdiff_t tail, T *dw, ptrdiff_t dw_o, T *db, const int OB, const int QB)      \
    {                                                                                                   \
        V acc[MINICNN_ROWS_OB][MINICNN_ROWS_QB], bias[MINICNN_ROWS_OB];                                 \
        VI tail_mask; /* lane l of the tail vector is column tail + l: new (all bits set) when >= full */ \
        for (int l = 0; l < LANES; ++l)                                                                 \
            tail_mask[l] = tail + l >= full ? -1 : 0;                                                   \
        for (int o = 0; o < OB; ++o)                                                                    \
            for (int q = 0; q < QB; ++q)                                                                \
                acc[o][q] = (V){0};                                                                     \
        for (int o = 0; o < OB; ++o)                                                                    \
            bias[o] = (V){0};                                                                           \
        for (ptrdiff_t n = 0; n < images; ++n)                                                          \
            for (ptrdiff_t i = 0; i < OH; ++i) {                                                        \
                const T *xr = x + n * x_image + i * x_row;                                              \
                const T *g = dy + n * dy_image + i * dy_row;                                            \
                V d[MINICNN_ROWS_OB];                                                                   \
                for (ptrdiff_t j = 0; j + LANES <= OW; j += LANES) {                                    \
                    for (int o = 0; o < OB; ++o)                                                        \
                        d[o] = MINICNN_ROWS_GRAD_LOAD(V, g + o * dy_channel + j);                            \
                    if (db)                                                                             \
                        for (int o = 0; o < OB; ++o)                                                    \
                            bias[o] += d[o];                                                            \
                    for (int q = 0; q < QB; ++q) {                                                      \
                        V xv = MINICNN_ROWS_GRAD_LOAD(V, xr + j + q);                                        \
                        KEEP(xv);                                                                       \
                        for (int o = 0; o < OB; ++o)                                                    \
                            acc[o][q] += d[o] * xv;                                                     \
                    }                                                                                   \
                }                                                                                       \
                if (tail >= 0) { /* the last LANES columns, lanes already done masked to +0 */          \
                    for (int o = 0; o < OB; ++o)                                                        \
                        d[o] = (V)((VI)MINICNN_ROWS_GRAD_LOAD(V, g + o * dy_channel + tail) & tail_mask);    \
                    if (db)                                                                             \
                        for (int o = 0; o < OB; ++o)                                                    \
                            bias[o] += d[o];                                                            \
                    for (int q = 0; q < QB; ++q) {                                                      \
                        V xv = MINICNN_ROWS_GRAD_LOAD(V, xr + tail + q);                                     \
                        KEEP(xv);                                                                       \
                        for (int o = 0; o < OB; ++o)                                                    \
                            acc[o][q] += d[o] * xv;                                                     \
                    }                                                                                   \
                }                                                                                       \
            }                                                                                           \
        for (int o = 0; o < OB; ++o)                                                                    \
            for (int q = 0; q < QB; ++q) {                                                              \
                T s = 0; /* lanes in a fixed order */                                                   \
                for (int l = 0; l < LANES; ++l)                                                         \
                    s += acc[o][q][l];                                                                  \
                dw[o * dw_o + q] = s;                                                                   \
            }                                                                                           \
        if (db)                                                                                         \
            for (int o = 0; o < OB; ++o) {                                                              \
                T s = 0;                                                                                \
                for (int l = 0; l < LANES; ++l)                                                         \
                    s += bias[o][l];                                                                    \
                db[o] = s;                                                                              \
            }                                                                                           \
    }

/* The driver: dw[((o*C + c)*KH + p)*KW + q] and db[o] for `images` contiguous images
 * x (images, C, H, W) and dy (images, O, H - KH + 1, W - KW + 1), W - KW + 1 >= LANES. */
#define MINICNN_DEFINE_ROWS_DRIVER(NAME, BLOCK, ATTR, T, LANES, OBMAX)                                  \
    ATTR static void NAME(const T *x, const T *dy, ptrdiff_t images, ptrdiff_t C, ptrdiff_t H,          \
                          ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW, T *dw, T *db)           \
    {                                                                                                   \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                               \
        const ptrdiff_t x_image = C * H * W, x_row = W, x_channel = H * W;                              \
        const ptrdiff_t dy_image = O * OH * OW, dy_row = OW, dy_channel = OH * OW, dw_o = C * KH * KW;  \
        const ptrdiff_t full = OW / LANES * LANES;                                                      \
        const ptrdiff_t tail = full < OW ? OW - LANES : -1;                                             \
        for (ptrdiff_t c = 0; c < C; ++c)                                                               \
            for (ptrdiff_t p = 0; p < KH; ++p)                                                          \
                for (ptrdiff_t o0 = 0; o0 < O; o0 += (OBMAX))                                           \
                    for (ptrdiff_t q0 = 0; q0 < KW; q0 += MINICNN_ROWS_QB) {                            \
                        const int ob = O - o0 < (OBMAX) ? (int)(O - o0) : (OBMAX);                      \
                        const int qb = KW - q0 < MINICNN_ROWS_QB ? (int)(KW - q0) : MINICNN_ROWS_QB;    \
                        const T *xs = x + c * x_channel + p * x_row + q0;                               \
                        const T *gs = dy + o0 * dy_channel;                                             \
                        T *ds = dw + ((o0 * C + c) * KH + p) * KW + q0;                                 \
                        T *bs = c == 0 && p == 0 && q0 == 0 ? db + o0 : NULL;                           \
                        switch (ob * 8 + qb) {                                                          \
                            MINICNN_ROWS_CASES(BLOCK)                                                   \
                        }                                                                               \
                    }                                                                                   \
    }

#define MINICNN_ROWS_CASE(BLOCK, OBV, QBV)                                                               \
    case OBV * 8 + QBV:                                                                                  \
        BLOCK(xs, x_image, x_row, gs, dy_image, dy_row, dy_channel, images, OH, OW, full, tail, ds, dw_o,  \
              bs, OBV, QBV);                                                                             \
        break;
#define MINICNN_ROWS_CASES_OB(NAME, OBV)                                                                 \
    MINICNN_ROWS_CASE(NAME, OBV, 1) MINICNN_ROWS_CASE(NAME, OBV, 2) MINICNN_ROWS_CASE(NAME, OBV, 3)      \
    MINICNN_ROWS_CASE(NAME, OBV, 4) MINICNN_ROWS_CASE(NAME, OBV, 5)
#define MINICNN_ROWS_CASES(NAME) \
    MINICNN_ROWS_CASES_OB(NAME, 1) MINICNN_ROWS_CASES_OB(NAME, 2) MINICNN_ROWS_CASES_OB(NAME, 3)

/* The copies per level. The AVX-512 copy pins each shifted X vector in a register
 * (MINICNN_ROWS_KEEP, an empty asm statement): left alone, gcc 12 folds that load into each of the
 * OB multiply-adds that use it, 18 loads for 15 multiply-adds instead of 8, and on a core that
 * loads one 64-byte vector per cycle (AMD Zen 4) the loads, not the multiply-adds, set the pace:
 * 0.99 against 0.62 ms for C1's weight gradient at batch 256 there. The AVX2 copy has 32-byte
 * vectors (8 floats, 4 doubles: one ymm register each) and OB = 2 filters x QB = 5 taps:
 * 10 accumulators + 2 dY + 1 X (+ 2 for db) = 15 of the 16 registers; the baseline copy the same
 * with 16-byte vectors (xmm; NEON on aarch64). */
#define MINICNN_ROWS_NO_KEEP(v) ((void)0)
#define MINICNN_ROWS_KEEP_ZMM(v) __asm__("" : "+v"(v))
#define MINICNN_ROWS_KEEP_YMM(v) __asm__("" : "+x"(v))
#ifndef MINICNN_ROWS_FIT_OB /* filters per block of the AVX2 and baseline copies */
#define MINICNN_ROWS_FIT_OB 2
#endif
#ifndef MINICNN_ROWS_V3_KEEP
#define MINICNN_ROWS_V3_KEEP MINICNN_ROWS_KEEP_YMM
#endif

typedef float minicnn_rows_vf8 __attribute__((vector_size(32)));
typedef int minicnn_rows_vfi8 __attribute__((vector_size(32)));
typedef double minicnn_rows_vd4 __attribute__((vector_size(32)));
typedef long long minicnn_rows_vdi4 __attribute__((vector_size(32)));
typedef float minicnn_rows_vf4 __attribute__((vector_size(16)));
typedef int minicnn_rows_vfi4 __attribute__((vector_size(16)));
typedef double minicnn_rows_vd2 __attribute__((vector_size(16)));
typedef long long minicnn_rows_vdi2 __attribute__((vector_size(16)));

#define MINICNN_ROWS_GRAD_DEF(F, A, T, V, VI, LANES, OBMAX, KEEP) \
    MINICNN_DEFINE_ROWS_BLOCK(F##_block, T, V, VI, LANES, KEEP)   \
    MINICNN_DEFINE_ROWS_DRIVER(F, F##_block, A, T, LANES, OBMAX)
#define MINICNN_ROWSG_f32_V4(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, float, minicnn_rows_vf, minicnn_rows_vfi, 16, 3, MINICNN_ROWS_KEEP_ZMM)
#define MINICNN_ROWSG_f64_V4(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, double, minicnn_rows_vd, minicnn_rows_vdi, 8, 3, MINICNN_ROWS_KEEP_ZMM)
#define MINICNN_ROWSG_f32_V3(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, float, minicnn_rows_vf8, minicnn_rows_vfi8, 8, MINICNN_ROWS_FIT_OB, MINICNN_ROWS_V3_KEEP)
#define MINICNN_ROWSG_f64_V3(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, double, minicnn_rows_vd4, minicnn_rows_vdi4, 4, MINICNN_ROWS_FIT_OB, MINICNN_ROWS_V3_KEEP)
#define MINICNN_ROWSG_f32_BASE(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, float, minicnn_rows_vf4, minicnn_rows_vfi4, 4, MINICNN_ROWS_FIT_OB, MINICNN_ROWS_NO_KEEP)
#define MINICNN_ROWSG_f64_BASE(F, A) \
    MINICNN_ROWS_GRAD_DEF(F, A, double, minicnn_rows_vd2, minicnn_rows_vdi2, 2, MINICNN_ROWS_FIT_OB, MINICNN_ROWS_NO_KEEP)
#define MINICNN_ROWSG_f32(F, A, LEVEL) MINICNN_ROWSG_f32_##LEVEL(F, A)
#define MINICNN_ROWSG_f64(F, A, LEVEL) MINICNN_ROWSG_f64_##LEVEL(F, A)

/* Output columns per vector (the kernel needs W_out >= this): 16 / 8 / 4 floats, 8 / 4 / 2 doubles. */
static inline ptrdiff_t minicnn_rows_grad_lanes_f32(void) { return MINICNN_BY_ISA(16, 8, 4); }
static inline ptrdiff_t minicnn_rows_grad_lanes_f64(void) { return MINICNN_BY_ISA(8, 4, 2); }

#define MINICNN_ROWSG_PARAMS(T)                                                                         \
    (const T *x, const T *dy, ptrdiff_t images, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t O,     \
     ptrdiff_t KH, ptrdiff_t KW, T *dw, T *db)
#define MINICNN_ROWSG_ARGS (x, dy, images, C, H, W, O, KH, KW, dw, db)
MINICNN_INSTANTIATE(MINICNN_ROWSG_f32, minicnn_rows_weight_grad_f32, MINICNN_ROWSG_PARAMS(float), MINICNN_ROWSG_ARGS)
MINICNN_INSTANTIATE(MINICNN_ROWSG_f64, minicnn_rows_weight_grad_f64, MINICNN_ROWSG_PARAMS(double), MINICNN_ROWSG_ARGS)

#else /* other compilers: no row kernel; the caller asks MINICNN_HAVE_ROWS_GRAD first */
#define MINICNN_HAVE_ROWS_GRAD 0
#define MINICNN_ROWS_GRAD_STUB(NAME, T)                                                                      \
    static void NAME(const T *x, const T *dy, ptrdiff_t images, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,   \
                     ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW, T *dw, T *db)                              \
    {                                                                                                   \
        (void)x; (void)dy; (void)images; (void)C; (void)H; (void)W; (void)O; (void)KH; (void)KW;        \
        (void)dw; (void)db;                                                                             \
    }
MINICNN_ROWS_GRAD_STUB(minicnn_rows_weight_grad_f32, float)
MINICNN_ROWS_GRAD_STUB(minicnn_rows_weight_grad_f64, double)
static inline ptrdiff_t minicnn_rows_grad_lanes_f32(void) { return 16; }
static inline ptrdiff_t minicnn_rows_grad_lanes_f64(void) { return 8; }
#endif

#endif
