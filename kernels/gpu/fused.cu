/*
 * fused.cu -- kernels that do in one launch what the layer-by-layer step does in several.
 *
 * Loaded by minicnn/backends/cupy_backend.py through cupy.RawModule (NVRTC);
 * no headers, so nvcc and NVRTC compile it alike. A LeNet-5 step on a GPU is
 * bound by launches, not arithmetic, so each kernel here replaces
 * a chain of small element-wise launches:
 *
 *   relu_max_pool2x2_forward     y = max(0, max of each 2x2 window), the winner kept
 *   relu_max_pool2x2_backward    dx = dy at the winner of a positive window, else 0
 *   softmax_cross_entropy        loss sum, correct count and dJ/dlogits of a batch
 *   sgd_momentum_multi           the SGD update of every parameter tensor at once
 *
 * (convolution + bias + ReLU is the epilogue of the implicit-GEMM forward,
 * implicit_gemm.cu.)
 *
 * No atomics: every output has one owner; the two batch sums of
 * softmax_cross_entropy are added by one block in a fixed tree order, so
 * repeated runs give bit-identical results.
 */

#define FOR_EACH_ITEM(item, total)                                                 \
    for (long long item = (long long)blockIdx.x * blockDim.x + threadIdx.x;        \
         item < (total); item += (long long)blockDim.x * gridDim.x)


/* ------------------------------------------------------------------------------
 * ReLU and 2x2 max pooling (stride 2, no padding), forward: one thread per output.
 *
 * Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN", with the
 * ReLU of deck 004_d4430ea77d2b90c2.txt: ReLU is non-decreasing, so
 * max(0, max_window(x)) = max_window(max(0, x)) and the two are one pass.
 *
 *   y[n, c, i, j] = max(0, max_{a, b in {0, 1}} x[n, c, 2i + a, 2j + b])
 *   winner[n, c, i, j] = 2a + b of the first maximum in row-major order
 *                        (ties as max_pool2d), or -1 when that maximum is <= 0
 *
 * H and W may be odd: OH = H / 2, OW = W / 2 (floor), the last row/column unread.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void relu_max_pool2x2_forward(
    const T* __restrict__ x, T* __restrict__ y, signed char* __restrict__ winner,
    int N, int C, int H, int W, int OH, int OW)
{
    const long long total = (long long)N * C * OH * OW;
    FOR_EACH_ITEM(item, total) {
        const int j = (int)(item % OW);
        const int i = (int)((item / OW) % OH);
        const long long plane = item / ((long long)OW * OH);
        const T* top = x + plane * H * W + (long long)(2 * i) * W + 2 * j;
        T best = top[0];
        int arg = 0;
        if (top[1] > best) { best = top[1]; arg = 1; }
        if (top[W] > best) { best = top[W]; arg = 2; }
        if (top[W + 1] > best) { best = top[W + 1]; arg = 3; }
        const bool positive = best > T(0);
        y[item] = positive ? best : T(0);
        winner[item] = positive ? (signed char)arg : (signed char)-1;
    }
}


/* ------------------------------------------------------------------------------
 * ReLU and 2x2 max pooling, backward: one thread per input pixel (a gather).
 *
 * "En la decimación se actualiza sólo la neurona ganadora" (deck 003,
 * "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES Y DE SUBMUESTREO"), and the
 * ReLU passes the error only where its output was positive:
 *
 *   dx[n, c, h, w] = dy[n, c, h/2, w/2]  if winner[n, c, h/2, w/2] = 2(h%2) + w%2
 *                    0                   otherwise (or outside every window)
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void relu_max_pool2x2_backward(
    const T* __restrict__ dy, const signed char* __restrict__ winner, T* __restrict__ dx,
    int N, int C, int H, int W, int OH, int OW)
{
    const long long total = (long long)N * C * H * W;
    FOR_EACH_ITEM(item, total) {
        const int w = (int)(item % W);
        const int h = (int)((item / W) % H);
        const long long plane = item / ((long long)W * H);
        const int i = h / 2, j = w / 2;
        T value = T(0);
        if (i < OH && j < OW) {
            const long long out = plane * OH * OW + (long long)i * OW + j;
            if (winner[out] == 2 * (h % 2) + (w % 2)) value = dy[out];
        }
        dx[item] = value;
    }
}


/* ------------------------------------------------------------------------------
 * Softmax cross-entropy, forward and backward in one block.
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 3 and 4:
 *
 *   log P(k | z_r) = z_rk - m_r - log sum_j exp(z_rj - m_r),   m_r = max_j z_rj
 *   loss_sum    += sum_r -log P(y_r | z_r)        (a double, as train() sums it)
 *   correct     += #{r : argmax_j z_rj = y_r}      (first maximum on ties)
 *   dlogits[r,k] = (P(k | z_r) - [k = y_r]) / N
 *
 * Launched with exactly one block of SOFTMAX_THREADS threads. Thread t owns
 * rows t, t + SOFTMAX_THREADS, ... (in that order); the block then adds the
 * per-thread sums by a fixed tree, and thread 0 adds the batch's totals to
 * the running sums: no atomics, the same bits every run.
 * ---------------------------------------------------------------------------- */
#define SOFTMAX_THREADS 256

