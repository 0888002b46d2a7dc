"""The reference backend's primitives, checked where mutation testing (tools/mutation.py) found them untested.

Each test asserts the documented behaviour of a primitive of ``NumpyBackend``
(the backend protocol every backend follows, minicnn/backends/__init__.py) or
of the functional edge that calls it, computed independently of the code
under test.
"""

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn.backends import get_backend


def _linear_case(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, 5))
    w = rng.standard_normal((4, 5))
    dy = rng.standard_normal((3, 4))
    return x, w, dy


def test_linear_grad_primitive_computes_dx_by_default():
    """The protocol's ``linear_grad(x, w, dy)`` returns ``dx = dy W`` unless told ``input_grad=False``."""
    x, w, dy = _linear_case()
    dx, dw, db = get_backend("numpy").linear_grad(x, w, dy)
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-12)
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-12)


def test_linear_grad_without_input_grad_returns_no_dx():
    """``input_grad=False`` skips ``dx`` (None) and still gives both parameter gradients."""
    x, w, dy = _linear_case(1)
    dx, dw, db = F.linear_grad(x, w, dy, input_grad=False, backend="numpy")
    assert dx is None
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-12)
    assert get_backend("numpy").linear_grad(x, w, dy, input_grad=False)[0] is None


def test_max_pool_window_of_only_minus_inf_reports_its_first_real_pixel():
    """A window holding only -inf reports the first real pixel of the window, ``(max(i*S_h - P_h, 0),
    max(j*S_w - P_w, 0))``, as PyTorch does; the strides and paddings differ per axis so that none stands in
    for the other."""
    n, c, h, w = 1, 2, 7, 9
    kernel, stride, padding = (3, 4), (2, 3), (1, 2)
    x = np.full((n, c, h, w), -np.inf)
    y, indices = F.max_pool2d_with_indices(x, kernel, stride=stride, padding=padding, backend="numpy")
    oh, ow = y.shape[2:]
    rows = np.maximum(np.arange(oh) * stride[0] - padding[0], 0)
    cols = np.maximum(np.arange(ow) * stride[1] - padding[1], 0)
    want = np.broadcast_to(rows[:, None] * w + cols[None, :], (n, c, oh, ow))
    assert np.all(y == -np.inf)
    np.testing.assert_array_equal(indices, want)


def test_reference_backend_drops_a_plan_object_and_refuses_a_path_name():
    """A ``ConvPlan`` (another backend's choice, e.g. one kept by a layer that moved) is dropped: the reference
    computes the same result as without one; a path name is refused, since the reference has one path."""
    from minicnn.backends.plans import ConvPlan

    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    plan = ConvPlan(forward="im2col", input_grad="im2col", weight_grad="im2col")
    assert get_backend("numpy").plan_conv2d(None, np.float64, plan) is None
    np.testing.assert_array_equal(F.conv2d(x, w, plan=plan, backend="numpy"), F.conv2d(x, w, backend="numpy"))
    for got, want in zip(F.conv2d_grad(x, w, dy, plan=plan, backend="numpy"), F.conv2d_grad(x, w, dy, backend="numpy")):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="plan: the numpy backend has no kernel paths to choose from"):
        F.conv2d(x, w, plan="im2col", backend="numpy")


