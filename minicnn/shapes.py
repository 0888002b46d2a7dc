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

Beyond the decks, pooling follows ``torch.nn.functional``: with
``ceil_mode`` the division rounds up, ``ceil((H + P_0 + P_1 - D*(F - 1) - 1)/S) + 1``,
less one when that last window would start past the input and its leading
padding (``(H_out - 1)*S >= H + P_0``); ``P_0``, ``P_1`` are the padding
before and after (asymmetric padding is F.pad's four numbers). A convolution's
``padding="same"`` is ``D*(F - 1)`` pixels per axis, half before and the odd
one after (``conv2d_padding``); ``pad_output_shape`` is F.pad's.

The formula functions take plain ints and do not validate. The two geometry
builders, ``conv2d_geometry`` and ``pool2d_geometry``, do: they check the
hyper-parameters once, raise the errors that name the formula and the numbers,
and return a frozen record (``ConvGeometry``, ``PoolGeometry``) that
``minicnn.functional`` hands to every backend and kernel wrapper, so no other
module computes an output size again.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

__all__ = [
    "pair",
    "parse_shape",
    "dilated_extent",
    "conv_output_size",
    "pool_output_size",
    "conv_transpose_output_size",
    "conv2d_output_shape",
    "ConvGeometry",
    "conv2d_geometry",
    "PoolGeometry",
    "pool2d_geometry",
    "pool2d_output_shape",
    "pad_pairs",
    "pad_output_shape",
    "conv2d_padding",
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


def checked_bool(fn, name, flag):
    """``flag`` as a Python bool: True or False (NumPy's ``np.True_``/``np.False_`` too), nothing else."""
    import numpy as np

    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"{fn}: {name} must be a bool, got {type(flag).__name__} {flag!r}")
    return bool(flag)


def _is_integer_scalar(value):
    # NumPy integer scalars (np.int64(3)) are accepted as ints.
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a hard dependency
        return False
    return isinstance(value, np.integer)


def parse_shape(text, name="shape"):
    """``"64x6x14x14"`` (or ``"64,6,14,14"``) -> ``(64, 6, 14, 14)``, with a clear error for anything else."""
    parts = str(text).replace(",", "x").replace("*", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"{name} must be sizes joined by 'x', e.g. 64x6x14x14, got {text!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} must have sizes >= 0, got {text!r}")
    return dims


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


def pool_output_size(size, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, padding_end=None):
    """Output length of pooling along one axis: ``floor((H + 2P - D*(F-1) - 1)/S) + 1``.

    Deck 003_7c437a475fa69432.txt, slide "CAPA DE SUBMUESTREO O DECIMACIÓN"
    (there with D = 1: ``floor((H + 2P - F)/S) + 1``). ``stride=None`` means
    the window size (non-overlapping pooling).

    Beyond the deck, as ``torch.nn.functional`` computes it:
    ``padding_end`` (default ``padding``) is the padding after the input
    (asymmetric padding ``P_0 + P_1`` replaces ``2P``); ``ceil_mode=True``
    rounds up instead of down, so a partial window at the end is kept, except
    that the last window must start inside the input or the leading padding:
    if ``(H_out - 1)*S >= H + P_0`` that window is dropped (it would hold
    only trailing padding).
    """
    if stride is None:
        stride = kernel
    end = padding if padding_end is None else padding_end
    span = size + padding + end - dilated_extent(kernel, dilation)
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


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


def pool2d_output_shape(input_shape, kernel_size, stride=None, padding=0, *, dilation=1, ceil_mode=False):
    """``(N, C, H_out, W_out)`` of 2-D pooling for an NCHW input (``padding`` may be F.pad's
    ``(left, right, top, bottom)``)."""
    n, c, h, w = input_shape
    kh, kw = pair(kernel_size, "kernel_size")
    sh, sw = pair(kernel_size if stride is None else stride, "stride")
    (ph, pw), (eh, ew) = pad_pairs(padding)
    dh, dw = pair(dilation, "dilation")
    return (n, c, pool_output_size(h, kh, sh, ph, dh, ceil_mode, eh), pool_output_size(w, kw, sw, pw, dw, ceil_mode, ew))


def pad_pairs(padding, name="padding"):
    """``padding`` as ``((top, left), (bottom, right))``: the padding before and after the two spatial axes.

    An int or an ``(h, w)`` pair pads both sides alike; four ints are
    ``F.pad``'s order for the last two axes, ``(left, right, top, bottom)``.
    """
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        values = []
        for v in padding:
            if isinstance(v, bool) or not (isinstance(v, int) or _is_integer_scalar(v)):
                raise TypeError(f"{name} must be an int, a pair (h, w) or 4 ints (left, right, top, bottom), got {padding!r}")
            values.append(int(v))
        left, right, top, bottom = values
        return (top, left), (bottom, right)
    both = pair(padding, name)
    return both, both


def conv2d_padding(padding, kernel_size, stride=1, dilation=1, fn="conv2d"):
    """A convolution's ``padding`` as ``(symmetric, extra)``: the ``(h, w)`` padding every kernel takes,
    and the F.pad amounts ``(left, right, top, bottom)`` to add first (``None`` when there are none).

    ``padding`` is an int or an ``(h, w)`` pair (symmetric), four ints in
    F.pad's order ``(left, right, top, bottom)``, ``"valid"`` (no padding)
    or ``"same"`` (output size = input size, stride 1 only, as in PyTorch:
    ``D*(F-1)`` pixels per axis, half before, the odd one after).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), None
        if padding != "same":
            raise ValueError(f"{fn}: padding must be an int, a pair, 4 ints, 'same' or 'valid', got {padding!r}")
        stride = _checked_pair(fn, "stride", stride, 1)
        if stride != (1, 1):
            raise ValueError(
                f"{fn}: padding='same' is not supported for strided convolutions (stride={stride}), as in PyTorch: "
                f"with stride S the output is ceil(H/S), not H; give the padding as numbers"
            )
        kernel = _checked_pair(fn, "kernel_size", kernel_size, 1)
        dilation = _checked_pair(fn, "dilation", dilation, 1)
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        begin = (totals[0] // 2, totals[1] // 2)
        extra = (0, totals[1] - 2 * begin[1], 0, totals[0] - 2 * begin[0])
        return begin, (extra if any(extra) else None)
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        try:
            (top, left), (bottom, right) = pad_pairs(padding)
        except TypeError as exc:
            raise TypeError(f"{fn}: {exc}") from None
        if min(top, left, bottom, right) < 0:
            raise ValueError(f"{fn}: padding must be >= 0 on every side, got (left, right, top, bottom) = {tuple(padding)}")
        both = (min(top, bottom), min(left, right))
        extra = (left - both[1], right - both[1], top - both[0], bottom - both[0])
        return both, (extra if any(extra) else None)
    return _checked_pair(fn, "padding", padding, 0), None


def pad_output_shape(shape, pad, fn="pad"):
    """Shape after ``F.pad(x, pad)``: ``pad = (before_last, after_last, before_2nd_last, ...)`` adds to the last
    axes (negative amounts crop, in constant mode); an axis that would shrink below 0 is an error."""
    shape = tuple(int(s) for s in shape)
    if len(pad) % 2 or len(pad) // 2 > len(shape):
        raise ValueError(
            f"{fn}: pad must have an even length of at most 2*ndim = {2 * len(shape)} (pairs for the last axes, "
            f"last axis first), got {len(pad)} values for an input of shape {shape}"
        )
    out = list(shape)
    for k in range(len(pad) // 2):
        axis = len(shape) - 1 - k
        out[axis] = shape[axis] + pad[2 * k] + pad[2 * k + 1]
        if out[axis] < 0:
            raise ValueError(
                f"{fn}: axis {axis} would have size {shape[axis]} + {pad[2 * k]} + {pad[2 * k + 1]} = {out[axis]} < 0"
            )
    return tuple(out)


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


# ------------------------------------------------------------------ geometries
@dataclass(frozen=True)
class ConvGeometry:
    """Everything about one 2-D convolution call but the numbers in its arrays.

    Sizes of the input ``(n, c, h, w)``, the filters ``(o, c // groups, kh, kw)``
    and the output ``(n, o, oh, ow)``, with the hyper-parameters as ``(h, w)``
    pairs. Built and checked once by ``conv2d_geometry``; backends, kernel
    plans and kernel wrappers read it and never recompute the output size.
    """

    n: int
    c: int
    h: int
    w: int
    o: int
    kh: int
    kw: int
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    oh: int
    ow: int

    @property
    def c_per_group(self):
        return self.c // self.groups

    @property
    def o_per_group(self):
        return self.o // self.groups

    @property
    def k(self):
        """Terms of one output's sum: ``K = (C_in/groups)*F_H*F_W`` (a row of the im2col product)."""
        return self.c_per_group * self.kh * self.kw

    @property
    def taps(self):
        return self.kh * self.kw

    @property
    def positions(self):
        """Output pixels per map, ``H_out*W_out``."""
        return self.oh * self.ow

    @property
    def macs(self):
        """Multiply-adds of the forward pass for the whole batch (each gradient costs as much)."""
        return self.n * self.o * self.positions * self.k

    @property
    def stride1(self):
        """Stride 1, no dilation, one group: a correlation the direct kernels can run (padding aside)."""
        return self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1

    @property
    def plain(self):
        """Stride 1, no padding, no dilation, one group: a "valid" correlation."""
        return self.stride1 and self.padding == (0, 0)

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self):
        return (self.o, self.c_per_group, self.kh, self.kw)

    @property
    def y_shape(self):
        return (self.n, self.o, self.oh, self.ow)

    @property
    def hyper(self):
        """``(stride, padding, dilation, groups)``, the positional form the older helpers take."""
        return self.stride, self.padding, self.dilation, self.groups

    def with_batch(self, n):
        """The same layer on a batch of ``n`` images."""
        return ConvGeometry(n, self.c, self.h, self.w, self.o, self.kh, self.kw, self.stride, self.padding,
                            self.dilation, self.groups, self.oh, self.ow)

    def describe(self):
        """``"x 64x6x14x14, w 16x6x5x5"`` plus the hyper-parameters that are not the defaults."""
        text = "x " + "x".join(map(str, self.x_shape)) + ", w " + "x".join(map(str, self.w_shape))
        for name, value, default in (("stride", self.stride, (1, 1)), ("padding", self.padding, (0, 0)),
                                     ("dilation", self.dilation, (1, 1))):
            if value != default:
                text += f", {name} {value[0]}" if value[0] == value[1] else f", {name} {value}"
        if self.groups != 1:
            text += f", groups {self.groups}"
        return text


def _checked_pair(fn, name, value, minimum):
    try:
        checked = pair(value, name)
    except TypeError as exc:
        raise TypeError(f"{fn}: {exc}") from None
    if min(checked) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum} along both axes, got {name}={value!r}")
    return checked


