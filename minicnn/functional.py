"""Convolution and pooling as functions: the public, validated edge of every backend.

The names and arguments follow ``torch.nn.functional``: ``kernel_size``,
``stride``, ``padding`` and ``dilation`` take an int or an ``(h, w)`` pair,
the layout is NCHW, weights are OIHW. Every argument is checked here, once,
and a bad one raises ``TypeError``/``ValueError`` whose message names the
argument, the formula and the numbers. The chosen backend then receives
C-contiguous arrays of the native byte order and plain ``(h, w)`` tuples.

Backends: ``backend=None`` sends CuPy arrays to "cupy" and NumPy arrays to the
current backend (``minicnn.use_backend``); pass a name to force one.
"""

from __future__ import annotations

import numpy as np

from . import shapes
from .backends import backend_for_array

__all__ = [
    "conv2d",
    "conv2d_grad",
    "max_pool2d",
    "max_pool2d_with_indices",
    "max_pool2d_grad",
    "max_pool2d_grad_from_forward",
    "avg_pool2d",
    "avg_pool2d_grad",
    "true_conv2d",
]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- checks
def _as_array(fn, name, a, xp_module=None):
    """Check that ``a`` is a float32/float64 array; return it C-contiguous, native byte order."""
    module = type(a).__module__
    if not (isinstance(a, np.ndarray) or (module.startswith("cupy") and hasattr(a, "__cuda_array_interface__"))):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray (or cupy.ndarray), got {type(a).__name__}")
    dtype = a.dtype
    if dtype.kind != "f" or dtype.itemsize not in (4, 8):
        raise TypeError(f"{fn}: {name} must have dtype float32 or float64, got {dtype}")
    if not dtype.isnative:
        a = a.astype(dtype.newbyteorder("="))
    xp = _array_module(a)
    return xp.ascontiguousarray(a)


def _array_module(a):
    if isinstance(a, np.ndarray):
        return np
    import cupy

    return cupy


def _check_ndim(fn, name, a, ndim, layout):
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D {layout}, got {a.ndim}-D array of shape {tuple(a.shape)}")


def _check_same(fn, names, arrays):
    first = arrays[0]
    for name, a in zip(names[1:], arrays[1:]):
        if a.dtype != first.dtype:
            raise TypeError(f"{fn}: {name} has dtype {a.dtype} but {names[0]} has dtype {first.dtype}; use one dtype")
        if type(a) is not type(first):
            raise TypeError(
                f"{fn}: {name} is a {type(a).__module__}.{type(a).__name__} but {names[0]} is a "
                f"{type(first).__module__}.{type(first).__name__}; put both on the same device"
            )


def _positive_pair(fn, name, value, minimum):
    pair = shapes.pair(value, name)
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum} along both axes, got {name}={value!r}")
    return pair


