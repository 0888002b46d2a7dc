# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Winograd F(2x2, 3x3) convolution on the CPU (Lavin and Gray, "Fast Algorithms for Convolutional
Neural Networks", CVPR 2016): a 3x3, stride-1, undilated, ungrouped layer with 16 multiplications per
2x2 output tile and channel pair instead of 36. The readable NumPy version, with the 1-D derivation,
is ``minicnn/winograd.py``; the matrices here are the same (B^T, G, A^T), written out as additions.

Steps of the forward pass (``winograd_forward``):

* the filter transform ``U[xi, o, c] = (G w[o, c] G^T)[xi]`` (``filter_transform``, once per call,
  xi = 4*row + column of the 4x4 transformed tile);
* for a block of ``tile_block`` output tiles (tiles of several images in one block; the blocks are
  fixed by the shapes, never by the thread count, so the result is the same bits on any number of
  threads): the input transform ``V[xi, c, t] = (B^T d B)[xi]`` of each 4x4 input patch ``d``
  (gathered with the zero padding), then 16 products ``M[xi] = U[xi] @ V[xi]`` (C_out x C_in by
  C_in x tiles) by BLAS on one thread, then the output transform ``Y = A^T M A`` plus the bias,
  written into y with the last row and column of tiles cropped for odd output sizes.

OpenMP splits the blocks; each thread has its own V and M workspace (rows of ``v_workspace`` and
``m_workspace``, allocated and kept by the backend).

The weight gradient (``winograd_weight_grad``) is F(3x3, 2x2) (minicnn/winograd.py derives it):
``dW = G^T [sum over tiles (A dY A^T) ⊙ (B^T d B)] G``. Per block of tiles, the same input transform V,
the transform E = A e A^T of each 2x2 tile e of dY, then 16 products ``M[xi] += E[xi] @ V[xi]^T``
(C_out x tiles by tiles x C_in). The blocks are split into a fixed number of parts (by the shapes,
never the thread count); each part's sum is accumulated in block order by one thread, and
``weight_output_transform`` adds the parts in order before ``G^T M G``: the same bits on any number
of threads. (Sharing each block among the threads instead, transforms by channel and products by
xi, measured 1.4x slower on the deep layer: the threads' products then read each other's transforms.)
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from scipy.linalg.cython_blas cimport dgemm, sgemm

cdef Py_ssize_t _INT_MAX = 2147483647


