"""The textbook Winograd module (minicnn/winograd.py, F(2x2, 3x3) and F(4x4, 3x3)) against the direct correlation.

The cython backend's ``winograd`` path is checked against the reference in test_plans.py (forced by
name, like every path); here: the matrices of Lavin and Gray (2016), their defining identity and
polynomial points, the NumPy forward, input and weight gradients in float64, the adjoint identity,
float32 within the derived error bound, the measured error growth, and the float32 accuracy of the
compiled path on a wide layer.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn.winograd import (AT, AT4, BT, BT4, G, G4, MATRICES, POINTS, error_bound, multiplications,
                              winograd_conv2d, winograd_input_grad, winograd_weight_grad)


@pytest.mark.parametrize("m", [2, 4])
@given(seed=st.integers(0, 2**32 - 1))
def test_the_matrices_compute_m_outputs_of_a_three_tap_correlation(m, seed):
    """F(m, 3): A^T [(G g) ⊙ (B^T d)] = (d_i g0 + d_{i+1} g1 + d_{i+2} g2 for i < m), the defining identity."""
    at, g_mat, bt = MATRICES[m]
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
    want = np.array([d[i:i + 3] @ g for i in range(m)])
    np.testing.assert_allclose(at @ ((g_mat @ g) * (bt @ d)), want, rtol=1e-12, atol=1e-12)
    assert bt.shape == (m + 2, m + 2) and g_mat.shape == (m + 2, 3) and at.shape == (m, m + 2)


def _powers(point, count):
    """(1, a, ..., a^(count-1)) for a polynomial point a; "infinity" is the leading coefficient alone."""
    if np.isinf(point):
        return np.eye(count)[-1]
    return np.array([float(point) ** k for k in range(count)])


@pytest.mark.parametrize("m", [2, 4])
def test_the_matrices_evaluate_and_interpolate_at_their_polynomial_points(m):
    """Toom-Cook: row j of G evaluates the filter polynomial at point a_j (a multiple of (1, a_j, a_j^2)),
    column j of A^T holds the powers of a_j (a multiple of (1, a_j, ..., a_j^(m-1))); nothing else."""
    at, g_mat, _ = MATRICES[m]
    assert len(POINTS[m]) == g_mat.shape[0] == at.shape[1]
    for j, point in enumerate(POINTS[m]):
        for row, powers in ((g_mat[j], _powers(point, 3)), (at[:, j], _powers(point, m))):
            scale = row[np.flatnonzero(powers)[0]] / powers[np.flatnonzero(powers)[0]]
            assert scale != 0
            np.testing.assert_allclose(row, scale * powers, rtol=1e-12, atol=1e-15)


def test_the_matrices_are_lavin_and_grays():
    np.testing.assert_array_equal(BT, [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
    np.testing.assert_array_equal(G, [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, -1]])
    np.testing.assert_array_equal(BT4[0], [4, 0, -5, 0, 1, 0])
    np.testing.assert_array_equal(AT4[3], [0, 1, -1, 8, -8, 1])
    np.testing.assert_allclose(G4[3], [1 / 24, 1 / 12, 1 / 6])
    assert MATRICES == {2: (AT, G, BT), 4: (AT4, G4, BT4)}


def test_multiplications_per_tile_are_counted_from_the_matrices():
    assert multiplications(2) == (16, 36)
    assert multiplications(4) == (36, 144)
    with pytest.raises(ValueError, match="tile size m"):
        multiplications(3)
    with pytest.raises(ValueError, match="3x3 filters"):
        multiplications(2, r=5)


@st.composite
def layers(draw):
    p = draw(st.integers(0, 2))
    h, w = draw(st.integers(max(1, 3 - 2 * p), 13)), draw(st.integers(max(1, 3 - 2 * p), 13))
    return draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5)), h, w, p


@settings(max_examples=40)
@given(layer=layers(), m=st.sampled_from([2, 4]), seed=st.integers(0, 2**32 - 1))
def test_the_numpy_winograd_forward_and_gradients_match_the_direct_correlation(layer, m, seed):
    n, c, o, h, w, p = layer
    rng = np.random.default_rng(seed)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    want = F.conv2d(x, wt, b, padding=p, backend="numpy")
    np.testing.assert_allclose(winograd_conv2d(x, wt, p, b, m=m), want, rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(want.shape)
    want_dx, want_dw, want_db = F.conv2d_grad(x, wt, dy, padding=p, backend="numpy")
    np.testing.assert_allclose(winograd_input_grad(wt, dy, p, x.shape, m=m), want_dx, rtol=1e-10, atol=1e-10)
    dw, db = winograd_weight_grad(x, dy, p, m=m)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12)


@settings(max_examples=30)
@given(layer=layers(), m=st.sampled_from([2, 4]), seed=st.integers(0, 2**32 - 1))
def test_the_winograd_input_gradient_is_the_adjoint_of_its_forward(layer, m, seed):
    """<conv(x), dY> = <x, dX(dY)>: the input gradient is the transpose of the forward map, here with
    both computed by Winograd (float64, so only rounding separates the two sides)."""
    n, c, o, h, w, p = layer
    rng = np.random.default_rng(seed)
    x, wt = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3))
    y = winograd_conv2d(x, wt, p, m=m)
    dy = rng.standard_normal(y.shape)
    left, right = np.vdot(y, dy), np.vdot(x, winograd_input_grad(wt, dy, p, x.shape, m=m))
    assert abs(left - right) <= 1e-9 * (np.abs(y).sum() * np.abs(dy).max() + 1)


@settings(max_examples=30)
@given(layer=layers(), m=st.sampled_from([2, 4]), seed=st.integers(0, 2**32 - 1))
def test_float32_winograd_stays_within_its_error_bound(layer, m, seed):
    """The bound grows with the tile (F(4x4)'s matrices hold 8 and 1/24) and with the input magnitude
    (it is the algorithm run on absolute values): ``winograd.error_bound``."""
    n, c, o, h, w, p = layer
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-3, 4)
    x = (scale * rng.standard_normal((n, c, h, w))).astype(np.float32)
    wt = rng.standard_normal((o, c, 3, 3)).astype(np.float32)
    exact = F.conv2d(x.astype(np.float64), wt.astype(np.float64), padding=p, backend="numpy")
    got = winograd_conv2d(x, wt, p, m=m)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= error_bound(x, wt, p, m=m))


def _relative_errors(channels, seed=0):
    """Max |float32 - float64| over the largest output, unit-normal data, 16x16 maps, pad 1, 8 filters."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, channels, 3, 3)).astype(np.float32)
    exact = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, backend="numpy")
    got = {"F(2x2,3x3)": winograd_conv2d(x, w, 1, m=2), "F(4x4,3x3)": winograd_conv2d(x, w, 1, m=4),
           "direct": F.conv2d(x, w, padding=1, backend="numpy")}
    return {name: float(np.abs(y - exact).max() / np.abs(exact).max()) for name, y in got.items()}, exact, x, w


