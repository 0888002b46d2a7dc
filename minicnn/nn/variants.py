"""Variants of the convolutional layer, and the small layers modern architectures add around them.

Deck 000_5f24bd8423292174.txt ("Variantes de capas convolucionales") walks
through each of these; every one is composed here, in Python, from the
primitives of ``minicnn.functional`` (``conv2d``, ``conv2d_grad``, pooling),
so every backend has them from its first day:

* ``DepthwiseConv2d``, ``PointwiseConv2d`` and ``SeparableConv2d``
  ("Convolución en profundidad", "Convolución puntual (de 1x1)",
  "Convolución separable en profundidad", "Convolución espacial separable");
* ``ConvTranspose2d`` ("Convolución transpuesta"), the adjoint of ``Conv2d``;
* ``Conv1d`` and ``Conv3d`` ("Redes convolucionales 1D", "... 3D");
* ``ChannelShuffle`` (ShuffleNet, deck 002_35ce60e4ae78ad9e.txt,
  "Arquitecturas de redes convolucionales": "Grouped convolutions + channel
  shuffle");
* the activations and normalisations the architectures of decks 001 and 002
  use: ``ReLU6`` (MobileNetV2), ``SiLU``, ``HardSwish``, ``GELU``,
  ``LocalResponseNorm`` (AlexNet's "NORM1"), ``SqueezeExcitation``
  (EfficientNet's MBConv), ``LayerNorm2d`` and ``LayerScale`` (ConvNeXt).

Grouped and dilated convolutions need no class of their own: they are the
``groups`` and ``dilation`` arguments of ``Conv2d``.

Each layer follows the ``Module`` protocol: ``forward(x)`` keeps a cache,
``backward(dy)`` returns ``dx`` and adds into the parameters' ``.grad``, and
``output_shape``/``macs`` answer from ``minicnn.shapes`` without data.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import shapes
from .init import zeros
from .layers import (
    Conv2d,
    GlobalAvgPool2d,
    ReLU,
    Sigmoid,
    _bool,
    _check_array,
    _check_dtype,
    _check_shape_ndim,
    _float_dtype,
    _initializer,
    _make_rng,
    _number,
    _positive_int,
    _spatial_args,
)
from .module import Module, Parameter, array_module

__all__ = [
    "DepthwiseConv2d",
    "PointwiseConv2d",
    "SeparableConv2d",
    "ConvTranspose2d",
    "Conv1d",
    "Conv3d",
    "ChannelShuffle",
    "ReLU6",
    "SiLU",
    "HardSwish",
    "GELU",
    "LocalResponseNorm",
    "SqueezeExcitation",
    "LayerNorm2d",
    "LayerScale",
]


# ------------------------------------------------------------------- helpers
def _tuple_arg(layer, name, value, length, minimum):
    """An int or a ``length``-sequence of ints, each >= ``minimum``, as a tuple."""
    if isinstance(value, bool):
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {length} ints, got bool {value!r}")
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * length
    elif isinstance(value, (tuple, list)) and len(value) == length and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        value = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {length} ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum} along every axis, got {name}={value!r}")
    return value


def _check_groups(layer, in_channels, out_channels, groups):
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: in_channels={in_channels} and out_channels={out_channels} must both be divisible by "
            f"groups={groups}"
        )


def _check_channels(layer, shape, expected, name="in_channels"):
    if shape[1] != expected:
        raise ValueError(f"{layer}: expected {expected} input channels ({name}), got {shape[1]} in input of shape {shape}")


def _output_sizes(layer, sizes, kernel, stride, padding, dilation):
    """``floor((H + 2P - D*(F-1) - 1)/S) + 1`` along every axis (deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS")."""
    out = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        o = shapes.conv_output_size(size, k, s, p, d)
        if o < 1:
            raise ValueError(
                f"{layer}: output size ({size} + 2*{p} - {d}*({k}-1) - 1)//{s} + 1 = {o} < 1: the kernel spans "
                f"{shapes.dilated_extent(k, d)} samples but the padded input has {size + 2 * p}"
            )
        out.append(o)
    return tuple(out)


# ----------------------------------------------------- depthwise / pointwise
class DepthwiseConv2d(Conv2d):
    """Depthwise convolution: one ``F_H x F_W`` filter per input channel (``groups = channels``).

    Deck 000_5f24bd8423292174.txt, "Convolución en profundidad": each channel
    is filtered on its own, so a ``C``-channel input gives ``C`` maps (times
    ``depth_multiplier``) with ``C * multiplier * F_H * F_W`` weights instead
    of ``C_out * C * F_H * F_W``. It is ``Conv2d(C, C*m, k, groups=C)``.
    """

    def __init__(
        self, channels, kernel_size, stride=1, padding=0, dilation=1, bias=True, *, depth_multiplier=1, **kwargs
    ):
        channels = _positive_int("DepthwiseConv2d", "channels", channels)
        multiplier = _positive_int("DepthwiseConv2d", "depth_multiplier", depth_multiplier)
        super().__init__(channels, channels * multiplier, kernel_size, stride, padding, dilation, channels, bias, **kwargs)
        self.depth_multiplier = multiplier


class PointwiseConv2d(Conv2d):
    """Pointwise (1x1) convolution: mixes channels at every pixel, ``y[:, o] = Σ_c W[o, c] x[:, c] + b[o]``.

    Deck 000_5f24bd8423292174.txt, "Convolución puntual (de 1x1)"; deck
    003_7c437a475fa69432.txt ("convolución 1x1"): it changes the number of
    channels without looking at neighbours.
    """

    def __init__(self, in_channels, out_channels, stride=1, groups=1, bias=True, **kwargs):
        super().__init__(in_channels, out_channels, 1, stride, 0, 1, groups, bias, **kwargs)


class SeparableConv2d(Module):
    """A ``k x k`` convolution done as two cheaper ones.

    ``mode="depthwise"`` (deck 000_5f24bd8423292174.txt, "Convolución
    separable en profundidad"): a depthwise ``k x k`` convolution then a
    pointwise 1x1; ``C_in*k*k + C_in*C_out`` weights against ``C_in*C_out*k*k``
    (``shapes.depthwise_separable_params``). The equivalent full kernel is
    ``W[o, c] = P[o, c] * D[c]``.

    ``mode="spatial"`` (deck 000, "Convolución espacial separable": Sobel
    ``= [1, 2, 1]^T [-1, 0, 1]``): a column pass ``k x 1`` (``in -> out``
    channels) then a depthwise row pass ``1 x k``, i.e. a rank-1 kernel
    ``W[o, c] = u[o, c] v[o]^T``: ``2k`` multiplies per output pixel instead of
    ``k*k`` (``shapes.separable_spatial_flops_per_output``). Stride, padding
    and dilation split by axis: the column pass takes the vertical ones, the
    row pass the horizontal ones, so the result equals one 2-D convolution
    with the product kernel.

    The bias (if any) belongs to the second pass. ``equivalent_kernel()``
    returns the full ``(C_out, C_in, F_H, F_W)`` kernel the pair computes.
    """

    MODES = ("depthwise", "spatial")

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True, *, mode="depthwise",
        init="kaiming_uniform", rng=None, dtype=np.float32,
    ):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"SeparableConv2d: mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode
        self.in_channels = _positive_int("SeparableConv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("SeparableConv2d", "out_channels", out_channels)
        name = "SeparableConv2d"
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = _spatial_args(
            name, kernel_size=(kernel_size, 1), stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1)
        )
        self.kernel_size = (kh, kw)
        bias, dtype, init = _bool(name, "bias", bias), _float_dtype(name, dtype), _initializer(name, init)
        rng = _make_rng(name, rng)
        opts = {"init": init, "rng": rng, "dtype": dtype}
        if mode == "depthwise":
            self.depthwise = DepthwiseConv2d(in_channels, (kh, kw), (sh, sw), (ph, pw), (dh, dw), bias=bias, **opts)
            self.pointwise = PointwiseConv2d(in_channels, out_channels, bias=bias, **opts)
            self._passes = (self.depthwise, self.pointwise)
        else:
            self.column = Conv2d(in_channels, out_channels, (kh, 1), (sh, 1), (ph, 0), (dh, 1), bias=False, **opts)
            self.row = Conv2d(out_channels, out_channels, (1, kw), (1, sw), (0, pw), (1, dw), out_channels, bias, **opts)
            self._passes = (self.column, self.row)

    def forward(self, x):
        for layer in self._passes:
            x = layer.forward(x)
        return self._keep_output(x)

    def backward(self, dy):
        self._check_dy(dy)
        for layer in reversed(self._passes):
            dy = layer.backward(dy)
        return dy

    def equivalent_kernel(self):
        """The ``(C_out, C_in, F_H, F_W)`` kernel of the one convolution this pair equals."""
        if self.mode == "depthwise":
            d = self.depthwise.weight.data[:, 0]  # (C_in, F_H, F_W)
            p = self.pointwise.weight.data[:, :, 0, 0]  # (C_out, C_in)
            return p[:, :, None, None] * d[None]
        u = self.column.weight.data[:, :, :, 0]  # (C_out, C_in, F_H)
        v = self.row.weight.data[:, 0, 0, :]  # (C_out, F_W)
        return u[:, :, :, None] * v[:, None, None, :]

    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        for layer in self._passes:
            shape = layer.output_shape(shape)
        return shape

    def macs(self, input_shape):
        total, shape = 0, tuple(int(s) for s in input_shape)
        for layer in self._passes:
            total += layer.macs(shape)
            shape = layer.output_shape(shape)
        return total

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, mode={self.mode!r}"


