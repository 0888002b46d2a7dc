/* Convolution gradients with the BATCH in the vector lanes: 16 images per vector (8 in float64).
 *
 * Why. The other kernels put output channels (direct_conv.h) or output columns (direct_rows.h)
 * in the lanes, so they waste lanes whenever the layer's sizes are not multiples of 16: LeNet's
 * C3 input gradient has 6 "output" channels and 14-pixel rows, and its "full" correlation needs
 * a zero border that costs the row kernel 42% of its multiply-adds. The image index, though, is
 * a dimension every layer has, and every image runs the same arithmetic. For a group of 16 images
 * n0..n0+15 we copy the arrays with the image as the innermost axis,
 *
 *     dyL[o][i][j][l] = dY[n0 + l, o, i, j]        xL[c][h][w][l] = X[n0 + l, c, h, w]
 *
 * (a transposition of 16 small images; lanes past the end of the batch are zeros), and then
 * every formula of the slides holds lane by lane: one vector multiply-add does the same term for
 * 16 images, whatever the map size, the channel count or the border. No lane is ever idle
 * (except in a last, partial group) and no multiply-add is spent on a zero border.
 *
 * Input gradient (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2; deck
 * 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES"):
 *
 *     dxL[c][y][x] = sum_{o, p, q valid} W[o, c, p, q] * dyL[o][y - p][x - q]
 *
 * with the exact tap bounds 0 <= y - p < OH, 0 <= x - q < OW for each output pixel (y, x).
 * Blocking: one pixel, a block of CB input channels (all of C3's 6): each dyL vector loaded feeds
 * CB multiply-adds whose other factor is a weight broadcast from memory; the weights are laid out
 * wL[o][p][q][c] so the CB broadcasts of one tap are contiguous (gcc folds each into the FMA,
 * vfmadd231ps zmm, zmm, [mem]{1to16}). CB accumulators are independent chains (6 for C3; an FMA
 * takes 4 cycles, one 512-bit FMA starts per cycle on Zen 4, so 4+ chains keep it busy).
 * Loop order: pixel (y, x), channel block, then o, p, q: the accumulators stay in registers for
 * the whole sum and each dxL value is written once.
 *
 * Weight gradient (the same deck 002 formula for the filter, and deck 003):
 *
 *     dW[o, c, p, q] = sum_l sum_{i, j} dyL[o][i][j][l] * xL[c][i + p][j + q][l]
 *     db[o]          = sum_l sum_{i, j} dyL[o][i][j][l]
 *
 * Blocking: for one (c, p), OB = 4 filters x QB = 5 taps (all of a 5-wide kernel row) = 20 vector
 * accumulators; per pixel (i, j) it loads 4 dyL vectors and 5 xL vectors for 20 multiply-adds,
 * 29 of the 32 AVX-512 registers. The 16 lanes (16 images) of an accumulator are added together
 * once per group, after the sum over all (i, j). Loop order: filter block, c, p, tap block, then
 * i, j, so the 4 filters' dyL planes (25 KB for C3) stay in the L1 cache over all (c, p).
 *
 * Determinism: the weight-gradient function WRITES the sums of its group (not +=); the caller
 * gives each group of 16 images its own row and adds the rows in group order, so the result is
 * the same bit for bit for any number of threads. Lanes are added in a fixed order (halving).
 *
 * float64: 8 lanes (groups of 8 images), so one vector is still one 64-byte register and the same
 * blocking fits the register file.
 *
 * Copies per instruction set, picked at run time (multiversion.h): a group is one register of
 * the level, 16 / 8 / 4 floats (8 / 4 / 2 doubles) on AVX-512 / AVX2 / baseline
 * (minicnn_lanes_group_*(), lanes_group() in Python). dX keeps its blocking (up to 8 channel
 * accumulators, + 1 dyL vector + 1 broadcast weight on AVX2); dW takes 2 filters x 5 taps = 10
 * accumulators + 2 dyL + 1 xL on AVX2 and the baseline (20 would spill). Measured on AMD EPYC
 * Zen 5, 2 cores, one thread, medians of 21 alternating calls, C3 (64x6x14x14, 16x6x5x5):
 * AVX-512 dX + dW 0.50 ms (batch 256: 1.9), unchanged; im2col 1.46 ms. AVX2 (v3 build,
 * MINICNN_SINGLE_TARGET=x86-64-v3; before: the 16-float vectors split into ymm halves): dX + dW
 * 3.45 -> 0.89 ms (batch 256: 13.6 -> 3.45), dX 2.09 -> 0.52, dW 1.33 -> 0.44 (2 filters; 3: 0.51,
 * 1: 0.50). Baseline 2.50 -> 1.84 ms. float64 (AVX2) 6.8 -> 1.7 ms.
 * Other compilers get stubs (MINICNN_LANES_HAVE_KERNELS 0) and the caller never routes work
 * here. Stride 1, no padding, no dilation, one group only.
 */
