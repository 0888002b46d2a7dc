"""Squeeze-and-excitation: a channel gate computed from every channel's mean (EfficientNet's MBConv)."""

from __future__ import annotations

import numpy as np

from .activation import ReLU, Sigmoid
from .checks import check_array, check_channels, check_shape_ndim, make_rng, positive_int
from .conv import Conv2d
from .module import Module
from .pool import GlobalAvgPool2d

__all__ = ["SqueezeExcitation"]


class SqueezeExcitation(Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from all channels' means.

    Used inside EfficientNet's MBConv blocks (deck 000_5f24bd8423292174.txt,
    "EfficientNets"; Hu et al., 2018)::

        s = σ(W_2 δ(W_1 GAP(x) + b_1) + b_2),   y = x ⊙ s   (s broadcast over H, W)

    ``W_1`` squeezes ``channels`` to ``squeeze_channels``, ``W_2`` expands
    back; both are 1x1 convolutions. ``activation`` is ``ReLU`` (the original)
    or ``SiLU`` (EfficientNet). Backward adds the path through the gate to
    the direct path ``dy ⊙ s``.
    """

    def __init__(self, channels, squeeze_channels, activation=ReLU, *, init="kaiming_uniform", rng=None, dtype=np.float32):
        super().__init__()
        self.channels = positive_int("SqueezeExcitation", "channels", channels)
        self.squeeze_channels = positive_int("SqueezeExcitation", "squeeze_channels", squeeze_channels)
        if not (isinstance(activation, type) and issubclass(activation, Module)):
            raise TypeError(
                f"SqueezeExcitation: activation must be a layer class such as nn.ReLU or nn.SiLU (not an instance "
                f"or a name), got {type(activation).__name__} {activation!r}"
            )
        rng = make_rng("SqueezeExcitation", rng)
        self.pool = GlobalAvgPool2d()
        self.fc1 = Conv2d(self.channels, self.squeeze_channels, 1, init=init, rng=rng, dtype=dtype)
        self.activation = activation()
        self.fc2 = Conv2d(self.squeeze_channels, self.channels, 1, init=init, rng=rng, dtype=dtype)
        self.gate = Sigmoid()
        self._steps = (self.pool, self.fc1, self.activation, self.fc2, self.gate)

    def forward(self, x):
        check_array("SqueezeExcitation", x, 4, "(N, C, H, W)")
        check_channels("SqueezeExcitation", tuple(x.shape), self.channels, "channels")
        s = x
        for step in self._steps:
            s = step.forward(s)
        self.save(x, s)
        return self._keep_output(x * s)

    def backward(self, dy, *, need_dx=True):
        x, s = self.saved(dy)
        ds = (dy * x).sum(axis=(2, 3), keepdims=True)
        for step in reversed(self._steps):
            ds = step.backward(ds)
        return dy * s + ds

    def output_shape(self, input_shape):
        shape = check_shape_ndim("SqueezeExcitation", input_shape, 4, "(N, C, H, W)")
        check_channels("SqueezeExcitation", shape, self.channels, "channels")
        return shape

    def macs(self, input_shape):
        squeezed = (int(input_shape[0]), self.channels, 1, 1)
        return self.fc1.macs(squeezed) + self.fc2.macs(self.fc1.output_shape(squeezed))

    def extra_repr(self):
        return f"{self.channels}, squeeze_channels={self.squeeze_channels}"