def test_the_measured_error_growth(capsys):
    """The table in minicnn/winograd.py's docstring: F(2x2) within the 1e-4 relative asked of a float32
    path, F(4x4) less accurate than F(2x2) and both within their worst-case bounds."""
    rows = []
    for channels in (1, 16, 64, 256):
        errors, exact, x, w = _relative_errors(channels)
        rows.append((channels, errors))
        assert errors["F(2x2,3x3)"] < 1e-4 and errors["F(4x4,3x3)"] < 1e-4
        for m in (2, 4):
            bound = error_bound(x, w, 1, m=m)
            assert np.all(np.abs(winograd_conv2d(x, w, 1, m=m) - exact) <= bound)
    # F(4x4)'s larger matrices cost accuracy on every row, by more than rounding noise
    assert all(e["F(4x4,3x3)"] > 2 * e["F(2x2,3x3)"] for _, e in rows)
    with capsys.disabled():
        print("\nC_in  " + "  ".join(f"{name:>11}" for name in rows[0][1]))
        for channels, errors in rows:
            print(f"{channels:<5} " + "  ".join(f"{v:11.1e}" for v in errors.values()))


@pytest.mark.parametrize("op", ["forward", "input_grad", "weight_grad"])
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
        which = 0 if op == "input_grad" else 1
        want = F.conv2d_grad(x, w, dy, padding=1, backend="numpy")[which]
        other = "reference" if op == "input_grad" else "im2col"
        plan = {"input_grad": "winograd", "weight_grad": other} if op == "input_grad" else {"input_grad": other, "weight_grad": "winograd"}
        got = F.conv2d_grad(x32, w32, dy.astype(np.float32), padding=1, plan=plan, backend="cython")[which]
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
    for op in ("forward", "input_grad", "weight_grad"):
        assert path.takes(op, g, np.float32) == ""
        assert "chosen only by measurement" in path.prefers(op, g, np.float32)
    plan = backend.plan_conv2d(g, np.float32)
    assert not {"winograd", "winograd4"} & {plan.forward, plan.input_grad, plan.weight_grad}
    four = backend.paths["winograd4"]
    assert four.takes("forward", g, np.float32) == "" and "chosen only by measurement" in four.prefers("forward", g, np.float32)
    assert four.takes("weight_grad", g, np.float32) == ""
    assert "has no weight_grad kernel" in backend.paths["winograd_wide"].takes("weight_grad", g, np.float32)
    # the shared-block paths take a layer whose tiles fit one block (VGG-16's 512 -> 512 at 28x28, batch 1),
    # and leave one with many tiles (the mid layer at batch 32) to the blocked paths
    vgg = shapes.conv2d_geometry((1, 512, 28, 28), (512, 512, 3, 3), padding=1)
    mid = shapes.conv2d_geometry((32, 64, 56, 56), (64, 64, 3, 3), padding=1)
    for name in ("winograd_wide", "winograd4_wide"):
        assert backend.paths[name].takes("forward", vgg, np.float32) == ""
        assert "more than one shared block" in backend.paths[name].takes("forward", mid, np.float32)
    assert "3x3" in path.takes("forward", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 5, 5)), np.float32)
    assert "stride 1" in path.takes("forward", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 3, 3), stride=2), np.float32)
    assert "padding larger than 2" in path.takes("input_grad", shapes.conv2d_geometry((1, 2, 8, 8), (4, 2, 3, 3), padding=3),
                                                 np.float32)


