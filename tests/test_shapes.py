"""The formulas of ``minicnn.shapes`` beyond the slides' own numbers: every argument counted, every message exact.

The spec entries check the slides' values; these tests pin what those
values leave free (a transposed convolution's padding, dilation and output
padding, biases of a separable convolution, each axis of a pooling window)
and the words and numbers of the errors, so that no change to a formula or
to its message goes unnoticed (see tools/mutation.py).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import shapes


@given(size=st.integers(1, 30), kernel=st.integers(1, 5), stride=st.integers(1, 4), padding=st.integers(0, 3),
       dilation=st.integers(1, 3))
def test_transposed_size_inverts_the_conv_size(size, kernel, stride, padding, dilation):
    """``(H_out - 1)S - 2P + D(F-1) + 1 + output_padding`` gives back every H with that output (deck 000, "CONVOLUCIÓN TRANSPUESTA")."""
    out = shapes.conv_output_size(size, kernel, stride, padding, dilation)
    if out < 1:
        return
    extra = (size + 2 * padding - shapes.dilated_extent(kernel, dilation)) % stride
    assert shapes.conv_transpose_output_size(out, kernel, stride, padding, dilation, extra) == size
    layer = mc.nn.ConvTranspose2d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation,
                                  output_padding=extra) if extra < max(stride, dilation) else None
    if layer is not None:
        assert layer.output_shape((1, 1, out, out))[2:] == (size, size)


def test_transposed_size_counts_each_argument():
    # (4 - 1)*2 - 2*1 + 2*(3 - 1) + 1 + 1 = 10
    assert shapes.conv_transpose_output_size(4, 3, stride=2, padding=1, dilation=2, output_padding=1) == 10
    assert shapes.conv_transpose_output_size(4, 3, stride=2, padding=1, dilation=2) == 9
    assert shapes.conv_transpose_output_size(4, 3, stride=2, padding=2, dilation=2) == 7
    assert shapes.conv_transpose_output_size(4, 3, stride=2, padding=1) == 7
    assert shapes.conv_transpose_output_size(4, 3) == 6


def test_separable_and_grouped_counts_with_biases():
    # depthwise 8 filters of 3x3 (+ 8 biases), pointwise 8 -> 16 (+ 16 biases)
    assert shapes.depthwise_separable_params(8, 16, 3) == 8 * 9 + 8 * 16
    assert shapes.depthwise_separable_params(8, 16, 3, bias=True) == 8 * 9 + 8 + 8 * 16 + 16
    assert shapes.depthwise_separable_params(8, 16, (3, 5)) == 8 * 15 + 8 * 16
    assert shapes.conv2d_params(8, 16, (3, 5), groups=4) == 16 * 2 * 15 + 16
    assert shapes.conv2d_macs(8, 16, (3, 5), (7, 2), groups=4) == 7 * 2 * 16 * 2 * 15
    assert shapes.linear_params(7, 3) == 24 and shapes.linear_params(7, 3, bias=False) == 21
    assert shapes.linear_macs(7, 3) == 21 and shapes.numel((2, 3, 4)) == 24
    assert shapes.separable_spatial_flops_per_output(5) == (25, 10)


def test_shape_helpers_defaults_are_stride_1_and_no_padding():
    assert shapes.conv2d_output_shape((1, 1, 5, 6), (2, 1, 3, 3)) == (1, 2, 3, 4)
    assert shapes.pool2d_output_shape((1, 1, 4, 6), 2) == (1, 1, 2, 3)
    assert shapes.conv_output_size(5, 3) == 3 and shapes.conv_transpose_output_size(3, 3) == 5


def test_shape_helpers_take_each_axis_apart():
    assert shapes.conv2d_output_shape((2, 3, 9, 11), (4, 3, 3, 5), (2, 1), (1, 2), (1, 2)) == (2, 4, 5, 7)
    assert shapes.pool2d_output_shape((2, 3, 9, 11), (3, 2), None, (1, 0)) == (2, 3, 3, 5)
    assert shapes.pool2d_output_shape((2, 3, 9, 11), (3, 2), (2, 1), (1, 1)) == (2, 3, 5, 12)
    assert shapes.pool_output_size(9, 3) == 3 and shapes.pool_output_size(9, 3, 1, 1) == 9


@pytest.mark.parametrize("call, error, message", [
    (lambda: shapes.conv2d_params(1, 1, "3"), TypeError, "kernel_size must be an int or a pair (h, w) of ints, got str '3'"),
    (lambda: shapes.conv2d_macs(1, 1, 3, (2, 2, 2)), TypeError, "output_hw must be an int or a pair (h, w)"),
    (lambda: shapes.pool2d_output_shape((1, 1, 4, 4), 2, "2"), TypeError, "stride must be an int or a pair"),
    (lambda: shapes.conv2d_output_shape((1, 1, 4, 4), (1, 1, 2, 2), 1, 1.5), TypeError, "padding must be an int"),
    (lambda: shapes.conv2d_output_shape((1, 1, 4, 4), (1, 1, 2, 2), 1, 0, True), TypeError, "dilation must be"),
    (lambda: shapes.pool2d_output_shape((1, 1, 4, 4), (2, 2, 2)), TypeError,
     "kernel_size must be an int or a pair (h, w) of ints, got a sequence of length 3: (2, 2, 2)"),
])
def test_formula_arguments_are_named_in_their_errors(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


@pytest.mark.parametrize("x_shape, kwargs, message", [
    ((1, 0, 4, 4), {}, "max_pool2d: x must have C, H, W >= 1, got shape (1, 0, 4, 4)"),
    ((1, 2, 0, 4), {}, "max_pool2d: x must have C, H, W >= 1, got shape (1, 2, 0, 4)"),
    ((1, 2, 4, 0), {}, "max_pool2d: x must have C, H, W >= 1, got shape (1, 2, 4, 0)"),
    ((1, 1, 8, 8), dict(kernel_size=(3, 5), padding=(2, 0)),
     "max_pool2d: padding along height must be at most half the window, padding <= kernel_size//2 = 3//2 = 1, "
     "got padding=2"),
    ((1, 1, 8, 8), dict(kernel_size=(5, 3), padding=(0, 2)),
     "max_pool2d: padding along width must be at most half the window, padding <= kernel_size//2 = 3//2 = 1, "
     "got padding=2"),
    ((1, 1, 2, 8), dict(kernel_size=(5, 3), padding=(1, 0)),
     "max_pool2d: output height (2 + 2*1 - 5)//1 + 1 = 0 < 1: the window (5) is larger than the padded input "
     "height (4)"),
    ((1, 1, 8, 2), dict(kernel_size=(3, 5), padding=(0, 1)),
     "max_pool2d: output width (2 + 2*1 - 5)//1 + 1 = 0 < 1: the window (5) is larger than the padded input "
     "width (4)"),
    ((1, 1, 8, 8), dict(kernel_size=0), "max_pool2d: kernel_size"),
    ((1, 1, 8, 8), dict(kernel_size=2, stride=0), "max_pool2d: stride"),
    ((1, 1, 8, 8), dict(kernel_size=2, padding=-1), "max_pool2d: padding"),
])
def test_pool_geometry_errors_name_the_formula_and_the_numbers(x_shape, kwargs, message):
    kwargs = {"kernel_size": 3, "stride": 1, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.pool2d_geometry(x_shape, **kwargs)


def test_pool_geometry_keeps_each_axis():
    g = shapes.pool2d_geometry((2, 3, 9, 11), (3, 2), (2, 1), (1, 1))
    assert (g.n, g.c, g.h, g.w) == (2, 3, 9, 11)
    assert g.x_shape == (2, 3, 9, 11) and g.y_shape == (2, 3, 5, 12)
    default = shapes.pool2d_geometry((2, 3, 9, 11), (3, 2))
    assert default.y_shape == (2, 3, 3, 5)


def test_conv_geometry_with_batch_and_description():
    g = shapes.conv2d_geometry((2, 4, 9, 11), (6, 2, 3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
    assert g.y_shape == (2, 6, 5, 7) and g.w_shape == (6, 2, 3, 5) and g.x_shape == (2, 4, 9, 11)
    bigger = g.with_batch(5)
    assert bigger.x_shape == (5, 4, 9, 11) and bigger.y_shape == (5, 6, 5, 7) and bigger.w_shape == g.w_shape
    assert (bigger.stride, bigger.padding, bigger.dilation, bigger.groups) == (g.stride, g.padding, g.dilation, g.groups)
    assert g.describe() == "x 2x4x9x11, w 6x2x3x5, stride (2, 1), padding (1, 2), dilation (1, 2), groups 2"
    square = shapes.conv2d_geometry((1, 3, 8, 8), (4, 3, 3, 3), stride=2, padding=1, dilation=2)
    assert square.describe() == "x 1x3x8x8, w 4x3x3x3, stride 2, padding 1, dilation 2"
    assert shapes.conv2d_geometry((1, 3, 8, 8), (4, 3, 3, 3)).describe() == "x 1x3x8x8, w 4x3x3x3"


@pytest.mark.parametrize("call, name", [
    (lambda bad: shapes.conv2d_output_shape((1, 1, 4, 4), (1, 1, 2, 2), stride=bad), "stride"),
    (lambda bad: shapes.conv2d_output_shape((1, 1, 4, 4), (1, 1, 2, 2), padding=bad), "padding"),
    (lambda bad: shapes.conv2d_output_shape((1, 1, 4, 4), (1, 1, 2, 2), dilation=bad), "dilation"),
    (lambda bad: shapes.pool2d_output_shape((1, 1, 4, 4), bad), "kernel_size"),
    (lambda bad: shapes.pool2d_output_shape((1, 1, 4, 4), 2, stride=bad), "stride"),
    (lambda bad: shapes.pool2d_output_shape((1, 1, 4, 4), 2, padding=bad), "padding"),
    (lambda bad: shapes.conv2d_params(1, 1, bad), "kernel_size"),
    (lambda bad: shapes.conv2d_macs(1, 1, bad, 3), "kernel_size"),
    (lambda bad: shapes.conv2d_macs(1, 1, 3, bad), "output_hw"),
    (lambda bad: shapes.depthwise_separable_params(1, 1, bad), "kernel_size"),
])
def test_each_pair_argument_is_named_when_wrong(call, name):
    with pytest.raises(TypeError, match=re.escape(f"{name} must be an int or a pair (h, w) of ints, got str 'a'")):
        call("a")


def test_parse_shape_reads_the_separators_and_refuses_negative_sizes():
    assert shapes.parse_shape("64x6x14x14") == (64, 6, 14, 14)
    assert shapes.parse_shape("64,6,14,14") == shapes.parse_shape("64*6*14*14") == shapes.parse_shape("64X6X14X14")
    assert shapes.parse_shape("0x3") == (0, 3)
    with pytest.raises(ValueError, match=re.escape("shape must have sizes >= 0, got '-1x3'")):
        shapes.parse_shape("-1x3")
    with pytest.raises(ValueError, match=re.escape("input must be sizes joined by 'x', e.g. 64x6x14x14, got '3 by 4'")):
        shapes.parse_shape("3 by 4", name="input")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(groups="2"), TypeError, "conv2d: groups must be an int, got str '2'"),
    (dict(groups=True), TypeError, "conv2d: groups must be an int, got bool True"),
    (dict(groups=0), ValueError, "conv2d: groups must be >= 1, got 0"),
    (dict(stride=(1, 0)), ValueError, "conv2d: stride must be >= 1 along both axes, got stride=(1, 0)"),
    (dict(padding="1"), TypeError, "conv2d: padding must be an int or a pair (h, w) of ints, got str '1'"),
])
def test_conv_geometry_errors_name_the_function_the_argument_and_the_value(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        shapes.conv2d_geometry((1, 4, 6, 6), (2, 4, 3, 3), **kwargs)


def test_conv_geometry_takes_numpy_integers():
    import numpy as np

    g = shapes.conv2d_geometry((1, 4, 6, 6), (2, 2, 3, 3), stride=np.int64(2), groups=np.int64(2))
    assert g.groups == 2 and type(g.groups) is int and g.y_shape == (1, 2, 2, 2)


def test_pool_padding_bound_is_half_the_window():
    with pytest.raises(ValueError, match=re.escape("padding <= kernel_size//2 = 5//2 = 2, got padding=3")):
        shapes.pool2d_geometry((1, 1, 9, 9), 5, 1, 3)
    assert shapes.pool2d_geometry((1, 1, 9, 9), 5, 1, 2).y_shape == (1, 1, 9, 9)


@pytest.mark.parametrize("x_shape, w_shape, kwargs, message", [
    ((1, 4, 0, 6), (2, 4, 3, 3), {}, "conv2d: x must have C_in, H, W >= 1, got shape (1, 4, 0, 6)"),
    ((1, 4, 6, 0), (2, 4, 3, 3), {}, "conv2d: x must have C_in, H, W >= 1, got shape (1, 4, 6, 0)"),
    ((1, 4, 6, 6), (0, 4, 3, 3), {}, "conv2d: w must have every dimension >= 1, got shape (0, 4, 3, 3)"),
    ((1, 4, 6, 6), (2, 0, 3, 3), {}, "conv2d: w must have every dimension >= 1, got shape (2, 0, 3, 3)"),
    ((1, 4, 6, 6), (2, 4, 0, 3), {}, "conv2d: w must have every dimension >= 1, got shape (2, 4, 0, 3)"),
    ((1, 4, 6, 6), (2, 4, 3, 0), {}, "conv2d: w must have every dimension >= 1, got shape (2, 4, 3, 0)"),
    ((1, 4, 6, 6), (2, 3, 3, 3), dict(groups=2),
     "conv2d: channel mismatch: w.shape[1]=3 must equal C_in/groups = 4/2 = 2 (x has C_in=4)"),
    ((1, 4, 6, 6), (2, 4, 3, 3), dict(dilation=0), "conv2d: dilation must be >= 1 along both axes, got dilation=0"),
])
def test_conv_geometry_shape_errors(x_shape, w_shape, kwargs, message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        shapes.conv2d_geometry(x_shape, w_shape, **kwargs)
