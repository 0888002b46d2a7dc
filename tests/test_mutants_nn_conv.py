"""Behaviour of minicnn/nn/conv.py (the convolution layers) that mutation testing (tools/mutation.py run nn) found
no test asserting; tests/test_mutants_nn.py holds the rest of nn/.

Each test asserts documented behaviour through the public API (the docstrings of minicnn/nn/conv.py), so it
stands on its own whatever mutmut later changes."""

import itertools
import re

import numpy as np
import pytest

from minicnn import nn
from minicnn.nn.init import get_initializer


def _raises(kind, message):
    """``pytest.raises`` for exactly this message (the user reads all of it, not a part)."""
    return pytest.raises(kind, match="^" + re.escape(message) + "$")


INIT_NAMES = ("['glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform', 'kaiming_normal', 'kaiming_uniform', "
              "'shape_only', 'xavier_normal', 'xavier_uniform'] or a callable (shape, rng, dtype) -> array, got 'nope'")
RNG = "rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got"
DTYPE = "dtype must be a floating-point type such as np.float32 or np.float64, got int32"


def _common(layer):
    """The checks every convolution constructor shares: (call, error, its whole message)."""
    return [
        (f"{layer}(0, 2, 3)", ValueError, f"{layer}: in_channels must be >= 1, got 0"),
        (f"{layer}(1.5, 2, 3)", TypeError, f"{layer}: in_channels must be an int, got float 1.5"),
        (f"{layer}(2, 0, 3)", ValueError, f"{layer}: out_channels must be >= 1, got 0"),
        (f"{layer}(2, 'a', 3)", TypeError, f"{layer}: out_channels must be an int, got str 'a'"),
        (f"{layer}(2, 2, 3, bias='x')", TypeError, f"{layer}: bias must be True or False, got str 'x'"),
        (f"{layer}(2, 2, 3, dtype=np.int32)", TypeError, f"{layer}: {DTYPE}"),
        (f"{layer}(2, 2, 3, init='nope')", ValueError, f"{layer}: init must be one of {INIT_NAMES}"),
        (f"{layer}(2, 2, 3, rng='x')", TypeError, f"{layer}: {RNG} str 'x'"),
        (f"{layer}(2, 2, 3, rng=True)", TypeError, f"{layer}: {RNG} bool True"),
    ]


def _grouped(layer):
    return [
        (f"{layer}(2, 2, 3, groups=0)", ValueError, f"{layer}: groups must be >= 1, got 0"),
        (f"{layer}(2, 2, 3, groups=True)", TypeError, f"{layer}: groups must be an int, got bool True"),
        (f"{layer}(3, 2, 3, groups=2)", ValueError,
         f"{layer}: in_channels=3 and out_channels=2 must both be divisible by groups=2"),
        (f"{layer}(2, 3, 3, groups=2)", ValueError,
         f"{layer}: in_channels=2 and out_channels=3 must both be divisible by groups=2"),
    ]


def _pairs(layer):
    """Conv2d-style (h, w) arguments (minicnn.nn.checks.spatial_args)."""
    return [
        (f"{layer}(2, 2, 0)", ValueError, f"{layer}: kernel_size must be >= 1 along both axes, got kernel_size=0"),
        (f"{layer}(2, 2, (3, 0))", ValueError, f"{layer}: kernel_size must be >= 1 along both axes, got kernel_size=(3, 0)"),
        (f"{layer}(2, 2, 'a')", TypeError, f"{layer}: kernel_size must be an int or a pair (h, w) of ints, got str 'a'"),
        (f"{layer}(2, 2, (1, 2, 3, 4, 5))", TypeError,
         f"{layer}: kernel_size must be an int or a pair (h, w) of ints, got a sequence of length 5: (1, 2, 3, 4, 5)"),
        (f"{layer}(2, 2, 3, stride=0)", ValueError, f"{layer}: stride must be >= 1 along both axes, got stride=0"),
        (f"{layer}(2, 2, 3, stride=(1, 0))", ValueError, f"{layer}: stride must be >= 1 along both axes, got stride=(1, 0)"),
        (f"{layer}(2, 2, 3, stride='s')", TypeError, f"{layer}: stride must be an int or a pair (h, w) of ints, got str 's'"),
        (f"{layer}(2, 2, 3, padding=-1)", ValueError, f"{layer}: padding must be >= 0 along both axes, got padding=-1"),
        (f"{layer}(2, 2, 3, padding=(0, -1))", ValueError,
         f"{layer}: padding must be >= 0 along both axes, got padding=(0, -1)"),
        (f"{layer}(2, 2, 3, dilation=0)", ValueError, f"{layer}: dilation must be >= 1 along both axes, got dilation=0"),
        (f"{layer}(2, 2, 3, dilation=(1, 0))", ValueError,
         f"{layer}: dilation must be >= 1 along both axes, got dilation=(1, 0)"),
        (f"{layer}(2, 2, 3, dilation=None)", TypeError,
         f"{layer}: dilation must be an int or a pair (h, w) of ints, got NoneType None"),
    ]


def _tuples(layer, n):
    """ConvTranspose2d/Conv1d/Conv3d arguments: an int or a tuple of n ints (minicnn.nn.checks.tuple_arg)."""
    zeros, minus = (0,) * n, (-1,) * n
    return [
        (f"{layer}(2, 2, 0)", ValueError, f"{layer}: kernel_size must be >= 1 along every axis, got kernel_size={zeros}"),
        (f"{layer}(2, 2, 'a')", TypeError, f"{layer}: kernel_size must be an int or a tuple of {n} ints, got 'a'"),
        (f"{layer}(2, 2, (1, 2, 3, 4, 5))", TypeError,
         f"{layer}: kernel_size must be an int or a tuple of {n} ints, got (1, 2, 3, 4, 5)"),
        (f"{layer}(2, 2, 3, stride=0)", ValueError, f"{layer}: stride must be >= 1 along every axis, got stride={zeros}"),
        (f"{layer}(2, 2, 3, stride='s')", TypeError, f"{layer}: stride must be an int or a tuple of {n} ints, got 's'"),
        (f"{layer}(2, 2, 3, padding=-1)", ValueError, f"{layer}: padding must be >= 0 along every axis, got padding={minus}"),
        (f"{layer}(2, 2, 3, padding='x')", TypeError, f"{layer}: padding must be an int or a tuple of {n} ints, got 'x'"),
        (f"{layer}(2, 2, 3, dilation=0)", ValueError, f"{layer}: dilation must be >= 1 along every axis, got dilation={zeros}"),
        (f"{layer}(2, 2, 3, dilation=None)", TypeError, f"{layer}: dilation must be an int or a tuple of {n} ints, got None"),
    ]