def _int_arg(fn, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _pick_backend(fn, x, backend):
    chosen = backend_for_array(x, backend)
    if chosen.xp is not _array_module(x):
        raise TypeError(
            f"{fn}: backend {chosen.name!r} works on {chosen.xp.__name__} arrays but x is a "
            f"{type(x).__module__}.{type(x).__name__}; move the data or choose another backend"
        )
    return chosen


def _check_conv_args(fn, x, w, stride, padding, dilation, groups):
    """Validate a conv2d call; return ``(stride, padding, dilation, groups, out_shape)``."""
    _check_ndim(fn, "x", x, 4, "(N, C_in, H, W)")
    _check_ndim(fn, "w", w, 4, "(C_out, C_in/groups, F_H, F_W)")
    _check_same(fn, ("x", "w"), (x, w))
    stride = _positive_pair(fn, "stride", stride, 1)
    padding = _positive_pair(fn, "padding", padding, 0)
    dilation = _positive_pair(fn, "dilation", dilation, 1)
    groups = _int_arg(fn, "groups", groups, 1)
    n, c_in, h, wd = x.shape
    c_out, c_per_group, kh, kw = w.shape
    if min(c_in, h, wd) < 1:
        raise ValueError(f"{fn}: x must have C_in, H, W >= 1, got shape {tuple(x.shape)}")
    if min(c_out, c_per_group, kh, kw) < 1:
        raise ValueError(f"{fn}: w must have every dimension >= 1, got shape {tuple(w.shape)}")
    if c_in % groups:
        raise ValueError(f"{fn}: input channels C_in={c_in} are not divisible by groups={groups}")
    if c_out % groups:
        raise ValueError(f"{fn}: output channels C_out={c_out} (w.shape[0]) are not divisible by groups={groups}")
    if c_per_group * groups != c_in:
        raise ValueError(
            f"{fn}: channel mismatch: w.shape[1]={c_per_group} must equal C_in/groups = {c_in}/{groups} = "
            f"{c_in // groups} (x has C_in={c_in})"
        )
    out_hw = []
    for axis, size, k, s, p, d in (
        ("height", h, kh, stride[0], padding[0], dilation[0]),
        ("width", wd, kw, stride[1], padding[1], dilation[1]),
    ):
        out = shapes.conv_output_size(size, k, s, p, d)
        if out < 1:
            extent = shapes.dilated_extent(k, d)
            raise ValueError(
                f"{fn}: output {axis} ({size} + 2*{p} - {d}*({k}-1) - 1)//{s} + 1 = {out} < 1: the kernel "
                f"spans {extent} pixels (dilation {d}) but the padded input {axis} is {size + 2 * p}"
            )
        out_hw.append(out)
    return stride, padding, dilation, groups, (n, c_out, out_hw[0], out_hw[1])


def _check_pool_args(fn, x, kernel_size, stride, padding):
    """Validate a pooling call; return ``(kernel, stride, padding, out_shape)``."""
    _check_ndim(fn, "x", x, 4, "(N, C, H, W)")
    kernel = _positive_pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _positive_pair(fn, "stride", stride, 1)
    padding = _positive_pair(fn, "padding", padding, 0)
    n, c, h, w = x.shape
    if min(c, h, w) < 1:
        raise ValueError(f"{fn}: x must have C, H, W >= 1, got shape {tuple(x.shape)}")
    for axis, k, p in (("height", kernel[0], padding[0]), ("width", kernel[1], padding[1])):
        if p > k // 2:
            raise ValueError(
                f"{fn}: padding along {axis} must be at most half the window, padding <= kernel_size//2 = "
                f"{k}//2 = {k // 2}, got padding={p}"
            )
    out_hw = []
    for axis, size, k, s, p in (
        ("height", h, kernel[0], stride[0], padding[0]),
        ("width", w, kernel[1], stride[1], padding[1]),
    ):
        out = shapes.pool_output_size(size, k, s, p)
        if out < 1:
            raise ValueError(
                f"{fn}: output {axis} ({size} + 2*{p} - {k})//{s} + 1 = {out} < 1: the window ({k}) is larger "
                f"than the padded input {axis} ({size + 2 * p})"
            )
        out_hw.append(out)
    return kernel, stride, padding, (n, c, out_hw[0], out_hw[1])


def _check_dy(fn, dy, expected_shape, like):
    dy = _as_array(fn, "dy", dy)
    _check_same(fn, ("x", "dy"), (like, dy))
    if tuple(dy.shape) != tuple(expected_shape):
        raise ValueError(
            f"{fn}: dy must have the output's shape {tuple(expected_shape)}, got {tuple(dy.shape)}"
        )
    return dy


# ---------------------------------------------------------------------- convolution
def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1, backend=None):
    """2-D cross-correlation of ``x`` (N, C_in, H, W) with filters ``w`` (C_out, C_in/groups, F_H, F_W).

    Returns ``y`` of shape (N, C_out, H_out, W_out) with
    ``H_out = floor((H + 2P - D*(F_H - 1) - 1)/S) + 1`` (deck
    003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS"), and
    the same for W. ``b`` (C_out,) is added to every output of its filter.
    Same semantics as ``torch.nn.functional.conv2d``.
    """
    fn = "conv2d"
    x = _as_array(fn, "x", x)
    w = _as_array(fn, "w", w)
    stride, padding, dilation, groups, out_shape = _check_conv_args(fn, x, w, stride, padding, dilation, groups)
    if b is not None:
        b = _as_array(fn, "b", b)
        _check_same(fn, ("x", "b"), (x, b))
        if tuple(b.shape) != (w.shape[0],):
            raise ValueError(f"{fn}: b must have shape (C_out,) = ({w.shape[0]},), got {tuple(b.shape)}")
    impl = _pick_backend(fn, x, backend)
    if x.shape[0] == 0:
        return impl.xp.zeros(out_shape, dtype=x.dtype)
    return impl.conv2d(x, w, b, stride, padding, dilation, groups)


