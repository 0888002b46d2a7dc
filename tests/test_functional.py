"""minicnn.functional: every backend against the reference and PyTorch, and every bad argument rejected.

Tolerances: rtol 2e-3 in float32, 1e-8 in float64 (forward and all gradients).
"""

import threading

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from conftest import to_numpy
from gradcheck import numerical_gradient
import strategies

TOL = {np.float32: dict(rtol=2e-3, atol=2e-4), np.float64: dict(rtol=1e-8, atol=1e-10)}


def as_backend(a, backend_name):
    return strategies.as_backend_array(a, backend_name)


# ------------------------------------------------------------------ configurations
# The geometry comes from the shared strategies (tests/strategies.py); these add what the
# agreement tests vary on top of it: dtype, memory layout, bias, ties and the data's seed.
@st.composite
def conv_configs(draw):
    """A valid conv2d call: shapes, hyper-parameters, dtype, layout (contiguous or not), bias or not."""
    g = draw(strategies.conv_configs())
    return dict(
        n=g.n, c_in=g.c_in, c_out=g.c_out, h=g.h, w=g.w, kernel=g.kernel, stride=g.stride,
        padding=g.padding, dilation=g.dilation, groups=g.groups,
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        layout=draw(st.sampled_from(["c", "fortran", "strided"])),
        bias=draw(st.booleans()), seed=draw(st.integers(0, 2**32 - 1)),
    )


@st.composite
def pool_configs(draw):
    g = draw(strategies.pool_configs())
    return dict(
        n=g.n, c=g.c, h=g.h, w=g.w, kernel=g.kernel, stride=g.stride, padding=g.padding,
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        layout=draw(st.sampled_from(["c", "fortran", "strided"])), ties=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def make_array(rng, shape, dtype, layout="c", ties=False):
    """Random values in the requested memory layout (non-contiguous layouts hold the same values)."""
    values = rng.standard_normal(shape)
    if ties:
        values = np.round(values * 2) / 2  # many equal values: exercises the first-maximum rule
    values = values.astype(dtype)
    if layout == "fortran":
        return np.asfortranarray(values)
    if layout == "strided":
        big = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=dtype)
        big[..., ::2] = values
        return big[..., ::2]
    return values


