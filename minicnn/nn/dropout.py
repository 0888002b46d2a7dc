"""Inverted dropout (AlexNet's regulariser)."""

from __future__ import annotations

import numpy as np

from .checks import make_rng
from .module import Module, array_module

__all__ = ["Dropout"]


class Dropout(Module):
    """Dropout: in training, zero each activation with probability ``p``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    AlexNet: "setting to zero the output of each hidden neuron with
    probability 0.5 ... [they] do not participate in backpropagation". This is
    *inverted* dropout: the kept activations are scaled by ``1/(1-p)`` while
    training, so evaluation (``eval()``) is the identity with no rescaling.
    The same mask gates the gradient.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"Dropout: p must be a number in [0, 1], got {type(p).__name__} {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"Dropout: p is a probability and must lie in [0, 1], got {p}")
        self.p = float(p)
        self.rng = make_rng("Dropout", rng)
        self._gpu_rng = None

    def _uniform(self, x):
        xp = array_module(x)
        if xp is np:
            return self.rng.random(x.shape, dtype=x.dtype)
        if self._gpu_rng is None:
            # Seeded from the NumPy generator, so a seed still fixes the masks on the GPU.
            self._gpu_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
        return self._gpu_rng.random(x.shape, dtype=x.dtype)

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            raise TypeError(f"Dropout: input must be a float32/float64 array, got {type(x).__name__}")
        if not self.training or self.p == 0.0:
            self.save(None)
            return self._keep_output(x)
        xp = array_module(x)
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        mask = xp.where(self._uniform(x) >= self.p, x.dtype.type(scale), x.dtype.type(0))
        self.save(mask)
        return self._keep_output(x * mask)

    def backward(self, dy, *, need_dx=True):
        (mask,) = self.saved(dy)
        return dy if mask is None else dy * mask

    def reseed(self, generator):
        """Draw the masks from ``generator`` (a ``numpy.random.Generator``) from now on, on the CPU and the GPU."""
        self.rng = generator
        self._gpu_rng = None  # re-seeded from self.rng at the next GPU forward

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)

    def extra_repr(self):
        return f"p={self.p}"
