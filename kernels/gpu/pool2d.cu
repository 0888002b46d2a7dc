/*
 * pool2d.cu -- max and average pooling on the GPU: forward and backward.
 *
 * Loaded by minicnn/backends/cupy_backend.py through cupy.RawModule (NVRTC);
 * it includes no header, so it compiles the same with NVRTC and with nvcc.
 *
 * Deck 003_7c437a475fa69432.txt, slide "CAPA DE SUBMUESTREO O DECIMACIÓN":
 * each output summarises a KH x KW window (F_H x F_W on the slide) of its
 * channel, windows start every S pixels (SH, SW), the input is padded by P
 * (PH, PW), and
 *
 *     OH = (H + 2*PH - KH) / SH + 1        (integer division; same for OW)
 *
 * The caller computes OH, OW and passes them in. Padding is at most half a
 * window, so every window holds at least one real pixel.
 *
 * Beyond the deck, as torch.nn.functional (minicnn/shapes.py checks them):
 * ceil_mode and padding after the input only make OH, OW larger (windows are
 * clipped to the image anyway); max pooling takes a dilation DH, DW (taps D
 * pixels apart); average pooling takes the end of the padded input HE = H +
 * PH_end, WE, whether padded pixels count in the divisor (COUNT_PAD) and a
 * divisor that replaces every window's (DIVISOR, 0 for none).
 *
 * Semantics, as torch.nn.functional:
 *  - max pooling: padding counts as -inf (it never wins); ties go to the first
 *    maximum in row-major order; a NaN wins (a later NaN replaces an earlier
 *    one); the winner's flat index h*W + w in its input plane is written to
 *    argmax (int64) for the backward pass;
 *  - average pooling: padded zeros count, the divisor is always KH*KW.
 *
 * Backward kernels are gathers: one thread per input pixel loops over the
 * windows that contain it and sums their shares in a fixed order. No atomics,
 * so two runs give bit-identical results.
 *
 * Each template has extern "C" instantiations named <kernel>_f32 (float)
 * and <kernel>_f64 (double) at the end of the file.
 */

/* Thread t of the grid handles items t, t + (threads in grid), ... (grid-stride loop). */
#define FOR_EACH_ITEM(item, total)                                                 \
    for (long long item = (long long)blockIdx.x * blockDim.x + threadIdx.x;        \
         item < (total); item += (long long)blockDim.x * gridDim.x)

/* First and last window (along one axis) whose span [k*S - P, k*S - P + K)
 * contains pixel `pos`: k*S <= pos + P and k*S > pos + P - K. The range is
 * clipped to the windows that exist, [0, OUT). */
__device__ inline int first_window_over(int pos, int K, int S, int P)
{
    const int reach = pos + P - K + 1;  /* need k*S >= reach */
    return reach > 0 ? (reach + S - 1) / S : 0;
}

__device__ inline int last_window_over(int pos, int S, int P, int OUT)
{
    const int k = (pos + P) / S;
    return k < OUT - 1 ? k : OUT - 1;
}

/* First tap of a window starting at `start` that lies on the image: raised by steps of D to 0 or more. */
__device__ inline int first_tap(int start, int D)
{
    return start >= 0 ? start : start + (-start + D - 1) / D * D;
}

/* Average pooling's divisor of the window starting at (hs, ws), as torch.nn.functional.avg_pool2d:
 * DIVISOR if given, else the window clipped to the padded input [-P, HE) (COUNT_PAD) or to the image. */
__device__ inline int window_divisor(int hs, int ws, int H, int W, int KH, int KW, int HE, int WE,
                                     int COUNT_PAD, int DIVISOR)
{
    if (DIVISOR > 0) return DIVISOR;
    const int he = hs + KH < HE ? hs + KH : HE;
    const int we = ws + KW < WE ? ws + KW : WE;
    if (COUNT_PAD) return (he - hs) * (we - ws);
    const int h0 = hs > 0 ? hs : 0, w0 = ws > 0 ? ws : 0;
    const int h1 = he < H ? he : H, w1 = we < W ? we : W;
    return (h1 - h0) * (w1 - w0);
}