#ifndef MINICNN_BATCH_LANES_H
#define MINICNN_BATCH_LANES_H

#include <stddef.h>

#define MINICNN_LANES_CB 8 /* input channels per dX block, at most */
#define MINICNN_LANES_OB 4 /* filters per dW block of the AVX-512 copy (2 on AVX2 and the baseline) */
#define MINICNN_LANES_QB 5 /* taps per dW block, at most */

/* Lane transposition, plain C (no vector types needed).
 * pack:   dst[k * L + l] = src[l * plane + k] for l < count, 0 for count <= l < L, 0 <= k < plane
 * unpack: dst[l * plane + k] = src[k * L + l] for l < count */
#define MINICNN_LANES_DEFINE_PACK(NAME, T, L)                                                         \
    static void NAME(const T *src, ptrdiff_t count, ptrdiff_t plane, T *dst)                          \
    {                                                                                                 \
        for (ptrdiff_t k0 = 0; k0 < plane; k0 += 16) {                                                \
            const ptrdiff_t kn = plane - k0 < 16 ? plane - k0 : 16;                                   \
            for (ptrdiff_t l = 0; l < count; ++l) {                                                   \
                const T *s = src + l * plane + k0;                                                    \
                for (ptrdiff_t k = 0; k < kn; ++k)                                                    \
                    dst[(k0 + k) * (L) + l] = s[k];                                                   \
            }                                                                                         \
            for (ptrdiff_t l = count; l < (L); ++l)                                                   \
                for (ptrdiff_t k = 0; k < kn; ++k)                                                    \
                    dst[(k0 + k) * (L) + l] = 0;                                                      \
        }                                                                                             \
    }

#define MINICNN_LANES_DEFINE_UNPACK(NAME, T, L)                                                       \
    static void NAME(const T *src, ptrdiff_t count, ptrdiff_t plane, T *dst)                          \
    {                                                                                                 \
        for (ptrdiff_t k0 = 0; k0 < plane; k0 += 16) {                                                \
            const ptrdiff_t kn = plane - k0 < 16 ? plane - k0 : 16;                                   \
            for (ptrdiff_t l = 0; l < count; ++l) {                                                   \
                T *d = dst + l * plane + k0;                                                          \
                for (ptrdiff_t k = 0; k < kn; ++k)                                                    \
                    d[k] = src[(k0 + k) * (L) + l];                                                   \
            }                                                                                         \
        }                                                                                             \
    }

#include "multiversion.h"

/* Images per vector (per group): 16 / 8 / 4 floats and 8 / 4 / 2 doubles on AVX-512 / AVX2 /
 * baseline, one register of the level either way. */
static inline ptrdiff_t minicnn_lanes_group_f32(void) { return MINICNN_BY_ISA(16, 8, 4); }
static inline ptrdiff_t minicnn_lanes_group_f64(void) { return MINICNN_BY_ISA(8, 4, 2); }

MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f32_16, float, 16)
MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f32_8, float, 8)
MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f32_4, float, 4)
MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f64_8, double, 8)
MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f64_4, double, 4)
MINICNN_LANES_DEFINE_PACK(minicnn_lanes_pack_f64_2, double, 2)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f32_16, float, 16)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f32_8, float, 8)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f32_4, float, 4)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f64_8, double, 8)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f64_4, double, 4)
MINICNN_LANES_DEFINE_UNPACK(minicnn_lanes_unpack_f64_2, double, 2)

