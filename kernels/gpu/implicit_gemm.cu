/*
 * implicit_gemm.cu -- convolution forward, dX and dW as matrix products whose
 * im2col matrix is never written to memory.
 *
 * Loaded by minicnn/backends/cupy_backend.py through cupy.RawModule (NVRTC);
 * no headers. Notation of deck 003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL:
 * HIPERPARÁMETROS" as in conv2d.cu: x (N, C, H, W), w (O, C_g, KH, KW) with
 * C_g = C/G and O_g = O/G, y (N, O, OH, OW).
 *
 * conv2d.cu's im2col path writes the column matrix (C_g*KH*KW rows,
 * N*OH*OW columns: 231 MB for the mid 3x3 layer at batch 32) and cuBLAS
 * reads it back. Here every block gathers only the tile of that virtual
 * matrix it multiplies, into shared memory, straight from x (or dy).
 *
 * Three products, per group g (blockIdx.z = g*splits + s):
 *
 *   forward  Y_g[o, col]  = sum_k  W_g[o, k] * X^[k, col]     M = O_g,  cols = N*OH*OW,  K = C_g*KH*KW
 *   dX       dX_g[c, pix] = sum_k  W^T_g[c, k] * dY^[k, pix]  M = C_g,  cols = N*H*W,    K = O_g*KH*KW
 *   dW       dW_g[o, k]   = sum_r  dY_g[o, r] * X^[k, r]      M = O_g,  cols = C_g*KH*KW, K = N*OH*OW
 *
 * The gather formulas (the virtual im2col matrix X^; minicnn/backends/
 * implicit_gemm.py writes the same formulas in NumPy and the tests run them
 * against the reference convolution):
 *
 *   k = (c*KH + p)*KW + q,  col = (n*OH + i)*OW + j:
 *     X^[k, col] = x[n, g*C_g + c, i*SH + p*DH - PH, j*SW + q*DW - PW]   (0 in the padding)
 *   k = (o*KH + p)*KW + q,  pix = (n*H + h)*W + w:
 *     dY^[k, pix] = dy[n, g*O_g + o, (h + PH - p*DH)/SH, (w + PW - q*DW)/SW]
 *                   where both divisions are exact and land inside (OH, OW), else 0
 *
 * Tiles: a block of 256 threads (16 x 16) computes a BM x BN tile of the
 * product, each thread a (BM/16) x (BN/16) patch, stepping through K in
 * slices of BK = 8 loaded into shared memory. Two shapes are instantiated:
 * BM = 64, BN = 64 ("m64") and BM = 16, BN = 256 ("m16", for LeNet's 6 and
 * 16 filters, where a 64-row tile would be mostly padding).
 *
 * Determinism: every output is owned by one thread that adds its terms in
 * increasing k. dW's reduction over N*OH*OW positions is long and its output
 * small, so it is split in `splits` consecutive ranges of k (a fixed number
 * the host computes from the shapes alone, never from the GPU): block s
 * writes its partial sum to partial[s][...] and implicit_gemm_reduce_splits
 * adds partial[0] + partial[1] + ... in that order. No atomics anywhere.
 *
 * Precision: float32 multiplies and adds by default (fused multiply-adds, as
 * nvcc contracts a*b + c). TF32 is opt-in, float only, two ways:
 *   - tf32 = 1 in the kernels above: every operand is rounded to TF32 as it
 *     enters shared memory (10-bit mantissa, round to nearest, ties away from
 *     zero, as cvt.rna.tf32.f32), then float32 FMAs: TF32's accuracy on CUDA cores;
 *   - the "tc" kernels (implicit_gemm_<problem>_tc_f32): the same rounded
 *     tiles multiplied on tensor cores, mma.sync.m16n8k8 .tf32 with float32
 *     accumulation (sm_80 and later; older GPUs run the CUDA-core loop).
 *     Each tensor-core instruction adds its 8 products in an order the
 *     hardware fixes, so results repeat bit for bit, but they are not the
 *     CUDA-core kernel's bits.
 */

#define IG_THREADS 256
#define IG_BK 8