/* ------------------------------------------------------------------------------
 * Max pooling, forward: one thread per output y[n, c, i, j].
 *
 * The window is clipped to the real image (padding is -inf and never wins).
 * The search starts from the first real pixel of the window, which is what
 * starting from -inf would report for a window of -inf values.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void max_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ argmax,
    int N, int C, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long total = (long long)N * C * OH * OW;
    FOR_EACH_ITEM(item, total) {
        /* item = (plane*OH + i)*OW + j, plane = n*C + c */
        const int j = (int)(item % OW);
        const int i = (int)((item / OW) % OH);
        const long long plane = item / ((long long)OW * OH);
        const T* x_plane = x + plane * H * W;
        const int h_start = i * SH - PH;
        const int w_start = j * SW - PW;
        const int h0 = first_tap(h_start, DH);
        const int w0 = first_tap(w_start, DW);
        const int h_end = h_start + DH * (KH - 1) + 1;
        const int w_end = w_start + DW * (KW - 1) + 1;
        const int h1 = h_end < H ? h_end : H;
        const int w1 = w_end < W ? w_end : W;
        long long best_index = (long long)h0 * W + w0;
        T best = x_plane[best_index];
        for (int h = h0; h < h1; h += DH) {
            for (int col = w0; col < w1; col += DW) {
                const long long index = (long long)h * W + col;
                const T value = x_plane[index];
                /* strictly greater keeps the first of equal maxima; value != value is NaN */
                if (value > best || value != value) {
                    best = value;
                    best_index = index;
                }
            }
        }
        y[item] = best;
        argmax[item] = best_index;
    }
}