def test_conv2d_grad_without_input_grad_returns_no_dx():
    """``input_grad=False`` skips ``dX`` (None, deck 002's first layer needs no delta) and leaves dW, db as they are."""
    rng = np.random.default_rng(4)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 4, 4))
    dx, dw, db = F.conv2d_grad(x, w, dy, input_grad=False, backend="numpy")
    _, want_dw, want_db = F.conv2d_grad(x, w, dy, backend="numpy")
    assert dx is None
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_grad_keeps_the_float32_dtype_of_its_input(mode):
    """``F.pad_grad`` returns ``dx`` in the dtype of ``x`` and ``dy`` (float32 stays float32), with the values of the
    float64 computation up to float32 rounding: each element sums at most 4 x 3 copies of ``dy`` (replicate's edges),
    so it is off by at most 11 roundings (unit roundoff eps/2) of the sum of their magnitudes."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    pad = (2, 1, 1, 3)
    dy = rng.standard_normal(F.pad(x, pad, mode, backend="numpy").shape).astype(np.float32)
    dx = F.pad_grad(x, dy, pad, mode, backend="numpy")
    want = F.pad_grad(x.astype(np.float64), dy.astype(np.float64), pad, mode, backend="numpy")
    assert dx.dtype == np.float32
    assert dx.shape == x.shape
    bound = 5.5 * np.finfo(np.float32).eps * F.pad_grad(x.astype(np.float64), np.abs(dy.astype(np.float64)), pad, mode,
                                                        backend="numpy")
    assert np.all(np.abs(dx - want) <= bound)


@pytest.mark.skipif("cython" not in mc.available_backends(), reason="the Cython kernels are not built")
def test_conv2d_and_weight_grad_runs_each_half_on_its_forced_path():
    """A plan forcing different paths for the forward product and the weight gradient runs each on its own path: the
    bits are those of ``conv2d`` on the forward path and of ``conv2d_weight_grad`` on the weight-gradient path
    (winograd and im2col round differently from the other paths, e.g. the one the backend would pick by itself)."""
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3))
    dy = rng.standard_normal((2, 4, 5, 5))
    plan = {"forward": "winograd", "weight_grad": "im2col"}
    y, dw, db = F.conv2d_and_weight_grad(x, w, dy, plan=plan, backend="cython")
    want_dw, want_db = F.conv2d_weight_grad(x, w.shape, dy, plan="im2col", backend="cython")
    assert np.array_equal(y, F.conv2d(x, w, plan="winograd", backend="cython"))
    assert np.array_equal(dw, want_dw) and np.array_equal(db, want_db)


def test_constant_pad_that_crops_past_the_whole_input_leaves_only_the_value():
    """Negative amounts crop (as ``torch.nn.functional.pad``); cropping 5 from the left of a 3-wide axis and padding 4
    on its right leaves 3 + (-5) + 4 = 2 columns that all lie past the input: the output is the value alone, and the
    gradient sends nothing back to ``x``."""
    x = np.arange(12.0).reshape(2, 2, 3)
    y = F.pad(x, (-5, 4, 1, 0), value=7.0, backend="numpy")
    np.testing.assert_array_equal(y, np.full((2, 3, 2), 7.0))
    dx = F.pad_grad(x, np.ones((2, 3, 2)), (-5, 4, 1, 0), backend="numpy")
    np.testing.assert_array_equal(dx, np.zeros_like(x))


def _max_pool_by_loops(x, kernel, stride, padding, dilation, ceil_mode):
    """Max pooling written out window by window: output ``(i, j)`` looks at taps ``(i*S_h - P_h + p*D_h,
    j*S_w - P_w + q*D_w)`` that lie on the image; the first largest wins and a window of only -inf reports its first
    tap on the image. Returns ``(y, flat indices h*W + w)``."""
    from minicnn.shapes import pool_output_size

    n, c, h, w = x.shape
    oh = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    y = np.empty((n, c, oh, ow), dtype=x.dtype)
    indices = np.empty((n, c, oh, ow), dtype=np.int64)
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    best, where = None, None
                    for p in range(kernel[0]):
                        for q in range(kernel[1]):
                            r = i * stride[0] - padding[0] + p * dilation[0]
                            s = j * stride[1] - padding[1] + q * dilation[1]
                            if 0 <= r < h and 0 <= s < w and (best is None or x[a, b, r, s] > best):
                                best, where = x[a, b, r, s], r * w + s
                    y[a, b, i, j], indices[a, b, i, j] = best, where
    return y, indices


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode", [
    ((3, 2), (2, 1), (1, 0), (1, 1), False),     # padding along the height only
    ((2, 3), (2, 2), (1, 1), (1, 1), False),     # padding before each axis and none needed after it
    ((2, 3), (1, 2), (0, 1), (1, 1), True),      # ... along the width only, partial windows kept
    ((3, 3), (1, 2), (1, 1), (2, 1), False),     # dilated rows, strided columns
    ((2, 3), (3, 1), (1, 1), (1, 2), True),      # dilated columns, strided rows
    ((5, 4), (2, 3), (2, 2), (2, 3), True),      # windows whose first tap lies 2 = D_h padded pixels before the image
])
def test_max_pool_values_and_indices_are_the_windows_by_loops(kernel, stride, padding, dilation, ceil_mode, dtype):
    """The reference's max pooling equals the window-by-window definition for strides, paddings and dilations that
    differ per axis, with ``ceil_mode``, ties and windows holding only -inf, in the input's dtype with int64 indices;
    its gradient routes each window's error to that winner (windows sharing one add their errors)."""
    rng = np.random.default_rng(9)
    x = rng.integers(-6, 6, size=(2, 2, 9, 10)).astype(dtype)  # many ties: the first one wins
    x[0, 0] = -np.inf              # every window holds only -inf
    x[1, 0, :4, :] = -np.inf       # the top windows do
    x[1, 1, :, :3] = -np.inf       # the left ones do
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode, backend="numpy")
    y, indices = F.max_pool2d_with_indices(x, kernel, **kwargs)
    want_y, want_indices = _max_pool_by_loops(x, kernel, stride, padding, dilation, ceil_mode)
    assert y.dtype == dtype and indices.dtype == np.int64
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(indices, want_indices)
    dy = rng.permutation(y.size).reshape(y.shape).astype(dtype)
    dx = F.max_pool2d_grad(x, dy, kernel, indices=indices, **kwargs)
    want_dx = np.zeros((2 * 2, 9 * 10), dtype=dtype)
    np.add.at(want_dx, (np.arange(4)[:, None], want_indices.reshape(4, -1)), dy.reshape(4, -1))
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, want_dx.reshape(x.shape))