__device__ __forceinline__ float round_tf32(float v)
{
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7f800000u) != 0x7f800000u)   /* finite: add half of the last kept bit, drop 13 bits */
        u = (u + 0x1000u) & 0xffffe000u;
    return __uint_as_float(u);
}
__device__ __forceinline__ double round_tf32(double v) { return v; }

struct ConvShape {
    int N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW, G;
};

/* X^[k, col] of group g (forward's B, dW's B transposed). */
/* Rows, columns and depth of every product fit in 32 bits (cupy_backend checks it), so the
 * index decompositions divide in 32 bits, several times cheaper than 64; addresses are 64-bit. */
template <typename T>
__device__ __forceinline__ T gather_columns(const T* __restrict__ x, const ConvShape& s, int g, int k, int col)
{
    const int taps = s.KH * s.KW;
    const int c = k / taps;
    const int p = (k / s.KW) % s.KH;
    const int q = k % s.KW;
    const int j = col % s.OW;
    const int i = (col / s.OW) % s.OH;
    const long long n = col / (s.OW * s.OH);
    const int h = i * s.SH + p * s.DH - s.PH;
    const int w = j * s.SW + q * s.DW - s.PW;
    if (h < 0 || h >= s.H || w < 0 || w >= s.W) return T(0);
    const int C_g = s.C / s.G;
    return x[((n * s.C + (long long)g * C_g + c) * s.H + h) * s.W + w];
}

/* dY^[k, pix] of group g (dX's B). */
template <typename T>
__device__ __forceinline__ T gather_errors(const T* __restrict__ dy, const ConvShape& s, int g, int k, int pix)
{
    const int taps = s.KH * s.KW;
    const int o = k / taps;
    const int p = (k / s.KW) % s.KH;
    const int q = k % s.KW;
    const int w = pix % s.W;
    const int h = (pix / s.W) % s.H;
    const long long n = pix / (s.W * s.H);
    const int ti = h + s.PH - p * s.DH;
    const int tj = w + s.PW - q * s.DW;
    if (ti < 0 || tj < 0 || ti % s.SH != 0 || tj % s.SW != 0) return T(0);
    const int i = ti / s.SH, j = tj / s.SW;
    if (i >= s.OH || j >= s.OW) return T(0);
    const int O_g = s.O / s.G;
    return dy[((n * s.O + (long long)g * O_g + o) * s.OH + i) * s.OW + j];
}

/* The three problems: A(m, k), B(k, col), and where the result goes. */
template <typename T>
struct ForwardProblem {
    const T* x; const T* w; const T* bias; T* y; ConvShape s; int has_bias, relu;
    __device__ long long rows() const { return s.O / s.G; }
    __device__ long long cols() const { return (long long)s.N * s.OH * s.OW; }
    __device__ long long depth() const { return (long long)(s.C / s.G) * s.KH * s.KW; }
    __device__ T a(int g, long long m, long long k) const { return w[((long long)g * rows() + m) * depth() + k]; }
    __device__ T b(int g, long long k, long long col) const { return gather_columns(x, s, g, (int)k, (int)col); }
    __device__ void store(int g, int split, long long m, long long col, T acc) const {
        /* the epilogue of "convolution + bias + ReLU": one pass, no second launch */
        const long long o = (long long)g * rows() + m;
        if (has_bias) acc += bias[o];
        if (relu && acc < T(0)) acc = T(0);   /* NaN passes, as max(x, 0) */
        const long long positions = (long long)s.OH * s.OW;
        const long long n = col / positions;
        y[(n * s.O + o) * positions + col % positions] = acc;
    }
};

template <typename T>
struct InputGradProblem {
    const T* dy; const T* w; T* dx; ConvShape s;
    __device__ long long rows() const { return s.C / s.G; }
    __device__ long long cols() const { return (long long)s.N * s.H * s.W; }
    __device__ long long depth() const { return (long long)(s.O / s.G) * s.KH * s.KW; }
    __device__ T a(int g, long long m, long long k) const {
        const int taps = s.KH * s.KW;
        const long long o = (long long)g * (s.O / s.G) + (int)k / taps;
        return w[(o * rows() + m) * taps + (int)k % taps];
    }
    __device__ T b(int g, long long k, long long pix) const { return gather_errors(dy, s, g, (int)k, (int)pix); }
    __device__ void store(int g, int split, long long m, long long pix, T acc) const {
        const long long plane = (long long)s.H * s.W;
        const long long n = pix / plane;
        dx[(n * s.C + (long long)g * rows() + m) * plane + pix % plane] = acc;
    }
};