def _checked_int(fn, name, value, minimum):
    if isinstance(value, bool) or not (isinstance(value, int) or _is_integer_scalar(value)):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def conv2d_geometry(x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1, fn="conv2d"):
    """Check a convolution's shapes and hyper-parameters; return its ``ConvGeometry``.

    ``x_shape`` is NCHW, ``w_shape`` OIHW. The output size per axis is
    ``floor((H + 2P - D*(F-1) - 1)/S) + 1`` (deck 003_7c437a475fa69432.txt,
    "CAPA CONVOLUCIONAL: HIPERPARÁMETROS", with dilation as in deck 000,
    "CONVOLUCIÓN DILATADA"). Errors name ``fn``, the argument, the formula and
    the numbers.
    """
    stride = _checked_pair(fn, "stride", stride, 1)
    padding = _checked_pair(fn, "padding", padding, 0)
    dilation = _checked_pair(fn, "dilation", dilation, 1)
    groups = _checked_int(fn, "groups", groups, 1)
    n, c_in, h, wd = (int(v) for v in x_shape)
    c_out, c_per_group, kh, kw = (int(v) for v in w_shape)
    if min(c_in, h, wd) < 1:
        raise ValueError(f"{fn}: x must have C_in, H, W >= 1, got shape {tuple(x_shape)}")
    if min(c_out, c_per_group, kh, kw) < 1:
        raise ValueError(f"{fn}: w must have every dimension >= 1, got shape {tuple(w_shape)}")
    if c_in % groups:
        raise ValueError(f"{fn}: input channels C_in={c_in} are not divisible by groups={groups}")
    if c_out % groups:
        raise ValueError(f"{fn}: output channels C_out={c_out} (w.shape[0]) are not divisible by groups={groups}")
    if c_per_group * groups != c_in:
        raise ValueError(
            f"{fn}: channel mismatch: w.shape[1]={c_per_group} must equal C_in/groups = {c_in}/{groups} = "
            f"{c_in // groups} (x has C_in={c_in})"
        )
    out_hw = []
    for axis, size, k, s, p, d in (
        ("height", h, kh, stride[0], padding[0], dilation[0]),
        ("width", wd, kw, stride[1], padding[1], dilation[1]),
    ):
        out = conv_output_size(size, k, s, p, d)
        if out < 1:
            raise ValueError(
                f"{fn}: output {axis} ({size} + 2*{p} - {d}*({k}-1) - 1)//{s} + 1 = {out} < 1: the kernel "
                f"spans {dilated_extent(k, d)} pixels (dilation {d}) but the padded input {axis} is {size + 2 * p}"
            )
        out_hw.append(out)
    return ConvGeometry(n, c_in, h, wd, c_out, kh, kw, stride, padding, dilation, groups, out_hw[0], out_hw[1])


