"""The "cython" backend: compiled CPU kernels from ``kernels/cpu`` (OpenMP over the batch).

It subclasses the reference backend and overrides the six primitives with
calls into the extension modules ``minicnn.kernels.cpu.conv2d`` and
``minicnn.kernels.cpu.pool2d``. This module owns the memory the kernels
write (outputs and per-thread workspaces); the kernels only compute.

Convolution picks a kernel by the layer's shape; each predicate is a method
below, with the measurements that set its limits. ``conv2d`` (forward), the
first that applies:

1. ``_dense``: a filter as large as its unpadded input (LeNet's C5): the fully
   connected product of the flattened images, split over threads
   (``dense_forward``);
2. ``_direct_forward``: stride 1, C_out a multiple of 16, padded or not, up to
   K = C_in*F_H*F_W = 1280 (C3, mid-network 3x3 layers): 16 filters per vector
   register (``direct_conv.h``);
3. ``_rows``: other plain stride-1 layers with rows of 6 or more (C1): 16
   pixels of an output row per vector (``direct_rows.h``);
4. ``_batched``: few output positions per image: one GEMM for the whole batch;
5. otherwise im2col, a few output rows at a time, and a GEMM per image.

``conv2d_grad``, the first that applies:

1. ``_dense``: the two products of the fully connected layer (``dense_backward``);
2. ``_lanes``: small plain stride-1 layers and batches of 16 or more (C3): 16
   images per vector, dX, dW and db in one pass (``batch_lanes.h``);
3. ``_weight_grad_rows_ok``: few filters, not a multiple of 16 (C1): dW and db
   along output rows (``direct_rows_grad.h``), dX by the row kernel or by
   W^T dY and col2im;
4. ``_direct_input_grad``: stride 1, C_in a multiple of 16: dX is the forward
   direct kernel on dY padded by F - 1 - P (rotated filters, channels swapped),
   dW by the paths below;
5. ``_rows_input_grad``: dX by the row kernel, dW by the paths below;
6. ``_direct``: dW by the direct kernel, dX by W^T dY and col2im;
7. ``_batched``, else im2col + GEMM per image, as in the forward pass.

So a LeNet-5 training step runs C1 on the row kernels, C3 forward on the
direct kernel and its gradients on the batch-in-lanes kernel, and C5 as a
fully connected layer. Every path is tested against the reference backend
on the shapes its predicate accepts.

Threads: ``num_threads`` (default: the CPUs this process may use, or the
environment variable ``MINICNN_NUM_THREADS``) OpenMP threads split the batch;
BLAS is kept to one thread inside our calls so the two thread pools do not
fight over the cores. The kernels release the GIL, so several Python
threads may call them at once.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from . import _shared_blas_limiter
from .numpy_backend import NumpyBackend


def _default_threads():
    env = os.environ.get("MINICNN_NUM_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            raise ValueError(f"MINICNN_NUM_THREADS must be a positive int, got {env!r}") from None
        if value < 1:
            raise ValueError(f"MINICNN_NUM_THREADS must be >= 1, got {value}")
        return value
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


# How long our idle OpenMP threads spin before they sleep, unless the user says otherwise: long
# enough to bridge the gap between two layers of a training step, short enough not to steal the
# cores from another library's threads for long (GNU libgomp counts spins, LLVM libomp milliseconds).
_SHORT_SPIN = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}


def _import_kernels():
    """Import the extension modules, with the OpenMP runtime they load set to spin only briefly.

    An OpenMP runtime reads its settings once, when it loads. By default
    libgomp's idle workers spin for about 300,000 rounds (milliseconds) after
    each parallel region; on a machine with few cores that spinning steals the
    core that another library's threads (BLAS, a second OpenMP runtime such as
    PyTorch's) need. Waiting passively instead costs a wake-up at every region
    (about 15% of a LeNet-5 step here); a short spin keeps most of the speed
    and little of the harm. The variables are restored afterwards, so runtimes
    loaded later keep their defaults; values the user set (including
    ``OMP_WAIT_POLICY``) are left alone.
    """
    user_set = "OMP_WAIT_POLICY" in os.environ
    added = [] if user_set else [key for key in _SHORT_SPIN if key not in os.environ]
    for key in added:
        os.environ[key] = _SHORT_SPIN[key]
    try:
        from minicnn.kernels.cpu import conv2d as conv_kernels
        from minicnn.kernels.cpu import pool2d as pool_kernels
    finally:
        for key in added:
            os.environ.pop(key, None)
    return conv_kernels, pool_kernels


def _bias_grad(dy):
    """``db[o] = sum over images and pixels of dy[n, o, i, j]``: first over the images (one pass of
    contiguous adds), then over each map; 4x faster here than NumPy's sum over axes (0, 2, 3)."""
    n, o = dy.shape[:2]
    return dy.sum(axis=0).reshape(o, -1).sum(axis=1)