template <typename T>
struct WeightGradProblem {
    const T* x; const T* dy; T* out; ConvShape s; long long split_stride;
    __device__ long long rows() const { return s.O / s.G; }
    __device__ long long cols() const { return (long long)(s.C / s.G) * s.KH * s.KW; }
    __device__ long long depth() const { return (long long)s.N * s.OH * s.OW; }
    __device__ T a(int g, long long m, long long r) const {
        const int positions = s.OH * s.OW;
        const long long n = (int)r / positions;
        return dy[(n * s.O + (long long)g * rows() + m) * positions + (int)r % positions];
    }
    __device__ T b(int g, long long r, long long k) const { return gather_columns(x, s, g, (int)k, (int)r); }
    __device__ void store(int g, int split, long long m, long long k, T acc) const {
        /* dw[o, k] of split `split`; split_stride = O*C_g*KH*KW, the size of dw */
        out[split * split_stride + ((long long)g * rows() + m) * cols() + k] = acc;
    }
};

/* One BM x BN tile of the product of group g, over the k range of split s. */
template <typename T, int BM, int BN, class Problem>
__device__ void implicit_gemm_tile(const Problem& P, int splits, int tf32)
{
    constexpr int TM = BM / 16, TN = BN / 16;
    __shared__ T As[IG_BK][BM];
    __shared__ T Bs[IG_BK][BN];
    const int t = threadIdx.x, tx = t % 16, ty = t / 16;
    const int g = blockIdx.z / splits, split = blockIdx.z % splits;
    const long long M = P.rows(), NC = P.cols(), K = P.depth();
    const long long m0 = (long long)blockIdx.y * BM, n0 = (long long)blockIdx.x * BN;
    /* split s covers the k-slices [s*per, (s+1)*per) of ceil(K/BK) */
    const long long slices = (K + IG_BK - 1) / IG_BK;
    const long long per = (slices + splits - 1) / splits;
    const long long k_begin = split * per * IG_BK;
    const long long k_end = (k_begin + per * IG_BK < K) ? k_begin + per * IG_BK : K;
    T acc[TM][TN];
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
    for (long long k0 = k_begin; k0 < k_end; k0 += IG_BK) {
        for (int e = t; e < BM * IG_BK; e += IG_THREADS) {
            const int mm = e / IG_BK, kk = e % IG_BK;
            const long long m = m0 + mm, k = k0 + kk;
            const T v = (m < M && k < k_end) ? P.a(g, m, k) : T(0);
            As[kk][mm] = tf32 ? round_tf32(v) : v;
        }
        for (int e = t; e < BN * IG_BK; e += IG_THREADS) {
            const int kk = e / BN, nn = e % BN;
            const long long k = k0 + kk, n = n0 + nn;
            const T v = (k < k_end && n < NC) ? P.b(g, k, n) : T(0);
            Bs[kk][nn] = tf32 ? round_tf32(v) : v;
        }
        __syncthreads();
        for (int kk = 0; kk < IG_BK; ++kk) {
            T a[TM], b[TN];
            for (int i = 0; i < TM; ++i) a[i] = As[kk][ty * TM + i];
            for (int j = 0; j < TN; ++j) b[j] = Bs[kk][tx * TN + j];
            for (int i = 0; i < TM; ++i)
                for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
    for (int i = 0; i < TM; ++i) {
        const long long m = m0 + ty * TM + i;
        if (m >= M) continue;
        for (int j = 0; j < TN; ++j) {
            const long long n = n0 + tx * TN + j;
            if (n < NC) P.store(g, split, m, n, acc[i][j]);
        }
    }
}

/* ------------------------------------------------------------------------------
 * The same 64 x 64 tile on tensor cores (TF32 inputs, float32 accumulation).
 *
 * Eight warps: warp w computes rows 16*(w % 4) + [0, 16) and columns
 * 32*(w / 4) + [0, 32) of the tile as four m16n8k8 products per k-slice.
 * Fragment layout of mma.m16n8k8 .tf32 (PTX ISA, "Matrix Fragments for
 * mma.m16n8k8"), with g = lane / 4 and t = lane % 4:
 *   A (16 x 8):  a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4], a3 = A[g+8][t+4]
 *   B (8 x 8):   b0 = B[t][g], b1 = B[t+4][g]
 *   C (16 x 8):  c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
 * (minicnn/backends/implicit_gemm.py, tensor_core_map, writes these maps in
 * NumPy and the tests check that the warps cover the tile once.)
 * ---------------------------------------------------------------------------- */
/* c += A . B for one m16n8k8 TF32 product of the warp (every lane calls it with its fragments).
 * MINICNN_EMULATE_MMA: tests/cuda_on_cpu.py supplies a CPU version that follows the fragment layout above. */
__device__ __forceinline__ void mma_m16n8k8_tf32(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                                 unsigned b0, unsigned b1)
{
#ifdef MINICNN_EMULATE_MMA
    emulated_mma_m16n8k8_tf32(c, a0, a1, a2, a3, b0, b1);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

template <class Problem>
__device__ void implicit_gemm_tile_tc(const Problem& P, int splits)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
    implicit_gemm_tile<float, 64, 64>(P, splits, 1);
#else
    __shared__ float As[IG_BK][64];
    __shared__ float Bs[IG_BK][64];
    const int t = threadIdx.x, lane = t % 32, warp = t / 32;
    const int gq = lane / 4, tq = lane % 4;
    const int wm = 16 * (warp % 4), wn = 32 * (warp / 4);
    const int g = blockIdx.z / splits, split = blockIdx.z % splits;
    const long long M = P.rows(), NC = P.cols(), K = P.depth();
    const long long m0 = (long long)blockIdx.y * 64, n0 = (long long)blockIdx.x * 64;
    const long long slices = (K + IG_BK - 1) / IG_BK;
    const long long per = (slices + splits - 1) / splits;
    const long long k_begin = split * per * IG_BK;
    const long long k_end = (k_begin + per * IG_BK < K) ? k_begin + per * IG_BK : K;
    float acc[4][4];
    for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 4; ++i) acc[j][i] = 0.0f;
    for (long long k0 = k_begin; k0 < k_end; k0 += IG_BK) {
        for (int e = t; e < 64 * IG_BK; e += IG_THREADS) {
            const int mm = e / IG_BK, kk = e % IG_BK;
            const long long m = m0 + mm, k = k0 + kk;
            As[kk][mm] = round_tf32((m < M && k < k_end) ? P.a(g, m, k) : 0.0f);
        }
        for (int e = t; e < 64 * IG_BK; e += IG_THREADS) {
            const int kk = e / 64, nn = e % 64;
            const long long k = k0 + kk, n = n0 + nn;
            Bs[kk][nn] = round_tf32((k < k_end && n < NC) ? P.b(g, k, n) : 0.0f);
        }
        __syncthreads();
        const unsigned a0 = __float_as_uint(As[tq][wm + gq]), a1 = __float_as_uint(As[tq][wm + gq + 8]);
        const unsigned a2 = __float_as_uint(As[tq + 4][wm + gq]), a3 = __float_as_uint(As[tq + 4][wm + gq + 8]);
        for (int j = 0; j < 4; ++j) {
            const unsigned b0 = __float_as_uint(Bs[tq][wn + 8 * j + gq]);
            const unsigned b1 = __float_as_uint(Bs[tq + 4][wn + 8 * j + gq]);
            mma_m16n8k8_tf32(acc[j], a0, a1, a2, a3, b0, b1);
        }
        __syncthreads();
    }
    for (int j = 0; j < 4; ++j) {
        for (int i = 0; i < 4; ++i) {
            const long long m = m0 + wm + gq + (i >= 2 ? 8 : 0);
            const long long n = n0 + wn + 8 * j + 2 * tq + (i & 1);
            if (m < M && n < NC) P.store(g, split, m, n, acc[j][i]);
        }
    }
#endif
}

/* dw[e] = partial[0][e] + partial[1][e] + ... in this order (the documented deterministic reduction). */
template <typename T>
__device__ void implicit_gemm_reduce_splits(const T* __restrict__ partial, T* __restrict__ dw, long long size, int splits)
{
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < size; e += (long long)blockDim.x * gridDim.x) {
        T sum = partial[e];
        for (int s = 1; s < splits; ++s) sum += partial[s * size + e];
        dw[e] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * extern "C" instantiations: implicit_gemm_<problem>_<m64|m16>_<f32|f64>.
 * ---------------------------------------------------------------------------- */
#define IG_SHAPE_PARAMS int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW, \
                        int SH, int SW, int PH, int PW, int DH, int DW, int G
#define IG_SHAPE {N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW, G}

#define INSTANTIATE_TILE(T, SUFFIX, BM, BN, TILE)                                                        \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_forward_##TILE##_##SUFFIX(   \
        const T* x, const T* w, const T* bias, T* y, IG_SHAPE_PARAMS, int has_bias, int relu, int tf32) \
    {                                                                                                    \
        const ForwardProblem<T> P{x, w, bias, y, IG_SHAPE, has_bias, relu};                              \
        implicit_gemm_tile<T, BM, BN>(P, 1, tf32);                                                       \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_input_grad_##TILE##_##SUFFIX( \
        const T* dy, const T* w, T* dx, IG_SHAPE_PARAMS, int tf32)                                       \
    {                                                                                                    \
        const InputGradProblem<T> P{dy, w, dx, IG_SHAPE};                                                \
        implicit_gemm_tile<T, BM, BN>(P, 1, tf32);                                                       \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_weight_grad_##TILE##_##SUFFIX( \
        const T* x, const T* dy, T* partial, IG_SHAPE_PARAMS, int splits, int tf32)                      \
    {                                                                                                    \
        const ConvShape s = IG_SHAPE;                                                                    \
        const WeightGradProblem<T> P{x, dy, partial, s, (long long)O * (C / G) * KH * KW};               \
        implicit_gemm_tile<T, BM, BN>(P, splits, tf32);                                                  \
    }

#define INSTANTIATE_TENSOR_CORE                                                                          \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_forward_tc_f32(               \
        const float* x, const float* w, const float* bias, float* y, IG_SHAPE_PARAMS, int has_bias, int relu) \
    {                                                                                                    \
        const ForwardProblem<float> P{x, w, bias, y, IG_SHAPE, has_bias, relu};                          \
        implicit_gemm_tile_tc(P, 1);                                                                     \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_input_grad_tc_f32(            \
        const float* dy, const float* w, float* dx, IG_SHAPE_PARAMS)                                     \
    {                                                                                                    \
        const InputGradProblem<float> P{dy, w, dx, IG_SHAPE};                                            \
        implicit_gemm_tile_tc(P, 1);                                                                     \
    }                                                                                                    \
    extern "C" __global__ void __launch_bounds__(IG_THREADS) implicit_gemm_weight_grad_tc_f32(           \
        const float* x, const float* dy, float* partial, IG_SHAPE_PARAMS, int splits)                    \
    {                                                                                                    \
        const ConvShape s = IG_SHAPE;                                                                    \
        const WeightGradProblem<float> P{x, dy, partial, s, (long long)O * (C / G) * KH * KW};           \
        implicit_gemm_tile_tc(P, splits);                                                                \
    }

#define INSTANTIATE_IMPLICIT_GEMM(T, SUFFIX)                                                             \
    INSTANTIATE_TILE(T, SUFFIX, 64, 64, m64)                                                             \
    INSTANTIATE_TILE(T, SUFFIX, 16, 256, m16)                                                            \
    extern "C" __global__ void implicit_gemm_reduce_splits_##SUFFIX(                                     \
        const T* partial, T* dw, long long size, int splits)                                             \
    { implicit_gemm_reduce_splits<T>(partial, dw, size, splits); }

INSTANTIATE_IMPLICIT_GEMM(float, f32)
INSTANTIATE_IMPLICIT_GEMM(double, f64)
INSTANTIATE_TENSOR_CORE