# ------------------------------------------------------------- transposed
class ConvTranspose2d(Module):
    """Transposed convolution: the adjoint of ``Conv2d``, ``<conv(x), y> = <x, conv_transpose(y)>``.

    Deck 000_5f24bd8423292174.txt, "Convolución transpuesta (1)" and "(2)":
    each input pixel spreads a copy of the kernel, scaled by its value, over
    the output, ``S`` pixels apart; overlaps add. That is exactly the
    input-gradient path of a convolution, so ``forward`` *is*
    ``conv2d_grad``'s ``dx`` (for a convolution from this layer's output
    space to its input space, whose weight this layer holds), and
    ``backward`` uses ``conv2d`` for ``dx`` and ``conv2d_grad``'s ``dw`` for
    the weight gradient.

    Weights have shape ``(C_in, C_out/groups, F_H, F_W)`` as in PyTorch. Output
    size (``shapes.conv_transpose_output_size``):
    ``(H - 1)*S - 2P + D*(F - 1) + output_padding + 1``, where
    ``output_padding`` (smaller than the stride or the dilation) picks among
    the sizes a strided convolution maps to the same ``H``.
    """

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, dilation=1, groups=1,
        bias=True, *, init="kaiming_uniform", rng=None, dtype=np.float32,
    ):
        super().__init__()
        name = "ConvTranspose2d"
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        _check_groups(name, self.in_channels, self.out_channels, self.groups)
        self.kernel_size = _tuple_arg(name, "kernel_size", kernel_size, 2, 1)
        self.stride = _tuple_arg(name, "stride", stride, 2, 1)
        self.padding = _tuple_arg(name, "padding", padding, 2, 0)
        self.output_padding = _tuple_arg(name, "output_padding", output_padding, 2, 0)
        self.dilation = _tuple_arg(name, "dilation", dilation, 2, 1)
        for axis, op, s, d in zip(("height", "width"), self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"{name}: output_padding must be smaller than the stride or the dilation; along {axis} "
                    f"output_padding={op} but stride={s} and dilation={d}"
                )
        bias, dtype, init = _bool(name, "bias", bias), _float_dtype(name, dtype), _initializer(name, init)
        rng = _make_rng(name, rng)
        shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None
        self._cache = None

    def _conv_args(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def output_shape(self, input_shape):
        n, c, h, w = _check_shape_ndim("ConvTranspose2d", input_shape, 4, "(N, C_in, H, W)")
        _check_channels("ConvTranspose2d", (n, c, h, w), self.in_channels)
        out = [
            shapes.conv_transpose_output_size(size, k, s, p, d, op)
            for size, k, s, p, d, op in zip(
                (h, w), self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding
            )
        ]
        if min(out) < 1:
            raise ValueError(
                f"ConvTranspose2d: output size (H - 1)*S - 2P + D*(F - 1) + output_padding + 1 = {tuple(out)} < 1 "
                f"for input {(h, w)}, kernel {self.kernel_size}, stride {self.stride}, padding {self.padding}"
            )
        return (n, self.out_channels, out[0], out[1])

    def _adjoint_input_hw(self, out_hw):
        """Size of the convolution of the output: ``H`` itself, plus ``output_padding // S`` when that is >= S."""
        return tuple(
            shapes.conv_output_size(size, k, s, p, d)
            for size, k, s, p, d in zip(out_hw, self.kernel_size, self.stride, self.padding, self.dilation)
        )

    def forward(self, x):
        _check_array("ConvTranspose2d", x, 4, "(N, C_in, H, W)")
        _check_dtype("ConvTranspose2d", x, self.weight.data)
        out_shape = self.output_shape(x.shape)
        xp = array_module(x)
        # With output_padding >= stride (allowed when < dilation), the convolution of the output has more
        # positions than x: the extra ones carry zeros.
        hh, ww = self._adjoint_input_hw(out_shape[2:])
        h, w = x.shape[2:]
        x_full = xp.pad(x, ((0, 0), (0, 0), (0, hh - h), (0, ww - w))) if (hh, ww) != (h, w) else x
        space = xp.zeros(out_shape, dtype=x.dtype)  # the convolution's input space; only its shape matters
        y, _, _ = F.conv2d_grad(space, self.weight.data, x_full, **self._conv_args())
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)
        self._cache = (x_full, (h, w))
        return self._keep_output(y)

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x_full, (h, w) = self._cache
        self._cache = None
        dx = F.conv2d(dy, self.weight.data, **self._conv_args())[:, :, :h, :w]
        # y = A_W^T x, so <dy, y> = <conv(dy, W), x>: its W-gradient is conv2d_grad's dw with "upstream" x.
        _, dw, _ = F.conv2d_grad(dy, self.weight.data, x_full, **self._conv_args())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3))
        return array_module(dx).ascontiguousarray(dx)

    def _clear_cache(self):
        self._cache = None

    def macs(self, input_shape):
        n, c, h, w = _check_shape_ndim("ConvTranspose2d", input_shape, 4, "(N, C_in, H, W)")
        # Every input pixel meets every tap of its group's filters once.
        return n * h * w * shapes.conv2d_params(self.in_channels, self.out_channels, self.kernel_size, self.groups, False)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.output_padding != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text


