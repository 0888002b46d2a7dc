"""The cython backend's convolution paths: one class per kernel family, each saying what it takes.

Every path computes the same three formulas (deck 003_7c437a475fa69432.txt,
"Correlación cruzada"; deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
Backpropagation", eq. 2)::

    forward      Y[n, o, i, j]  = b[o] + sum_{c,p,q} W[o, c, p, q] X[n, c, i*S + p*D - P, j*S + q*D - P]
    input_grad   dX[n, c, y, x] = sum_{o,p,q} W[o, c, p, q] dY[n, o, (y + P - p*D)/S, (x + P - q*D)/S]
    weight_grad  dW[o, c, p, q] = sum_{n,i,j} dY[n, o, i, j] X[n, c, i*S + p*D - P, j*S + q*D - P],
                 db[o] = sum_{n,i,j} dY[n, o, i, j]

in a different loop order and data layout. A path's ``takes(op, geometry,
dtype)`` returns "" when it can compute ``op`` for that layer and otherwise the
reason it cannot (a stride it does not handle, a lane count the kernel needs,
a kernel not compiled here). ``prefers(op, geometry, dtype)`` holds the limits
measured on the development machine (where the path lost to another one):
the static table skips a path there, but the autotuner still times it, since
a threshold measured on one CPU is a prior, not a law. Which path runs is
decided in ``cython_backend.py``; ``note`` says what the path is for and what
was measured.

Paths receive checked, C-contiguous arrays and a ``shapes.ConvGeometry``, and
never recompute an output size. Workspaces come from the backend and are
reused between calls.
"""

from __future__ import annotations

import numpy as np

from ..shapes import ConvGeometry

__all__ = ["PATH_CLASSES", "bias_grad"]

_INT_MAX = 2**31 - 1


def bias_grad(dy):
    """``db[o] = sum over images and pixels of dy[n, o, i, j]``: first over the images (one pass of
    contiguous adds), then over each map; 4x faster here than NumPy's sum over axes (0, 2, 3)."""
    n, o = dy.shape[:2]
    return dy.sum(axis=0).reshape(o, -1).sum(axis=1)


def fits_int32(g: ConvGeometry):
    """The kernels index one image's arrays, and BLAS its products, with 32-bit ints."""
    return max(g.k * g.positions, g.o * g.positions, g.o * g.k, g.c * g.h * g.w,
               g.n * g.o * g.positions, g.n * g.c * g.h * g.w,
               *g.stride, *g.padding, *g.dilation, g.groups) <= _INT_MAX


class Path:
    """One kernel family. Subclasses set ``name``, ``ops``, ``note`` and implement what they list in ``ops``."""

    name = ""
    ops = ()
    fused = False  # has grad(): dX and dW in one pass
    note = ""

    def __init__(self, backend):
        self.b = backend
        self.conv = backend._conv

    def takes(self, op, g: ConvGeometry, dtype):
        """"" if this path computes ``op`` for geometry ``g`` and ``dtype``, else why not."""
        if op not in self.ops:
            return f"has no {op} kernel"
        if not fits_int32(g):
            return "a size exceeds the 32-bit ints the kernels and BLAS index with"
        return self._takes(op, g, np.dtype(dtype))

    def _takes(self, op, g, dtype):
        return ""

    def prefers(self, op, g, dtype):
        """"" if the static table picks this path for ``op`` of ``g`` when it takes it, else the measured
        reason it is skipped there (a prior from the development machine; the autotuner still times it)."""
        return self._prefers(op, g, np.dtype(dtype))

    def _prefers(self, op, g, dtype):
        return ""

    def workspace(self, name, shape, dtype, zero=False):
        return self.b._workspace(name, shape, dtype, zero)

    def parallel_items(self, op, g):
        """How many independent items of work the kernel splits among threads for ``op`` (``"grad"``:
        dX and dW in one pass): the images, unless the path splits finer."""
        return g.n

    def grad(self, x, w, dy, g, threads):
        """``(dx, dw, db)``: dX and dW by this path, separately unless a subclass fuses them."""
        return (self.input_grad(x, w, dy, g, threads), *self.weight_grad(x, w, dy, g, threads))


class FusedPath(Path):
    """A path whose ``grad(..., input_grad)`` computes dW (and dX when asked) in one pass; dX or dW
    alone come from that pass (the kernel forms dW on its way to dX: cheap next to dX)."""

    fused = True

    def input_grad(self, x, w, dy, g, threads):
        return self.grad(x, w, dy, g, threads)[0]

    def weight_grad(self, x, w, dy, g, threads):
        return self.grad(x, w, dy, g, threads, input_grad=False)[1:]


