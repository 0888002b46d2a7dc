"""The "cupy" backend: CUDA kernels from ``kernels/gpu`` plus cuBLAS, on CuPy arrays.

It subclasses the reference backend (every primitive it does not override
runs the NumPy-style reference code on ``cupy`` arrays) and overrides the six
primitives with the kernels of ``kernels/gpu/conv2d.cu`` and
``kernels/gpu/pool2d.cu``, compiled once per process by NVRTC through
``cupy.RawModule`` on first use.

Convolution has two algorithms, chosen by the attribute ``conv_algorithm``:

* ``"im2col"`` (default, fast): an ``im2col`` kernel lays every receptive field
  out as a column, so each group's convolution is one matrix product that
  cuBLAS computes (``cupy.matmul``, batched over the groups). The input
  gradient multiplies by the transposed weights and folds the columns back
  with a gather kernel (``col2im``: each input pixel sums its own terms, no
  atomics); the weight gradient is ``dY . columns^T``; the bias gradient a
  reduction of ``dY``.
* ``"direct"`` (readable): one thread per output value, looping over the
  filter taps exactly as the slide's formula reads.
* ``"implicit_gemm"``: the same matrix products as im2col, but each block of
  ``kernels/gpu/implicit_gemm.cu`` gathers its tile of the column matrix into
  shared memory, so the column matrix is never written (forward, dX and dW;
  dW's long reduction split in ranges added in a fixed order). ``tf32 = True``
  (opt-in, float32 only) rounds the operands to TF32 and multiplies them on
  tensor cores (``mma.sync``; ``tensor_cores = False``: on CUDA cores);
  float32 is the default.
  Its launch plan and index formulas are ``backends/implicit_gemm.py``.

Fused kernels (``kernels/gpu/fused.cu``) for the device-resident training step
(``minicnn/captured.py``): ``conv2d_bias_relu`` (the implicit-GEMM forward with
bias and ReLU in its epilogue), ``relu_max_pool2x2`` and its gradient,
``softmax_cross_entropy_fused`` (loss, accuracy count and dJ/dlogits in one
block) and ``sgd_momentum_update`` (every parameter in one launch).

Every kernel sums in a fixed order without atomics, so repeated calls give
bit-identical results. The functional layer validates arguments; the cheap
checks here (dtype, contiguity, shapes) only guard direct calls, since a
kernel trusts its pointers and sizes.

This module is imported only when the registry loads the "cupy" backend;
without CuPy or without a working GPU, ``check_available`` says which of the
two is missing and ``minicnn.available_backends()`` leaves "cupy" out.
"""

from __future__ import annotations

import functools
import importlib.resources
import threading
from pathlib import Path

import numpy

from . import implicit_gemm
from .numpy_backend import NumpyBackend

try:
    import cupy
    import cupyx
except Exception as exc:  # ImportError, or a CUDA library that CuPy could not load
    cupy = None
    cupyx = None
    _IMPORT_ERROR = exc
else:
    _IMPORT_ERROR = None

__all__ = ["CupyBackend", "kernel_source"]

THREADS_PER_BLOCK = 256
# Grid-stride loops cover any size, so the grid need not grow past this.
MAX_BLOCKS = 1 << 16
_INT32_MAX = 2**31 - 1
_SUFFIX = {numpy.dtype(numpy.float32): "f32", numpy.dtype(numpy.float64): "f64"}
CONV_ALGORITHMS = ("im2col", "direct", "implicit_gemm")


# ------------------------------------------------------------------------ kernel loading
def kernel_source(filename):
    """Text of ``kernels/gpu/<filename>``, shipped as the package data ``minicnn.kernels.gpu``.

    From a source checkout that was not installed, the folder ``kernels/gpu``
    beside the package is read instead.
    """
    try:
        folder = importlib.resources.files("minicnn.kernels.gpu")
    except ModuleNotFoundError:
        folder = Path(__file__).resolve().parents[2] / "kernels" / "gpu"
    return folder.joinpath(filename).read_text(encoding="utf-8")