def conv_inputs(cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, (cfg["n"], cfg["c_in"], cfg["h"], cfg["w"]), cfg["dtype"], cfg["layout"])
    w = make_array(rng, (cfg["c_out"], cfg["c_in"] // cfg["groups"], *cfg["kernel"]), cfg["dtype"], cfg["layout"])
    b = rng.standard_normal(cfg["c_out"]).astype(cfg["dtype"]) if cfg["bias"] else None
    hyper = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"], groups=cfg["groups"])
    return rng, x, w, b, hyper


# --------------------------------------------------------------- backend agreement
@given(cfg=conv_configs())
def test_conv2d_matches_reference(fast_backend_name, cfg):
    rng, x, w, b, hyper = conv_inputs(cfg)
    tol = TOL[cfg["dtype"]]
    expected = F.conv2d(x, w, b, **hyper, backend="numpy")
    got = F.conv2d(as_backend(x, fast_backend_name), as_backend(w, fast_backend_name),
                   None if b is None else as_backend(b, fast_backend_name), **hyper, backend=fast_backend_name)
    assert got.dtype == cfg["dtype"] and got.shape == expected.shape
    np.testing.assert_allclose(to_numpy(got), expected, **tol)

    dy = make_array(rng, expected.shape, cfg["dtype"], cfg["layout"])
    for got_grad, want_grad in zip(
        F.conv2d_grad(as_backend(x, fast_backend_name), as_backend(w, fast_backend_name),
                      as_backend(dy, fast_backend_name), **hyper, backend=fast_backend_name),
        F.conv2d_grad(x, w, dy, **hyper, backend="numpy"),
    ):
        assert got_grad.dtype == cfg["dtype"]
        np.testing.assert_allclose(to_numpy(got_grad), want_grad, **tol)


@given(cfg=pool_configs())
def test_pooling_matches_reference(fast_backend_name, cfg):
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"], cfg["layout"], cfg["ties"])
    args = dict(stride=cfg["stride"], padding=cfg["padding"])
    tol = TOL[cfg["dtype"]]
    xb = as_backend(x, fast_backend_name)
    for forward, backward in ((F.max_pool2d, F.max_pool2d_grad), (F.avg_pool2d, F.avg_pool2d_grad)):
        expected = forward(x, cfg["kernel"], **args, backend="numpy")
        got = forward(xb, cfg["kernel"], **args, backend=fast_backend_name)
        np.testing.assert_allclose(to_numpy(got), expected, **tol)
        dy = rng.standard_normal(expected.shape).astype(cfg["dtype"])
        want_dx = backward(x, dy, cfg["kernel"], **args, backend="numpy")
        got_dx = backward(xb, as_backend(dy, fast_backend_name), cfg["kernel"], **args, backend=fast_backend_name)
        assert got_dx.dtype == cfg["dtype"]
        np.testing.assert_allclose(to_numpy(got_dx), want_dx, **tol)
    _, want_idx = F.max_pool2d_with_indices(x, cfg["kernel"], **args, backend="numpy")
    _, got_idx = F.max_pool2d_with_indices(xb, cfg["kernel"], **args, backend=fast_backend_name)
    np.testing.assert_array_equal(to_numpy(got_idx), want_idx)


EDGE_CASES = {
    "batch1-1x1": dict(x=(1, 3, 5, 5), w=(4, 3, 1, 1)),
    "kernel-equals-input": dict(x=(2, 2, 5, 4), w=(3, 2, 5, 4)),
    "non-square-asymmetric-stride": dict(x=(2, 2, 9, 7), w=(3, 2, 3, 2), stride=(2, 3), padding=(1, 0)),
    "dilated": dict(x=(1, 2, 11, 9), w=(2, 2, 3, 3), dilation=(2, 3), padding=2),
    "depthwise": dict(x=(2, 4, 6, 6), w=(4, 1, 3, 3), groups=4, padding=1),
    "grouped-stride": dict(x=(2, 6, 8, 8), w=(9, 2, 3, 3), groups=3, stride=2),
    "lenet-c1": dict(x=(4, 1, 32, 32), w=(6, 1, 5, 5)),
    "lenet-c3": dict(x=(4, 6, 14, 14), w=(16, 6, 5, 5)),
    # one output position per image: the Cython backend's whole-batch GEMM path
    "lenet-c5": dict(x=(5, 16, 5, 5), w=(120, 16, 5, 5)),
    "few-positions-grouped-strided": dict(x=(3, 4, 9, 8), w=(6, 2, 3, 3), groups=2, stride=3, padding=1),
    "padding-larger-than-kernel": dict(x=(1, 1, 3, 3), w=(1, 1, 2, 2), padding=3),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_edge_cases_match_torch(backend_name, case, dtype):
    torch = pytest.importorskip("torch")
    spec = dict(EDGE_CASES[case])
    x_shape, w_shape = spec.pop("x"), spec.pop("w")
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, **spec)
    y = F.conv2d(as_backend(x, backend_name), as_backend(w, backend_name), as_backend(b, backend_name),
                 **spec, backend=backend_name)
    tol = TOL[dtype]
    np.testing.assert_allclose(to_numpy(y), yt.detach().numpy(), **tol)
    dy = rng.standard_normal(yt.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx, dw, db = F.conv2d_grad(as_backend(x, backend_name), as_backend(w, backend_name), as_backend(dy, backend_name),
                               **spec, backend=backend_name)
    np.testing.assert_allclose(to_numpy(dx), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(to_numpy(dw), wt.grad.numpy(), **tol)
    np.testing.assert_allclose(to_numpy(db), bt.grad.numpy(), **tol)


@given(cfg=conv_configs())
def test_conv2d_matches_torch(backend_name, cfg):
    torch = pytest.importorskip("torch")
    rng, x, w, b, hyper = conv_inputs(cfg)
    xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
    wt = torch.tensor(np.ascontiguousarray(w), requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, None if b is None else torch.tensor(b), **hyper)
    y = F.conv2d(as_backend(x, backend_name), as_backend(w, backend_name),
                 None if b is None else as_backend(b, backend_name), **hyper, backend=backend_name)
    tol = TOL[cfg["dtype"]]
    np.testing.assert_allclose(to_numpy(y), yt.detach().numpy(), **tol)
    dy = rng.standard_normal(yt.shape).astype(cfg["dtype"])
    yt.backward(torch.tensor(dy))
    dx, dw, _ = F.conv2d_grad(as_backend(x, backend_name), as_backend(w, backend_name), as_backend(dy, backend_name),
                              **hyper, backend=backend_name)
    np.testing.assert_allclose(to_numpy(dx), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(to_numpy(dw), wt.grad.numpy(), **tol)


@given(cfg=pool_configs())
def test_pooling_matches_torch(backend_name, cfg):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(cfg["seed"])
    x = make_array(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"], cfg["layout"], cfg["ties"])
    tol = TOL[cfg["dtype"]]
    for kind in ("max", "avg"):
        xt = torch.tensor(np.ascontiguousarray(x), requires_grad=True)
        yt = getattr(torch.nn.functional, f"{kind}_pool2d")(xt, cfg["kernel"], cfg["stride"], cfg["padding"])
        y = getattr(F, f"{kind}_pool2d")(as_backend(x, backend_name), cfg["kernel"], stride=cfg["stride"],
                                         padding=cfg["padding"], backend=backend_name)
        np.testing.assert_allclose(to_numpy(y), yt.detach().numpy(), **tol)
        dy = rng.standard_normal(yt.shape).astype(cfg["dtype"])
        yt.backward(torch.tensor(dy))
        dx = getattr(F, f"{kind}_pool2d_grad")(as_backend(x, backend_name), as_backend(dy, backend_name),
                                              cfg["kernel"], stride=cfg["stride"], padding=cfg["padding"],
                                              backend=backend_name)
        np.testing.assert_allclose(to_numpy(dx), xt.grad.numpy(), **tol)


def test_max_pool_nan_and_minus_inf_follow_torch(backend_name):
    torch = pytest.importorskip("torch")
    x = np.full((1, 1, 4, 4), -np.inf)
    x[0, 0, 1, 2] = np.nan
    x[0, 0, 3, 3] = 1.0
    for padding in (0, 1):
        y, idx = F.max_pool2d_with_indices(as_backend(x, backend_name), 2, padding=padding, backend=backend_name)
        yt, it = torch.nn.functional.max_pool2d(torch.tensor(x), 2, padding=padding, return_indices=True)
        np.testing.assert_array_equal(to_numpy(y), yt.numpy())
        np.testing.assert_array_equal(to_numpy(idx), it.numpy())


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize(
    "hyper",
    [dict(), dict(stride=2, padding=1), dict(dilation=2, padding=(2, 1)), dict(groups=2, stride=(1, 2))],
    ids=["plain", "stride-pad", "dilated", "grouped"],
)
def test_conv2d_grad_equals_finite_differences(backend_name, hyper):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 6, 5))
    w = rng.standard_normal((2, 4 // hyper.get("groups", 1), 3, 2))
    b = rng.standard_normal(2)
    r = rng.standard_normal(F.conv2d(x, w, b, **hyper, backend="numpy").shape)

    def loss():
        return float(np.sum(to_numpy(F.conv2d(as_backend(x, backend_name), as_backend(w, backend_name),
                                               as_backend(b, backend_name), **hyper, backend=backend_name)) * r))

    dx, dw, db = (to_numpy(g) for g in F.conv2d_grad(as_backend(x, backend_name), as_backend(w, backend_name),
                                                       as_backend(r, backend_name), **hyper, backend=backend_name))
    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, numerical_gradient(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, numerical_gradient(loss, b), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("hyper", [dict(), dict(stride=1, padding=1), dict(stride=(1, 2))])
def test_pool_grad_equals_finite_differences(backend_name, kind, hyper):
    rng = np.random.default_rng(5)
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0  # distinct values: max is differentiable
    forward = getattr(F, f"{kind}_pool2d")
    backward = getattr(F, f"{kind}_pool2d_grad")
    r = rng.standard_normal(forward(x, 3, **hyper, backend="numpy").shape)

    def loss():
        return float(np.sum(to_numpy(forward(as_backend(x, backend_name), 3, **hyper, backend=backend_name)) * r))

    dx = to_numpy(backward(as_backend(x, backend_name), as_backend(r, backend_name), 3, **hyper, backend=backend_name))
    np.testing.assert_allclose(dx, numerical_gradient(loss, x, eps=1e-4), rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------- bad arguments
X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)

BAD_CONV = [
    ("x ndim", dict(x=np.zeros((4, 8, 8), np.float32)), ValueError, r"x must be 4-D .* got 3-D"),
    ("w ndim", dict(w=np.zeros((6, 4, 3), np.float32)), ValueError, r"w must be 4-D"),
    ("int dtype", dict(x=X.astype(np.int32)), TypeError, r"x must have dtype float32 or float64, got int32"),
    ("float16", dict(w=W.astype(np.float16)), TypeError, r"w must have dtype float32 or float64, got float16"),
    ("mixed dtypes", dict(w=W.astype(np.float64)), TypeError, r"w has dtype float64 but x has dtype float32"),
    ("list input", dict(x=X.tolist()), TypeError, r"x must be a numpy.ndarray"),
    ("channel mismatch", dict(w=np.zeros((6, 3, 3, 3), np.float32)), ValueError,
     r"w.shape\[1\]=3 must equal C_in/groups = 4/1 = 4"),
    ("groups divide C_in", dict(groups=3, w=np.zeros((6, 1, 3, 3), np.float32)), ValueError,
     r"C_in=4 are not divisible by groups=3"),
    ("groups divide C_out", dict(groups=4, w=np.zeros((6, 1, 3, 3), np.float32)), ValueError,
     r"C_out=6 .* not divisible by groups=4"),
    ("groups zero", dict(groups=0), ValueError, r"groups must be >= 1, got 0"),
    ("groups float", dict(groups=1.0), TypeError, r"groups must be an int"),
    ("kernel too big", dict(w=np.zeros((6, 4, 11, 3), np.float32)), ValueError,
     r"output height \(8 \+ 2\*0 - 1\*\(11-1\) - 1\)//1 \+ 1 = -2 < 1"),
    ("dilated kernel too big", dict(dilation=4), ValueError, r"output height \(8 \+ 2\*0 - 4\*\(3-1\) - 1\)//1 \+ 1 = 0 < 1"),
    ("stride zero", dict(stride=0), ValueError, r"stride must be >= 1 along both axes, got stride=0"),
    ("stride negative pair", dict(stride=(1, -1)), ValueError, r"stride must be >= 1"),
    ("dilation zero", dict(dilation=(0, 1)), ValueError, r"dilation must be >= 1"),
    ("negative padding", dict(padding=-1), ValueError, r"padding must be >= 0 along both axes, got padding=-1"),
    ("padding triple", dict(padding=(1, 1, 1)), TypeError, r"padding must be an int or a pair \(h, w\) of ints"),
    ("stride float", dict(stride=1.5), TypeError, r"stride must be an int or a pair"),
    ("bias shape", dict(b=np.zeros(5, np.float32)), ValueError, r"b must have shape \(C_out,\) = \(6,\), got \(5,\)"),
    ("bias dtype", dict(b=np.zeros(6, np.float64)), TypeError, r"b has dtype float64 but x has dtype float32"),
    ("empty channels", dict(x=np.zeros((2, 0, 8, 8), np.float32), w=np.zeros((6, 0, 3, 3), np.float32)), ValueError,
     r"x must have C_in, H, W >= 1"),
]


@pytest.mark.parametrize("case", BAD_CONV, ids=[c[0] for c in BAD_CONV])
def test_conv2d_rejects_bad_arguments(backend_name, case):
    _, changes, error, message = case
    args = dict(x=X, w=W, b=None, stride=1, padding=0, dilation=1, groups=1)
    args.update(changes)
    with pytest.raises(error, match=message):
        F.conv2d(args.pop("x"), args.pop("w"), args.pop("b"), **args, backend=backend_name if backend_name != "cupy" else "numpy")


def test_conv2d_grad_rejects_bad_dy():
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 6, 6, 6\), got \(2, 6, 5, 5\)"):
        F.conv2d_grad(X, W, np.zeros((2, 6, 5, 5), np.float32))
    with pytest.raises(TypeError, match=r"dy has dtype float64 but x has dtype float32"):
        F.conv2d_grad(X, W, np.zeros((2, 6, 6, 6)))
    with pytest.raises(TypeError, match=r"dy must be a numpy.ndarray"):
        F.conv2d_grad(X, W, None)


BAD_POOL = [
    ("ndim", dict(x=np.zeros((4, 8, 8), np.float32)), ValueError, r"x must be 4-D"),
    ("int dtype", dict(x=X.astype(np.int64)), TypeError, r"x must have dtype float32 or float64, got int64"),
    ("kernel zero", dict(kernel_size=0), ValueError, r"kernel_size must be >= 1"),
    ("stride zero", dict(stride=(0, 2)), ValueError, r"stride must be >= 1"),
    ("negative padding", dict(padding=-1), ValueError, r"padding must be >= 0"),
    ("padding over half", dict(kernel_size=3, padding=2), ValueError,
     r"padding <= kernel_size//2 = 3//2 = 1, got padding=2"),
    ("window too big", dict(kernel_size=(9, 2)), ValueError, r"output height \(8 \+ 2\*0 - 9\)//9 \+ 1 = 0 < 1"),
    ("kernel float", dict(kernel_size=2.0), TypeError, r"kernel_size must be an int or a pair"),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", BAD_POOL, ids=[c[0] for c in BAD_POOL])
def test_pooling_rejects_bad_arguments(kind, case):
    _, changes, error, message = case
    args = dict(x=X, kernel_size=2, stride=None, padding=0)
    args.update(changes)
    x = args.pop("x")
    with pytest.raises(error, match=message):
        getattr(F, f"{kind}_pool2d")(x, **args)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    with pytest.raises(error, match=message):
        getattr(F, f"{kind}_pool2d_grad")(x, dy, **args)


def test_pool_grad_rejects_bad_dy_and_indices():
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(2, 4, 4, 4\), got \(2, 4, 3, 3\)"):
        F.avg_pool2d_grad(X, np.zeros((2, 4, 3, 3), np.float32), 2)
    dy = np.zeros((2, 4, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 64\), got values in \[0, 64\]"):
        F.max_pool2d_grad(X, dy, 2, indices=np.full((2, 4, 4, 4), 64, np.int64) * np.arange(2).reshape(2, 1, 1, 1))
    with pytest.raises(TypeError, match=r"indices must be an integer array"):
        F.max_pool2d_grad(X, dy, 2, indices=np.zeros((2, 4, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"120 of the indices point outside their own 2x2 window"):
        F.max_pool2d_grad(X, dy, 2, indices=np.full((2, 4, 4, 4), 63, np.int64))
    with pytest.raises(ValueError, match=r"indices must have the output's shape"):
        F.max_pool2d_grad(X, dy, 2, indices=np.zeros((2, 4, 2, 2), np.int64))


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match=r"unknown backend 'fortran'; choose one of"):
        F.conv2d(X, W, backend="fortran")
    with pytest.raises(TypeError, match=r"backend must be a str"):
        mc.set_backend(3)


# ---------------------------------------------------------------- semantics details
def test_same_dtype_out_and_empty_batch(backend_name):
    for dtype in (np.float32, np.float64):
        x = as_backend(np.ones((0, 2, 5, 5), dtype), backend_name)
        w = as_backend(np.ones((3, 2, 3, 3), dtype), backend_name)
        y = F.conv2d(x, w, backend=backend_name)
        assert y.shape == (0, 3, 3, 3) and y.dtype == dtype
        assert F.max_pool2d(x, 2, backend=backend_name).shape == (0, 2, 2, 2)


def test_non_native_byte_order_and_read_only_inputs(backend_name):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6)).astype(">f4")
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    w.setflags(write=False)
    y = F.conv2d(as_backend(x, backend_name), as_backend(w, backend_name), backend=backend_name)
    expected = F.conv2d(x.astype(np.float32), w.copy(), backend="numpy")
    assert y.dtype == np.float32
    np.testing.assert_allclose(to_numpy(y), expected, rtol=2e-3, atol=1e-5)


def test_true_conv2d_is_correlation_with_rot90():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 1, 6, 6))
    w = rng.standard_normal((1, 1, 3, 3))
    flipped = np.rot90(w, 2, axes=(2, 3))
    np.testing.assert_allclose(F.true_conv2d(x, w), F.conv2d(x, flipped.copy()))


def test_use_backend_restores_and_is_per_thread():
    before = mc.current_backend_name()
    with mc.use_backend("numpy"):
        assert mc.current_backend_name() == "numpy"
        seen = []
        thread = threading.Thread(target=lambda: seen.append(mc.current_backend_name()))
        thread.start()
        thread.join()
        assert seen == [before]  # another thread keeps the default
    assert mc.current_backend_name() == before


def test_cython_backend_is_built():
    # The README's install builds the extensions; if this fails, the reason says why they did not load.
    from minicnn.backends import unavailable_reason

    assert "cython" in mc.available_backends(), unavailable_reason("cython")
    assert mc.current_backend_name() == "cython"


def test_cython_kernels_agree_across_thread_counts_and_python_threads():
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn.backends.cython_backend import CythonBackend

    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    dy = rng.standard_normal((8, 16, 10, 10)).astype(np.float32)
    geometry = shapes.conv2d_geometry(x.shape, w.shape)
    one, two = CythonBackend(num_threads=1), CythonBackend(num_threads=2)
    # every path splits its work in fixed blocks, so the thread count changes no bit
    np.testing.assert_array_equal(one.conv2d(x, w, None, geometry), two.conv2d(x, w, None, geometry))
    for a, b in zip(one.conv2d_grad(x, w, dy, geometry), two.conv2d_grad(x, w, dy, geometry)):
        np.testing.assert_array_equal(a, b)

    # Four Python threads at once through every kernel family of a LeNet-5 step (direct, row and
    # batch-in-lanes convolution, the dense case, 2x2 pooling), each on its own workspaces.
    x16 = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    dy16 = rng.standard_normal((16, 16, 10, 10)).astype(np.float32)
    x1 = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    w1 = rng.standard_normal((6, 1, 5, 5)).astype(np.float32)
    dy1 = rng.standard_normal((8, 6, 28, 28)).astype(np.float32)
    x5 = rng.standard_normal((8, 16, 5, 5)).astype(np.float32)
    w5 = rng.standard_normal((120, 16, 5, 5)).astype(np.float32)
    dy5 = rng.standard_normal((8, 120, 1, 1)).astype(np.float32)
    cases = {
        "C3 forward": lambda b: [F.conv2d(x, w, backend=b)],
        "C3 gradients": lambda b: list(F.conv2d_grad(x16, w, dy16, backend=b)),
        "C1 forward and dW": lambda b: [F.conv2d(x1, w1, backend=b), *F.conv2d_grad(x1, w1, dy1, input_grad=False,
                                                                                    backend=b)[1:]],
        "C5 both ways": lambda b: [F.conv2d(x5, w5, backend=b), *F.conv2d_grad(x5, w5, dy5, backend=b)],
        "max pool": lambda b: list(F.max_pool2d_with_indices(x1, 2, backend=b)),
    }
    expected = {name: case("numpy") for name, case in cases.items()}
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(10):
                for name, case in cases.items():
                    results[k, name] = case("cython")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 4 * len(cases)
    for (_, name), got in results.items():
        for a, b in zip(got, expected[name]):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3, err_msg=name)


def test_max_pool2d_grad_from_forward_equals_checked_path(backend_name):
    rng = np.random.default_rng(2)
    x = as_backend(rng.standard_normal((2, 3, 7, 6)), backend_name)
    dy = as_backend(rng.standard_normal((2, 3, 4, 3)), backend_name)
    _, idx = F.max_pool2d_with_indices(x, 3, stride=2, padding=1, backend=backend_name)
    trusted = F.max_pool2d_grad_from_forward(x, dy, 3, stride=2, padding=1, indices=idx, backend=backend_name)
    checked = F.max_pool2d_grad(x, dy, 3, stride=2, padding=1, indices=idx, backend=backend_name)
    np.testing.assert_array_equal(to_numpy(trusted), to_numpy(checked))
    with pytest.raises(TypeError, match=r"indices must be the int64 .* of shape \(2, 3, 4, 3\)"):
        F.max_pool2d_grad_from_forward(x, dy, 3, stride=2, padding=1, indices=idx[:, :, :2], backend=backend_name)
    with pytest.raises(TypeError, match=r"indices must be the int64"):
        F.max_pool2d_grad_from_forward(x, dy, 3, stride=2, padding=1, indices=idx.astype(np.int32),
                                       backend=backend_name)


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [((2, 2), (2, 2), (0, 0)), ((3, 4), (1, 2), (0, 2)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (1, 0))],
    ids=["2x2-tiled", "non-square-padded", "3x3-overlapping", "2x2-padded"],
)
def test_cython_pooling_with_several_threads_matches_reference(kernel, stride, padding):
    # Inputs big enough that the kernels split the planes across threads (each thread's window
    # bookkeeping must stay private to it).
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn.backends.cython_backend import CythonBackend

    backend = CythonBackend(num_threads=2)
    rng = np.random.default_rng(21)
    x = rng.standard_normal((48, 12, 23, 18)).astype(np.float32)
    reference = mc.get_backend("numpy")
    assert backend._pool_threads(48 * 12, x.size) == 2
    geometry = shapes.pool2d_geometry(x.shape, kernel, stride, padding)
    for kind in ("max", "avg"):
        forward = getattr(backend, f"{kind}_pool2d")
        expected = getattr(reference, f"{kind}_pool2d")(x, geometry)
        got = forward(x, geometry)
        if kind == "max":
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1], expected[1])
            dy = rng.standard_normal(got[0].shape).astype(np.float32)
            np.testing.assert_allclose(
                backend.max_pool2d_grad(geometry, dy, got[1]),
                reference.max_pool2d_grad(geometry, dy, expected[1]), rtol=1e-6, atol=1e-6,
            )
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
            dy = rng.standard_normal(got.shape).astype(np.float32)
            np.testing.assert_allclose(
                backend.avg_pool2d_grad(geometry, dy),
                reference.avg_pool2d_grad(geometry, dy), rtol=1e-5, atol=1e-6,
            )


@pytest.mark.parametrize("x_shape, w_shape", [((16, 6, 14, 14), (16, 6, 5, 5)), ((32, 16, 5, 5), (120, 16, 5, 5))],
                         ids=["per-image-gemm", "whole-batch-gemm"])
def test_cython_conv_with_several_threads_matches_reference(x_shape, w_shape):
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn.backends.cython_backend import CythonBackend

    backend = CythonBackend(num_threads=2)
    reference = mc.get_backend("numpy")
    rng = np.random.default_rng(22)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    geometry = shapes.conv2d_geometry(x_shape, w_shape, padding=1)
    y = backend.conv2d(x, w, b, geometry)
    np.testing.assert_allclose(y, reference.conv2d(x, w, b, geometry), rtol=2e-3, atol=2e-3)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    for got, want in zip(backend.conv2d_grad(x, w, dy, geometry), reference.conv2d_grad(x, w, dy, geometry)):
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-2)


