# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Convolution on the CPU: im2col + GEMM, one image per OpenMP thread, and the direct kernels.

Sections of this file, in order: im2col + GEMM (below), the whole-batch GEMM
for layers with few output positions, the dense case (a filter as large as
its input), the direct kernel (``direct_conv.h``), the row kernels
(``direct_rows.h``, ``direct_rows_grad.h``) and the batch-in-lanes gradients
(``batch_lanes.h``). Each section opens with why it exists; which layer
shape goes where is decided in ``minicnn/backends/cython_backend.py``.

Design (and why)
----------------
The slide formula (deck 003_7c437a475fa69432.txt, "Correlación cruzada")

    Y[n, o, i, j] = b[o] + sum_{c, p, q} X[n, c, i*S + p*D - P, j*S + q*D - P] * W[o, c, p, q]

is a matrix product once every receptive field is laid out as a column:

* ``im2col`` copies, for one image, the pixel under tap ``(c, p, q)`` of output
  ``(i, j)`` into ``col[(c*F_H + p)*F_W + q, i*W_out + j]`` (zero where the tap
  falls in the padding). The rows of one group's channels are contiguous.
* Forward: ``Y[n, group g] = W_g @ col_g``, a (C_out/G x K) by (K x H_out*W_out)
  product with K = (C_in/G)*F_H*F_W. The product is done by BLAS (``sgemm`` /
  ``dgemm`` from ``scipy.linalg.cython_blas``), which is far faster than any
  loop nest we could write by hand at these sizes.
