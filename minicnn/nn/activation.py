"""Element-wise activations ``y = f(x)``, all on one base: ``Elementwise`` (``f``, ``df``, keeps ``x`` or ``y``).

Backward is ``dx = dy ∘ f'`` (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
Backpropagation", eq. 2: ``δ^(l) = ... ∘ f'(z^(l))``). Where ``f'`` is
written most simply with the output (ReLU, sigmoid, tanh) the layer keeps
``y``; otherwise it keeps ``x``.
"""

from __future__ import annotations

import math

import numpy as np

from .module import Module, array_module
from .pool import MaxPool2d

__all__ = ["Elementwise", "ReLU", "Sigmoid", "Tanh", "ReLU6", "SiLU", "HardSwish", "GELU"]


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


def _erf(x):
    if array_module(x) is np:
        from scipy.special import erf
    else:
        from cupyx.scipy.special import erf
    return erf(x)


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


class SiLU(Elementwise):
    """Swish / SiLU ``y = x σ(x)``, EfficientNet's activation (Tan & Le, 2019); ``f' = σ(x) (1 + x (1 - σ(x)))``."""

    def f(self, x):
        return x * _expit(x)

    def df(self, x):
        s = _expit(x)
        return s * (1 + x * (1 - s))


class HardSwish(Elementwise):
    """``y = x ReLU6(x + 3) / 6`` (MobileNetV3), a piecewise-polynomial Swish.

    ``f' = 0``, ``(2x + 3)/6``, ``1`` on ``x < -3``, ``|x| <= 3``, ``x > 3``.
    """

    def f(self, x):
        return x * array_module(x).clip(x + 3, 0, 6) / 6

    def df(self, x):
        xp = array_module(x)
        return xp.where(x < -3, 0.0, xp.where(x > 3, 1.0, (2 * x + 3) / 6)).astype(x.dtype)


class GELU(Elementwise):
    """``y = x Φ(x) = x (1 + erf(x/√2)) / 2`` (the exact form), ConvNeXt's activation; ``f' = Φ(x) + x φ(x)``."""

    def f(self, x):
        return 0.5 * x * (1 + _erf(x / math.sqrt(2.0)))

    def df(self, x):
        xp = array_module(x)
        cdf = 0.5 * (1 + _erf(x / math.sqrt(2.0)))
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return cdf + x * pdf