_compile_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _module(filename):
    """``cupy.RawModule`` of one .cu file, compiled once per process (NVRTC, cached on disk by CuPy)."""
    # Only comments hold non-ASCII text (the slides' accented titles). CuPy may
    # write the source to a file in the locale's encoding, so it gets ASCII.
    code = kernel_source(filename).encode("ascii", "backslashreplace").decode("ascii")
    return cupy.RawModule(code=code, options=("--std=c++14",))


@functools.lru_cache(maxsize=None)
def _kernel(filename, name, dtype):
    """The ``extern "C"`` instantiation ``<name>_f32`` or ``<name>_f64`` of ``filename``."""
    with _compile_lock:
        return _module(filename).get_function(f"{name}_{_SUFFIX[dtype]}")


def _address(a):
    """The device address of a CuPy array's first element (what a pointer table holds)."""
    return a.data.ptr


# --------------------------------------------------------------------------- guards
def _guard_float_array(fn, name, a):
    """``a`` must be a C-contiguous float32/float64 CuPy array; return its dtype."""
    if not isinstance(a, cupy.ndarray):
        raise ValueError(f"{fn}: {name} must be a cupy.ndarray (GPU array), got {type(a).__module__}.{type(a).__name__}")
    if a.dtype not in _SUFFIX:
        raise ValueError(f"{fn}: {name} must have dtype float32 or float64, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous (use cupy.ascontiguousarray)")
    return a.dtype


def _guard_like(fn, name, a, dtype, shape):
    """``a`` must be a C-contiguous CuPy array of ``dtype`` and ``shape``."""
    if not isinstance(a, cupy.ndarray):
        raise ValueError(f"{fn}: {name} must be a cupy.ndarray (GPU array), got {type(a).__module__}.{type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{fn}: {name} must have dtype {numpy.dtype(dtype)}, got {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}, got {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous (use cupy.ascontiguousarray)")


def _guard_int32(fn, sizes):
    """The kernels index rows and columns with 32-bit ints."""
    for name, value in sizes.items():
        if value > _INT32_MAX:
            raise ValueError(f"{fn}: {name} = {value} exceeds the 32-bit range the kernels index with")