def _blocks(total, size):
    return -(-total // size)


class DensePath(FusedPath):
    name = "dense"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("a filter as large as its unpadded input (LeNet's C5) is a fully connected layer: one GEMM on the "
            "flattened images, in fixed blocks of rows; C5 at batch 256: forward 0.89 -> 0.16 ms, gradients "
            "1.51 -> 0.35 ms against im2col (AMD Zen 4, 2 threads)")

    # Fixed blocks (never per thread): the same BLAS calls, so the same bits, with any thread count.
    BLOCK_ROWS = 32
    BLOCK_FILTERS = 32

    def _takes(self, op, g, dtype):
        if (g.kh, g.kw) != (g.h, g.w):
            return f"the filter ({g.kh}x{g.kw}) is not as large as the input ({g.h}x{g.w})"
        if g.padding != (0, 0) or g.dilation != (1, 1) or g.groups != 1:
            return "needs no padding, no dilation and one group"
        return ""

    def forward(self, x, w, b, g, threads):
        y = np.empty(g.y_shape, dtype=x.dtype)
        self.b.dense_forward(x.reshape(g.n, -1), w.reshape(g.o, -1), b, y.reshape(g.n, g.o), threads)
        return y

    def grad(self, x, w, dy, g, threads, input_grad=True):
        dx = np.empty_like(x) if input_grad else None
        dw = np.empty_like(w)
        self.b.dense_backward(x.reshape(g.n, -1), w.reshape(g.o, -1), dy.reshape(g.n, g.o),
                              dx.reshape(g.n, -1) if input_grad else None, dw.reshape(g.o, -1), threads)
        return dx, dw, bias_grad(dy)

    def input_grad(self, x, w, dy, g, threads):
        dx = np.empty_like(x)
        self.b.dense_input_grad(w.reshape(g.o, -1), dy.reshape(g.n, g.o), dx.reshape(g.n, -1), threads)
        return dx


class DirectPath(Path):
    name = "direct"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("16 filters per vector, 2 rows x 4 pixels (direct_conv.h): stride-1 layers with C_out a multiple "
            "of 16, padded ones through a zero-bordered copy (LeNet's C3, mid-network 3x3). Forward against "
            "im2col + GEMM on AMD Zen 4, 2 threads: 3x3 16->16 on 32x32 2.2x, 64->64 on 56x56 1.34x, "
            "128->128 on 28x28 1.20x, 5x5 32->64 on 16x16 1.50x; slower on 1x1 filters (0.66x) and for "
            "K = C_in*F_H*F_W above ~1,300 (0.85x). dX is the same kernel on dY padded by F - 1 - P, filters "
            "rotated, channels swapped; dW streams dY through the caches once per tap and loses to GEMM over "
            "more than ~1,000 output positions")

    LANES = 16
    MIN_POSITIONS = 16
    MAX_K = 1280
    WEIGHT_GRAD_MAX_POSITIONS = 1024

    @staticmethod
    def _correlation(g, op):
        """(maps out, K, output height, output width, role) of the correlation the forward kernel runs."""
        if op == "input_grad":  # dY correlated with the rotated filters: C_in "outputs" of size H x W
            return g.c, g.o * g.taps, g.h, g.w, "C_in"
        return g.o, g.k, g.oh, g.ow, "C_out"

    def _takes(self, op, g, dtype):
        if not self.b._direct_available:
            return "the direct kernel is not compiled here (needs gcc or clang)"
        if not g.stride1:
            return "needs stride 1, no dilation and one group"
        maps, _, _, ow, role = self._correlation(g, op)
        if maps % self.LANES:
            return f"{role} ({maps}) is not a multiple of {self.LANES}"
        if ow < 4:
            return f"rows of {ow} < 4 pixels"
        if op == "input_grad" and (g.padding[0] > g.kh - 1 or g.padding[1] > g.kw - 1):
            return "padding larger than the filter minus one"
        if op == "weight_grad" and g.padding != (0, 0):
            return "the weight gradient kernel needs no padding"
        return ""

    def _prefers(self, op, g, dtype):
        _, k_taps, oh, ow, _ = self._correlation(g, op)
        if op == "weight_grad":
            if not self.MIN_POSITIONS <= g.positions <= self.WEIGHT_GRAD_MAX_POSITIONS:
                return (f"{g.positions} output positions outside [{self.MIN_POSITIONS}, "
                        f"{self.WEIGHT_GRAD_MAX_POSITIONS}] (over many positions GEMM won)")
            return ""
        if g.taps < 2:
            return "1x1 filters (measured slower than im2col, which is a plain copy there)"
        if k_taps > self.MAX_K:
            return f"K = {k_taps} > {self.MAX_K} (measured slower: the weights leave the fast caches)"
        if oh * ow < self.MIN_POSITIONS:
            return f"{oh * ow} < {self.MIN_POSITIONS} output positions"
        return ""

    def forward(self, x, w, b, g, threads):
        y = np.empty(g.y_shape, dtype=x.dtype)
        w_t = np.ascontiguousarray(w.reshape(g.o, -1).T)
        out_t = self.workspace("out_t", (threads, g.positions * g.o), x.dtype)
        padded = self.workspace("padded", (threads, g.c * (g.h + 2 * g.padding[0]) * (g.w + 2 * g.padding[1])), x.dtype)
        self.conv.conv2d_forward_direct(x, w_t, b, y, out_t, *g.padding, padded, threads)
        return y

    def input_grad(self, x, w, dy, g, threads):
        """dX as a forward correlation (deck 002, "Aprendizaje: Backpropagation", eq. 2): dY padded by
        F - 1 - P, correlated with the filters rotated by 180 degrees, input and output channels swapped."""
        # w_t[(o*F_H + p)*F_W + q, c] = W[o, c, F_H-1-p, F_W-1-q]: the tap index first, as the kernel reads it
        w_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).reshape(g.o * g.taps, g.c)
        full = (g.kh - 1 - g.padding[0], g.kw - 1 - g.padding[1])
        dx = np.empty_like(x)
        out_t = self.workspace("out_t", (threads, g.h * g.w * g.c), x.dtype)
        padded = self.workspace("padded", (threads, g.o * (g.oh + 2 * full[0]) * (g.ow + 2 * full[1])), x.dtype)
        self.conv.conv2d_forward_direct(dy, w_t, None, dx, out_t, *full, padded, threads)
        return dx

    def weight_grad(self, x, w, dy, g, threads):
        parts = self.b.image_groups(g.n, g.k * g.o * x.itemsize)
        dw_t = self.workspace("dw", (parts, 1, g.k, g.o), x.dtype, zero=True)
        dy_t = self.workspace("dy_t", (threads, g.positions * g.o), x.dtype)
        self.conv.conv2d_weight_grad_direct(x, dy, dw_t, dy_t, min(threads, parts))
        dw = np.ascontiguousarray(dw_t.sum(axis=0)[0].T).reshape(w.shape)
        return dw, bias_grad(dy)


