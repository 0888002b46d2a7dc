"""The options real models use beyond the decks, with torch's names and semantics.

Pooling (``dilation``, ``ceil_mode``, ``return_indices``, ``count_include_pad``,
``divisor_override``, four-sided padding), ``F.pad`` (constant, reflect,
replicate, circular), convolution ``padding="same"``/``"valid"``/four-sided,
the activations (LeakyReLU, HardSigmoid, HardSwish, SiLU, GELU both forms),
softmax and log-softmax over any axis, ``Flatten(start_dim, end_dim)`` and
``Add`` with broadcasting.

Each is checked three ways: Hypothesis properties against a brute-force
oracle written here (loops over the windows, no code shared with minicnn),
every backend against the NumPy reference, and torch where it is installed.
Gradients by central differences (tests/gradcheck.py) in float64.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from minicnn.nn import merge

from gradcheck import check_module_gradients
from strategies import pool_option_configs, seeds

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # torch is an optional oracle
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
nn = mc.nn
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------ brute-force oracles
def _taps(i, stride, padding, dilation, kernel, size):
    """The image rows (or columns) of window ``i``'s taps."""
    start = i * stride - padding
    return [start + k * dilation for k in range(kernel) if 0 <= start + k * dilation < size]


def brute_max_pool(x, g):
    """Max pooling by looping over every window's taps, row-major; ties keep the first."""
    n, c, h, w = x.shape
    y = np.empty(g.y_shape, x.dtype)
    idx = np.empty(g.y_shape, np.int64)
    for i, j in itertools.product(range(g.oh), range(g.ow)):
        rows = _taps(i, g.stride[0], g.padding[0], g.dilation[0], g.kernel[0], h)
        cols = _taps(j, g.stride[1], g.padding[1], g.dilation[1], g.kernel[1], w)
        flat = [r * w + q for r in rows for q in cols]
        values = x.reshape(n, c, h * w)[:, :, flat]
        best = values.argmax(axis=2)
        y[:, :, i, j] = np.take_along_axis(values, best[..., None], 2)[..., 0]
        idx[:, :, i, j] = np.asarray(flat)[best]
    return y, idx


def brute_avg_pool(x, g):
    """Average pooling by summing each window's real pixels and dividing by torch's divisor."""
    n, c, h, w = x.shape
    y = np.empty(g.y_shape, x.dtype)
    for i, j in itertools.product(range(g.oh), range(g.ow)):
        (ph, pw), (eh, ew), (kh, kw), (sh, sw) = g.padding, g.padding_end, g.kernel, g.stride
        r0, q0 = i * sh - ph, j * sw - pw
        real = x[:, :, max(r0, 0):min(r0 + kh, h), max(q0, 0):min(q0 + kw, w)]
        if g.divisor_override is not None:
            divisor = g.divisor_override
        elif g.count_include_pad:
            divisor = (min(r0 + kh, h + eh) - r0) * (min(q0 + kw, w + ew) - q0)
        else:
            divisor = real.shape[2] * real.shape[3]
        y[:, :, i, j] = real.sum(axis=(2, 3)) / divisor
    return y