def conv2d_grad(x, w, dy, *, stride=1, padding=0, dilation=1, groups=1, input_grad=True, backend=None):
    """Gradients ``(dx, dw, db)`` of ``y = conv2d(x, w, b)`` given ``dy = dLoss/dy``.

    ``dx`` has x's shape, ``dw`` w's shape and ``db`` shape (C_out,) (the bias
    gradient, whether or not the forward pass used a bias). Deck
    002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation".

    ``input_grad=False`` skips ``dx`` (returned as None): the first layer of a
    network sees data, whose gradient nobody needs, and ``dx`` costs as much
    as the forward pass.
    """
    fn = "conv2d_grad"
    x = _as_array(fn, "x", x)
    w = _as_array(fn, "w", w)
    stride, padding, dilation, groups, out_shape = _check_conv_args(fn, x, w, stride, padding, dilation, groups)
    dy = _check_dy(fn, dy, out_shape, x)
    if not isinstance(input_grad, (bool, np.bool_)):
        raise TypeError(f"{fn}: input_grad must be a bool, got {type(input_grad).__name__} {input_grad!r}")
    impl = _pick_backend(fn, x, backend)
    if x.shape[0] == 0:
        xp = impl.xp
        return (xp.zeros_like(x) if input_grad else None), xp.zeros_like(w), xp.zeros(w.shape[0], dtype=x.dtype)
    return impl.conv2d_grad(x, w, dy, stride, padding, dilation, groups, bool(input_grad))


def true_conv2d(x, w, b=None, **kwargs):
    """True (flipped-kernel) convolution: cross-correlation with ``rot90(W, 2)``.

    Deck 002_35ce60e4ae78ad9e.txt, "Convolución": "es preciso hacer un flip de
    la máscara ... ``W = rot90(W,2)``"; deck 003_7c437a475fa69432.txt,
    "PESOS COMPARTIDOS": ``S[i, j] = sum_m sum_n I[m, n] K[i - m, j - n]``.
    """
    w = _as_array("true_conv2d", "w", w)
    _check_ndim("true_conv2d", "w", w, 4, "(C_out, C_in/groups, F_H, F_W)")
    return conv2d(x, w[:, :, ::-1, ::-1], b, **kwargs)


# -------------------------------------------------------------------------- pooling
def max_pool2d_with_indices(x, kernel_size, *, stride=None, padding=0, backend=None):
    """Max pooling returning ``(y, indices)``; ``indices`` (int64) is the flat ``h*W + w`` of each winner.

    The indices are what ``max_pool2d_grad(..., indices=...)`` routes the
    gradient through, so a layer need not search the windows twice.
    """
    fn = "max_pool2d"
    x = _as_array(fn, "x", x)
    kernel, stride, padding, out_shape = _check_pool_args(fn, x, kernel_size, stride, padding)
    impl = _pick_backend(fn, x, backend)
    if x.shape[0] == 0:
        xp = impl.xp
        return xp.zeros(out_shape, dtype=x.dtype), xp.zeros(out_shape, dtype=xp.int64)
    return impl.max_pool2d(x, kernel, stride, padding)


def max_pool2d(x, kernel_size, *, stride=None, padding=0, backend=None):
    """Max pooling of ``x`` (N, C, H, W) over ``kernel_size`` windows.

    ``H_out = floor((H + 2P - F_H)/S) + 1`` (deck 003_7c437a475fa69432.txt,
    "CAPA DE SUBMUESTREO O DECIMACIÓN"); ``stride=None`` means the window
    size; padding counts as -inf and may be at most half the window.
    """
    return max_pool2d_with_indices(x, kernel_size, stride=stride, padding=padding, backend=backend)[0]


def max_pool2d_grad(x, dy, kernel_size, *, stride=None, padding=0, indices=None, backend=None):
    """Gradient of ``max_pool2d`` w.r.t. ``x``: each window's error goes to its maximum only.

    Pass the ``indices`` from ``max_pool2d_with_indices`` to skip searching
    the windows again; they are checked to lie in their own windows.
    """
    return _max_pool2d_grad(x, dy, kernel_size, stride, padding, indices, backend, check_indices=True)


def max_pool2d_grad_from_forward(x, dy, kernel_size, *, stride=None, padding=0, indices, backend=None):
    """``max_pool2d_grad`` for ``indices`` that ``max_pool2d_with_indices`` returned for this ``x`` and arguments.

    For layers that keep the indices of their own forward pass: the
    arguments and ``dy`` are checked, the indices' contents are trusted
    (checking them costs a pass over the output, on every backward pass).
    Their dtype and shape are still checked, so a wrong array cannot make a
    kernel write outside ``dx``.
    """
    return _max_pool2d_grad(x, dy, kernel_size, stride, padding, indices, backend, check_indices=False)