@pytest.mark.parametrize("x_shape, out, padding", [
    ((2, 3, 5, 6), 4, 3),      # forward padding beyond 2: whole patches in the padding
    ((1, 2, 1, 2), 3, 4),      # an input smaller than one patch
    ((1, 2, 3, 700), 5, 1),    # 350 tiles in a row: a row spans several blocks
    ((1, 2, 5, 1100), 3, 1),   # 275 tiles of 4 in a row: more than the transforms' 256-tile row buffers
    ((2, 700, 4, 5), 3, 1),    # more channels than one staging chunk of the filter transform (128)
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["winograd", "winograd4"])
def test_the_compiled_winograd_forward_on_edge_shapes(x_shape, out, padding, dtype, path):
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((out, x_shape[1], 3, 3)), rng.standard_normal(out)
    want = F.conv2d(x, w, b, padding=padding, backend="numpy")
    got = F.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding=padding, plan=path, backend="cython")
    bound = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(got - want).max() <= bound * np.abs(want).max()


@pytest.mark.parametrize("path, m", [("winograd", 2), ("winograd4", 4)])
@pytest.mark.parametrize("op", ["forward", "input_grad", "weight_grad"])
def test_the_compiled_paths_stay_within_the_error_bound_of_their_tile(path, m, op):
    """float32 F(2x2) and F(4x4) kernels against float64, on 192 input channels, within
    ``winograd.error_bound`` (a worst case over every summation order: the BLAS's, the blocks')."""
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 192, 13, 14)).astype(np.float32)
    w = (rng.standard_normal((64, 192, 3, 3)) / 40).astype(np.float32)
    if op == "forward":
        exact = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, backend="numpy")
        got = F.conv2d(x, w, padding=1, plan=path, backend="cython")
        bound = error_bound(x, w, 1, m=m)
    elif op == "weight_grad":  # no bound of its own: against the float64 sum, 1e-4 of the largest entry
        dy = rng.standard_normal((2, 64, 13, 14)).astype(np.float32)
        exact = F.conv2d_grad(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), padding=1,
                              backend="numpy")[1]
        got = F.conv2d_grad(x, w, dy, padding=1, input_grad=False, plan={"weight_grad": path}, backend="cython")[1]
        bound = 1e-4 * np.abs(exact).max()
    else:  # dX is the forward algorithm on dY padded by 1 with the rotated, transposed filters
        dy = rng.standard_normal((2, 64, 13, 14)).astype(np.float32)
        exact = F.conv2d_grad(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), padding=1,
                              backend="numpy")[0]
        got = F.conv2d_grad(x, w, dy, padding=1, plan={"input_grad": path, "weight_grad": "im2col"}, backend="cython")[0]
        bound = error_bound(dy, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), 1, m=m)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= bound)
    assert np.abs(got - exact).max() <= 1e-4 * np.abs(exact).max()