OUTPUT_PADDING = "ConvTranspose2d: output_padding must be smaller than the stride or the dilation; along"
#: (constructor call, error, its whole message): each convolution layer checks its hyper-parameters when it is built
#: and names itself, the argument and the value.
BAD_ARGUMENTS = [
    *_common("Conv2d"), *_grouped("Conv2d"), *_pairs("Conv2d"),
    ("Conv2d(2, 2, 3, padding='x')", ValueError, "Conv2d: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'x'"),
    ("Conv2d(2, 2, 3, padding=(1, 2, 3))", TypeError,
     "Conv2d: padding must be an int or a pair (h, w) of ints, got a sequence of length 3: (1, 2, 3)"),
    ("Conv2d(2, 2, 3, padding=(1, 2, 3, -1))", ValueError,
     "Conv2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (1, 2, 3, -1)"),
    ("Conv2d(2, 2, 3, padding=[1, 2, 3, -1])", ValueError,
     "Conv2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (1, 2, 3, -1)"),
    ("Conv2d(2, 2, 3, padding=(1, 1, 1, 'a'))", TypeError,
     "Conv2d: padding must be an int, a pair (h, w) or 4 ints (left, right, top, bottom), got (1, 1, 1, 'a')"),
    ("Conv2d(2, 2, 3, padding='same', stride=2)", ValueError,
     "Conv2d: padding='same' is not supported for strided convolutions (stride=(2, 2)), as in PyTorch: with stride S "
     "the output is ceil(H/S), not H; give the padding as numbers"),
    ("Conv2d(2, 2, 3, padding='same', stride=(1, 3))", ValueError,
     "Conv2d: padding='same' is not supported for strided convolutions (stride=(1, 3)), as in PyTorch: with stride S "
     "the output is ceil(H/S), not H; give the padding as numbers"),
    *_common("ConvTranspose2d"), *_grouped("ConvTranspose2d"), *_tuples("ConvTranspose2d", 2),
    ("ConvTranspose2d(2, 2, (3, 0))", ValueError,
     "ConvTranspose2d: kernel_size must be >= 1 along every axis, got kernel_size=(3, 0)"),
    ("ConvTranspose2d(2, 2, 3, stride=(1, 0))", ValueError,
     "ConvTranspose2d: stride must be >= 1 along every axis, got stride=(1, 0)"),
    ("ConvTranspose2d(2, 2, 3, padding=(0, -1))", ValueError,
     "ConvTranspose2d: padding must be >= 0 along every axis, got padding=(0, -1)"),
    ("ConvTranspose2d(2, 2, 3, dilation=(1, 0))", ValueError,
     "ConvTranspose2d: dilation must be >= 1 along every axis, got dilation=(1, 0)"),
    ("ConvTranspose2d(2, 2, 3, output_padding=-1)", ValueError,
     "ConvTranspose2d: output_padding must be >= 0 along every axis, got output_padding=(-1, -1)"),
    ("ConvTranspose2d(2, 2, 3, output_padding=(0, -1))", ValueError,
     "ConvTranspose2d: output_padding must be >= 0 along every axis, got output_padding=(0, -1)"),
    ("ConvTranspose2d(2, 2, 3, output_padding='a')", TypeError,
     "ConvTranspose2d: output_padding must be an int or a tuple of 2 ints, got 'a'"),
    ("ConvTranspose2d(2, 2, 3, output_padding=(1, 1, 1))", TypeError,
     "ConvTranspose2d: output_padding must be an int or a tuple of 2 ints, got (1, 1, 1)"),
    ("ConvTranspose2d(2, 2, 3, stride=(1, 2), output_padding=(0, 2))", ValueError,
     f"{OUTPUT_PADDING} width output_padding=2 but stride=2 and dilation=1"),
    ("ConvTranspose2d(2, 2, 3, dilation=2, output_padding=2)", ValueError,
     f"{OUTPUT_PADDING} height output_padding=2 but stride=1 and dilation=2"),
    ("ConvTranspose2d(2, 2, 3, stride=(2, 1), dilation=(1, 3), output_padding=(1, 3))", ValueError,
     f"{OUTPUT_PADDING} width output_padding=3 but stride=1 and dilation=3"),
    ("ConvTranspose2d(2, 2, 3, output_padding=(1, 0))", ValueError,
     f"{OUTPUT_PADDING} height output_padding=1 but stride=1 and dilation=1"),
    *_common("SeparableConv2d"), *_pairs("SeparableConv2d"),
    ("SeparableConv2d(2, 2, 3, padding='x')", TypeError,
     "SeparableConv2d: padding must be an int or a pair (h, w) of ints, got str 'x'"),
    ("SeparableConv2d(2, 2, 3, mode='spatial', padding=-1)", ValueError,
     "SeparableConv2d: padding must be >= 0 along both axes, got padding=-1"),
    ("SeparableConv2d(2, 2, 3, mode='spatial', bias=0)", TypeError, "SeparableConv2d: bias must be True or False, got int 0"),
    ("SeparableConv2d(2, 2, 3, mode=None)", ValueError, "SeparableConv2d: mode must be one of ('depthwise', 'spatial'), got None"),
    ("SeparableConv2d(2, 2, 3, mode='Depthwise')", ValueError,
     "SeparableConv2d: mode must be one of ('depthwise', 'spatial'), got 'Depthwise'"),
    ("DepthwiseConv2d(0, 3)", ValueError, "DepthwiseConv2d: channels must be >= 1, got 0"),
    ("DepthwiseConv2d(2.0, 3)", TypeError, "DepthwiseConv2d: channels must be an int, got float 2.0"),
    ("DepthwiseConv2d(2, 3, depth_multiplier=0)", ValueError, "DepthwiseConv2d: depth_multiplier must be >= 1, got 0"),
    ("DepthwiseConv2d(2, 3, depth_multiplier='a')", TypeError, "DepthwiseConv2d: depth_multiplier must be an int, got str 'a'"),
    ("DepthwiseConv2d(2, 0)", ValueError, "DepthwiseConv2d: kernel_size must be >= 1 along both axes, got kernel_size=0"),
    ("DepthwiseConv2d(2, 3, stride=0)", ValueError, "DepthwiseConv2d: stride must be >= 1 along both axes, got stride=0"),
    ("DepthwiseConv2d(2, 3, padding=-1)", ValueError, "DepthwiseConv2d: padding must be >= 0 along both axes, got padding=-1"),
    ("DepthwiseConv2d(2, 3, dilation=0)", ValueError, "DepthwiseConv2d: dilation must be >= 1 along both axes, got dilation=0"),
    ("DepthwiseConv2d(2, 3, bias=1)", TypeError, "DepthwiseConv2d: bias must be True or False, got int 1"),
    ("DepthwiseConv2d(2, 3, rng='x')", TypeError, f"DepthwiseConv2d: {RNG} str 'x'"),
    ("PointwiseConv2d(0, 2)", ValueError, "PointwiseConv2d: in_channels must be >= 1, got 0"),
    ("PointwiseConv2d(2, 0)", ValueError, "PointwiseConv2d: out_channels must be >= 1, got 0"),
    ("PointwiseConv2d(2, 2, stride=0)", ValueError, "PointwiseConv2d: stride must be >= 1 along both axes, got stride=0"),
    ("PointwiseConv2d(2, 2, groups=0)", ValueError, "PointwiseConv2d: groups must be >= 1, got 0"),
    ("PointwiseConv2d(3, 2, groups=2)", ValueError,
     "PointwiseConv2d: in_channels=3 and out_channels=2 must both be divisible by groups=2"),
    ("PointwiseConv2d(2, 2, bias=1)", TypeError, "PointwiseConv2d: bias must be True or False, got int 1"),
    ("PointwiseConv2d(2, 2, dtype=np.int32)", TypeError, f"PointwiseConv2d: {DTYPE}"),
    *_common("Conv1d"), *_grouped("Conv1d"), *_tuples("Conv1d", 1),
    ("Conv1d(2, 2, (3, 1))", TypeError, "Conv1d: kernel_size must be an int or a tuple of 1 ints, got (3, 1)"),
    ("Conv1d(2, 2, 3, stride=(1, 1))", TypeError, "Conv1d: stride must be an int or a tuple of 1 ints, got (1, 1)"),
    *_common("Conv3d"), *_grouped("Conv3d"), *_tuples("Conv3d", 3),
    ("Conv3d(2, 2, (3, 3, 0))", ValueError, "Conv3d: kernel_size must be >= 1 along every axis, got kernel_size=(3, 3, 0)"),
    ("Conv3d(2, 2, 3, stride=(1, 0, 1))", ValueError, "Conv3d: stride must be >= 1 along every axis, got stride=(1, 0, 1)"),
    ("Conv3d(2, 2, 3, padding=(0, 0, -1))", ValueError,
     "Conv3d: padding must be >= 0 along every axis, got padding=(0, 0, -1)"),
    ("Conv3d(2, 2, 3, dilation=(2, 1, 0))", ValueError,
     "Conv3d: dilation must be >= 1 along every axis, got dilation=(2, 1, 0)"),
    ("Conv3d(2, 2, 3, dilation=(1, 1))", TypeError, "Conv3d: dilation must be an int or a tuple of 3 ints, got (1, 1)"),
]


