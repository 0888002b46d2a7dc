"""Winograd F(3x3, 2x2) on the four stride-2 phases of a 4x4, stride-2, padding-1 layer: the NumPy
textbook version (minicnn/winograd.py) against the direct sums, and the compiled path
(``winograd_phases``, kernels/cpu/winograd.pyx) against both; ConvTranspose2d k4 s2 p1 on it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from minicnn.winograd import PHASE_TAPS, phase_conv2d, phase_input_grad, phase_tiles, phase_weight_grad

LAYER = dict(stride=2, padding=1)


@st.composite
def phase_layers(draw):
    h, w = draw(st.integers(2, 21)), draw(st.integers(2, 21))  # odd sizes too (output_padding=1)
    return (draw(st.integers(1, 3)), draw(st.integers(1, 6)), h, w), draw(st.integers(1, 6))


def _data(x_shape, o, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((o, x_shape[1], 4, 4)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    dy = rng.standard_normal((x_shape[0], o, x_shape[2] // 2, x_shape[3] // 2)).astype(dtype)
    return x, w, b, dy


def test_each_phase_reads_two_taps_of_one_window():
    """Output pixel y = 2s - p of a k4 s2 p1 transposed convolution gets the taps 3 - p - 2a of the window
    (dY[s - 1], dY[s]): every tap once over the two phases, the window the same for both."""
    for p in range(2):
        for a in range(2):
            s = 5
            tap = PHASE_TAPS[p][a]
            # conv2d's input gradient: dX[y] gets W[tap] dY[i] where y = 2i + tap - 1
            assert 2 * (s - 1 + a) + tap - 1 == 2 * s - p
    assert sorted(PHASE_TAPS.ravel()) == [0, 1, 2, 3]
    assert [phase_tiles(size) for size in (2, 4, 6, 16, 32)] == [1, 1, 2, 3, 6]


@settings(max_examples=30, deadline=None)
@given(layer=phase_layers(), seed=st.integers(0, 2**32 - 1))
def test_the_numpy_phases_match_the_direct_sums(layer, seed):
    x_shape, o = layer
    x, w, b, dy = _data(x_shape, o, seed)
    with mc.use_backend("numpy"):
        y = F.conv2d(x, w, b, **LAYER)
        dx = F.conv2d_input_grad(x.shape, w, dy, **LAYER)
        dw, _ = F.conv2d_weight_grad(x, w.shape, dy, **LAYER)
    np.testing.assert_allclose(phase_conv2d(x, w, b), y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(phase_input_grad(w, dy, x.shape), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(phase_weight_grad(x, dy), dw, rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(layer=phase_layers(), seed=st.integers(0, 2**32 - 1))
def test_the_numpy_phase_forward_is_the_adjoint_of_its_input_gradient(layer, seed):
    """<conv2d(x), dy> = <x, input_grad(dy)>, both computed by the phases."""
    x_shape, o = layer
    x, w, _, dy = _data(x_shape, o, seed)
    left = np.vdot(phase_conv2d(x, w), dy)
    right = np.vdot(x, phase_input_grad(w, dy, x.shape))
    assert abs(left - right) <= 1e-10 * max(1.0, abs(left))


def test_the_numpy_phases_refuse_other_layers_by_name():
    x = np.zeros((1, 2, 6, 6))
    with pytest.raises(ValueError, match=r"needs filters \(C_out, 2, 4, 4\) for an input \(1, 2, 6, 6\), got \(3, 2, 3, 3\)"):
        phase_conv2d(x, np.zeros((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"needs an input of 2x2 pixels at least \(H, W\), got \(1, 6\)"):
        phase_conv2d(np.zeros((1, 2, 1, 6)), np.zeros((3, 2, 4, 4)))
    with pytest.raises(ValueError, match=r"dY must have the output's shape \(N, C_out, H // 2, W // 2\) = \(1, 3, 3, 3\), got \(1, 3, 4, 4\)"):
        phase_input_grad(np.zeros((3, 2, 4, 4)), np.zeros((1, 3, 4, 4)), x.shape)


@pytest.fixture
def cython():
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    from minicnn.backends.cython_backend import CythonBackend

    return CythonBackend(autotune=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, o", [((2, 3, 8, 8), 5), ((1, 2, 2, 4), 3), ((3, 5, 14, 10), 4), ((2, 32, 32, 32), 16),
                                        ((2, 3, 9, 7), 4), ((1, 1, 2, 3), 1), ((1, 3, 17, 2), 2),
                                        # many blocks of tiles, a partial last block, parts of several blocks
                                        ((90, 2, 16, 16), 2)])
def test_the_compiled_phases_match_the_numpy_phases(cython, x_shape, o, dtype):
    x, w, b, dy = _data(x_shape, o, 3, dtype)
    tol = dict(rtol=2e-5, atol=2e-5 * np.sqrt(x_shape[1] * o)) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    want = (phase_conv2d(x, w, b), phase_input_grad(w, dy, x.shape), phase_weight_grad(x, dy))
    got_y = F.conv2d(x, w, b, **LAYER, plan="winograd_phases", backend="cython")
    got_dx = F.conv2d_input_grad(x.shape, w, dy, **LAYER, plan="winograd_phases", backend="cython")
    got_dw, got_db = F.conv2d_weight_grad(x, w.shape, dy, **LAYER, plan="winograd_phases", backend="cython")
    for got, ref in zip((got_y, got_dx, got_dw), want):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, **tol)
    np.testing.assert_allclose(got_db, dy.sum(axis=(0, 2, 3)), rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_y_and_dw_in_one_pass_are_the_bits_of_the_two_apart(cython, dtype):
    x, w, _, dy = _data((5, 6, 12, 10), 7, 11, dtype)
    y, dw, db = F.conv2d_and_weight_grad(x, w, dy, **LAYER, plan="winograd_phases", backend="cython")
    assert np.array_equal(y, F.conv2d(x, w, **LAYER, plan="winograd_phases", backend="cython"))
    want_dw, want_db = F.conv2d_weight_grad(x, w.shape, dy, **LAYER, plan="winograd_phases", backend="cython")
    assert np.array_equal(dw, want_dw) and np.array_equal(db, want_db)


def test_the_path_takes_only_its_layer_and_says_why(cython):
    path = cython.paths["winograd_phases"]
    geometry = lambda x_shape, k=4, **kw: shapes.conv2d_geometry(x_shape, (8, 4, k, k), **kw)
    assert path.takes("input_grad", geometry((2, 4, 16, 16), stride=2, padding=1), np.float32) == ""
    assert "needs a 4x4 filter, stride 2 and padding 1" in path.takes("forward", geometry((2, 4, 16, 16), k=3, stride=2, padding=1), np.float32)
    assert "needs a 4x4 filter, stride 2 and padding 1" in path.takes("forward", geometry((2, 4, 16, 16), stride=1, padding=1), np.float32)
    assert "needs no dilation and one group" in path.takes(
        "forward", shapes.conv2d_geometry((2, 4, 16, 16), (8, 2, 4, 4), stride=2, padding=1, groups=2), np.float32)
    # odd sizes too: a transposed convolution with output_padding=1, or a stride-2 layer on an odd map
    assert path.takes("weight_grad", geometry((2, 4, 15, 16), stride=2, padding=1), np.float32) == ""


def test_the_kernels_check_the_shapes_they_are_given(cython):
    """The kernels run without bounds checks, so what reaches them from Python is checked first (the
    workspaces here are only for the refusals: one array as both V and M would give a wrong dX)."""
    kernels = cython._winograd
    dy = np.zeros((1, 3, 4, 4), np.float32)
    u = np.zeros((16, 8 * 3), np.float32)  # 16 positions of (4 C_in) x C_out
    ws = np.zeros((1, kernels.phase_workspace(8, 16)), np.float32)
    dx = np.zeros((1, 2, 8, 8), np.float32)
    with pytest.raises(ValueError, match="is not the output of a 4x4 stride-2 padding-1 layer on"):
        kernels.phase_input_grad(dy, u, np.zeros((1, 2, 10, 8), np.float32), 16, ws, ws, 1)
    with pytest.raises(ValueError, match="the workspaces are too small"):
        kernels.phase_input_grad(dy, u, dx, 16, ws[:, :10], ws, 1)
    with pytest.raises(ValueError, match="needs 4x4 filters"):
        kernels.phase_filter_transform(np.zeros((3, 2, 3, 3), np.float32), u, 1)
    # a tile block of 0 (it divides the tiles into blocks) and 0 threads (OpenMP would take all the cores)
    with pytest.raises(ValueError, match="tile_block must be at least 1, got 0"):
        kernels.phase_input_grad(dy, u, dx, 0, ws, ws, 1)
    with pytest.raises(ValueError, match="num_threads must be at least 1, got 0"):
        kernels.phase_input_grad(dy, u, dx, 16, ws, ws, 0)
    x = np.zeros((1, 2, 8, 8), np.float32)
    q = np.zeros(1, np.float32)
    with pytest.raises(ValueError, match="tile_block must be at least 1, got 0"):
        kernels.phase_forward_and_weight_grad(x, u, 3, None, q, None, 0, 1, ws, ws, ws, 1)
    with pytest.raises(ValueError, match="num_threads must be at least 1, got -1"):
        kernels.phase_fold(q, None, np.zeros((1, 3, 4, 4), np.float32), ws, -1)
    # 4 C_in x C_out beyond 32 bits: refused before it could wrap around and let a small u through
    wide = np.zeros((1, 32768, 2, 2), np.float32)
    with pytest.raises(ValueError, match="exceed the 32-bit sizes of BLAS"):
        kernels.phase_forward_and_weight_grad(wide, np.zeros((16, 1), np.float32), 16384, None, q, None, 16, 1, ws, ws, ws, 1)
    # the F(2x2, 3x3) kernels check their thread count the same way
    with pytest.raises(ValueError, match="num_threads must be at least 1, got 0"):
        kernels.filter_transform(np.zeros((1, 1, 3, 3), np.float32), np.zeros((16, 1, 1), np.float32), 0)
    with pytest.raises(ValueError, match="num_threads must be at least 1, got 0"):
        kernels.weight_output_transform(np.zeros((1, 16, 1, 1), np.float32), np.zeros((1, 1, 3, 3), np.float32), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_transposed_convolution_k4_s2_p1_runs_on_the_phases_and_matches_the_reference(cython, dtype, monkeypatch):
    """The layer the path is for: the static table sends its forward (the phases' input gradient) and its
    backward (Y and dW in one pass) there, and the results are the reference's; with output_padding=1 too
    (an odd output)."""
    monkeypatch.setenv("MINICNN_AUTOTUNE", "0")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 7, 9)).astype(dtype)
    for output_padding in (0, 1):
        out_hw = (14 + output_padding, 18 + output_padding)
        g = shapes.conv2d_geometry((4, 5, *out_hw), (6, 5, 4, 4), stride=2, padding=1)
        plan = cython.plan_conv2d(g, dtype)
        assert (plan.forward, plan.input_grad, plan.weight_grad, plan.paired) == ("winograd_phases",) * 4
        _check_layer_against_the_reference(x, rng.standard_normal((4, 5, *out_hw)).astype(dtype), output_padding, dtype)


def _check_layer_against_the_reference(x, dy, output_padding, dtype):
    out = {}
    for name in ("numpy", "cython"):
        layer = mc.nn.ConvTranspose2d(6, 5, 4, 2, 1, output_padding=output_padding, rng=0, dtype=dtype)
        with mc.use_backend(name):
            out[name] = (layer(x), layer.backward(dy), layer.weight.grad, layer.bias.grad)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    for got, want in zip(out["cython"], out["numpy"]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