def _x(seed, shape, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _close(got, want, dtype, terms):
    """Sums of ``terms`` values in another order: error <= terms * eps * (sum of magnitudes)."""
    np.testing.assert_allclose(got, want, rtol=0, atol=terms * EPS[dtype] * max(1.0, float(np.abs(want).max(initial=0))) * 4)


# ------------------------------------------------------------------ output sizes
@given(size=st.integers(1, 40), kernel=st.integers(1, 6), stride=st.integers(1, 5), dilation=st.integers(1, 3),
       data=st.data())
def test_ceil_mode_output_size_keeps_partial_windows_that_start_inside(size, kernel, stride, dilation, data):
    """ceil_mode keeps the partial last window floor drops, but only one that starts inside the input
    (or the leading padding); with overlapping or touching windows every pixel is then in a window."""
    padding = data.draw(st.integers(0, kernel // 2))
    floor = shapes.pool_output_size(size, kernel, stride, padding, dilation)
    ceil = shapes.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode=True)
    if floor < 1:
        return
    assert floor <= ceil <= floor + 1
    assert (ceil - 1) * stride - padding < size  # the last window starts inside the input or the left padding
    if ceil == floor + 1:  # the extra window is partial: it runs past the padded input
        assert (ceil - 1) * stride + shapes.dilated_extent(kernel, dilation) > size + 2 * padding
    if dilation == 1 and stride <= kernel:
        covered = set()
        for i in range(ceil):
            covered.update(range(i * stride - padding, i * stride - padding + kernel))
        assert set(range(size)) <= covered


@needs_torch
@given(size=st.integers(1, 30), kernel=st.integers(1, 5), stride=st.integers(1, 4), dilation=st.integers(1, 3),
       ceil_mode=st.booleans(), data=st.data())
def test_pool_output_size_is_torchs(size, kernel, stride, dilation, ceil_mode, data):
    padding = data.draw(st.integers(0, kernel // 2))
    ours = shapes.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    try:
        theirs = TF.max_pool2d(torch.zeros(1, 1, size, 1), (kernel, 1), (stride, 1), (padding, 0), (dilation, 1),
                               ceil_mode).shape[2]
    except RuntimeError:
        theirs = None
    if theirs is None:
        assert ours < 1
    else:
        assert ours == theirs


def test_pool2d_output_shape_takes_the_options():
    assert shapes.pool2d_output_shape((1, 3, 112, 112), 3, 2, ceil_mode=True) == (1, 3, 56, 56)
    assert shapes.pool2d_output_shape((1, 3, 113, 113), 3, 2, ceil_mode=True) == (1, 3, 56, 56)
    assert shapes.pool2d_output_shape((1, 3, 10, 10), 3, 1, padding=(0, 1, 2, 0)) == (1, 3, 10, 9)
    assert shapes.pool2d_output_shape((1, 3, 10, 10), 2, 1, dilation=3) == (1, 3, 7, 7)


# ------------------------------------------------------------------ pooling: properties
@given(config=pool_option_configs("max"), seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
def test_max_pool_options_match_the_brute_force_windows(backend_name, config, seed, dtype):
    x = _x(seed, config.x_shape, dtype)
    y, idx = F.max_pool2d(x, config.kernel_size, return_indices=True, backend=backend_name, **config.kwargs)
    want_y, want_idx = brute_max_pool(x, config.geometry)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    dy = _x(seed + 1, y.shape, dtype)
    dx = F.max_pool2d_grad(x, dy, config.kernel_size, indices=idx, backend=backend_name, **config.kwargs)
    want = np.zeros((x.shape[0] * x.shape[1], x.shape[2] * x.shape[3]), dtype)
    for plane, out in itertools.product(range(want.shape[0]), range(y.shape[2] * y.shape[3])):
        want[plane, want_idx.reshape(want.shape[0], -1)[plane, out]] += dy.reshape(want.shape[0], -1)[plane, out]
    _close(dx, want.reshape(x.shape), dtype, int(np.prod(config.kernel_size)))


@given(config=pool_option_configs("avg"), seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
def test_avg_pool_options_match_the_brute_force_windows(backend_name, config, seed, dtype):
    """count_include_pad=False averages only real pixels; ceil_mode's partial windows divide by their part of
    the padded input; divisor_override divides by that number."""
    x = _x(seed, config.x_shape, dtype)
    y = F.avg_pool2d(x, config.kernel_size, backend=backend_name, **config.kwargs)
    _close(y, brute_avg_pool(x, config.geometry), dtype, int(np.prod(config.kernel_size)))


@given(config=pool_option_configs("avg"), seed=seeds)
def test_avg_pool_grad_is_the_adjoint_of_the_forward(backend_name, config, seed):
    """<avg_pool(x), dy> = <x, avg_pool_grad(dy)>: the backward is the transpose of the (linear) forward."""
    x = _x(seed, config.x_shape)
    y = F.avg_pool2d(x, config.kernel_size, backend=backend_name, **config.kwargs)
    dy = _x(seed + 1, y.shape)
    dx = F.avg_pool2d_grad(x, dy, config.kernel_size, backend=backend_name, **config.kwargs)
    assert dx.shape == x.shape
    np.testing.assert_allclose(float((y * dy).sum()), float((x * dx).sum()), rtol=1e-10, atol=1e-10)


@given(seed=seeds, h=st.integers(1, 9), w=st.integers(1, 9), kernel=st.integers(1, 4), stride=st.integers(1, 3),
       ceil_mode=st.booleans(), data=st.data())
def test_count_include_pad_false_averages_a_constant_to_itself(backend_name, seed, h, w, kernel, stride, ceil_mode,
                                                               data):
    """Only real pixels count, so a constant image (a power of two: exact sums) averages to itself everywhere,
    borders and partial windows included."""
    padding = data.draw(st.integers(0, kernel // 2))
    if shapes.pool_output_size(min(h, w), kernel, stride, padding) < 1:
        return
    x = np.full((1, 2, h, w), 0.5)
    y = F.avg_pool2d(x, kernel, stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=False,
                     backend=backend_name)
    np.testing.assert_array_equal(y, 0.5)


@given(config=pool_option_configs("max"), seed=seeds)
def test_fast_backends_agree_with_the_reference_on_max_options(fast_backend_name, config, seed):
    x = _x(seed, config.x_shape, np.float32)
    y, idx = F.max_pool2d(x, config.kernel_size, return_indices=True, backend=fast_backend_name, **config.kwargs)
    ref_y, ref_idx = F.max_pool2d(x, config.kernel_size, return_indices=True, backend="numpy", **config.kwargs)
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(idx, ref_idx)


@given(config=pool_option_configs("avg"), seed=seeds, dtype=st.sampled_from([np.float32, np.float64]))
def test_fast_backends_agree_with_the_reference_on_avg_options(fast_backend_name, config, seed, dtype):
    x = _x(seed, config.x_shape, dtype)
    y = F.avg_pool2d(x, config.kernel_size, backend=fast_backend_name, **config.kwargs)
    ref = F.avg_pool2d(x, config.kernel_size, backend="numpy", **config.kwargs)
    _close(y, ref, dtype, int(np.prod(config.kernel_size)))
    dy = _x(seed + 1, y.shape, dtype)
    dx = F.avg_pool2d_grad(x, dy, config.kernel_size, backend=fast_backend_name, **config.kwargs)
    _close(dx, F.avg_pool2d_grad(x, dy, config.kernel_size, backend="numpy", **config.kwargs), dtype,
           int(np.prod(config.kernel_size)))


def test_max_pool_2x2_ceil_mode_on_odd_sizes_reads_inside_the_image(backend_name):
    """2x2/2 with ceil_mode on a 5x7 map: the fast 2x2 kernel must not run (its last window is partial)."""
    x = _x(3, (2, 3, 5, 7), np.float32)
    y, idx = F.max_pool2d(x, 2, ceil_mode=True, return_indices=True, backend=backend_name)
    assert y.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(y[..., 2, 3], x[..., 4, 6])
    np.testing.assert_array_equal(idx[..., 2, 3], 4 * 7 + 6)
    a = F.avg_pool2d(x, 2, ceil_mode=True, backend=backend_name)
    np.testing.assert_array_equal(a[..., 2, 3], x[..., 4, 6])  # a window of one real pixel (and no padding)


# ------------------------------------------------------------------ pooling: torch
@needs_torch
@given(config=pool_option_configs("max", symmetric=True), seed=seeds)
def test_max_pool_options_are_torchs(backend_name, config, seed):
    x = _x(seed, config.x_shape)
    y, idx = F.max_pool2d(x, config.kernel_size, return_indices=True, backend=backend_name, **config.kwargs)
    tx = _t(x).requires_grad_()
    ty, tidx = TF.max_pool2d(tx, config.kernel_size, return_indices=True, **config.kwargs)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    dy = _x(seed + 1, y.shape)
    ty.backward(_t(dy))
    dx = F.max_pool2d_grad(x, dy, config.kernel_size, indices=idx, backend=backend_name, **config.kwargs)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


@needs_torch
@given(config=pool_option_configs("avg", symmetric=True), seed=seeds)
def test_avg_pool_options_are_torchs(backend_name, config, seed):
    x = _x(seed, config.x_shape)
    y = F.avg_pool2d(x, config.kernel_size, backend=backend_name, **config.kwargs)
    tx = _t(x).requires_grad_()
    ty = TF.avg_pool2d(tx, config.kernel_size, **config.kwargs)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = _x(seed + 1, y.shape)
    ty.backward(_t(dy))
    dx = F.avg_pool2d_grad(x, dy, config.kernel_size, backend=backend_name, **config.kwargs)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ pooling: layers
@pytest.mark.parametrize("layer, shape", [
    (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), (1, 2, 8, 7)),
    (lambda: nn.MaxPool2d(3, 2, padding=1, dilation=2), (1, 2, 9, 8)),
    (lambda: nn.MaxPool2d(2, 1, padding=(0, 1, 1, 0)), (2, 1, 5, 6)),
    (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), (1, 2, 8, 7)),
    (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 7, 7)),
    (lambda: nn.AvgPool2d(2, divisor_override=3, ceil_mode=True), (1, 2, 5, 5)),
    (lambda: nn.AvgPool2d(3, 2, padding=(1, 0, 0, 1), count_include_pad=False, ceil_mode=True), (1, 1, 8, 6)),
])
def test_pool_layers_with_options_pass_gradient_checks(backend_name, layer, shape):
    layer = layer()
    x = np.random.default_rng(1).permutation(np.prod(shape)).reshape(shape) / 10.0  # distinct: no ties
    with mc.use_backend(backend_name):
        assert layer.output_shape(shape) == layer(x).shape
        check_module_gradients(layer, x, eps=1e-4)


def test_max_pool_layer_return_indices_gives_torchs_pair(backend_name):
    x = _x(0, (2, 3, 7, 7))
    layer = nn.MaxPool2d(3, 2, ceil_mode=True, return_indices=True)
    with mc.use_backend(backend_name):
        y, idx = layer(x)
        dx = layer.backward(np.ones_like(y))
    ref_y, ref_idx = F.max_pool2d(x, 3, stride=2, ceil_mode=True, return_indices=True, backend="numpy")
    np.testing.assert_array_equal(y, ref_y)
    np.testing.assert_array_equal(idx, ref_idx)
    assert dx.shape == x.shape and dx.sum() == y.size
    assert "return_indices=True" in repr(layer) and "ceil_mode=True" in repr(layer)


def test_indices_are_checked_against_their_dilated_windows():
    x = _x(0, (1, 1, 7, 7))
    y, idx = F.max_pool2d(x, 2, stride=2, dilation=2, return_indices=True)
    idx = idx.copy()
    idx[0, 0, 0, 0] = 1  # column 1 is between the taps 0 and 2 of window (0, 0)
    with pytest.raises(ValueError, match=r"1 of the indices point outside their own 2x2 window .*2\*\[0, 2\)"):
        F.max_pool2d_grad(x, np.ones_like(y), 2, stride=2, dilation=2, indices=idx)


# ------------------------------------------------------------------ padding
PAD_CASES = [
    ((2, 1, 1, 3), "constant"), ((1, -1, 0, 2), "constant"), ((2, 3), "constant"), ((1, 1, 1, 1, 1, 0), "constant"),
    ((2, 1, 1, 3), "reflect"), ((0, 3), "reflect"), ((3, 3, 2, 2), "replicate"), ((5, 0, 0, 6), "replicate"),
    ((2, 4, 3, 1), "circular"), ((4, 4), "circular"),
]


@pytest.mark.parametrize("pad, mode", PAD_CASES)
def test_pad_matches_its_definition_index_by_index(backend_name, pad, mode):
    x = _x(2, (2, 3, 4, 5))
    y = F.pad(x, pad, mode, value=0.25 if mode == "constant" else 0, backend=backend_name)
    assert y.shape == shapes.pad_output_shape(x.shape, pad)
    axes = [(x.ndim - 1 - k, pad[2 * k], pad[2 * k + 1]) for k in range(len(pad) // 2)]
    for out in itertools.product(*(range(s) for s in y.shape)):
        src, inside = list(out), True
        for axis, before, _ in axes:
            i, size = out[axis] - before, x.shape[axis]
            if mode == "constant":
                inside &= 0 <= i < size
            elif mode == "reflect":
                i = abs(i) if i < size else 2 * (size - 1) - i
            elif mode == "replicate":
                i = min(max(i, 0), size - 1)
            else:
                i %= size
            src[axis] = i
        assert y[out] == (x[tuple(src)] if inside else 0.25)


@st.composite
def pad_calls(draw):
    """A 2-D to 4-D shape, a mode and amounts for its last axes that the mode allows."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=2, max_size=4)))
    mode = draw(st.sampled_from(F.PAD_MODES))
    pad = []
    for k in range(draw(st.integers(1, len(shape)))):  # pairs for the last axes, last axis first
        size = shape[len(shape) - 1 - k]
        low, high = {"constant": (-(size // 2), 4), "reflect": (0, size - 1), "replicate": (0, 4),
                     "circular": (0, size)}[mode]
        pad += [draw(st.integers(low, high)), draw(st.integers(low, high))]
    return shape, tuple(pad), mode


@given(call=pad_calls(), seed=seeds)
def test_pad_grad_is_the_adjoint_of_pad(backend_name, call, seed):
    """F.pad is linear (constant mode with value 0), so <pad(x), dy> = <x, pad_grad(dy)>; and the shape is
    the input's plus the amounts, axis by axis."""
    shape, pad, mode = call
    x = _x(seed, shape)
    y = F.pad(x, pad, mode, backend=backend_name)
    want = list(shape)
    for k in range(len(pad) // 2):
        want[len(shape) - 1 - k] += pad[2 * k] + pad[2 * k + 1]
    assert y.shape == tuple(want)
    dy = _x(seed + 1, y.shape)
    dx = F.pad_grad(x, dy, pad, mode, backend=backend_name)
    np.testing.assert_allclose(float((y * dy).sum()), float((x * dx).sum()), rtol=1e-10, atol=1e-10)


@given(seed=seeds, slope=st.floats(0.0, 1.0), dim=st.integers(-3, 2))
def test_activation_and_softmax_properties(seed, slope, dim):
    """LeakyReLU(a) = max(x, a x) for 0 <= a <= 1; HardSigmoid lies in [0, 1] and is 1/2 at 0; GELU's tanh form
    stays within 1e-3 of the exact one; softmax sums to 1 and ignores a constant added along its axis;
    log_softmax is the log of softmax."""
    x = _x(seed, (2, 3, 4)) * 4
    np.testing.assert_array_equal(F.leaky_relu(x, slope), np.maximum(x, slope * x))
    h = F.hardsigmoid(x)
    assert h.min() >= 0 and h.max() <= 1 and F.hardsigmoid(np.zeros(1))[0] == 0.5
    assert np.abs(F.gelu(x, "tanh") - F.gelu(x)).max() < 1e-3
    p = F.softmax(x, dim)
    np.testing.assert_allclose(p.sum(axis=dim), 1.0, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(F.softmax(x + x.max(axis=dim, keepdims=True), dim), p, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(F.log_softmax(x, dim), np.log(p), rtol=1e-12, atol=1e-12)


@needs_torch
@pytest.mark.parametrize("pad, mode", [c for c in PAD_CASES if not (c[1] != "constant" and len(c[0]) > 4)])
def test_pad_and_its_gradient_are_torchs(backend_name, pad, mode):
    x = _x(4, (2, 3, 4, 5))
    tx = _t(x).requires_grad_()
    # torch pads one axis of a 3-D tensor in the non-constant modes, not of a 4-D one
    if mode == "constant":
        ty = TF.pad(tx, pad, mode, value=-1.5)
    elif len(pad) == 2:
        ty = TF.pad(tx.reshape(6, 4, 5), pad, mode).reshape(2, 3, 4, -1)
    else:
        ty = TF.pad(tx, pad, mode)
    y = F.pad(x, pad, mode, value=-1.5 if mode == "constant" else 0, backend=backend_name)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    dy = _x(5, y.shape)
    ty.backward(_t(dy))
    np.testing.assert_allclose(F.pad_grad(x, dy, pad, mode, backend=backend_name), tx.grad.numpy(), rtol=1e-13,
                               atol=1e-13)


@pytest.mark.parametrize("layer", [
    lambda: nn.Pad((1, 2, 0, 1), "constant", 3.0), lambda: nn.ReflectionPad2d((1, 2, 2, 1)),
    lambda: nn.ReplicationPad2d(2), lambda: nn.Pad((3, 1, 1, 2), "circular"), lambda: nn.ZeroPad2d((0, 1, 1, 0)),
    lambda: nn.ConstantPad2d(1, -2.0), lambda: nn.Pad((-1, 1), "constant"),
])
def test_pad_layers_pass_gradient_checks(backend_name, layer):
    layer = layer()
    x = _x(6, (2, 2, 3, 4))
    with mc.use_backend(backend_name):
        assert layer(x).shape == layer.output_shape(x.shape)
        check_module_gradients(layer, x)


@pytest.mark.parametrize("call, error, message", [
    (lambda x: F.pad(x, (4, 0), "reflect"), ValueError,
     "pad: reflect padding (4, 0) of axis 3 (size 4) is impossible: it needs 0 <= padding and padding < size"),
    (lambda x: F.pad(x, (0, 0, 0, 4), "reflect"), ValueError, "reflect padding (0, 4) of axis 2 (size 3)"),
    (lambda x: F.pad(x, (5, 0), "circular"), ValueError, "circular padding (5, 0) of axis 3 (size 4)"),
    (lambda x: F.pad(x, (-1, 0), "replicate"), ValueError, "replicate padding (-1, 0) of axis 3"),
    (lambda x: F.pad(x, (1, 2, 3)), ValueError, "pad must have an even length"),
    (lambda x: F.pad(x, (1,) * 10), ValueError, "at most 2*ndim = 8"),
    (lambda x: F.pad(x, (-3, -2)), ValueError, "axis 3 would have size 4 + -3 + -2 = -1 < 0"),
    (lambda x: F.pad(x, (1, 1), "wrap"), ValueError, "mode must be one of ['constant', 'reflect', 'replicate', 'circular']"),
    (lambda x: F.pad(x, (1.0, 1)), TypeError, "pad must be a tuple of ints"),
    (lambda x: F.pad(x, (1, 1), value="a"), TypeError, "value must be a number"),
    (lambda x: F.pad(x, (1, 1), "reflect", value=3), ValueError,
     "pad: value=3 is the fill of mode='constant'; mode='reflect' copies the input's own values and takes no value"),
    (lambda x: nn.Pad((1, 1), "circular", 0.5), ValueError, "Pad: value=0.5 is the fill of mode='constant'"),
    (lambda x: nn.ReflectionPad2d(4).output_shape(x.shape), ValueError,
     "ReflectionPad2d: reflect padding (4, 4) of axis 3 (size 4) is impossible"),
])
def test_pad_errors_name_the_numbers(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(np.zeros((1, 2, 3, 4)))


def test_a_pad_layers_output_shape_is_its_forward_shape():
    x = np.zeros((1, 2, 3, 4))
    for layer in (nn.ReflectionPad2d((1, 2, 0, 2)), nn.ReplicationPad2d(5), nn.ZeroPad2d((-1, 0, 2, 0)),
                  nn.Pad((1, 1, 1, 1), "circular")):
        assert layer.output_shape(x.shape) == layer(x).shape


# ------------------------------------------------------------------ convolution padding
@needs_torch
@pytest.mark.parametrize("kernel, dilation", [(3, 1), (4, 1), ((2, 5), 1), (3, 2), ((4, 3), (1, 2))])
def test_conv_padding_same_is_torchs(backend_name, kernel, dilation):
    x = _x(7, (2, 3, 7, 6))
    k = shapes.pair(kernel)
    w = _x(8, (4, 3, *k))
    y = F.conv2d(x, w, padding="same", dilation=dilation, backend=backend_name)
    tx, tw = _t(x).requires_grad_(), _t(w).requires_grad_()
    ty = TF.conv2d(tx, tw, padding="same", dilation=dilation)
    assert y.shape == (2, 4, 7, 6)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = _x(9, y.shape)
    ty.backward(_t(dy))
    dx, dw, _ = F.conv2d_grad(x, w, dy, padding="same", dilation=dilation, backend=backend_name)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F.conv2d_input_grad(x.shape, w, dy, padding="same", dilation=dilation,
                                                   backend=backend_name), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.conv2d_weight_grad(x, w.shape, dy, padding="same", dilation=dilation,
                                                    backend=backend_name)[0], dw, rtol=1e-12, atol=1e-12)


def test_conv_padding_valid_and_four_sided(backend_name):
    x = _x(10, (1, 2, 6, 7))
    w = _x(11, (3, 2, 3, 3))
    np.testing.assert_array_equal(F.conv2d(x, w, padding="valid", backend=backend_name),
                                  F.conv2d(x, w, padding=0, backend=backend_name))
    sides = (2, 0, 1, 3)  # left, right, top, bottom
    want = F.conv2d(F.pad(x, sides), w, backend="numpy")
    np.testing.assert_allclose(F.conv2d(x, w, padding=sides, backend=backend_name), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding, shape", [("same", (2, 3, 5, 6)), ((1, 0, 2, 1), (1, 3, 5, 6)),
                                            ((0, 2, 1, 1), (2, 3, 4, 4))])
def test_conv2d_layer_with_same_and_four_sided_padding_passes_gradient_checks(backend_name, padding, shape):
    layer = nn.Conv2d(3, 2, (2, 3), padding=padding, dtype=np.float64, rng=0)
    x = _x(12, shape)
    with mc.use_backend(backend_name):
        y = layer(x)
        assert y.shape == layer.output_shape(shape)
        if padding == "same":
            assert y.shape[2:] == shape[2:]
        check_module_gradients(layer, x, max_checks=40)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2, padding="same"),
     "conv2d: padding='same' is not supported for strided convolutions (stride=(2, 2))"),
    (lambda: nn.Conv2d(1, 1, 3, stride=(1, 2), padding="same"),
     "Conv2d: padding='same' is not supported for strided convolutions (stride=(1, 2))"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding="full"),
     "conv2d: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'full'"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=(1, -1, 0, 0)),
     "conv2d: padding must be >= 0 on every side, got (left, right, top, bottom) = (1, -1, 0, 0)"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), padding=(2**33, 0, 0, 0)),
     "conv2d: padding (8589934592, 0, 0, 0) makes the padded input N*C*(H + top + bottom)*(W + left + right) = "
     "1*1*5*8589934597 = 42,949,672,985 values, more than 2,147,483,647; use less padding"),
    (lambda: F.conv2d_grad(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 4, 4)),
                           padding=(0, 1, 2**31, 0)),
     "conv2d_grad: padding (0, 1, 2147483648, 0) makes the padded input N*C*(H + top + bottom)*(W + left + right) "
     "= 1*1*2147483653*6 = 12,884,901,918 values"),
])
def test_conv_padding_errors(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ------------------------------------------------------------------ pooling errors
@pytest.mark.parametrize("call, error, message", [
    (lambda x: F.max_pool2d(x, 3, padding=(2, 0, 0, 0)), ValueError,
     "max_pool2d: padding along width must be at most half the window, padding <= kernel_size//2 = 3//2 = 1, got padding=2"),
    (lambda x: F.avg_pool2d(x, 3, padding=(0, 2, 0, 0)), ValueError,
     "avg_pool2d: padding after the input along width must be at most half the window"),
    (lambda x: F.max_pool2d(x, 3, dilation=3), ValueError,
     "max_pool2d: output height floor((4 + 0 + 0 - 3*(3-1) - 1)/3) + 1 = 0 < 1: the window spans 7 pixels but the "
     "padded input height is 4"),
    (lambda x: F.max_pool2d(x[:, :, :2, :2], 2, dilation=3, padding=1), ValueError,
     "max_pool2d: window 0 along height has no tap on the image: taps -1 + 3*[0, 2) all lie in the padding of an "
     "input of 2 pixels"),
    (lambda x: F.max_pool2d(x, 2, ceil_mode=1), TypeError, "max_pool2d: ceil_mode must be a bool, got int 1"),
    (lambda x: F.max_pool2d(x, 2, return_indices="yes"), TypeError, "max_pool2d: return_indices must be a bool"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, "avg_pool2d: divisor_override must be >= 1, got 0"),
    (lambda x: F.avg_pool2d(x, 2, count_include_pad=None), TypeError, "avg_pool2d: count_include_pad must be a bool"),
    (lambda x: nn.MaxPool2d(2, dilation=0), ValueError, "MaxPool2d: dilation must be >= 1"),
    (lambda x: nn.AvgPool2d(2, divisor_override=-1), ValueError, "AvgPool2d: divisor_override must be >= 1"),
    (lambda x: nn.MaxPool2d(2, padding=(0, 2, 0, 0)), ValueError, "MaxPool2d: padding must be at most half the window"),
])
def test_pool_option_errors_name_the_numbers(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(np.zeros((1, 1, 4, 4)))


def test_pool_flags_take_numpy_bools_as_the_layers_do():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    y, indices = F.max_pool2d(x, 2, ceil_mode=np.True_, return_indices=np.True_)
    assert y.shape == (1, 1, 3, 3) and indices.shape == y.shape
    np.testing.assert_array_equal(F.avg_pool2d(x, 3, padding=1, count_include_pad=np.False_),
                                  F.avg_pool2d(x, 3, padding=1, count_include_pad=False))
    assert nn.MaxPool2d(2, ceil_mode=np.True_).output_shape(x.shape) == y.shape


def test_a_pool_too_large_to_pad_names_the_formula_it_computed():
    """With ceil_mode a window may reach one stride past the padded input: the size checked, and printed, counts it."""
    g = shapes.pool2d_geometry((1, 1, 46341, 46341), 3, 2, 1, ceil_mode=True)
    message = ("max_pool2d: padding (1, 1) makes the padded input N*C*(H + 2P + S)*(W + 2P + S) = "
               "1*1*(46341 + 2*1 + 2)*(46341 + 2*1 + 2) = 2,147,859,025 values")
    with pytest.raises(ValueError, match=re.escape(message)):
        F._check_padded_size("max_pool2d", g)


# ------------------------------------------------------------------ activations
ACTIVATIONS = [
    (lambda: nn.LeakyReLU(), lambda t: TF.leaky_relu(t)),
    (lambda: nn.LeakyReLU(0.2), lambda t: TF.leaky_relu(t, 0.2)),
    (lambda: nn.HardSigmoid(), lambda t: TF.hardsigmoid(t)),
    (lambda: nn.HardSwish(), lambda t: TF.hardswish(t)),
    (lambda: nn.SiLU(), lambda t: TF.silu(t)),
    (lambda: nn.Swish(), lambda t: TF.silu(t)),
    (lambda: nn.GELU(), lambda t: TF.gelu(t)),
    (lambda: nn.GELU("tanh"), lambda t: TF.gelu(t, approximate="tanh")),
]
FUNCTIONAL = {"LeakyReLU": F.leaky_relu, "HardSigmoid": F.hardsigmoid, "HardSwish": F.hardswish, "SiLU": F.silu,
              "GELU": F.gelu}


def _away_from_kinks(shape, seed=13):
    """Values in [-5, 5] at least 0.05 from the kinks at 0 and ±3 (where the derivatives jump)."""
    x = np.random.default_rng(seed).uniform(-5, 5, shape)
    for kink in (-3.0, 0.0, 3.0):
        near = np.abs(x - kink) < 0.05
        x[near] = kink + 0.1
    return x


@pytest.mark.parametrize("make, _", ACTIVATIONS)
def test_activations_pass_gradient_checks(make, _):
    check_module_gradients(make(), _away_from_kinks((2, 3, 4, 4)))


@needs_torch
@pytest.mark.parametrize("make, reference", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_and_derivatives_are_torchs(make, reference, dtype):
    layer = make()
    x = np.concatenate([_away_from_kinks((50,)), [-3.0, 0.0, 3.0, -10.0, 10.0]]).astype(dtype)
    y = layer(x)
    assert y.dtype == dtype
    tx = _t(x).requires_grad_()
    ty = reference(tx)
    ty.sum().backward()
    tol = 8 * EPS[dtype]
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    # torch's hardsigmoid backward multiplies by 1/6 rounded to float32 even for float64 tensors
    grad_tol = 8 * EPS[np.float32] if isinstance(layer, nn.HardSigmoid) else tol
    np.testing.assert_allclose(layer.backward(np.ones_like(y)), tx.grad.numpy(), rtol=grad_tol, atol=grad_tol)
    name = type(layer).__name__
    if name in FUNCTIONAL:
        args = (layer.approximate,) if name == "GELU" else (layer.negative_slope,) if name == "LeakyReLU" else ()
        np.testing.assert_array_equal(FUNCTIONAL[name](x, *args), y)


def test_activation_arguments_are_checked():
    with pytest.raises(ValueError, match=re.escape("GELU: approximate must be 'none' or 'tanh', got 'erf'")):
        nn.GELU("erf")
    with pytest.raises(ValueError, match=re.escape("gelu: approximate must be 'none' or 'tanh', got 'fast'")):
        F.gelu(np.zeros(2), approximate="fast")
    with pytest.raises(TypeError, match=re.escape("LeakyReLU: negative_slope must be a number, got str '0.1'")):
        nn.LeakyReLU("0.1")
    with pytest.raises(ValueError, match="LeakyReLU: negative_slope must be finite, got nan"):
        nn.LeakyReLU(float("nan"))
    with pytest.raises(TypeError, match=re.escape("leaky_relu: negative_slope must be a number, got str 'a'")):
        F.leaky_relu(np.zeros(2), "a")


@pytest.mark.parametrize("name", ["leaky_relu", "hardsigmoid", "hardswish", "silu", "gelu", "softmax", "log_softmax"])
@pytest.mark.parametrize("bad,what", [([1.0, -2.0], "list"), (np.array([1, -2]), "int64"),
                                      (np.array([1, -2], np.float16), "float16")])
def test_the_activation_functions_take_float_arrays_only(name, bad, what):
    with pytest.raises(TypeError, match=re.escape(f"{name}: input must be a float32/float64 array, got {what}")):
        getattr(F, name)(bad)


# ------------------------------------------------------------------ softmax over any axis
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -3])
@pytest.mark.parametrize("cls", [nn.Softmax, nn.LogSoftmax])
def test_softmax_over_any_axis_passes_gradient_checks(cls, dim):
    check_module_gradients(cls(dim), _x(14, (2, 3, 4, 2)))


@needs_torch
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_and_log_softmax_are_torchs(dim):
    x = _x(15, (3, 4, 5)) * 30  # large logits: no overflow
    for ours, theirs in ((F.softmax, TF.softmax), (F.log_softmax, TF.log_softmax)):
        np.testing.assert_allclose(ours(x, dim), theirs(_t(x), dim).numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(F.softmax(x, dim).sum(axis=dim), 1.0, rtol=1e-14, atol=1e-14)


def test_softmax_axis_is_another_name_for_dim_and_is_checked():
    x = _x(16, (2, 3))
    np.testing.assert_array_equal(nn.Softmax(axis=0)(x), F.softmax(x, 0))
    with pytest.raises(ValueError, match=re.escape("Softmax: dim must lie in [-ndim, ndim) = [-2, 2) for a 2-D input, got 2")):
        nn.Softmax(2)(x)
    with pytest.raises(TypeError, match="softmax: dim must be an int"):
        F.softmax(x, 1.0)
    with pytest.raises(ValueError, match=re.escape("LogSoftmax: dim=0 and axis=1 name the same argument")):
        nn.LogSoftmax(0, axis=1)
    assert nn.Softmax().dim == 1 and nn.LogSoftmax(1, axis=1).dim == 1


# ------------------------------------------------------------------ Flatten, Add
@pytest.mark.parametrize("start, end, want", [(1, -1, (2, 60)), (2, -1, (2, 3, 20)), (0, 1, (6, 4, 5)),
                                              (1, 2, (2, 12, 5)), (-2, -1, (2, 3, 20)), (3, 3, (2, 3, 4, 5))])
def test_flatten_start_and_end_dim_are_torchs(start, end, want):
    layer = nn.Flatten(start, end)
    x = _x(17, (2, 3, 4, 5))
    y = layer(x)
    assert y.shape == want == layer.output_shape(x.shape)
    if torch is not None:
        assert tuple(torch.nn.Flatten(start, end)(_t(x)).shape) == want
    np.testing.assert_array_equal(layer.backward(y), x)
    with pytest.raises(ValueError, match="Flatten: start_dim=3 comes after end_dim=1"):
        nn.Flatten(3, 1).output_shape(x.shape)


@pytest.mark.parametrize("shapes_", [[(2, 3, 4, 4), (1, 3, 1, 1)], [(2, 3, 4, 4), (4,)], [(1, 3, 1, 4), (2, 1, 5, 1)],
                                     [(2, 3, 4, 4), (2, 3, 4, 4), (3, 1, 1)]])
def test_add_broadcasts_and_sums_the_gradient_over_broadcast_axes(shapes_):
    xs = [_x(20 + i, s) for i, s in enumerate(shapes_)]
    layer = nn.Add()
    y = layer(*xs)
    assert y.shape == np.broadcast_shapes(*shapes_) == layer.output_shape(*shapes_)
    np.testing.assert_allclose(y, sum(xs), rtol=1e-15, atol=1e-15)
    check_module_gradients(layer, *xs)
    if torch is not None:
        txs = [_t(x).requires_grad_() for x in xs]
        dy = _x(30, y.shape)
        sum(txs).backward(_t(dy))
        for dx, tx in zip(layer.backward(dy), txs):
            np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-13, atol=1e-13)


def test_add_broadcasting_inside_a_graph_passes_gradient_checks():
    """A squeeze-and-excitation-like join: a per-channel (N, C, 1, 1) branch added to every pixel."""
    g = mc.graph.Graph()
    x = g.input()
    squeezed = g.add(nn.GlobalAvgPool2d(), x)
    g.output(g.add(nn.Add(), x, g.add(nn.Tanh(), squeezed)))
    assert g.output_shape((2, 3, 4, 4)) == (2, 3, 4, 4)
    check_module_gradients(g, _x(31, (2, 3, 4, 4)))


def test_explain_says_when_padding_is_split_off():
    text = F.explain_conv2d((1, 3, 8, 8), (4, 3, 4, 4), padding="same", backend="numpy")
    assert text.startswith("padding='same': F.pad by (left, right, top, bottom) = (0, 1, 0, 1) first, then\nconv2d x 1x3x9x9")


def test_add_refuses_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=re.escape("Add: inputs must have equal shapes or shapes that broadcast")):
        nn.Add().output_shape((2, 3, 4, 4), (2, 2, 4, 4))
    assert merge._unbroadcast(np.ones((2, 3)), (3,)).tolist() == [2.0, 2.0, 2.0]