@pytest.mark.parametrize("call, kind, message", BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
def test_a_wrong_convolution_hyper_parameter_gets_the_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of constructor calls)


#: (layer from its keyword arguments, weight shape, bias length): the weight layouts the docstrings give,
#: (C_out, C_in/groups, *kernel), and (C_in, C_out/groups, F_H, F_W) for ConvTranspose2d.
WEIGHT_SHAPES = [
    (lambda **kw: nn.Conv2d(4, 6, (3, 2), groups=2, **kw), (6, 2, 3, 2), 6),
    (lambda **kw: nn.DepthwiseConv2d(3, (2, 3), depth_multiplier=2, **kw), (6, 1, 2, 3), 6),
    (lambda **kw: nn.PointwiseConv2d(4, 6, groups=2, **kw), (6, 2, 1, 1), 6),
    (lambda **kw: nn.ConvTranspose2d(4, 6, (3, 2), groups=2, **kw), (4, 3, 3, 2), 6),
    (lambda **kw: nn.Conv1d(4, 6, 3, groups=2, **kw), (6, 2, 3), 6),
    (lambda **kw: nn.Conv3d(2, 4, (2, 3, 1), **kw), (4, 2, 2, 3, 1), 4),
]
WEIGHT_IDS = ["Conv2d", "DepthwiseConv2d", "PointwiseConv2d", "ConvTranspose2d", "Conv1d", "Conv3d"]


@pytest.mark.parametrize("make, shape, out", WEIGHT_SHAPES, ids=WEIGHT_IDS)
@pytest.mark.parametrize("init, dtype", [(None, np.float32), ("xavier_normal", np.float64)])
def test_weights_are_drawn_by_init_from_rng_in_dtype_and_biases_start_at_zero(make, shape, out, init, dtype):
    """Weights start from ``init`` (He uniform by default) drawn from ``rng``; biases from zero, in ``dtype``."""
    kwargs = {"rng": 3} if init is None else {"rng": np.random.default_rng(3), "init": init, "dtype": dtype}
    layer = make(**kwargs)
    want = get_initializer(init or "kaiming_uniform")(shape, np.random.default_rng(3), dtype)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.name == "weight" and layer.bias.name == "bias"
    assert layer.weight.data.dtype == dtype and layer.weight.data.shape == shape
    np.testing.assert_array_equal(layer.weight.data, want)
    assert layer.bias.data.dtype == dtype and layer.bias.data.shape == (out,)
    np.testing.assert_array_equal(layer.bias.data, np.zeros(out))
    assert layer.num_parameters() == int(np.prod(shape)) + out
    no_bias = make(bias=False)
    assert no_bias.bias is None and [name for name, _ in no_bias.named_parameters()] == ["weight"]


def _taps(kernel, out, stride, dilation):
    """For every kernel tap: its index and the slices of the padded input it meets, one per output position."""
    for tap in itertools.product(*(range(k) for k in kernel)):
        yield tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(tap, dilation, stride, out))


def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0), *((p, p) for p in padding)))


