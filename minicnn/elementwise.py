"""Activations and softmax as functions of arrays: ``f(x)`` and its derivative, on NumPy or CuPy arrays alike.

``minicnn.functional`` re-exports the forward functions under
``torch.nn.functional``'s names (``leaky_relu``, ``hardsigmoid``,
``hardswish``, ``silu``, ``gelu``, ``softmax``, ``log_softmax``), and the
layers of ``minicnn.nn.activation`` take both halves from here. They are one
pass over memory each, so they run as array expressions of the input's own
module (NumPy on the "numpy" and "cython" backends, CuPy on "cupy"): there
is no kernel to write that the array library does not already run.

Backward of an element-wise ``y = f(x)`` is ``dx = dy ∘ f'(x)`` (deck
002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 2); softmax
couples the values along its axis, so its gradient is a product with the
Jacobian ``diag(y) - y yᵀ`` (deck 002, eq. 4, there folded into the loss).
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import array_module

__all__ = [
    "leaky_relu",
    "leaky_relu_derivative",
    "hardsigmoid",
    "hardsigmoid_derivative",
    "hardswish",
    "hardswish_derivative",
    "silu",
    "silu_derivative",
    "gelu",
    "gelu_derivative",
    "softmax",
    "softmax_grad",
    "log_softmax",
    "log_softmax_grad",
    "GELU_APPROXIMATIONS",
    "check_float_array",
    "check_dim",
    "check_negative_slope",
]

GELU_APPROXIMATIONS = ("none", "tanh")
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def check_float_array(fn, x):
    """``x`` must be a float32/float64 NumPy or CuPy array (the functions compute in its dtype)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape") or x.dtype.kind != "f" or x.dtype.itemsize not in (4, 8):
        what = x.dtype if hasattr(x, "dtype") else type(x).__name__
        raise TypeError(f"{fn}: input must be a float32/float64 array, got {what}")
    return x


