"""The public functional API under random and hostile arguments: a correct result or a clear error.

``test_any_call_gives_the_reference_result_or_names_the_argument`` draws calls
of every function of ``minicnn.functional`` with random shapes (0-d to 5-d,
empty axes), dtypes (float, int, bool, complex, half), layouts (Fortran,
negative strides, byte-swapped, read-only) and argument values (negative,
zero, huge, bools, floats, strings, wrong tuples), valid and invalid, on every
backend. Each call must either return what the NumPy reference returns for
the same arguments, or raise ``ValueError``/``TypeError`` whose message starts
with the function's name, and the reference must then raise the same type.
Below it, the regression tests of the defects adversarial testing found.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from conftest import to_numpy
from strategies import as_backend_array

FUNCTIONS = ("conv2d", "conv2d_grad", "max_pool2d", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad",
             "linear", "linear_grad")
DTYPES = (np.float32, np.float64, np.float32, np.float64, np.int32, np.float16, np.complex64, np.bool_)
LAYOUTS = ("contiguous", "fortran", "negative", "byteswapped", "readonly")

small = st.integers(0, 4)
hyper = st.one_of(
    st.integers(0, 3), st.integers(-2, -1), st.sampled_from([2**31, 2**40]), st.booleans(), st.floats(0, 3),
    st.text(max_size=2), st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(1, 3)),
    st.lists(st.integers(0, 3), min_size=3, max_size=3), st.none(),
)


def _layout(a, layout):
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "negative" and a.ndim:
        return a[::-1].copy()[::-1]
    if layout == "byteswapped" and a.dtype.kind in "fc":
        return a.astype(a.dtype.newbyteorder())
    if layout == "readonly":
        a = a.copy()
        a.setflags(write=False)
    return a


@st.composite
def arrays(draw, ndim=None, likely=None):
    if likely is not None and draw(st.integers(0, 3)):
        shape = likely
    else:
        shape = tuple(draw(st.lists(small, min_size=ndim or 0, max_size=ndim or 5)))
    dtype = draw(st.sampled_from(DTYPES))
    values = np.random.default_rng(draw(st.integers(0, 2**16))).standard_normal(shape)
    return _layout(values.astype(dtype), draw(st.sampled_from(LAYOUTS)))


@st.composite
def calls(draw):
    fn = draw(st.sampled_from(FUNCTIONS))
    n, c, h, w = draw(small), draw(st.integers(1, 4)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    o, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    kwargs = {}
    if fn.startswith("conv"):
        args = [draw(arrays(likely=(n, c, h, w))), draw(arrays(likely=(o, c, k, k)))]
        for name in ("stride", "padding", "dilation", "groups"):
            if draw(st.booleans()):
                kwargs[name] = draw(hyper)
    elif fn.startswith("linear"):
        args = [draw(arrays(likely=(n, c))), draw(arrays(likely=(o, c)))]
    else:
        args = [draw(arrays(likely=(n, c, h, w))), draw(hyper) if draw(st.integers(0, 4)) == 0 else k]
        for name in ("stride", "padding"):
            if draw(st.booleans()):
                kwargs[name] = draw(hyper)
    if fn.endswith("_grad"):
        # a dy of the right shape most of the time (computed with the reference), else a random one
        try:
            forward = getattr(F, fn[: -len("_grad")])
            shape = forward(*(a.real.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args),
                            backend="numpy", **kwargs).shape
        except (ValueError, TypeError):
            shape = None
        args.insert(2 if fn == "conv2d_grad" or fn == "linear_grad" else 1,
                    draw(arrays(likely=shape)) if shape is not None else draw(arrays()))
    return fn, args, kwargs


def _call(fn, args, kwargs, backend):
    try:
        return "ok", getattr(F, fn)(*args, backend=backend, **kwargs)
    except (ValueError, TypeError) as exc:
        return type(exc), exc
    except MemoryError as exc:  # pragma: no cover - reported by the assertion below
        return MemoryError, exc


@settings(max_examples=120)
@given(call=calls())
def test_any_call_gives_the_reference_result_or_names_the_argument(fast_backend_name, call):
    fn, args, kwargs = call
    device_args = [as_backend_array(a, fast_backend_name) if isinstance(a, np.ndarray) and a.dtype.isnative
                   and a.flags.c_contiguous else a for a in args]
    got_kind, got = _call(fn, device_args, kwargs, fast_backend_name)
    want_kind, want = _call(fn, args, kwargs, "numpy")
    assert got_kind is not MemoryError and want_kind is not MemoryError, f"{fn}: {got!r} / {want!r}"
    if got_kind != "ok":
        message = str(got)
        assert message.startswith(fn.replace("_with_indices", "")) or message.startswith(fn.split("_grad")[0]), message
        assert want_kind == got_kind, f"{fast_backend_name} raised {got!r} but numpy gave {want!r}"
        return
    assert want_kind == "ok", f"{fast_backend_name} computed a result where numpy raised {want!r}"
    got = got if isinstance(got, tuple) else (got,)
    want = want if isinstance(want, tuple) else (want,)
    for a, b in zip(got, want):
        if b is None:
            assert a is None
            continue
        a = to_numpy(a)
        assert a.shape == b.shape and a.dtype == b.dtype
        tol = dict(rtol=1e-3, atol=1e-3) if a.dtype == np.float32 else dict(rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(a, b, **tol)


# ------------------------------------------------------------------ regressions
def test_trusted_max_pool_indices_are_still_range_checked(backend_name):
    """Once a segfault (10**9) or a silent write outside dx (-10**6, H*W) on the cython backend."""
    x = as_backend_array(np.random.default_rng(0).standard_normal((2, 3, 4, 4)), backend_name)
    y, idx = F.max_pool2d_with_indices(x, 2, backend=backend_name)
    for bad in (10**9, -(10**6), 16):
        wrong = idx * 0 + bad
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 16\)"):
            F.max_pool2d_grad_from_forward(x, y * 0 + 1, 2, indices=wrong, backend=backend_name)


@pytest.mark.parametrize("kernel, padding, width", [((1, 65536), (0, 32768), 65536), ((3, 40000), (1, 20000), 3)])
def test_average_pooling_divides_by_the_window_in_floating_point(backend_name, kernel, padding, width):
    """The divisor F_H*F_W was a C int on the cython backend: a window of 65536 gave inf, larger ones
    a negative mean."""
    x = as_backend_array(np.ones((1, 1, 3, width), np.float32), backend_name)
    y = to_numpy(F.avg_pool2d(x, kernel, stride=1, padding=padding, backend=backend_name))
    want = F.avg_pool2d(to_numpy(x), kernel, stride=1, padding=padding, backend="numpy")
    assert np.isfinite(y).all() and (y >= 0).all()
    np.testing.assert_allclose(y, want, rtol=1e-5)


def test_hyper_parameters_beyond_32_bits_give_the_same_result_on_every_backend(backend_name):
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 5))
    w = np.random.default_rng(2).standard_normal((3, 2, 1, 1))
    xb = as_backend_array(x, backend_name)
    for kwargs in (dict(stride=2**31), dict(stride=(1, 2**33)), dict(dilation=2**31)):
        np.testing.assert_allclose(to_numpy(F.conv2d(xb, as_backend_array(w, backend_name), backend=backend_name, **kwargs)),
                                   F.conv2d(x, w, backend="numpy", **kwargs), rtol=1e-12)
    for pool in (F.max_pool2d, F.avg_pool2d):
        np.testing.assert_allclose(to_numpy(pool(xb, (1, 2), stride=(1, 2**31), backend=backend_name)),
                                   pool(x, (1, 2), stride=(1, 2**31), backend="numpy"), rtol=1e-12)


def test_padding_that_would_make_a_huge_padded_input_is_refused_on_every_backend(backend_name):
    x = as_backend_array(np.ones((1, 1, 2, 2)), backend_name)
    w = as_backend_array(np.ones((1, 1, 3, 3)), backend_name)
    with pytest.raises(ValueError, match=r"conv2d: padding \(1048576, 1048576\) makes the padded input"):
        F.conv2d(x, w, padding=2**20, dilation=2**20, backend=backend_name)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding \(1, 536870912\) makes the padded input"):
        F.avg_pool2d(x, (3, 2**30), padding=(1, 2**29), backend=backend_name)


def test_a_zero_dimensional_array_is_reported_as_zero_dimensional():
    with pytest.raises(ValueError, match=r"conv2d: x must be 4-D \(N, C_in, H, W\), got 0-D array of shape \(\)"):
        F.conv2d(np.ones((), np.float32), np.ones((1, 1, 1, 1), np.float32))


def test_every_backend_is_listed_by_the_fuzz_suite():
    assert set(mc.available_backends()) >= {"numpy"}