class WinogradPath(Path):
    name = "winograd"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("Winograd F(2x2, 3x3) (Lavin and Gray 2016; kernels/cpu/winograd.pyx, minicnn/winograd.py): 3x3 "
            "stride-1 layers, 16 products U[xi] @ V[xi] per block of 2x2 output tiles (2.25x fewer multiplications); "
            "dX is the same kernel on dY padded by 2 - P, filters rotated, channels swapped; dW is F(3x3, 2x2), "
            "16 products E[xi] @ V[xi]^T per block of tiles summed in fixed parts. The blocks of tiles, not the "
            "images, are shared among the threads. It loses with few channels (1, 3 or 16 input channels: the "
            "products are too thin) and, with OPENBLAS_CORETYPE=Haswell (AVX2 GEMM), to the direct kernel on the "
            "deep layer. Not in the static table (measured on one machine only): chosen only by the autotuner")

    #: Output tiles per block: V and M of a block (16*(C_in + C_out) values per tile) fit in BLOCK_BYTES
    #: per thread, at most the kernel's 256 tiles; the blocks are then made a multiple of 8 in number
    #: (2, 4 or 8 threads get equal shares: the deep layer's 784 tiles were 7 blocks of 128, 4 on one
    #: thread and 3 on the other) and equal in size, at least MIN_TILE_BLOCK tiles. They depend on the
    #: shapes and dtype only, never on the thread count: the same bits on any number of threads.
    #: Measured on AMD Zen 5 (2 threads, float32, powers of two): the deep layer (256 -> 256 channels)
    #: 14.3 ms at 64 tiles, 14.0 at 128, 17.4 at 256; the mid layer (64 -> 64) 36.6 at 64, 32.4 at 256
    #: (OPENBLAS_CORETYPE=Haswell; 10.5, 9.8, 11.8 and 21.4, 19.4 ms without it).
    BLOCK_BYTES = 4 << 20
    MAX_TILE_BLOCK = 256
    #: F(m x m, 3x3): the output tile's side, and the transformed tile's positions (m + 2)**2.
    TILE = 2
    POSITIONS = 16
    #: The weight gradient's partial sums: a power of two of parts, at most MAX_PARTS, holding
    #: 16*C_out*C_in values each, at most PARTS_BYTES together.
    MAX_PARTS = 8
    PARTS_BYTES = 8 << 20
    MIN_TILE_BLOCK = 16
    SHARES = 8

    def _takes(self, op, g, dtype):
        if (g.kh, g.kw) != (3, 3):
            return f"needs a 3x3 filter, not {g.kh}x{g.kw}"
        if not g.stride1:
            return "needs stride 1, no dilation and one group"
        if op == "input_grad" and (g.padding[0] > 2 or g.padding[1] > 2):
            return "padding larger than 2 (dY would be padded by 2 - P < 0)"
        if self.POSITIONS * max(g.o, g.c) * max(g.c, g.o) > _INT_MAX:
            return "the transformed filters exceed 2**31 entries"
        return ""

    def _prefers(self, op, g, dtype):
        return "not measured on the development machine; chosen only by measurement"

    def _tiles(self, g, op):
        """Tiles in all of the correlation the kernel runs for ``op``."""
        out_h, out_w = (g.h, g.w) if op == "input_grad" else (g.oh, g.ow)
        return self.kernels.tile_count(g.n, out_h, out_w, self.TILE)

    def _rows_per_tile(self, g):
        """Rows of a block's transforms and products per tile and position: V's C_in and M's C_out."""
        return g.c + g.o

    def _tile_block(self, g, op, itemsize):
        """(tiles per block, tiles in all) of the correlation the kernel runs for ``op``."""
        tiles = self._tiles(g, op)
        fit = max(self.MIN_TILE_BLOCK, min(self.MAX_TILE_BLOCK,
                                           self.BLOCK_BYTES // (self.POSITIONS * self._rows_per_tile(g) * itemsize)))
        blocks = _blocks(tiles, fit)
        if blocks > 1:
            blocks = min(_blocks(blocks, self.SHARES) * self.SHARES, _blocks(tiles, self.MIN_TILE_BLOCK))
        return _blocks(tiles, blocks), tiles

    @property
    def kernels(self):
        return self.b._winograd

    def _call(self, x, w, b, y, pad_h, pad_w, op, g, threads):
        """``y = conv2d(x, w, padding) + b`` by the kernel: ``w`` (maps out, maps in, 3, 3)."""
        maps_out, maps_in = w.shape[:2]
        block, tiles = self._tile_block(g, op, x.itemsize)
        threads = max(1, min(threads, -(-tiles // block)))
        u = self.workspace("wino_u", (self.POSITIONS, maps_out, maps_in), x.dtype)
        self.kernels.filter_transform(w, u, threads, self.TILE)
        v = self.workspace("wino_v", (threads, self.POSITIONS * maps_in * block), x.dtype)
        m = self.workspace("wino_m", (threads, self.POSITIONS * maps_out * block), x.dtype)
        self.kernels.winograd_forward(x, u, b, y, pad_h, pad_w, block, v, m, threads, self.TILE)
        return y

    def forward(self, x, w, b, g, threads):
        return self._call(x, w, b, np.empty(g.y_shape, dtype=x.dtype), *g.padding, "forward", g, threads)

    def parallel_items(self, op, g):
        """The blocks of tiles (the weight gradient: its parts), not the images: a batch of one image
        still keeps every thread busy."""
        block, tiles = self._tile_block(g, op, np.dtype(np.float32).itemsize)
        blocks = _blocks(tiles, block)
        return self._parts(g, blocks, 4)[0] if op == "weight_grad" else blocks

    def _parts(self, g, blocks, itemsize, rows=None):
        """(parts, blocks per part) of the weight gradient's sum (``rows`` x C_out per position, C_in rows
        unless given): a power of two, at most MAX_PARTS and PARTS_BYTES of partial sums, no part empty; by
        the shapes alone, so the same bits on any thread count."""
        parts = 1
        while (parts * 2 <= min(self.MAX_PARTS, blocks)
               and parts * 2 * self.POSITIONS * g.o * (rows or g.c) * itemsize <= self.PARTS_BYTES):
            parts *= 2
        per_part = _blocks(blocks, parts)
        return _blocks(blocks, per_part), per_part

    def weight_grad(self, x, w, dy, g, threads):
        """dW by F(3x3, 2x2) (minicnn/winograd.py): ``G^T [sum over tiles (A dY A^T) ⊙ (B^T d B)] G``."""
        block, tiles = self._tile_block(g, "weight_grad", x.itemsize)
        parts, per_part = self._parts(g, _blocks(tiles, block), x.itemsize)
        threads = max(1, min(threads, parts))
        m_parts = self.workspace("wino_dw", (parts, self.POSITIONS, g.o, g.c), x.dtype)
        v = self.workspace("wino_v", (threads, self.POSITIONS * g.c * block), x.dtype)
        e = self.workspace("wino_e", (threads, self.POSITIONS * g.o * block), x.dtype)
        self.kernels.winograd_weight_grad(x, dy, m_parts, *g.padding, block, per_part, v, e, threads, self.TILE)
        dw = np.empty_like(w)
        self.kernels.weight_output_transform(m_parts, dw, threads)
        return dw, bias_grad(dy)

    def input_grad(self, x, w, dy, g, threads):
        """dX as a forward correlation (deck 002, "Aprendizaje: Backpropagation", eq. 2): dY padded by
        2 - P, correlated with the filters rotated by 180 degrees, input and output channels swapped."""
        w_r = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
        return self._call(dy, w_r, None, np.empty_like(x), 2 - g.padding[0], 2 - g.padding[1], "input_grad", g,
                          threads)


class Winograd4Path(WinogradPath):
    name = "winograd4"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("Winograd F(4x4, 3x3) (Lavin and Gray 2016, section 4.2; winograd.h, minicnn/winograd.py): 36 products "
            "per block of 4x4 output tiles, 4x fewer multiplications than the direct sum, at 10-17x the float32 "
            "error of F(2x2) (still below 1e-5 of the largest output on 256 channels; minicnn/winograd.py). "
            "Forward, dX, and dW as F(3x3, 4x4) (36 products per block of 4x4 tiles of dY). Chosen only by the autotuner")
    TILE = 4
    POSITIONS = 36


class WinogradWidePath(WinogradPath):
    name = "winograd_wide"
    ops = ("forward", "input_grad")
    note = ("Winograd F(2x2, 3x3) for layers with few tiles and many channels (VGG-16's 28x28 and 14x14 layers "
            "at batch 1): the blocks of tiles one after the other, the threads sharing each block (the products "
            "split by position and by 64 filters), so each thread reads only its share of the transformed filters "
            "instead of all of them once per block. Chosen only by the autotuner")

    #: V and M of all the layer's tiles, one block shared by the threads. A layer with more tiles is the
    #: blocked path's: there each thread's block stays in its caches (the mid layer, 25,088 tiles, ran
    #: 2.5x slower here in blocks of 16 MB shared by the threads).
    WIDE_BLOCK_BYTES = 16 << 20

    def parallel_items(self, op, g):
        return self.POSITIONS  # the products, by position (and the transforms, by channel)

    def _takes(self, op, g, dtype):
        reason = super()._takes(op, g, dtype)
        if reason:
            return reason
        out_h, out_w = (g.h, g.w) if op == "input_grad" else (g.oh, g.ow)
        need = self.POSITIONS * (g.c + g.o) * self.kernels.tile_count(g.n, out_h, out_w, self.TILE) * dtype.itemsize
        if need > self.WIDE_BLOCK_BYTES:
            return (f"its tiles need {need >> 20} MB of transforms, more than one shared block "
                    f"({self.WIDE_BLOCK_BYTES >> 20} MB): the {'winograd4' if self.TILE == 4 else 'winograd'} path blocks them")
        return ""

    def _call(self, x, w, b, y, pad_h, pad_w, op, g, threads):
        maps_out, maps_in = w.shape[:2]
        out_h, out_w = y.shape[2:]
        block = self.kernels.tile_count(g.n, out_h, out_w, self.TILE)  # all of them (``takes``)
        u = self.workspace("wino_u", (self.POSITIONS, maps_out, maps_in), x.dtype)
        self.kernels.filter_transform(w, u, threads, self.TILE)
        v = self.workspace("wino_v", (self.POSITIONS * maps_in * block,), x.dtype)
        m = self.workspace("wino_m", (self.POSITIONS * maps_out * block,), x.dtype)
        # each product on all the filters: on a share of them it would pack the block's V again, and the 16
        # (36) positions already give the threads their shares (512 -> 512 at 28x28, batch 1: 17.4 ms
        # with 64-filter products, AMD Zen 5)
        self.kernels.winograd_forward_wide(x, u, b, y, pad_h, pad_w, block, maps_out, v, m, threads, self.TILE)
        return y


class Winograd4WidePath(WinogradWidePath):
    name = "winograd4_wide"
    note = ("Winograd F(4x4, 3x3) in the winograd_wide layout: few tiles, many channels, 36 products per block "
            "split by position and filters among the threads. Chosen only by the autotuner")
    TILE = 4
    POSITIONS = 36


class WinogradPhasesPath(WinogradPath):
    name = "winograd_phases"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("Winograd F(3x3, 2x2) on the four stride-2 phases (minicnn/winograd.py, winograd.pyx): 4x4 filters, "
            "stride 2, padding 1, the layer whose input gradient is a transposed convolution k4 s2 p1 (DCGAN's "
            "upsampling). Each phase of X is a 2x2 correlation of dY, so one transform B^T d B of dY's 4x4 windows "
            "serves the four phases: 16 products per tile of 3x3 positions instead of 36 multiply-adds (2.25x "
            "fewer; 1.78x counting the padded edge tiles when dY's maps are 16x16). dX: U[xi] @ V[xi], then "
            "G^T M G into each phase; Y and dW: one transform G e G^T of X's phase tiles for both "
            "(forward_and_weight_grad). Odd sizes too (a transposed convolution with output_padding=1)")

    TILE = 3
    #: Measured on AMD Zen 4 (2 threads, the DCGAN layer 64 -> 32 channels on 16x16, batch 32, Y and dW
    #: together): 64 and 96 tiles per block within noise of each other (6.70 and 6.87 ms; 8.43 and 7.97 in
    #: an earlier run), 144 slower (7.71 ms; benchmarks/results/cpu-2core-amd-epyc-zen4-conv-transpose.txt).
    MAX_TILE_BLOCK = 96

    def _takes(self, op, g, dtype):
        if (g.kh, g.kw) != (4, 4) or g.stride != (2, 2) or g.padding != (1, 1):
            return "needs a 4x4 filter, stride 2 and padding 1"
        if g.dilation != (1, 1) or g.groups != 1:
            return "needs no dilation and one group"
        if self.POSITIONS * 4 * g.c * g.o > _INT_MAX:
            return "the transformed filters exceed 2**31 entries"
        return ""

    def _prefers(self, op, g, dtype):
        # Measured on AMD Zen 4 by the autotuner (benchmarks/results/cpu-2core-amd-epyc-zen4-conv-transpose.txt):
        # faster than im2col for the DCGAN layer's Y, dX and dW, and for Y and dW in one pass.
        return ""

    def _tiles(self, g, op):
        """Tiles of 3x3 phase positions in all, the same for every operation."""
        tiles_high, tiles_wide = self.kernels.phase_tiles(g.h, g.w)
        return g.n * tiles_high * tiles_wide

    def _rows_per_tile(self, g):
        """E's 4 C_in rows (or M's), and V's and Y's C_out each."""
        return 4 * g.c + 2 * g.o

    def _positions(self, name, lead, rows, cols, dtype):
        """``lead`` x 16 rows, each a position's matrix (rows x cols), one cache line longer (winograd.pyx,
        ``phase_stride``)."""
        return self.workspace(name, (lead, self.POSITIONS, self.kernels.phase_workspace(rows, cols) // self.POSITIONS), dtype)

    def parallel_items(self, op, g):
        """The blocks of tiles (Y and dW: the parts of the sum), as the kernels split them among threads."""
        block, tiles = self._tile_block(g, op, np.dtype(np.float32).itemsize)
        blocks = _blocks(tiles, block)
        return blocks if op == "input_grad" else self._parts(g, blocks, 4, 4 * g.c)[0]

    def _filters(self, w, threads):
        u = self._positions("phase_u", 1, 4 * w.shape[1], w.shape[0], w.dtype)[0]
        self.kernels.phase_filter_transform(w, u, threads)
        return u

    def input_grad(self, x, w, dy, g, threads):
        block, tiles = self._tile_block(g, "input_grad", x.itemsize)
        threads = max(1, min(threads, _blocks(tiles, block)))
        u = self._filters(w, threads)
        v = self.workspace("phase_v", (threads, self.kernels.phase_workspace(g.o, block)), x.dtype)
        m = self.workspace("phase_m", (threads, self.kernels.phase_workspace(4 * g.c, block)), x.dtype)
        dx = np.empty_like(x)
        self.kernels.phase_input_grad(dy, u, dx, block, v, m, threads)
        return dx

    def _pass(self, x, w, dy, g, threads, forward, weight_grad, bias=None):
        """Y (plus ``bias``; None unless ``forward``) and the weight gradient's sum M (None unless ``weight_grad``)."""
        block, tiles = self._tile_block(g, "weight_grad", x.itemsize)
        parts, per_part = self._parts(g, _blocks(tiles, block), x.itemsize, 4 * g.c)  # Y alone: the same parts
        threads = max(1, min(threads, parts))
        u = self._filters(w, threads)
        tiles_per_map = tiles // g.n
        q = self.workspace("phase_q", (g.n * g.o * tiles_per_map * self.POSITIONS,), x.dtype) if forward else None
        m_parts = self._positions("phase_dw", parts, 4 * g.c, g.o, x.dtype) if weight_grad else None
        e = self.workspace("phase_e", (threads, self.kernels.phase_workspace(4 * g.c, block)), x.dtype)
        v = self.workspace("phase_v", (threads, self.kernels.phase_workspace(g.o, block)), x.dtype)
        yh = self.workspace("phase_y", (threads, self.kernels.phase_workspace(g.o, block)), x.dtype)
        self.kernels.phase_forward_and_weight_grad(x, u, g.o, dy, q, m_parts, block, per_part, e, v, yh, threads)
        y = None
        if forward:
            y = np.empty(g.y_shape, dtype=x.dtype)
            row = self.workspace("phase_row", (threads, 3 * self.kernels.phase_tiles(g.h, g.w)[1] + 1), x.dtype)
            self.kernels.phase_fold(q, bias, y, row, threads)
        # the parts' sums, without the padding at the end of each position's row (never written)
        return y, (m_parts[:, :, :4 * g.c * g.o].sum(axis=0) if weight_grad else None)

    def _weight_grad(self, m, w, threads):
        dw = np.empty_like(w)
        self.kernels.phase_weight_output(m, dw, threads)
        return dw

    def forward(self, x, w, b, g, threads):
        return self._pass(x, w, None, g, threads, True, False, b)[0]

    def weight_grad(self, x, w, dy, g, threads):
        _, m = self._pass(x, w, dy, g, threads, False, True)
        return self._weight_grad(m, w, threads), bias_grad(dy)

    def forward_and_weight_grad(self, x, w, dy, g, threads):
        """``y = conv2d(x, w)`` (no bias) and ``(dW, db)`` from one transform of X's phase tiles per block:
        the backward pass of ``ConvTranspose2d`` k4 s2 p1."""
        y, m = self._pass(x, w, dy, g, threads, True, True)
        return y, self._weight_grad(m, w, threads), bias_grad(dy)


class RowsPath(Path):
    name = "rows"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("a vector of neighbouring pixels of one output row (direct_rows.h, direct_rows_grad.h): layers with "
            "few filters (LeNet's C1). Forward faster than im2col from 6 output columns (1.1-3x, 1-64 input "
            "channels, 3x3 and 5x5); dX (a 'full' correlation of dY) 1.05-1.7x for inputs >= 14 wide whose rows "
            "fill >= 7/8 of their vectors, 2+ input channels, <= 16 filters; dW 2.2-4.7x up to 10 filters, "
            "1.6x at 20-30 (AMD Zen 4, one thread)")

    MIN_WIDTH = 6
    DX_MIN_WIDTH = 14
    DX_MIN_LANE_USE = 7 / 8
    DX_MIN_IN_CHANNELS = 2
    DX_MAX_OUT_CHANNELS = 16
    # The weight-gradient kernel adds blocks of this many images before it sums its vectors' lanes;
    # blocks are fixed, not per thread, so the result is the same bit for bit with any thread count.
    GRAD_BLOCK = 4
    GRAD_MAX_OUT = 32

    def _takes(self, op, g, dtype):
        if not g.plain:
            return "needs stride 1, no padding, no dilation and one group"
        if op in ("forward", "input_grad"):
            if not self.b._rows_available:
                return "the row kernel is not compiled here (needs gcc or clang)"
            return ""
        if not self.b._rows_grad_available:
            return "the row weight-gradient kernel is not compiled here (needs gcc or clang)"
        lanes = self.conv.rows_weight_grad_lanes(dtype == np.float64)
        if g.ow < lanes:
            return f"output rows of {g.ow} < {lanes} pixels (one vector)"
        return ""

    def _prefers(self, op, g, dtype):
        if op == "forward":
            if g.ow < self.MIN_WIDTH:
                return f"output rows of {g.ow} < {self.MIN_WIDTH} pixels (mostly padding in a vector)"
            return ""
        if op == "input_grad":
            lanes = self.conv.row_lanes()
            vectors = -(-g.w // lanes) * lanes
            if g.w < self.DX_MIN_WIDTH:
                return f"input rows of {g.w} < {self.DX_MIN_WIDTH} pixels"
            if g.w < self.DX_MIN_LANE_USE * vectors:
                return f"input rows of {g.w} fill less than 7/8 of {vectors} vector lanes"
            if g.c < self.DX_MIN_IN_CHANNELS:
                return "one input channel (one chain of multiply-adds; GEMM won)"
            if g.o > self.DX_MAX_OUT_CHANNELS:
                return f"C_out = {g.o} > {self.DX_MAX_OUT_CHANNELS}"
            return ""
        if g.o > self.GRAD_MAX_OUT:
            return f"C_out = {g.o} > {self.GRAD_MAX_OUT} filters"
        return ""

    def _call(self, x, w_t, b, y, pad_h, pad_w, threads):
        n, c, h, wd = x.shape
        o, kh, kw = y.shape[1], h + 2 * pad_h - y.shape[2] + 1, wd + 2 * pad_w - y.shape[3] + 1
        size_in, size_out = self.conv.rows_workspace_sizes(c, h, wd, o, kh, kw, pad_h, pad_w)
        ws_in = self.workspace("rows_in", (threads, max(size_in, 1)), x.dtype)
        ws_out = self.workspace("rows_out", (threads, max(size_out, 1)), x.dtype)
        self.conv.conv2d_rows(x, w_t, b, y, pad_h, pad_w, ws_in, ws_out, threads)
        return y

    def forward(self, x, w, b, g, threads):
        w_t = np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(g.k, g.o)
        return self._call(x, w_t, b, np.empty(g.y_shape, dtype=x.dtype), 0, 0, threads)

    def input_grad(self, x, w, dy, g, threads):
        """dX[c, y, x] = sum_{o,p,q} W[o, c, p, q] dY[o, y-p, x-q]: the correlation of dY, zero-padded by
        (F_H-1, F_W-1), with the filters rotated by 180 degrees and their channel axes swapped."""
        w_r_t = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(0, 2, 3, 1)).reshape(g.o * g.taps, g.c)
        return self._call(dy, w_r_t, None, np.empty_like(x), g.kh - 1, g.kw - 1, threads)

    def weight_grad(self, x, w, dy, g, threads):
        """``(dw, db)``: per-block partial sums, added in block order."""
        blocks = _blocks(g.n, self.GRAD_BLOCK)
        partial = self.workspace("dw_rows", (blocks, w.size + g.o), x.dtype)
        self.conv.conv2d_weight_grad_rows(x, dy, partial, self.GRAD_BLOCK, min(threads, blocks))
        total = partial.sum(axis=0)
        return total[: w.size].reshape(w.shape), total[w.size :]


class LanesPath(FusedPath):
    name = "lanes"
    ops = ("input_grad", "weight_grad")
    note = ("the batch in the vector lanes (batch_lanes.h): 16 images per vector (8 in float64), dX, dW and db "
            "of small stride-1 layers (LeNet's C3) in one parallel region; against the other paths on AMD "
            "Zen 4 (float32, batch 64): C3 1.5-1.6x, 8-128 channels on 8x8 to 32x32 maps 1.35-2.5x, float64 "
            "8-16x; slower with 1 input channel (0.92x) and 1x1 filters (0.69x)")

    MIN_IN_CHANNELS = 2
    MIN_TAPS = 2
    # Lanes of the last group past the end of the batch hold zeros: batch 24 (32 lanes) gained 1.23x
    # on one thread against 1.55x at 32; require 3/4 of the lanes used.
    MIN_USE = 3 / 4
    # Each thread's copies of dY and X; the largest layer measured (12 MB) still gained 1.2x.
    MAX_WORKSPACE_BYTES = 16 << 20

    def _takes(self, op, g, dtype):
        if not self.b._lanes_available:
            return "the batch-in-lanes kernels are not compiled here (needs gcc or clang)"
        if not g.plain:
            return "needs stride 1, no padding, no dilation and one group"
        workspace = self._workspace_bytes(g, dtype)
        if workspace > self.LARGEST_WORKSPACE_BYTES:
            return f"{workspace >> 20} MB of workspace per thread > {self.LARGEST_WORKSPACE_BYTES >> 20} MB"
        return ""

    #: What the kernels may ask for at all, per thread (copies of 16 images' dY and X).
    LARGEST_WORKSPACE_BYTES = 256 << 20

    def _workspace_bytes(self, g, dtype):
        lanes = self.conv.lanes_group(dtype == np.float64)
        return (g.positions * g.o + g.h * g.w * g.c) * lanes * dtype.itemsize

    def _prefers(self, op, g, dtype):
        lanes = self.conv.lanes_group(dtype == np.float64)
        groups = _blocks(g.n, lanes)
        if g.n < lanes:
            return f"batch {g.n} < one group of {lanes} images"
        if g.n < self.MIN_USE * groups * lanes:
            return f"batch {g.n} fills less than 3/4 of {groups * lanes} lanes"
        if g.c < self.MIN_IN_CHANNELS:
            return "one input channel (one chain of multiply-adds per pixel)"
        if g.taps < self.MIN_TAPS:
            return "1x1 filters (the per-pixel loop costs more than the arithmetic)"
        workspace = self._workspace_bytes(g, dtype)
        if workspace > self.MAX_WORKSPACE_BYTES:
            return f"{workspace >> 20} MB of workspace per thread > {self.MAX_WORKSPACE_BYTES >> 20} MB"
        return ""

    def grad(self, x, w, dy, g, threads, input_grad=True, weight_grad=True):
        """``(dx or None, dw or None, db or None)`` in one parallel region; dW and db as per-group
        partial sums (fixed groups of images) added here in group order."""
        double = x.dtype == np.float64
        lanes = self.conv.lanes_group(double)
        groups = _blocks(g.n, lanes)
        threads = max(1, min(threads, groups))
        size = self.conv.lanes_workspace_size(g.c, g.h, g.w, g.o, g.kh, g.kw, double)
        workspace = self.workspace("lanes", (threads, size), x.dtype)
        partial = self.workspace("lanes_partial", (groups, w.size + g.o), x.dtype) if weight_grad else None
        dx = np.empty_like(x) if input_grad else None
        w_l = np.ascontiguousarray(w.transpose(0, 2, 3, 1)) if input_grad else None
        self.conv.conv2d_grad_lanes(
            x, w_l, dy, dx, partial, workspace, threads, input_grad, weight_grad)
        if not weight_grad:
            return dx, None, None
        total = partial.sum(axis=0)
        return dx, total[: w.size].reshape(w.shape), total[w.size :]

    def input_grad(self, x, w, dy, g, threads):
        return self.grad(x, w, dy, g, threads, weight_grad=False)[0]


class BatchedPath(FusedPath):
    name = "batched"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("one GEMM for the whole batch, the images' columns side by side: layers with few output positions "
            "per image, where one image's product is too thin for BLAS")

    MAX_POSITIONS = 64

    #: The whole batch's column matrix, at most (bytes): the product runs on one BLAS thread, and the
    #: mid 3x3 layer (231 MB of columns) took 72 ms forward against 30 ms by im2col (AMD Zen 5).
    LARGEST_COLUMNS_BYTES = 32 << 20

    def _takes(self, op, g, dtype):
        if g.k * g.n * g.positions > _INT_MAX:
            return "the batch's column matrix exceeds 2**31 entries"
        if g.c * g.taps * g.n * g.positions * dtype.itemsize > self.LARGEST_COLUMNS_BYTES:
            return f"the batch's column matrix would exceed {self.LARGEST_COLUMNS_BYTES >> 20} MB"
        return ""

    def _prefers(self, op, g, dtype):
        if g.positions > self.MAX_POSITIONS:
            return f"{g.positions} output positions per image > {self.MAX_POSITIONS} (one image's product is wide enough)"
        return ""

    def forward(self, x, w, b, g, threads):
        y = np.empty(g.y_shape, dtype=x.dtype)
        col = self.workspace("col", (g.c * g.taps, g.n * g.positions), x.dtype)
        y_t = self.workspace("out_t", (g.o, g.n * g.positions), x.dtype)
        self.conv.conv2d_forward_batched(x, w, b, y, col, y_t, *g.stride, *g.padding, *g.dilation, g.groups, threads)
        return y

    def grad(self, x, w, dy, g, threads, input_grad=True):
        dx = np.empty_like(x) if input_grad else None
        dw = np.empty((g.o, g.k), dtype=x.dtype)
        col = self.workspace("col", (g.c * g.taps, g.n * g.positions), x.dtype)
        dy_t = self.workspace("out_t", (g.o, g.n * g.positions), x.dtype)
        self.conv.conv2d_backward_batched(x, w, dy, dx, dw, col, dy_t, *g.stride, *g.padding, *g.dilation,
                                          g.groups, threads, input_grad)
        return dx, dw.reshape(w.shape), bias_grad(dy)


class Im2colPath(FusedPath):
    name = "im2col"
    ops = ("forward", "input_grad", "weight_grad")
    note = ("im2col + BLAS GEMM (scipy.linalg.cython_blas), one image per thread, the column matrix built a few "
            "output rows at a time so it stays in cache: every layer, the general path")

    def _columns(self, g, threads, dtype):
        """Each thread's column matrix for a few output rows at a time (conv2d.pyx, chunk_rows)."""
        rows = self.conv.column_chunk_rows(g.c * g.taps, g.oh, g.ow)
        return self.workspace("col", (threads, g.c * g.taps * g.ow * rows), dtype)

    def forward(self, x, w, b, g, threads):
        y = np.empty(g.y_shape, dtype=x.dtype)
        col = self._columns(g, threads, x.dtype)
        self.conv.conv2d_forward(x, w, b, y, col, *g.stride, *g.padding, *g.dilation, g.groups, threads)
        return y

    def grad(self, x, w, dy, g, threads, input_grad=True):
        dx = np.empty_like(x) if input_grad else None
        return (dx, *self._backward(x, w, dy, g, threads, dx, None))

    def forward_and_weight_grad(self, x, w, dy, g, threads):
        """``y = conv2d(x, w)`` (no bias) and ``(dW, db)`` from one column matrix of ``x``: the backward pass
        of ``ConvTranspose2d``, which would otherwise lay out the same receptive fields twice."""
        y = np.empty(g.y_shape, dtype=x.dtype)
        return (y, *self._backward(x, w, dy, g, threads, None, y))

    def _backward(self, x, w, dy, g, threads, dx, y):
        parts = self.b.image_groups(g.n, g.k * g.o * x.itemsize)
        dw_parts = self.workspace("dw", (parts, g.groups, g.k, g.o_per_group), x.dtype, zero=True)
        col = self._columns(g, threads, x.dtype)
        self.conv.conv2d_backward(x, w, dy, dx, dw_parts, col, *g.stride, *g.padding, *g.dilation, g.groups,
                                  min(threads, parts), dx is not None, y)
        # per group of filters the kernel accumulates dW^T (K, C_out/groups); sum the image groups, transpose back
        dw = np.ascontiguousarray(dw_parts.sum(axis=0).transpose(0, 2, 1)).reshape(w.shape)
        return dw, bias_grad(dy)

    def input_grad(self, x, w, dy, g, threads):
        """Only dX: dcol = W^T @ dY, then col2im (no column matrix of X, no dW)."""
        dx = np.empty_like(x)
        col = self.workspace("col", (threads, g.c * g.taps * g.positions), x.dtype)
        self.conv.conv2d_input_grad_gemm(w, dy, dx, col, *g.stride, *g.padding, *g.dilation, g.groups, threads)
        return dx


class ReferencePath(FusedPath):
    name = "reference"
    ops = ("forward", "input_grad", "weight_grad")
    note = "the NumPy reference (numpy_backend.py): for layers no compiled path takes (sizes beyond 32-bit ints)"

    def takes(self, op, g, dtype):
        return ""

    def forward(self, x, w, b, g, threads):
        return self.b.reference.conv2d(x, w, b, g)

    def grad(self, x, w, dy, g, threads, input_grad=True):
        return self.b.reference.conv2d_grad(x, w, dy, g, input_grad)


#: The table, in the static order of preference of the forward pass.
PATH_CLASSES = (DensePath, DirectPath, WinogradPath, Winograd4Path, WinogradWidePath, Winograd4WidePath,
                WinogradPhasesPath, RowsPath, LanesPath, BatchedPath, Im2colPath, ReferencePath)
