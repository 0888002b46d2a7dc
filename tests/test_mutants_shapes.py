"""``minicnn.shapes``' pooling geometry, checked where mutation testing (tools/mutation.py) found it untested.

The output size and the checks of ``pool2d_geometry`` (``torch.nn.functional``'s pooling options: padding before
and after, dilation, ``ceil_mode``) are compared, for every small case, with the definitions written out here.
"""

import itertools
import re

import pytest

from minicnn.shapes import pool2d_geometry


def _output_size(size, k, s, p, e, d, ceil_mode):
    """``floor`` (or ``ceil``) of ``(H + P_0 + P_1 - D*(F - 1) - 1)/S``, plus one; with ``ceil_mode`` the last window
    is dropped when it would start past the input and its leading padding (``(H_out - 1)*S >= H + P_0``)."""
    span = size + p + e - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _expected_error(size, k, s, p, e, d, ceil_mode):
    """The message ``pool2d_geometry`` gives for this height axis, or None when the call is valid."""
    out = _output_size(size, k, s, p, e, d, ceil_mode)
    if out < 1 and p == e and d == 1 and not ceil_mode:
        return (f"max_pool2d: output height ({size} + 2*{p} - {k})//{s} + 1 = {out} < 1: the window ({k}) is larger "
                f"than the padded input height ({size + 2 * p})")
    if out < 1:
        return (f"max_pool2d: output height {'ceil' if ceil_mode else 'floor'}(({size} + {p} + {e} - {d}*({k}-1) - 1)"
                f"/{s}) + 1 = {out} < 1: the window spans {d * (k - 1) + 1} pixels but the padded input height is "
                f"{size + p + e}")
    for i in range(out):
        start = i * s - p
        if not any(0 <= start + d * t < size for t in range(k)):
            return (f"max_pool2d: window {i} along height has no tap on the image: taps {start} + {d}*[0, {k}) all "
                    f"lie in the padding of an input of {size} pixels; use less padding or dilation")
    return None