def _avg_pool_by_loops(x, dy, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Average pooling and its gradient written out window by window, in float64: output ``(i, j)`` sums the image
    pixels of rows ``[i*S_h - P_top, i*S_h - P_top + F_h)`` (columns alike) and divides by ``divisor_override``, else
    by the window clipped to the padded input ``[-P_top, H + P_bottom)`` (``count_include_pad``) or to the image
    ``[0, H)``; each of those pixels gets ``dy`` divided alike. ``padding`` is ``(left, right, top, bottom)``.
    Returns ``(y, dx, |dx|)``, the last from ``|dy|`` (the scale of dx's rounding)."""
    from minicnn.shapes import pool_output_size

    left, right, top, bottom = padding
    n, c, h, w = x.shape
    oh = pool_output_size(h, kernel[0], stride[0], top, 1, ceil_mode, bottom)
    ow = pool_output_size(w, kernel[1], stride[1], left, 1, ceil_mode, right)
    y = np.empty((n, c, oh, ow))
    dx, dx_abs = np.zeros(x.shape), np.zeros(x.shape)
    for i in range(oh):
        for j in range(ow):
            r0, s0 = i * stride[0] - top, j * stride[1] - left
            r1, s1 = r0 + kernel[0], s0 + kernel[1]
            if divisor_override is not None:
                divisor = divisor_override
            elif count_include_pad:
                divisor = (min(r1, h + bottom) - max(r0, -top)) * (min(s1, w + right) - max(s0, -left))
            else:
                divisor = (min(r1, h) - max(r0, 0)) * (min(s1, w) - max(s0, 0))
            rows, cols = slice(max(r0, 0), max(r1, 0)), slice(max(s0, 0), max(s1, 0))
            y[:, :, i, j] = x[:, :, rows, cols].astype(np.float64).sum(axis=(2, 3)) / divisor
            dx[:, :, rows, cols] += dy[:, :, i, j, None, None].astype(np.float64) / divisor
            dx_abs[:, :, rows, cols] += np.abs(dy[:, :, i, j, None, None].astype(np.float64)) / divisor
    return y, dx, dx_abs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, count_include_pad, divisor_override", [
    ((3, 2), (2, 1), (0, 0, 1, 1), False, True, None),   # padding along the height only
    ((2, 3), (1, 2), (1, 1, 0, 0), True, True, None),    # ... along the width only, partial windows kept
    ((3, 3), (2, 3), (1, 0, 0, 1), True, True, None),    # F.pad's four sides: left and bottom only
    ((3, 3), (2, 3), (0, 1, 1, 0), True, False, None),   # right and top only, real pixels counted
    ((2, 3), (3, 2), (1, 1, 1, 0), False, True, 5),      # every window divided by 5
    ((3, 2), (1, 3), (1, 0, 1, 1), False, True, None),   # windows reach the bottom padding, not the right end
])
def test_avg_pool_values_and_gradient_are_the_windows_by_loops(kernel, stride, padding, ceil_mode, count_include_pad,
                                                               divisor_override, dtype):
    """The reference's average pooling equals the window-by-window definition (``torch.nn.functional.avg_pool2d``'s
    divisors) for strides and paddings that differ per axis and side, in the input's dtype; so does its gradient,
    which hands every pixel of a window the window's error divided by the window's divisor."""
    rng = np.random.default_rng(10)
    x = rng.integers(-8, 8, size=(2, 2, 8, 9)).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                  divisor_override=divisor_override, backend="numpy")
    y = F.avg_pool2d(x, kernel, **kwargs)
    dy = rng.integers(-8, 8, size=y.shape).astype(dtype)
    want, want_dx, dx_scale = _avg_pool_by_loops(x, dy, kernel, stride, padding, ceil_mode, count_include_pad,
                                                 divisor_override)
    assert y.dtype == dtype and y.shape == want.shape
    eps = np.finfo(dtype).eps
    # a window's sum of at most 9 small integers is exact, its division rounds once (by eps/2 at most)
    np.testing.assert_allclose(y, want, rtol=eps, atol=0)
    dx = F.avg_pool2d_grad(x, dy, kernel, **kwargs)
    assert dx.dtype == dtype and dx.shape == x.shape
    # each pixel sums at most 3 x 3 windows' shares, each rounded once: at most 9 roundings of eps/2 of their scale
    assert np.all(np.abs(dx - want_dx) <= 4.5 * eps * dx_scale)