@dataclass(frozen=True)
class PoolGeometry:
    """One 2-D pooling call: input ``(n, c, h, w)``, window, stride, padding, output ``(oh, ow)``.

    ``padding`` is the padding before each axis (top, left), the one every
    kernel reads: window ``(i, j)`` starts at ``(i*S_h - P_h, j*S_w - P_w)``
    and is clipped to the image. The options beyond the deck (as in
    ``torch.nn.functional``) only change which windows exist and what average
    pooling divides by: ``padding_end`` (bottom, right), ``dilation`` (max
    pooling: taps ``D`` pixels apart), ``ceil_mode`` (already in ``oh``,
    ``ow``), ``count_include_pad`` and ``divisor_override`` (average pooling).
    """

    n: int
    c: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    padding: tuple
    oh: int
    ow: int
    padding_end: tuple = None
    dilation: tuple = (1, 1)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int = None

    def __post_init__(self):
        if self.padding_end is None:
            object.__setattr__(self, "padding_end", self.padding)

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self):
        return (self.n, self.c, self.oh, self.ow)

    @property
    def window(self):
        """Pixels per window, ``F_H*F_W`` (the divisor of average pooling), as a Python int."""
        return self.kernel[0] * self.kernel[1]

    @property
    def hyper(self):
        return self.kernel, self.stride, self.padding

    @property
    def symmetric(self):
        """The deck's pooling: padding alike on both sides, no dilation, floor rounding."""
        return self.padding_end == self.padding and self.dilation == (1, 1) and not self.ceil_mode

    @property
    def plain_divisor(self):
        """Average pooling divides every window by ``F_H*F_W`` (every window lies inside the padded input)."""
        if self.divisor_override is not None:
            return False
        if not self.count_include_pad:
            return self.padding == (0, 0) and self.padding_end == (0, 0) and not self.ceil_mode
        return all(
            (out - 1) * s - p + k <= size + e
            for out, s, p, k, size, e in zip((self.oh, self.ow), self.stride, self.padding, self.kernel,
                                              (self.h, self.w), self.padding_end)
        )

    def divisor_factors(self):
        """Average pooling's divisor of window ``(i, j)`` as ``rows[i] * cols[j]`` (two lists of ints).

        ``count_include_pad=True``: the window clipped to the padded input
        ``[-P_0, H + P_1)``; ``False``: clipped to the image ``[0, H)`` (only
        real pixels count); ``divisor_override`` replaces both (``rows`` is
        then the override and ``cols`` ones). As ``torch.nn.functional.avg_pool2d``.
        """
        if self.divisor_override is not None:
            return [self.divisor_override] * self.oh, [1] * self.ow
        factors = []
        for out, s, p, k, size, e in zip((self.oh, self.ow), self.stride, self.padding, self.kernel,
                                          (self.h, self.w), self.padding_end):
            lo, hi = (-p, size + e) if self.count_include_pad else (0, size)
            factors.append([min(i * s - p + k, hi) - max(i * s - p, lo) for i in range(out)])
        return factors[0], factors[1]

    def describe(self):
        """``"x 1x3x7x7, kernel (3, 3), stride (2, 2)"`` plus the options that are not the defaults."""
        text = f"x {'x'.join(map(str, self.x_shape))}, kernel {self.kernel}, stride {self.stride}"
        for name, value, default in (("padding", self.padding, (0, 0)), ("padding_end", self.padding_end, self.padding),
                                     ("dilation", self.dilation, (1, 1)), ("ceil_mode", self.ceil_mode, False)):
            if value != default:
                text += f", {name} {value}"
        return text