cdef inline void gemm_rowmajor(char trans_a, char trans_b, int m, int n, int k, floating alpha,
                               const floating* a, int lda, const floating* b, int ldb,
                               floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major ``C(m x n) = alpha * op(A) @ op(B) + beta * C`` (as in conv2d.pyx: the column-major
    call with the operands swapped)."""
    if floating is float:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef extern from "winograd.h" nogil:
    int MINICNN_WINO_MAX_TILES
    void minicnn_wino_filter_f32(const float* w, int channels, float* u, Py_ssize_t stride)
    void minicnn_wino_filter_f64(const double* w, int channels, double* u, Py_ssize_t stride)
    void minicnn_wino_input_f32(const float* src, int height, int width, int r0, int c0, int tiles,
                                float* v, Py_ssize_t stride)
    void minicnn_wino_input_f64(const double* src, int height, int width, int r0, int c0, int tiles,
                                double* v, Py_ssize_t stride)
    void minicnn_wino_output_f32(const float* m, Py_ssize_t stride, int tiles, float bias, float* dst,
                                 int ow, int width, int two_rows)
    void minicnn_wino_output_f64(const double* m, Py_ssize_t stride, int tiles, double bias, double* dst,
                                 int ow, int width, int two_rows)
    void minicnn_wino_grad_f32(const float* src, int height, int width, int r0, int c0, int tiles,
                               float* e, Py_ssize_t stride)
    void minicnn_wino_grad_f64(const double* src, int height, int width, int r0, int c0, int tiles,
                               double* e, Py_ssize_t stride)
    void minicnn_wino4_grad_f32(const float* src, int height, int width, int r0, int c0, int tiles,
                                float* e, Py_ssize_t stride)
    void minicnn_wino4_grad_f64(const double* src, int height, int width, int r0, int c0, int tiles,
                                double* e, Py_ssize_t stride)
    void minicnn_wino4_filter_f32(const float* w, int channels, float* u, Py_ssize_t stride)
    void minicnn_wino4_filter_f64(const double* w, int channels, double* u, Py_ssize_t stride)
    void minicnn_wino4_input_f32(const float* src, int height, int width, int r0, int c0, int tiles,
                                 float* v, Py_ssize_t stride)
    void minicnn_wino4_input_f64(const double* src, int height, int width, int r0, int c0, int tiles,
                                 double* v, Py_ssize_t stride)
    void minicnn_wino4_output_f32(const float* m, Py_ssize_t stride, int tiles, float bias, float* dst,
                                  int ow, int width, int rows)
    void minicnn_wino4_output_f64(const double* m, Py_ssize_t stride, int tiles, double bias, double* dst,
                                  int ow, int width, int rows)


def filter_transform(const floating[:, :, :, ::1] w, floating[:, :, ::1] u, int num_threads, int m=2):
    """``u[xi, o, c] = (G w[o, c] G^T)[xi]`` for filters ``w`` (C_out, C_in, 3, 3) and F(m x m, 3x3); ``u`` is
    ((m + 2)**2, C_out, C_in) (winograd.h: one filter's channels at a time)."""
    check_blocking(1, num_threads)
    cdef Py_ssize_t out_ch = w.shape[0], channels = w.shape[1], o
    cdef Py_ssize_t stride = out_ch * channels
    check_tile(m)
    if u.shape[0] != (m + 2) * (m + 2):
        raise ValueError(f"u needs {(m + 2) * (m + 2)} transformed positions for F({m}x{m}, 3x3), got {u.shape[0]}")
    for o in prange(out_ch, nogil=True, schedule="static", num_threads=num_threads):
        if m == 4:
            if floating is float:
                minicnn_wino4_filter_f32(&w[o, 0, 0, 0], <int>channels, &u[0, o, 0], stride)
            else:
                minicnn_wino4_filter_f64(&w[o, 0, 0, 0], <int>channels, &u[0, o, 0], stride)
        elif floating is float:
            minicnn_wino_filter_f32(&w[o, 0, 0, 0], <int>channels, &u[0, o, 0], stride)
        else:
            minicnn_wino_filter_f64(&w[o, 0, 0, 0], <int>channels, &u[0, o, 0], stride)


cdef check_blocking(int tile_block, int num_threads):
    """The tile block divides the tiles into blocks and OpenMP reads ``num_threads`` as the thread count (0
    would mean "all the cores", past the workspaces' rows): both must be checked before either is used."""
    if tile_block < 1:
        raise ValueError(f"tile_block must be at least 1, got {tile_block}")
    if num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")


cdef check_tile(int m):
    if m != 2 and m != 4:
        raise ValueError(f"the output tile m must be 2 or 4 (F(m x m, 3x3)), got {m}")


cdef inline void locate_tile(Py_ssize_t first, Py_ssize_t tiles_wide, Py_ssize_t tiles_per_image,
                             Py_ssize_t* img, Py_ssize_t* ti, Py_ssize_t* tj) noexcept nogil:
    """Image, row and column of tile number ``first`` (tiles numbered image by image, row by row)."""
    cdef Py_ssize_t tile
    img[0] = first // tiles_per_image
    tile = first - img[0] * tiles_per_image
    ti[0] = tile // tiles_wide
    tj[0] = tile - ti[0] * tiles_wide


cdef inline void next_segment(Py_ssize_t seg, Py_ssize_t tiles_wide, Py_ssize_t tiles_per_image,
                              Py_ssize_t* img, Py_ssize_t* ti, Py_ssize_t* tj) noexcept nogil:
    """Past a segment of ``seg`` tiles (at most the rest of the row of tiles, and at most
    MINICNN_WINO_MAX_TILES, the transforms' row buffers): to the next row at its end, then the next image."""
    tj[0] += seg
    if tj[0] == tiles_wide:
        tj[0] = 0
        ti[0] += 1
        if ti[0] * tiles_wide == tiles_per_image:
            ti[0] = 0
            img[0] += 1


cdef void input_tiles(const floating* x, floating* v, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                      Py_ssize_t c_begin, Py_ssize_t c_end, Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width, int ph, int pw,
                      Py_ssize_t tiles_wide, Py_ssize_t tiles_per_image, int m) noexcept nogil:
    """``V[xi, c, l]`` (leading dimension ``ld``) for the tiles ``first <= first + l < first + count``
    (numbered image by image, row of tiles by row of tiles) and the channels ``c_begin <= c < c_end``,
    a segment of one row of tiles at a time (winograd.h); pixels in the padding read as zero."""
    cdef Py_ssize_t c, l, img, ti, tj, seg
    cdef Py_ssize_t plane = height * width
    cdef const floating* src
    cdef int r0, c0
    for c in range(c_begin, c_end):
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        l = 0
        while l < count:
            seg = min(tiles_wide - tj, count - l, <Py_ssize_t>MINICNN_WINO_MAX_TILES)
            src = x + (img * channels + c) * plane
            r0 = <int>(m * ti - ph)
            c0 = <int>(m * tj - pw)
            if m == 4:
                if floating is float:
                    minicnn_wino4_input_f32(src, <int>height, <int>width, r0, c0, <int>seg, v + c * ld + l, channels * ld)
                else:
                    minicnn_wino4_input_f64(src, <int>height, <int>width, r0, c0, <int>seg, v + c * ld + l, channels * ld)
            elif floating is float:
                minicnn_wino_input_f32(src, <int>height, <int>width, r0, c0, <int>seg, v + c * ld + l, channels * ld)
            else:
                minicnn_wino_input_f64(src, <int>height, <int>width, r0, c0, <int>seg, v + c * ld + l, channels * ld)
            l += seg
            next_segment(seg, tiles_wide, tiles_per_image, &img, &ti, &tj)


cdef void output_tiles(const floating* prod, floating* y, const floating* bias, Py_ssize_t first, Py_ssize_t count,
                       Py_ssize_t ld, Py_ssize_t o_begin, Py_ssize_t o_end, Py_ssize_t out_ch, Py_ssize_t oh,
                       Py_ssize_t ow, Py_ssize_t tiles_wide, Py_ssize_t tiles_per_image, int m) noexcept nogil:
    """``y[img, o, m*ti:m*ti+m, m*tj:m*tj+m] = (A^T M A) + b[o]`` for the block's tiles and the filters
    ``o_begin <= o < o_end``, cropped at the edges."""
    cdef floating b
    cdef Py_ssize_t o, l, img, ti, tj, seg, width
    cdef Py_ssize_t stride = out_ch * ld
    cdef Py_ssize_t plane = oh * ow
    cdef floating* dst
    cdef int rows
    for o in range(o_begin, o_end):
        b = bias[o] if bias != NULL else 0
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        l = 0
        while l < count:
            seg = min(tiles_wide - tj, count - l, <Py_ssize_t>MINICNN_WINO_MAX_TILES)
            width = min(m * seg, ow - m * tj)
            rows = <int>min(<Py_ssize_t>m, oh - m * ti)
            dst = y + (img * out_ch + o) * plane + m * ti * ow + m * tj
            if m == 4:
                if floating is float:
                    minicnn_wino4_output_f32(prod + o * ld + l, stride, <int>seg, b, dst, <int>ow, <int>width, rows)
                else:
                    minicnn_wino4_output_f64(prod + o * ld + l, stride, <int>seg, b, dst, <int>ow, <int>width, rows)
            elif floating is float:
                minicnn_wino_output_f32(prod + o * ld + l, stride, <int>seg, b, dst, <int>ow, <int>width, rows == 2)
            else:
                minicnn_wino_output_f64(prod + o * ld + l, stride, <int>seg, b, dst, <int>ow, <int>width, rows == 2)
            l += seg
            next_segment(seg, tiles_wide, tiles_per_image, &img, &ti, &tj)


cdef void grad_tiles(const floating* dy, floating* e, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                     Py_ssize_t o_begin, Py_ssize_t o_end, Py_ssize_t out_ch, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t tiles_wide,
                     Py_ssize_t tiles_per_image, int m) noexcept nogil:
    """``E[xi, o, l] = (A e A^T)[xi]`` (leading dimension ``ld``) of the m x m tiles e of dY numbered
    ``first <= first + l < first + count`` and the filters ``o_begin <= o < o_end``, a segment of one
    row of tiles at a time (winograd.h)."""
    cdef Py_ssize_t o, l, img, ti, tj, seg
    cdef Py_ssize_t plane = oh * ow
    cdef const floating* src
    for o in range(o_begin, o_end):
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        l = 0
        while l < count:
            seg = min(tiles_wide - tj, count - l, <Py_ssize_t>MINICNN_WINO_MAX_TILES)
            src = dy + (img * out_ch + o) * plane
            if m == 4:
                if floating is float:
                    minicnn_wino4_grad_f32(src, <int>oh, <int>ow, <int>(4 * ti), <int>(4 * tj), <int>seg,
                                           e + o * ld + l, out_ch * ld)
                else:
                    minicnn_wino4_grad_f64(src, <int>oh, <int>ow, <int>(4 * ti), <int>(4 * tj), <int>seg,
                                           e + o * ld + l, out_ch * ld)
            elif floating is float:
                minicnn_wino_grad_f32(src, <int>oh, <int>ow, <int>(2 * ti), <int>(2 * tj), <int>seg,
                                      e + o * ld + l, out_ch * ld)
            else:
                minicnn_wino_grad_f64(src, <int>oh, <int>ow, <int>(2 * ti), <int>(2 * tj), <int>seg,
                                      e + o * ld + l, out_ch * ld)
            l += seg
            next_segment(seg, tiles_wide, tiles_per_image, &img, &ti, &tj)


def tile_count(Py_ssize_t n_images, Py_ssize_t oh, Py_ssize_t ow, int m=2):
    """Output tiles of m x m in a batch (the last row and column of tiles padded where m does not divide the size)."""
    return n_images * ((oh + m - 1) // m) * ((ow + m - 1) // m)


def winograd_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u, const floating[::1] b,
                     floating[:, :, :, ::1] y, int ph, int pw, int tile_block,
                     floating[:, ::1] v_workspace, floating[:, ::1] m_workspace, int num_threads, int m=2):
    """``y = conv2d(x, w, padding=(ph, pw)) + b`` for 3x3 filters by F(m x m, 3x3) given
    ``u = filter_transform(w, m=m)``; ``b`` may be None. ``v_workspace`` needs (m+2)**2 * C_in * tile_block
    entries per thread, ``m_workspace`` (m+2)**2 * C_out * tile_block (``num_threads`` rows at least)."""
    check_blocking(tile_block, num_threads)
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = u.shape[1], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t tiles_wide = (ow + m - 1) // m
    cdef Py_ssize_t tiles_per_image = ((oh + m - 1) // m) * tiles_wide
    cdef Py_ssize_t total = n_images * tiles_per_image
    cdef Py_ssize_t blocks = (total + tile_block - 1) // tile_block
    cdef Py_ssize_t positions = (m + 2) * (m + 2)
    cdef Py_ssize_t blk, first, count, xi
    cdef int t, ncols
    cdef floating* v
    cdef floating* prod
    cdef const floating* bias = NULL
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0, 0]
    cdef int c_int = <int>channels, o_int = <int>out_ch, ld = tile_block
    if tile_block < 1:
        raise ValueError(f"tile_block must be at least 1, got {tile_block}")
    check_tile(m)
    if u.shape[0] != positions:
        raise ValueError(f"u needs {positions} transformed positions for F({m}x{m}, 3x3), got {u.shape[0]}")
    if b is not None:
        bias = &b[0]
    for blk in prange(blocks, nogil=True, schedule="dynamic", num_threads=num_threads):
        t = threadid()
        v = &v_workspace[t, 0]
        prod = &m_workspace[t, 0]
        first = blk * tile_block
        count = min(<Py_ssize_t>tile_block, total - first)
        ncols = <int>count
        input_tiles(xp, v, first, count, ld, 0, channels, channels, height, width, ph, pw, tiles_wide,
                    tiles_per_image, m)
        for xi in range(positions):
            gemm_rowmajor(c'N', c'N', o_int, ncols, c_int, <floating>1.0, up + xi * out_ch * channels, c_int,
                          v + xi * channels * ld, ld, <floating>0.0, prod + xi * out_ch * ld, ld)
        output_tiles(prod, yp, bias, first, count, ld, 0, out_ch, out_ch, oh, ow, tiles_wide, tiles_per_image, m)


def winograd_forward_wide(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u, const floating[::1] b,
                          floating[:, :, :, ::1] y, int ph, int pw, int tile_block, int filter_block,
                          floating[::1] v_workspace, floating[::1] m_workspace, int num_threads, int m=2):
    """``winograd_forward`` for layers with few tiles and many channels (a deep layer at batch 1): the
    blocks of ``tile_block`` tiles one after the other, the threads sharing each block's three steps
    (the input transform by channel, the (m+2)**2 products by position and ``filter_block`` filters,
    the output transform by filter), so that each thread reads only its share of U. Every product
    has a shape fixed by the layer: the same bits on any number of threads. ``v_workspace`` needs
    (m+2)**2 * C_in * tile_block entries, ``m_workspace`` (m+2)**2 * C_out * tile_block."""
    check_blocking(tile_block, num_threads)
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = u.shape[1], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t tiles_wide = (ow + m - 1) // m
    cdef Py_ssize_t tiles_per_image = ((oh + m - 1) // m) * tiles_wide
    cdef Py_ssize_t total = n_images * tiles_per_image
    cdef Py_ssize_t blocks = (total + tile_block - 1) // tile_block
    cdef Py_ssize_t positions = (m + 2) * (m + 2)
    cdef Py_ssize_t filter_blocks = (out_ch + filter_block - 1) // filter_block
    cdef Py_ssize_t blk, first, count, job, xi, o0, unit
    cdef int ncols, rows
    cdef floating* v = &v_workspace[0]
    cdef floating* prod = &m_workspace[0]
    cdef const floating* bias = NULL
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0, 0]
    cdef floating* yp = &y[0, 0, 0, 0]
    cdef int c_int = <int>channels, ld = tile_block
    if tile_block < 1 or filter_block < 1:
        raise ValueError(f"tile_block and filter_block must be at least 1, got {tile_block} and {filter_block}")
    check_tile(m)
    if u.shape[0] != positions:
        raise ValueError(f"u needs {positions} transformed positions for F({m}x{m}, 3x3), got {u.shape[0]}")
    if v_workspace.shape[0] < positions * channels * tile_block or m_workspace.shape[0] < positions * out_ch * tile_block:
        raise ValueError("the workspaces are smaller than one block of tiles")
    if b is not None:
        bias = &b[0]
    with nogil:
        for blk in range(blocks):
            first = blk * tile_block
            count = min(<Py_ssize_t>tile_block, total - first)
            ncols = <int>count
            for unit in prange(channels, schedule="static", num_threads=num_threads):
                input_tiles(xp, v, first, count, ld, unit, unit + 1, channels, height, width, ph, pw, tiles_wide,
                            tiles_per_image, m)
            for job in prange(positions * filter_blocks, schedule="static", num_threads=num_threads):
                xi = job // filter_blocks
                o0 = (job - xi * filter_blocks) * filter_block
                rows = <int>min(<Py_ssize_t>filter_block, out_ch - o0)
                gemm_rowmajor(c'N', c'N', rows, ncols, c_int, <floating>1.0, up + (xi * out_ch + o0) * channels, c_int,
                              v + xi * channels * ld, ld, <floating>0.0, prod + (xi * out_ch + o0) * ld, ld)
            for unit in prange(out_ch, schedule="static", num_threads=num_threads):
                output_tiles(prod, yp, bias, first, count, ld, unit, unit + 1, out_ch, oh, ow, tiles_wide,
                             tiles_per_image, m)


def winograd_weight_grad(const floating[:, :, :, ::1] x, const floating[:, :, :, ::1] dy,
                         floating[:, :, :, ::1] m_parts, int ph, int pw, int tile_block, int blocks_per_part,
                         floating[:, ::1] v_workspace, floating[:, ::1] e_workspace, int num_threads, int m=2):
    """``m_parts[part, xi] = sum over the part's tiles of E[xi] @ V[xi]^T`` (C_out x C_in) for the weight
    gradient of ``y = conv2d(x, w, padding=(ph, pw))``, 3x3 filters; part ``p`` holds the blocks of
    ``tile_block`` tiles numbered ``p * blocks_per_part`` up to the next part's (every part one at
    least), summed in block order by one thread. ``v_workspace`` needs 16*C_in*tile_block entries per
    thread, ``e_workspace`` 16*C_out*tile_block."""
    check_blocking(tile_block, num_threads)
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t out_ch = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t tiles_wide = (ow + m - 1) // m
    cdef Py_ssize_t tiles_per_image = ((oh + m - 1) // m) * tiles_wide
    cdef Py_ssize_t positions = (m + 2) * (m + 2)
    cdef Py_ssize_t total = n_images * tiles_per_image
    cdef Py_ssize_t blocks = (total + tile_block - 1) // tile_block
    cdef Py_ssize_t parts = m_parts.shape[0], part, blk, first, count, xi
    cdef int t, ncols
    cdef floating beta
    cdef floating* v
    cdef floating* e
    cdef floating* mp
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* dyp = &dy[0, 0, 0, 0]
    cdef int c_int = <int>channels, o_int = <int>out_ch, ld = tile_block
    if tile_block < 1:
        raise ValueError(f"tile_block must be at least 1, got {tile_block}")
    check_tile(m)
    if m_parts.shape[1] != positions:
        raise ValueError(f"m_parts needs {positions} transformed positions for F(3x3, {m}x{m}), got {m_parts.shape[1]}")
    if blocks_per_part < 1 or not (parts - 1) * blocks_per_part < blocks <= parts * blocks_per_part:
        raise ValueError(f"{parts} parts of {blocks_per_part} blocks do not cover {blocks} blocks, each part one at least")
    for part in prange(parts, nogil=True, schedule="dynamic", num_threads=num_threads):
        t = threadid()
        v = &v_workspace[t, 0]
        e = &e_workspace[t, 0]
        mp = &m_parts[part, 0, 0, 0]
        for blk in range(part * blocks_per_part, min((part + 1) * blocks_per_part, blocks)):
            first = blk * tile_block
            count = min(<Py_ssize_t>tile_block, total - first)
            ncols = <int>count
            input_tiles(xp, v, first, count, ld, 0, channels, channels, height, width, ph, pw, tiles_wide,
                        tiles_per_image, m)
            grad_tiles(dyp, e, first, count, ld, 0, out_ch, out_ch, oh, ow, tiles_wide, tiles_per_image, m)
            beta = 0.0 if blk == part * blocks_per_part else 1.0
            for xi in range(positions):
                gemm_rowmajor(c'N', c'T', o_int, c_int, ncols, <floating>1.0, e + xi * out_ch * ld, ld,
                              v + xi * channels * ld, ld, beta, mp + xi * out_ch * channels, c_int)


cdef void filter_gradient(const floating* m_parts, Py_ssize_t parts, Py_ssize_t part_stride,
                          Py_ssize_t xi_stride, floating* dw) noexcept nogil:
    """The 3x3 ``dw = G^T M G`` of one (filter, channel) pair, ``M[xi]`` the sum over the parts, in order,
    of ``m_parts[part * part_stride + xi * xi_stride]``."""
    cdef floating m[16]
    cdef floating s[3][4]
    cdef Py_ssize_t part, i, j
    for i in range(16):
        m[i] = m_parts[i * xi_stride]
    for part in range(1, parts):
        for i in range(16):
            m[i] = m[i] + m_parts[part * part_stride + i * xi_stride]
    for j in range(4):  # s = G^T M: rows m0 + (m1 + m2)/2, (m1 - m2)/2, (m1 + m2)/2 + m3
        s[0][j] = m[j] + (m[4 + j] + m[8 + j]) * <floating>0.5
        s[1][j] = (m[4 + j] - m[8 + j]) * <floating>0.5
        s[2][j] = (m[4 + j] + m[8 + j]) * <floating>0.5 + m[12 + j]
    for i in range(3):  # (G^T M) G, the same on the columns
        dw[3 * i] = s[i][0] + (s[i][1] + s[i][2]) * <floating>0.5
        dw[3 * i + 1] = (s[i][1] - s[i][2]) * <floating>0.5
        dw[3 * i + 2] = (s[i][1] + s[i][2]) * <floating>0.5 + s[i][3]


cdef void filter_gradient4(const floating* m_parts, Py_ssize_t parts, Py_ssize_t part_stride,
                           Py_ssize_t xi_stride, floating* dw) noexcept nogil:
    """``dw = G4^T M G4`` (F(3x3, 4x4)) of one (filter, channel) pair, ``M`` 6x6 summed over the parts in order."""
    cdef floating m[36]
    cdef floating s[3][6]
    cdef Py_ssize_t part, i, j
    for i in range(36):
        m[i] = m_parts[i * xi_stride]
    for part in range(1, parts):
        for i in range(36):
            m[i] = m[i] + m_parts[part * part_stride + i * xi_stride]
    for j in range(6):  # s = G4^T M, G4's columns: (1/4, -1/6, -1/6, 1/24, 1/24, 0), (0, -1/6, 1/6, 1/12, -1/12, 0), (0, -1/6, -1/6, 1/6, 1/6, 1)
        s[0][j] = m[j] * <floating>0.25 - (m[6 + j] + m[12 + j]) * <floating>(1.0 / 6.0) + (m[18 + j] + m[24 + j]) * <floating>(1.0 / 24.0)
        s[1][j] = (m[12 + j] - m[6 + j]) * <floating>(1.0 / 6.0) + (m[18 + j] - m[24 + j]) * <floating>(1.0 / 12.0)
        s[2][j] = (m[18 + j] + m[24 + j] - m[6 + j] - m[12 + j]) * <floating>(1.0 / 6.0) + m[30 + j]
    for i in range(3):  # (G4^T M) G4, the same on the columns
        dw[3 * i] = s[i][0] * <floating>0.25 - (s[i][1] + s[i][2]) * <floating>(1.0 / 6.0) + (s[i][3] + s[i][4]) * <floating>(1.0 / 24.0)
        dw[3 * i + 1] = (s[i][2] - s[i][1]) * <floating>(1.0 / 6.0) + (s[i][3] - s[i][4]) * <floating>(1.0 / 12.0)
        dw[3 * i + 2] = (s[i][3] + s[i][4] - s[i][1] - s[i][2]) * <floating>(1.0 / 6.0) + s[i][5]


def weight_output_transform(const floating[:, :, :, ::1] m_parts, floating[:, :, :, ::1] dw, int num_threads):
    """``dw[o, c] = G^T M G`` with ``M[xi] = sum of m_parts[part, xi, o, c]`` over the parts, in order (F(3x3, 2x2)
    for 16 positions, F(3x3, 4x4) for 36)."""
    check_blocking(1, num_threads)
    cdef Py_ssize_t parts = m_parts.shape[0], positions = m_parts.shape[1], out_ch = dw.shape[0], channels = dw.shape[1]
    cdef Py_ssize_t o, c
    cdef Py_ssize_t xi_stride = out_ch * channels
    if positions != 16 and positions != 36:
        raise ValueError(f"m_parts needs 16 (F(3x3, 2x2)) or 36 (F(3x3, 4x4)) positions, got {positions}")
    cdef const floating* mp = &m_parts[0, 0, 0, 0]
    cdef floating* dwp = &dw[0, 0, 0, 0]
    for o in prange(out_ch, nogil=True, schedule="static", num_threads=num_threads):
        for c in range(channels):
            if positions == 36:
                filter_gradient4(mp + o * channels + c, parts, 36 * xi_stride, xi_stride, dwp + (o * channels + c) * 9)
            else:
                filter_gradient(mp + o * channels + c, parts, 16 * xi_stride, xi_stride, dwp + (o * channels + c) * 9)


# Winograd F(3x3, 2x2) on the four stride-2 phases of a 4x4, stride-2, padding-1 convolution (the layer
# a transposed convolution k4 s2 p1 is the input gradient of; minicnn/winograd.py derives it). Tiles of
# 3x3 phase positions s, numbered image by image, row by row; tile (ti, tj) reads the 4x4 window of dY
# at rows 3ti - 1.., columns 3tj - 1.., and stands for the pixels 2s - p of X in each phase (p, q).
# The transformed rows of X's side are (2p + q) * C + c: the four phases stacked, C channels each.

cdef inline Py_ssize_t phase_stride(Py_ssize_t rows, Py_ssize_t ld) noexcept nogil:
    """Entries between two positions xi of a block's transforms or products, or of the transformed filters:
    ``rows * ld`` plus 16 (a cache line of float32, two of float64), so that the 16 streams a transform
    writes do not fall into the same cache sets (at a power-of-two distance they evicted each other: the
    filter transform took 0.47 ms instead of 0.07 ms on one thread, AMD Zen 4)."""
    return rows * ld + 16


cdef check_phase_sizes(Py_ssize_t rows, Py_ssize_t maps, Py_ssize_t tile_block):
    """BLAS takes 32-bit sizes: the products' dimensions (4 C_in, C_out, tiles) and a transformed filter's
    4 C_in x C_out entries must fit, checked in 64 bits before any cast."""
    if maps < 1 or rows < 4:
        raise ValueError(f"needs one filter and one channel at least, got C_out = {maps}, C_in = {rows // 4}")
    if rows * maps > _INT_MAX or rows * tile_block > _INT_MAX or maps * tile_block > _INT_MAX:
        raise ValueError(f"4 C_in = {rows}, C_out = {maps} and the tile block {tile_block} exceed the 32-bit sizes of BLAS")


def phase_workspace(Py_ssize_t rows, Py_ssize_t tile_block):
    """Entries per thread of a workspace for 16 positions of ``rows`` x ``tile_block`` (``phase_stride``)."""
    return 16 * phase_stride(rows, tile_block)


def phase_tiles(Py_ssize_t height, Py_ssize_t width):
    """(rows, columns) of 3x3 tiles of phase positions for X of height x width: s runs over 0 .. H//2."""
    return (height // 2 + 3) // 3, (width // 2 + 3) // 3


def phase_filter_transform(const floating[:, :, :, ::1] w, floating[:, ::1] u, int num_threads):
    """``u[xi, ((2p + q) * C + c) * C_out + o] = (A f A^T)[xi]`` for the 2x2 phase filters ``f[a, b] = w[o, c,
    3 - p - 2a, 3 - q - 2b]`` of ``w`` (C_out, C_in, 4, 4); A = [[1, 0], [1, 1], [1, -1], [0, -1]]. Each row of
    ``u`` is one position's matrix (4 C_in x C_out), longer where the rows are padded (``phase_stride``)."""
    check_blocking(1, num_threads)
    cdef Py_ssize_t out_ch = w.shape[0], channels = w.shape[1], o, c
    if w.shape[2] != 4 or w.shape[3] != 4 or u.shape[0] != 16 or u.shape[1] < 4 * channels * out_ch:
        raise ValueError(f"w {tuple(w.shape)[:4]} needs 4x4 filters and u 16 rows of {4 * channels * out_ch} entries "
                         f"at least, got {tuple(u.shape)[:2]}")
    cdef Py_ssize_t xi_stride = u.shape[1]
    cdef const floating* wp = &w[0, 0, 0, 0]
    cdef floating* up = &u[0, 0]
    for c in prange(channels, nogil=True, schedule="static", num_threads=num_threads):
        for o in range(out_ch):  # neighbouring o: neighbouring entries of u
            phase_filter(wp + (o * channels + c) * 16, up + c * out_ch + o, channels * out_ch, xi_stride)


cdef void phase_filter(const floating* w, floating* u, Py_ssize_t phase_stride, Py_ssize_t xi_stride) noexcept nogil:
    """The four phases' ``A f A^T`` of one 4x4 kernel ``w`` into ``u[xi * xi_stride + (2p + q) * phase_stride]``."""
    cdef floating t[4][2]
    cdef floating f0, f1
    cdef Py_ssize_t p, q, i
    cdef floating* up
    for p in range(2):
        for q in range(2):
            for i in range(2):  # t = A f over the rows a: f0, f0 + f1, f0 - f1, -f1
                f0 = w[(3 - p) * 4 + 3 - q - 2 * i]
                f1 = w[(1 - p) * 4 + 3 - q - 2 * i]
                t[0][i] = f0
                t[1][i] = f0 + f1
                t[2][i] = f0 - f1
                t[3][i] = -f1
            up = u + (2 * p + q) * phase_stride
            for i in range(4):  # (A f) A^T, the same over the columns b
                up[(4 * i) * xi_stride] = t[i][0]
                up[(4 * i + 1) * xi_stride] = t[i][0] + t[i][1]
                up[(4 * i + 2) * xi_stride] = t[i][0] - t[i][1]
                up[(4 * i + 3) * xi_stride] = -t[i][1]


cdef inline void load_block(const floating* src, Py_ssize_t r0, Py_ssize_t c0, Py_ssize_t rows, Py_ssize_t cols,
                            Py_ssize_t height, Py_ssize_t width, floating* out) noexcept nogil:
    """``out[i * cols + j] = src[(r0 + i) * width + c0 + j]``, zero outside the height x width plane. (winograd.h's
    row loader does this with memcpy and memset for long rows of tiles; on these 4- and 6-pixel windows, one
    call per tile, it made dX 5-15% and Y with dW about 5% slower, AMD Zen 4.)"""
    cdef Py_ssize_t i, j, r, c
    if r0 >= 0 and r0 + rows <= height and c0 >= 0 and c0 + cols <= width:
        for i in range(rows):
            for j in range(cols):
                out[i * cols + j] = src[(r0 + i) * width + c0 + j]
    else:
        for i in range(rows):
            for j in range(cols):
                r = r0 + i
                c = c0 + j
                out[i * cols + j] = src[r * width + c] if 0 <= r < height and 0 <= c < width else 0


cdef void phase_v_tiles(const floating* dy, floating* v, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                        Py_ssize_t maps, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t tiles_wide,
                        Py_ssize_t tiles_per_image) noexcept nogil:
    """``V[xi, o, l] = (B^T d B)[xi]`` for the 4x4 windows d of dY (rows 3ti - 1 .. 3ti + 2, zero outside) of
    the block's tiles ``first + l``."""
    cdef floating d[16]
    cdef floating s[4][4]
    cdef Py_ssize_t o, l, img, ti, tj, i, j
    cdef Py_ssize_t stride = phase_stride(maps, ld)
    cdef floating* vp
    for o in range(maps):
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        for l in range(count):
            load_block(dy + (img * maps + o) * oh * ow, 3 * ti - 1, 3 * tj - 1, 4, 4, oh, ow, d)
            for j in range(4):  # s = B^T d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
                s[0][j] = d[j] - d[8 + j]
                s[1][j] = d[4 + j] + d[8 + j]
                s[2][j] = d[8 + j] - d[4 + j]
                s[3][j] = d[4 + j] - d[12 + j]
            vp = v + o * ld + l
            for i in range(4):  # (B^T d) B, the same over the columns
                vp[(4 * i) * stride] = s[i][0] - s[i][2]
                vp[(4 * i + 1) * stride] = s[i][1] + s[i][2]
                vp[(4 * i + 2) * stride] = s[i][2] - s[i][1]
                vp[(4 * i + 3) * stride] = s[i][1] - s[i][3]
            next_segment(1, tiles_wide, tiles_per_image, &img, &ti, &tj)


cdef void phase_e_tiles(const floating* x, floating* e, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                        Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width, Py_ssize_t tiles_wide,
                        Py_ssize_t tiles_per_image) noexcept nogil:
    """``E[xi, (2p + q) * C + c, l] = (G e G^T)[xi]`` for the 3x3 phase tiles ``e[a, b] = X[c, 2(3ti + a) - p,
    2(3tj + b) - q]`` (zero outside X) of the block's tiles: the adjoint of the output transform G^T M G.
    The four phases of a tile are the 6x6 pixels of X at rows 6ti - 1 .., columns 6tj - 1 .., read once."""
    cdef floating px[6][6]
    cdef floating s[4][3]
    cdef Py_ssize_t pq, c, l, img, ti, tj, a, j, row0, col0
    cdef Py_ssize_t stride = phase_stride(4 * channels, ld)
    cdef floating* ep
    for c in range(channels):
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        for l in range(count):
            load_block(x + (img * channels + c) * height * width, 6 * ti - 1, 6 * tj - 1, 6, 6, height, width, &px[0][0])
            for pq in range(4):  # phase (p, q), position (a, b): pixel (row0 + 2a, col0 + 2b) of the 6x6, row0 = 1 - p
                row0 = 1 - (pq >> 1)
                col0 = 1 - (pq & 1)
                for j in range(3):  # s = G e: rows e0, (e0 + e1 + e2)/2, (e0 - e1 + e2)/2, e2
                    s[0][j] = px[row0][col0 + 2 * j]
                    s[1][j] = (px[row0][col0 + 2 * j] + px[row0 + 2][col0 + 2 * j] + px[row0 + 4][col0 + 2 * j]) * <floating>0.5
                    s[2][j] = (px[row0][col0 + 2 * j] - px[row0 + 2][col0 + 2 * j] + px[row0 + 4][col0 + 2 * j]) * <floating>0.5
                    s[3][j] = px[row0 + 4][col0 + 2 * j]
                ep = e + (pq * channels + c) * ld + l
                for a in range(4):  # (G e) G^T, the same over the columns
                    ep[(4 * a) * stride] = s[a][0]
                    ep[(4 * a + 1) * stride] = (s[a][0] + s[a][1] + s[a][2]) * <floating>0.5
                    ep[(4 * a + 2) * stride] = (s[a][0] - s[a][1] + s[a][2]) * <floating>0.5
                    ep[(4 * a + 3) * stride] = s[a][2]
            next_segment(1, tiles_wide, tiles_per_image, &img, &ti, &tj)


cdef void phase_z_tiles(const floating* prod, floating* dx, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                        Py_ssize_t channels, Py_ssize_t height, Py_ssize_t width, Py_ssize_t tiles_wide,
                        Py_ssize_t tiles_per_image) noexcept nogil:
    """``dX[c, 2(3ti + a) - p, 2(3tj + b) - q] = (G^T M G)[a, b]`` of the products ``M[xi, (2p + q) * C + c, l]``
    of the block's tiles, cropped to X: the four phases fill the 6x6 pixels at rows 6ti - 1 .., columns
    6tj - 1 .. (every pixel of X belongs to exactly one tile and phase)."""
    cdef floating px[6][6]
    cdef floating m[16]
    cdef floating s[3][4]
    cdef Py_ssize_t pq, c, l, img, ti, tj, r0, c0, a, b, j, row0, col0, lo, hi
    cdef Py_ssize_t stride = phase_stride(4 * channels, ld)
    cdef floating* dst
    for c in range(channels):
        locate_tile(first, tiles_wide, tiles_per_image, &img, &ti, &tj)
        for l in range(count):
            for pq in range(4):
                row0 = 1 - (pq >> 1)
                col0 = 1 - (pq & 1)
                for j in range(16):
                    m[j] = prod[j * stride + (pq * channels + c) * ld + l]
                for j in range(4):  # s = G^T M: rows m0 + (m1 + m2)/2, (m1 - m2)/2, (m1 + m2)/2 + m3
                    s[0][j] = m[j] + (m[4 + j] + m[8 + j]) * <floating>0.5
                    s[1][j] = (m[4 + j] - m[8 + j]) * <floating>0.5
                    s[2][j] = (m[4 + j] + m[8 + j]) * <floating>0.5 + m[12 + j]
                for a in range(3):  # (G^T M) G, the same over the columns
                    px[row0 + 2 * a][col0] = s[a][0] + (s[a][1] + s[a][2]) * <floating>0.5
                    px[row0 + 2 * a][col0 + 2] = (s[a][1] - s[a][2]) * <floating>0.5
                    px[row0 + 2 * a][col0 + 4] = (s[a][1] + s[a][2]) * <floating>0.5 + s[a][3]
            dst = dx + (img * channels + c) * height * width
            r0 = 6 * ti - 1
            c0 = 6 * tj - 1
            if r0 >= 0 and r0 + 6 <= height and c0 >= 0 and c0 + 6 <= width:
                for a in range(6):
                    for b in range(6):
                        dst[(r0 + a) * width + c0 + b] = px[a][b]
            else:
                lo = max(0, -c0)
                hi = min(6, width - c0)
                for a in range(max(0, -r0), min(6, height - r0)):
                    for b in range(lo, hi):
                        dst[(r0 + a) * width + c0 + b] = px[a][b]
            next_segment(1, tiles_wide, tiles_per_image, &img, &ti, &tj)


cdef void phase_q_tiles(const floating* prod, floating* q, Py_ssize_t first, Py_ssize_t count, Py_ssize_t ld,
                        Py_ssize_t maps, Py_ssize_t tiles_per_image) noexcept nogil:
    """``Q[img, o, tile] = B Y B^T`` (4x4, row-major) of the products ``Y[xi, o, l]`` of the block's tiles: the
    adjoint of the input transform; neighbouring tiles' windows share a row or column, summed by ``phase_fold``."""
    cdef floating m[16]
    cdef floating s[4][4]
    cdef Py_ssize_t o, l, j, i, img, tile
    cdef Py_ssize_t stride = phase_stride(maps, ld)
    cdef floating* dst
    for o in range(maps):
        for l in range(count):
            for j in range(16):
                m[j] = prod[j * stride + o * ld + l]
            for j in range(4):  # s = B M: rows m0, m1 - m2 + m3, m1 + m2 - m0, -m3
                s[0][j] = m[j]
                s[1][j] = m[4 + j] - m[8 + j] + m[12 + j]
                s[2][j] = m[4 + j] + m[8 + j] - m[j]
                s[3][j] = -m[12 + j]
            img = (first + l) // tiles_per_image
            tile = first + l - img * tiles_per_image
            dst = q + ((img * maps + o) * tiles_per_image + tile) * 16
            for i in range(4):  # (B M) B^T, the same over the columns
                dst[4 * i] = s[i][0]
                dst[4 * i + 1] = s[i][1] - s[i][2] + s[i][3]
                dst[4 * i + 2] = s[i][1] + s[i][2] - s[i][0]
                dst[4 * i + 3] = -s[i][3]


def phase_input_grad(const floating[:, :, :, ::1] dy, const floating[:, ::1] u, floating[:, :, :, ::1] dx,
                     int tile_block, floating[:, ::1] v_workspace, floating[:, ::1] m_workspace, int num_threads):
    """``dx`` = dX of the 4x4, stride-2, padding-1 convolution whose output gradient is ``dy``, given
    ``u = phase_filter_transform(w)``: per block of tiles, V = B^T d B of dY's windows, 16 products
    ``M[xi] = U[xi] @ V[xi]`` (4 C_in x C_out by C_out x tiles) on one BLAS thread, then ``G^T M G`` into
    each phase. ``v_workspace`` needs ``phase_workspace(C_out, tile_block)`` entries per thread, ``m_workspace``
    ``phase_workspace(4 C_in, tile_block)``."""
    check_blocking(tile_block, num_threads)
    check_phase_sizes(4 * dx.shape[1], dy.shape[1], tile_block)
    cdef Py_ssize_t n_images = dy.shape[0], maps = dy.shape[1], oh = dy.shape[2], ow = dy.shape[3]
    cdef Py_ssize_t channels = dx.shape[1], height = dx.shape[2], width = dx.shape[3]
    cdef Py_ssize_t tiles_high, tiles_wide
    tiles_high, tiles_wide = phase_tiles(height, width)
    cdef Py_ssize_t tiles_per_image = tiles_high * tiles_wide, total = n_images * tiles_per_image
    cdef Py_ssize_t blocks = (total + tile_block - 1) // tile_block, blk, first, count, xi
    cdef int t, ncols, rows = <int>(4 * channels), k = <int>maps, ld = tile_block
    cdef floating* v
    cdef floating* prod
    if dx.shape[0] != n_images or u.shape[0] != 16 or u.shape[1] < rows * maps:
        raise ValueError(f"u {tuple(u.shape)[:2]} and dx {tuple(dx.shape)[:4]} do not match dy {tuple(dy.shape)[:4]}")
    if oh != height // 2 or ow != width // 2:
        raise ValueError(f"dy {(oh, ow)} is not the output of a 4x4 stride-2 padding-1 layer on {(height, width)}")
    if v_workspace.shape[1] < phase_workspace(maps, tile_block) or m_workspace.shape[1] < phase_workspace(rows, tile_block) \
            or min(v_workspace.shape[0], m_workspace.shape[0]) < num_threads:
        raise ValueError("the workspaces are too small for the tile block")
    cdef Py_ssize_t u_stride = u.shape[1]
    cdef const floating* dyp = &dy[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0]
    cdef floating* dxp = &dx[0, 0, 0, 0]
    for blk in prange(blocks, nogil=True, schedule="dynamic", num_threads=num_threads):
        t = threadid()
        v = &v_workspace[t, 0]
        prod = &m_workspace[t, 0]
        first = blk * tile_block
        count = min(<Py_ssize_t>tile_block, total - first)
        ncols = <int>count
        phase_v_tiles(dyp, v, first, count, ld, maps, oh, ow, tiles_wide, tiles_per_image)
        for xi in range(16):
            gemm_rowmajor(c'N', c'N', rows, ncols, k, <floating>1.0, up + xi * u_stride, k,
                          v + xi * phase_stride(maps, ld), ld, <floating>0.0, prod + xi * phase_stride(rows, ld), ld)
        phase_z_tiles(prod, dxp, first, count, ld, channels, height, width, tiles_wide, tiles_per_image)


def phase_forward_and_weight_grad(const floating[:, :, :, ::1] x, const floating[:, ::1] u, int maps,
                                  const floating[:, :, :, ::1] dy, floating[::1] q, floating[:, :, ::1] m_parts,
                                  int tile_block, int blocks_per_part, floating[:, ::1] e_workspace,
                                  floating[:, ::1] v_workspace, floating[:, ::1] y_workspace, int num_threads):
    """The forward products of the 4x4, stride-2, padding-1 convolution of ``x`` (when ``q`` is given: its
    tiles ``Q = B (U[xi]^T @ E[xi]) B^T``, for ``phase_fold``) and the sums of its weight gradient (when
    ``m_parts`` is: ``m_parts[part, xi] = sum of E[xi] @ V[xi]^T`` over the part's blocks, in block order),
    both from one transform E = G e G^T of x's phase tiles per block. ``dy`` (read for the weight gradient
    only) has the output's shape. Part ``p`` holds the blocks ``p * blocks_per_part`` up to the next part's;
    each part runs on one thread: the same bits on any thread count."""
    check_blocking(tile_block, num_threads)
    check_phase_sizes(4 * x.shape[1], maps, tile_block)
    cdef Py_ssize_t n_images = x.shape[0], channels = x.shape[1], height = x.shape[2], width = x.shape[3]
    cdef Py_ssize_t oh = height // 2, ow = width // 2
    cdef Py_ssize_t tiles_high, tiles_wide
    tiles_high, tiles_wide = phase_tiles(height, width)
    cdef Py_ssize_t tiles_per_image = tiles_high * tiles_wide, total = n_images * tiles_per_image
    cdef Py_ssize_t blocks = (total + tile_block - 1) // tile_block, parts, part, blk, first, count, xi
    cdef int t, ncols, rows = <int>(4 * channels), k = <int>maps, ld = tile_block
    cdef bint forward = q is not None, weight_grad = m_parts is not None
    cdef floating beta
    cdef floating* e
    cdef floating* v
    cdef floating* yh
    cdef floating* mp
    cdef floating* qp = NULL
    cdef const floating* dyp = NULL
    if blocks_per_part < 1:
        raise ValueError(f"blocks_per_part must be at least 1, got {blocks_per_part}")
    if maps < 1 or u.shape[0] != 16 or u.shape[1] < rows * maps:
        raise ValueError(f"u {tuple(u.shape)[:2]} does not hold the filters of {maps} maps over x {tuple(x.shape)[:4]}")
    parts = (blocks + blocks_per_part - 1) // blocks_per_part
    if forward:
        if q.shape[0] < n_images * maps * tiles_per_image * 16:
            raise ValueError(f"q needs {n_images * maps * tiles_per_image * 16} entries, got {q.shape[0]}")
        qp = &q[0]
    if weight_grad:
        if dy is None or tuple(dy.shape)[:4] != (n_images, maps, oh, ow):
            raise ValueError(f"dy must have the output's shape {(n_images, maps, oh, ow)}")
        if m_parts.shape[0] != parts or m_parts.shape[1] != 16 or m_parts.shape[2] < rows * maps:
            raise ValueError(f"m_parts must hold {parts} parts of 16 rows of {rows * maps} entries at least, "
                             f"got {tuple(m_parts.shape)[:3]}")
        dyp = &dy[0, 0, 0, 0]
    if e_workspace.shape[1] < phase_workspace(rows, tile_block) or v_workspace.shape[1] < phase_workspace(maps, tile_block) \
            or y_workspace.shape[1] < phase_workspace(maps, tile_block) \
            or min(e_workspace.shape[0], v_workspace.shape[0], y_workspace.shape[0]) < num_threads:
        raise ValueError("the workspaces are too small for the tile block")
    cdef Py_ssize_t u_stride = u.shape[1], m_stride = m_parts.shape[2] if weight_grad else 0
    cdef const floating* xp = &x[0, 0, 0, 0]
    cdef const floating* up = &u[0, 0]
    for part in prange(parts, nogil=True, schedule="dynamic", num_threads=num_threads):
        t = threadid()
        e = &e_workspace[t, 0]
        v = &v_workspace[t, 0]
        yh = &y_workspace[t, 0]
        for blk in range(part * blocks_per_part, min((part + 1) * blocks_per_part, blocks)):
            first = blk * tile_block
            count = min(<Py_ssize_t>tile_block, total - first)
            ncols = <int>count
            phase_e_tiles(xp, e, first, count, ld, channels, height, width, tiles_wide, tiles_per_image)
            if forward:
                for xi in range(16):
                    gemm_rowmajor(c'T', c'N', k, ncols, rows, <floating>1.0, up + xi * u_stride, k,
                                  e + xi * phase_stride(rows, ld), ld, <floating>0.0, yh + xi * phase_stride(maps, ld), ld)
                phase_q_tiles(yh, qp, first, count, ld, maps, tiles_per_image)
            if weight_grad:
                mp = &m_parts[part, 0, 0]
                phase_v_tiles(dyp, v, first, count, ld, maps, oh, ow, tiles_wide, tiles_per_image)
                beta = 0.0 if blk == part * blocks_per_part else 1.0
                for xi in range(16):
                    gemm_rowmajor(c'N', c'T', rows, k, ncols, <floating>1.0, e + xi * phase_stride(rows, ld), ld,
                                  v + xi * phase_stride(maps, ld), ld, beta, mp + xi * m_stride, k)


cdef void fold_plane(const floating* tq, floating* dst, Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t tiles_wide,
                     floating bias, floating* row) noexcept nogil:
    """One map of Y from its tiles' 4x4 windows ``tq[tile * 16 + 4r + s]``: output row i is row r = (i + 1) mod 3
    of the windows of tile row (i + 1) // 3, plus row 3 of the tile row above when r = 0; along the row, the
    windows overlap the same way. ``row`` holds 3 * tiles_wide + 1 entries: column j of Y is entry j + 1."""
    cdef Py_ssize_t i, j, k, ti, r, tj
    cdef const floating* t
    for i in range(oh):
        ti = (i + 1) // 3
        r = i + 1 - 3 * ti
        for k in range(3 * tiles_wide + 1):
            row[k] = 0
        if r == 0 and ti > 0:
            t = tq + (ti - 1) * tiles_wide * 16 + 12
            for tj in range(tiles_wide):
                for k in range(4):
                    row[3 * tj + k] += t[tj * 16 + k]
        t = tq + ti * tiles_wide * 16 + 4 * r
        for tj in range(tiles_wide):
            for k in range(4):
                row[3 * tj + k] += t[tj * 16 + k]
        for j in range(ow):
            dst[i * ow + j] = row[j + 1] + bias


def phase_fold(const floating[::1] q, const floating[::1] b, floating[:, :, :, ::1] y, floating[:, ::1] row_workspace,
               int num_threads):
    """``y[n, o, i, j] = b[o] + the sum of the tiles' 4x4 windows over (i, j)`` from ``phase_forward_and_weight_grad``'s
    ``q``: window (ti, tj) covers rows 3ti - 1 .. 3ti + 2 and columns 3tj - 1 .. 3tj + 2, so neighbouring windows
    share a row or a column (added in a fixed order: the same bits on any thread count). ``row_workspace``
    needs ``3 * tiles_wide + 1`` entries per thread (``phase_tiles``)."""
    check_blocking(1, num_threads)
    cdef Py_ssize_t n_images = y.shape[0], maps = y.shape[1], oh = y.shape[2], ow = y.shape[3]
    cdef Py_ssize_t tiles_high, tiles_wide
    tiles_high, tiles_wide = phase_tiles(2 * oh, 2 * ow)
    cdef Py_ssize_t tiles_per_image = tiles_high * tiles_wide, plane
    cdef floating bias
    if q.shape[0] < n_images * maps * tiles_per_image * 16:
        raise ValueError(f"q needs {n_images * maps * tiles_per_image * 16} entries, got {q.shape[0]}")
    if row_workspace.shape[0] < num_threads or row_workspace.shape[1] < 3 * tiles_wide + 1:
        raise ValueError(f"row_workspace needs {num_threads} rows of {3 * tiles_wide + 1} entries, "
                         f"got {tuple(row_workspace.shape)[:2]}")
    if b is not None and b.shape[0] != maps:
        raise ValueError(f"b needs {maps} entries, got {b.shape[0]}")
    cdef bint has_bias = b is not None
    cdef const floating* qp = &q[0]
    cdef floating* yp = &y[0, 0, 0, 0]
    for plane in prange(n_images * maps, nogil=True, schedule="static", num_threads=num_threads):
        bias = b[plane % maps] if has_bias else 0
        fold_plane(qp + plane * tiles_per_image * 16, yp + plane * oh * ow, oh, ow, tiles_wide, bias,
                   &row_workspace[threadid(), 0])


def phase_weight_output(const floating[:, ::1] m, floating[:, :, :, ::1] dw, int num_threads):
    """``dw[o, c, 3 - p - 2a, 3 - q - 2b] = (A^T M A)[a, b]`` with ``M[xi] = m[xi, ((2p + q) * C + c) * C_out + o]``
    (the parts of ``phase_forward_and_weight_grad`` summed in order); A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]."""
    check_blocking(1, num_threads)
    cdef Py_ssize_t out_ch = dw.shape[0], channels = dw.shape[1], o, c
    if m.shape[0] != 16 or m.shape[1] < 4 * channels * out_ch or dw.shape[2] != 4 or dw.shape[3] != 4:
        raise ValueError(f"m {tuple(m.shape)[:2]} does not hold the sums for dw {tuple(dw.shape)[:4]}")
    cdef Py_ssize_t xi_stride = m.shape[1]
    cdef const floating* mp = &m[0, 0]
    cdef floating* dwp = &dw[0, 0, 0, 0]
    for c in prange(channels, nogil=True, schedule="static", num_threads=num_threads):
        for o in range(out_ch):
            phase_filter_gradient(mp + c * out_ch + o, xi_stride, channels * out_ch,
                                  dwp + (o * channels + c) * 16)


cdef void phase_filter_gradient(const floating* m, Py_ssize_t xi_stride, Py_ssize_t phase_stride,
                                floating* dw) noexcept nogil:
    """The 4x4 kernel ``dw`` of one (filter, channel) pair from its four phases' ``M[xi * xi_stride]``."""
    cdef floating s[2][4]
    cdef Py_ssize_t pq, j, a
    cdef const floating* mp
    for pq in range(4):
        mp = m + pq * phase_stride
        for j in range(4):  # s = A^T M: rows m0 + m1 + m2, m1 - m2 - m3
            s[0][j] = mp[j * xi_stride] + mp[(4 + j) * xi_stride] + mp[(8 + j) * xi_stride]
            s[1][j] = mp[(4 + j) * xi_stride] - mp[(8 + j) * xi_stride] - mp[(12 + j) * xi_stride]
        for a in range(2):  # (A^T M) A, the same over the columns: the taps 3 - q and 1 - q of row 3 - p - 2a
            dw[(3 - (pq >> 1) - 2 * a) * 4 + 3 - (pq & 1)] = s[a][0] + s[a][1] + s[a][2]
            dw[(3 - (pq >> 1) - 2 * a) * 4 + 1 - (pq & 1)] = s[a][1] - s[a][2] - s[a][3]
