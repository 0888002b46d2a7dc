/*
 * conv2d.cu -- 2-D convolution (cross-correlation) on the GPU: forward and backward.
 *
 * Loaded by minicnn/backends/cupy_backend.py through cupy.RawModule (NVRTC);
 * it includes no header, so it compiles the same with NVRTC and with nvcc.
 *
 * Layout: NCHW inputs, OIHW weights (O filters, each C/G channels deep),
 * every array C-contiguous. Notation of deck 003_7c437a475fa69432.txt,
 * slide "CAPA CONVOLUCIONAL: HIPERPARÁMETROS": filter F_H x F_W (here KH x KW),
 * stride S (SH, SW), padding P (PH, PW), plus dilation D (DH, DW) and groups G.
 * Output size, per axis:
 *
 *     OH = (H + 2*PH - DH*(KH - 1) - 1) / SH + 1        (integer division)
 *
 * The caller computes OH, OW and passes them in.
 *
 * Two ways to compute the same numbers:
 *
 * 1. "direct": one thread per output value, a loop over the filter taps.
 *    Read these first; each kernel is the slide's formula written out.
 *      conv2d_forward_direct          y  = x (*) w + b
 *      conv2d_backward_input_direct   dx = sum of dy * w over the outputs that saw x
 *      conv2d_backward_weight_direct  dw = sum of dy * x over every position
 *      conv2d_backward_bias_direct    db = sum of dy over every position
 *
 * 2. "im2col": copy every receptive field into a column of a matrix, so the
 *    convolution becomes one matrix product per group that cuBLAS computes
 *    (the Python side calls cupy.matmul). Only the copies are kernels here:
 *      im2col  x -> columns       (y = w . columns, dw = dy . columns^T)
 *      col2im  dcolumns -> dx     (dcolumns = w^T . dy; each input pixel
 *                                  gathers its own terms)
 *
 * No kernel uses atomics: every thread owns one output value and sums its
 * terms in a fixed order, so two runs give bit-identical results.
 *
 * Each template has extern "C" instantiations named <kernel>_f32 (float)
 * and <kernel>_f64 (double) at the end of the file.
 */

/* Thread t of the grid handles items t, t + (threads in grid), ... so a
 * launch of any size covers a tensor of any size (a grid-stride loop). */
#define FOR_EACH_ITEM(item, total)                                                 \
    for (long long item = (long long)blockIdx.x * blockDim.x + threadIdx.x;        \
         item < (total); item += (long long)blockDim.x * gridDim.x)