# ------------------------------------------------------------- 1-D and 3-D
class _ConvNd(Module):
    """Shared construction of ``Conv1d``/``Conv3d``: weights ``(C_out, C_in/groups, *kernel)``."""

    _name = "ConvNd"
    _dims = 1
    _layout = ""

    def __init__(
        self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True, *,
        init="kaiming_uniform", rng=None, dtype=np.float32,
    ):
        super().__init__()
        name, dims = self._name, self._dims
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        _check_groups(name, self.in_channels, self.out_channels, self.groups)
        self.kernel_size = _tuple_arg(name, "kernel_size", kernel_size, dims, 1)
        self.stride = _tuple_arg(name, "stride", stride, dims, 1)
        self.padding = _tuple_arg(name, "padding", padding, dims, 0)
        self.dilation = _tuple_arg(name, "dilation", dilation, dims, 1)
        bias, dtype, init = _bool(name, "bias", bias), _float_dtype(name, dtype), _initializer(name, init)
        rng = _make_rng(name, rng)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None
        self._cache = None

    def output_shape(self, input_shape):
        shape = _check_shape_ndim(self._name, input_shape, self._dims + 2, self._layout)
        _check_channels(self._name, shape, self.in_channels)
        sizes = _output_sizes(self._name, shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        return (shape[0], self.out_channels, *sizes)

    def macs(self, input_shape):
        out = self.output_shape(input_shape)
        per_output = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return math.prod(out) * per_output

    def _check_input(self, x):
        _check_array(self._name, x, self._dims + 2, self._layout)
        _check_channels(self._name, tuple(x.shape), self.in_channels)
        _check_dtype(self._name, x, self.weight.data)
        return self.output_shape(x.shape)

    def _clear_cache(self):
        self._cache = None

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            text += f", padding={self.padding}"
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text


class Conv1d(_ConvNd):
    """1-D convolution of sequences ``(N, C_in, L)`` with filters ``(C_out, C_in/groups, F)``.

    Deck 000_5f24bd8423292174.txt, "Redes convolucionales 1D" (raw
    waveforms); deck 003_7c437a475fa69432.txt for the 1-D sum. It is a 2-D
    convolution of images one pixel tall: ``(N, C, 1, L)`` with ``1 x F``
    filters, stride ``(1, S)``, padding ``(0, P)``.
    """

    _name = "Conv1d"
    _dims = 1
    _layout = "(N, C_in, L)"

    def _args(self):
        return {
            "stride": (1, self.stride[0]), "padding": (0, self.padding[0]), "dilation": (1, self.dilation[0]),
            "groups": self.groups,
        }

    def forward(self, x):
        self._check_input(x)
        b = None if self.bias is None else self.bias.data
        y = F.conv2d(x[:, :, None, :], self.weight.data[:, :, None, :], b, **self._args())
        self._cache = x
        return self._keep_output(y[:, :, 0, :])

    def backward(self, dy):
        x = self._cache
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        self._cache = None
        dx, dw, db = F.conv2d_grad(x[:, :, None, :], self.weight.data[:, :, None, :], dy[:, :, None, :], **self._args())
        self.weight.grad += dw[:, :, 0, :]
        if self.bias is not None:
            self.bias.grad += db
        return dx[:, :, 0, :]


class Conv3d(_ConvNd):
    """3-D convolution of volumes or clips ``(N, C_in, D, H, W)`` with filters ``(C_out, C_in/groups, F_D, F_H, F_W)``.

    Deck 000_5f24bd8423292174.txt, "Redes convolucionales 3D (1)-(3)" (C3D,
    Tran et al.): the filter also slides along time/depth, so the response
    keeps the temporal structure. Computed as a sum over the ``F_D`` depth
    taps of 2-D convolutions: for tap ``t``, the input frames
    ``d*S_D + t*D_D - P_D`` (one per output frame, stacked into the batch)
    are convolved with the 2-D slice ``W[:, :, t]``::

        Y[:, :, d] = b + Σ_t conv2d(X[:, :, d*S_D + t*D_D - P_D], W[:, :, t])
    """

    _name = "Conv3d"
    _dims = 3
    _layout = "(N, C_in, D, H, W)"

    def _args2d(self):
        return {"stride": self.stride[1:], "padding": self.padding[1:], "dilation": self.dilation[1:], "groups": self.groups}

    def _frames(self, x_pad, tap, depth_out):
        """Input frames under depth tap ``tap`` for every output frame, as a batch ``(N*D_out, C, H, W)``."""
        s, d = self.stride[0], self.dilation[0]
        start = tap * d
        frames = x_pad[:, :, start : start + s * (depth_out - 1) + 1 : s]  # (N, C, D_out, H, W)
        n, c, _, h, w = frames.shape
        return frames.transpose(0, 2, 1, 3, 4).reshape(n * depth_out, c, h, w)

    def forward(self, x):
        n, o, depth_out, ho, wo = self._check_input(x)
        xp = array_module(x)
        p = self.padding[0]
        x_pad = xp.pad(x, ((0, 0), (0, 0), (p, p), (0, 0), (0, 0))) if p else x
        y = xp.zeros((n * depth_out, o, ho, wo), dtype=x.dtype)
        for tap in range(self.kernel_size[0]):
            y += F.conv2d(self._frames(x_pad, tap, depth_out), self.weight.data[:, :, tap], **self._args2d())
        y = y.reshape(n, depth_out, o, ho, wo).transpose(0, 2, 1, 3, 4)
        if self.bias is not None:
            y = y + self.bias.data.reshape(1, -1, 1, 1, 1)
        self._cache = (x_pad, x.shape)
        return self._keep_output(xp.ascontiguousarray(y))

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x_pad, x_shape = self._cache
        self._cache = None
        xp = array_module(dy)
        n, o, depth_out, ho, wo = dy.shape
        dy_frames = xp.ascontiguousarray(dy.transpose(0, 2, 1, 3, 4)).reshape(n * depth_out, o, ho, wo)
        dx_pad = xp.zeros_like(x_pad)
        s, d = self.stride[0], self.dilation[0]
        dw = xp.zeros_like(self.weight.grad)
        for tap in range(self.kernel_size[0]):
            frames = self._frames(x_pad, tap, depth_out)
            dframes, dw_tap, _ = F.conv2d_grad(frames, self.weight.data[:, :, tap], dy_frames, **self._args2d())
            dw[:, :, tap] = dw_tap
            start = tap * d
            c, h, w = frames.shape[1:]
            dx_pad[:, :, start : start + s * (depth_out - 1) + 1 : s] += dframes.reshape(n, depth_out, c, h, w).transpose(
                0, 2, 1, 3, 4
            )
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += dy.sum(axis=(0, 2, 3, 4))
        p = self.padding[0]
        return xp.ascontiguousarray(dx_pad[:, :, p : p + x_shape[2]])


# ------------------------------------------------------------ channel shuffle
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
        self.groups = _positive_int("ChannelShuffle", "groups", groups)
        self._shape = None

    def _check(self, shape):
        shape = _check_shape_ndim("ChannelShuffle", shape, 4, "(N, C, H, W)")
        if shape[1] % self.groups:
            raise ValueError(
                f"ChannelShuffle: channels C={shape[1]} must be divisible by groups={self.groups} (C = groups * k)"
            )
        return shape

    def forward(self, x):
        _check_array("ChannelShuffle", x, 4, "(N, C, H, W)")
        n, c, h, w = self._check(x.shape)
        g = self.groups
        self._shape = x.shape
        return self._keep_output(x.reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w))

    def backward(self, dy):
        if self._shape is None:
            raise self._no_forward()
        self._check_dy(dy)
        n, c, h, w = self._shape
        self._shape = None
        g = self.groups
        return dy.reshape(n, c // g, g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)

    def _clear_cache(self):
        self._shape = None

    def output_shape(self, input_shape):
        return self._check(input_shape)

    def extra_repr(self):
        return f"groups={self.groups}"


# ------------------------------------------------------------- activations
class _Pointwise(Module):
    """Elementwise ``y = f(x)``, keeping ``x`` for ``dx = dy * f'(x)``."""

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            what = x.dtype if hasattr(x, "dtype") else type(x).__name__
            raise TypeError(f"{type(self).__name__}: input must be a float32/float64 array, got {what}")
        self._x = x
        return self._keep_output(self._f(x))

    def backward(self, dy):
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        self._x = None
        return dy * self._df(x)

    def _clear_cache(self):
        self._x = None

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)