/* The transposition for this level's group size. */
#define MINICNN_LANES_DEFINE_BY_GROUP(NAME, T, GROUP, L4, L3, LB)                                     \
    static void NAME(const T *src, ptrdiff_t count, ptrdiff_t plane, T *dst)                          \
    {                                                                                                 \
        switch (GROUP()) {                                                                            \
        case L4: NAME##_##L4(src, count, plane, dst); return;                                         \
        case L3: NAME##_##L3(src, count, plane, dst); return;                                         \
        default: NAME##_##LB(src, count, plane, dst); return;                                         \
        }                                                                                             \
    }
MINICNN_LANES_DEFINE_BY_GROUP(minicnn_lanes_pack_f32, float, minicnn_lanes_group_f32, 16, 8, 4)
MINICNN_LANES_DEFINE_BY_GROUP(minicnn_lanes_pack_f64, double, minicnn_lanes_group_f64, 8, 4, 2)
MINICNN_LANES_DEFINE_BY_GROUP(minicnn_lanes_unpack_f32, float, minicnn_lanes_group_f32, 16, 8, 4)
MINICNN_LANES_DEFINE_BY_GROUP(minicnn_lanes_unpack_f64, double, minicnn_lanes_group_f64, 8, 4, 2)

#if defined(__GNUC__) /* gcc and clang: vector extensions and statement expressions */
#define MINICNN_LANES_HAVE_KERNELS 1

/* One 64-byte vector: 16 floats or 8 doubles (one AVX-512 register); 32 bytes: one AVX2 register,
 * 16 bytes: one SSE2 / NEON register. */
typedef float minicnn_lanes_vf __attribute__((vector_size(64)));
typedef double minicnn_lanes_vd __attribute__((vector_size(64)));
typedef float minicnn_lanes_vf8 __attribute__((vector_size(32)));
typedef float minicnn_lanes_vf4 __attribute__((vector_size(16)));
typedef double minicnn_lanes_vd4 __attribute__((vector_size(32)));
typedef double minicnn_lanes_vd2 __attribute__((vector_size(16)));

#define MINICNN_LANES_LOAD(V, ptr) ({ V _lv; __builtin_memcpy(&_lv, (ptr), sizeof _lv); _lv; })
#define MINICNN_LANES_STORE(ptr, v) __builtin_memcpy((ptr), &(v), sizeof(v))

/* Sum of the lanes, by halving (a fixed order): 16 -> 8 -> 4 -> 2 -> 1. Macros, not functions, so
 * that no vector crosses a call boundary (whose ABI would depend on the instruction set). */
#define MINICNN_LANES_HSUM_F32_16(v)                                                                  \
    ({                                                                                                \
        const minicnn_lanes_vf _v = (v);                                                              \
        minicnn_lanes_vf8 _a = __builtin_shufflevector(_v, _v, 0, 1, 2, 3, 4, 5, 6, 7) +              \
                               __builtin_shufflevector(_v, _v, 8, 9, 10, 11, 12, 13, 14, 15);         \
        minicnn_lanes_vf4 _b = __builtin_shufflevector(_a, _a, 0, 1, 2, 3) +                          \
                               __builtin_shufflevector(_a, _a, 4, 5, 6, 7);                           \
        (_b[0] + _b[2]) + (_b[1] + _b[3]);                                                            \
    })
#define MINICNN_LANES_HSUM_F64_8(v)                                                                   \
    ({                                                                                                \
        const minicnn_lanes_vd _v = (v);                                                              \
        minicnn_lanes_vd4 _a = __builtin_shufflevector(_v, _v, 0, 1, 2, 3) +                          \
                               __builtin_shufflevector(_v, _v, 4, 5, 6, 7);                           \
        minicnn_lanes_vd2 _b = __builtin_shufflevector(_a, _a, 0, 1) + __builtin_shufflevector(_a, _a, 2, 3); \
        _b[0] + _b[1];                                                                                \
    })