CASES = [(size, k, s, p, e, d, ceil_mode)
         for size, k, s, d, ceil_mode in itertools.product(range(1, 6), range(1, 6), range(1, 4), range(1, 4),
                                                           (False, True))
         for p, e in itertools.product(range(k // 2 + 1), repeat=2)]


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("height", range(1, 6))
def test_pool_output_height_and_checks_are_the_definitions_for_every_small_case(height, ceil_mode):
    """For every height 1..5, window 1..5, stride 1..3, dilation 1..3 and padding before and after up to half the
    window: the output height is the definition's, or the error is the one that names the formula and the numbers
    (a window of only padding is refused, naming the first such window)."""
    checked = {"valid": 0, "too small": 0, "no tap": 0}
    for size, k, s, p, e, d, ceil in CASES:
        if ceil != ceil_mode or size != height:
            continue
        kwargs = dict(stride=(s, 1), padding=(0, 0, p, e), dilation=(d, 1), ceil_mode=ceil)
        message = _expected_error(size, k, s, p, e, d, ceil)
        if message is None:
            geometry = pool2d_geometry((1, 1, size, 1), (k, 1), **kwargs)
            assert geometry.oh == _output_size(size, k, s, p, e, d, ceil), (size, k, s, p, e, d, ceil)
            checked["valid"] += 1
            continue
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            pool2d_geometry((1, 1, size, 1), (k, 1), **kwargs)
        checked["too small" if "< 1" in message else "no tap"] += 1
    assert checked["valid"] and checked["too small"] + checked["no tap"], checked


@pytest.mark.parametrize("padding, side, pad", [((0, 0, 3, 0), "", 3), ((0, 0, 2, 3), " after the input", 3),
                                                ((0, 0, 0, 4), " after the input", 4)])
def test_pool_padding_beyond_half_the_window_names_its_side(padding, side, pad):
    """Padding before or after the input (F.pad's four numbers) may be at most half the window, F//2 = 5//2 = 2."""
    message = (f"max_pool2d: padding{side} along height must be at most half the window, padding <= kernel_size//2 = "
               f"5//2 = 2, got padding={pad}")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pool2d_geometry((1, 1, 9, 9), (5, 1), padding=padding)


def test_pool_geometry_defaults_are_torchs():
    """Without options a pooling call is the deck's: no dilation, floor rounding, padding alike before and after, and
    average pooling counts the padded zeros (``count_include_pad=True``, every window divides by F_H*F_W)."""
    geometry = pool2d_geometry((1, 1, 5, 5), 3, 2, 1)
    assert (geometry.dilation, geometry.ceil_mode, geometry.padding_end) == ((1, 1), False, (1, 1))
    assert geometry.count_include_pad is True and geometry.divisor_override is None
    assert geometry.plain_divisor and geometry.symmetric


@pytest.mark.parametrize("padding", [(0, 1, 1.0, 0), (0, True, 1, 0), (0, 1, "1", 0)])
def test_pool_padding_of_four_wants_four_ints(padding):
    """F.pad's four numbers must be ints (NumPy integers too): a float, a bool or a string is refused, naming them."""
    message = f"max_pool2d: padding must be an int, a pair (h, w) or 4 ints (left, right, top, bottom), got {padding!r}"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        pool2d_geometry((1, 1, 5, 5), 3, padding=padding)


def test_pool_padding_of_four_takes_numpy_integers():
    """``(left, right, top, bottom)`` as NumPy integers is the same padding as Python ints."""
    import numpy as np

    geometry = pool2d_geometry((1, 1, 5, 5), 3, padding=tuple(np.int64(v) for v in (0, 1, 1, 0)))
    assert (geometry.padding, geometry.padding_end) == ((1, 0), (0, 1))
    assert all(type(v) is int for v in geometry.padding + geometry.padding_end)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(padding=(0, 0, -1, 0)), ValueError,
     "max_pool2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (0, 0, -1, 0)"),
    (dict(padding=(0, -2, 0, 0)), ValueError,
     "max_pool2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (0, -2, 0, 0)"),
    (dict(dilation=0), ValueError, "max_pool2d: dilation must be >= 1 along both axes, got dilation=0"),
    (dict(dilation=(1, "a")), TypeError, "max_pool2d: dilation must be an int or a pair (h, w) of ints, got (1, 'a')"),
    (dict(ceil_mode=1), TypeError, "max_pool2d: ceil_mode must be a bool, got int 1"),
    (dict(count_include_pad=None), TypeError, "max_pool2d: count_include_pad must be a bool, got NoneType None"),
    (dict(divisor_override=0), ValueError, "max_pool2d: divisor_override must be >= 1, got 0"),
    (dict(divisor_override=1.5), TypeError, "max_pool2d: divisor_override must be an int, got float 1.5"),
])
def test_pool_geometry_refuses_wrong_options_by_name(kwargs, error, message):
    """Each side of F.pad's four numbers must be >= 0, before the input as after it; the dilation is >= 1 per axis;
    the flags are bools and ``divisor_override`` an int >= 1; each message names the function and the option."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        pool2d_geometry((1, 1, 5, 5), 3, **kwargs)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pool2d_output_shape_is_the_definition_per_axis_and_side(ceil_mode):
    """``pool2d_output_shape`` (the formula, no checks) takes F.pad's ``(left, right, top, bottom)``, a dilation and
    ``ceil_mode`` per axis, as ``pool2d_geometry`` does; a dilation that is not an int or a pair is named."""
    from minicnn.shapes import pool2d_output_shape

    got = pool2d_output_shape((2, 3, 9, 8), (3, 2), 2, (1, 0, 0, 1), dilation=(2, 1), ceil_mode=ceil_mode)
    assert got == (2, 3, _output_size(9, 3, 2, 0, 1, 2, ceil_mode), _output_size(8, 2, 2, 1, 0, 1, ceil_mode))
    assert got[3] == (5 if ceil_mode else 4)  # (8 + 1 + 0 - 1 - 1)/2 = 3.5, rounded up or down, + 1 columns
    with pytest.raises(TypeError, match=r"^dilation must be an int or a pair \(h, w\) of ints, got str 'a'$"):
        pool2d_output_shape((1, 1, 5, 5), 2, dilation="a")


def test_pool_output_size_defaults_are_the_decks():
    """``pool_output_size(H, F)`` is the deck's non-overlapping pooling: stride F, no padding, no dilation, floor
    rounding, so a 5-pixel axis holds 2 windows of 2 (the fifth pixel is dropped)."""
    from minicnn.shapes import pool_output_size

    assert pool_output_size(5, 2) == 2
    assert pool_output_size(5, 2, ceil_mode=True) == 3
    assert pool_output_size(7, 3, 1) == 5 and pool_output_size(7, 3, 1, dilation=2) == 3


def test_pool_geometry_padding_end_defaults_to_the_padding_and_describe_names_the_options():
    """A ``PoolGeometry`` built without ``padding_end`` pads alike after the input; ``describe()`` names the kernel and
    stride and, of the options, only those that are not the defaults."""
    from minicnn.shapes import PoolGeometry

    assert PoolGeometry(1, 1, 5, 5, (2, 2), (2, 2), (1, 0), 3, 2).padding_end == (1, 0)
    assert pool2d_geometry((2, 3, 7, 8), 3, 2, 1).describe() == "x 2x3x7x8, kernel (3, 3), stride (2, 2), padding (1, 1)"
    assert pool2d_geometry((2, 3, 7, 8), (3, 2), (2, 1), (0, 1, 1, 0), dilation=(1, 2), ceil_mode=True).describe() == (
        "x 2x3x7x8, kernel (3, 2), stride (2, 1), padding (1, 0), padding_end (0, 1), dilation (1, 2), ceil_mode True")
    assert pool2d_geometry((1, 1, 4, 4), 2).describe() == "x 1x1x4x4, kernel (2, 2), stride (2, 2)"


# ------------------------------------------------------------------ conv2d_padding, pad_output_shape, pair
@pytest.mark.parametrize("padding, kernel_size, expected", [
    ("same", 3, ((1, 1), None)),
    ("same", 1, ((0, 0), None)),
    ("same", (2, 3), ((0, 1), (0, 0, 0, 1))),
    ((1, 1, 1, 1), 3, ((1, 1), None)),
    ((1, 2, 0, 1), 3, ((0, 1), (0, 1, 0, 1))),
])
def test_conv_padding_defaults_give_same_padding_and_no_extra_when_symmetric(padding, kernel_size, expected):
    """With the default stride 1 and dilation 1, ``"same"`` pads ``F - 1`` pixels per axis, half before and the odd
    one after (a 1x1 kernel needs none); the F.pad extra is ``None`` whenever both sides of every axis agree."""
    from minicnn.shapes import conv2d_padding

    assert conv2d_padding(padding, kernel_size) == expected


@pytest.mark.parametrize("args, kwargs, error, message", [
    (("same", 3), dict(stride=0), ValueError, "conv2d: stride must be >= 1 along both axes, got stride=0"),
    (("same", 3), dict(stride="a"), TypeError, "conv2d: stride must be an int or a pair (h, w) of ints, got str 'a'"),
    (("same", 0), {}, ValueError, "conv2d: kernel_size must be >= 1 along both axes, got kernel_size=0"),
    (("same", 1.5), {}, TypeError,
     "conv2d: kernel_size must be an int or a pair (h, w) of ints, got float 1.5"),
    (("same", 3), dict(dilation=0), ValueError, "conv2d: dilation must be >= 1 along both axes, got dilation=0"),
    (("same", 3), dict(dilation=(1, 2, 3)), TypeError,
     "conv2d: dilation must be an int or a pair (h, w) of ints, got a sequence of length 3: (1, 2, 3)"),
    ((-1, 3), {}, ValueError, "conv2d: padding must be >= 0 along both axes, got padding=-1"),
    (((0, 0, -1, 0), 3), {}, ValueError,
     "conv2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (0, 0, -1, 0)"),
    (((-1, 0, 0, 0), 3), {}, ValueError,
     "conv2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (-1, 0, 0, 0)"),
])
def test_conv_padding_errors_name_the_default_function_and_the_argument(args, kwargs, error, message):
    """Each wrong stride, kernel size, dilation or padding (each of F.pad's four sides, top and left too) is refused
    with a message that starts with the default function name ``conv2d`` and names the argument and its value."""
    from minicnn.shapes import conv2d_padding

    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        conv2d_padding(*args, **kwargs)


@pytest.mark.parametrize("shape, pad, message", [
    ((2,), (1,), "pad: pad must have an even length of at most 2*ndim = 2 (pairs for the last axes, last axis "
                 "first), got 1 values for an input of shape (2,)"),
    ((2, 3), (0, 0, -5, 1), "pad: axis 0 would have size 2 + -5 + 1 = -2 < 0"),
    ((2, 3), (-2, -4, 0, 0), "pad: axis 1 would have size 3 + -2 + -4 = -3 < 0"),
])
def test_pad_output_shape_errors_name_pad_and_the_axis_amounts(shape, pad, message):
    """F.pad's shape check names the default function ``pad``; an axis cropped below 0 is shown with its size and
    its own two amounts (before, after), for the last axis and the one before it."""
    from minicnn.shapes import pad_output_shape

    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        pad_output_shape(shape, pad)


def test_pair_default_name_and_numpy_integers_inside_a_pair():
    """``pair`` names its argument ``value`` by default, and takes NumPy integers inside an ``(h, w)`` pair as ints."""
    import numpy as np

    from minicnn.shapes import pair

    with pytest.raises(TypeError, match=r"^value must be an int or a pair \(h, w\) of ints, got str 'a'$"):
        pair("a")
    got = pair((np.int64(3), np.int32(5)))
    assert got == (3, 5) and all(type(v) is int for v in got)


def test_pair_without_numpy_refuses_a_float(monkeypatch):
    """Where NumPy cannot be imported, nothing is a NumPy integer: a float is still refused, not truncated."""
    import sys

    from minicnn.shapes import pair

    monkeypatch.setitem(sys.modules, "numpy", None)
    with pytest.raises(TypeError, match=r"^value must be an int or a pair \(h, w\) of ints, got float 1\.5$"):
        pair(1.5)


def test_dilated_extent_default_is_undilated():
    """Without a dilation a kernel of F taps spans F pixels; with rate 2 a 3-tap kernel spans 5."""
    from minicnn.shapes import dilated_extent

    assert (dilated_extent(3), dilated_extent(1), dilated_extent(3, 2)) == (3, 1, 5)