def _reference_conv(x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    """The cross-correlation ``y[n, o] = b[o] + Σ_{c, taps t} w[o, c, t] x[n, group(o)*C_g + c, S*pos + D*t - P]``."""
    xp = _pad(x, padding)
    og, cg = w.shape[0] // groups, w.shape[1]
    out = [(h + 2 * p - d * (k - 1) - 1) // s + 1 for h, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation)]
    y = 0
    for tap, where in _taps(w.shape[2:], out, stride, dilation):
        y = y + np.concatenate([np.einsum("nc...,oc->no...", xp[(slice(None), slice(g * cg, (g + 1) * cg), *where)],
                                          w[(slice(g * og, (g + 1) * og), slice(None), *tap)]) for g in range(groups)], axis=1)
    return y if b is None else y + b.reshape(1, -1, *(1,) * (x.ndim - 2))


def _reference_input_grad(x_shape, w, dy, stride, padding, dilation, groups=1):
    """dx of _reference_conv: each output gradient goes back through the filter taps it read."""
    og, cg = w.shape[0] // groups, w.shape[1]
    dxp = np.zeros((*x_shape[:2], *(h + 2 * p for h, p in zip(x_shape[2:], padding))))
    for tap, where in _taps(w.shape[2:], dy.shape[2:], stride, dilation):
        for g in range(groups):
            dxp[(slice(None), slice(g * cg, (g + 1) * cg), *where)] += np.einsum(
                "no...,oc->nc...", dy[:, g * og:(g + 1) * og], w[(slice(g * og, (g + 1) * og), slice(None), *tap)])
    return dxp[(slice(None), slice(None), *(slice(p, p + h) for h, p in zip(x_shape[2:], padding)))]


def _reference_weight_grad(x, w_shape, dy, stride, padding, dilation, groups=1):
    """dw of _reference_conv: dw[o, c, t] = Σ dy[n, o, pos] x[n, group(o)*C_g + c, S*pos + D*t - P]."""
    og, cg = w_shape[0] // groups, w_shape[1]
    xp = _pad(x, padding)
    grad = np.zeros(w_shape)
    n = x.shape[0]
    for tap, where in _taps(w_shape[2:], dy.shape[2:], stride, dilation):
        for g in range(groups):
            patch = xp[(slice(None), slice(g * cg, (g + 1) * cg), *where)].reshape(n, cg, -1)
            grad[(slice(g * og, (g + 1) * og), slice(None), *tap)] = np.einsum(
                "ncp,nop->oc", patch, dy[:, g * og:(g + 1) * og].reshape(n, og, -1))
    return grad


def _integers(rng, shape):
    """Small integers as float64: every sum of products below is exact, so results compare bit for bit."""
    return rng.integers(-3, 4, size=shape).astype(np.float64)


def test_depthwise_separable_conv_is_a_depthwise_then_a_pointwise_pass_equal_to_one_convolution():
    """SeparableConv2d(mode="depthwise"): W[o, c] = P[o, c] * D[c]; the biases (one per pass) add up to P @ b_D + b_P."""
    layer = nn.SeparableConv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), rng=0, dtype=np.float64)
    d, p = layer.depthwise, layer.pointwise
    assert layer.mode == "depthwise" and layer.kernel_size == (3, 2)
    assert (type(d), d.in_channels, d.out_channels, d.groups) == (nn.DepthwiseConv2d, 3, 3, 3)
    assert (d.kernel_size, d.stride, d.padding, d.dilation) == ((3, 2), (2, 1), (1, 0), (1, 2))
    assert (type(p), p.in_channels, p.out_channels, p.groups, p.kernel_size, p.stride) == (
        nn.PointwiseConv2d, 3, 4, 1, (1, 1), (1, 1))
    # one generator for both passes, in order, with the layer's init and dtype
    rng, init = np.random.default_rng(0), get_initializer("kaiming_uniform")
    np.testing.assert_array_equal(d.weight.data, init((3, 1, 3, 2), rng, np.float64))
    np.testing.assert_array_equal(p.weight.data, init((4, 3, 1, 1), rng, np.float64))
    assert d.bias.data.dtype == p.bias.data.dtype == np.float64
    rng = np.random.default_rng(1)
    for param in layer.parameters():
        param.data[...] = _integers(rng, param.data.shape)
    kernel = layer.equivalent_kernel()
    assert kernel.shape == (4, 3, 3, 2)
    for o in range(4):
        for c in range(3):
            np.testing.assert_array_equal(kernel[o, c], p.weight.data[o, c, 0, 0] * d.weight.data[c, 0])
    x = _integers(rng, (2, 3, 7, 6))
    y = layer(x)
    bias = p.weight.data[:, :, 0, 0] @ d.bias.data + p.bias.data
    want = _reference_conv(x, kernel, bias, stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    np.testing.assert_array_equal(y, want)
    assert layer.output_shape(x.shape) == y.shape == (2, 4, 4, 4)
    assert layer.macs(x.shape) == 2 * 4 * 4 * 3 * 6 + 2 * 4 * 4 * 4 * 3
    dy = _integers(rng, y.shape)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, _reference_input_grad(x.shape, kernel, dy, (2, 1), (1, 0), (1, 2)))


def test_spatially_separable_conv_is_a_column_then_a_row_pass_equal_to_one_convolution():
    """SeparableConv2d(mode="spatial"): W[o, c] = u[o, c] v[o]^T; the column pass takes the vertical stride, padding and
    dilation, the depthwise row pass the horizontal ones and the bias."""
    layer = nn.SeparableConv2d(3, 4, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1), mode="spatial", rng=0,
                               dtype=np.float64)
    col, row = layer.column, layer.row
    assert layer.mode == "spatial" and layer.kernel_size == (3, 2)
    assert repr(layer).splitlines()[0] == "SeparableConv2d(3, 4, kernel_size=(3, 2), mode='spatial'"
    assert (col.in_channels, col.out_channels, col.groups, col.bias) == (3, 4, 1, None)
    assert (col.kernel_size, col.stride, col.padding, col.dilation) == ((3, 1), (2, 1), (1, 0), (2, 1))
    assert (row.in_channels, row.out_channels, row.groups) == (4, 4, 4)
    assert (row.kernel_size, row.stride, row.padding, row.dilation) == ((1, 2), (1, 3), (0, 2), (1, 1))
    rng, init = np.random.default_rng(0), get_initializer("kaiming_uniform")
    np.testing.assert_array_equal(col.weight.data, init((4, 3, 3, 1), rng, np.float64))
    np.testing.assert_array_equal(row.weight.data, init((4, 1, 1, 2), rng, np.float64))
    assert row.bias.data.dtype == np.float64 and row.bias.data.shape == (4,)
    rng = np.random.default_rng(1)
    for param in layer.parameters():
        param.data[...] = _integers(rng, param.data.shape)
    kernel = layer.equivalent_kernel()
    assert kernel.shape == (4, 3, 3, 2)
    for o in range(4):
        for c in range(3):
            np.testing.assert_array_equal(kernel[o, c], np.outer(col.weight.data[o, c, :, 0], row.weight.data[o, 0, 0]))
    x = _integers(rng, (2, 3, 7, 8))
    y = layer(x)
    want = _reference_conv(x, kernel, row.bias.data, stride=(2, 3), padding=(1, 2), dilation=(2, 1))
    np.testing.assert_array_equal(y, want)
    assert layer.output_shape(x.shape) == y.shape == (2, 4, 3, 4)
    # column pass: (2, 4, 3, 8) outputs of 3 * 3 taps; row pass: (2, 4, 3, 4) outputs of 2 taps
    assert layer.macs(x.shape) == 2 * 4 * 3 * 8 * 9 + 2 * 4 * 3 * 4 * 2
    dy = _integers(rng, y.shape)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, _reference_input_grad(x.shape, kernel, dy, (2, 3), (1, 2), (2, 1)))


@pytest.mark.parametrize("mode", ["depthwise", "spatial"])
def test_separable_conv_without_bias_and_with_another_init(mode):
    layer = nn.SeparableConv2d(2, 3, 3, bias=False, mode=mode, init="xavier_uniform", rng=5)
    names = ["depthwise.weight", "pointwise.weight"] if mode == "depthwise" else ["column.weight", "row.weight"]
    assert [name for name, _ in layer.named_parameters()] == names
    rng, init = np.random.default_rng(5), get_initializer("xavier_uniform")
    for param in layer.parameters():
        assert param.data.dtype == np.float32
        np.testing.assert_array_equal(param.data, init(param.data.shape, rng, np.float32))


def _hyper(layer, *names):
    return tuple(getattr(layer, name) for name in names)


