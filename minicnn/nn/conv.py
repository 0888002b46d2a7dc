"""Convolution layers: ``Conv2d`` and its variants, each composed from the primitives of ``minicnn.functional``.

Deck 000_5f24bd8423292174.txt ("Variantes de capas convolucionales") walks
through the variants; every one is built here from ``conv2d``, its gradients
(``conv2d_grad``, or one gradient alone: ``conv2d_input_grad``,
``conv2d_weight_grad``), so every backend has them from its first day:

* ``Conv2d`` (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : CONV:C1");
  grouped and dilated convolutions are its ``groups`` and ``dilation``;
* ``DepthwiseConv2d``, ``PointwiseConv2d`` and ``SeparableConv2d``
  ("Convolución en profundidad", "Convolución puntual (de 1x1)",
  "Convolución separable en profundidad", "Convolución espacial separable");
* ``ConvTranspose2d`` ("Convolución transpuesta"), the adjoint of ``Conv2d``;
* ``Conv1d`` and ``Conv3d`` ("Redes convolucionales 1D", "... 3D").

Weights stay in the input's dtype and on its device; ``output_shape`` and
``macs`` answer from ``minicnn.shapes`` without computing anything.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import shapes
from ..backends import backend_for_array
from .checks import (
    boolean,
    check_array,
    check_channels,
    check_dtype,
    check_groups,
    check_shape_ndim,
    float_dtype,
    initializer,
    make_rng,
    output_sizes,
    positive_int,
    spatial_args,
    tuple_arg,
)
from .init import zeros
from .module import Module, Parameter, array_module

__all__ = ["Conv2d", "DepthwiseConv2d", "PointwiseConv2d", "SeparableConv2d", "ConvTranspose2d", "Conv1d", "Conv3d"]


# -------------------------------------------------------------- convolution
class Conv2d(Module):
    """2-D convolution layer: ``A_i = w_i * I + b_i`` for each of ``out_channels`` filters.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : CONV:C1"
    (computed, as every framework does, as a cross-correlation; deck
    003_7c437a475fa69432.txt, "PESOS COMPARTIDOS"). Output size
    ``(H + 2P - D*(F-1) - 1)//S + 1`` (deck 003, "CAPA CONVOLUCIONAL:
    HIPERPARÁMETROS"); parameters ``C_out*(C_in/groups)*F_H*F_W + C_out``
    (deck 002: C1 has ``25*6 + 6 = 156``).

    Backward (deck 002, "Aprendizaje: Backpropagation", eq. 2):
    ``∇W_k = Σ_i a_i * rot90(δ_k, 2)``, ``∇b_k = Σ_{a,b} (δ_k)_{a,b}``, and the
    error goes back through the transposed filters.

    Weights ``(C_out, C_in/groups, F_H, F_W)`` start from ``init`` (He uniform
    by default, see ``minicnn.nn.init``), biases from zero; ``rng`` (a NumPy
    ``Generator`` or a seed) makes them reproducible.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        *,
        init="kaiming_uniform",
        rng=None,
        dtype=np.float32,
    ):
        super().__init__()
        name = type(self).__name__
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = positive_int(name, "groups", groups)
        check_groups(name, self.in_channels, self.out_channels, self.groups)
        self.kernel_size, self.stride, self.dilation = spatial_args(
            name, kernel_size=(kernel_size, 1), stride=(stride, 1), dilation=(dilation, 1)
        )
        self.padding = _conv_padding(name, padding, self.kernel_size, self.stride, self.dilation)
        bias, dtype, init = boolean(name, "bias", bias), float_dtype(name, dtype), initializer(name, init)
        rng = make_rng(name, rng)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None
        self._plan = None
        self._plan_for = None

    def _check_input_shape(self, shape):
        shape = check_shape_ndim("Conv2d", shape, 4, "(N, C_in, H, W)")
        check_channels("Conv2d", shape, self.in_channels)
        return shape

    def forward(self, x):
        check_array("Conv2d", x, 4, "(N, C_in, H, W)")
        self._check_input_shape(x.shape)
        check_dtype("Conv2d", x, self.weight.data)
        b = None if self.bias is None else self.bias.data
        args = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        # the kernel plan chosen for this input goes with it to the backward pass, which never decides again
        backend = backend_for_array(x).name
        if self._plan_for != (x.shape, self.weight.data.shape, x.dtype, backend):
            self._plan = F.conv2d_plan(x.shape, self.weight.shape, dtype=x.dtype, **args, backend=backend)
            self._plan_for = (x.shape, self.weight.data.shape, x.dtype, backend)
        y = F.conv2d(x, self.weight.data, b, plan=self._plan, **args)
        self.save(x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        """``dx`` (None with ``need_dx=False``, which skips its cost); adds ``∇W``, ``∇b`` to the ``.grad``."""
        (x,) = self.saved(dy)
        dx, dw, db = F.conv2d_grad(
            x,
            self.weight.data,
            dy,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            input_grad=need_dx,
            plan=self._plan,
        )
        self.add_grads(weight=dw, bias=db)
        return dx

    def output_shape(self, input_shape):
        shape = self._check_input_shape(input_shape)
        padding, extra = shapes.conv2d_padding(self.padding, self.kernel_size, self.stride, self.dilation)
        if extra is not None:
            left, right, top, bottom = extra
            shape = (shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right)
        out = shapes.conv2d_output_shape(shape, self.weight.shape, self.stride, padding, self.dilation)
        if min(out[2:]) < 1:
            raise ValueError(
                f"Conv2d: input {shape} is too small for kernel {self.kernel_size} (dilation {self.dilation}, "
                f"padding {self.padding}, stride {self.stride}): output (H + 2P - D*(F-1) - 1)//S + 1 gives {out[2:]}"
            )
        return out

    def macs(self, input_shape):
        out = self.output_shape(input_shape)
        per_sample = shapes.conv2d_macs(self.in_channels, self.out_channels, self.kernel_size, out[2:], self.groups)
        return out[0] * per_sample

    def num_parameters(self):
        return shapes.conv2d_params(
            self.in_channels, self.out_channels, self.kernel_size, self.groups, self.bias is not None
        )

    def extra_repr(self):
        return _conv_repr(self) + (", bias=False" if self.bias is None else "")


def _conv_padding(name, padding, kernel_size, stride, dilation):
    """A convolution layer's ``padding``: an ``(h, w)`` pair, or as given when it is ``"same"``, ``"valid"`` or
    four F.pad ints ``(left, right, top, bottom)`` (checked here by ``shapes.conv2d_padding``)."""
    if isinstance(padding, str) or (isinstance(padding, (tuple, list)) and len(padding) == 4):
        shapes.conv2d_padding(padding, kernel_size, stride, dilation, fn=name)
        return padding if isinstance(padding, str) else tuple(int(p) for p in padding)
    (pair,) = spatial_args(name, padding=(padding, 0))
    return pair


def _conv_repr(layer, extra=()):
    """``"C_in, C_out, kernel_size=..., stride=..."`` and every other hyper-parameter that is not its default."""
    text = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    for name, default in (("padding", (0, 0)), *extra, ("dilation", (1, 1)), ("groups", 1)):
        value = getattr(layer, name)
        if value != default:
            text += f", {name}={value}"
    return text


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
        channels = positive_int("DepthwiseConv2d", "channels", channels)
        multiplier = positive_int("DepthwiseConv2d", "depth_multiplier", depth_multiplier)
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
        self.in_channels = positive_int("SeparableConv2d", "in_channels", in_channels)
        self.out_channels = positive_int("SeparableConv2d", "out_channels", out_channels)
        name = "SeparableConv2d"
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = spatial_args(
            name, kernel_size=(kernel_size, 1), stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1)
        )
        self.kernel_size = (kh, kw)
        bias, dtype, init = boolean(name, "bias", bias), float_dtype(name, dtype), initializer(name, init)
        rng = make_rng(name, rng)
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

    def backward(self, dy, *, need_dx=True):
        self._check_dy(dy)
        first, second = self._passes
        return first.backward(second.backward(dy), need_dx=need_dx)

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