* Backward (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation"):
  ``dW_g += dY_g @ col_g^T`` (the correlation of the input with the error)
  and ``dcol_g = W_g^T @ dY_g`` followed by ``col2im``, which adds every
  column entry back onto the pixel it was copied from (the "upsample" of the
  error through the filter).

Parallelism: the batch is split across OpenMP threads (``prange``); each
thread owns a slice of the column workspace, so no two threads ever write the
same memory. Weight gradients are summed per fixed group of images (the groups
depend on the batch size, not on the threads) and the groups' sums added in
order at the end, so results are the same bits with any number of threads.
BLAS is called single-threaded from inside each thread.
All arrays come from ``minicnn.functional`` already validated and C-contiguous;
bounds checks are off.
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef extern from *:
    """
    #ifdef _OPENMP
    #define MINICNN_OPENMP 1
    #else
    #define MINICNN_OPENMP 0
    #endif
    """
    int MINICNN_OPENMP


def openmp_enabled():
    """True when the kernels were compiled with OpenMP (several threads per call)."""
    return bool(MINICNN_OPENMP)


cdef extern from "multiversion.h" nogil:
    const char* minicnn_isa_name()


def kernel_isa():
    """The instruction set of the kernel copies that run: "x86-64-v4" (AVX-512), "x86-64-v3" (AVX2 + FMA),
    "x86-64" (the baseline), or for other processors "aarch64" / "generic".

    A normal build has a copy per level and picks the best the CPU supports (kernels/cpu/multiversion.h);
    a MINICNN_SINGLE_TARGET build has one, and this is the level it was compiled for. The register
    blocking, and with it ``row_lanes()``, ``lanes_group()`` and ``rows_weight_grad_lanes()``, depends
    on it (a cache of measured timings should be keyed on it)."""
    return minicnn_isa_name().decode("ascii")


cdef inline void gemm_rowmajor(char trans_a, char trans_b, int m, int n, int k, floating alpha,
                               const floating* a, int lda, const floating* b, int ldb,
                               floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major ``C(m x n) = alpha * op(A) @ op(B) + beta * C``.

    BLAS is column-major; a row-major matrix read column-major is its
    transpose, so ``C^T = op(B)^T op(A)^T`` is the same call with the operands
    swapped (what CBLAS does for ``CblasRowMajor``).
    """
    if floating is float:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef inline void tap_columns(Py_ssize_t q, Py_ssize_t width, Py_ssize_t sw, Py_ssize_t pw, Py_ssize_t dw,
                             Py_ssize_t ow, Py_ssize_t* j_lo, Py_ssize_t* j_hi) noexcept nogil:
    """The output columns j whose kernel column q lands inside the image: 0 <= j*S - P + q*D < W."""
    cdef Py_ssize_t lo = 0, hi = ow
    while lo < ow and lo * sw - pw + q * dw < 0:
        lo += 1
    while hi > lo and (hi - 1) * sw - pw + q * dw >= width:
        hi -= 1
    j_lo[0] = lo
    j_hi[0] = hi


# Column entries per chunk of output rows: 2**17 floats is 512 KB, half the 1 MB level-2 cache of
# this project's machine (AMD Zen 4). A mid-network layer (64 channels, 3x3, 56x56 maps) has a
# 7 MB column matrix per image: built whole, it is written to and read back from slower memory;
# built 4 output rows at a time, each chunk is used by the products while it is still in cache.
cdef enum:
    COL_CHUNK_ENTRIES = 131072


cdef inline Py_ssize_t chunk_rows(Py_ssize_t k, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    """How many output rows of one image to lay out as columns at a time (at least 1, at most H_out)."""
    cdef Py_ssize_t rows = COL_CHUNK_ENTRIES // (k * ow)
    if rows < 1:
        return 1
    return rows if rows < oh else oh


cdef inline bint is_pointwise(Py_ssize_t kh, Py_ssize_t kw, int sh, int sw, int ph, int pw) noexcept nogil:
    """A 1x1 filter, stride 1, no padding: the column matrix would be a copy of the image, so the
    products read (and, for dX, write) the image directly. 32x128x28x28 with 128 1x1 filters:
    forward 5.9 -> ms here (AMD Zen 5, 2 threads)."""
    return kh == 1 and kw == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0


def column_chunk_rows(Py_ssize_t k, Py_ssize_t oh, Py_ssize_t ow):
    """Output rows per chunk of the column matrix (the workspace of ``conv2d_forward``/``conv2d_backward``
    needs K*W_out*rows entries per thread)."""
    return chunk_rows(k, oh, ow)


cdef void im2col(const floating* image, floating* col,
                 Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width,
                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                 Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ow, Py_ssize_t ld) noexcept nogil:
    """Lay out the receptive fields of output rows ``i0 <= i < i1`` of one (C, H, W) image as columns of
    ``col`` (C*F_H*F_W, (i1 - i0)*W_out).

    ``ld`` is the distance between two rows of ``col``: (i1 - i0)*W_out for one
    image's own matrix, N*H_out*W_out when the images of a batch sit side by side.
    """
    cdef Py_ssize_t c, p, q, i, j, row_in, j_lo, j_hi
    cdef const floating* src
    cdef floating* dst
    cdef floating* row_start = col
    for c in range(channels):
        for p in range(kh):
            for q in range(kw):
                dst = row_start
                row_start += ld
                tap_columns(q, width, sw, pw, dw, ow, &j_lo, &j_hi)
                for i in range(i0, i1):
                    row_in = i * sh - ph + p * dh
                    if row_in < 0 or row_in >= height:
                        memset(dst, 0, ow * sizeof(floating))
                    else:
                        src = image + (c * height + row_in) * width - pw + q * dw
                        for j in range(j_lo):
                            dst[j] = 0
                        if sw == 1:
                            for j in range(j_lo, j_hi):
                                dst[j] = src[j]
                        else:
                            for j in range(j_lo, j_hi):
                                dst[j] = src[j * sw]
                        for j in range(j_hi, ow):
                            dst[j] = 0
                    dst += ow


cdef void col2im(const floating* col, floating* image,
                 Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width,
                 Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                 Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t ow, Py_ssize_t ld) noexcept nogil:
    """Add every column entry back onto the image pixel ``im2col`` copied it from (the adjoint of im2col).

    Adds to ``image``; the caller clears it first.
    """
    cdef Py_ssize_t c, p, q, i, j, row_in, j_lo, j_hi
    cdef floating* dst
    cdef const floating* src
    cdef const floating* row_start = col
    for c in range(channels):
        for p in range(kh):
            for q in range(kw):
                src = row_start
                row_start += ld
                tap_columns(q, width, sw, pw, dw, ow, &j_lo, &j_hi)
                for i in range(i0, i1):
                    row_in = i * sh - ph + p * dh
                    if 0 <= row_in < height:
                        dst = image + (c * height + row_in) * width - pw + q * dw
                        if sw == 1:
                            for j in range(j_lo, j_hi):
                                dst[j] += src[j]
                        else:
                            for j in range(j_lo, j_hi):
                                dst[j * sw] += src[j]
                    src += ow


def conv2d_forward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w, const floating[::1] b,
                   floating[:, :, :, ::1] y, floating[:, ::1] col_workspace,
                   int sh, int sw, int ph, int pw, int dh, int dw, int groups, int num_threads):
    """``y = conv2d(x, w) + b`` for a batch; ``b`` may be None.

    ``col_workspace`` has one row per thread, each of length
    C_in*F_H*F_W*H_out*W_out (``num_threads`` rows at least).
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t oh = y.shape[2], ow = y.shape[3]
    cdef int out_per_group = <int>(out_ch // groups)
    cdef int k = <int>(w.shape[1] * kh * kw)
    cdef int positions = <int>(oh * ow)
    cdef bint has_bias = b is not None
    cdef Py_ssize_t n, g, o, s
    cdef int t
    cdef floating* col
    cdef floating* out
    cdef floating bias
    cdef bint pointwise = is_pointwise(kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t rows = oh if pointwise else chunk_rows(channels * kh * kw, oh, ow)
    cdef Py_ssize_t i0, i1
    cdef int span
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        col = &col_workspace[t, 0]
        i0 = 0
        while i0 < oh:
            i1 = min(i0 + rows, oh)
            span = <int>((i1 - i0) * ow)
            if pointwise:
                col = <floating*>&x[n, 0, 0, 0]  # a 1x1 layer's column matrix is the image itself (read only)
            else:
                im2col(&x[n, 0, 0, 0], col, channels, height, width, kh, kw, sh, sw, ph, pw, dh, dw, i0, i1, ow, span)
            for g in range(groups):
                gemm_rowmajor(c'N', c'N', out_per_group, span, k, <floating>1.0,
                              &w[g * out_per_group, 0, 0, 0], k, col + g * k * span, span,
                              <floating>0.0, &y[n, g * out_per_group, i0, 0], positions)
            i0 = i1
        if has_bias:
            for o in range(out_ch):
                bias = b[o]
                out = &y[n, o, 0, 0]
                for s in range(positions):
                    out[s] = out[s] + bias


def conv2d_backward(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                    const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                    floating[:, :, :, ::1] dw_workspace, floating[:, ::1] col_workspace,
                    int sh, int sw, int ph, int pw, int dh, int dw, int groups, int num_threads,
                    bint input_grad=True, floating[:, :, :, ::1] y=None):
    """Fill ``dx`` and the transposed weight gradients of fixed groups of images, ``dw_workspace[g]``
    (groups, K, C_out/groups).

    ``dw_workspace`` has one slot per image group (its first dimension, G): group g holds images
    [g*N/G, (g+1)*N/G), whatever the number of threads, so the caller, summing the slots in
    order, gets the same bits with 1 or 16 threads. The workspace must be zeroed first; the
    caller sums it over groups and transposes each (K, C_out/groups) block. ``col_workspace``
    has a row per thread. With ``input_grad=False`` (the first layer of a network, whose input
    is data) ``dx`` is left untouched and its two costly steps are skipped.

    With ``y`` given, the same column matrix also gives the forward product ``y = conv2d(x, w)``
    (no bias): the pair a transposed convolution's backward needs (its dX is the convolution of
    its dY, its dW this convolution's weight gradient), from one im2col instead of two.
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t image_groups = dw_workspace.shape[0]
    cdef int out_per_group = <int>(out_ch // groups)
    cdef int k = <int>(w.shape[1] * kh * kw)
    cdef int positions = <int>(oh * ow)
    cdef Py_ssize_t n, g, part
    cdef floating* col
    cdef floating* dw_part
    cdef const floating* dy_group
    cdef bint pointwise = is_pointwise(kh, kw, sh, sw, ph, pw)
    cdef Py_ssize_t rows = oh if pointwise else chunk_rows(channels * kh * kw, oh, ow)
    cdef Py_ssize_t i0, i1
    cdef int span
    cdef bint forward = y is not None
    for part in prange(image_groups, nogil=True, schedule="static", num_threads=num_threads):
        dw_part = &dw_workspace[part, 0, 0, 0]
        for n in range(n_images * part // image_groups, n_images * (part + 1) // image_groups):
            if pointwise:
                col = <floating*>&x[n, 0, 0, 0]
            else:
                col = &col_workspace[threadid(), 0]
            if input_grad and not pointwise:
                memset(&dx[n, 0, 0, 0], 0, channels * height * width * sizeof(floating))
            i0 = 0
            while i0 < oh:
                i1 = min(i0 + rows, oh)
                span = <int>((i1 - i0) * ow)
                if not pointwise:
                    im2col(&x[n, 0, 0, 0], col, channels, height, width, kh, kw, sh, sw, ph, pw, dh, dw, i0, i1, ow,
                           span)
                if forward:
                    for g in range(groups):
                        gemm_rowmajor(c'N', c'N', out_per_group, span, k, <floating>1.0,
                                      &w[g * out_per_group, 0, 0, 0], k, col + g * k * span, span,
                                      <floating>0.0, &y[n, g * out_per_group, i0, 0], positions)
                for g in range(groups):
                    dy_group = &dy[n, g * out_per_group, i0, 0]
                    # dW_g^T += col_g @ dY_g^T. The same product as dW_g += dY_g @ col_g^T, but BLAS
                    # runs it faster with the long side (K) first: 0.39 against 0.59 ms for LeNet's C3 here.
                    gemm_rowmajor(c'N', c'T', k, out_per_group, span, <floating>1.0,
                                  col + g * k * span, span, dy_group, positions,
                                  <floating>1.0, dw_part + g * k * out_per_group, out_per_group)
                if input_grad and pointwise:
                    for g in range(groups):  # dX_g = W_g^T @ dY_g, straight into dx
                        gemm_rowmajor(c'T', c'N', k, span, out_per_group, <floating>1.0,
                                      &w[g * out_per_group, 0, 0, 0], k, &dy[n, g * out_per_group, 0, 0], positions,
                                      <floating>0.0, &dx[n, g * k, 0, 0], positions)
                elif input_grad:
                    # dcol_g = W_g^T @ dY_g, written over col (its rows were used above), then added onto dx
                    for g in range(groups):
                        gemm_rowmajor(c'T', c'N', k, span, out_per_group, <floating>1.0,
                                      &w[g * out_per_group, 0, 0, 0], k, &dy[n, g * out_per_group, i0, 0], positions,
                                      <floating>0.0, col + g * k * span, span)
                    col2im(col, &dx[n, 0, 0, 0], channels, height, width, kh, kw, sh, sw, ph, pw, dh, dw,
                           i0, i1, ow, span)
                i0 = i1


cdef void input_grad_image(const floating* w, const floating* dy_image, floating* col, floating* dx_image,
                           Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                           Py_ssize_t oh, Py_ssize_t ow, int groups, int out_per_group, int k,
                           int positions) noexcept nogil:
    """``dx`` of one image: ``dcol_g = W_g^T @ dY_g`` for each group into ``col``, then col2im (for a
    1x1 layer, straight into ``dx``)."""
    cdef int g
    if is_pointwise(kh, kw, <int>sh, <int>sw, <int>ph, <int>pw):
        for g in range(groups):
            gemm_rowmajor(c'T', c'N', k, positions, out_per_group, <floating>1.0,
                          w + g * out_per_group * k, k, dy_image + g * out_per_group * positions, positions,
                          <floating>0.0, dx_image + g * k * positions, positions)
        return
    for g in range(groups):
        gemm_rowmajor(c'T', c'N', k, positions, out_per_group, <floating>1.0,
                      w + g * out_per_group * k, k, dy_image + g * out_per_group * positions, positions,
                      <floating>0.0, col + g * k * positions, positions)
    memset(dx_image, 0, channels * height * width * sizeof(floating))
    col2im(col, dx_image, channels, height, width, kh, kw, sh, sw, ph, pw, dh, dw, 0, oh, ow, positions)


# ---------------------------------------------------------------------------------------------
# Whole-batch variant, for layers with few output positions (LeNet's C5 has one per image).
#
# One image's product W @ col is then a thin matrix times a vector, which BLAS cannot make
# fast; placing the columns of all N images side by side gives one product with N*H_out*W_out
# columns (and, for dW, a long inner dimension), where BLAS runs at full speed. OpenMP threads
# build the columns and scatter the results; the products are small enough for one BLAS thread.
# The price is a transposition between (C_out, N, positions) and (N, C_out, positions).

def conv2d_forward_batched(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                           const floating[::1] b, floating[:, :, :, ::1] y,
                           floating[:, ::1] col, floating[:, ::1] y_t,
                           int sh, int sw, int ph, int pw, int dh, int dw, int groups, int num_threads):
    """``y = conv2d(x, w) + b`` with one GEMM per group; ``col`` is (C_in*F_H*F_W, N*P), ``y_t`` (C_out, N*P)."""
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t oh = y.shape[2], ow = y.shape[3]
    cdef int out_per_group = <int>(out_ch // groups)
    cdef int k = <int>(w.shape[1] * kh * kw)
    cdef int positions = <int>(oh * ow)
    cdef int all_positions = <int>(n_images * oh * ow)
    cdef bint has_bias = b is not None
    cdef Py_ssize_t n, g, o, s
    cdef floating bias
    cdef floating* out
    cdef const floating* src
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        im2col(&x[n, 0, 0, 0], &col[0, n * positions], channels, height, width,
               kh, kw, sh, sw, ph, pw, dh, dw, 0, oh, ow, all_positions)
    with nogil:
        for g in range(groups):
            gemm_rowmajor(c'N', c'N', out_per_group, all_positions, k, <floating>1.0,
                          &w[g * out_per_group, 0, 0, 0], k, &col[g * k, 0], all_positions,
                          <floating>0.0, &y_t[g * out_per_group, 0], all_positions)
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        for o in range(out_ch):
            out = &y[n, o, 0, 0]
            src = &y_t[o, n * positions]
            bias = b[o] if has_bias else 0
            for s in range(positions):
                out[s] = src[s] + bias


def conv2d_backward_batched(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w,
                            const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                            floating[:, ::1] dw_flat, floating[:, ::1] col, floating[:, ::1] dy_t,
                            int sh, int sw, int ph, int pw, int dh, int dw, int groups, int num_threads,
                            bint input_grad=True):
    """``dw_flat`` (C_out, K) = dY @ col^T in one GEMM per group; ``dx`` via W^T @ dY and col2im."""
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t oh = dy.shape[2], ow = dy.shape[3]
    cdef int out_per_group = <int>(out_ch // groups)
    cdef int k = <int>(w.shape[1] * kh * kw)
    cdef int positions = <int>(oh * ow)
    cdef int all_positions = <int>(n_images * oh * ow)
    cdef Py_ssize_t n, g, o, s
    cdef floating* dst
    cdef const floating* src
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        im2col(&x[n, 0, 0, 0], &col[0, n * positions], channels, height, width,
               kh, kw, sh, sw, ph, pw, dh, dw, 0, oh, ow, all_positions)
        for o in range(out_ch):
            src = &dy[n, o, 0, 0]
            dst = &dy_t[o, n * positions]
            for s in range(positions):
                dst[s] = src[s]
    with nogil:
        for g in range(groups):
            gemm_rowmajor(c'N', c'T', out_per_group, k, all_positions, <floating>1.0,
                          &dy_t[g * out_per_group, 0], all_positions, &col[g * k, 0], all_positions,
                          <floating>0.0, &dw_flat[g * out_per_group, 0], k)
            if input_grad:
                gemm_rowmajor(c'T', c'N', k, all_positions, out_per_group, <floating>1.0,
                              &w[g * out_per_group, 0, 0, 0], k, &dy_t[g * out_per_group, 0], all_positions,
                              <floating>0.0, &col[g * k, 0], all_positions)
    if input_grad:
        for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
            memset(&dx[n, 0, 0, 0], 0, channels * height * width * sizeof(floating))
            col2im(&col[0, n * positions], &dx[n, 0, 0, 0], channels, height, width,
                   kh, kw, sh, sw, ph, pw, dh, dw, 0, oh, ow, all_positions)


# ---------------------------------------------------------------------------------------------
# Dense case: a filter as large as its input (LeNet's C5: 120 filters of 16x5x5 on 16x5x5 maps).
#
# With no padding and F_H x F_W = H x W there is one output position per image, and the
# convolution is the fully connected layer of deck 002_35ce60e4ae78ad9e.txt ("Aprendizaje:
# Backpropagation", capa FC) on the flattened image: Y = X W^T + b, dX = dY W, dW = dY^T X,
# with X (N, K = C*H*W) the images as rows, W (C_out, K) and Y (N, C_out) exactly as they lie in
# memory, so no column matrix is built. The products are cut into fixed blocks, of rows of X
# (forward, dX) and of rows of dW (filters), one BLAS call each, shared out among the OpenMP
# threads. The blocks depend on the shapes only, never on the number of threads, and no block's
# result is a partial sum of another's: every call computes the same products with any number of
# threads, bit for bit (one call per thread, as before, gave results that changed with the
# thread count in the last bits: BLAS sums a different-sized product in another order).

def dense_forward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[::1] b,
                  floating[:, ::1] y, int block_rows, int num_threads):
    """``y = x @ w.T + b`` for ``x`` (N, K), ``w`` (C_out, K), in blocks of ``block_rows`` rows; ``b`` may be None."""
    cdef int n_rows = <int>x.shape[0], k = <int>x.shape[1], out_ch = <int>w.shape[0]
    cdef int blocks = (n_rows + block_rows - 1) // block_rows
    cdef bint has_bias = b is not None
    cdef int blk, lo, hi, r, o
    for blk in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        lo = blk * block_rows
        hi = min(lo + block_rows, n_rows)
        gemm_rowmajor(c'N', c'T', hi - lo, out_ch, k, <floating>1.0, &x[lo, 0], k, &w[0, 0], k,
                      <floating>0.0, &y[lo, 0], out_ch)
        if has_bias:
            for r in range(lo, hi):
                for o in range(out_ch):
                    y[r, o] = y[r, o] + b[o]


def dense_backward(const floating[:, ::1] x, const floating[:, ::1] w, const floating[:, ::1] dy,
                   floating[:, ::1] dx, floating[:, ::1] dw, int block_rows, int block_filters,
                   int num_threads, bint input_grad=True, bint weight_grad=True):
    """With ``weight_grad``, ``dw = dy.T @ x`` in blocks of ``block_filters`` filters; with ``input_grad``,
    ``dx = dy @ w`` in blocks of ``block_rows`` rows; all in one parallel region."""
    cdef int n_rows = <int>dy.shape[0], k = <int>w.shape[1], out_ch = <int>w.shape[0]
    cdef int filter_blocks = (out_ch + block_filters - 1) // block_filters if weight_grad else 0
    cdef int row_blocks = (n_rows + block_rows - 1) // block_rows if input_grad else 0
    cdef int blk, lo, hi
    for blk in prange(filter_blocks + row_blocks, nogil=True, schedule="static", num_threads=num_threads):
        if blk < filter_blocks:
            lo = blk * block_filters
            hi = min(lo + block_filters, out_ch)
            gemm_rowmajor(c'T', c'N', hi - lo, k, n_rows, <floating>1.0, &dy[0, lo], out_ch, &x[0, 0], k,
                          <floating>0.0, &dw[lo, 0], k)
        else:
            lo = (blk - filter_blocks) * block_rows
            hi = min(lo + block_rows, n_rows)
            gemm_rowmajor(c'N', c'N', hi - lo, k, out_ch, <floating>1.0, &dy[lo, 0], out_ch, &w[0, 0], k,
                          <floating>0.0, &dx[lo, 0], k)


# ---------------------------------------------------------------------------------------------
# Direct path for small layers (see direct_conv.h): no column matrix for the forward pass or the
# weight gradient. Stride 1, no padding, no dilation, one group, C_out a multiple of 16.

cdef extern from "direct_conv.h" nogil:
    int MINICNN_HAVE_DIRECT
    void minicnn_direct_forward_f32(const float* x, const float* w_t, float* y_t, Py_ssize_t C, Py_ssize_t H,
                                    Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_direct_forward_f64(const double* x, const double* w_t, double* y_t, Py_ssize_t C, Py_ssize_t H,
                                    Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_direct_weight_grad_f32(const float* x, const float* dy_t, float* dw_t, Py_ssize_t C,
                                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_direct_weight_grad_f64(const double* x, const double* dy_t, double* dw_t, Py_ssize_t C,
                                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)


def direct_available():
    """True when the direct kernel was compiled (gcc or clang); otherwise the backend never calls it."""
    return bool(MINICNN_HAVE_DIRECT)


cdef void pad_image(const floating* image, floating* padded, Py_ssize_t channels, Py_ssize_t height,
                    Py_ssize_t width, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """Copy one (C, H, W) image into the middle of a zeroed (C, H + 2P_H, W + 2P_W) one."""
    cdef Py_ssize_t c, r, padded_width = width + 2 * pw, padded_height = height + 2 * ph
    memset(padded, 0, channels * padded_height * padded_width * sizeof(floating))
    for c in range(channels):
        for r in range(height):
            memcpy(padded + (c * padded_height + r + ph) * padded_width + pw, image + (c * height + r) * width,
                   width * sizeof(floating))


def conv2d_forward_direct(const floating[:, :, :, ::1] x, const floating[:, ::1] w_t, const floating[::1] b,
                          floating[:, :, :, ::1] y, floating[:, ::1] out_workspace, int ph, int pw,
                          floating[:, ::1] pad_workspace, int num_threads):
    """``y = conv2d(x, w) + b`` by the direct kernel; ``w_t`` is the weight as (C_in*F_H*F_W, C_out).

    With padding, each image is first copied into a zero-bordered one in
    ``pad_workspace`` (a row per thread); the kernel itself only knows valid
    correlations.
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = y.shape[1], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t padded_height = height + 2 * ph, padded_width = width + 2 * pw
    cdef Py_ssize_t kh = padded_height - oh + 1, kw = padded_width - ow + 1
    cdef Py_ssize_t positions = oh * ow
    cdef bint has_bias = b is not None
    cdef bint padded = ph > 0 or pw > 0
    cdef Py_ssize_t n, o, s
    cdef int t
    cdef floating* y_t
    cdef floating* out
    cdef const floating* image
    cdef floating bias
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        y_t = &out_workspace[t, 0]
        image = &x[n, 0, 0, 0]
        if padded:
            pad_image(image, &pad_workspace[t, 0], channels, height, width, ph, pw)
            image = &pad_workspace[t, 0]
        if floating is float:
            minicnn_direct_forward_f32(image, &w_t[0, 0], y_t, channels, padded_height, padded_width, out_ch, kh, kw)
        else:
            minicnn_direct_forward_f64(image, &w_t[0, 0], y_t, channels, padded_height, padded_width, out_ch, kh, kw)
        for o in range(out_ch):
            out = &y[n, o, 0, 0]
            bias = b[o] if has_bias else 0
            for s in range(positions):
                out[s] = y_t[s * out_ch + o] + bias


def conv2d_weight_grad_direct(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                              floating[:, :, :, ::1] dw_workspace, floating[:, ::1] dy_workspace, int num_threads):
    """Weight gradient by the direct kernel into ``dw_workspace[g]`` (1, K, C_out) for fixed groups of
    images (as in ``conv2d_backward``; the caller sums them in group order). ``dy_workspace`` has a
    row per thread (dY of one image with the pixel index first)."""
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t kh = height - oh + 1, kw = width - ow + 1
    cdef Py_ssize_t image_groups = dw_workspace.shape[0]
    cdef Py_ssize_t positions = oh * ow
    cdef Py_ssize_t n, o, s, part
    cdef floating* dy_t
    cdef const floating* src
    for part in prange(image_groups, nogil=True, schedule="static", num_threads=num_threads):
        dy_t = &dy_workspace[threadid(), 0]
        for n in range(n_images * part // image_groups, n_images * (part + 1) // image_groups):
            for o in range(out_ch):
                src = &dy[n, o, 0, 0]
                for s in range(positions):
                    dy_t[s * out_ch + o] = src[s]
            if floating is float:
                minicnn_direct_weight_grad_f32(&x[n, 0, 0, 0], dy_t, &dw_workspace[part, 0, 0, 0],
                                               channels, height, width, out_ch, kh, kw)
            else:
                minicnn_direct_weight_grad_f64(&x[n, 0, 0, 0], dy_t, &dw_workspace[part, 0, 0, 0],
                                               channels, height, width, out_ch, kh, kw)


# ---------------------------------------------------------------------------------------------
# Row path (see direct_rows.h): a direct convolution that puts 16 pixels (AVX-512; 8 on AVX2, 4 on the
# baseline: row_lanes()) of one OUTPUT ROW in a
# vector, for stride-1 layers with few output channels, where neither the 16-channel direct kernel
# above (C_out % 16 == 0) nor im2col + GEMM (a product with a dimension of 6) is fast.
#
# Why along the row: LeNet's C1 has 6 filters but 28-pixel output rows. Sixteen neighbouring
# outputs y[o, i, j0:j0+16] use the same weight w[o, c, p, q] times sixteen consecutive input
# pixels x[c, i+p, j0+q : j0+q+16]: one broadcast weight, one unaligned load, one vector FMA.
#
# Why this register blocking: one loaded input vector serves OB output channels (the same pixels
# under the same tap), and a tile of OB channels x RB rows keeps RB*OB independent sums (12 for
# 6 x 2) in registers, enough to hide the latency of the FMA. The kernel sums over (c, p, q) with
# the tile's outputs held in registers and writes each output once.
#
# Why this loop order: per image, channel blocks, then row blocks, then 16-column blocks; the
# image (a few KB) and the weights stay in L1 throughout. Images go to OpenMP threads whole.
#
# Two uses, one kernel:
#   forward  y  = b + x (*) W                  (deck 003_7c437a475fa69432.txt, "Correlación cruzada")
#   input gradient  dx = pad(dY, KH-1, KW-1) (*) rot180(W) with C_in and C_out swapped
#                   (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2):
#       dx[c, y, x] = sum_{o,p,q} W[o, c, p, q] * dY[o, y - p, x - q]
#                   = sum_{o,p,q} W[o, c, KH-1-p, KW-1-q] * dYpad[o, y + p, x + q]
# The kernel has no padding and needs output rows of at least row_lanes() pixels: when the image must be
# padded (the gradient) or is narrower, each thread copies it into its own zero-padded workspace,
# wide enough for row_lanes() output columns, and copies the valid columns of the result out.

cdef extern from "direct_rows.h" nogil:
    int MINICNN_HAVE_ROWS
    Py_ssize_t minicnn_row_lanes()
    void minicnn_rows_conv_f32(const float* x, Py_ssize_t ldx, Py_ssize_t xcs, const float* w_t,
                               const float* bias, float* y, Py_ssize_t ldy, Py_ssize_t ycs, Py_ssize_t C,
                               Py_ssize_t O, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                               Py_ssize_t r_lo, Py_ssize_t r_hi, Py_ssize_t c_lo, Py_ssize_t c_hi)
    void minicnn_rows_conv_f64(const double* x, Py_ssize_t ldx, Py_ssize_t xcs, const double* w_t,
                               const double* bias, double* y, Py_ssize_t ldy, Py_ssize_t ycs, Py_ssize_t C,
                               Py_ssize_t O, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t KH, Py_ssize_t KW,
                               Py_ssize_t r_lo, Py_ssize_t r_hi, Py_ssize_t c_lo, Py_ssize_t c_hi)


def rows_available():
    """True when the row kernel was compiled (gcc or clang); otherwise the backend never calls it."""
    return bool(MINICNN_HAVE_ROWS)


def row_lanes():
    """Output pixels per vector in the row kernel: 16 on AVX-512, 8 on AVX2, 4 on the baseline (the copy
    that runs, see ``kernel_isa``); narrower rows are widened in a workspace."""
    return minicnn_row_lanes()


def rows_workspace_sizes(Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_ch,
                         Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t pad_h, Py_ssize_t pad_w):
    """Per-thread lengths (input copy, output copy) that ``conv2d_rows`` needs for these shapes (0: none)."""
    cdef Py_ssize_t oh = height + 2 * pad_h - kh + 1, ow = width + 2 * pad_w - kw + 1
    cdef Py_ssize_t lanes = minicnn_row_lanes()
    cdef Py_ssize_t owk = ow if ow > lanes else lanes
    if pad_h == 0 and pad_w == 0 and ow >= lanes:
        return 0, 0
    return channels * (height + 2 * pad_h) * (owk + kw - 1), (0 if owk == ow else out_ch * oh * owk)


cdef inline void rows_kernel(const floating* x, Py_ssize_t ldx, Py_ssize_t xcs, const floating* w_t,
                             const floating* bias, floating* y, Py_ssize_t ldy, Py_ssize_t ycs, Py_ssize_t c,
                             Py_ssize_t o, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t kh, Py_ssize_t kw,
                             Py_ssize_t r_lo, Py_ssize_t r_hi, Py_ssize_t c_lo, Py_ssize_t c_hi) noexcept nogil:
    if floating is float:
        minicnn_rows_conv_f32(x, ldx, xcs, w_t, bias, y, ldy, ycs, c, o, oh, ow, kh, kw, r_lo, r_hi, c_lo, c_hi)
    else:
        minicnn_rows_conv_f64(x, ldx, xcs, w_t, bias, y, ldy, ycs, c, o, oh, ow, kh, kw, r_lo, r_hi, c_lo, c_hi)


cdef void rows_image(const floating* src, Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width,
                     Py_ssize_t pad_h, Py_ssize_t pad_w, const floating* w_t, const floating* bias,
                     floating* dst, Py_ssize_t out_ch, Py_ssize_t kh, Py_ssize_t kw,
                     floating* in_ws, floating* out_ws, Py_ssize_t lanes) noexcept nogil:
    """``dst`` (out_ch, OH, OW) = bias + (``src`` zero-padded by pad_h, pad_w) correlated with the filters.

    ``src`` is one (C, H, W) image; ``w_t`` the filters as (C*F_H*F_W, out_ch); ``lanes`` the row
    kernel's pixels per vector (``row_lanes()``, L below). Without padding and with OW >= L the
    kernel reads ``src`` and writes ``dst`` in place; otherwise it reads a padded copy in ``in_ws``,
    (C, H + 2*pad_h, max(OW, L) + F_W - 1), and, when OW < L, writes L-wide rows into ``out_ws``
    whose first OW columns are copied to ``dst``.
    """
    cdef Py_ssize_t oh = height + 2 * pad_h - kh + 1, ow = width + 2 * pad_w - kw + 1
    cdef Py_ssize_t owk = ow if ow > lanes else lanes
    cdef Py_ssize_t hp = height + 2 * pad_h, wp = owk + kw - 1
    cdef Py_ssize_t ch, r, o, i
    cdef floating* plane
    cdef floating* row
    if pad_h == 0 and pad_w == 0 and ow >= lanes:
        rows_kernel(src, width, height * width, w_t, bias, dst, ow, oh * ow, channels, out_ch, oh, ow, kh, kw,
                    0, height, 0, width)
        return
    for ch in range(channels):
        plane = in_ws + ch * hp * wp
        memset(plane, 0, pad_h * wp * sizeof(floating))
        for r in range(height):
            row = plane + (pad_h + r) * wp
            memset(row, 0, pad_w * sizeof(floating))
            memcpy(row + pad_w, src + (ch * height + r) * width, width * sizeof(floating))
            memset(row + pad_w + width, 0, (wp - pad_w - width) * sizeof(floating))
        memset(plane + (pad_h + height) * wp, 0, (hp - pad_h - height) * wp * sizeof(floating))
    if owk == ow:
        rows_kernel(in_ws, wp, hp * wp, w_t, bias, dst, ow, oh * ow, channels, out_ch, oh, ow, kh, kw,
                    pad_h, pad_h + height, pad_w, pad_w + width)
        return
    rows_kernel(in_ws, wp, hp * wp, w_t, bias, out_ws, owk, oh * owk, channels, out_ch, oh, owk, kh, kw,
                pad_h, pad_h + height, pad_w, pad_w + width)
    for o in range(out_ch):
        for i in range(oh):
            memcpy(dst + (o * oh + i) * ow, out_ws + (o * oh + i) * owk, ow * sizeof(floating))


def conv2d_rows(const floating[:, :, :, ::1] x, const floating[:, ::1] w_t, const floating[::1] b,
                floating[:, :, :, ::1] y, int pad_h, int pad_w,
                floating[:, ::1] in_workspace, floating[:, ::1] out_workspace, int num_threads):
    """``y[n] = b + pad(x[n]) (*) W`` for every image by the row kernel; ``b`` may be None.

    ``w_t`` holds the filters as (C*F_H*F_W, C_out) (tap index first); F_H, F_W follow from the
    shapes: OH = H + 2*pad_h - F_H + 1. Forward pass: ``x`` the input, ``w_t`` the weight
    reshaped, no padding. Input gradient: ``x`` = dY, pad = (F_H-1, F_W-1), ``w_t`` the rotated,
    channel-swapped weight, ``y`` = dX. The workspaces have one row per thread, of the lengths
    ``rows_workspace_sizes`` gives (at least 1).
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = y.shape[1], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t kh = height + 2 * pad_h - oh + 1, kw = width + 2 * pad_w - ow + 1
    cdef const floating* bias = &b[0] if b is not None else NULL
    cdef Py_ssize_t lanes = minicnn_row_lanes()
    cdef Py_ssize_t n
    cdef int t
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        rows_image(&x[n, 0, 0, 0], channels, height, width, pad_h, pad_w, &w_t[0, 0], bias,
                   &y[n, 0, 0, 0], out_ch, kh, kw, &in_workspace[t, 0], &out_workspace[t, 0], lanes)


# ---------------------------------------------------------------------------------------------
# Weight gradient along output rows, for layers with few output channels (LeNet's C1: 6 filters
# of 1x5x5 on 32x32 images). Kernel and its full design note: direct_rows_grad.h.
#
# The formula (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2):
#
#     dW[o, c, p, q] = sum_n sum_{i,j} dY[n, o, i, j] * X[n, c, i + p, j + q]
#
# Why along rows. The im2col path builds, per image, a (C*F_H*F_W) x (H_out*W_out) column
# matrix (25 x 784 for C1) and multiplies it by dY^T: a product with only 6 columns of output
# and 784 terms per entry, where BLAS is slow, after copying the image 25 times. The direct
# kernel of direct_conv.h puts 16 filters in the lanes of a vector, and would waste 10 of its 16
# lanes on C1. But the sum over j runs along a row of dY and, for tap (p, q), along a row of X
# shifted by q, both contiguous: 16 neighbouring columns j fill one vector with no copy at all.
#
# Why this register blocking. For one (c, p) the kernel keeps acc[o][q] for 3 filters x 5 taps
# (15 vector registers, + 3 for the dY rows and 1 for the shifted X row: 19 of AVX-512's 32;
# 22 in the passes that also sum db). Each dY vector loaded is used 5 times and each X vector
# 3 times: 8 loads for 15 multiply-adds, so the multiply-adds, not the loads, set the pace.
#
# Why this loop order. c, p, filter block and tap block are outside; images, rows and column
# vectors inside, so an accumulator collects a whole block of images before its 16 lanes are
# added together (summed once per image instead, C1 at batch 256 took 0.71 ms against 0.62 ms
# for blocks of 4 images, kernel alone). The passes over a block (10 for C1) re-read about
# 54 KB for C1, which stays in the L2 cache.
#
# Tails and narrow layers: a row whose width is not a multiple of the lane count ends with a
# vector shifted left, its already-counted dY lanes masked to 0 (see the header). Layers
# narrower than one vector (W_out < rows_weight_grad_lanes(): 16 / 8 / 4 in float32 on AVX-512 / AVX2 /
# baseline, half that in float64) stay on the im2col path: with
# most lanes idle the row kernel was measured slower there.
#
# The bias gradient db[o] = sum dY[n, o, :, :] comes out of the same passes (the dY rows are in
# registers anyway); dy.sum(axis=(0, 2, 3)) in NumPy took C1 0.21 ms at batch 256, a third of
# the time of the whole kernel.
#
# Parallelism and determinism: OpenMP threads share out fixed blocks of `block` images (prange
# over blocks), each block writes its own partial sums (dW then db), and the caller adds the
# partials in block order: the result is the same bit for bit with any number of threads.
# Stride 1, no padding, no dilation, one group; the backend's predicate only sends those.

cdef extern from "direct_rows_grad.h" nogil:
    int MINICNN_HAVE_ROWS_GRAD
    Py_ssize_t minicnn_rows_grad_lanes_f32()
    Py_ssize_t minicnn_rows_grad_lanes_f64()
    void minicnn_rows_weight_grad_f32(const float* x, const float* dy, Py_ssize_t images, Py_ssize_t C,
                                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW,
                                      float* dw, float* db)
    void minicnn_rows_weight_grad_f64(const double* x, const double* dy, Py_ssize_t images, Py_ssize_t C,
                                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW,
                                      double* dw, double* db)


def rows_weight_grad_available():
    """True when the row kernel was compiled (gcc or clang); otherwise the backend never calls it."""
    return bool(MINICNN_HAVE_ROWS_GRAD)


def rows_weight_grad_lanes(bint double_precision):
    """Output columns per vector: one register of the copy that runs (``kernel_isa``), 16 / 8 / 4 in
    float32 and 8 / 4 / 2 in float64 on AVX-512 / AVX2 / the baseline. The kernel needs W_out >= this."""
    return minicnn_rows_grad_lanes_f64() if double_precision else minicnn_rows_grad_lanes_f32()


def conv2d_weight_grad_rows(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                            floating[:, ::1] partial, int block, int num_threads):
    """``partial[b]`` = (dW flattened, then db) of images [b*block, (b+1)*block), for every block b.

    Stride 1, no padding, no dilation, one group, W_out >= ``rows_weight_grad_lanes``.
    ``partial`` is (ceil(N/block), C_out*C_in*F_H*F_W + C_out), written (not accumulated); the
    caller sums its rows in order.
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t kh = height - oh + 1, kw = width - ow + 1
    cdef Py_ssize_t weights = out_ch * channels * kh * kw
    cdef Py_ssize_t blocks = (n_images + block - 1) // block
    cdef Py_ssize_t b, n0, count
    for b in prange(blocks, nogil=True, schedule="static", num_threads=num_threads):
        n0 = b * block
        count = n_images - n0
        if count > block:
            count = block
        if floating is float:
            minicnn_rows_weight_grad_f32(&x[n0, 0, 0, 0], &dy[n0, 0, 0, 0], count, channels, height, width,
                                         out_ch, kh, kw, &partial[b, 0], &partial[b, weights])
        else:
            minicnn_rows_weight_grad_f64(&x[n0, 0, 0, 0], &dy[n0, 0, 0, 0], count, channels, height, width,
                                         out_ch, kh, kw, &partial[b, 0], &partial[b, weights])


def conv2d_input_grad_gemm(const floating[:, :, :, ::1] w, const floating[:, :, :, ::1] dy,
                           floating[:, :, :, ::1] dx, floating[:, ::1] col_workspace,
                           int sh, int sw, int ph, int pw, int dh, int dw, int groups, int num_threads):
    """Only ``dx`` of ``conv2d_backward``: dcol = W^T @ dY, then col2im (no column matrix of X, no dW)."""
    cdef Py_ssize_t n_images = dx.shape[0], channels = dx.shape[1], height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t out_ch = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t oh = dy.shape[2], ow = dy.shape[3]
    cdef int out_per_group = <int>(out_ch // groups)
    cdef int k = <int>(w.shape[1] * kh * kw)
    cdef int positions = <int>(oh * ow)
    cdef Py_ssize_t n
    cdef int t
    for n in prange(n_images, nogil=True, schedule="static", num_threads=num_threads):
        t = threadid()
        input_grad_image(&w[0, 0, 0, 0], &dy[n, 0, 0, 0], &col_workspace[t, 0], &dx[n, 0, 0, 0], channels,
                         height, width, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, groups, out_per_group, k, positions)


# ---------------------------------------------------------------------------------------------
# Batch in the lanes (see batch_lanes.h): the gradients of small stride-1 layers (LeNet's C3)
# with 16 IMAGES in a vector (8 in float64; on AVX2 8 and 4, on the baseline 4 and 2: lanes_group()),
# for one group of images at a time.
#
# The formulas (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2; deck
# 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES"):
#
#     dX[n, c, y, x] = sum_{o, p, q} W[o, c, p, q] * dY[n, o, y - p, x - q]   (0 <= y-p < OH, 0 <= x-q < OW)
#     dW[o, c, p, q] = sum_n sum_{i, j} dY[n, o, i, j] * X[n, c, i + p, j + q]
#     db[o]          = sum_n sum_{i, j} dY[n, o, i, j]
#
# Why the batch in the lanes. The kernels above vectorise over output channels (16-lane direct
# kernel: C_out % 16 == 0) or over output columns (row kernel: rows >= 16 wide). C3's input
# gradient fits neither: 6 channels, 14-pixel rows, and a "full" correlation whose zero border
# costs the row kernel 42% of its multiply-adds. Every layer, though, does the same arithmetic on
# every image: with the image index as the innermost axis of a copy of dY and X,
#
#     dyL[o][i][j][l] = dY[n0 + l, o, i, j]      xL[c][h][w][l] = X[n0 + l, c, h, w]
#
# each vector multiply-add does one term of the formula for 16 images, every lane useful
# whatever the map size and channel count, and each output pixel of dX sums exactly its valid
# taps (no zero border is ever multiplied). The copies are a transposition of 16 small images
# (C3: 16 x 1600 values for dY), cheap next to the 16 x 240,000 multiply-adds they feed.
#
# Why this blocking. dX: one pixel x all input channels (6 accumulators for C3); each dyL vector
# loaded is multiplied by 6 weights broadcast from memory, laid out W[o][p][q][c] so the 6 are
# contiguous. dW: 4 filters x 5 taps of one kernel row = 20 accumulators; per pixel 4 dyL and 5 xL
# loads feed 20 multiply-adds. Both keep enough independent sums to hide the FMA's latency.
#
# Why this loop order. One parallel region (prange over groups of 16 images): each iteration
# packs its group's dY once, then computes dW and db (from dyL and xL) and dX (from dyL, written
# over xL's buffer, which dW no longer needs), and unpacks dX. Waking the threads once instead of
# twice matters on a busy 2-core machine. The dW lanes are added once per group, after the sum
# over all pixels; the group's sums go to its own row of ``partial`` and the caller adds the rows
# in group order, so dW and db are the same bit for bit for any number of threads. dX of an image
# is computed by one thread in a fixed order, so it is too.
#
# Stride 1, no padding, no dilation, one group; the backend's predicate sends only those.

cdef extern from "batch_lanes.h" nogil:
    int MINICNN_LANES_HAVE_KERNELS
    Py_ssize_t minicnn_lanes_group_f32()
    Py_ssize_t minicnn_lanes_group_f64()
    void minicnn_lanes_pack_f32(const float* src, Py_ssize_t count, Py_ssize_t plane, float* dst)
    void minicnn_lanes_pack_f64(const double* src, Py_ssize_t count, Py_ssize_t plane, double* dst)
    void minicnn_lanes_unpack_f32(const float* src, Py_ssize_t count, Py_ssize_t plane, float* dst)
    void minicnn_lanes_unpack_f64(const double* src, Py_ssize_t count, Py_ssize_t plane, double* dst)
    void minicnn_lanes_input_grad_f32(const float* dyL, const float* wL, float* dxL, Py_ssize_t C, Py_ssize_t H,
                                      Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_lanes_input_grad_f64(const double* dyL, const double* wL, double* dxL, Py_ssize_t C,
                                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_lanes_weight_grad_f32(const float* xL, const float* dyL, float* dw, float* db, Py_ssize_t C,
                                       Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH, Py_ssize_t KW)
    void minicnn_lanes_weight_grad_f64(const double* xL, const double* dyL, double* dw, double* db,
                                       Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t O, Py_ssize_t KH,
                                       Py_ssize_t KW)


def lanes_available():
    """True when the batch-in-lanes kernels were compiled (gcc or clang); otherwise the backend never calls them."""
    return bool(MINICNN_LANES_HAVE_KERNELS)


def lanes_group(bint double_precision):
    """Images per vector, i.e. per group: one register of the copy that runs (``kernel_isa``), 16 / 8 / 4
    in float32 and 8 / 4 / 2 in float64 on AVX-512 / AVX2 / the baseline."""
    return minicnn_lanes_group_f64() if double_precision else minicnn_lanes_group_f32()


def lanes_workspace_size(Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width, Py_ssize_t out_ch,
                         Py_ssize_t kh, Py_ssize_t kw, bint double_precision):
    """Per-thread workspace length for ``conv2d_grad_lanes``: dyL, then xL (also dxL), plus 64 bytes of slack
    so that each thread's part can start on a 64-byte boundary (one cache line, one vector)."""
    cdef Py_ssize_t lanes = minicnn_lanes_group_f64() if double_precision else minicnn_lanes_group_f32()
    cdef Py_ssize_t oh = height - kh + 1, ow = width - kw + 1
    return (out_ch * oh * ow + channels * height * width) * lanes + (8 if double_precision else 16)


cdef inline floating* align64(floating* p) noexcept nogil:
    return <floating*>((<size_t>p + 63) & ~(<size_t>63))


def conv2d_grad_lanes(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] w_l,
                      const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx, floating[:, ::1] partial,
                      floating[:, ::1] workspace, int num_threads, bint input_grad=True, bint weight_grad=True):
    """Gradients of a plain stride-1 convolution with the batch in the lanes (one parallel region).

    ``w_l`` is the weight as (C_out, F_H, F_W, C_in) (channel last: the dX kernel broadcasts the
    C_in weights of one tap from consecutive addresses). With ``input_grad``, ``dx`` (N, C_in, H, W)
    is written. With ``weight_grad``, row g of ``partial`` (ceil(N / G), C_out*C_in*F_H*F_W + C_out)
    gets dW (flattened as W) then db of images [g*G, (g+1)*G), G = ``lanes_group``; the caller adds
    the rows in order. ``workspace`` has one row per thread of ``lanes_workspace_size`` values.
    Returns how many groups threads other than the first ran (0 on one thread; > 0 shows, in the
    tests, that a second thread really took part).
    """
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t kh = height - oh + 1, kw = width - ow + 1
    cdef Py_ssize_t lanes = minicnn_lanes_group_f64() if floating is double else minicnn_lanes_group_f32()
    cdef Py_ssize_t weights = out_ch * channels * kh * kw
    cdef Py_ssize_t dy_plane = out_ch * oh * ow, x_plane = channels * height * width
    cdef Py_ssize_t groups = (n_images + lanes - 1) // lanes
    cdef Py_ssize_t g, n0, count
    cdef Py_ssize_t others = 0
    cdef floating* dyL
    cdef floating* xL
    for g in prange(groups, nogil=True, schedule="static", num_threads=num_threads):
        if threadid() != 0:
            others += 1
        n0 = g * lanes
        count = n_images - n0
        if count > lanes:
            count = lanes
        dyL = align64(&workspace[threadid(), 0])
        xL = dyL + dy_plane * lanes
        if floating is float:
            minicnn_lanes_pack_f32(&dy[n0, 0, 0, 0], count, dy_plane, dyL)
            if weight_grad:
                minicnn_lanes_pack_f32(&x[n0, 0, 0, 0], count, x_plane, xL)
                minicnn_lanes_weight_grad_f32(xL, dyL, &partial[g, 0], &partial[g, weights],
                                              channels, height, width, out_ch, kh, kw)
            if input_grad:
                minicnn_lanes_input_grad_f32(dyL, &w_l[0, 0, 0, 0], xL, channels, height, width, out_ch, kh, kw)
                minicnn_lanes_unpack_f32(xL, count, x_plane, &dx[n0, 0, 0, 0])
        else:
            minicnn_lanes_pack_f64(&dy[n0, 0, 0, 0], count, dy_plane, dyL)
            if weight_grad:
                minicnn_lanes_pack_f64(&x[n0, 0, 0, 0], count, x_plane, xL)
                minicnn_lanes_weight_grad_f64(xL, dyL, &partial[g, 0], &partial[g, weights],
                                              channels, height, width, out_ch, kh, kw)
            if input_grad:
                minicnn_lanes_input_grad_f64(dyL, &w_l[0, 0, 0, 0], xL, channels, height, width, out_ch, kh, kw)
                minicnn_lanes_unpack_f64(xL, count, x_plane, &dx[n0, 0, 0, 0])
    return others