def _sigmoid(x):
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


class ReLU6(_Pointwise):
    """``y = min(max(0, x), 6)``: MobileNetV2's activation.

    Deck 000_5f24bd8423292174.txt, "Cuellos de botella residuales inversos":
    "1x1 conv2d, ReLU6". The cap at 6 keeps activations in a range low-precision arithmetic
    represents well. ``f'(x) = 1`` for ``0 < x < 6``, else 0.
    """

    def _f(self, x):
        return array_module(x).clip(x, 0, 6)

    def _df(self, x):
        return ((x > 0) & (x < 6)).astype(x.dtype)


class SiLU(_Pointwise):
    """Swish / SiLU ``y = x σ(x)``, EfficientNet's activation (Tan & Le, 2019); ``f' = σ(x) (1 + x (1 - σ(x)))``."""

    def _f(self, x):
        return x * _sigmoid(x)

    def _df(self, x):
        s = _sigmoid(x)
        return s * (1 + x * (1 - s))


class HardSwish(_Pointwise):
    """``y = x ReLU6(x + 3) / 6`` (MobileNetV3), a piecewise-polynomial Swish.

    ``f' = 0``, ``(2x + 3)/6``, ``1`` on ``x < -3``, ``|x| <= 3``, ``x > 3``.
    """

    def _f(self, x):
        return x * array_module(x).clip(x + 3, 0, 6) / 6

    def _df(self, x):
        xp = array_module(x)
        return xp.where(x < -3, 0.0, xp.where(x > 3, 1.0, (2 * x + 3) / 6)).astype(x.dtype)