def test_the_default_hyper_parameters_are_stride_one_no_padding_no_dilation_one_group_and_a_bias():
    conv = nn.Conv2d(2, 4, 3)
    assert _hyper(conv, "kernel_size", "stride", "padding", "dilation", "groups") == ((3, 3), (1, 1), (0, 0), (1, 1), 1)
    assert conv.bias is not None
    up = nn.ConvTranspose2d(2, 4, 3)
    assert _hyper(up, "kernel_size", "stride", "padding", "output_padding", "dilation", "groups") == (
        (3, 3), (1, 1), (0, 0), (0, 0), (1, 1), 1)
    assert up.bias is not None
    depthwise = nn.DepthwiseConv2d(3, 2)
    assert _hyper(depthwise, "in_channels", "out_channels", "depth_multiplier", "groups") == (3, 3, 1, 3)
    assert _hyper(depthwise, "kernel_size", "stride", "padding", "dilation") == ((2, 2), (1, 1), (0, 0), (1, 1))
    assert depthwise.bias is not None
    wide = nn.DepthwiseConv2d(3, 2, 2, 1, 2, depth_multiplier=3)
    assert _hyper(wide, "in_channels", "out_channels", "depth_multiplier", "groups") == (3, 9, 3, 3)
    assert _hyper(wide, "stride", "padding", "dilation") == ((2, 2), (1, 1), (2, 2))
    pointwise = nn.PointwiseConv2d(3, 4)
    assert _hyper(pointwise, "kernel_size", "stride", "padding", "dilation", "groups") == ((1, 1), (1, 1), (0, 0), (1, 1), 1)
    assert pointwise.bias is not None
    strided = nn.PointwiseConv2d(4, 6, 2, 2)
    assert _hyper(strided, "kernel_size", "stride", "padding", "dilation", "groups") == ((1, 1), (2, 2), (0, 0), (1, 1), 2)
    separable = nn.SeparableConv2d(3, 4, 3)
    assert separable.mode == "depthwise" and separable.kernel_size == (3, 3)
    assert _hyper(separable.depthwise, "stride", "padding", "dilation") == ((1, 1), (0, 0), (1, 1))
    assert separable.depthwise.bias is not None and separable.pointwise.bias is not None
    for layer, n in ((nn.Conv1d(2, 4, 3), 1), (nn.Conv3d(2, 4, 3), 3)):
        assert _hyper(layer, "kernel_size", "stride", "padding", "dilation", "groups") == ((3,) * n, (1,) * n, (0,) * n,
                                                                                          (1,) * n, 1)
        assert layer.bias is not None


def test_conv_transpose_accepts_output_padding_below_the_stride_or_the_dilation():
    """output_padding must be smaller than the stride *or* the dilation, along each axis."""
    for stride, dilation, output_padding in [(2, 1, 1), (1, 2, 1), ((3, 1), (1, 2), (2, 1)), ((1, 2), (3, 1), (2, 1))]:
        layer = nn.ConvTranspose2d(2, 2, 3, stride=stride, dilation=dilation, output_padding=output_padding)
        assert layer.output_padding == ((output_padding,) * 2 if isinstance(output_padding, int) else output_padding)


#: (ConvTranspose2d arguments, input shape, output shape (H - 1)*S - 2P + D*(F - 1) + output_padding + 1)
TRANSPOSED = [
    (dict(in_channels=3, out_channels=2, kernel_size=3, stride=2, padding=1, output_padding=1), (2, 3, 4, 3), (2, 2, 8, 6)),
    (dict(in_channels=2, out_channels=3, kernel_size=(2, 3), stride=(1, 2), padding=(0, 1), dilation=(3, 1),
          output_padding=(2, 1)), (1, 2, 3, 4), (1, 3, 8, 8)),
    (dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=(2, 1), padding=(2, 0), output_padding=(1, 0),
          dilation=(1, 2), groups=2), (2, 4, 3, 3), (2, 6, 4, 5)),
    (dict(in_channels=2, out_channels=2, kernel_size=2, stride=3, dilation=4, output_padding=3), (1, 2, 2, 2), (1, 2, 11, 11)),
]


@pytest.mark.parametrize("kwargs, shape, out_shape", TRANSPOSED, ids=[str(i) for i in range(len(TRANSPOSED))])
def test_conv_transpose_is_the_adjoint_of_conv2d_forward_and_backward(kwargs, shape, out_shape):
    """ConvTranspose2d docstring: forward is the input gradient of a convolution from the output space to the input
    space whose weight this layer holds; backward is that convolution for dx and its weight gradient for dW."""
    layer = nn.ConvTranspose2d(**kwargs, rng=0, dtype=np.float64)
    args = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    rng = np.random.default_rng(1)
    layer.weight.data[...] = _integers(rng, layer.weight.data.shape)
    layer.bias.data[...] = _integers(rng, layer.bias.data.shape)
    x = _integers(rng, shape)
    assert layer.output_shape(shape) == out_shape
    y = layer(x)
    assert y.shape == out_shape and y.dtype == np.float64
    # the convolution of the output has as many positions as x, or more (output_padding >= stride): those carry zeros
    want = _reference_input_grad(out_shape, layer.weight.data, x, **args) + layer.bias.data.reshape(1, -1, 1, 1)
    np.testing.assert_array_equal(y, want)
    dy = _integers(rng, out_shape)
    dx = layer.backward(dy)
    conv = _reference_conv(dy, layer.weight.data, **args)
    assert dx.shape == shape
    np.testing.assert_array_equal(dx, conv[:, :, :shape[2], :shape[3]])
    x_full = np.zeros(conv.shape)
    x_full[:, :, :shape[2], :shape[3]] = x
    dw = _reference_weight_grad(dy, layer.weight.data.shape, x_full, **args)
    np.testing.assert_array_equal(layer.weight.grad, dw)
    np.testing.assert_array_equal(layer.bias.grad, dy.sum(axis=(0, 2, 3)))
    # need_dx=False: no dx, the same weight gradients (added once more)
    layer(x)
    assert layer.backward(dy, need_dx=False) is None
    np.testing.assert_array_equal(layer.weight.grad, 2 * dw)
    np.testing.assert_array_equal(layer.bias.grad, 2 * dy.sum(axis=(0, 2, 3)))
    c_in, c_out, groups = kwargs["in_channels"], kwargs["out_channels"], kwargs.get("groups", 1)
    assert layer.macs(shape) == shape[0] * shape[2] * shape[3] * c_in * (c_out // groups) * int(np.prod(layer.kernel_size))


def test_conv_padding_same_and_four_sides_pad_before_convolving():
    """Conv2d padding: "same" keeps H and W (D*(F-1) pixels per axis, half before, the odd one after) and four ints
    are F.pad's (left, right, top, bottom); either is kept as given, the four ints as a tuple of ints."""
    rng = np.random.default_rng(0)
    x = _integers(rng, (2, 2, 5, 6))
    same = nn.Conv2d(2, 3, (2, 3), padding="same", dilation=(1, 2), rng=0, dtype=np.float64)
    sides = nn.Conv2d(2, 3, (2, 3), padding=[np.int64(2), 1, 0, 3], rng=0, dtype=np.float64)
    assert same.padding == "same" and repr(same).endswith("padding=same, dilation=(1, 2))")
    assert type(sides.padding) is tuple and [type(p) for p in sides.padding] == [int] * 4
    assert repr(sides) == "Conv2d(2, 3, kernel_size=(2, 3), stride=(1, 1), padding=(2, 1, 0, 3))"
    for layer, (left, right, top, bottom) in ((same, (2, 2, 0, 1)), (sides, (2, 1, 0, 3))):
        layer.weight.data[...] = _integers(rng, layer.weight.data.shape)
        layer.bias.data[...] = _integers(rng, layer.bias.data.shape)
        padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
        y = layer(x)
        np.testing.assert_array_equal(y, _reference_conv(padded, layer.weight.data, layer.bias.data, dilation=layer.dilation))
        assert layer.output_shape(x.shape) == y.shape
        dy = _integers(rng, y.shape)
        dx = layer.backward(dy)
        dx_padded = _reference_input_grad(padded.shape, layer.weight.data, dy, (1, 1), (0, 0), layer.dilation)
        np.testing.assert_array_equal(dx, dx_padded[:, :, top:top + 5, left:left + 6])
        np.testing.assert_array_equal(layer.weight.grad,
                                      _reference_weight_grad(padded, layer.weight.data.shape, dy, (1, 1), (0, 0), layer.dilation))
    assert same(x).shape == (2, 3, 5, 6)
    assert nn.Conv2d(2, 3, 3, padding="valid").output_shape((1, 2, 5, 6)) == (1, 3, 3, 4)


#: (layer, input shape, output shape): Conv1d is Conv2d on one-pixel-tall images, Conv3d a sum over depth taps of
#: 2-D convolutions; all three compute the same N-d cross-correlation.
CONVOLUTIONS = [
    (lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2, rng=0, dtype=np.float64),
     (2, 4, 6, 5), (2, 6, 3, 7)),
    (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, rng=0, dtype=np.float64), (2, 4, 11), (2, 6, 5)),
    (lambda: nn.Conv1d(2, 3, 2, rng=0, dtype=np.float64), (1, 2, 5), (1, 3, 4)),
    (lambda: nn.Conv3d(4, 6, (3, 2, 2), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2, rng=0,
                       dtype=np.float64), (1, 4, 7, 4, 5), (1, 6, 3, 3, 3)),
    (lambda: nn.Conv3d(2, 3, (2, 1, 3), stride=(1, 2, 1), padding=(0, 1, 0), dilation=(3, 1, 1), rng=0, dtype=np.float64),
     (2, 2, 5, 3, 4), (2, 3, 2, 3, 2)),
]