def test_keep_freed_memory_reports_whether_it_applied():
    import sys

    from minicnn.backends import keep_freed_memory

    applied = keep_freed_memory()
    assert isinstance(applied, bool)
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert applied


def test_single_threaded_blas_limits_and_restores_nested_and_across_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import threading

    from minicnn.backends import single_threaded_blas

    def blas_threads():
        return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]

    before = blas_threads()
    assert before, "NumPy/SciPy load a BLAS that threadpoolctl can see"
    inside_other_thread = []
    with single_threaded_blas():
        assert set(blas_threads()) == {1}
        with single_threaded_blas():
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}, "leaving the inner block must not lift the outer limit"
        worker = threading.Thread(target=lambda: inside_other_thread.append(_worker_block(single_threaded_blas)))
        worker.start()
        worker.join()
        assert set(blas_threads()) == {1}, "the worker leaving its block must not lift the main thread's"
    assert blas_threads() == before
    # a worker thread that enters after the main thread used the limit: its own OpenBLAS count is
    # 1 inside (OpenBLAS >= 0.3.27 keeps one per thread) and what it was after
    limiter = single_threaded_blas()
    if limiter.local_thread_counts():
        worker = threading.Thread(target=lambda: inside_other_thread.append(_worker_block(single_threaded_blas)))
        worker.start()
        worker.join()
        before_block, inside, after = inside_other_thread[-1]
        assert set(inside) == {1}, "the worker's own BLAS count is 1 inside the block"
        assert after == before_block, "and what it was before, after it"


