"""The options beyond the decks on the "cupy" backend agree with the NumPy reference.

Pooling with dilation, ceil_mode, four-sided padding, count_include_pad and
divisor_override runs in ``kernels/gpu/pool2d.cu``; F.pad, the activations,
softmax and Add with broadcasting are the reference's array code run on CuPy
arrays. Max pooling must find the reference's winners exactly; sums may be
added in another order, so they agree within a bound derived from the
dtype's epsilon and the number of terms. Skipped (by conftest.py) where CuPy
or a GPU is missing; tests/test_options.py checks the same options on the
CPU backends against brute-force oracles and torch.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F

from strategies import pool_option_configs, seeds

pytestmark = pytest.mark.gpu
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}
DTYPES = st.sampled_from([np.float32, np.float64])


@pytest.fixture(scope="module")
def cp():
    return importlib.import_module("cupy")


def _x(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(got, want, dtype, terms):
    got = got.get() if hasattr(got, "get") else got
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * terms * EPS[dtype] * scale)


@given(config=pool_option_configs("max"), seed=seeds, dtype=DTYPES)
def test_cupy_max_pool_options_find_the_reference_winners(cp, config, seed, dtype):
    x = _x(seed, config.x_shape, dtype)
    y, idx = F.max_pool2d(cp.asarray(x), config.kernel_size, return_indices=True, **config.kwargs)
    ref_y, ref_idx = F.max_pool2d(x, config.kernel_size, return_indices=True, backend="numpy", **config.kwargs)
    np.testing.assert_array_equal(y.get(), ref_y)
    np.testing.assert_array_equal(idx.get(), ref_idx)
    dy = _x(seed + 1, ref_y.shape, dtype)
    dx = F.max_pool2d_grad(cp.asarray(x), cp.asarray(dy), config.kernel_size, indices=idx, **config.kwargs)
    want = F.max_pool2d_grad(x, dy, config.kernel_size, indices=ref_idx, backend="numpy", **config.kwargs)
    _close(dx, want, dtype, int(np.prod(config.kernel_size)))


@given(config=pool_option_configs("avg"), seed=seeds, dtype=DTYPES)
def test_cupy_avg_pool_options_agree_with_the_reference(cp, config, seed, dtype):
    x = _x(seed, config.x_shape, dtype)
    y = F.avg_pool2d(cp.asarray(x), config.kernel_size, **config.kwargs)
    terms = int(np.prod(config.kernel_size))
    _close(y, F.avg_pool2d(x, config.kernel_size, backend="numpy", **config.kwargs), dtype, terms)
    dy = _x(seed + 1, y.shape, dtype)
    dx = F.avg_pool2d_grad(cp.asarray(x), cp.asarray(dy), config.kernel_size, **config.kwargs)
    _close(dx, F.avg_pool2d_grad(x, dy, config.kernel_size, backend="numpy", **config.kwargs), dtype, terms)


def test_cupy_2x2_ceil_mode_on_odd_sizes(cp):
    x = _x(3, (2, 3, 5, 7), np.float32)
    y, idx = F.max_pool2d(cp.asarray(x), 2, ceil_mode=True, return_indices=True)
    assert y.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(y.get()[..., 2, 3], x[..., 4, 6])
    np.testing.assert_array_equal(idx.get()[..., 2, 3], 4 * 7 + 6)
    a = F.avg_pool2d(cp.asarray(x), 2, ceil_mode=True, count_include_pad=False)
    np.testing.assert_array_equal(a.get()[..., 2, 3], x[..., 4, 6])


@pytest.mark.parametrize("pad, mode", [((2, 1, 1, 3), "constant"), ((1, -1, 0, 2), "constant"),
                                       ((2, 1, 1, 3), "reflect"), ((3, 3, 2, 2), "replicate"),
                                       ((2, 4, 3, 1), "circular")])
def test_cupy_pad_and_its_gradient_agree_with_the_reference(cp, pad, mode):
    x = _x(4, (2, 3, 4, 5))
    value = 0.5 if mode == "constant" else 0  # the other modes take no fill value
    y = F.pad(cp.asarray(x), pad, mode, value=value)
    np.testing.assert_array_equal(y.get(), F.pad(x, pad, mode, value=value, backend="numpy"))
    dy = _x(5, y.shape)
    dx = F.pad_grad(cp.asarray(x), cp.asarray(dy), pad, mode)
    _close(dx, F.pad_grad(x, dy, pad, mode, backend="numpy"), np.float64, 3)


@pytest.mark.parametrize("padding", ["same", (1, 0, 2, 1)])
def test_cupy_conv_padding_same_and_four_sided(cp, padding):
    x, w = _x(6, (2, 3, 7, 6)), _x(7, (4, 3, 4, 3))
    y = F.conv2d(cp.asarray(x), cp.asarray(w), padding=padding)
    want = F.conv2d(x, w, padding=padding, backend="numpy")
    _close(y, want, np.float64, 3 * 4 * 3)
    dy = _x(8, want.shape)
    dx, dw, _ = F.conv2d_grad(cp.asarray(x), cp.asarray(w), cp.asarray(dy), padding=padding)
    ref_dx, ref_dw, _ = F.conv2d_grad(x, w, dy, padding=padding, backend="numpy")
    _close(dx, ref_dx, np.float64, 4 * 4 * 3)
    _close(dw, ref_dw, np.float64, 2 * 7 * 6)


@pytest.mark.parametrize("make", [lambda: mc.nn.LeakyReLU(0.2), lambda: mc.nn.HardSigmoid(), lambda: mc.nn.HardSwish(),
                                  lambda: mc.nn.SiLU(), lambda: mc.nn.GELU(), lambda: mc.nn.GELU("tanh"),
                                  lambda: mc.nn.Softmax(2), lambda: mc.nn.LogSoftmax(-1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_activations_and_softmax_agree_with_numpy(cp, make, dtype):
    x = (_x(9, (2, 3, 4, 5)) * 4).astype(dtype)
    dy = _x(10, x.shape, dtype)
    host, device = make(), make()
    y, y_gpu = host(x), device(cp.asarray(x))
    _close(y_gpu, y, dtype, 8)
    _close(device.backward(cp.asarray(dy)), host.backward(dy), dtype, 8)


def test_cupy_add_broadcasts_and_sums_the_gradient(cp):
    a, b = _x(11, (2, 3, 4, 4)), _x(12, (1, 3, 1, 1))
    layer = mc.nn.Add()
    y = layer(cp.asarray(a), cp.asarray(b))
    np.testing.assert_array_equal(y.get(), a + b)
    dy = _x(13, y.shape)
    da, db = layer.backward(cp.asarray(dy))
    np.testing.assert_array_equal(da.get(), dy)
    _close(db, dy.sum(axis=(0, 2, 3), keepdims=True), np.float64, 32)
