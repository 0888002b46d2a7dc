"""Output sizes, parameter counts and operation counts: the one home of the formulas.

Every other part of minicnn (argument checks, layers, models, ``minicnn summary``
and the spec tests) calls these functions instead of writing a formula again.

The output-size formula is the one on the slide "CAPA CONVOLUCIONAL:
HIPERPARÁMETROS" of deck 003_7c437a475fa69432.txt::

    H_out = (H_in + 2P - F_H) / S + 1

generalised to dilated kernels (deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN
DILATADA"; deck 004_d4430ea77d2b90c2.txt, "Convoluciones dilatadas"): a kernel
of F taps with dilation D spans D*(F - 1) + 1 pixels, and a stride that does
not divide evenly rounds down, as every framework does::

    H_out = floor((H_in + 2P - D*(F - 1) - 1) / S) + 1

These functions take plain ints; they do not validate. ``minicnn.functional``
checks the arguments and calls them.
"""

from __future__ import annotations

from math import prod

__all__ = [
    "pair",
    "dilated_extent",
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "conv2d_output_shape",
    "pool2d_output_shape",
    "conv2d_params",
    "linear_params",
    "conv2d_macs",
    "linear_macs",
    "separable_spatial_flops_per_output",
    "depthwise_separable_params",
]


def pair(value, name="value"):
    """Turn an int or a 2-sequence into an ``(h, w)`` tuple of ints.

    ``pair(3) == (3, 3)``, ``pair((3, 5)) == (3, 5)``. Raises ``TypeError`` for
    anything else (floats, bools, strings, sequences of another length).
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got bool {value!r}")
    if isinstance(value, int) or _is_integer_scalar(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise TypeError(
                f"{name} must be an int or a pair (h, w) of ints, got a sequence of length {len(value)}: {value!r}"
            )
        out = []
        for v in value:
            if isinstance(v, bool) or not (isinstance(v, int) or _is_integer_scalar(v)):
                raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
            out.append(int(v))
        return tuple(out)
    raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {type(value).__name__} {value!r}")


def _is_integer_scalar(value):
    # NumPy integer scalars (np.int64(3)) are accepted as ints.
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        return False
    return isinstance(value, np.integer)


def dilated_extent(kernel, dilation=1):
    """Pixels spanned by a kernel of ``kernel`` taps with holes of ``dilation - 1``.

    ``D*(F - 1) + 1``: a 3x3 kernel with rate 2 covers 5x5 with 9 parameters
    (deck 004_d4430ea77d2b90c2.txt, "Convoluciones dilatadas"; deck 000, "CONVOLUCIÓN DILATADA").
    """
    return dilation * (kernel - 1) + 1


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1):
    """Output length along one axis: ``floor((H + 2P - D*(F-1) - 1)/S) + 1``.

    Deck 003_7c437a475fa69432.txt, slide "CAPA CONVOLUCIONAL: HIPERPARÁMETROS"
    (there with D = 1, where ``D*(F-1) + 1 = F``). May return a value < 1 for
    an impossible configuration; callers decide what to do with it.
    """
    return (size + 2 * padding - dilated_extent(kernel, dilation)) // stride + 1


def pool_output_size(size, kernel, stride=None, padding=0):
    """Output length of pooling along one axis: ``floor((H + 2P - F)/S) + 1``.

    Deck 003_7c437a475fa69432.txt, slide "CAPA DE SUBMUESTREO O DECIMACIÓN".
    ``stride=None`` means the window size (non-overlapping pooling).
    """
    if stride is None:
        stride = kernel
    return conv_output_size(size, kernel, stride, padding, 1)


def conv_transpose_output_size(size, kernel, stride=1, padding=0, dilation=1, output_padding=0):
    """Output length of a transposed convolution along one axis.

    ``(H - 1)*S - 2P + D*(F - 1) + output_padding + 1``: the input length of the
    convolution whose adjoint it is (deck 000_5f24bd8423292174.txt,
    "CONVOLUCIÓN TRANSPUESTA (1)"). ``output_padding`` (< stride) picks among the
    input lengths that the stride maps to the same output length.
    """
    return (size - 1) * stride - 2 * padding + dilated_extent(kernel, dilation) + output_padding


def conv2d_output_shape(input_shape, weight_shape, stride=1, padding=0, dilation=1):
    """``(N, C_out, H_out, W_out)`` of ``conv2d`` for an NCHW input and OIHW weight."""
    n, _, h, w = input_shape
    c_out, _, kh, kw = weight_shape
    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    return (n, c_out, conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw))


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0):
    """``(N, C, H_out, W_out)`` of 2-D pooling for an NCHW input."""
    n, c, h, w = input_shape
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(kernel_size if stride is None else stride, "stride")
    ph, pw = pair(padding, "padding")
    return (n, c, pool_output_size(h, kh, sh, ph), pool_output_size(w, kw, sw, pw))


def conv2d_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Learnable parameters of a 2-D convolution: ``C_out*(C_in/groups)*F_H*F_W (+ C_out)``.

    LeNet-5's C1: ``6*1*5*5 + 6 = 156`` (deck 002_35ce60e4ae78ad9e.txt,
    "Arquitectura de la Red : CONV:C1").
    """
    kh, kw = pair(kernel_size, "kernel_size")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def linear_params(in_features, out_features, bias=True):
    """Learnable parameters of a fully connected layer: ``in*out (+ out)``."""
    return in_features * out_features + (out_features if bias else 0)


def conv2d_macs(in_channels, out_channels, kernel_size, output_hw, groups=1):
    """Multiply-accumulates of a 2-D convolution: ``H_out*W_out*C_out*(C_in/groups)*F_H*F_W``.

    This is the count the ResNet table of deck 001_4dad5adb3ac1e716.txt calls
    FLOPs (one multiply-add counted once). Multiply by 2 for floating-point
    operations counted one by one.
    """
    kh, kw = pair(kernel_size, "kernel_size")
    oh, ow = pair(output_hw, "output_hw")
    return oh * ow * out_channels * (in_channels // groups) * kh * kw


def linear_macs(in_features, out_features):
    """Multiply-accumulates of a fully connected layer: ``in*out``."""
    return in_features * out_features


def separable_spatial_flops_per_output(k):
    """Multiplies per output pixel of a k x k filter done directly and as two 1-D passes.

    Returns ``(k*k, 2*k)``: a rank-1 kernel ``w = u v^T`` applied as a column
    pass then a row pass (deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN ESPACIAL
    SEPARABLE": Sobel = [1,2,1]^T [-1,0,1]).
    """
    return (k * k, 2 * k)


def depthwise_separable_params(in_channels, out_channels, kernel_size, bias=False):
    """Parameters of a depthwise k x k convolution followed by a pointwise 1x1.

    ``C_in*F_H*F_W + C_in*C_out`` (plus ``C_in + C_out`` biases if ``bias``),
    against ``C_in*C_out*F_H*F_W`` for a standard convolution (deck
    000_5f24bd8423292174.txt, "CONVOLUCIÓN SEPARABLE EN PROFUNDIDAD").
    """
    depthwise = conv2d_params(in_channels, in_channels, kernel_size, groups=in_channels, bias=bias)
    pointwise = conv2d_params(in_channels, out_channels, 1, bias=bias)
    return depthwise + pointwise


def numel(shape):
    """Number of elements of an array of ``shape``."""
    return prod(shape)