/* ---- input gradient ----
 * One pixel (y, x) of dxL for input channels c0..c0+CB-1 (CB a constant: acc[] in registers). */
#define MINICNN_LANES_DX_PIXEL(T, V, L, CB)                                                           \
    do {                                                                                              \
        V acc[CB];                                                                                    \
        for (int b = 0; b < (CB); ++b)                                                                \
            acc[b] = (V){0};                                                                          \
        for (ptrdiff_t o = 0; o < O; ++o)                                                             \
            for (ptrdiff_t p = p_lo; p < p_hi; ++p) {                                                 \
                const T *d = dyL + ((o * OH + y - p) * OW + x - q_lo) * (L);                          \
                const T *wk = wL + ((o * KH + p) * KW + q_lo) * C + c0;                               \
                for (ptrdiff_t q = q_lo; q < q_hi; ++q, d -= (L), wk += C) {                          \
                    const V dv = MINICNN_LANES_LOAD(V, d);                                            \
                    for (int b = 0; b < (CB); ++b)                                                    \
                        acc[b] += dv * wk[b];                                                         \
                }                                                                                     \
            }                                                                                         \
        for (int b = 0; b < (CB); ++b)                                                                \
            MINICNN_LANES_STORE(dxL + (((c0 + b) * H + y) * W + x) * (L), acc[b]);                    \
    } while (0)

/* dxL[c][y][x][:] = sum_{o,p,q valid} wL[((o*KH + p)*KW + q)*C + c] * dyL[o][y-p][x-q][:]
 * for 0 <= c < C, 0 <= y < H = OH + KH - 1, 0 <= x < W = OW + KW - 1. Channels go in
 * ceil(C / 8) blocks of nearly equal size (1..8 each). */
