"""Layers that only move values: ``Identity``, ``Flatten`` (maps to a vector), ``Pad`` (``F.pad``) and ShuffleNet's
``ChannelShuffle``."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import shapes
from .checks import check_array, check_shape_ndim, positive_int
from .module import Module

__all__ = ["Identity", "Flatten", "Pad", "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "ChannelShuffle"]


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
    outputs of S4 (400 neurons) feed the fully connected layers. As
    ``torch.nn.Flatten(start_dim=1, end_dim=-1)``: the axes ``start_dim`` to
    ``end_dim`` (negative counts from the end) become one.
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"Flatten: {name} must be an int, got {type(value).__name__} {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def _flat_shape(self, shape):
        ndim = max(len(shape), 1)
        start, end = self.start_dim, self.end_dim
        for name, value in (("start_dim", start), ("end_dim", end)):
            if not -ndim <= value < ndim:
                raise ValueError(f"Flatten: {name}={value} is not an axis of an input of shape {shape} "
                                 f"(axes [-{ndim}, {ndim}))")
        start, end = start % ndim, end % ndim
        if start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} comes after end_dim={self.end_dim} for shape {shape}")
        return shape[:start] + (shapes.numel(shape[start : end + 1]),) + shape[end + 1 :]

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 1:
            raise ValueError(f"Flatten: input must have a batch axis and at least one more, got {getattr(x, 'shape', x)!r}")
        self.save(x.shape)
        return self._keep_output(x.reshape(self._flat_shape(tuple(x.shape))))

    def backward(self, dy, *, need_dx=True):
        (shape,) = self.saved(dy)
        return dy.reshape(shape)

    def output_shape(self, input_shape):
        return self._flat_shape(tuple(int(s) for s in input_shape))

    def extra_repr(self):
        return "" if (self.start_dim, self.end_dim) == (1, -1) else f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Pad(Module):
    """``F.pad`` as a layer: ``pad = (left, right, top, bottom, ...)``, last axis first, in ``mode``
    ``"constant"`` (``value``), ``"reflect"``, ``"replicate"`` or ``"circular"`` (``minicnn.functional.pad``).

    Backward sends each output's error to the input element it was copied
    from (``F.pad_grad``). ``ZeroPad2d``, ``ConstantPad2d``,
    ``ReflectionPad2d`` and ``ReplicationPad2d`` are it with torch's names.
    """

    def __init__(self, pad, mode="constant", value=0.0):
        super().__init__()
        if isinstance(pad, (int, np.integer)) and not isinstance(pad, bool):
            pad = (int(pad),) * 4
        self.pad = F.check_pad_spec(type(self).__name__, pad, mode, value)
        self.mode, self.value = mode, value

    def forward(self, x):
        y = F.pad(x, self.pad, self.mode, self.value)
        self.save(x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        return F.pad_grad(x, dy, self.pad, self.mode)

    def output_shape(self, input_shape):
        return F.check_pad_shape(type(self).__name__, input_shape, self.pad, self.mode, self.value)[1]

    def extra_repr(self):
        text = f"pad={self.pad}, mode={self.mode!r}"
        return text + (f", value={self.value}" if self.mode == "constant" and self.value != 0 else "")


class ZeroPad2d(Pad):
    """``torch.nn.ZeroPad2d(padding)``: zeros around the last two axes; ``padding`` an int or ``(left, right, top, bottom)``."""

    def __init__(self, padding):
        super().__init__(padding)


class ConstantPad2d(Pad):
    """``torch.nn.ConstantPad2d(padding, value)``."""

    def __init__(self, padding, value):
        super().__init__(padding, "constant", value)


class ReflectionPad2d(Pad):
    """``torch.nn.ReflectionPad2d(padding)``: mirror about the edge pixel (amounts < size)."""

    def __init__(self, padding):
        super().__init__(padding, "reflect")


class ReplicationPad2d(Pad):
    """``torch.nn.ReplicationPad2d(padding)``: repeat the edge pixel."""

    def __init__(self, padding):
        super().__init__(padding, "replicate")


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