def test_the_spec_entries_beyond_the_decks():
    """spec/beyond/winograd.toml: the multiplication counts from the module's own matrices, and the hand
    example through its own F(2, 3) (kept out of the five decks' files: the decks do not teach it)."""
    import tomllib
    from pathlib import Path

    spec = tomllib.loads((Path(__file__).resolve().parent.parent / "spec" / "beyond" / "winograd.toml").read_text())
    checked = 0
    for entry in spec["entry"]:
        assert entry["deck"] == spec["deck"] == "beyond the decks"
        if entry["check"] == "winograd_multiplications":
            fast, direct = multiplications(entry["m"])
            assert [fast, direct] == entry["expected"]
            assert direct / fast == entry["reduction"]
            # the count is the number of entries of the elementwise product the algorithm forms
            at, g_mat, bt = MATRICES[entry["m"]]
            assert (g_mat @ np.ones((3, 3)) @ g_mat.T).size == fast
        elif entry["check"] == "winograd_by_hand":
            at, g_mat, bt = MATRICES[2]
            y = at @ ((g_mat @ np.array(entry["g"], float)) * (bt @ np.array(entry["d"], float)))
            np.testing.assert_allclose(y, entry["expected"], atol=1e-12)
            d, g = entry["d"], entry["g"]
            assert [d[0] * g[0] + d[1] * g[1] + d[2] * g[2], d[1] * g[0] + d[2] * g[1] + d[3] * g[2]] == entry["expected"]
        elif entry["check"] == "phase_multiplications":
            from minicnn.winograd import phase_multiplications

            fast, direct = phase_multiplications()
            assert [fast, direct] == entry["expected"] and direct / fast == entry["reduction"]
            # the direct count is the work of the double sum: every pixel of a 6x6 block of a transposed
            # convolution k4 s2 p1 receives 4 of the 16 taps
            def taps(y):  # the taps k of one axis that reach output pixel y = 2i + k - 1
                return sum(1 for k in range(4) if (y + 1 - k) % 2 == 0)

            assert sum(taps(y) * taps(x) for y in range(6) for x in range(6)) == direct
        else:
            pytest.fail(f"{entry['id']}: unknown check {entry['check']!r}")
        checked += 1
    assert checked == 4
