"""Element-wise activations ``y = f(x)``, all on one base: ``Elementwise`` (``f``, ``df``, keeps ``x`` or ``y``).

Backward is ``dx = dy ∘ f'`` (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
Backpropagation", eq. 2: ``δ^(l) = ... ∘ f'(z^(l))``). Where ``f'`` is
written most simply with the output (ReLU, sigmoid, tanh) the layer keeps
``y``; otherwise it keeps ``x``.
"""

from __future__ import annotations

import numpy as np

from .. import elementwise as E
from .module import Module, array_module
from .pool import MaxPool2d

__all__ = [
    "Elementwise", "ReLU", "Sigmoid", "Tanh", "ReLU6", "LeakyReLU", "HardSigmoid", "SiLU", "Swish", "HardSwish", "GELU",
    "Softmax", "LogSoftmax",
]


class Elementwise(Module):
    """An element-wise layer ``y = f(x)``; ``backward`` returns ``dy * df(kept)``.

    A subclass defines ``f(x)`` and ``df(kept)``, the derivative ``f'``
    written with what ``keeps`` names: ``"x"`` (the input, the default) or
    ``"y"`` (the output, when ``f'`` reads best through it).
    """

    keeps = "x"

    def f(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define f(x)")

    def df(self, kept):
        raise NotImplementedError(f"{type(self).__name__} must define df(x) or df(y)")

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            what = x.dtype if hasattr(x, "dtype") else type(x).__name__
            raise TypeError(f"{type(self).__name__}: input must be a float32/float64 array, got {what}")
        y = self.f(x)
        self.save(y if self.keeps == "y" else x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (kept,) = self.saved(dy)
        return dy * self.df(kept)

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)


def _expit(x):
    if array_module(x) is np:
        from scipy.special import expit
    else:
        from cupyx.scipy.special import expit
    return expit(x)


class ReLU(Elementwise):
    """Rectified linear unit ``y = max(0, x)``; ``f'(x) = 1`` where ``y > 0``, else 0.

    Deck 004_d4430ea77d2b90c2.txt, "Función de activación" (a ReLU after each
    convolution); deck 002_35ce60e4ae78ad9e.txt, AlexNet ("ReLu ... como
    función de activación").
    """

    keeps = "y"

    def __init__(self, inplace=False):
        super().__init__()
        if not isinstance(inplace, bool):
            raise TypeError(f"ReLU: inplace must be a bool, got {type(inplace).__name__} {inplace!r}")
        self.inplace = inplace

    def f(self, x):
        # inplace: overwrite x (and, in backward, dy) instead of allocating; only for inputs
        # nobody else reads, such as a convolution's output inside a Sequential
        xp = array_module(x)
        return xp.maximum(x, 0, out=x) if self.inplace else xp.maximum(x, 0)

    def df(self, y):
        return y > 0

    def backward(self, dy, *, need_dx=True):
        if not self.inplace:
            return super().backward(dy, need_dx=need_dx)
        (y,) = self.saved(dy)
        return array_module(dy).multiply(dy, y > 0, out=dy)

    def commutes_with(self, following):
        """True when ``following`` may run first with the same result: a ``MaxPool2d``.

        ReLU is non-decreasing, so it commutes with taking a maximum:
        ``max_window(max(0, x)) = max(0, max_window(x))``, and the gradient is
        the same too (it reaches the window's winner when the maximum is
        positive, nothing otherwise). Pooling first makes the ReLU work on a
        map 4x smaller for LeNet-5's 2x2 windows (``Sequential.fuse``).
        """
        return type(following) is MaxPool2d

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(Elementwise):
    """Logistic sigmoid ``C = 1 / (1 + e^{-A})``; ``f'(A) = C (1 - C)``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : CONV:C1".
    Computed with ``scipy.special.expit`` (``cupyx`` on the GPU), which never
    overflows.
    """

    keeps = "y"

    def f(self, x):
        return _expit(x)

    def df(self, y):
        return y * (1 - y)


class Tanh(Elementwise):
    """Hyperbolic tangent ``y = tanh(x)``; ``f'(x) = 1 - y²``.

    A rescaled sigmoid (``tanh(x) = 2σ(2x) - 1``, deck 002_35ce60e4ae78ad9e.txt,
    "Arquitectura de la Red : CONV:C1" has σ) centred on zero; the slides'
    backpropagation (eq. 2) needs only its derivative ``f'``.
    """

    keeps = "y"

    def f(self, x):
        return array_module(x).tanh(x)

    def df(self, y):
        return 1 - y * y


class ReLU6(Elementwise):
    """``y = min(max(0, x), 6)``: MobileNetV2's activation.

    Deck 000_5f24bd8423292174.txt, "Cuellos de botella residuales inversos":
    "1x1 conv2d, ReLU6". The cap at 6 keeps activations in a range low-precision arithmetic
    represents well. ``f'(x) = 1`` for ``0 < x < 6``, else 0.
    """

    def f(self, x):
        return array_module(x).clip(x, 0, 6)

    def df(self, x):
        return ((x > 0) & (x < 6)).astype(x.dtype)


class LeakyReLU(Elementwise):
    """``y = x`` for ``x >= 0``, ``negative_slope * x`` otherwise; ``f' = 1`` or ``negative_slope``.

    A ReLU (deck 004_d4430ea77d2b90c2.txt, "Función de activación") whose
    negative side keeps a small slope, so a unit whose inputs are all
    negative still learns (Maas et al., 2013; YOLO's activation). As
    ``torch.nn.LeakyReLU(negative_slope=0.01)``.
    """

    def __init__(self, negative_slope=0.01):
        super().__init__()
        E.check_negative_slope("LeakyReLU", negative_slope)
        self.negative_slope = float(negative_slope)

    def f(self, x):
        return E.leaky_relu(x, self.negative_slope)

    def df(self, x):
        return E.leaky_relu_derivative(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class HardSigmoid(Elementwise):
    """``y = ReLU6(x + 3) / 6`` (MobileNetV3's gate in squeeze-and-excitation), a piecewise-linear sigmoid;
    ``f' = 1/6`` on ``-3 < x < 3``, else 0. As ``torch.nn.Hardsigmoid``."""

    def f(self, x):
        return E.hardsigmoid(x)

    def df(self, x):
        return E.hardsigmoid_derivative(x)


class SiLU(Elementwise):
    """Swish / SiLU ``y = x σ(x)``, EfficientNet's activation (Tan & Le, 2019); ``f' = σ(x) (1 + x (1 - σ(x)))``."""

    def f(self, x):
        return E.silu(x)

    def df(self, x):
        return E.silu_derivative(x)


class HardSwish(Elementwise):
    """``y = x ReLU6(x + 3) / 6`` (MobileNetV3), a piecewise-polynomial Swish.

    ``f' = 0``, ``(2x + 3)/6``, ``1`` on ``x <= -3``, ``|x| < 3``, ``x >= 3``.
    """

    def f(self, x):
        return E.hardswish(x)

    def df(self, x):
        return E.hardswish_derivative(x)


class GELU(Elementwise):
    """``y = x Φ(x)``, ConvNeXt's activation; ``f' = Φ(x) + x φ(x)``.

    ``approximate="none"`` (the exact form, ``Φ(x) = (1 + erf(x/√2))/2``) or
    ``"tanh"`` (``Φ(x) ≈ (1 + tanh(√(2/π)(x + 0.044715 x³)))/2``), as
    ``torch.nn.GELU``.
    """

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in E.GELU_APPROXIMATIONS:
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def f(self, x):
        return E.gelu(x, self.approximate)

    def df(self, x):
        return E.gelu_derivative(x, self.approximate)

    def extra_repr(self):
        return "" if self.approximate == "none" else f"approximate={self.approximate!r}"


class Softmax(Module):
    """``y_k = e^{x_k} / Σ_j e^{x_j}`` along ``dim`` (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red",
    eq. 1), as ``torch.nn.Softmax(dim)``; ``axis`` is accepted as another name for it (NumPy's, ONNX's).

    Backward: ``dx = y ∘ (dy - Σ_k dy_k y_k)``, the product with the Jacobian
    ``diag(y) - y yᵀ``. For training, ``SoftmaxCrossEntropy`` takes the
    logits and folds this into the loss's gradient (deck 002, eq. 4).
    """

    _forward = staticmethod(E.softmax)
    _backward = staticmethod(E.softmax_grad)

    def __init__(self, dim=None, *, axis=None):
        super().__init__()
        name = type(self).__name__
        if dim is not None and axis is not None and axis != dim:
            raise ValueError(f"{name}: dim={dim!r} and axis={axis!r} name the same argument; give one of them")
        dim = 1 if dim is None and axis is None else (dim if dim is not None else axis)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"{name}: dim must be an int, got {type(dim).__name__} {dim!r}")
        self.dim = int(dim)

    def forward(self, x):
        E.check_float_array(type(self).__name__, x)
        E.check_dim(type(self).__name__, self.dim, x.ndim)
        y = self._forward(x, self.dim)
        self.save(y)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (y,) = self.saved(dy)
        return self._backward(y, dy, self.dim)

    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        E.check_dim(type(self).__name__, self.dim, len(shape))
        return shape

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """``y = log softmax(x)`` along ``dim``, computed without overflow; backward ``dx = dy - e^y Σ_k dy_k``.

    As ``torch.nn.LogSoftmax(dim)`` (``axis`` accepted as another name).
    """

    _forward = staticmethod(E.log_softmax)
    _backward = staticmethod(E.log_softmax_grad)


#: Swish (Ramachandran et al., 2017) is SiLU: ``x σ(x)``.
Swish = SiLU
