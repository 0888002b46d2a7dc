"""The "cupy" backend agrees with the NumPy reference, and with cuDNN through PyTorch.

Every case runs the three convolution algorithms (``conv_algorithm`` "im2col",
"direct" and "implicit_gemm"), both dtypes, forward and every gradient, with the tolerances of the
project: rtol 2e-3 for float32, 1e-8 for float64, relative to the largest
reference value. Max pooling must reproduce the reference's winners exactly,
ties and NaN included. The kernels use no atomics, so two runs must be
bitwise equal.

Inputs are made on the host with NumPy, moved with ``cupy.asarray`` and
compared after ``.get()``. CuPy is imported inside fixtures so that this
module collects (and is skipped by ``conftest.py``) where CuPy is missing.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from minicnn.backends.numpy_backend import NumpyBackend

pytestmark = pytest.mark.gpu

RTOL = {np.float32: 2e-3, np.float64: 1e-8}
DTYPES = [np.float32, np.float64]

# (N, C_in, H, W, C_out, F_H, F_W, stride, padding, dilation, groups)
CONV_CASES = {
    "3x3-pad1": (2, 3, 8, 8, 4, 3, 3, 1, 1, 1, 1),
    "stride2": (2, 3, 9, 9, 5, 3, 3, 2, 0, 1, 1),
    "dilation2": (2, 2, 9, 10, 3, 3, 3, 1, 2, 2, 1),
    "groups2": (2, 4, 7, 7, 6, 3, 3, 1, 1, 1, 2),
    "depthwise": (2, 4, 7, 6, 4, 3, 3, 1, 1, 1, 4),
    "non-square": (2, 4, 9, 11, 6, 3, 2, (2, 1), (0, 2), (1, 2), 2),
    "batch1": (1, 3, 6, 6, 2, 3, 3, 1, 1, 1, 1),
    "1x1": (3, 5, 6, 7, 4, 1, 1, 1, 0, 1, 1),
    "kernel=input": (2, 3, 5, 4, 2, 5, 4, 1, 0, 1, 1),
    "stride>kernel": (2, 2, 11, 11, 3, 2, 2, 3, 1, 1, 1),
}

# (N, C, H, W, kernel_size, stride, padding)
POOL_CASES = {
    "2x2": (2, 3, 8, 8, 2, None, 0),
    "3x3-s2-p1": (2, 2, 9, 9, 3, 2, 1),
    "overlap-3x3-s1-p1": (1, 3, 7, 7, 3, 1, 1),
    "non-square": (2, 2, 9, 8, (3, 2), (1, 2), (1, 1)),
    "global": (2, 3, 5, 6, (5, 6), None, 0),
    "odd-size": (1, 2, 7, 5, 2, None, 0),
}


# ------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def cp():
    return importlib.import_module("cupy")


@pytest.fixture
def gpu():
    return mc.get_backend("cupy")


@pytest.fixture(params=["im2col", "direct", "implicit_gemm"])
def algorithm(request, gpu, monkeypatch):
    monkeypatch.setattr(gpu, "conv_algorithm", request.param)
    return request.param


def assert_close(got, want, dtype):
    """``got`` (a CuPy array) matches the reference ``want`` within the dtype's rtol."""
    got_host = got.get()
    assert got_host.dtype == np.dtype(dtype)
    assert got_host.shape == want.shape
    rtol = RTOL[dtype]
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got_host, want, rtol=rtol, atol=rtol * scale)