#define MINICNN_LANES_DEFINE_INPUT_GRAD(NAME, ATTR, T, V, L)                                          \
    ATTR static void NAME(const T *dyL, const T *wL, T *dxL, ptrdiff_t C,       \
                                                ptrdiff_t H, ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH,  \
                                                ptrdiff_t KW)                                         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        const ptrdiff_t blocks = (C + MINICNN_LANES_CB - 1) / MINICNN_LANES_CB;                       \
        for (ptrdiff_t y = 0; y < H; ++y) {                                                           \
            const ptrdiff_t p_lo = y - OH + 1 > 0 ? y - OH + 1 : 0;                                   \
            const ptrdiff_t p_hi = y + 1 < KH ? y + 1 : KH;                                           \
            for (ptrdiff_t x = 0; x < W; ++x) {                                                       \
                const ptrdiff_t q_lo = x - OW + 1 > 0 ? x - OW + 1 : 0;                               \
                const ptrdiff_t q_hi = x + 1 < KW ? x + 1 : KW;                                       \
                for (ptrdiff_t blk = 0; blk < blocks; ++blk) {                                        \
                    const ptrdiff_t c0 = C * blk / blocks, cb = C * (blk + 1) / blocks - c0;          \
                    switch (cb) {                                                                     \
                    case 1: MINICNN_LANES_DX_PIXEL(T, V, L, 1); break;                                \
                    case 2: MINICNN_LANES_DX_PIXEL(T, V, L, 2); break;                                \
                    case 3: MINICNN_LANES_DX_PIXEL(T, V, L, 3); break;                                \
                    case 4: MINICNN_LANES_DX_PIXEL(T, V, L, 4); break;                                \
                    case 5: MINICNN_LANES_DX_PIXEL(T, V, L, 5); break;                                \
                    case 6: MINICNN_LANES_DX_PIXEL(T, V, L, 6); break;                                \
                    case 7: MINICNN_LANES_DX_PIXEL(T, V, L, 7); break;                                \
                    default: MINICNN_LANES_DX_PIXEL(T, V, L, 8); break;                               \
                    }                                                                                 \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    }

/* ---- weight gradient ----
 * One block: filters o0..o0+OB-1, channel c, kernel row p, taps q0..q0+QB-1 (OB, QB constants). */
#define MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, QB)                                                  \
    do {                                                                                              \
        V acc[OB][QB];                                                                                \
        for (int b = 0; b < (OB); ++b)                                                                \
            for (int t = 0; t < (QB); ++t)                                                            \
                acc[b][t] = (V){0};                                                                   \
        for (ptrdiff_t i = 0; i < OH; ++i) {                                                          \
            const T *g = dyL + ((o0 * OH + i) * OW) * (L);                                            \
            const T *xr = xL + ((c * H + i + p) * W + q0) * (L);                                      \
            for (ptrdiff_t j = 0; j < OW; ++j, g += (L), xr += (L)) {                                 \
                V gv[OB];                                                                             \
                for (int b = 0; b < (OB); ++b)                                                        \
                    gv[b] = MINICNN_LANES_LOAD(V, g + b * plane_o);                                   \
                for (int t = 0; t < (QB); ++t) {                                                      \
                    const V xv = MINICNN_LANES_LOAD(V, xr + t * (L));                                 \
                    for (int b = 0; b < (OB); ++b)                                                    \
                        acc[b][t] += gv[b] * xv;                                                      \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
        for (int b = 0; b < (OB); ++b)                                                                \
            for (int t = 0; t < (QB); ++t)                                                            \
                dw[(((o0 + b) * C + c) * KH + p) * KW + q0 + t] = HSUM(acc[b][t]);                     \
    } while (0)

#define MINICNN_LANES_DW_TAPS(T, V, L, HSUM, OB)                                                      \
    do {                                                                                              \
        switch (qb) {                                                                                 \
        case 1: MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, 1); break;                                   \
        case 2: MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, 2); break;                                   \
        case 3: MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, 3); break;                                   \
        case 4: MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, 4); break;                                   \
        default: MINICNN_LANES_DW_TILE(T, V, L, HSUM, OB, 5); break;                                  \
        }                                                                                             \
    } while (0)

/* dw[((o*C + c)*KH + p)*KW + q] = sum of the lanes of sum_{i,j} dyL[o][i][j] * xL[c][i+p][j+q];
 * db[o] = sum of the lanes of sum_{i,j} dyL[o][i][j]. Written, not accumulated. Filters go in
 * blocks of 4, then 2, then 1; taps in blocks of 5 (the last one shorter). */
#define MINICNN_LANES_DEFINE_WEIGHT_GRAD(NAME, ATTR, T, V, L, HSUM, OBMAX)                            \
    ATTR static void NAME(const T *xL, const T *dyL, T *dw, T *db, ptrdiff_t C, \
                                                ptrdiff_t H, ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH,  \
                                                ptrdiff_t KW)                                         \
    {                                                                                                 \
        const ptrdiff_t OH = H - KH + 1, OW = W - KW + 1;                                             \
        const ptrdiff_t plane_o = OH * OW * (L);                                                      \
        ptrdiff_t o0 = 0;                                                                             \
        while (o0 < O) {                                                                              \
            const ptrdiff_t ob = O - o0 >= (OBMAX) ? (OBMAX) : (O - o0 >= 2 ? 2 : 1);                 \
            for (ptrdiff_t c = 0; c < C; ++c)                                                         \
                for (ptrdiff_t p = 0; p < KH; ++p)                                                    \
                    for (ptrdiff_t q0 = 0; q0 < KW; q0 += MINICNN_LANES_QB) {                         \
                        const ptrdiff_t qb = KW - q0 < MINICNN_LANES_QB ? KW - q0 : MINICNN_LANES_QB; \
                        if (ob == (OBMAX))                                                            \
                            MINICNN_LANES_DW_TAPS(T, V, L, HSUM, OBMAX);                              \
                        else if (ob == 2)                                                             \
                            MINICNN_LANES_DW_TAPS(T, V, L, HSUM, 2);                                  \
                        else                                                                          \
                            MINICNN_LANES_DW_TAPS(T, V, L, HSUM, 1);                                  \
                    }                                                                                 \
            o0 += ob;                                                                                 \
        }                                                                                             \
        for (ptrdiff_t o = 0; o < O; ++o) {                                                           \
            const T *g = dyL + o * plane_o;                                                           \
            V s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                                 \
            ptrdiff_t k = 0;                                                                          \
            for (; k + 4 <= OH * OW; k += 4) {                                                        \
                s0 += MINICNN_LANES_LOAD(V, g + k * (L));                                             \
                s1 += MINICNN_LANES_LOAD(V, g + (k + 1) * (L));                                       \
                s2 += MINICNN_LANES_LOAD(V, g + (k + 2) * (L));                                       \
                s3 += MINICNN_LANES_LOAD(V, g + (k + 3) * (L));                                       \
            }                                                                                         \
            for (; k < OH * OW; ++k)                                                                  \
                s0 += MINICNN_LANES_LOAD(V, g + k * (L));                                             \
            const V s = (s0 + s1) + (s2 + s3);                                                        \
            db[o] = HSUM(s);                                                                          \
        }                                                                                             \
    }

/* Sum of the lanes of a vector of any width, by the same halving as above (a fixed order). */
#define MINICNN_LANES_HSUM(T, L, v)                                                                   \
    ({                                                                                                \
        T _h[L];                                                                                      \
        __builtin_memcpy(_h, &(v), sizeof _h);                                                        \
        for (int _w = (L) / 2; _w >= 1; _w /= 2)                                                      \
            for (int _l = 0; _l < _w; ++_l)                                                           \
                _h[_l] += _h[_l + _w];                                                                \
        _h[0];                                                                                        \
    })
#define MINICNN_LANES_HSUM_F32_8(v) MINICNN_LANES_HSUM(float, 8, v)
#define MINICNN_LANES_HSUM_F32_4(v) MINICNN_LANES_HSUM(float, 4, v)
#define MINICNN_LANES_HSUM_F64_4(v) MINICNN_LANES_HSUM(double, 4, v)
#define MINICNN_LANES_HSUM_F64_2(v) MINICNN_LANES_HSUM(double, 2, v)

/* The copies per level: the same dX blocking everywhere (up to 8 channel accumulators, each dyL
 * vector broadcast-multiplied into them); dW with 4 filters x 5 taps = 20 accumulators on
 * AVX-512 and MINICNN_LANES_FIT_OB (2) filters x 5 taps = 10 on AVX2 and the baseline
 * (+ 2 dyL + 1 xL vectors: 13 of 16 registers). */
#ifndef MINICNN_LANES_FIT_OB
#define MINICNN_LANES_FIT_OB 2
#endif
#define MINICNN_LANES_DX_f32_V4(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, float, minicnn_lanes_vf, 16)
#define MINICNN_LANES_DX_f64_V4(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, double, minicnn_lanes_vd, 8)
#define MINICNN_LANES_DX_f32_V3(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, float, minicnn_lanes_vf8, 8)
#define MINICNN_LANES_DX_f64_V3(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, double, minicnn_lanes_vd4, 4)
#define MINICNN_LANES_DX_f32_BASE(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, float, minicnn_lanes_vf4, 4)
#define MINICNN_LANES_DX_f64_BASE(F, A) MINICNN_LANES_DEFINE_INPUT_GRAD(F, A, double, minicnn_lanes_vd2, 2)
#define MINICNN_LANES_DW_f32_V4(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, float, minicnn_lanes_vf, 16, MINICNN_LANES_HSUM_F32_16, MINICNN_LANES_OB)
#define MINICNN_LANES_DW_f64_V4(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, double, minicnn_lanes_vd, 8, MINICNN_LANES_HSUM_F64_8, MINICNN_LANES_OB)
#define MINICNN_LANES_DW_f32_V3(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, float, minicnn_lanes_vf8, 8, MINICNN_LANES_HSUM_F32_8, MINICNN_LANES_FIT_OB)
#define MINICNN_LANES_DW_f64_V3(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, double, minicnn_lanes_vd4, 4, MINICNN_LANES_HSUM_F64_4, MINICNN_LANES_FIT_OB)
#define MINICNN_LANES_DW_f32_BASE(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, float, minicnn_lanes_vf4, 4, MINICNN_LANES_HSUM_F32_4, MINICNN_LANES_FIT_OB)
#define MINICNN_LANES_DW_f64_BASE(F, A) \
    MINICNN_LANES_DEFINE_WEIGHT_GRAD(F, A, double, minicnn_lanes_vd2, 2, MINICNN_LANES_HSUM_F64_2, MINICNN_LANES_FIT_OB)
#define MINICNN_LANES_DX_f32(F, A, LEVEL) MINICNN_LANES_DX_f32_##LEVEL(F, A)
#define MINICNN_LANES_DX_f64(F, A, LEVEL) MINICNN_LANES_DX_f64_##LEVEL(F, A)
#define MINICNN_LANES_DW_f32(F, A, LEVEL) MINICNN_LANES_DW_f32_##LEVEL(F, A)
#define MINICNN_LANES_DW_f64(F, A, LEVEL) MINICNN_LANES_DW_f64_##LEVEL(F, A)

#define MINICNN_LANES_DX_PARAMS(T) \
    (const T *dyL, const T *wL, T *dxL, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)
#define MINICNN_LANES_DX_ARGS (dyL, wL, dxL, C, H, W, O, KH, KW)
#define MINICNN_LANES_DW_PARAMS(T)                                                                     \
    (const T *xL, const T *dyL, T *dw, T *db, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W, ptrdiff_t O,       \
     ptrdiff_t KH, ptrdiff_t KW)
#define MINICNN_LANES_DW_ARGS (xL, dyL, dw, db, C, H, W, O, KH, KW)
MINICNN_INSTANTIATE(MINICNN_LANES_DX_f32, minicnn_lanes_input_grad_f32, MINICNN_LANES_DX_PARAMS(float), MINICNN_LANES_DX_ARGS)
MINICNN_INSTANTIATE(MINICNN_LANES_DX_f64, minicnn_lanes_input_grad_f64, MINICNN_LANES_DX_PARAMS(double), MINICNN_LANES_DX_ARGS)
MINICNN_INSTANTIATE(MINICNN_LANES_DW_f32, minicnn_lanes_weight_grad_f32, MINICNN_LANES_DW_PARAMS(float), MINICNN_LANES_DW_ARGS)
MINICNN_INSTANTIATE(MINICNN_LANES_DW_f64, minicnn_lanes_weight_grad_f64, MINICNN_LANES_DW_PARAMS(double), MINICNN_LANES_DW_ARGS)

#else /* other compilers: no kernels; the caller asks MINICNN_LANES_HAVE_KERNELS first */
#define MINICNN_LANES_HAVE_KERNELS 0
#define MINICNN_LANES_STUB_DX(NAME, T)                                                                \
    static void NAME(const T *dyL, const T *wL, T *dxL, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,        \
                     ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)                                         \
    {                                                                                                 \
        (void)dyL; (void)wL; (void)dxL; (void)C; (void)H; (void)W; (void)O; (void)KH; (void)KW;       \
    }
#define MINICNN_LANES_STUB_DW(NAME, T)                                                                \
    static void NAME(const T *xL, const T *dyL, T *dw, T *db, ptrdiff_t C, ptrdiff_t H, ptrdiff_t W,  \
                     ptrdiff_t O, ptrdiff_t KH, ptrdiff_t KW)                                         \
    {                                                                                                 \
        (void)xL; (void)dyL; (void)dw; (void)db; (void)C; (void)H; (void)W; (void)O; (void)KH; (void)KW; \
    }
MINICNN_LANES_STUB_DX(minicnn_lanes_input_grad_f32, float)
MINICNN_LANES_STUB_DX(minicnn_lanes_input_grad_f64, double)
MINICNN_LANES_STUB_DW(minicnn_lanes_weight_grad_f32, float)
MINICNN_LANES_STUB_DW(minicnn_lanes_weight_grad_f64, double)
#endif

#endif