template <typename T>
__device__ void softmax_cross_entropy(
    const T* __restrict__ logits, const long long* __restrict__ labels, T* __restrict__ dlogits,
    double* __restrict__ loss_sum, long long* __restrict__ correct, int N, int K)
{
    __shared__ double loss_part[SOFTMAX_THREADS];
    __shared__ long long hit_part[SOFTMAX_THREADS];
    const int t = threadIdx.x;
    double my_loss = 0.0;
    long long my_hits = 0;
    for (int r = t; r < N; r += SOFTMAX_THREADS) {
        const T* z = logits + (long long)r * K;
        T* d = dlogits + (long long)r * K;
        const long long label = labels[r];
        T top = z[0];
        int arg = 0;
        for (int k = 1; k < K; ++k)
            if (z[k] > top) { top = z[k]; arg = k; }
        T total = T(0);
        for (int k = 0; k < K; ++k) total += exp(z[k] - top);
        const T log_total = log(total);
        for (int k = 0; k < K; ++k) {
            const T log_p = z[k] - top - log_total;
            d[k] = (exp(log_p) - (k == label ? T(1) : T(0))) / T(N);
            if (k == label) my_loss -= (double)log_p;
        }
        my_hits += (arg == label);
    }
    loss_part[t] = my_loss;
    hit_part[t] = my_hits;
    __syncthreads();
    for (int half = SOFTMAX_THREADS / 2; half > 0; half /= 2) {
        if (t < half) {
            loss_part[t] += loss_part[t + half];
            hit_part[t] += hit_part[t + half];
        }
        __syncthreads();
    }
    if (t == 0) {
        *loss_sum += loss_part[0];
        *correct += hit_part[0];
    }
}


/* ------------------------------------------------------------------------------
 * SGD with momentum and weight decay for every parameter tensor, one launch.
 *
 * Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Stochastic Gradient Descend",
 * as minicnn/optim.py writes it, per element of every tensor:
 *
 *   g = grad + decay * theta;   v = gamma * v + lr * g;   theta = theta - v
 *   (gamma = 0: theta = theta - lr * g, velocity unused)
 *
 * The tensors are concatenated virtually: tensor t holds the items
 * [offsets[t], offsets[t+1]) of a grid-stride loop over offsets[count]
 * items; a thread finds its tensor by binary search of offsets. lr is read
 * from device memory, so a learning-rate schedule needs no new graph.
 * ---------------------------------------------------------------------------- */
template <typename T>
__device__ void sgd_momentum_multi(
    const unsigned long long* __restrict__ data_ptrs, const unsigned long long* __restrict__ grad_ptrs,
    const unsigned long long* __restrict__ velocity_ptrs, const long long* __restrict__ offsets,
    const T* __restrict__ lr_ptr, int count, T gamma, T decay)
{
    const long long total = offsets[count];
    const T lr = *lr_ptr;
    FOR_EACH_ITEM(item, total) {
        int lo = 0, hi = count - 1;       /* the tensor t with offsets[t] <= item < offsets[t+1] */
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (offsets[mid] <= item) lo = mid; else hi = mid - 1;
        }
        const long long e = item - offsets[lo];
        T* theta = (T*)data_ptrs[lo];
        const T* grad = (const T*)grad_ptrs[lo];
        const T g = decay != T(0) ? grad[e] + decay * theta[e] : grad[e];
        if (gamma != T(0)) {
            T* v = (T*)velocity_ptrs[lo];
            const T vel = gamma * v[e] + lr * g;
            v[e] = vel;
            theta[e] -= vel;
        } else {
            theta[e] -= lr * g;
        }
    }
}


/* ------------------------------------------------------------------------------
 * extern "C" instantiations, <kernel>_f32 and <kernel>_f64.
 * ---------------------------------------------------------------------------- */
#define INSTANTIATE_FUSED(T, SUFFIX)                                                                  \
    extern "C" __global__ void relu_max_pool2x2_forward_##SUFFIX(                                     \
        const T* x, T* y, signed char* winner, int N, int C, int H, int W, int OH, int OW)            \
    { relu_max_pool2x2_forward<T>(x, y, winner, N, C, H, W, OH, OW); }                                \
    extern "C" __global__ void relu_max_pool2x2_backward_##SUFFIX(                                    \
        const T* dy, const signed char* winner, T* dx, int N, int C, int H, int W, int OH, int OW)    \
    { relu_max_pool2x2_backward<T>(dy, winner, dx, N, C, H, W, OH, OW); }                             \
    extern "C" __global__ void softmax_cross_entropy_##SUFFIX(                                        \
        const T* logits, const long long* labels, T* dlogits, double* loss_sum, long long* correct,   \
        int N, int K)                                                                                 \
    { softmax_cross_entropy<T>(logits, labels, dlogits, loss_sum, correct, N, K); }                   \
    extern "C" __global__ void sgd_momentum_multi_##SUFFIX(                                           \
        const unsigned long long* data_ptrs, const unsigned long long* grad_ptrs,                     \
        const unsigned long long* velocity_ptrs, const long long* offsets, const T* lr_ptr,           \
        int count, T gamma, T decay)                                                                  \
    { sgd_momentum_multi<T>(data_ptrs, grad_ptrs, velocity_ptrs, offsets, lr_ptr, count, gamma, decay); }

INSTANTIATE_FUSED(float, f32)
INSTANTIATE_FUSED(double, f64)