class CythonBackend(NumpyBackend):
    """Compiled CPU kernels: direct, row, batch-in-lanes and im2col + BLAS convolution; direct pooling loops."""

    name = "cython"

    def __init__(self, num_threads=None):
        conv_kernels, pool_kernels = _import_kernels()

        self._conv = conv_kernels
        self._pool = pool_kernels
        self.num_threads = _default_threads() if num_threads is None else int(num_threads)
        self._blas_one_thread = _shared_blas_limiter()
        self._local = threading.local()
        self._direct_available = conv_kernels.direct_available()
        self._rows_grad_available = conv_kernels.rows_weight_grad_available()
        self._rows_available = conv_kernels.rows_available()
        self._lanes_available = conv_kernels.lanes_available()

    def _workspace(self, name, shape, dtype, zero=False):
        """A scratch array kept between calls (one set per Python thread, so concurrent calls never share).

        Large fresh allocations are page-faulted in on every call; reusing
        them keeps the hot path free of allocation costs.
        """
        cache = self._local.__dict__.setdefault("workspaces", {})
        size = int(np.prod(shape))
        key = (name, np.dtype(dtype).char)
        buf = cache.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            cache[key] = buf
        view = buf[:size].reshape(shape)
        if zero:
            view.fill(0)
        return view

    @property
    def openmp(self):
        """True when the kernels were compiled with OpenMP."""
        return self._conv.openmp_enabled()

    def _blas_limit(self, threads):
        """One BLAS thread inside each of our OpenMP threads; a lone call may let BLAS use its own threads."""
        return self._blas_one_thread if threads > 1 else contextlib.nullcontext()

    # Below this many multiply-adds per thread, waking a second thread costs more than it saves
    # (and on a busy machine a parallel region waits for every thread to be scheduled).
    MIN_WORK_PER_THREAD = 250_000

    # Pooling does one comparison or addition per input pixel it reads, and is limited by memory
    # more than by arithmetic; a second thread pays off from smaller sizes.
    MIN_POOL_WORK_PER_THREAD = 100_000

    def _threads(self, work_items, work, grain=None):
        """Threads for a call with ``work_items`` independent items and ``work`` operations in all."""
        grain = self.MIN_WORK_PER_THREAD if grain is None else grain
        return max(1, min(self.num_threads, work_items, work // grain))

    def _pool_threads(self, planes, work):
        return self._threads(planes, work, self.MIN_POOL_WORK_PER_THREAD)

    # -------------------------------------------------------------- convolution
    # The direct kernel (kernels/cpu/direct_conv.h) handles 16 output channels per pass; plain
    # stride-1 layers it does not take go to the row kernel (direct_rows.h, `_rows` below).
    DIRECT_LANES = 16
    DIRECT_MIN_POSITIONS = 16
    DIRECT_MAX_POSITIONS = 1024

    def _direct(self, o, stride, padding, dilation, groups, oh, ow):
        """Small stride-1 layers with C_out a multiple of 16 (LeNet's C3) skip the column matrix."""
        positions = oh * ow
        return (
            self._direct_available
            and ow >= 4
            and o % self.DIRECT_LANES == 0
            and stride == (1, 1)
            and padding == (0, 0)
            and dilation == (1, 1)
            and groups == 1
            and self.DIRECT_MIN_POSITIONS <= positions <= self.DIRECT_MAX_POSITIONS
        )

    # The forward pass takes the direct kernel for padded and larger layers too (each image is copied
    # into a zero-bordered one first), where it measured faster than im2col + GEMM on this project's
    # machine (2 threads, forward only): 3x3 layers 16->16 on 32x32 2.2x, 64->64 on 56x56 1.34x,
    # 128->128 on 28x28 1.20x; 5x5 32->64 on 16x16 1.50x. Where it lost: 1x1 filters (0.66x, im2col
    # is a plain copy there), and deep layers with K = C_in*F_H*F_W above ~1,300 (256 and 512
    # channels, 3x3: 0.85x), whose 16 filters' weights no longer sit in the fastest caches.
    DIRECT_FORWARD_MAX_K = 1280

    def _direct_forward(self, o, c, kh, kw, stride, dilation, groups, oh, ow):
        """Forward passes of stride-1 layers with C_out a multiple of 16, padded or not (see above).

        Their weight gradients keep ``_direct``'s limits: over many positions the direct weight
        gradient streams the error through the caches once per tap and loses to GEMM.
        """
        return (
            self._direct_available
            and ow >= 4
            and o % self.DIRECT_LANES == 0
            and kh * kw > 1
            and c * kh * kw <= self.DIRECT_FORWARD_MAX_K
            and stride == (1, 1)
            and dilation == (1, 1)
            and groups == 1
            and oh * ow >= self.DIRECT_MIN_POSITIONS
        )

    def _direct_input_grad(self, c, o, kh, kw, stride, padding, dilation, groups, h, wd):
        """dX of a stride-1 layer as the forward direct kernel on dY (see ``_input_grad_direct``)."""
        return (
            stride == (1, 1)
            and dilation == (1, 1)
            and groups == 1
            and padding[0] <= kh - 1
            and padding[1] <= kw - 1
            and self._direct_forward(c, o, kh, kw, stride, dilation, groups, h, wd)
        )

    def _input_grad_direct(self, x, w, dy, padding, threads):
        """dX as a forward correlation (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation",
        eq. 2): dY padded by F - 1 - P, correlated with the filters rotated by 180 degrees, input and
        output channels swapped; the direct kernel then does the work of the forward pass."""
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        oh, ow = dy.shape[2:]
        # w_t[(o*F_H + p)*F_W + q, c] = W[o, c, F_H-1-p, F_W-1-q]: the tap index first, as the kernel reads it
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).reshape(o * kh * kw, c)
        full = (kh - 1 - padding[0], kw - 1 - padding[1])
        dx = np.empty_like(x)
        out_t = self._workspace("out_t", (threads, h * wd * c), x.dtype)
        padded = self._workspace("padded", (threads, o * (oh + 2 * full[0]) * (ow + 2 * full[1])), x.dtype)
        self._conv.conv2d_forward_direct(dy, w_t, None, dx, out_t, *full, padded, threads)
        return dx

    # The row kernel (kernels/cpu/direct_rows.h) puts 16 pixels of an output row in a vector; rows
    # narrower than 16 are computed in a zero-padded 16-wide copy. Thresholds measured on one core
    # of the development machine (AMD Zen 4, AVX-512), against im2col + GEMM:
    # * forward: faster from 6 output columns on (1.1-3x for 1-64 input channels, 3x3 and 5x5);
    #   at 4 columns the vector is three-quarters padding and GEMM can win.
    ROWS_MIN_WIDTH = 6
    # * input gradient: the kernel also multiplies the zero border of the padded dY, and the
    #   16-pixel vectors waste lanes on widths that are not close to a multiple of 16 (24 = 16 + 8
    #   uses 32 lanes). It beat W^T @ dY + col2im (by 1.05-1.7x) only for inputs >= 14 wide whose
    #   rows fill >= 7/8 of their vectors (14-16, 28-32, ...), with few output channels (GEMM's
    #   inner dimension; LeNet's C3 has 16) and at least 2 input channels (with 1, the kernel's
    #   one-channel tile does a load per multiply-add and loses to GEMM).
    ROWS_DX_MIN_WIDTH = 14
    ROWS_DX_MIN_LANE_USE = 7 / 8
    ROWS_DX_MIN_IN_CHANNELS = 2
    ROWS_DX_MAX_OUT_CHANNELS = 16

    @staticmethod
    def _plain(stride, padding, dilation, groups):
        return stride == (1, 1) and padding == (0, 0) and dilation == (1, 1) and groups == 1

    def _rows(self, o, stride, padding, dilation, groups, oh, ow):
        """Forward by the row kernel: plain stride-1 layers the 16-channel kernel does not take (LeNet's C1)."""
        return (
            self._rows_available
            and self._plain(stride, padding, dilation, groups)
            and ow >= self.ROWS_MIN_WIDTH
            and not self._direct(o, stride, padding, dilation, groups, oh, ow)
        )

    def _rows_input_grad(self, c, o, stride, padding, dilation, groups, wd):
        """dX by the row kernel (a "full" correlation of dY) for plain stride-1 layers like LeNet's C3."""
        lanes = self._conv.row_lanes()
        return (
            self._rows_available
            and self._plain(stride, padding, dilation, groups)
            and wd >= self.ROWS_DX_MIN_WIDTH
            and wd >= self.ROWS_DX_MIN_LANE_USE * (-(-wd // lanes) * lanes)
            and c >= self.ROWS_DX_MIN_IN_CHANNELS
            and o <= self.ROWS_DX_MAX_OUT_CHANNELS
        )

    def _rows_call(self, x, w_t, b, y, pad_h, pad_w, threads):
        n, c, h, wd = x.shape
        o, kh, kw = y.shape[1], h + 2 * pad_h - y.shape[2] + 1, wd + 2 * pad_w - y.shape[3] + 1
        size_in, size_out = self._conv.rows_workspace_sizes(c, h, wd, o, kh, kw, pad_h, pad_w)
        ws_in = self._workspace("rows_in", (threads, max(size_in, 1)), x.dtype)
        ws_out = self._workspace("rows_out", (threads, max(size_out, 1)), x.dtype)
        self._conv.conv2d_rows(x, w_t, b, y, pad_h, pad_w, ws_in, ws_out, threads)
        return y

    def _input_grad_rows(self, x, w, dy, threads):
        """dX of a plain stride-1 layer by the row kernel.

        dX[c, y, x] = sum_{o,p,q} W[o, c, p, q] dY[o, y-p, x-q] (deck 002, "Aprendizaje:
        Backpropagation", eq. 2): the correlation of dY, zero-padded by (F_H-1, F_W-1), with the
        filters rotated by 180 degrees and their two channel axes swapped, W_r[c, o, p, q] =
        W[o, c, F_H-1-p, F_W-1-q], laid out as (C_out*F_H*F_W, C_in) for the kernel.
        """
        o, c, kh, kw = w.shape
        w_r_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).reshape(o * kh * kw, c)
        dx = np.empty_like(x)
        return self._rows_call(dy, w_r_t, None, dx, kh - 1, kw - 1, threads)

    # Layers with at most this many output positions per image use one GEMM for the whole batch.
    BATCHED_MAX_POSITIONS = 64

    def _batched(self, n, c, kh, kw, oh, ow, o):
        positions = oh * ow
        return positions <= self.BATCHED_MAX_POSITIONS and self._fits_blas_ints(c, kh, kw, n * oh, ow, o)

    @staticmethod
    def _dense(h, wd, kh, kw, padding, dilation, groups):
        """A filter as large as its unpadded input (LeNet's C5): one GEMM, no column matrix."""
        return (kh, kw) == (h, wd) and padding == (0, 0) and dilation == (1, 1) and groups == 1

    @staticmethod
    def _fits_blas_ints(c, kh, kw, oh, ow, o):
        """BLAS takes 32-bit ints: one image's column matrix and its products must stay below 2**31 entries."""
        limit = 2**31 - 1
        return c * kh * kw * oh * ow <= limit and o * oh * ow <= limit and o * c * kh * kw <= limit

    # The row kernel for the weight gradient (kernels/cpu/direct_rows_grad.h) adds up blocks of this
    # many images before it sums its vectors' lanes; blocks are fixed, not per thread, so the result
    # is the same bit for bit with any number of threads.
    ROWS_GRAD_BLOCK = 4
    # Measured on LeNet-like layers (64 images of 6x32x32, 5x5 filters, one thread): 2.2-4.7x faster
    # than im2col up to 10 filters, 1.6x at 20-30, even at 40, where the im2col product has enough
    # rows for BLAS. 3x3 filters gain less (1.05-1.15x at 6 filters).
    ROWS_GRAD_MAX_OUT = 32

    def _weight_grad_rows_ok(self, dtype, o, stride, padding, dilation, groups, ow):
        """dW of stride-1 layers with few filters, not a multiple of 16 (LeNet's C1), by the row kernel.

        Output rows must fill one vector (16 float32 or 8 float64 columns); narrower ones run
        slower there than through im2col.
        """
        return (
            self._rows_grad_available
            and o % self.DIRECT_LANES != 0
            and o <= self.ROWS_GRAD_MAX_OUT
            and stride == (1, 1)
            and padding == (0, 0)
            and dilation == (1, 1)
            and groups == 1
            and ow >= self._conv.rows_weight_grad_lanes(np.dtype(dtype) == np.float64)
        )

    def _weight_grad_rows(self, x, w, dy, threads):
        """``(dw, db)`` by the row kernel: per-block partial sums, added in block order."""
        n = x.shape[0]
        o = w.shape[0]
        block = self.ROWS_GRAD_BLOCK
        blocks = -(-n // block)
        partial = self._workspace("dw_rows", (blocks, w.size + o), x.dtype)
        self._conv.conv2d_weight_grad_rows(x, dy, partial, block, min(threads, blocks))
        total = partial.sum(axis=0)
        return total[: w.size].reshape(w.shape), total[w.size :]

    # Batch in the lanes (kernels/cpu/batch_lanes.h): dX, dW and db of a group of 16 images (8 in
    # float64) per vector, one parallel region for all three. Measured against the paths above
    # (development machine: 2 cores of an AMD Zen 4, AVX-512; float32, batch 64, dX + dW, 1 and 2
    # threads): LeNet's C3 (6 -> 16, 14x14, 5x5) 1.5-1.6x (dX alone 1.7x, dW alone 1.25-1.35x);
    # 1x2 to 7x7 filters 1.6-2x; 2 input channels 2x; 8-128 channels on 8x8 to 32x32 maps
    # 1.35-2.5x; 32 channels on 56x56 1.2x (12 MB of workspace per thread); float64 8-16x (the
    # other float64 paths are slow). Where it lost or is not used:
    # * 1 input channel: the dX kernel has one chain of multiply-adds, which waits on their
    #   latency (0.92x on one thread for 1 -> 16 on 14x14);
    # * 1x1 filters: one tap per pixel, the per-pixel loop costs more than the arithmetic (0.69x);
    # * dW alone (input_grad=False) of layers the row kernel of direct_rows_grad.h takes (few
    #   filters, wide rows; LeNet's C1, 3 -> 6 on 32x32: 0.87-0.93x).
    LANES_MIN_IN_CHANNELS = 2
    LANES_MIN_TAPS = 2
    # Lanes of the last group past the end of the batch hold zeros and compute nothing useful:
    # batch 24 (32 lanes) gained 1.23x on one thread against 1.55x at 32; require 3/4 of the lanes used.
    LANES_MIN_USE = 3 / 4
    # Each thread's copies of dY and X (dyL, xL); the largest layer measured (12 MB) still gained 1.2x.
    LANES_MAX_WORKSPACE_BYTES = 16 << 20

    def _lanes(self, dtype, n, c, o, h, wd, kh, kw, stride, padding, dilation, groups, input_grad=True):
        """Gradients with the batch in the lanes: plain stride-1 layers like LeNet's C3, batch >= one group."""
        if not (self._lanes_available and self._plain(stride, padding, dilation, groups)):
            return False
        dtype = np.dtype(dtype)
        lanes = self._conv.lanes_group(dtype == np.float64)
        groups_n = -(-n // lanes)
        oh, ow = h - kh + 1, wd - kw + 1
        workspace = (oh * ow * o + h * wd * c) * lanes * dtype.itemsize
        return (
            n >= lanes
            and n >= self.LANES_MIN_USE * groups_n * lanes
            and c >= self.LANES_MIN_IN_CHANNELS
            and kh * kw >= self.LANES_MIN_TAPS
            and workspace <= self.LANES_MAX_WORKSPACE_BYTES
            and (input_grad or not self._weight_grad_rows_ok(dtype, o, stride, padding, dilation, groups, ow))
        )

    def _grad_lanes(self, x, w, dy, threads, input_grad=True, weight_grad=True):
        """``(dx or None, dw or None, db or None)`` by the batch-in-lanes kernels in one parallel region.

        dW and db come as per-group partial sums (fixed groups of 16 or 8 images), added here in
        group order: the same bits for any number of threads.
        """
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        double = x.dtype == np.float64
        lanes = self._conv.lanes_group(double)
        groups_n = -(-n // lanes)
        threads = max(1, min(threads, groups_n))
        size = self._conv.lanes_workspace_size(c, h, wd, o, kh, kw, double)
        workspace = self._workspace("lanes", (threads, size), x.dtype)
        partial = self._workspace("lanes_partial", (groups_n, w.size + o), x.dtype) if weight_grad else None
        dx = np.empty_like(x) if input_grad else None
        w_l = np.ascontiguousarray(w.transpose(0, 2, 3, 1)) if input_grad else None
        self._conv.conv2d_grad_lanes(x, w_l, dy, dx, partial, workspace, threads, input_grad, weight_grad)
        if not weight_grad:
            return dx, None, None
        total = partial.sum(axis=0)
        return dx, total[: w.size].reshape(w.shape), total[w.size :]

    def _input_grad_lanes(self, x, w, dy, threads):
        """dX alone by the batch-in-lanes kernel."""
        return self._grad_lanes(x, w, dy, threads, input_grad=True, weight_grad=False)[0]

    def _weight_grad_lanes(self, x, w, dy, threads):
        """``(dw, db)`` alone by the batch-in-lanes kernel."""
        return self._grad_lanes(x, w, dy, threads, input_grad=False, weight_grad=True)[1:]

    def conv2d(self, x, w, b, stride, padding, dilation, groups):
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        oh = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
        ow = (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
        if not self._fits_blas_ints(c, kh, kw, oh, ow, o):
            return super().conv2d(x, w, b, stride, padding, dilation, groups)
        threads = self._threads(n, n * o * oh * ow * cg * kh * kw)
        y = np.empty((n, o, oh, ow), dtype=x.dtype)
        if self._dense(h, wd, kh, kw, padding, dilation, groups):
            with self._blas_limit(threads):
                self._conv.dense_forward(x.reshape(n, -1), w.reshape(o, -1), b, y.reshape(n, o), threads)
            return y
        if self._direct_forward(o, c, kh, kw, stride, dilation, groups, oh, ow):
            w_t = np.ascontiguousarray(w.reshape(o, -1).T)
            out_t = self._workspace("out_t", (threads, oh * ow * o), x.dtype)
            padded = self._workspace("padded", (threads, c * (h + 2 * padding[0]) * (wd + 2 * padding[1])), x.dtype)
            self._conv.conv2d_forward_direct(x, w_t, b, y, out_t, *padding, padded, threads)
            return y
        if self._rows(o, stride, padding, dilation, groups, oh, ow):
            w_t = np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(c * kh * kw, o)
            return self._rows_call(x, w_t, b, y, 0, 0, threads)
        if self._batched(n, c, kh, kw, oh, ow, o):
            col = self._workspace("col", (c * kh * kw, n * oh * ow), x.dtype)
            y_t = self._workspace("out_t", (o, n * oh * ow), x.dtype)
            with self._blas_one_thread:
                self._conv.conv2d_forward_batched(x, w, b, y, col, y_t, *stride, *padding, *dilation, groups, threads)
            return y
        # im2col lays out a few output rows at a time (conv2d.pyx, chunk_rows)
        col = self._workspace("col", (threads, c * kh * kw * ow * self._conv.column_chunk_rows(c * kh * kw, oh, ow)), x.dtype)
        with self._blas_limit(threads):
            self._conv.conv2d_forward(x, w, b, y, col, *stride, *padding, *dilation, groups, threads)
        return y

    def conv2d_grad(self, x, w, dy, stride, padding, dilation, groups, input_grad=True):
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        _, _, oh, ow = dy.shape
        if not self._fits_blas_ints(c, kh, kw, oh, ow, o):
            return super().conv2d_grad(x, w, dy, stride, padding, dilation, groups, input_grad)
        threads = self._threads(n, 2 * n * o * oh * ow * cg * kh * kw)
        if self._dense(h, wd, kh, kw, padding, dilation, groups):
            dx, dw = (np.empty_like(x) if input_grad else None), np.empty_like(w)
            dx_rows = dx.reshape(n, -1) if input_grad else None
            with self._blas_limit(threads):
                self._conv.dense_backward(
                    x.reshape(n, -1), w.reshape(o, -1), dy.reshape(n, o), dx_rows, dw.reshape(o, -1), threads, input_grad
                )
            return dx, dw, _bias_grad(dy)
        if self._lanes(x.dtype, n, c, o, h, wd, kh, kw, stride, padding, dilation, groups, input_grad):
            return self._grad_lanes(x, w, dy, threads, input_grad=input_grad)
        if self._weight_grad_rows_ok(x.dtype, o, stride, padding, dilation, groups, ow):
            # dW and db by the row kernel; dX (when asked) by the row kernel for dX if it takes the
            # layer, else by W^T @ dY and col2im alone
            dx = None
            if input_grad and self._rows_input_grad(c, o, stride, padding, dilation, groups, wd):
                dx = self._input_grad_rows(x, w, dy, self._threads(n, n * o * h * wd * c * kh * kw))
            elif input_grad:
                dx = np.empty_like(x)
                col = self._workspace("col", (threads, c * kh * kw * oh * ow), x.dtype)
                with self._blas_limit(threads):
                    self._conv.conv2d_input_grad_gemm(w, dy, dx, col, *stride, *padding, *dilation, groups, threads)
            return (dx, *self._weight_grad_rows(x, w, dy, threads))
        if input_grad and self._direct_input_grad(c, o, kh, kw, stride, padding, dilation, groups, h, wd):
            dx = self._input_grad_direct(x, w, dy, padding, self._threads(n, n * o * h * wd * c * kh * kw))
            return (dx, *self.conv2d_grad(x, w, dy, stride, padding, dilation, groups, input_grad=False)[1:])
        if input_grad and self._rows_input_grad(c, o, stride, padding, dilation, groups, wd):
            # dX by the row kernel; dW and db by whichever path takes the layer with input_grad=False
            dx = self._input_grad_rows(x, w, dy, self._threads(n, n * o * h * wd * c * kh * kw))
            return (dx, *self.conv2d_grad(x, w, dy, stride, padding, dilation, groups, input_grad=False)[1:])
        dx = np.empty_like(x) if input_grad else None
        if self._direct(o, stride, padding, dilation, groups, oh, ow):
            dw_t = self._workspace("dw", (threads, 1, cg * kh * kw, o), x.dtype, zero=True)
            col = self._workspace("col", (threads, c * kh * kw * oh * ow), x.dtype)
            dy_t = self._workspace("dy_t", (threads, oh * ow * o), x.dtype)
            with self._blas_limit(threads):
                self._conv.conv2d_backward_direct(x, w, dy, dx, dw_t, col, dy_t, threads, input_grad)
            dw = np.ascontiguousarray(dw_t.sum(axis=0)[0].T).reshape(w.shape)
            return dx, dw, _bias_grad(dy)
        if self._batched(n, c, kh, kw, oh, ow, o):
            dw = np.empty((o, cg * kh * kw), dtype=x.dtype)
            col = self._workspace("col", (c * kh * kw, n * oh * ow), x.dtype)
            dy_t = self._workspace("out_t", (o, n * oh * ow), x.dtype)
            with self._blas_one_thread:
                self._conv.conv2d_backward_batched(
                    x, w, dy, dx, dw, col, dy_t, *stride, *padding, *dilation, groups, threads, input_grad
                )
            return dx, dw.reshape(w.shape), _bias_grad(dy)
        dw_per_thread = self._workspace("dw", (threads, groups, cg * kh * kw, o // groups), x.dtype, zero=True)
        # im2col lays out a few output rows at a time (conv2d.pyx, chunk_rows)
        col = self._workspace("col", (threads, c * kh * kw * ow * self._conv.column_chunk_rows(c * kh * kw, oh, ow)), x.dtype)
        with self._blas_limit(threads):
            self._conv.conv2d_backward(
                x, w, dy, dx, dw_per_thread, col, *stride, *padding, *dilation, groups, threads, input_grad
            )
        # per group the kernel accumulates dW^T (K, C_out/groups); sum the threads, then transpose back
        dw = np.ascontiguousarray(dw_per_thread.sum(axis=0).transpose(0, 2, 1)).reshape(w.shape)
        db = _bias_grad(dy)
        return dx, dw, db

    # ------------------------------------------------------------------ pooling
    def max_pool2d(self, x, kernel, stride, padding):
        n, c, h, w = x.shape
        oh, ow = self._pool_geometry(x.shape, kernel, stride, padding)
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        argmax = np.empty((n, c, oh, ow), dtype=np.int64)
        self._pool.max_pool2d_forward(
            x.reshape(n * c, h, w), y.reshape(n * c, oh, ow), argmax.reshape(n * c, oh, ow),
            *kernel, *stride, *padding, self._pool_threads(n * c, y.size * kernel[0] * kernel[1]),
        )
        return y, argmax

    def max_pool2d_grad(self, x_shape, dy, argmax, kernel, stride, padding):
        n, c, h, w = x_shape
        _, _, oh, ow = dy.shape
        dx = np.empty(x_shape, dtype=dy.dtype)
        tiles_2x2 = kernel == (2, 2) and stride == (2, 2) and padding == (0, 0) and h == 2 * oh and w == 2 * ow
        self._pool.max_pool2d_backward(
            dy.reshape(n * c, oh, ow),
            argmax.reshape(n * c, oh, ow),
            dx.reshape(n * c, h * w),
            self._pool_threads(n * c, dy.size * kernel[0] * kernel[1]),
            tiles_2x2,
        )
        return dx

    def avg_pool2d(self, x, kernel, stride, padding):
        n, c, h, w = x.shape
        oh, ow = self._pool_geometry(x.shape, kernel, stride, padding)
        y = np.empty((n, c, oh, ow), dtype=x.dtype)
        self._pool.avg_pool2d_forward(
            x.reshape(n * c, h, w), y.reshape(n * c, oh, ow), *kernel, *stride, *padding,
            self._pool_threads(n * c, y.size * kernel[0] * kernel[1]),
        )
        return y

    def avg_pool2d_grad(self, x_shape, dy, kernel, stride, padding):
        n, c, h, w = x_shape
        _, _, oh, ow = dy.shape
        dx = np.empty(x_shape, dtype=dy.dtype)
        self._pool.avg_pool2d_backward(
            dy.reshape(n * c, oh, ow), dx.reshape(n * c, h, w), *kernel, *stride, *padding,
            self._pool_threads(n * c, dy.size * kernel[0] * kernel[1]),
        )
        return dx