def check_dim(fn, dim, ndim):
    """``dim`` as an axis in ``[0, ndim)`` (negative counts from the end, as in PyTorch)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{fn}: dim must be an int, got {type(dim).__name__} {dim!r}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{fn}: dim must lie in [-ndim, ndim) = [{-ndim}, {ndim}) for a {ndim}-D input, got {dim}")
    return int(dim) % ndim


def _expit(x):
    if array_module(x) is np:
        from scipy.special import expit
    else:
        from cupyx.scipy.special import expit
    return expit(x)


def _erf(x):
    if array_module(x) is np:
        from scipy.special import erf
    else:
        from cupyx.scipy.special import erf
    return erf(x)


def check_negative_slope(fn, negative_slope):
    """``negative_slope`` must be a finite real number (LeakyReLU's slope for ``x < 0``)."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: negative_slope must be a number, got {type(negative_slope).__name__} {negative_slope!r}")
    if not math.isfinite(negative_slope):
        raise ValueError(f"{fn}: negative_slope must be finite, got {negative_slope!r}")


def _scalar(x, value):
    """``value`` as a scalar of x's dtype, so float32 inputs stay float32."""
    return x.dtype.type(value)


# ------------------------------------------------------------------ element-wise
def leaky_relu(x, negative_slope=0.01):
    """``y = x`` for ``x >= 0``, ``negative_slope * x`` otherwise (Maas et al., 2013): a ReLU whose negative side
    still passes a little gradient."""
    check_float_array("leaky_relu", x)
    check_negative_slope("leaky_relu", negative_slope)
    return array_module(x).where(x >= 0, x, x * _scalar(x, negative_slope))


def leaky_relu_derivative(x, negative_slope=0.01):
    """``f'(x) = 1`` for ``x > 0``, ``negative_slope`` for ``x <= 0`` (PyTorch's choice at 0)."""
    return array_module(x).where(x > 0, _scalar(x, 1), _scalar(x, negative_slope))


def hardsigmoid(x):
    """``y = ReLU6(x + 3) / 6`` (MobileNetV3), a piecewise-linear sigmoid: 0 below -3, 1 above 3."""
    check_float_array("hardsigmoid", x)
    return array_module(x).clip(x + _scalar(x, 3), 0, 6) / _scalar(x, 6)


def hardsigmoid_derivative(x):
    """``f'(x) = 1/6`` for ``-3 < x < 3``, else 0."""
    return (((x > -3) & (x < 3)) / _scalar(x, 6)).astype(x.dtype)


def hardswish(x):
    """``y = x ReLU6(x + 3) / 6`` (MobileNetV3), a piecewise-polynomial Swish."""
    check_float_array("hardswish", x)
    return x * array_module(x).clip(x + _scalar(x, 3), 0, 6) / _scalar(x, 6)


def hardswish_derivative(x):
    """``f' = 0``, ``(2x + 3)/6``, ``1`` on ``x <= -3``, ``-3 < x < 3``, ``x >= 3`` (at the kinks, PyTorch's choice)."""
    xp = array_module(x)
    return xp.where(x <= -3, _scalar(x, 0), xp.where(x >= 3, _scalar(x, 1), (2 * x + 3) / _scalar(x, 6))).astype(x.dtype)


def silu(x):
    """Swish / SiLU ``y = x σ(x)`` (EfficientNet; Ramachandran et al., 2017)."""
    check_float_array("silu", x)
    return x * _expit(x)


def silu_derivative(x):
    """``f' = σ(x) (1 + x (1 - σ(x)))``."""
    s = _expit(x)
    return s * (1 + x * (1 - s))


def _check_approximate(fn, approximate):
    if approximate not in GELU_APPROXIMATIONS:
        raise ValueError(f"{fn}: approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu(x, approximate="none"):
    """``y = x Φ(x)`` (Hendrycks and Gimpel, 2016), ConvNeXt's activation.

    ``approximate="none"``: ``Φ(x) = (1 + erf(x/√2))/2`` exactly;
    ``"tanh"``: ``Φ(x) ≈ (1 + tanh(√(2/π) (x + 0.044715 x³)))/2``, as
    ``torch.nn.functional.gelu``.
    """
    check_float_array("gelu", x)
    _check_approximate("gelu", approximate)
    if approximate == "tanh":
        inner = _scalar(x, _SQRT_2_OVER_PI) * (x + _scalar(x, _GELU_CUBIC) * x * x * x)
        return _scalar(x, 0.5) * x * (1 + array_module(x).tanh(inner))
    return _scalar(x, 0.5) * x * (1 + _erf(x / _scalar(x, math.sqrt(2.0))))


def gelu_derivative(x, approximate="none"):
    """``f' = Φ(x) + x φ(x)``; for the tanh form ``(1 + t)/2 + x (1 - t²) √(2/π) (1 + 3·0.044715 x²)/2``."""
    _check_approximate("gelu", approximate)
    xp = array_module(x)
    if approximate == "tanh":
        t = xp.tanh(_scalar(x, _SQRT_2_OVER_PI) * (x + _scalar(x, _GELU_CUBIC) * x * x * x))
        slope = _scalar(x, _SQRT_2_OVER_PI) * (1 + _scalar(x, 3 * _GELU_CUBIC) * x * x)
        return _scalar(x, 0.5) * (1 + t) + _scalar(x, 0.5) * x * (1 - t * t) * slope
    cdf = _scalar(x, 0.5) * (1 + _erf(x / _scalar(x, math.sqrt(2.0))))
    pdf = xp.exp(_scalar(x, -0.5) * x * x) / _scalar(x, math.sqrt(2.0 * math.pi))
    return cdf + x * pdf


# ------------------------------------------------------------------------ softmax
def log_softmax(x, dim=1):
    """``log(e^{x_k} / Σ_j e^{x_j})`` along ``dim``, computed as ``x - max - log Σ e^{x - max}`` so it never
    overflows (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red", eq. 1, in logs)."""
    check_float_array("log_softmax", x)
    axis = check_dim("log_softmax", dim, x.ndim)
    xp = array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, dim=1):
    """``e^{x_k} / Σ_j e^{x_j}`` along ``dim`` (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red", eq. 1)."""
    check_float_array("softmax", x)
    axis = check_dim("softmax", dim, x.ndim)
    e = array_module(x).exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_grad(y, dy, dim=1):
    """``dx = y ∘ (dy - Σ_k dy_k y_k)`` along ``dim``, for ``y = softmax(x)``: the Jacobian ``diag(y) - y yᵀ``."""
    axis = check_dim("softmax_grad", dim, y.ndim)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_grad(y, dy, dim=1):
    """``dx = dy - softmax(x) Σ_k dy_k`` along ``dim``, for ``y = log_softmax(x)`` (so ``softmax(x) = e^y``)."""
    axis = check_dim("log_softmax_grad", dim, y.ndim)
    return dy - array_module(y).exp(y) * dy.sum(axis=axis, keepdims=True)