@pytest.mark.parametrize("make, shape, out_shape", CONVOLUTIONS, ids=["Conv2d", "Conv1d", "Conv1d-default", "Conv3d",
                                                                      "Conv3d-depth-dilated"])
def test_each_convolution_computes_the_cross_correlation_and_its_gradients(make, shape, out_shape):
    layer = make()
    args = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups)
    rng = np.random.default_rng(1)
    layer.weight.data[...] = _integers(rng, layer.weight.data.shape)
    layer.bias.data[...] = _integers(rng, layer.bias.data.shape)
    x = _integers(rng, shape)
    y = layer(x)
    assert y.shape == layer.output_shape(shape) == out_shape and y.dtype == np.float64 and y.flags.c_contiguous
    np.testing.assert_array_equal(y, _reference_conv(x, layer.weight.data, layer.bias.data, **args))
    taps = layer.weight.data[0].size
    assert layer.macs(shape) == int(np.prod(out_shape)) * taps
    dy = _integers(rng, out_shape)
    dx = layer.backward(dy)
    assert dx.shape == shape and dx.flags.c_contiguous
    np.testing.assert_array_equal(dx, _reference_input_grad(shape, layer.weight.data, dy, **args))
    dw = _reference_weight_grad(x, layer.weight.data.shape, dy, **args)
    np.testing.assert_array_equal(layer.weight.grad, dw)
    np.testing.assert_array_equal(layer.bias.grad, dy.sum(axis=(0, *range(2, dy.ndim))))
    layer(x)
    assert layer.backward(dy, need_dx=False) is None  # Conv3d too, like every layer
    np.testing.assert_array_equal(layer.weight.grad, 2 * dw)


CAST = ("input dtype float64 differs from the weights' dtype float32; cast the input (x.astype(np.float32)) or the model "
        "(model.to(dtype=np.float64))")
#: (layer, input shape, dtype, error, its whole message from forward, or None when output_shape and macs accept the
#: shape): forward, output_shape and macs (summary()) refuse a wrong input the same way, naming the layer and layout.
BAD_INPUTS = [
    ("Conv2d(3, 4, 3)", (2, 3, 4), np.float32, ValueError, "Conv2d: input must be 4-D (N, C_in, H, W), got 3-D array of "
     "shape (2, 3, 4)", "Conv2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"),
    ("Conv2d(3, 4, 3)", (2, 4, 4, 4), np.float32, ValueError, "Conv2d: expected 3 input channels (in_channels), got 4 in "
     "input of shape (2, 4, 4, 4)", "Conv2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("Conv2d(3, 4, 3)", (2, 3, 4, 4), np.int32, TypeError, "Conv2d: input must be float32 or float64, got dtype int32", None),
    ("Conv2d(3, 4, 3)", (2, 3, 4, 4), np.float64, TypeError, f"Conv2d: {CAST}", None),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4), np.float32, ValueError, "ConvTranspose2d: input must be 4-D (N, C_in, H, W), "
     "got 3-D array of shape (2, 3, 4)", "ConvTranspose2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4, 4), np.int32, TypeError,
     "ConvTranspose2d: input must be float32 or float64, got dtype int32", None),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4, 4), np.float64, TypeError, f"ConvTranspose2d: {CAST}", None),
    ("Conv1d(3, 4, 3)", (2, 3), np.float32, ValueError, "Conv1d: input must be 3-D (N, C_in, L), got 2-D array of shape "
     "(2, 3)", "Conv1d: input must be 3-D (N, C_in, L), got shape (2, 3)"),
    ("Conv1d(3, 4, 3)", (2, 4, 9), np.float32, ValueError, "Conv1d: expected 3 input channels (in_channels), got 4 in "
     "input of shape (2, 4, 9)", "Conv1d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 9)"),
    ("Conv1d(3, 4, 3)", (2, 3, 9), np.int32, TypeError, "Conv1d: input must be float32 or float64, got dtype int32", None),
    ("Conv1d(3, 4, 3)", (2, 3, 9), np.float64, TypeError, f"Conv1d: {CAST}", None),
    ("Conv1d(3, 4, 3, dilation=2)", (2, 3, 4), np.float32, ValueError, "Conv1d: output size (4 + 2*0 - 2*(3-1) - 1)//1 + "
     "1 = 0 < 1: the kernel spans 5 samples but the padded input has 4",
     "Conv1d: output size (4 + 2*0 - 2*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 5 samples but the padded input has 4"),
    ("Conv3d(2, 4, 3)", (2, 2, 4, 4), np.float32, ValueError, "Conv3d: input must be 5-D (N, C_in, D, H, W), got 4-D "
     "array of shape (2, 2, 4, 4)", "Conv3d: input must be 5-D (N, C_in, D, H, W), got shape (2, 2, 4, 4)"),
    ("Conv3d(2, 4, 3)", (1, 3, 4, 4, 4), np.float32, ValueError, "Conv3d: expected 2 input channels (in_channels), got 3 "
     "in input of shape (1, 3, 4, 4, 4)",
     "Conv3d: expected 2 input channels (in_channels), got 3 in input of shape (1, 3, 4, 4, 4)"),
    ("Conv3d(2, 4, 3)", (1, 2, 4, 4, 4), np.int32, TypeError, "Conv3d: input must be float32 or float64, got dtype int32",
     None),
    ("Conv3d(2, 4, 3)", (1, 2, 4, 4, 4), np.float64, TypeError, f"Conv3d: {CAST}", None),
    ("Conv3d(2, 4, (1, 3, 1), padding=(0, 0, 1))", (1, 2, 4, 2, 4), np.float32, ValueError,
     "Conv3d: output size (2 + 2*0 - 1*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 3 samples but the padded input has 2",
     "Conv3d: output size (2 + 2*0 - 1*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 3 samples but the padded input has 2"),
]