/* ------------------------------------------------------------------------------
 * Max pooling, backward: one thread per input pixel dx[n, c, h, w].
 *
 * Deck 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES
 * Y DE SUBMUESTREO": "En la decimación se actualiza sólo la neurona ganadora".
 * The pixel receives the error of every window that contains it and whose
 * argmax is this pixel (overlapping windows may share a winner).
 * argmax must come from max_pool2d_forward: each index lies in its own window.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void max_pool2d_backward(
    const T* __restrict__ dy, const long long* __restrict__ argmax, T* __restrict__ dx,
    int N, int C, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW)
{
    /* a dilated window spans D*(K - 1) + 1 pixels; the argmax test below picks its taps */
    const int span_h = DH * (KH - 1) + 1, span_w = DW * (KW - 1) + 1;
    const long long total = (long long)N * C * H * W;
    FOR_EACH_ITEM(item, total) {
        /* item = (plane*H + h)*W + col */
        const int col = (int)(item % W);
        const int h = (int)((item / W) % H);
        const long long plane = item / ((long long)W * H);
        const long long my_index = (long long)h * W + col;
        const T* dy_plane = dy + plane * OH * OW;
        const long long* argmax_plane = argmax + plane * OH * OW;
        const int i0 = first_window_over(h, span_h, SH, PH);
        const int i1 = last_window_over(h, SH, PH, OH);
        const int j0 = first_window_over(col, span_w, SW, PW);
        const int j1 = last_window_over(col, SW, PW, OW);
        T sum = T(0);
        for (int i = i0; i <= i1; ++i) {
            for (int j = j0; j <= j1; ++j) {
                const long long out = (long long)i * OW + j;
                if (argmax_plane[out] == my_index) sum += dy_plane[out];
            }
        }
        dx[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * Average pooling, forward: one thread per output.
 *
 * Padded zeros add nothing to the sum but count in the divisor KH*KW
 * (window_divisor: the options beyond the deck change it).
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void avg_pool2d_forward(
    const T* __restrict__ x, T* __restrict__ y,
    int N, int C, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW,
    int HE, int WE, int COUNT_PAD, int DIVISOR)
{
    const long long total = (long long)N * C * OH * OW;
    FOR_EACH_ITEM(item, total) {
        const int j = (int)(item % OW);
        const int i = (int)((item / OW) % OH);
        const long long plane = item / ((long long)OW * OH);
        const T* x_plane = x + plane * H * W;
        const int h_start = i * SH - PH;
        const int w_start = j * SW - PW;
        const int h0 = h_start > 0 ? h_start : 0;
        const int w0 = w_start > 0 ? w_start : 0;
        const int h1 = h_start + KH < H ? h_start + KH : H;
        const int w1 = w_start + KW < W ? w_start + KW : W;
        T sum = T(0);
        for (int h = h0; h < h1; ++h)
            for (int col = w0; col < w1; ++col)
                sum += x_plane[(long long)h * W + col];
        y[item] = sum / T(window_divisor(h_start, w_start, H, W, KH, KW, HE, WE, COUNT_PAD, DIVISOR));
    }
}


/* ------------------------------------------------------------------------------
 * Average pooling, backward: one thread per input pixel.
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (tips for the
 * upsampling): deltaPool = kron(delta, ones(F)) / F^2 -- every pixel of a
 * window receives the window's error divided by the window area; a pixel in
 * several (overlapping) windows adds their shares.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void avg_pool2d_backward(
    const T* __restrict__ dy, T* __restrict__ dx,
    int N, int C, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW,
    int HE, int WE, int COUNT_PAD, int DIVISOR)
{
    const long long total = (long long)N * C * H * W;
    FOR_EACH_ITEM(item, total) {
        const int col = (int)(item % W);
        const int h = (int)((item / W) % H);
        const long long plane = item / ((long long)W * H);
        const T* dy_plane = dy + plane * OH * OW;
        const int i0 = first_window_over(h, KH, SH, PH);
        const int i1 = last_window_over(h, SH, PH, OH);
        const int j0 = first_window_over(col, KW, SW, PW);
        const int j1 = last_window_over(col, SW, PW, OW);
        T sum = T(0);
        for (int i = i0; i <= i1; ++i)
            for (int j = j0; j <= j1; ++j)
                sum += dy_plane[(long long)i * OW + j]
                       / T(window_divisor(i * SH - PH, j * SW - PW, H, W, KH, KW, HE, WE, COUNT_PAD, DIVISOR));
        dx[item] = sum;
    }
}


/* ------------------------------------------------------------------------------
 * extern "C" instantiations (names without C++ mangling, one per element type).
 * ---------------------------------------------------------------------------- */
#define POOL_GEOMETRY_PARAMS \
    int N, int C, int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int PH, int PW
#define POOL_GEOMETRY_ARGS N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW

#define MAX_OPTION_PARAMS int DH, int DW
#define AVG_OPTION_PARAMS int HE, int WE, int COUNT_PAD, int DIVISOR

#define INSTANTIATE_POOL2D(T, SUFFIX)                                                               \
    extern "C" __global__ void max_pool2d_forward_##SUFFIX(                                         \
        const T* x, T* y, long long* argmax, POOL_GEOMETRY_PARAMS, MAX_OPTION_PARAMS)               \
    { max_pool2d_forward<T>(x, y, argmax, POOL_GEOMETRY_ARGS, DH, DW); }                            \
    extern "C" __global__ void max_pool2d_backward_##SUFFIX(                                        \
        const T* dy, const long long* argmax, T* dx, POOL_GEOMETRY_PARAMS, MAX_OPTION_PARAMS)       \
    { max_pool2d_backward<T>(dy, argmax, dx, POOL_GEOMETRY_ARGS, DH, DW); }                         \
    extern "C" __global__ void avg_pool2d_forward_##SUFFIX(                                         \
        const T* x, T* y, POOL_GEOMETRY_PARAMS, AVG_OPTION_PARAMS)                                  \
    { avg_pool2d_forward<T>(x, y, POOL_GEOMETRY_ARGS, HE, WE, COUNT_PAD, DIVISOR); }                \
    extern "C" __global__ void avg_pool2d_backward_##SUFFIX(                                        \
        const T* dy, T* dx, POOL_GEOMETRY_PARAMS, AVG_OPTION_PARAMS)                                \
    { avg_pool2d_backward<T>(dy, dx, POOL_GEOMETRY_ARGS, HE, WE, COUNT_PAD, DIVISOR); }

INSTANTIATE_POOL2D(float, f32)
INSTANTIATE_POOL2D(double, f64)