class GELU(_Pointwise):
    """``y = x Φ(x) = x (1 + erf(x/√2)) / 2`` (the exact form), ConvNeXt's activation; ``f' = Φ(x) + x φ(x)``."""

    def _f(self, x):
        return 0.5 * x * (1 + _erf(x / math.sqrt(2.0)))

    def _df(self, x):
        xp = array_module(x)
        cdf = 0.5 * (1 + _erf(x / math.sqrt(2.0)))
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return cdf + x * pdf


# ----------------------------------------------------------- normalisation
def _channel_window_sum(a, before, after):
    """``S[:, c] = Σ_{c' = c - before}^{c + after} a[:, c']`` with zeros beyond the channels."""
    xp = array_module(a)
    c = a.shape[1]
    widths = [(0, 0), (before, after)] + [(0, 0)] * (a.ndim - 2)
    padded = xp.pad(a, widths)
    total = padded[:, 0:c].copy()
    for shift in range(1, before + after + 1):
        total += padded[:, shift : shift + c]
    return total


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet's "NORM1"/"NORM2").

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    AlexNet listing ("NORM1: Normalization layer"); deck 001_4dad5adb3ac1e716.txt,
    AlexNet ("Normaliza respuestas"). Same formula as
    ``torch.nn.LocalResponseNorm``::

        b_c = a_c / (k + α/n Σ_{c'} a_{c'}²)^β,   c' from c - n//2 to c + (n-1)//2

    (Krizhevsky et al. use n = 5, k = 2, β = 0.75.) Backward, with
    ``D_c = k + α/n S_c``::

        dL/da_j = dy_j D_j^{-β} - (2αβ/n) a_j Σ_{c ∋ j} dy_c a_c D_c^{-β-1}
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _positive_int("LocalResponseNorm", "size", size)
        # k > 0 and alpha >= 0 keep the base k + alpha/n * sum(a^2) positive, so its power is defined.
        self.alpha = _number("LocalResponseNorm", "alpha", alpha, lambda v: v >= 0, ">= 0")
        self.beta = _number("LocalResponseNorm", "beta", beta)
        self.k = _number("LocalResponseNorm", "k", k, lambda v: v > 0, "> 0")
        self._cache = None

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 3:
            raise ValueError(
                f"LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got {getattr(x, 'shape', x)!r}"
            )
        if x.dtype.kind != "f":
            raise TypeError(f"LocalResponseNorm: input must be float32/float64, got dtype {x.dtype}")
        n = self.size
        base = self.k + (self.alpha / n) * _channel_window_sum(x * x, n // 2, (n - 1) // 2)
        scale = base ** (-self.beta)
        self._cache = (x, base, scale)
        return self._keep_output(x * scale)

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x, base, scale = self._cache
        self._cache = None
        n = self.size
        inner = dy * x * scale / base  # dy_c a_c D_c^{-β-1}
        spread = _channel_window_sum(inner, (n - 1) // 2, n // 2)  # Σ over the windows that contain j
        return dy * scale - (2.0 * self.alpha * self.beta / n) * x * spread

    def _clear_cache(self):
        self._cache = None

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LayerNorm2d(Module):
    """Layer normalisation over the channels of each pixel: ``y = γ (x - μ) / sqrt(σ² + ε) + β``.

    ConvNeXt's normalisation (deck 000_5f24bd8423292174.txt, "Bloques
    ConvNeXt"; Liu et al., 2022): ``μ`` and ``σ²`` (biased) are taken over
    the ``C`` channels at every ``(n, h, w)``, with per-channel ``γ``, ``β``.
    """

    def __init__(self, num_channels, eps=1e-6, *, dtype=np.float32):
        super().__init__()
        self.num_channels = _positive_int("LayerNorm2d", "num_channels", num_channels)
        self.eps = _number("LayerNorm2d", "eps", eps, lambda v: v > 0, "> 0")
        dtype = _float_dtype("LayerNorm2d", dtype)
        self.weight = Parameter(np.ones(self.num_channels, dtype=dtype), "weight")
        self.bias = Parameter(np.zeros(self.num_channels, dtype=dtype), "bias")
        self._cache = None

    def _check(self, shape):
        shape = _check_shape_ndim("LayerNorm2d", shape, 4, "(N, C, H, W)")
        _check_channels("LayerNorm2d", shape, self.num_channels, "num_channels")
        return shape

    def forward(self, x):
        _check_array("LayerNorm2d", x, 4, "(N, C, H, W)")
        self._check(x.shape)
        _check_dtype("LayerNorm2d", x, self.weight.data)
        xp = array_module(x)
        centred = x - x.mean(axis=1, keepdims=True)
        inv_std = 1.0 / xp.sqrt((centred * centred).mean(axis=1, keepdims=True) + self.eps)
        x_hat = centred * inv_std
        self._cache = (x_hat, inv_std)
        return self._keep_output(x_hat * self.weight.data.reshape(1, -1, 1, 1) + self.bias.data.reshape(1, -1, 1, 1))

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x_hat, inv_std = self._cache
        self._cache = None
        self.weight.grad += (dy * x_hat).sum(axis=(0, 2, 3))
        self.bias.grad += dy.sum(axis=(0, 2, 3))
        g = dy * self.weight.data.reshape(1, -1, 1, 1)
        return inv_std * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))

    def _clear_cache(self):
        self._cache = None

    def output_shape(self, input_shape):
        return self._check(input_shape)

    def extra_repr(self):
        return f"{self.num_channels}, eps={self.eps}"