@pytest.mark.parametrize("layer, shape, dtype, kind, message, shape_message", BAD_INPUTS,
                         ids=[f"{c[0]}-{c[1]}-{c[2].__name__}" for c in BAD_INPUTS])
def test_a_wrong_input_to_a_convolution_gets_the_whole_message(layer, shape, dtype, kind, message, shape_message):
    with _raises(kind, message):
        eval("nn." + layer)(np.zeros(shape, dtype))  # noqa: S307 (a table of constructor calls)
    if shape_message is None:
        assert eval("nn." + layer).output_shape(shape) is not None  # noqa: S307
    else:
        with _raises(ValueError, shape_message):
            eval("nn." + layer).output_shape(shape)  # noqa: S307
        with _raises(ValueError, shape_message):
            eval("nn." + layer).macs(shape)  # noqa: S307


def test_conv_transpose_macs_and_output_shape_refuse_a_wrong_rank_and_output_shape_too_small_an_output():
    with _raises(ValueError, "ConvTranspose2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"):
        nn.ConvTranspose2d(3, 2, 2).macs((2, 3, 4))
    for count in ("output_shape", "macs"):  # both check the channels and the output size
        with _raises(ValueError, "ConvTranspose2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"):
            getattr(nn.ConvTranspose2d(3, 2, 2), count)((2, 4, 4, 4))
    with pytest.raises(ValueError, match=r"^ConvTranspose2d: output size .* = \(-1, -1\) < 1 for input \(1, 1\)"):
        nn.ConvTranspose2d(2, 3, 1, padding=1).macs((1, 2, 1, 1))
    with _raises(ValueError, "ConvTranspose2d: output size (H - 1)*S - 2P + D*(F - 1) + output_padding + 1 = (4, -1) < 1 "
                             "for input (2, 1), kernel (3, 1), stride (1, 1), padding (0, 1)"):
        nn.ConvTranspose2d(2, 3, (3, 1), padding=(0, 1)).output_shape((1, 2, 2, 1))
    # an output of one pixel is an output
    assert nn.ConvTranspose2d(2, 3, 3, padding=1).output_shape((1, 2, 1, 1)) == (1, 3, 1, 1)
    assert nn.ConvTranspose2d(2, 3, (3, 1), padding=(1, 0)).output_shape((2, 2, 1, 1)) == (2, 3, 1, 1)


def test_conv2d_output_shape_adds_the_four_sided_padding_and_accepts_a_one_pixel_output():
    # F.pad (left, right, top, bottom) = (0, 2, 3, 1): symmetric (1, 0), then 2 more at the top and 2 at the right
    layer = nn.Conv2d(2, 4, (3, 2), padding=(0, 2, 3, 1))
    x = np.zeros((3, 2, 5, 6), np.float32)
    assert layer.output_shape(x.shape) == layer(x).shape == (3, 4, 5 + 4 - 2, 6 + 2 - 1)
    assert layer.macs(x.shape) == 3 * 4 * 7 * 7 * 2 * 6
    assert nn.Conv2d(2, 4, 3).output_shape((3, 2, 3, 3)) == (3, 4, 1, 1)
    assert nn.Conv2d(2, 4, (3, 1)).output_shape((3, 2, 3, 1)) == (3, 4, 1, 1)
    with _raises(ValueError, "Conv2d: input (1, 2, 8, 2) is too small for kernel (1, 3) (dilation (1, 1), padding (0, 0), "
                             "stride (1, 1)): output (H + 2P - D*(F-1) - 1)//S + 1 gives (8, 0)"):
        nn.Conv2d(2, 4, (1, 3)).output_shape((1, 2, 8, 2))
    with _raises(ValueError, "Conv2d: input (1, 2, 2, 8) is too small for kernel (3, 1) (dilation (1, 1), padding (0, 0), "
                             "stride (1, 1)): output (H + 2P - D*(F-1) - 1)//S + 1 gives (0, 8)"):
        nn.Conv2d(2, 4, (3, 1)).output_shape((1, 2, 2, 8))


REPRS = [
    (lambda: nn.Conv2d(2, 4, 3, bias=False), "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), bias=False)"),
    (lambda: nn.Conv2d(2, 4, 3, padding=(1, 0)), "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 0))"),
    (lambda: nn.Conv2d(2, 4, 3, padding=(0, 1)), "Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1), padding=(0, 1))"),
    (lambda: nn.ConvTranspose2d(2, 4, 3), "ConvTranspose2d(2, 4, kernel_size=(3, 3), stride=(1, 1))"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, output_padding=(1, 0)),
     "ConvTranspose2d(2, 4, kernel_size=(3, 3), stride=(2, 2), output_padding=(1, 0))"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, stride=2, padding=(0, 1), output_padding=(0, 1), dilation=(1, 2), groups=2),
     "ConvTranspose2d(2, 4, kernel_size=(3, 3), stride=(2, 2), padding=(0, 1), output_padding=(0, 1), dilation=(1, 2), "
     "groups=2)"),
    (lambda: nn.Conv1d(2, 4, 3), "Conv1d(2, 4, kernel_size=(3,), stride=(1,))"),
    (lambda: nn.Conv1d(2, 4, 3, padding=1, groups=2, bias=False), "Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=(1,), "
     "groups=2)"),
    (lambda: nn.Conv1d(2, 4, 3, dilation=2), "Conv1d(2, 4, kernel_size=(3,), stride=(1,), dilation=(2,))"),
    (lambda: nn.Conv3d(2, 4, 3, stride=(1, 2, 1), dilation=2),
     "Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 2, 1), dilation=(2, 2, 2))"),
    (lambda: nn.Conv3d(2, 4, (1, 2, 3), padding=(0, 0, 1), dilation=(1, 3, 1)),
     "Conv3d(2, 4, kernel_size=(1, 2, 3), stride=(1, 1, 1), padding=(0, 0, 1), dilation=(1, 3, 1))"),
]


@pytest.mark.parametrize("make, text", REPRS, ids=[t for _, t in REPRS])
def test_a_convolution_repr_names_every_hyper_parameter_that_is_not_its_default(make, text):
    assert repr(make()) == text