def conv_inputs(case, dtype, seed=0):
    n, c, h, w, o, kh, kw, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((o, c // groups, kh, kw)).astype(dtype)
    bias = rng.standard_normal(o).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y = F.conv2d(x, weight, bias, backend="numpy", **kwargs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    return x, weight, bias, dy, kwargs


def pool_input(case, dtype, values, seed=0):
    n, c, h, w = case[:4]
    rng = np.random.default_rng(seed)
    if values == "ties":  # few distinct values: many equal maxima per window
        x = rng.integers(0, 3, (n, c, h, w)).astype(dtype)
    elif values == "nan":
        x = rng.integers(0, 3, (n, c, h, w)).astype(dtype)
        x[rng.random(x.shape) < 0.15] = np.nan
    else:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
    kernel_size, stride, padding = case[4:]
    return x, dict(kernel_size=kernel_size, stride=stride, padding=padding)


# ---------------------------------------------------------------------- registry
def test_cupy_backend_is_registered_and_works_on_cupy_arrays(cp, gpu):
    assert "cupy" in mc.available_backends()
    assert mc.backends.unavailable_reason("cupy") is None
    assert gpu.name == "cupy"
    assert gpu.xp is cp
    assert isinstance(gpu, NumpyBackend)
    assert gpu.conv_algorithm == "im2col"


KERNELS = {
    "conv2d.cu": ("conv2d_forward_direct", "conv2d_backward_input_direct", "conv2d_backward_weight_direct",
                  "conv2d_backward_bias_direct", "im2col", "col2im"),
    "pool2d.cu": ("max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward"),
    "fused.cu": ("relu_max_pool2x2_forward", "relu_max_pool2x2_backward", "softmax_cross_entropy", "sgd_momentum_multi"),
    "implicit_gemm.cu": ("implicit_gemm_forward_m64", "implicit_gemm_forward_m16", "implicit_gemm_input_grad_m64",
                         "implicit_gemm_input_grad_m16", "implicit_gemm_weight_grad_m64", "implicit_gemm_weight_grad_m16",
                         "implicit_gemm_reduce_splits"),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_every_kernel_compiles_from_the_shipped_sources(cp, dtype):
    from minicnn.backends import cupy_backend

    for filename, names in KERNELS.items():
        assert "extern \"C\"" in cupy_backend.kernel_source(filename)
        for name in names:
            assert cupy_backend._kernel(filename, name, np.dtype(dtype)) is not None


# ------------------------------------------------------------------- convolution
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv2d_forward_and_gradients_match_reference(cp, algorithm, case, dtype):
    x, weight, bias, dy, kwargs = conv_inputs(case, dtype)
    xg, wg, bg, dyg = (cp.asarray(a) for a in (x, weight, bias, dy))

    for b, b_gpu in ((bias, bg), (None, None)):
        want = F.conv2d(x, weight, b, backend="numpy", **kwargs)
        assert_close(F.conv2d(xg, wg, b_gpu, **kwargs), want, dtype)

    want_dx, want_dw, want_db = F.conv2d_grad(x, weight, dy, backend="numpy", **kwargs)
    dx, dw, db = F.conv2d_grad(xg, wg, dyg, **kwargs)
    assert_close(dx, want_dx, dtype)
    assert_close(dw, want_dw, dtype)
    assert_close(db, want_db, dtype)


@st.composite
def conv_geometries(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c = groups * draw(st.integers(1, 3))
    o = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    # smallest input that leaves a 1x1 output, plus a few extra pixels
    h = max(1, dh * (kh - 1) + 1 - 2 * ph) + draw(st.integers(0, 6))
    w = max(1, dw * (kw - 1) + 1 - 2 * pw) + draw(st.integers(0, 6))
    n = draw(st.integers(1, 3))
    return (n, c, h, w, o, kh, kw, (sh, sw), (ph, pw), (dh, dw), groups)


@given(case=conv_geometries(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_conv2d_random_geometry_matches_reference_both_algorithms(case, dtype, seed):
    cupy = importlib.import_module("cupy")
    gpu = mc.get_backend("cupy")
    x, weight, bias, dy, kwargs = conv_inputs(case, dtype, seed)
    want_y = F.conv2d(x, weight, bias, backend="numpy", **kwargs)
    want_grads = F.conv2d_grad(x, weight, dy, backend="numpy", **kwargs)
    xg, wg, bg, dyg = (cupy.asarray(a) for a in (x, weight, bias, dy))
    saved = gpu.conv_algorithm
    try:
        for algorithm in ("im2col", "direct"):
            gpu.conv_algorithm = algorithm
            assert_close(F.conv2d(xg, wg, bg, **kwargs), want_y, dtype)
            for got, want in zip(F.conv2d_grad(xg, wg, dyg, **kwargs), want_grads):
                assert_close(got, want, dtype)
    finally:
        gpu.conv_algorithm = saved


def test_algorithm_attribute_picks_the_kernels(cp, gpu, monkeypatch):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["3x3-pad1"], np.float32)
    xg, wg, bg, dyg = (cp.asarray(a) for a in (x, weight, bias, dy))
    launched = []
    real_launch = type(gpu)._launch

    def spy(self, filename, name, *args):
        launched.append(name)
        return real_launch(self, filename, name, *args)

    monkeypatch.setattr(type(gpu), "_launch", spy)
    for algorithm, expected in (
        ("im2col", ["im2col", "im2col", "col2im"]),
        ("direct", ["conv2d_forward_direct", "conv2d_backward_input_direct",
                    "conv2d_backward_weight_direct", "conv2d_backward_bias_direct"]),
    ):
        monkeypatch.setattr(gpu, "conv_algorithm", algorithm)
        launched.clear()
        F.conv2d(xg, wg, bg, **kwargs)
        F.conv2d_grad(xg, wg, dyg, **kwargs)
        assert launched == expected


def test_input_grad_false_skips_dx_and_keeps_dw_db(cp, algorithm):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["non-square"], np.float64)
    xg, wg, dyg = (cp.asarray(a) for a in (x, weight, dy))
    _, want_dw, want_db = F.conv2d_grad(x, weight, dy, backend="numpy", **kwargs)
    dx, dw, db = F.conv2d_grad(xg, wg, dyg, input_grad=False, **kwargs)
    assert dx is None
    assert_close(dw, want_dw, np.float64)
    assert_close(db, want_db, np.float64)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_each_gradient_alone_matches_the_reference(cp, algorithm, case):
    x, weight, bias, dy, kwargs = conv_inputs(case, np.float64)
    want_dx, want_dw, want_db = F.conv2d_grad(x, weight, dy, backend="numpy", **kwargs)
    dx = F.conv2d_input_grad(x.shape, cp.asarray(weight), cp.asarray(dy), **kwargs)
    dw, db = F.conv2d_weight_grad(cp.asarray(x), weight.shape, cp.asarray(dy), **kwargs)
    assert_close(dx, want_dx, np.float64)
    assert_close(dw, want_dw, np.float64)
    assert_close(db, want_db, np.float64)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_forward_and_weight_grad_together_match_the_reference(cp, algorithm, case):
    x, weight, bias, dy, kwargs = conv_inputs(case, np.float64)
    want_y = F.conv2d(x, weight, backend="numpy", **kwargs)
    want_dw, want_db = F.conv2d_weight_grad(x, weight.shape, dy, backend="numpy", **kwargs)
    y, dw, db = F.conv2d_and_weight_grad(cp.asarray(x), cp.asarray(weight), cp.asarray(dy), **kwargs)
    assert_close(y, want_y, np.float64)
    assert_close(dw, want_dw, np.float64)
    assert_close(db, want_db, np.float64)


def test_large_batches_are_split_without_changing_the_result(cp, gpu, monkeypatch):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["groups2"], np.float64)
    xg, wg, bg, dyg = (cp.asarray(a) for a in (x, weight, bias, dy))
    whole = [F.conv2d(xg, wg, bg, **kwargs), *F.conv2d_grad(xg, wg, dyg, **kwargs)]
    monkeypatch.setattr(gpu, "column_bytes_limit", 1)  # one sample per slice
    sliced = [F.conv2d(xg, wg, bg, **kwargs), *F.conv2d_grad(xg, wg, dyg, **kwargs)]
    for a, b in zip(whole, sliced):
        np.testing.assert_allclose(b.get(), a.get(), rtol=1e-12, atol=1e-12)


def test_unknown_conv_algorithm_is_rejected(cp, gpu, monkeypatch):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["batch1"], np.float32)
    monkeypatch.setattr(gpu, "conv_algorithm", "winograd")
    with pytest.raises(ValueError, match="conv_algorithm"):
        F.conv2d(cp.asarray(x), cp.asarray(weight), **kwargs)


# ----------------------------------------------------------------------- pooling
@pytest.mark.parametrize("values", ["normal", "ties", "nan"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool2d_matches_reference_exactly(cp, case, dtype, values):
    x, kwargs = pool_input(case, dtype, values)
    want_y, want_idx = F.max_pool2d_with_indices(x, backend="numpy", **kwargs)
    y, idx = F.max_pool2d_with_indices(cp.asarray(x), **kwargs)
    assert idx.dtype == cp.int64
    np.testing.assert_array_equal(idx.get(), want_idx)  # same winner: first maximum, NaN wins
    np.testing.assert_array_equal(y.get(), want_y)

    dy = np.random.default_rng(1).standard_normal(want_y.shape).astype(dtype)
    want_dx = F.max_pool2d_grad(x, dy, backend="numpy", **kwargs)
    assert_close(F.max_pool2d_grad(cp.asarray(x), cp.asarray(dy), **kwargs), want_dx, dtype)
    assert_close(F.max_pool2d_grad(cp.asarray(x), cp.asarray(dy), indices=idx, **kwargs), want_dx, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_avg_pool2d_matches_reference(cp, case, dtype):
    x, kwargs = pool_input(case, dtype, "normal")
    want_y = F.avg_pool2d(x, backend="numpy", **kwargs)
    assert_close(F.avg_pool2d(cp.asarray(x), **kwargs), want_y, dtype)
    dy = np.random.default_rng(2).standard_normal(want_y.shape).astype(dtype)
    want_dx = F.avg_pool2d_grad(x, dy, backend="numpy", **kwargs)
    assert_close(F.avg_pool2d_grad(cp.asarray(x), cp.asarray(dy), **kwargs), want_dx, dtype)


def test_max_pool_of_a_window_of_minus_infinity_reports_its_first_real_pixel(cp):
    x = np.full((1, 1, 4, 4), -np.inf, dtype=np.float32)
    want_y, want_idx = F.max_pool2d_with_indices(x, 3, stride=2, padding=1, backend="numpy")
    y, idx = F.max_pool2d_with_indices(cp.asarray(x), 3, stride=2, padding=1)
    np.testing.assert_array_equal(idx.get(), want_idx)
    np.testing.assert_array_equal(idx.get(), [[[[0, 1], [4, 5]]]])
    np.testing.assert_array_equal(y.get(), want_y)


# ------------------------------------------------------------------- determinism
def test_repeated_runs_are_bitwise_equal(cp, algorithm):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["non-square"], np.float32, seed=7)
    xg, wg, bg, dyg = (cp.asarray(a) for a in (x, weight, bias, dy))
    first = [F.conv2d(xg, wg, bg, **kwargs), *F.conv2d_grad(xg, wg, dyg, **kwargs)]
    second = [F.conv2d(xg, wg, bg, **kwargs), *F.conv2d_grad(xg, wg, dyg, **kwargs)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.get(), b.get())

    xp, kwargs = pool_input(POOL_CASES["overlap-3x3-s1-p1"], np.float32, "ties")
    xpg = cp.asarray(xp)
    dyp = cp.asarray(np.random.default_rng(3).standard_normal((1, 3, 7, 7)).astype(np.float32))
    for grad in (F.max_pool2d_grad, F.avg_pool2d_grad):
        np.testing.assert_array_equal(grad(xpg, dyp, **kwargs).get(), grad(xpg, dyp, **kwargs).get())


# ---------------------------------------------------- inherited reference paths
def test_inherited_reference_code_runs_on_cupy_arrays(cp, gpu):
    """The NumPy reference methods work on CuPy arrays (``xp = cupy``, ``_scatter_add`` via cupyx)."""
    x, kwargs = pool_input(POOL_CASES["overlap-3x3-s1-p1"], np.float64, "ties")
    geometry = shapes.pool2d_geometry(x.shape, (3, 3), (1, 1), (1, 1))
    xg = cp.asarray(x)
    y, idx = gpu.max_pool2d(xg, geometry)
    dy = cp.asarray(np.random.default_rng(4).standard_normal(y.shape))
    fast = gpu.max_pool2d_grad(geometry, dy, idx)
    reference_on_gpu = NumpyBackend.max_pool2d_grad(gpu, geometry, dy, idx)
    assert isinstance(reference_on_gpu, cp.ndarray)
    np.testing.assert_allclose(reference_on_gpu.get(), fast.get(), rtol=1e-12, atol=1e-12)

    xc, weight, bias, _, _ = conv_inputs(CONV_CASES["groups2"], np.float64)
    conv = shapes.conv2d_geometry(xc.shape, weight.shape, stride=1, padding=1, dilation=1, groups=2)
    reference_conv = NumpyBackend.conv2d(gpu, cp.asarray(xc), cp.asarray(weight), cp.asarray(bias), conv)
    assert_close(reference_conv, NumpyBackend().conv2d(xc, weight, bias, conv), np.float64)


# -------------------------------------------------------------- torch as oracle
@pytest.fixture
def torch_device():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        saved = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False  # full float32 products, as ours
        yield torch, "cuda"
        torch.backends.cudnn.allow_tf32 = saved
    else:
        yield torch, "cpu"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", ["3x3-pad1", "non-square", "depthwise"])
def test_conv2d_matches_torch(cp, torch_device, algorithm, case, dtype):
    torch, device = torch_device
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES[case], dtype)
    tx, tw, tb = (torch.tensor(a, device=device, requires_grad=True) for a in (x, weight, bias))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kwargs)
    ty.backward(torch.tensor(dy, device=device))
    xg, wg, bg, dyg = (cp.asarray(a) for a in (x, weight, bias, dy))
    assert_close(F.conv2d(xg, wg, bg, **kwargs), ty.detach().cpu().numpy(), dtype)
    for got, t in zip(F.conv2d_grad(xg, wg, dyg, **kwargs), (tx, tw, tb)):
        assert_close(got, t.grad.cpu().numpy(), dtype)


@pytest.mark.parametrize("case", ["3x3-s2-p1", "overlap-3x3-s1-p1", "non-square"])
def test_pooling_matches_torch(cp, torch_device, case):
    torch, device = torch_device
    x, kwargs = pool_input(POOL_CASES[case], np.float32, "ties")
    tx = torch.tensor(x, device=device)
    ty, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kwargs)
    y, idx = F.max_pool2d_with_indices(cp.asarray(x), **kwargs)
    np.testing.assert_array_equal(idx.get(), tidx.cpu().numpy())
    np.testing.assert_array_equal(y.get(), ty.cpu().numpy())
    tavg = torch.nn.functional.avg_pool2d(tx, count_include_pad=True, **kwargs)
    assert_close(F.avg_pool2d(cp.asarray(x), **kwargs), tavg.cpu().numpy(), np.float32)


# ------------------------------------------------------------ functional dispatch
def test_functional_sends_cupy_arrays_to_cupy(cp):
    x, weight, bias, dy, kwargs = conv_inputs(CONV_CASES["batch1"], np.float32)
    xg, wg = cp.asarray(x), cp.asarray(weight)
    with mc.use_backend("numpy"):  # the current backend is for NumPy arrays; CuPy arrays still go to "cupy"
        y = F.conv2d(xg, wg, **kwargs)
        pooled = F.max_pool2d(xg, 2)
    assert isinstance(y, cp.ndarray) and isinstance(pooled, cp.ndarray)
    with pytest.raises(TypeError, match="cupy"):
        F.conv2d(xg, wg, backend="numpy", **kwargs)
    with pytest.raises(TypeError, match="same device"):
        F.conv2d(xg, weight, **kwargs)
    # non-contiguous CuPy input is made contiguous by the functional layer
    xt = cp.asarray(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)
    assert not xt.flags.c_contiguous
    assert_close(F.conv2d(xt, wg, **kwargs), F.conv2d(x, weight, backend="numpy", **kwargs), np.float32)


# ----------------------------------------------------------- guards on direct use
def test_direct_calls_with_bad_arrays_raise_value_error(cp, gpu):
    """Called directly (not through minicnn.functional, which checks everything), the backend still refuses
    arrays its kernels would misread: wrong dtype, layout, device or shape for the geometry."""
    x = cp.zeros((1, 2, 6, 6), dtype=cp.float32)
    w = cp.zeros((3, 2, 3, 3), dtype=cp.float32)
    geometry = shapes.conv2d_geometry(x.shape, w.shape)
    with pytest.raises(ValueError, match="dtype"):
        gpu.conv2d(x, w.astype(cp.float64), None, geometry)
    with pytest.raises(ValueError, match="C-contiguous"):
        gpu.conv2d(cp.zeros((1, 2, 6, 12), dtype=cp.float32)[..., ::2], w, None, geometry)
    with pytest.raises(ValueError, match="cupy.ndarray"):
        gpu.conv2d(x.get(), w, None, geometry)
    with pytest.raises(ValueError, match=r"shape \(3, 2, 3, 3\)"):
        gpu.conv2d(x, cp.zeros((3, 2, 5, 3), dtype=cp.float32), None, geometry)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4, 4\)"):
        gpu.conv2d_grad(x, w, cp.zeros((1, 3, 5, 5), dtype=cp.float32), geometry)
    pool = shapes.pool2d_geometry(x.shape, 2)
    with pytest.raises(ValueError, match=r"shape \(1, 2, 6, 6\)"):
        gpu.max_pool2d(cp.zeros((1, 2, 8, 8), dtype=cp.float32), pool)
    y, idx = gpu.max_pool2d(x, pool)
    with pytest.raises(ValueError, match="argmax"):
        gpu.max_pool2d_grad(pool, y, idx.astype(cp.int32))
    with pytest.raises(ValueError, match="dy"):
        gpu.avg_pool2d_grad(pool, y[:, :1].copy())