/* ------------------------------------------------------------------------------
 * Forward, direct.
 *
 *   y[n, o, i, j] = b[o] + sum_{c in group(o)} sum_{p, q}
 *                   x[n, c, i*SH + p*DH - PH, j*SW + q*DW - PW] * w[o, c - g*C_g, p, q]
 *
 * Deck 003_7c437a475fa69432.txt, "PESOS COMPARTIDOS" (cross-correlation
 * S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)) with the hyper-parameters of
 * "CAPA CONVOLUCIONAL: HIPERPARÁMETROS". Input pixels that fall in the
 * padding are zeros, so they are skipped. Filter o belongs to group
 * g = o / O_g and sees only that group's C_g = C/G input channels.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void conv2d_forward_direct(
    const T* __restrict__ x, const T* __restrict__ weight, const T* __restrict__ bias,
    T* __restrict__ y,
    int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW, int G, int has_bias)
{
    const int C_g = C / G;
    const int O_g = O / G;
    const long long total = (long long)N * O * OH * OW;
    FOR_EACH_ITEM(item, total) {
        /* item = ((n*O + o)*OH + i)*OW + j */
        const int j = (int)(item % OW);
        const int i = (int)((item / OW) % OH);
        const int o = (int)((item / ((long long)OW * OH)) % O);
        const int n = (int)(item / ((long long)OW * OH * O));
        const int g = o / O_g;
        T sum = has_bias ? bias[o] : T(0);
        for (int cg = 0; cg < C_g; ++cg) {
            const int c = g * C_g + cg;
            const T* x_plane = x + ((long long)n * C + c) * H * W;
            const T* w_plane = weight + ((long long)o * C_g + cg) * KH * KW;
            for (int p = 0; p < KH; ++p) {
                const int h = i * SH + p * DH - PH;
                if (h < 0 || h >= H) continue;
                for (int q = 0; q < KW; ++q) {
                    const int col = j * SW + q * DW - PW;
                    if (col < 0 || col >= W) continue;
                    sum += x_plane[(long long)h * W + col] * w_plane[p * KW + q];
                }
            }
        }
        y[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * Backward to the input, direct (a gather: no two threads write one place).
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation":
 * delta^(l) = upsample((W^(l))^T delta^(l+1)). Pixel (h, col) of channel c
 * was read by output (i, j) of filter o through tap (p, q) exactly when
 *
 *     i*SH + p*DH - PH = h   and   j*SW + q*DW - PW = col,
 *
 * so its gradient is the sum, over those (o, p, q, i, j), of
 * dy[n, o, i, j] * w[o, c - g*C_g, p, q]. For each tap we solve for i (and j):
 * i = (h + PH - p*DH) / SH must be a whole number in [0, OH).
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void conv2d_backward_input_direct(
    const T* __restrict__ dy, const T* __restrict__ weight, T* __restrict__ dx,
    int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW, int G)
{
    const int C_g = C / G;
    const int O_g = O / G;
    const long long total = (long long)N * C * H * W;
    FOR_EACH_ITEM(item, total) {
        /* item = ((n*C + c)*H + h)*W + col */
        const int col = (int)(item % W);
        const int h = (int)((item / W) % H);
        const int c = (int)((item / ((long long)W * H)) % C);
        const int n = (int)(item / ((long long)W * H * C));
        const int g = c / C_g;
        const int cg = c - g * C_g;
        T sum = T(0);
        for (int og = 0; og < O_g; ++og) {
            const int o = g * O_g + og;
            const T* dy_plane = dy + ((long long)n * O + o) * OH * OW;
            const T* w_plane = weight + ((long long)o * C_g + cg) * KH * KW;
            for (int p = 0; p < KH; ++p) {
                const int row_times_stride = h + PH - p * DH;  /* = i*SH */
                if (row_times_stride < 0) break;               /* larger p only go further up */
                if (row_times_stride % SH != 0) continue;
                const int i = row_times_stride / SH;
                if (i >= OH) continue;
                for (int q = 0; q < KW; ++q) {
                    const int col_times_stride = col + PW - q * DW;  /* = j*SW */
                    if (col_times_stride < 0) break;
                    if (col_times_stride % SW != 0) continue;
                    const int j = col_times_stride / SW;
                    if (j >= OW) continue;
                    sum += dy_plane[(long long)i * OW + j] * w_plane[p * KW + q];
                }
            }
        }
        dx[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * Backward to the weights, direct: one thread per weight w[o, cg, p, q].
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation":
 * grad W_k = sum_i a_i * rot90(delta_k, 2), i.e. the cross-correlation of the
 * input with the error. Deck 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN
 * CAPAS CONVOLUCIONALES Y DE SUBMUESTREO": every position computes its own
 * gradient and the shared weight receives their sum:
 *
 *   dw[o, cg, p, q] = sum_{n, i, j} dy[n, o, i, j] * x[n, g*C_g + cg, i*SH + p*DH - PH, j*SW + q*DW - PW]
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void conv2d_backward_weight_direct(
    const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dweight,
    int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW, int G)
{
    const int C_g = C / G;
    const int O_g = O / G;
    const long long total = (long long)O * C_g * KH * KW;
    FOR_EACH_ITEM(item, total) {
        /* item = ((o*C_g + cg)*KH + p)*KW + q */
        const int q = (int)(item % KW);
        const int p = (int)((item / KW) % KH);
        const int cg = (int)((item / ((long long)KW * KH)) % C_g);
        const int o = (int)(item / ((long long)KW * KH * C_g));
        const int c = (o / O_g) * C_g + cg;
        T sum = T(0);
        for (int n = 0; n < N; ++n) {
            const T* x_plane = x + ((long long)n * C + c) * H * W;
            const T* dy_plane = dy + ((long long)n * O + o) * OH * OW;
            for (int i = 0; i < OH; ++i) {
                const int h = i * SH + p * DH - PH;
                if (h < 0 || h >= H) continue;
                for (int j = 0; j < OW; ++j) {
                    const int col = j * SW + q * DW - PW;
                    if (col < 0 || col >= W) continue;
                    sum += dy_plane[(long long)i * OW + j] * x_plane[(long long)h * W + col];
                }
            }
        }
        dweight[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * Backward to the bias, direct: one thread per filter o.
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation":
 * grad b_k = sum_{a,b} (delta_k)_{a,b}, summed over the batch as well.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void conv2d_backward_bias_direct(
    const T* __restrict__ dy, T* __restrict__ dbias, int N, int O, int OH, int OW)
{
    const long long plane = (long long)OH * OW;
    FOR_EACH_ITEM(o, (long long)O) {
        T sum = T(0);
        for (int n = 0; n < N; ++n) {
            const T* dy_plane = dy + ((long long)n * O + o) * plane;
            for (long long k = 0; k < plane; ++k) sum += dy_plane[k];
        }
        dbias[o] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * im2col: lay every receptive field out as a column.
 *
 * columns has shape (C*KH*KW, N*OH*OW): row r = (c*KH + p)*KW + q holds tap
 * (p, q) of channel c, column n*OH*OW + i*OW + j the output (i, j) of sample
 * n. The rows of group g are the contiguous block [g*C_g*KH*KW,
 * (g+1)*C_g*KH*KW), in the order of w[o].ravel(), so for each group
 *
 *     y[group g] (O_g x N*OH*OW) = w[group g] (O_g x C_g*KH*KW) . columns[group g]
 *
 * is the forward pass of "CAPA CONVOLUCIONAL: HIPERPARÁMETROS" as one matrix
 * product, and dw[group g] = dy[group g] . columns[group g]^T is the weight
 * gradient as another. Taps over the padding hold zero.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void im2col(
    const T* __restrict__ x, T* __restrict__ columns,
    int N, int C, int H, int W, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW)
{
    const int L = OH * OW;
    const int NL = N * L;  /* columns of the matrix; the caller keeps it below 2^31 */
    const long long total = (long long)C * KH * KW * NL;
    FOR_EACH_ITEM(item, total) {
        /* item = r*NL + n*L + i*OW + j with r = (c*KH + p)*KW + q; consecutive
         * threads take consecutive j, so the writes are coalesced. One 64-bit
         * division splits item into row and column; the rest is 32-bit
         * arithmetic, which the GPU divides several times faster. */
        const int r = (int)(item / NL);
        const int k = (int)(item - (long long)r * NL);
        const int n = k / L;
        const int l = k - n * L;
        const int i = l / OW;
        const int j = l - i * OW;
        const int q = r % KW;
        const int p = (r / KW) % KH;
        const int c = r / (KW * KH);
        const int h = i * SH + p * DH - PH;
        const int col = j * SW + q * DW - PW;
        const bool inside = h >= 0 && h < H && col >= 0 && col < W;
        columns[item] = inside ? x[(((long long)n * C + c) * H + h) * W + col] : T(0);
    }
}


/* ------------------------------------------------------------------------------
 * col2im: the adjoint of im2col, as a gather.
 *
 * dcolumns (C*KH*KW, N*OH*OW) = w^T . dy holds, for every tap and output, the
 * error that the tap sends back to the pixel it read. Pixel (h, col) of
 * channel c sums the entries of the taps that read it -- the same (p, i),
 * (q, j) pairs as conv2d_backward_input_direct -- so each thread writes only
 * its own pixel: deterministic, no atomics.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void col2im(
    const T* __restrict__ dcolumns, T* __restrict__ dx,
    int N, int C, int H, int W, int KH, int KW, int OH, int OW,
    int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long L = (long long)OH * OW;
    const int HW = H * W;
    const long long total = (long long)N * C * HW;
    FOR_EACH_ITEM(item, total) {
        /* item = (n*C + c)*H*W + h*W + col; one 64-bit division, then 32-bit */
        const int plane = (int)(item / HW);  /* n*C + c */
        const int pixel = (int)(item - (long long)plane * HW);
        const int h = pixel / W;
        const int col = pixel - h * W;
        const int c = plane % C;
        const int n = plane / C;
        T sum = T(0);
        for (int p = 0; p < KH; ++p) {
            const int row_times_stride = h + PH - p * DH;  /* = i*SH */
            if (row_times_stride < 0) break;
            if (row_times_stride % SH != 0) continue;
            const int i = row_times_stride / SH;
            if (i >= OH) continue;
            for (int q = 0; q < KW; ++q) {
                const int col_times_stride = col + PW - q * DW;  /* = j*SW */
                if (col_times_stride < 0) break;
                if (col_times_stride % SW != 0) continue;
                const int j = col_times_stride / SW;
                if (j >= OW) continue;
                const long long r = ((long long)c * KH + p) * KW + q;
                sum += dcolumns[(r * N + n) * L + (long long)i * OW + j];
            }
        }
        dx[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * extern "C" instantiations: plain names that cupy.RawModule.get_function
 * finds without C++ name mangling, one per element type.
 * ---------------------------------------------------------------------------- */
#define CONV_GEOMETRY_PARAMS \
    int N, int C, int H, int W, int O, int KH, int KW, int OH, int OW, \
    int SH, int SW, int PH, int PW, int DH, int DW, int G
#define CONV_GEOMETRY_ARGS N, C, H, W, O, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW, G
#define COLUMN_GEOMETRY_PARAMS \
    int N, int C, int H, int W, int KH, int KW, int OH, int OW, \
    int SH, int SW, int PH, int PW, int DH, int DW
#define COLUMN_GEOMETRY_ARGS N, C, H, W, KH, KW, OH, OW, SH, SW, PH, PW, DH, DW

#define INSTANTIATE_CONV2D(T, SUFFIX)                                                             \
    extern "C" __global__ void conv2d_forward_direct_##SUFFIX(                                    \
        const T* x, const T* weight, const T* bias, T* y, CONV_GEOMETRY_PARAMS, int has_bias)     \
    { conv2d_forward_direct<T>(x, weight, bias, y, CONV_GEOMETRY_ARGS, has_bias); }               \
    extern "C" __global__ void conv2d_backward_input_direct_##SUFFIX(                             \
        const T* dy, const T* weight, T* dx, CONV_GEOMETRY_PARAMS)                                \
    { conv2d_backward_input_direct<T>(dy, weight, dx, CONV_GEOMETRY_ARGS); }                      \
    extern "C" __global__ void conv2d_backward_weight_direct_##SUFFIX(                            \
        const T* x, const T* dy, T* dweight, CONV_GEOMETRY_PARAMS)                                \
    { conv2d_backward_weight_direct<T>(x, dy, dweight, CONV_GEOMETRY_ARGS); }                     \
    extern "C" __global__ void conv2d_backward_bias_direct_##SUFFIX(                              \
        const T* dy, T* dbias, int N, int O, int OH, int OW)                                      \
    { conv2d_backward_bias_direct<T>(dy, dbias, N, O, OH, OW); }                                  \
    extern "C" __global__ void im2col_##SUFFIX(const T* x, T* columns, COLUMN_GEOMETRY_PARAMS)    \
    { im2col<T>(x, columns, COLUMN_GEOMETRY_ARGS); }                                              \
    extern "C" __global__ void col2im_##SUFFIX(const T* dcolumns, T* dx, COLUMN_GEOMETRY_PARAMS)  \
    { col2im<T>(dcolumns, dx, COLUMN_GEOMETRY_ARGS); }

INSTANTIATE_CONV2D(float, f32)
INSTANTIATE_CONV2D(double, f64)