# ------------------------------------------------------------------ GoogLeNet as torchvision
@needs_torch
@pytest.mark.parametrize("size", [224, 225, 199, 96])
def test_googlenet_torchvision_variant_has_torchvisions_shapes(size):
    """torchvision's googlenet: conv 7x7/2 p3, then max pools 3x3/2, 3x3/2, 3x3/2, 2x2/2, all ceil_mode=True
    (the inception blocks keep the size); the shapes after each pool, for sizes the padded pools get wrong."""
    net = mc.models.googlenet(variant="torchvision", num_classes=10)
    t = torch.zeros(1, 3, size, size)
    t = TF.conv2d(t, torch.zeros(64, 3, 7, 7), stride=2, padding=3)
    want = {}
    for name, k in (("pool1", 3), ("pool2", 3), ("pool3", 3), ("pool4", 2)):
        if name == "pool2":
            t = TF.conv2d(t, torch.zeros(64, 64, 3, 3), padding=1)
        t = TF.max_pool2d(t, k, 2, ceil_mode=True)
        want[name] = tuple(t.shape[2:])
    shape = (1, 3, size, size)
    got = {}
    for name, layer in net.named_children():
        shape = layer.output_shape(shape)
        if name in want:
            got[name] = tuple(shape[2:])
    assert got == want
    assert shape == (1, 10)