def _max_pool2d_grad(x, dy, kernel_size, stride, padding, indices, backend, check_indices):
    fn = "max_pool2d_grad"
    x = _as_array(fn, "x", x)
    kernel, stride, padding, out_shape = _check_pool_args(fn, x, kernel_size, stride, padding)
    dy = _check_dy(fn, dy, out_shape, x)
    impl = _pick_backend(fn, x, backend)
    xp = impl.xp
    if x.shape[0] == 0:
        return xp.zeros_like(x)
    if indices is None:
        _, indices = impl.max_pool2d(x, kernel, stride, padding)
    elif check_indices:
        indices = _check_indices(fn, indices, out_shape, x, xp, kernel, stride, padding)
    else:
        if type(indices) is not type(x) or indices.dtype != xp.int64 or tuple(indices.shape) != tuple(out_shape):
            raise TypeError(
                f"{fn}: indices must be the int64 {type(x).__name__} of shape {tuple(out_shape)} that "
                f"max_pool2d_with_indices returned, got {type(indices).__name__} {getattr(indices, 'dtype', '')} "
                f"{tuple(getattr(indices, 'shape', ()))}"
            )
        indices = xp.ascontiguousarray(indices)
    return impl.max_pool2d_grad(x.shape, dy, indices, kernel, stride, padding)


def _check_indices(fn, indices, out_shape, x, xp, kernel, stride, padding):
    if type(indices) is not type(x):
        raise TypeError(f"{fn}: indices must be a {type(x).__name__} like x, got {type(indices).__name__}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"{fn}: indices must be an integer array, got dtype {indices.dtype}")
    if tuple(indices.shape) != tuple(out_shape):
        raise ValueError(f"{fn}: indices must have the output's shape {tuple(out_shape)}, got {tuple(indices.shape)}")
    height, width = x.shape[2], x.shape[3]
    plane = height * width
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= plane:
        raise ValueError(f"{fn}: indices must lie in [0, H*W) = [0, {plane}), got values in [{lo}, {hi}]")
    # Each index must name a pixel of its own window: rows i*S - P ... i*S - P + F - 1, clipped to the image.
    row, col = indices // width, indices % width
    top = xp.arange(out_shape[2]) * stride[0] - padding[0]
    left = xp.arange(out_shape[3]) * stride[1] - padding[1]
    outside = (row < top[:, None]) | (row >= top[:, None] + kernel[0]) | (col < left[None, :]) | (col >= left[None, :] + kernel[1])
    if bool(outside.any()):
        bad = int(outside.sum())
        raise ValueError(
            f"{fn}: {bad} of the indices point outside their own {kernel[0]}x{kernel[1]} window (window (i, j) "
            f"covers rows i*{stride[0]} - {padding[0]} + [0, {kernel[0]}) and columns j*{stride[1]} - {padding[1]} + "
            f"[0, {kernel[1]})); pass the indices returned by max_pool2d_with_indices for the same arguments"
        )
    return xp.ascontiguousarray(indices, dtype=xp.int64)


def avg_pool2d(x, kernel_size, *, stride=None, padding=0, backend=None):
    """Average pooling of ``x`` (N, C, H, W); padded zeros count in the average.

    Same output size as ``max_pool2d``; equals a convolution of each channel
    with ``ones(F_H, F_W)/(F_H*F_W)`` (deck 002_35ce60e4ae78ad9e.txt,
    "Arquitectura de la Red : POOL:S2").
    """
    fn = "avg_pool2d"
    x = _as_array(fn, "x", x)
    kernel, stride, padding, out_shape = _check_pool_args(fn, x, kernel_size, stride, padding)
    impl = _pick_backend(fn, x, backend)
    if x.shape[0] == 0:
        return impl.xp.zeros(out_shape, dtype=x.dtype)
    return impl.avg_pool2d(x, kernel, stride, padding)


def avg_pool2d_grad(x, dy, kernel_size, *, stride=None, padding=0, backend=None):
    """Gradient of ``avg_pool2d`` w.r.t. ``x``: ``kron(dy, ones(F))/F^2`` (deck 002, "Aprendizaje: Backpropagation")."""
    fn = "avg_pool2d_grad"
    x = _as_array(fn, "x", x)
    kernel, stride, padding, out_shape = _check_pool_args(fn, x, kernel_size, stride, padding)
    dy = _check_dy(fn, dy, out_shape, x)
    impl = _pick_backend(fn, x, backend)
    if x.shape[0] == 0:
        return impl.xp.zeros_like(x)
    return impl.avg_pool2d_grad(x.shape, dy, kernel, stride, padding)
