"""The reference backend's primitives, checked where mutation testing (tools/mutation.py) found them untested.

Each test asserts the documented behaviour of a primitive of ``NumpyBackend``
(the backend protocol every backend follows, minicnn/backends/__init__.py) or
of the functional edge that calls it, computed independently of the code
under test.
"""

import numpy as np
import pytest

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