def test_conv_macs_are_integer_counts_of_output_times_taps_per_group():
    assert nn.Conv1d(4, 6, 3, groups=2).macs((2, 4, 9)) == 2 * 6 * 7 * 2 * 3
    assert type(nn.Conv1d(4, 6, 3, groups=2).macs((2, 4, 9))) is int
    assert nn.Conv3d(4, 6, (1, 2, 3), groups=2).macs((1, 4, 2, 3, 4)) == 6 * 2 * 2 * 2 * (2 * 6)
    assert type(nn.Conv3d(4, 6, (1, 2, 3), groups=2).macs((1, 4, 2, 3, 4))) is int
    assert nn.Conv2d(4, 6, 3, bias=False).num_parameters() == 6 * 4 * 9
    assert nn.ConvTranspose2d(4, 6, 3, groups=2).macs((2, 4, 3, 3)) == 2 * 3 * 3 * 4 * 3 * 9


#: (layer, input shape, a wrong dy shape, forward's output shape)
WRONG_DY = [
    (lambda: nn.Conv2d(2, 3, 3), (1, 2, 5, 5), (1, 3, 2, 3), (1, 3, 3, 3)),
    (lambda: nn.ConvTranspose2d(2, 3, 3), (1, 2, 3, 3), (1, 3, 5, 4), (1, 3, 5, 5)),
    (lambda: nn.Conv1d(2, 3, 3), (1, 2, 5), (1, 3, 2), (1, 3, 3)),
    (lambda: nn.Conv3d(2, 3, 3), (1, 2, 4, 4, 4), (1, 3, 2, 2, 1), (1, 3, 2, 2, 2)),
    (lambda: nn.SeparableConv2d(2, 3, 3), (1, 2, 5, 5), (1, 3, 3, 2), (1, 3, 3, 3)),
]


@pytest.mark.parametrize("make, shape, dy_shape, y_shape", WRONG_DY, ids=[type(m()).__name__ for m, *_ in WRONG_DY])
def test_backward_refuses_a_dy_that_is_not_shaped_or_typed_like_the_output(make, shape, dy_shape, y_shape):
    layer = make()
    name = type(layer).__name__
    layer(np.zeros(shape, np.float32))
    with _raises(ValueError, f"{name}.backward: dy must have the shape of the forward output {y_shape}, got {dy_shape}"):
        layer.backward(np.zeros(dy_shape, np.float32))
    with _raises(TypeError, f"{name}.backward: dy must have the dtype of the forward output (float32), got float64; cast "
                            "it with dy.astype(np.float32)"):
        layer.backward(np.zeros(y_shape, np.float64))
    # a refused dy leaves forward's values for the right one
    assert layer.backward(np.zeros(y_shape, np.float32)).shape == shape


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Conv1d(2, 3, 3, bias=False, rng=0), (2, 2, 6)),
    (lambda: nn.Conv3d(2, 3, (2, 1, 2), padding=(1, 0, 0), bias=False, rng=0), (1, 2, 3, 2, 3)),
    (lambda: nn.ConvTranspose2d(2, 3, 2, bias=False, rng=0), (1, 2, 2, 3)),
    (lambda: nn.SeparableConv2d(2, 3, 2, bias=False, rng=0), (1, 2, 3, 3)),
    (lambda: nn.SeparableConv2d(2, 3, 2, mode="spatial", rng=0), (1, 2, 3, 3)),
], ids=["Conv1d", "Conv3d", "ConvTranspose2d", "SeparableConv2d", "SeparableConv2d-spatial"])
def test_float32_in_float32_out_with_or_without_bias_and_need_dx_false_returns_none(make, shape):
    layer = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32 and y.shape == layer.output_shape(shape)
    dx = layer.backward(np.ones_like(y))
    assert dx.dtype == np.float32 and dx.shape == shape
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())
    layer(x)
    assert layer.backward(np.ones_like(y), need_dx=False) is None


def test_conv2d_plans_its_kernels_once_per_input_and_hands_the_plan_to_backward(monkeypatch):
    """functional.conv2d_plan: a layer calls it in its forward pass (for the input's shape and dtype) and passes the plan to
    both conv2d and conv2d_grad, so its backward pass never decides again; the same input asks for no new plan."""
    from minicnn import functional as F

    calls = []

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            result = fn(*args, **kwargs)
            calls.append((name, args, kwargs, result))
            return result
        monkeypatch.setattr(F, name, wrapper)

    for name in ("conv2d_plan", "conv2d", "conv2d_grad"):
        spy(name, getattr(F, name))
    layer = nn.Conv2d(2, 3, 3, stride=2, padding=1, dilation=(1, 2), groups=1, dtype=np.float64)
    x = np.ones((1, 2, 6, 7))
    layer(x)
    (plan_call, conv_call) = calls
    assert plan_call[0] == "conv2d_plan" and plan_call[1] == (x.shape, (3, 2, 3, 3))
    assert plan_call[2]["dtype"] == np.float64
    assert (plan_call[2]["stride"], plan_call[2]["padding"], plan_call[2]["dilation"]) == ((2, 2), (1, 1), (1, 2))
    plan = plan_call[3]
    assert conv_call[0] == "conv2d" and conv_call[2]["plan"] is plan
    layer.backward(np.ones((1, 3, 3, 3)))
    assert calls[2][0] == "conv2d_grad" and calls[2][2]["plan"] is plan
    calls.clear()
    layer(x)
    assert [c[0] for c in calls] == ["conv2d"] and calls[0][2]["plan"] is plan
    calls.clear()
    layer(np.ones((2, 2, 6, 7)))
    assert [c[0] for c in calls] == ["conv2d_plan", "conv2d"] and calls[0][1][0] == (2, 2, 6, 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_is_conv2d_of_one_pixel_tall_images_bit_for_bit(dtype):
    """Conv1d docstring: a 2-D convolution of images (N, C, 1, L) with 1 x F filters, stride (1, S), padding (0, P)
    (and dilation (1, D)): the same kernel computes both, so the results agree bit for bit."""
    rng = np.random.default_rng(0)
    one = nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=3, groups=2, rng=0, dtype=dtype)
    two = nn.Conv2d(4, 6, (1, 3), stride=(1, 2), padding=(0, 2), dilation=(1, 3), groups=2, dtype=dtype)
    two.weight.data[...] = one.weight.data[:, :, None, :]
    one.bias.data[...] = two.bias.data[...] = rng.standard_normal(6)
    x = rng.standard_normal((3, 4, 40)).astype(dtype)
    y = one(x)
    np.testing.assert_array_equal(y, two(x[:, :, None, :])[:, :, 0, :])
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(one.backward(dy), two.backward(dy[:, :, None, :])[:, :, 0, :])
    np.testing.assert_array_equal(one.weight.grad, two.weight.grad[:, :, 0, :])
    np.testing.assert_array_equal(one.bias.grad, two.bias.grad)


def test_conv2d_too_small_message_shows_the_input_after_the_four_sided_padding():
    with _raises(ValueError, "Conv2d: input (2, 3, 6, 3) is too small for kernel (2, 4) (dilation (1, 1), padding "
                             "(0, 1, 2, 0), stride (1, 1)): output (H + 2P - D*(F-1) - 1)//S + 1 gives (5, 0)"):
        nn.Conv2d(3, 4, (2, 4), padding=(0, 1, 2, 0)).output_shape((2, 3, 4, 2))