class ConvTranspose2d(Module):
    """Transposed convolution: the adjoint of ``Conv2d``, ``<conv(x), y> = <x, conv_transpose(y)>``.

    Deck 000_5f24bd8423292174.txt, "Convolución transpuesta (1)" and "(2)":
    each input pixel spreads a copy of the kernel, scaled by its value, over
    the output, ``S`` pixels apart; overlaps add. That is exactly the
    input-gradient path of a convolution, so ``forward`` *is*
    ``conv2d_input_grad`` (for a convolution from this layer's output space
    to its input space, whose weight this layer holds), and ``backward`` is
    ``conv2d`` for ``dx`` plus ``conv2d_weight_grad`` for the weight gradient,
    computed together by ``conv2d_and_weight_grad`` (both read the same
    receptive fields of ``dy``): each computes only what it is asked for.

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
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = positive_int(name, "groups", groups)
        check_groups(name, self.in_channels, self.out_channels, self.groups)
        self.kernel_size = tuple_arg(name, "kernel_size", kernel_size, 2, 1)
        self.stride = tuple_arg(name, "stride", stride, 2, 1)
        self.padding = tuple_arg(name, "padding", padding, 2, 0)
        self.output_padding = tuple_arg(name, "output_padding", output_padding, 2, 0)
        self.dilation = tuple_arg(name, "dilation", dilation, 2, 1)
        for axis, op, s, d in zip(("height", "width"), self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(
                    f"{name}: output_padding must be smaller than the stride or the dilation; along {axis} "
                    f"output_padding={op} but stride={s} and dilation={d}"
                )
        bias, dtype, init = boolean(name, "bias", bias), float_dtype(name, dtype), initializer(name, init)
        rng = make_rng(name, rng)
        shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None

    def _conv_args(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def output_shape(self, input_shape):
        n, c, h, w = check_shape_ndim("ConvTranspose2d", input_shape, 4, "(N, C_in, H, W)")
        check_channels("ConvTranspose2d", (n, c, h, w), self.in_channels)
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
        check_array("ConvTranspose2d", x, 4, "(N, C_in, H, W)")
        check_dtype("ConvTranspose2d", x, self.weight.data)
        out_shape = self.output_shape(x.shape)
        xp = array_module(x)
        # With output_padding >= stride (allowed when < dilation), the convolution of the output has more
        # positions than x: the extra ones carry zeros.
        hh, ww = self._adjoint_input_hw(out_shape[2:])
        h, w = x.shape[2:]
        x_full = xp.pad(x, ((0, 0), (0, 0), (0, hh - h), (0, ww - w))) if (hh, ww) != (h, w) else x
        y = F.conv2d_input_grad(out_shape, self.weight.data, x_full, **self._conv_args())
        if self.bias is not None:
            y += self.bias.data.reshape(1, -1, 1, 1)
        self.save(x_full, (h, w))
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        x_full, (h, w) = self.saved(dy)
        # y = A_W^T x, so <dy, y> = <conv(dy, W), x>: its W-gradient is the convolution's dW with "upstream" x,
        # and dx = conv(dy, W) reads the same receptive fields of dy (one pass for both: conv2d_and_weight_grad).
        if need_dx:
            dx, dw, _ = F.conv2d_and_weight_grad(dy, self.weight.data, x_full, **self._conv_args())
        else:
            dx, (dw, _) = None, F.conv2d_weight_grad(dy, self.weight.shape, x_full, **self._conv_args())
        self.add_grads(weight=dw, bias=dy.sum(axis=(0, 2, 3)))
        if dx is None:
            return None
        dx = dx[:, :, :h, :w]
        return array_module(dx).ascontiguousarray(dx)

    def macs(self, input_shape):
        self.output_shape(input_shape)  # the same checks: rank, channels, an output of at least one pixel
        n, c, h, w = input_shape
        # Every input pixel meets every tap of its group's filters once.
        return n * h * w * shapes.conv2d_params(self.in_channels, self.out_channels, self.kernel_size, self.groups, False)

    def extra_repr(self):
        return _conv_repr(self, (("output_padding", (0, 0)),))


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
        self.in_channels = positive_int(name, "in_channels", in_channels)
        self.out_channels = positive_int(name, "out_channels", out_channels)
        self.groups = positive_int(name, "groups", groups)
        check_groups(name, self.in_channels, self.out_channels, self.groups)
        self.kernel_size = tuple_arg(name, "kernel_size", kernel_size, dims, 1)
        self.stride = tuple_arg(name, "stride", stride, dims, 1)
        self.padding = tuple_arg(name, "padding", padding, dims, 0)
        self.dilation = tuple_arg(name, "dilation", dilation, dims, 1)
        bias, dtype, init = boolean(name, "bias", bias), float_dtype(name, dtype), initializer(name, init)
        rng = make_rng(name, rng)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None

    def output_shape(self, input_shape):
        shape = check_shape_ndim(self._name, input_shape, self._dims + 2, self._layout)
        check_channels(self._name, shape, self.in_channels)
        sizes = output_sizes(self._name, shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        return (shape[0], self.out_channels, *sizes)

    def macs(self, input_shape):
        out = self.output_shape(input_shape)
        per_output = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        return math.prod(out) * per_output

    def _check_input(self, x):
        check_array(self._name, x, self._dims + 2, self._layout)
        check_channels(self._name, tuple(x.shape), self.in_channels)
        check_dtype(self._name, x, self.weight.data)
        return self.output_shape(x.shape)

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
        self.save(x)
        return self._keep_output(y[:, :, 0, :])

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        dx, dw, db = F.conv2d_grad(x[:, :, None, :], self.weight.data[:, :, None, :], dy[:, :, None, :],
                                   input_grad=need_dx, **self._args())
        self.add_grads(weight=dw[:, :, 0, :], bias=db)
        return None if dx is None else dx[:, :, 0, :]


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
        self.save(x_pad, x.shape)
        return self._keep_output(xp.ascontiguousarray(y))

    def backward(self, dy, *, need_dx=True):
        x_pad, x_shape = self.saved(dy)
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
        self.add_grads(weight=dw, bias=dy.sum(axis=(0, 2, 3, 4)))
        if not need_dx:
            return None
        p = self.padding[0]
        return xp.ascontiguousarray(dx_pad[:, :, p : p + x_shape[2]])