def pool2d_geometry(x_shape, kernel_size, stride=None, padding=0, fn="max_pool2d", *, dilation=1, ceil_mode=False,
                    count_include_pad=True, divisor_override=None):
    """Check a pooling call's hyper-parameters; return its ``PoolGeometry``.

    ``H_out = floor((H + 2P - F)/S) + 1`` (deck 003_7c437a475fa69432.txt,
    "CAPA DE SUBMUESTREO O DECIMACIÓN"); ``stride=None`` means the window;
    padding may be at most half the window (as in PyTorch). ``padding`` may
    also be F.pad's four ``(left, right, top, bottom)``; ``dilation``,
    ``ceil_mode`` (see ``pool_output_size``), ``count_include_pad`` and
    ``divisor_override`` as in ``torch.nn.functional``.
    """
    kernel = _checked_pair(fn, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _checked_pair(fn, "stride", stride, 1)
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        try:
            begin, end = pad_pairs(padding)
        except TypeError as exc:
            raise TypeError(f"{fn}: {exc}") from None
        if min(*begin, *end) < 0:
            raise ValueError(f"{fn}: padding must be >= 0 on every side, got (left, right, top, bottom) = {tuple(padding)}")
    else:
        begin = end = _checked_pair(fn, "padding", padding, 0)
    dilation = _checked_pair(fn, "dilation", dilation, 1)
    ceil_mode = checked_bool(fn, "ceil_mode", ceil_mode)
    count_include_pad = checked_bool(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None:
        divisor_override = _checked_int(fn, "divisor_override", divisor_override, 1)
    n, c, h, w = (int(v) for v in x_shape)
    if min(c, h, w) < 1:
        raise ValueError(f"{fn}: x must have C, H, W >= 1, got shape {tuple(x_shape)}")
    out_hw = [_pool_axis(fn, axis, *args, ceil_mode) for axis, args in (
        ("height", (h, kernel[0], stride[0], begin[0], end[0], dilation[0])),
        ("width", (w, kernel[1], stride[1], begin[1], end[1], dilation[1])),
    )]
    return PoolGeometry(n, c, h, w, kernel, stride, begin, out_hw[0], out_hw[1], end, dilation, ceil_mode,
                        count_include_pad, divisor_override)


def _pool_axis(fn, axis, size, k, s, p, e, d, ceil_mode):
    """Check one axis of a pooling call and return its output length (see ``pool2d_geometry``)."""
    for side, pad in (("", p), (" after the input", e)):
        if pad > k // 2:
            raise ValueError(
                f"{fn}: padding{side} along {axis} must be at most half the window, padding <= kernel_size//2 = "
                f"{k}//2 = {k // 2}, got padding={pad}"
            )
    out = pool_output_size(size, k, s, p, d, ceil_mode, e)
    if out < 1 and p == e and d == 1 and not ceil_mode:
        raise ValueError(
            f"{fn}: output {axis} ({size} + 2*{p} - {k})//{s} + 1 = {out} < 1: the window ({k}) is larger "
            f"than the padded input {axis} ({size + 2 * p})"
        )
    if out < 1:
        rounding = "ceil" if ceil_mode else "floor"
        raise ValueError(
            f"{fn}: output {axis} {rounding}(({size} + {p} + {e} - {d}*({k}-1) - 1)/{s}) + 1 = {out} < 1: the "
            f"window spans {dilated_extent(k, d)} pixels but the padded input {axis} is {size + p + e}"
        )
    if d > 1:
        # a dilated window may straddle the image with every tap in the padding; PyTorch returns garbage there
        for i in range(out):
            start = i * s - p
            first = start if start >= 0 else start + -(-(-start) // d) * d
            if first >= size or first > start + d * (k - 1):
                raise ValueError(
                    f"{fn}: window {i} along {axis} has no tap on the image: taps {start} + {d}*[0, {k}) all lie in "
                    f"the padding of an input of {size} pixels; use less padding or dilation"
                )
    return out
