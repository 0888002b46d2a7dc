"""A backend built from a student's module: the reference backend with the student's functions in its place.

``StudentBackend(module, functions)`` subclasses ``NumpyBackend`` and routes
the primitives named in ``functions`` (names of the student template:
``conv2d``, ``conv2d_input_grad``, ...) to the student's code; every other
primitive stays the reference's. Registered under a name
(``minicnn.backends.register_backend``), it runs wherever a backend runs:
``minicnn.functional`` (so the spec suite's checkers), the layers, and
``minicnn.train``. One exercise is checked with only its own function
swapped in, so a bug elsewhere cannot fail it.

The template's functions take square windows, equal strides and paddings,
no dilation and no groups, and pooling without padding. A call outside that
(a spec entry about dilated or grouped convolution) raises
``OutsideExercise``: the checker skips it rather than silently answering with
the reference.
"""

from __future__ import annotations

import numpy as np

from ..backends.numpy_backend import NumpyBackend

KERNEL_FUNCTIONS = ("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_bias_grad",
                    "max_pool2d", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad")


class OutsideExercise(Exception):
    """A call the student's signature cannot express (dilation, groups, rectangular windows, padded pooling)."""


class StudentOutputError(ValueError):
    """The student's function returned something of the wrong shape or kind."""


def _square(pair, what):
    if pair[0] != pair[1]:
        raise OutsideExercise(f"{what} {pair[0]}x{pair[1]} is not square")
    return pair[0]


def _conv_args(geometry):
    stride, padding, dilation, groups = geometry.hyper
    if groups != 1 or tuple(dilation) != (1, 1):
        raise OutsideExercise("dilation or groups")
    _square((geometry.kh, geometry.kw), "kernel")
    return _square(stride, "stride"), _square(padding, "padding")


def _pool_args(geometry, overlapping_ok=True):
    kernel, stride, padding = geometry.hyper
    if tuple(padding) != (0, 0):
        raise OutsideExercise("padded pooling")
    size, step = _square(kernel, "window"), _square(stride, "stride")
    if not overlapping_ok and step != size:
        raise OutsideExercise("overlapping windows")
    return size, step


class StudentBackend(NumpyBackend):
    """The reference backend with the student's ``functions`` (template names) from ``module``."""

    name = "student"

    def __init__(self, module, functions=KERNEL_FUNCTIONS, name="student"):
        unknown = sorted(set(functions) - set(KERNEL_FUNCTIONS))
        if unknown:
            raise ValueError(f"StudentBackend: {unknown} are not kernel functions; choose from {list(KERNEL_FUNCTIONS)}")
        self.module, self.functions, self.name = module, frozenset(functions), name

    def _mine(self, function):
        return function in self.functions

    def _call(self, function, expected_shape, dtype, *args):
        """The student's ``function(*args)`` as a C-contiguous array of ``expected_shape`` and ``dtype``."""
        out = getattr(self.module, function)(*args)
        if out is None:
            raise StudentOutputError(f"your {function} returned None: return the array")
        out = np.asarray(out)
        if out.shape != tuple(expected_shape):
            raise StudentOutputError(
                f"your {function} returned an array of shape {out.shape}; it must be {tuple(expected_shape)}"
            )
        return np.ascontiguousarray(out, dtype=dtype)

    def conv2d(self, x, w, b, geometry, plan=None):
        if not self._mine("conv2d"):
            return super().conv2d(x, w, b, geometry, plan)
        stride, padding = _conv_args(geometry)
        return self._call("conv2d", geometry.y_shape, x.dtype, x, w, b, stride, padding)

    def conv2d_input_grad(self, w, dy, geometry, plan=None):
        if not self._mine("conv2d_input_grad"):
            return super().conv2d_input_grad(w, dy, geometry, plan)
        stride, padding = _conv_args(geometry)
        return self._call("conv2d_input_grad", geometry.x_shape, dy.dtype, w, dy, tuple(geometry.x_shape), stride, padding)

    def conv2d_weight_grad(self, x, dy, geometry, plan=None):
        dw = db = None
        if not self.functions >= {"conv2d_weight_grad", "conv2d_bias_grad"}:
            dw, db = super().conv2d_weight_grad(x, dy, geometry, plan)
        if self._mine("conv2d_weight_grad"):
            stride, padding = _conv_args(geometry)
            dw = self._call("conv2d_weight_grad", geometry.w_shape, x.dtype, x, dy, tuple(geometry.w_shape), stride, padding)
        if self._mine("conv2d_bias_grad"):
            db = self._call("conv2d_bias_grad", (geometry.o,), dy.dtype, dy)
        return dw, db

    def max_pool2d(self, x, geometry):
        y, argmax = super().max_pool2d(x, geometry)
        if self._mine("max_pool2d"):
            size, stride = _pool_args(geometry)
            y = self._call("max_pool2d", geometry.y_shape, x.dtype, x, size, stride)
        return y, argmax

    def max_pool2d_grad(self, geometry, dy, argmax):
        """The student's gradient, fed the map of each window's winner (1 there, 0 elsewhere).

        The backend keeps the winners' indices, not ``x``; with windows that do
        not overlap, that map has the same winner in every window as ``x``
        had, so a correct gradient routes ``dy`` exactly as it would on ``x``.
        """
        if not self._mine("max_pool2d_grad"):
            return super().max_pool2d_grad(geometry, dy, argmax)
        size, stride = _pool_args(geometry, overlapping_ok=False)
        n, c, h, w = geometry.x_shape
        winners = np.zeros((n * c, h * w), dtype=dy.dtype)
        winners[np.arange(n * c)[:, None], argmax.reshape(n * c, -1)] = 1
        return self._call("max_pool2d_grad", geometry.x_shape, dy.dtype, winners.reshape(geometry.x_shape), dy, size, stride)

    def avg_pool2d(self, x, geometry):
        if not self._mine("avg_pool2d"):
            return super().avg_pool2d(x, geometry)
        size, stride = _pool_args(geometry)
        return self._call("avg_pool2d", geometry.y_shape, x.dtype, x, size, stride)

    def avg_pool2d_grad(self, geometry, dy):
        if not self._mine("avg_pool2d_grad"):
            return super().avg_pool2d_grad(geometry, dy)
        size, _ = _pool_args(geometry, overlapping_ok=False)
        x = np.zeros(geometry.x_shape, dtype=dy.dtype)
        return self._call("avg_pool2d_grad", geometry.x_shape, dy.dtype, x, dy, size)