def _worker_block(single_threaded_blas):
    limiter = single_threaded_blas()
    before = limiter.local_thread_counts()
    with limiter:
        inside = limiter.local_thread_counts()
    return before, inside, limiter.local_thread_counts()


@given(
    n=st.integers(1, 3), c=st.integers(1, 3), oh=st.integers(1, 4), ow=st.integers(8, 21),
    values=st.sampled_from(["random", "ties", "nan"]), threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_cython_2x2_max_pooling_vector_rows_match_reference_bit_for_bit(n, c, oh, ow, values, threads, seed):
    # float32 2x2/stride-2 windows in rows of >= 8 go through the vector code of pool_2x2.h
    # (8 windows a block, the last block shifted left); rows holding a NaN take the scalar loop.
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn.backends.cython_backend import CythonBackend

    backend, reference = CythonBackend(num_threads=threads), mc.get_backend("numpy")
    rng = np.random.default_rng(seed)
    shape = (n, c, 2 * oh, 2 * ow)
    if values == "ties":
        x = rng.integers(-1, 2, size=shape).astype(np.float32)  # equal maxima, zeros, negative windows
    else:
        x = rng.standard_normal(shape).astype(np.float32)
        if values == "nan":
            x.flat[rng.integers(0, x.size, size=3)] = np.nan
    geometry = shapes.pool2d_geometry(shape, 2)
    y, argmax = backend.max_pool2d(x, geometry)
    y_ref, argmax_ref = reference.max_pool2d(x, geometry)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(
        backend.max_pool2d_grad(geometry, dy, argmax), reference.max_pool2d_grad(geometry, dy, argmax_ref)
    )


@pytest.mark.parametrize(
    "x_shape, w_shape, kwargs",
    [
        ((2, 40, 30, 33), (8, 40, 3, 3), dict(padding=1)),
        ((3, 24, 41, 37), (6, 12, 5, 3), dict(stride=(2, 1), padding=(2, 1), dilation=(1, 2), groups=2)),
    ],
    ids=["3x3-pad1", "strided-dilated-grouped"],
)
def test_cython_im2col_in_chunks_of_output_rows_matches_reference(x_shape, w_shape, kwargs):
    # Layers whose column matrix exceeds COL_CHUNK_ENTRIES per image are laid out a few output
    # rows at a time (kernels/cpu/conv2d.pyx, chunk_rows); every chunk must land in its place.
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn import shapes

    rng = np.random.default_rng(17)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y_shape = shapes.conv2d_output_shape(x_shape, w_shape, **{k: v for k, v in kwargs.items() if k != "groups"})
    k = x_shape[1] * w_shape[2] * w_shape[3]
    assert 131072 // (k * y_shape[3]) < y_shape[2], "the layer must need several chunks"
    np.testing.assert_allclose(F.conv2d(x, w, b, **kwargs, plan="im2col", backend="cython"),
                               F.conv2d(x, w, b, **kwargs, backend="numpy"), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y_shape)
    got = F.conv2d_grad(x, w, dy, **kwargs, plan="im2col", backend="cython")
    for a, b_ in zip(got, F.conv2d_grad(x, w, dy, **kwargs, backend="numpy")):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-10)