def test_an_index_outside_a_dilated_window_names_the_dilation():
    x = np.arange(49, dtype=np.float64).reshape(1, 1, 7, 7)
    y, indices = F.max_pool2d_with_indices(x, 3, stride=1, dilation=2, backend="numpy")
    indices = indices.copy()
    indices[0, 0, 0, 0] += 1  # the pixel between two taps of the window: inside its span, not one of its taps
    with pytest.raises(ValueError, match=r"covers rows i\*1 - 0 \+ 2\*\[0, 3\) and columns j\*1 - 0 \+ 2\*\[0, 3\)\)"):
        F.max_pool2d_grad(x, np.ones_like(y), 3, stride=1, dilation=2, indices=indices, backend="numpy")


def test_dilated_2x2_windows_sharing_a_winner_add_their_errors(backend_name):
    # Kernel 2, stride 2, dilation (1, 2) on a 2x4 plane: the two windows' columns {0, 2} and {2} (ceil_mode)
    # share column 2, so the winner there gets both windows' dy. Looks like 2x2 tiles by its sizes, but is not.
    x = np.array([[[[0.1, -0.1, 0.6, 0.1], [-0.5, 0.4, 1.3, 0.9]]]], dtype=np.float32)
    kw = dict(stride=2, ceil_mode=True, dilation=(1, 2))
    y = F.max_pool2d(x, 2, **kw, backend=backend_name)
    assert y.shape == (1, 1, 1, 2) and y[0, 0, 0, 0] == y[0, 0, 0, 1] == np.float32(1.3)
    dx = F.max_pool2d_grad(x, np.array([[[[0.25, 0.5]]]], dtype=np.float32), 2, **kw, backend=backend_name)
    want = np.zeros_like(x)
    want[0, 0, 1, 2] = 0.75
    assert np.array_equal(dx, want)
