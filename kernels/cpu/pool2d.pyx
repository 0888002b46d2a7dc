# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Max and average pooling on the CPU, forward and backward.

Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN": each output
is the maximum (or the mean) of an F_H x F_W window moved with stride S over
the padded map. Each (image, channel) plane is independent, so the N*C planes
are split across OpenMP threads and no two threads touch the same memory.

Padding is never materialised: windows are clipped to the real image. For max
pooling a padded pixel is -inf and can never win, so clipping changes nothing;
for average pooling a padded pixel is 0 and only the divisor F_H*F_W remembers
it (padded zeros count, as in PyTorch's default).

Max pooling forward records the winner's flat index ``h*W + w`` (ties go to
the first maximum in row-major order; a NaN wins, as in PyTorch), so backward
sends each window's error to that one pixel ("se actualiza sólo la neurona
ganadora", deck 003, "RETRO-PROPAGACIÓN").
"""

from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

cdef extern from "pool_2x2.h" nogil:
    int MINICNN_HAVE_POOL_2X2
    int MINICNN_POOL_WINDOWS
    int minicnn_max_pool_2x2_row_f32(const float* top, float* y, int64_t* argmax, Py_ssize_t W, Py_ssize_t ow,
                                     int64_t base)
    void minicnn_max_pool_2x2_grad_row_f32(const float* dy, const int64_t* argmax, float* dtop, Py_ssize_t W,
                                           Py_ssize_t ow, int64_t base)


cdef extern from "multiversion.h" nogil:
    const char* minicnn_isa_name()


def kernel_isa():
    """The instruction set of the pooling kernels' copy that runs (pool_2x2.h has one per level, chosen
    at run time as for the convolutions): "x86-64-v4", "x86-64-v3", "x86-64", or "aarch64" / "generic"."""
    return minicnn_isa_name().decode("ascii")


cdef inline bint vector_rows_2x2(Py_ssize_t ow) noexcept nogil:
    """float32 rows of at least 8 windows go to the vector code of pool_2x2.h."""
    return MINICNN_HAVE_POOL_2X2 and ow >= MINICNN_POOL_WINDOWS


cdef inline Py_ssize_t window_start(Py_ssize_t i, int stride, int padding) noexcept nogil:
    """First image row (or column) under window i: i*S - P, clipped at 0."""
    return max(i * stride - padding, 0)


cdef inline Py_ssize_t window_stop(Py_ssize_t i, int stride, int padding, int kernel, Py_ssize_t size) noexcept nogil:
    """One past the last image row (or column) under window i: i*S - P + F, clipped at the image size."""
    return min(i * stride - padding + kernel, size)


def max_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int64_t[:, :, ::1] argmax,
                       int kh, int kw, int sh, int sw, int ph, int pw, int num_threads, int dh=1, int dw=1):
    """Max over each window of each plane; ``x`` is (N*C, H, W), ``y``/``argmax`` (N*C, H_out, W_out).

    Windows start at ``i*S - P`` and are clipped to the image, so the windows
    that ``ceil_mode`` or padding after the input add (already counted in
    ``H_out``) need nothing here. ``dh``, ``dw``: taps ``D`` pixels apart
    (dilated max pooling, beyond the deck), on a loop of its own.
    """
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t oh = y.shape[1], ow = y.shape[2]
    cdef Py_ssize_t plane
    if dh != 1 or dw != 1:
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            max_pool_plane_dilated(&x[plane, 0, 0], &y[plane, 0, 0], &argmax[plane, 0, 0],
                                   height, width, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw)
        return
    if kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0 and height >= 2 * oh and width >= 2 * ow:
        # LeNet's S2/S4 (and most CNNs' pooling): no clipping, four candidates, no loop.
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            max_pool_2x2(&x[plane, 0, 0], &y[plane, 0, 0], &argmax[plane, 0, 0], width, oh, ow)
    else:
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            max_pool_plane(&x[plane, 0, 0], &y[plane, 0, 0], &argmax[plane, 0, 0],
                           height, width, oh, ow, kh, kw, sh, sw, ph, pw)


cdef inline bint beats(floating value, floating best) noexcept nogil:
    """Does ``value`` replace the current maximum? Larger wins; a NaN wins (as in PyTorch); ties keep the first."""
    return value > best or value != value


cdef inline floating larger(floating a, floating b) noexcept nogil:
    # a select the compiler turns into one max instruction (callers rule out NaN first;
    # fmax/fmaxf would be a library call here, as they must also handle NaN)
    return a if a > b else b


cdef void max_pool_2x2(const floating* x, floating* y, int64_t* argmax,
                       Py_ssize_t width, Py_ssize_t oh, Py_ssize_t ow) noexcept nogil:
    # Which of the four wins is a coin toss on real data, so the winner is found without
    # branches: the maximum by max instructions, then its first position in row-major order
    # by arithmetic on comparisons, k in 0..3 -> offsets 0, 1, W, W+1. Windows holding a NaN
    # (rare) take the general rule, under which a NaN wins.
    cdef Py_ssize_t i, j, top
    cdef floating a, b, c, d, best
    cdef int k
    cdef int64_t where
    for i in range(oh):
        if floating is float:
            if vector_rows_2x2(ow) and minicnn_max_pool_2x2_row_f32(x + 2 * i * width, y + i * ow, argmax + i * ow,
                                                                     width, ow, 2 * i * width):
                continue
        for j in range(ow):
            top = 2 * i * width + 2 * j
            a = x[top]
            b = x[top + 1]
            c = x[top + width]
            d = x[top + width + 1]
            if (a != a) | (b != b) | (c != c) | (d != d):
                best = a
                where = top
                if beats(b, best):
                    best = b
                    where = top + 1
                if beats(c, best):
                    best = c
                    where = top + width
                if beats(d, best):
                    best = d
                    where = top + width + 1
            else:
                best = larger(larger(a, b), larger(c, d))
                k = (a != best) * (1 + (b != best) * (1 + (c != best)))
                where = top + (k & 1) + (k >> 1) * width
            y[i * ow + j] = best
            argmax[i * ow + j] = where


cdef void max_pool_plane(const floating* x, floating* y, int64_t* argmax,
                         Py_ssize_t height, Py_ssize_t width, Py_ssize_t oh, Py_ssize_t ow,
                         int kh, int kw, int sh, int sw, int ph, int pw) noexcept nogil:
    cdef Py_ssize_t i, j, r, c, r0, r1, c0, c1
    cdef floating best, value
    cdef int64_t best_index
    for i in range(oh):
        r0 = window_start(i, sh, ph)
        r1 = window_stop(i, sh, ph, kh, height)
        for j in range(ow):
            c0 = window_start(j, sw, pw)
            c1 = window_stop(j, sw, pw, kw, width)
            best = -INFINITY
            best_index = r0 * width + c0
            for r in range(r0, r1):
                for c in range(c0, c1):
                    value = x[r * width + c]
                    if beats(value, best):
                        best = value
                        best_index = r * width + c
            y[i * ow + j] = best
            argmax[i * ow + j] = best_index


cdef inline Py_ssize_t first_tap(Py_ssize_t i, int stride, int padding, int dilation) noexcept nogil:
    """First tap of window i on the image: ``i*S - P``, raised by steps of ``D`` to 0 or more."""
    cdef Py_ssize_t start = i * stride - padding
    if start >= 0:
        return start
    return start + (-start + dilation - 1) // dilation * dilation


cdef void max_pool_plane_dilated(const floating* x, floating* y, int64_t* argmax,
                                 Py_ssize_t height, Py_ssize_t width, Py_ssize_t oh, Py_ssize_t ow,
                                 int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) noexcept nogil:
    # as max_pool_plane, reading every D-th pixel of the window's span D*(F - 1) + 1
    cdef Py_ssize_t i, j, r, c, r0, r1, c0, c1
    cdef floating best, value
    cdef int64_t best_index
    for i in range(oh):
        r0 = first_tap(i, sh, ph, dh)
        r1 = min(i * sh - ph + <Py_ssize_t>dh * (kh - 1) + 1, height)
        for j in range(ow):
            c0 = first_tap(j, sw, pw, dw)
            c1 = min(j * sw - pw + <Py_ssize_t>dw * (kw - 1) + 1, width)
            best = -INFINITY
            best_index = r0 * width + c0
            r = r0
            while r < r1:
                c = c0
                while c < c1:
                    value = x[r * width + c]
                    if beats(value, best):
                        best = value
                        best_index = r * width + c
                    c = c + dw
                r = r + dh
            y[i * ow + j] = best
            argmax[i * ow + j] = best_index


def max_pool2d_backward(const floating[:, :, ::1] dy, const int64_t[:, :, ::1] argmax,
                        floating[:, ::1] dx, int num_threads, bint tiles_2x2=False):
    """Route each window's error to its winner: ``dx[plane, argmax] += dy``; ``dx`` is (N*C, H*W).

    ``tiles_2x2``: the windows are 2x2 with stride 2 and cover the plane exactly
    (even H and W), so every pixel belongs to one window and ``dx`` is written
    in one pass, without clearing it first.
    """
    cdef Py_ssize_t planes = dy.shape[0], oh = dy.shape[1], ow = dy.shape[2], plane_size = dx.shape[1]
    cdef Py_ssize_t plane, i, j, top, width = 2 * ow
    cdef floating* dst
    cdef int64_t where
    cdef floating err
    if tiles_2x2:
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            dst = &dx[plane, 0]
            for i in range(oh):
                if floating is float:
                    if vector_rows_2x2(ow):
                        minicnn_max_pool_2x2_grad_row_f32(&dy[plane, i, 0], &argmax[plane, i, 0],
                                                          dst + 2 * i * width, width, ow, 2 * i * width)
                        continue
                for j in range(ow):
                    top = 2 * i * width + 2 * j
                    where = argmax[plane, i, j]
                    err = dy[plane, i, j]
                    dst[top] = err if where == top else 0
                    dst[top + 1] = err if where == top + 1 else 0
                    dst[top + width] = err if where == top + width else 0
                    dst[top + width + 1] = err if where == top + width + 1 else 0
        return
    for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
        memset(&dx[plane, 0], 0, plane_size * sizeof(floating))
        for i in range(oh):
            for j in range(ow):
                dx[plane, argmax[plane, i, j]] += dy[plane, i, j]


def avg_pool2d_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y,
                       int kh, int kw, int sh, int sw, int ph, int pw, int num_threads,
                       const floating[:, ::1] divisor=None):
    """Mean over each window (padded zeros count: divisor F_H*F_W).

    ``divisor`` (H_out, W_out), beyond the deck: each window's own divisor
    (``ceil_mode``, ``count_include_pad=False``, ``divisor_override``; see
    ``PoolGeometry.divisor_factors``), in the general loop.
    """
    cdef Py_ssize_t planes = x.shape[0], height = x.shape[1], width = x.shape[2]
    cdef Py_ssize_t oh = y.shape[1], ow = y.shape[2]
    cdef Py_ssize_t plane, i, j, r, c, r0, r1, c0, c1, top
    cdef floating total
    cdef floating area = <floating>kh * <floating>kw  # in floating point: kh*kw may overflow a C int
    cdef const floating* src
    cdef floating* dst
    cdef bint per_window = divisor is not None
    if (not per_window and kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
            and height >= 2 * oh and width >= 2 * ow):
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            src = &x[plane, 0, 0]
            dst = &y[plane, 0, 0]
            for i in range(oh):
                for j in range(ow):
                    top = 2 * i * width + 2 * j
                    # the same order of additions as the general loop, so both give the same bits
                    dst[i * ow + j] = (src[top] + src[top + 1] + src[top + width] + src[top + width + 1]) / area
        return
    for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
        for i in range(oh):
            r0 = window_start(i, sh, ph)
            r1 = window_stop(i, sh, ph, kh, height)
            for j in range(ow):
                c0 = window_start(j, sw, pw)
                c1 = window_stop(j, sw, pw, kw, width)
                total = 0
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        total = total + x[plane, r, c]
                y[plane, i, j] = total / (divisor[i, j] if per_window else area)


def avg_pool2d_backward(const floating[:, :, ::1] dy, floating[:, :, ::1] dx,
                        int kh, int kw, int sh, int sw, int ph, int pw, int num_threads,
                        const floating[:, ::1] divisor=None):
    """Share each window's error equally among its F_H*F_W pixels (``kron(dy, ones)/F^2`` when windows tile);
    with ``divisor`` (H_out, W_out), each window's error divided by its own divisor (see ``avg_pool2d_forward``)."""
    cdef Py_ssize_t planes = dy.shape[0], oh = dy.shape[1], ow = dy.shape[2]
    cdef Py_ssize_t height = dx.shape[1], width = dx.shape[2]
    cdef Py_ssize_t plane, i, j, r, c, r0, r1, c0, c1
    cdef floating share
    cdef floating area = <floating>kh * <floating>kw  # in floating point: kh*kw may overflow a C int
    cdef floating* dst
    cdef Py_ssize_t top
    cdef bint per_window = divisor is not None
    if (not per_window and kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
            and height == 2 * oh and width == 2 * ow):
        # windows tile the plane exactly: every pixel gets its one window's share, written once
        for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
            dst = &dx[plane, 0, 0]
            for i in range(oh):
                for j in range(ow):
                    share = dy[plane, i, j] / area
                    top = 2 * i * width + 2 * j
                    dst[top] = share
                    dst[top + 1] = share
                    dst[top + width] = share
                    dst[top + width + 1] = share
        return
    for plane in prange(planes, nogil=True, schedule="static", num_threads=num_threads):
        memset(&dx[plane, 0, 0], 0, height * width * sizeof(floating))
        for i in range(oh):
            r0 = window_start(i, sh, ph)
            r1 = window_stop(i, sh, ph, kh, height)
            for j in range(ow):
                c0 = window_start(j, sw, pw)
                c1 = window_stop(j, sw, pw, kw, width)
                share = dy[plane, i, j] / (divisor[i, j] if per_window else area)
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        dx[plane, r, c] += share
