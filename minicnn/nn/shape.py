"""Layers that only move values: ``Identity``, ``Flatten`` (maps to a vector) and ShuffleNet's ``ChannelShuffle``."""

from __future__ import annotations

from .. import shapes
from .checks import check_array, check_shape_ndim, positive_int
from .module import Module

__all__ = ["Identity", "Flatten", "ChannelShuffle"]


class Identity(Module):
    """``y = x`` (a placeholder, e.g. the skip path of a residual block)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return self._keep_output(x)

    def backward(self, dy, *, need_dx=True):
        return self._check_dy(dy)

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)


class Flatten(Module):
    """``(N, C, H, W) -> (N, C*H*W)``: the feature maps become the input vector of a dense layer.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red": the 16x5x5
    outputs of S4 (400 neurons) feed the fully connected layers.
    """

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise ValueError(f"Flatten: input must have a batch axis and at least one more, got {getattr(x, 'shape', x)!r}")
        self.save(x.shape)
        return self._keep_output(x.reshape(x.shape[0], -1))

    def backward(self, dy, *, need_dx=True):
        (shape,) = self.saved(dy)
        return dy.reshape(shape)

    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten: input must have a batch axis and at least one more, got shape {shape}")
        return (shape[0], shapes.numel(shape[1:]))


class ChannelShuffle(Module):
    """ShuffleNet's channel shuffle: ``(N, g*k, H, W) -> reshape (N, g, k) -> transpose (N, k, g) -> flatten``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    ShuffleNet ("Grouped convolutions + channel shuffle"; Zhang et al., 2018):
    after a grouped convolution each group only saw its own channels; the
    shuffle hands every next group one channel from each previous group.
    Channel ``i*k + j`` moves to ``j*g + i``. Backward applies the inverse
    permutation.
    """

    def __init__(self, groups):
        super().__init__()
        self.groups = positive_int("ChannelShuffle", "groups", groups)

    def _check(self, shape):
        shape = check_shape_ndim("ChannelShuffle", shape, 4, "(N, C, H, W)")
        if shape[1] % self.groups:
            raise ValueError(
                f"ChannelShuffle: channels C={shape[1]} must be divisible by groups={self.groups} (C = groups * k)"
            )
        return shape

    def forward(self, x):
        check_array("ChannelShuffle", x, 4, "(N, C, H, W)")
        n, c, h, w = self._check(x.shape)
        g = self.groups
        self.save(x.shape)
        return self._keep_output(x.reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w))

    def backward(self, dy, *, need_dx=True):
        ((n, c, h, w),) = self.saved(dy)
        g = self.groups
        return dy.reshape(n, c // g, g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)

    def output_shape(self, input_shape):
        return self._check(input_shape)

    def extra_repr(self):
        return f"groups={self.groups}"