class LayerScale(Module):
    """A learned per-channel scale ``y = γ_c x_c``: ConvNeXt multiplies each residual branch by it (``γ`` starts at 1e-6)."""

    def __init__(self, channels, init_value=1e-6, *, dtype=np.float32):
        super().__init__()
        self.channels = _positive_int("LayerScale", "channels", channels)
        init_value = _number("LayerScale", "init_value", init_value)
        dtype = _float_dtype("LayerScale", dtype)
        self.weight = Parameter(np.full(self.channels, init_value, dtype=dtype), "weight")
        self._x = None

    def forward(self, x):
        _check_array("LayerScale", x, 4, "(N, C, H, W)")
        _check_channels("LayerScale", tuple(x.shape), self.channels, "channels")
        self._x = x
        return self._keep_output(x * self.weight.data.reshape(1, -1, 1, 1))

    def backward(self, dy):
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        self._x = None
        self.weight.grad += (dy * x).sum(axis=(0, 2, 3))
        return dy * self.weight.data.reshape(1, -1, 1, 1)

    def _clear_cache(self):
        self._x = None

    def output_shape(self, input_shape):
        shape = _check_shape_ndim("LayerScale", input_shape, 4, "(N, C, H, W)")
        _check_channels("LayerScale", shape, self.channels, "channels")
        return shape