# ------------------------------------------------------------------ one gradient alone
CPU_BACKENDS = [name for name in mc.available_backends() if name != "cupy"]  # tests/gpu covers the GPU


def _conv_arrays(cfg, seed):
    """x, w and an upstream dy for the layer ``cfg`` (float64)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(cfg.x_shape), rng.standard_normal(cfg.w_shape), rng.standard_normal(cfg.out_shape)


@given(cfg=strategies.conv_configs(max_n=3, max_c=4, max_hw=9), seed=strategies.seeds)
def test_each_gradient_alone_equals_its_part_of_conv2d_grad(cfg, seed):
    # dX alone reads only the filters, (dW, db) alone only the input; each equals its part of conv2d_grad.
    x, w, dy = _conv_arrays(cfg, seed)
    want_dx, want_dw, want_db = F.conv2d_grad(x, w, dy, **cfg.kwargs, backend="numpy")
    for backend_name in CPU_BACKENDS:
        dx = F.conv2d_input_grad(cfg.x_shape, w, dy, **cfg.kwargs, backend=backend_name)
        dw, db = F.conv2d_weight_grad(x, cfg.w_shape, dy, **cfg.kwargs, backend=backend_name)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(dw, want_dw, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(db, want_db, rtol=1e-9, atol=1e-9)


@given(cfg=strategies.conv_configs(max_n=3, max_c=4, max_hw=9), seed=strategies.seeds)
def test_conv2d_and_weight_grad_equals_the_two_functions(cfg, seed):
    # The forward product and the weight gradient of one input (a transposed convolution's backward pass).
    x, w, dy = _conv_arrays(cfg, seed)
    want_y = F.conv2d(x, w, **cfg.kwargs, backend="numpy")
    want_dw, want_db = F.conv2d_weight_grad(x, cfg.w_shape, dy, **cfg.kwargs, backend="numpy")
    for backend_name in CPU_BACKENDS:
        y, dw, db = F.conv2d_and_weight_grad(x, w, dy, **cfg.kwargs, backend=backend_name)
        for got, want in ((y, want_y), (dw, want_dw), (db, want_db)):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif("cython" not in mc.available_backends(), reason="the Cython kernels are not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    ((4, 32, 32, 32), (64, 32, 4, 4), dict(stride=2, padding=1)),  # ConvTranspose2d(64, 32, 4, 2, 1)'s backward
    ((3, 6, 9, 11), (4, 3, 3, 2), dict(padding=(1, 0), dilation=(2, 1), groups=2)),
    ((2, 8, 5, 5), (4, 8, 1, 1), {}),  # 1x1: the image is its own column matrix
])
def test_im2col_computes_both_from_one_column_matrix_bit_for_bit(case, dtype):
    # The shared pass runs the same products as the two separate im2col passes, so the bits agree.
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(w_shape).astype(dtype)
    dy = rng.standard_normal(F.conv2d(x, w, **kwargs, backend="numpy").shape).astype(dtype)
    y, dw, db = F.conv2d_and_weight_grad(x, w, dy, **kwargs, plan="im2col", backend="cython")
    assert np.array_equal(y, F.conv2d(x, w, **kwargs, plan="im2col", backend="cython"))
    want_dw, want_db = F.conv2d_weight_grad(x, w.shape, dy, **kwargs, plan="im2col", backend="cython")
    assert np.array_equal(dw, want_dw) and np.array_equal(db, want_db)


def test_conv2d_and_weight_grad_checks_its_arguments_by_name():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_and_weight_grad: dy must have the output's shape \(1, 4, 3, 3\)"):
        F.conv2d_and_weight_grad(x, w, np.zeros((1, 4, 5, 5)))
    with pytest.raises(TypeError, match="conv2d_and_weight_grad: dy has dtype float32 but x has dtype float64"):
        F.conv2d_and_weight_grad(x, w, np.zeros((1, 4, 3, 3), dtype=np.float32))
    y, dw, db = F.conv2d_and_weight_grad(np.zeros((0, 2, 5, 5)), w, np.zeros((0, 4, 3, 3)))
    assert y.shape == (0, 4, 3, 3) and dw.shape == w.shape and not dw.any() and db.shape == (4,)


def test_gradients_alone_reject_bad_shapes_by_name():
    w = np.zeros((4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_input_grad: dy must have the output's shape \(1, 4, 3, 3\)"):
        F.conv2d_input_grad((1, 2, 5, 5), w, np.zeros((1, 4, 5, 5)))
    with pytest.raises(ValueError, match="conv2d_input_grad: x_shape must be 4 ints"):
        F.conv2d_input_grad((2, 5, 5), w, np.zeros((1, 4, 3, 3)))
    with pytest.raises(ValueError, match="conv2d_weight_grad: w_shape must be 4 ints"):
        F.conv2d_weight_grad(np.zeros((1, 2, 5, 5)), (4, 2, 3), np.zeros((1, 4, 3, 3)))
    with pytest.raises(TypeError, match="conv2d_weight_grad: dy has dtype float32 but x has dtype float64"):
        F.conv2d_weight_grad(np.zeros((1, 2, 5, 5)), (4, 2, 3, 3), np.zeros((1, 4, 3, 3), dtype=np.float32))


def test_gradients_alone_on_an_empty_batch_are_zeros():
    dx = F.conv2d_input_grad((0, 2, 5, 5), np.ones((4, 2, 3, 3)), np.zeros((0, 4, 3, 3)))
    dw, db = F.conv2d_weight_grad(np.zeros((0, 2, 5, 5)), (4, 2, 3, 3), np.zeros((0, 4, 3, 3)))
    assert dx.shape == (0, 2, 5, 5) and not dw.any() and dw.shape == (4, 2, 3, 3) and db.shape == (4,)


@pytest.mark.parametrize("padding", [(1, 0, 2, 1), "same"])
def test_conv2d_and_weight_grad_takes_every_padding_conv2d_takes(padding):
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 2))
    y = F.conv2d(x, w, padding=padding)
    dy = rng.standard_normal(y.shape)
    got_y, dw, db = F.conv2d_and_weight_grad(x, w, dy, padding=padding)
    want_dw, want_db = F.conv2d_weight_grad(x, w.shape, dy, padding=padding)
    np.testing.assert_allclose(got_y, y, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, want_db, rtol=1e-12, atol=1e-12)