class CupyBackend(NumpyBackend):
    """CUDA kernels (``kernels/gpu``) and cuBLAS on CuPy arrays; the "cupy" backend."""

    name = "cupy"
    xp = cupy
    #: "im2col" (im2col + cuBLAS, the default) or "direct" (one thread per output value).
    conv_algorithm = "im2col"
    #: Largest column matrix (bytes) built at once; bigger batches are processed in slices.
    column_bytes_limit = 1 << 29
    #: implicit_gemm only: round float32 operands to TF32 (opt-in; the tests' tolerance follows TF32's 10-bit mantissa).
    tf32 = False
    #: with tf32: multiply on tensor cores (mma.sync, the "tc" kernels); False keeps the CUDA-core loop.
    tensor_cores = True

    # ----------------------------------------------------------------- availability
    def check_available(self):
        """Raise unless CuPy imports and a GPU runs a tiny kernel (two separate facts, two messages)."""
        if cupy is None:
            raise RuntimeError(
                f"CuPy does not import ({type(_IMPORT_ERROR).__name__}: {_IMPORT_ERROR}); "
                "install the CuPy build for your CUDA version, e.g. pip install 'minicnn[gpu]'"
            )
        try:
            total = float((cupy.arange(4, dtype=cupy.float32) * 2).sum())
        except Exception as exc:
            raise RuntimeError(f"CuPy imports but no GPU runs a kernel ({type(exc).__name__}: {exc})") from exc
        if total != 12.0:
            raise RuntimeError(f"CuPy imports but the GPU computed sum(2*arange(4)) = {total}, expected 12")

    # ----------------------------------------------------------------------- launch
    def _launch(self, filename, name, dtype, total, arrays, sizes):
        """Run ``<name>_<f32|f64>`` with one thread per item (``total`` items) over ``arrays`` then ``sizes``."""
        kernel = _kernel(filename, name, numpy.dtype(dtype))
        blocks = max(1, min(-(-total // THREADS_PER_BLOCK), MAX_BLOCKS))
        args = tuple(arrays) + tuple(numpy.int32(s) for s in sizes)
        kernel((blocks,), (THREADS_PER_BLOCK,), args)

    def _tf32_flag(self, dtype):
        return numpy.int32(bool(self.tf32) and numpy.dtype(dtype) == numpy.float32)

    def _on_tensor_cores(self, dtype):
        return bool(self._tf32_flag(dtype)) and bool(self.tensor_cores)

    # -------------------------------------------------------------- convolution
    def _conv_geometry(self, fn, x, w, geometry):
        """Check a convolution's arrays against its checked geometry; return ``(dtype, dims)``.

        The geometry (``shapes.conv2d_geometry``) holds the output size, deck
        003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS":
        ``(H + 2P - D*(F - 1) - 1)//S + 1``. Here only what the kernels
        themselves need is checked: GPU arrays of the geometry's shapes and
        sizes within their 32-bit indices.
        """
        dtype = _guard_float_array(fn, "x", x)
        _guard_like(fn, "x", x, dtype, geometry.x_shape)
        _guard_like(fn, "w", w, dtype, geometry.w_shape)
        return dtype, self._conv_dims(fn, geometry)

    @staticmethod
    def _conv_dims(fn, geometry):
        """``(N, C, H, W, C_out, F_H, F_W, H_out, W_out, groups)`` of a geometry whose sizes fit the kernels' 32-bit indices."""
        g = geometry
        _guard_int32(
            fn, {"N*C": g.n * g.c, "C*H*W": g.c * g.h * g.w, "C_out*H_out*W_out": g.o * g.positions,
                 "C*F_H*F_W": g.c * g.taps, "stride, padding and dilation": max(*g.stride, *g.padding, *g.dilation)}
        )
        return (g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow, g.groups)

    @staticmethod
    def _conv_sizes(dims, stride, padding, dilation):
        """The int arguments of the conv2d.cu kernels, in their order."""
        n, c, h, wd, o, kh, kw, oh, ow, groups = dims
        return (n, c, h, wd, o, kh, kw, oh, ow, *stride, *padding, *dilation, groups)

    @staticmethod
    def _column_sizes(n, dims, stride, padding, dilation):
        """The int arguments of ``im2col``/``col2im`` for a slice of ``n`` samples."""
        _, c, h, wd, _, kh, kw, oh, ow, _ = dims
        return (n, c, h, wd, kh, kw, oh, ow, *stride, *padding, *dilation)

    def _algorithm(self, fn):
        if self.conv_algorithm not in CONV_ALGORITHMS:
            raise ValueError(
                f"{fn}: conv_algorithm must be one of {list(CONV_ALGORITHMS)}, got {self.conv_algorithm!r}"
            )
        return self.conv_algorithm

    def _batch_slices(self, dims, itemsize):
        """Split the batch so that one slice's column matrix fits in ``column_bytes_limit``."""
        n, c, _, _, _, kh, kw, oh, ow, _ = dims
        per_sample = c * kh * kw * oh * ow * itemsize
        step = max(1, min(n, self.column_bytes_limit // max(per_sample, 1)))
        return [(start, min(start + step, n)) for start in range(0, n, step)]

    def _columns(self, x_slice, dims, stride, padding, dilation):
        """im2col of a slice of the batch: shape ``(groups, C_g*F_H*F_W, n*H_out*W_out)``.

        Row ``(c*F_H + p)*F_W + q`` is tap ``(p, q)`` of channel ``c``; column
        ``s*H_out*W_out + i*W_out + j`` is output ``(i, j)`` of sample ``s``.
        """
        n = x_slice.shape[0]
        _, c, _, _, _, kh, kw, oh, ow, groups = dims
        _guard_int32("im2col", {"columns per row (n*H_out*W_out)": n * oh * ow})
        columns = cupy.empty((c * kh * kw, n * oh * ow), dtype=x_slice.dtype)
        self._launch(
            "conv2d.cu", "im2col", x_slice.dtype, columns.size, (x_slice, columns),
            self._column_sizes(n, dims, stride, padding, dilation),
        )
        return columns.reshape(groups, c // groups * kh * kw, n * oh * ow)

    def conv2d(self, x, w, b, geometry, plan=None):
        """Cross-correlation ``Y = X (*) W + b`` (see ``NumpyBackend.conv2d``) on the GPU.

        im2col: for every group ``g``, ``Y_g = W_g . columns_g`` with ``W_g`` of
        shape ``(C_out/G, C_in/G*F_H*F_W)`` -- the slide's sum of products as
        one matrix product (cuBLAS).
        """
        fn = "conv2d"
        dtype, dims = self._conv_geometry(fn, x, w, geometry)
        stride, padding, dilation, _ = geometry.hyper
        n, c, h, wd, o, kh, kw, oh, ow, g = dims
        if b is not None:
            _guard_like(fn, "b", b, dtype, (o,))
        if self._algorithm(fn) == "implicit_gemm":
            return self._ig_forward(x, w, b, geometry, dims, relu=False)
        if self._algorithm(fn) == "direct":
            y = cupy.empty((n, o, oh, ow), dtype=dtype)
            bias = b if b is not None else y  # any valid pointer; has_bias=0 keeps it unread
            sizes = self._conv_sizes(dims, stride, padding, dilation) + (int(b is not None),)
            self._launch("conv2d.cu", "conv2d_forward_direct", dtype, y.size, (x, w, bias, y), sizes)
            return y
        weights = w.reshape(g, o // g, c // g * kh * kw)
        y = cupy.empty((n, o, oh, ow), dtype=dtype)
        for start, stop in self._batch_slices(dims, x.itemsize):
            columns = self._columns(x[start:stop], dims, stride, padding, dilation)
            products = cupy.matmul(weights, columns)  # (G, C_out/G, n*H_out*W_out)
            y[start:stop] = products.reshape(o, stop - start, oh, ow).transpose(1, 0, 2, 3)
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        return y

    def conv2d_grad(self, x, w, dy, geometry, input_grad=True, plan=None):
        """Gradients ``(dX, dW, db)`` of ``conv2d`` (see ``NumpyBackend.conv2d_grad``) on the GPU.

        ``conv2d_input_grad`` and ``conv2d_weight_grad`` are the two halves;
        im2col computes both in one pass over the batch. With
        ``input_grad=False`` nothing of ``dX`` is computed and it is None.
        """
        fn = "conv2d_grad"
        dtype, dims = self._conv_geometry(fn, x, w, geometry)
        _guard_like(fn, "dy", dy, dtype, geometry.y_shape)
        if self._algorithm(fn) == "implicit_gemm":
            dx = self._ig_input_grad(w, dy, geometry, dims) if input_grad else None
            return (dx, self._ig_weight_grad(x, dy, geometry, dims), dy.sum(axis=(0, 2, 3)))
        if self._algorithm(fn) == "direct":
            dx = self._input_grad_direct(w, dy, geometry, dims) if input_grad else None
            return (dx, *self._weight_grad_direct(x, dy, geometry, dims))
        dx, dw = self._im2col_grads(x, w if input_grad else None, dy, geometry, dims)
        return dx, dw, dy.sum(axis=(0, 2, 3))

    def conv2d_input_grad(self, w, dy, geometry, plan=None):
        """``dX`` alone (see ``NumpyBackend.conv2d_input_grad``) on the GPU; it never reads ``X``."""
        fn = "conv2d_input_grad"
        dims = self._gradient_dims(fn, "w", w, geometry.w_shape, dy, geometry)
        if self._algorithm(fn) == "implicit_gemm":
            return self._ig_input_grad(w, dy, geometry, dims)
        if self._algorithm(fn) == "direct":
            return self._input_grad_direct(w, dy, geometry, dims)
        return self._im2col_grads(None, w, dy, geometry, dims)[0]

    def conv2d_weight_grad(self, x, dy, geometry, plan=None):
        """``(dW, db)`` alone (see ``NumpyBackend.conv2d_weight_grad``) on the GPU; it never reads ``W``."""
        fn = "conv2d_weight_grad"
        dims = self._gradient_dims(fn, "x", x, geometry.x_shape, dy, geometry)
        if self._algorithm(fn) == "implicit_gemm":
            return self._ig_weight_grad(x, dy, geometry, dims), dy.sum(axis=(0, 2, 3))
        if self._algorithm(fn) == "direct":
            return self._weight_grad_direct(x, dy, geometry, dims)
        return self._im2col_grads(x, None, dy, geometry, dims)[1], dy.sum(axis=(0, 2, 3))

    def _gradient_dims(self, fn, name, a, shape, dy, geometry):
        """Check the one array a gradient alone reads (``x`` or ``w``) and ``dy``; return the dims."""
        dtype = _guard_float_array(fn, name, a)
        _guard_like(fn, name, a, dtype, shape)
        _guard_like(fn, "dy", dy, dtype, geometry.y_shape)
        return self._conv_dims(fn, geometry)

    def _input_grad_direct(self, w, dy, geometry, dims):
        dx = cupy.empty(geometry.x_shape, dtype=dy.dtype)
        sizes = self._conv_sizes(dims, *geometry.hyper[:3])
        self._launch("conv2d.cu", "conv2d_backward_input_direct", dy.dtype, dx.size, (dy, w, dx), sizes)
        return dx

    def _weight_grad_direct(self, x, dy, geometry, dims):
        dw = cupy.empty(geometry.w_shape, dtype=dy.dtype)
        db = cupy.empty((geometry.o,), dtype=dy.dtype)
        sizes = self._conv_sizes(dims, *geometry.hyper[:3])
        self._launch("conv2d.cu", "conv2d_backward_weight_direct", dy.dtype, dw.size, (x, dy, dw), sizes)
        self._launch("conv2d.cu", "conv2d_backward_bias_direct", dy.dtype, geometry.o, (dy, db), geometry.y_shape)
        return dw, db

    def _im2col_grads(self, x, w, dy, geometry, dims):
        """``(dX, dW)`` by im2col, one pass over the batch; ``x=None`` skips dW, ``w=None`` skips dX.

        Per group ``g`` (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
        Backpropagation"): ``dW_g = dY_g . columns_g^T`` sums every position's
        contribution to the shared weights; ``dcolumns_g = W_g^T . dY_g`` is
        the error each tap sends back, and ``col2im`` adds, for every input
        pixel, the taps that read it (the "upsample(W^T delta)" of the slide).
        """
        stride, padding, dilation, _ = geometry.hyper
        n, c, h, wd, o, kh, kw, oh, ow, g = dims
        dx = None if w is None else cupy.empty((n, c, h, wd), dtype=dy.dtype)
        weights_t = None if w is None else w.reshape(g, o // g, c // g * kh * kw).transpose(0, 2, 1)
        dw = None
        for start, stop in self._batch_slices(dims, dy.itemsize):
            count = stop - start
            # dY of the slice as (G, C_out/G, n*H_out*W_out), the column order of `columns`.
            errors = cupy.ascontiguousarray(dy[start:stop].reshape(count, o, oh * ow).transpose(1, 0, 2))
            errors = errors.reshape(g, o // g, count * oh * ow)
            if x is not None:
                columns = self._columns(x[start:stop], dims, stride, padding, dilation)
                part = cupy.matmul(errors, columns.transpose(0, 2, 1))  # (G, C_out/G, C_g*F_H*F_W)
                dw = part if dw is None else dw + part
            if w is not None:
                dcolumns = cupy.ascontiguousarray(cupy.matmul(weights_t, errors))  # (G, C_g*F_H*F_W, n*H_out*W_out)
                self._launch(
                    "conv2d.cu", "col2im", dy.dtype, count * c * h * wd, (dcolumns, dx[start:stop]),
                    self._column_sizes(count, dims, stride, padding, dilation),
                )
        return dx, (None if dw is None else cupy.ascontiguousarray(dw.reshape(geometry.w_shape)))

    # ---------------------------------------------------------- implicit GEMM
    def _ig_launch(self, launch, dtype, args):
        """One ``implicit_gemm.cu`` launch of ``launch`` (an ``implicit_gemm.IGPlan``): grid as planned, 256 threads."""
        # the kernels split row, column and depth indices in 32-bit arithmetic (addresses are 64-bit)
        _guard_int32(launch.kernel, {"rows": launch.rows, "columns": launch.cols, "depth": launch.depth})
        if max(launch.grid[1:]) > 65535:
            raise ValueError(f"{launch.kernel}: grid {launch.grid} exceeds CUDA's 65,535 blocks in y or z (groups*splits)")
        kernel = _kernel("implicit_gemm.cu", launch.kernel, numpy.dtype(dtype))
        kernel(launch.grid, (implicit_gemm.THREADS,), args)

    def _ig_sizes(self, geometry, dims):
        return tuple(numpy.int32(v) for v in self._conv_sizes(dims, *geometry.hyper[:3]))

    def _ig_forward(self, x, w, b, geometry, dims, relu):
        """``Y = X (*) W + b`` (ReLU'd if ``relu``) by implicit GEMM: no column matrix in memory."""
        y = cupy.empty(geometry.y_shape, dtype=x.dtype)
        bias = b if b is not None else y  # any valid pointer; has_bias=0 keeps it unread
        tc = self._on_tensor_cores(x.dtype)
        args = (x, w, bias, y, *self._ig_sizes(geometry, dims), numpy.int32(b is not None), numpy.int32(relu))
        args += () if tc else (self._tf32_flag(x.dtype),)
        self._ig_launch(implicit_gemm.plan("forward", geometry, tc), x.dtype, args)
        return y

    def _ig_input_grad(self, w, dy, geometry, dims):
        dx = cupy.empty(geometry.x_shape, dtype=dy.dtype)
        tc = self._on_tensor_cores(dy.dtype)
        args = (dy, w, dx, *self._ig_sizes(geometry, dims)) + (() if tc else (self._tf32_flag(dy.dtype),))
        self._ig_launch(implicit_gemm.plan("input_grad", geometry, tc), dy.dtype, args)
        return dx

    def _ig_weight_grad(self, x, dy, geometry, dims):
        """``dW`` by implicit GEMM; a split reduction writes partial sums that one more kernel adds in order."""
        tc = self._on_tensor_cores(dy.dtype)
        launch = implicit_gemm.plan("weight_grad", geometry, tc)
        dw = cupy.empty(geometry.w_shape, dtype=dy.dtype)
        partial = dw if launch.splits == 1 else cupy.empty((launch.splits, dw.size), dtype=dy.dtype)
        args = (x, dy, partial, *self._ig_sizes(geometry, dims), numpy.int32(launch.splits))
        args += () if tc else (self._tf32_flag(dy.dtype),)
        self._ig_launch(launch, dy.dtype, args)
        if launch.splits > 1:
            self._launch("implicit_gemm.cu", "implicit_gemm_reduce_splits", dy.dtype, dw.size,
                         (partial, dw, numpy.int64(dw.size)), (launch.splits,))
        return dw

    @property
    def fuses_conv_bias_relu(self):
        """Whether the device step runs a Conv2d + ReLU pair as ``conv2d_bias_relu`` (with the implicit-GEMM algorithm)."""
        return self.conv_algorithm == "implicit_gemm"

    def conv2d_bias_relu(self, x, w, b, geometry):
        """``max(0, X (*) W + b)`` in one launch: the implicit-GEMM forward with bias and ReLU in its epilogue."""
        fn = "conv2d_bias_relu"
        dtype, dims = self._conv_geometry(fn, x, w, geometry)
        if b is not None:
            _guard_like(fn, "b", b, dtype, (geometry.o,))
        return self._ig_forward(x, w, b, geometry, dims, relu=True)

    # ------------------------------------------------------------------ pooling
    def _pool_dims(self, fn, geometry):
        """``(N, C, H, W, H_out, W_out)`` of a checked pooling geometry (deck 003_7c437a475fa69432.txt,
        "CAPA DE SUBMUESTREO O DECIMACIÓN": ``H_out = (H + 2P - F_H)//S + 1``), within 32-bit indices."""
        g = geometry
        spans = [d * (k - 1) + 1 for d, k in zip(g.dilation, g.kernel)]
        _guard_int32(fn, {"H*W": g.h * g.w, "H_out*W_out": g.oh * g.ow,
                          "kernel_size, stride and padding": max(*g.kernel, *g.stride, *g.padding, *spans),
                          "H + padding": max(g.h + g.padding_end[0] + g.stride[0], g.w + g.padding_end[1] + g.stride[1]),
                          "divisor": g.divisor_override or g.window})
        return g.n, g.c, g.h, g.w, g.oh, g.ow

    @staticmethod
    def _avg_options(g):
        """The average-pooling options of ``pool2d.cu``: ``HE, WE`` (end of the padded input),
        ``COUNT_PAD`` and ``DIVISOR`` (0 for none); the defaults give every window ``F_H*F_W``."""
        return (g.h + g.padding_end[0], g.w + g.padding_end[1], int(g.count_include_pad), g.divisor_override or 0)

    def max_pool2d(self, x, geometry):
        """Max pooling on the GPU; returns ``(Y, argmax)`` as ``NumpyBackend.max_pool2d``."""
        fn = "max_pool2d"
        dtype = _guard_float_array(fn, "x", x)
        _guard_like(fn, "x", x, dtype, geometry.x_shape)
        n, c, h, w, oh, ow = self._pool_dims(fn, geometry)
        kernel, stride, padding = geometry.hyper
        y = cupy.empty((n, c, oh, ow), dtype=dtype)
        argmax = cupy.empty((n, c, oh, ow), dtype=cupy.int64)
        self._launch(
            "pool2d.cu", "max_pool2d_forward", dtype, y.size, (x, y, argmax),
            (n, c, h, w, oh, ow, *kernel, *stride, *padding, *geometry.dilation),
        )
        return y, argmax

    def max_pool2d_grad(self, geometry, dy, argmax):
        """Gradient of max pooling: each input pixel gathers the errors of the windows it won.

        ``argmax`` must come from ``max_pool2d`` (every index inside its own window).
        """
        fn = "max_pool2d_grad"
        dtype = _guard_float_array(fn, "dy", dy)
        n, c, h, w, oh, ow = self._pool_dims(fn, geometry)
        kernel, stride, padding = geometry.hyper
        _guard_like(fn, "dy", dy, dtype, (n, c, oh, ow))
        _guard_like(fn, "argmax", argmax, cupy.int64, (n, c, oh, ow))
        dx = cupy.empty((n, c, h, w), dtype=dtype)
        self._launch(
            "pool2d.cu", "max_pool2d_backward", dtype, dx.size, (dy, argmax, dx),
            (n, c, h, w, oh, ow, *kernel, *stride, *padding, *geometry.dilation),
        )
        return dx

    def avg_pool2d(self, x, geometry):
        """Average pooling on the GPU (padded zeros count; divisor ``F_H*F_W``, or each window's own with
        ``ceil_mode``, ``count_include_pad=False`` or ``divisor_override``)."""
        fn = "avg_pool2d"
        dtype = _guard_float_array(fn, "x", x)
        _guard_like(fn, "x", x, dtype, geometry.x_shape)
        n, c, h, w, oh, ow = self._pool_dims(fn, geometry)
        kernel, stride, padding = geometry.hyper
        y = cupy.empty((n, c, oh, ow), dtype=dtype)
        self._launch(
            "pool2d.cu", "avg_pool2d_forward", dtype, y.size, (x, y),
            (n, c, h, w, oh, ow, *kernel, *stride, *padding, *self._avg_options(geometry)),
        )
        return y

    def avg_pool2d_grad(self, geometry, dy):
        """Gradient of average pooling: ``kron(dY, ones(F))/F^2`` with overlaps added, as a gather."""
        fn = "avg_pool2d_grad"
        dtype = _guard_float_array(fn, "dy", dy)
        n, c, h, w, oh, ow = self._pool_dims(fn, geometry)
        kernel, stride, padding = geometry.hyper
        _guard_like(fn, "dy", dy, dtype, (n, c, oh, ow))
        dx = cupy.empty((n, c, h, w), dtype=dtype)
        self._launch(
            "pool2d.cu", "avg_pool2d_backward", dtype, dx.size, (dy, dx),
            (n, c, h, w, oh, ow, *kernel, *stride, *padding, *self._avg_options(geometry)),
        )
        return dx

    # ------------------------------------------------------------ fused kernels
    def relu_max_pool2x2(self, x):
        """``max(0, max_pool2d(x, 2))`` in one pass; returns ``(Y, winner)`` (winner: 0-3 in its window, -1 if Y = 0)."""
        fn = "relu_max_pool2x2"
        dtype = _guard_float_array(fn, "x", x)
        if x.ndim != 4 or x.shape[2] < 2 or x.shape[3] < 2:
            raise ValueError(f"{fn}: x must be (N, C, H, W) with H, W >= 2, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        y = cupy.empty((n, c, h // 2, w // 2), dtype=dtype)
        winner = cupy.empty(y.shape, dtype=cupy.int8)
        self._launch("fused.cu", "relu_max_pool2x2_forward", dtype, y.size, (x, y, winner), (n, c, h, w, h // 2, w // 2))
        return y, winner

    def relu_max_pool2x2_grad(self, dy, winner, x_shape):
        """The gradient of ``relu_max_pool2x2``: ``dY`` reaches the winner of every positive window."""
        fn = "relu_max_pool2x2_grad"
        dtype = _guard_float_array(fn, "dy", dy)
        n, c, h, w = x_shape
        _guard_like(fn, "dy", dy, dtype, (n, c, h // 2, w // 2))
        _guard_like(fn, "winner", winner, cupy.int8, (n, c, h // 2, w // 2))
        dx = cupy.empty(tuple(x_shape), dtype=dtype)
        self._launch("fused.cu", "relu_max_pool2x2_backward", dtype, dx.size, (dy, winner, dx), (n, c, h, w, h // 2, w // 2))
        return dx

    def softmax_cross_entropy_fused(self, logits, labels, loss_sum, correct):
        """``dJ/dlogits`` of the softmax cross-entropy, adding the batch's loss sum and correct count to the device sums.

        One block (``fused.cu``, ``softmax_cross_entropy``): deck 002, eq. 3 and 4. ``labels`` int64 in
        ``[0, K)`` (checked where they were loaded), ``loss_sum`` float64 and ``correct`` int64 0-d arrays.
        """
        fn = "softmax_cross_entropy_fused"
        dtype = _guard_float_array(fn, "logits", logits)
        n, k = logits.shape
        _guard_like(fn, "labels", labels, cupy.int64, (n,))
        _guard_like(fn, "loss_sum", loss_sum, cupy.float64, ())
        _guard_like(fn, "correct", correct, cupy.int64, ())
        dlogits = cupy.empty_like(logits)
        kernel = _kernel("fused.cu", "softmax_cross_entropy", numpy.dtype(dtype))
        kernel((1,), (256,), (logits, labels, dlogits, loss_sum, correct, numpy.int32(n), numpy.int32(k)))
        return dlogits

    def sgd_momentum_update(self, params, velocities, lr, momentum, weight_decay):
        """The SGD update of every parameter in one launch (``fused.cu``, ``sgd_momentum_multi``); ``lr`` a 0-d device array."""
        dtype = params[0].data.dtype
        tables = self._sgd_tables(params, velocities)
        kernel = _kernel("fused.cu", "sgd_momentum_multi", numpy.dtype(dtype))
        total = sum(p.data.size for p in params)
        blocks = max(1, min(-(-total // THREADS_PER_BLOCK), MAX_BLOCKS))
        scalar = dtype.type
        kernel((blocks,), (THREADS_PER_BLOCK,), (*tables, lr, numpy.int32(len(params)), scalar(momentum), scalar(weight_decay)))

    def _sgd_tables(self, params, velocities):
        """Device tables of the parameters' data, gradient and velocity pointers and offsets, built once per set.

        Built before a CUDA graph capture (the warm-up step) and reused: a
        host-to-device copy inside the captured step would not be replayed.
        """
        key = tuple((_address(p.data), _address(p.grad), 0 if v is None else _address(v)) for p, v in zip(params, velocities))
        cache = self.__dict__.setdefault("_sgd_table_cache", {})
        if key not in cache:
            offsets = numpy.cumsum([0] + [p.data.size for p in params]).astype(numpy.int64)
            columns = [numpy.array(column, dtype=numpy.uint64) for column in zip(*key)]
            cache[key] = tuple(cupy.asarray(c) for c in columns) + (cupy.asarray(offsets),)
        return cache[key]

    # --------------------------------------------------- inherited reference paths
    def _scatter_add(self, target, index, values):
        """``target[index] += values`` with repeated indices added, as ``numpy.add.at``.

        ``cupy.add.at`` where CuPy has it (13 and later), else ``cupyx.scatter_add``.
        """
        add_at = getattr(cupy.add, "at", None)
        if add_at is not None:
            add_at(target, index, values)
        else:
            cupyx.scatter_add(target, index, values)