# ---------------------------------------------------- squeeze and excitation
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
        self.channels = _positive_int("SqueezeExcitation", "channels", channels)
        self.squeeze_channels = _positive_int("SqueezeExcitation", "squeeze_channels", squeeze_channels)
        if not (isinstance(activation, type) and issubclass(activation, Module)):
            raise TypeError(
                f"SqueezeExcitation: activation must be a layer class such as nn.ReLU or nn.SiLU (not an instance "
                f"or a name), got {type(activation).__name__} {activation!r}"
            )
        rng = _make_rng("SqueezeExcitation", rng)
        self.pool = GlobalAvgPool2d()
        self.fc1 = Conv2d(self.channels, self.squeeze_channels, 1, init=init, rng=rng, dtype=dtype)
        self.activation = activation()
        self.fc2 = Conv2d(self.squeeze_channels, self.channels, 1, init=init, rng=rng, dtype=dtype)
        self.gate = Sigmoid()
        self._steps = (self.pool, self.fc1, self.activation, self.fc2, self.gate)
        self._cache = None

    def forward(self, x):
        _check_array("SqueezeExcitation", x, 4, "(N, C, H, W)")
        _check_channels("SqueezeExcitation", tuple(x.shape), self.channels, "channels")
        s = x
        for step in self._steps:
            s = step.forward(s)
        self._cache = (x, s)
        return self._keep_output(x * s)

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x, s = self._cache
        self._cache = None
        ds = (dy * x).sum(axis=(2, 3), keepdims=True)
        for step in reversed(self._steps):
            ds = step.backward(ds)
        return dy * s + ds

    def _clear_cache(self):
        self._cache = None

    def output_shape(self, input_shape):
        shape = _check_shape_ndim("SqueezeExcitation", input_shape, 4, "(N, C, H, W)")
        _check_channels("SqueezeExcitation", shape, self.channels, "channels")
        return shape

    def macs(self, input_shape):
        squeezed = (int(input_shape[0]), self.channels, 1, 1)
        return self.fc1.macs(squeezed) + self.fc2.macs(self.fc1.output_shape(squeezed))

    def extra_repr(self):
        return f"{self.channels}, squeeze_channels={self.squeeze_channels}"
