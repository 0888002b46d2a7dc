"""The textbook Winograd F(2x2, 3x3) module (minicnn/winograd.py) against the direct correlation.

The cython backend's ``winograd`` path is checked against the reference in test_plans.py (forced by
name, like every path); here: the matrices of Lavin and Gray (2016), their 1-D identity, the NumPy
functions in float64, and the float32 accuracy of the compiled path on a deep layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.winograd import AT, BT, G, winograd_conv2d, winograd_input_grad


@given(seed=st.integers(0, 2**32 - 1))
def test_the_matrices_compute_two_outputs_of_a_three_tap_correlation(seed):
    """F(2, 3): A^T [(G g) ⊙ (B^T d)] = (d0 g0 + d1 g1 + d2 g2, d1 g0 + d2 g1 + d3 g2)."""
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(4), rng.standard_normal(3)
    want = np.array([d[0] * g[0] + d[1] * g[1] + d[2] * g[2], d[1] * g[0] + d[2] * g[1] + d[3] * g[2]])
    np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), want, rtol=1e-12, atol=1e-12)
    assert BT.shape == (4, 4) and G.shape == (4, 3) and AT.shape == (2, 4)


def test_the_matrices_are_lavin_and_grays():
    np.testing.assert_array_equal(BT, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    np.testing.assert_array_equal(G, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, -1]])


@st.composite
def layers(draw):
    p = draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, 3 - 2 * p), 13)), draw(st.integers(max(1, 3 - 2 * p), 13))
    return draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)), h, w, p


@settings(max_examples=60)
@given(layer=layers(), seed=st.integers(0, 2**32 - 1))
def test_the_numpy_winograd_forward_and_input_gradient_match_the_direct_correlation(layer, seed):
    n, c, o, h, w, p = layer
    rng = np.random.default_rng(seed)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    want = F.conv2d(x, wt, b, padding=p, backend="numpy")
    np.testing.assert_allclose(winograd_conv2d(x, wt, p, b), want, rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(want.shape)
    want_dx = F.conv2d_grad(x, wt, dy, padding=p, backend="numpy")[0]
    np.testing.assert_allclose(winograd_input_grad(wt, dy, p, x.shape), want_dx, rtol=1e-10, atol=1e-10)


def test_the_numpy_winograd_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="3x3"):
        winograd_conv2d(np.zeros((1, 2, 5, 5)), np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="padding above 2"):
        winograd_input_grad(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 9, 9)), 3, (1, 1, 5, 5))


@pytest.mark.parametrize("op", ["forward", "input_grad"])
def test_the_compiled_float32_winograd_is_as_accurate_as_a_direct_sum_on_a_wide_layer(op):
    """float32 against the float64 reference on a layer with K = 128*9 taps per output: the transforms
    add and halve values, but F(2x2, 3x3) loses little (on the deep 256-channel layer, AMD Zen 5: max
    error 7.7e-7 of the largest output, direct kernel 2.2e-6). Bound: 1e-5 of the largest value, which
    holds for any summation order of the 16 products (about sqrt(K) * 2**-24 * a few)."""
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 128, 14, 13)), rng.standard_normal((96, 128, 3, 3)) / np.sqrt(128 * 9)
    b = rng.standard_normal(96)
    x32, w32, b32 = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    if op == "forward":
        want = F.conv2d(x, w, b, padding=1, backend="numpy")
        got = F.conv2d(x32, w32, b32, padding=1, plan="winograd", backend="cython")
    else:
        dy = rng.standard_normal((2, 96, 14, 13))
        want = F.conv2d_grad(x, w, dy, padding=1, backend="numpy")[0]
        got = F.conv2d_grad(x32, w32, dy.astype(np.float32), padding=1,
                            plan={"input_grad": "winograd", "weight_grad": "reference"}, backend="cython")[0]
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_the_static_table_never_picks_winograd_only_the_autotuner_may():
    """Its speed depends on the BLAS build (with OPENBLAS_CORETYPE=Haswell it lost to the direct kernel
    on the Zen 5 machine), so ``prefers`` gives a reason for every layer and the static plan skips it."""
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    from minicnn import shapes
    from minicnn.backends.cython_backend import CythonBackend

    backend = CythonBackend(autotune=False)
    path = backend.paths["winograd"]
    g = shapes.conv2d_geometry((16, 256, 14, 14), (256, 256, 3, 3), padding=1)
    for op in ("forward", "input_grad"):
        assert path.takes(op, g, np.float32) == ""
        assert "chosen only by measurement" in path.prefers(op, g, np.float32)
    plan = backend.plan_conv2d(g, np.float32)
    assert "winograd" not in (plan.forward, plan.input_grad, plan.weight_grad)
    assert "has no weight_grad kernel" in path.takes("weight_grad", g, np.float32)
    assert "3x3" in path.takes("forward", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 5, 5)), np.float32)
    assert "stride 1" in path.takes("forward", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 3, 3), stride=2), np.float32)
    assert "padding larger than 2" in path.takes("input_grad", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 3, 3), padding=3),
                                                 np.float32)


@pytest.mark.parametrize("x_shape, out, padding", [
    ((2, 3, 5, 6), 4, 3),      # forward padding beyond 2: whole patches in the padding
    ((1, 2, 1, 2), 3, 4),      # an input smaller than one patch
    ((1, 2, 3, 700), 5, 1),    # 350 tiles in a row: a row spans several blocks
    ((2, 700, 4, 5), 3, 1),    # more channels than one staging chunk of the filter transform (128)
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_winograd_forward_on_edge_shapes(x_shape, out, padding, dtype):
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((out, x_shape[1], 3, 3)), rng.standard_normal(out)
    want = F.conv2d(x, w, b, padding=padding, backend="numpy")
    got = F.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding=padding, plan="winograd", backend="cython")
    bound = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(got - want).max() <= bound * np.abs(want).max()
