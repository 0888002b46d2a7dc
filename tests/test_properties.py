"""Hypothesis properties: the claims of the slides, checked on every backend.

Each test states one claim in its docstring, cites the deck (file name in
``shared/slides``) and the slide title it comes from, and runs once per
backend in ``minicnn.available_backends()`` (the ``backend_name`` argument,
see ``conftest.py``). Inputs come from the shared strategies in
``strategies.py``; many tests also hand the backend non-contiguous views of
the same values, which ``minicnn.functional`` must accept.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn import shapes
from strategies import (
    as_backend_array,
    conv_configs,
    cython_paths,
    distinct_array,
    float_dtypes,
    invalid_calls,
    layouts,
    non_contiguous_layouts,
    path_conv_configs,
    path_ops,
    pool_configs,
    random_array,
    seeds,
    tied_array,
    to_numpy,
)

#: Relative tolerance of the algebraic identities (scaled by the size of the result).
PROPERTY_RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
#: Tolerance of a backend against the "numpy" reference.
AGREEMENT_RTOL = {np.dtype(np.float32): 2e-3, np.dtype(np.float64): 1e-8}


# ------------------------------------------------------------------------ helpers
def run(backend_name, function, *args, layout="contiguous", **kwargs):
    """Call ``function`` on ``backend_name``; NumPy arguments go to its device as ``layout``, results come back."""
    moved = [as_backend_array(a, backend_name, layout) for a in args]
    out = function(*moved, backend=backend_name, **kwargs)
    if isinstance(out, tuple):
        return tuple(to_numpy(o) for o in out)
    return to_numpy(out)


def assert_close(actual, expected, dtype, rtol=None):
    """``actual`` equals ``expected`` up to rounding: relative ``rtol`` and absolute ``rtol * max|expected|``."""
    rtol = (rtol or PROPERTY_RTOL)[np.dtype(dtype)]
    expected = np.asarray(expected)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def conv_inputs(cfg, dtype, seed):
    """Input, weights, bias and an upstream gradient for ``cfg``."""
    rng = np.random.default_rng(seed)
    x = random_array(rng, cfg.x_shape, dtype)
    w = random_array(rng, cfg.w_shape, dtype)
    b = random_array(rng, (cfg.c_out,), dtype)
    dy = random_array(rng, cfg.out_shape, dtype)
    return x, w, b, dy


def wrap_pad(x, bottom, right):
    """Extend the last two axes circularly (``numpy.pad(mode="wrap")``) so a valid window wraps around."""
    return np.pad(x, ((0, 0), (0, 0), (0, bottom), (0, right)), mode="wrap")


def block_diagonal(w_1x1, groups):
    """The (C_out, C_in) matrix of a grouped 1x1 convolution: group g's block on the diagonal, zeros elsewhere."""
    c_out, c_per_group = w_1x1.shape
    out_per_group = c_out // groups
    m = np.zeros((c_out, c_per_group * groups), dtype=w_1x1.dtype)
    for g in range(groups):
        rows = slice(g * out_per_group, (g + 1) * out_per_group)
        m[rows, g * c_per_group : (g + 1) * c_per_group] = w_1x1[rows]
    return m


# ------------------------------------------------------------ the layouts drawn
@given(shape=st.tuples(*[st.integers(1, 4)] * 4), dtype=float_dtypes, seed=seeds, layout=non_contiguous_layouts)
def test_layout_views_hold_the_same_values(backend_name, shape, dtype, seed, layout):
    """The non-contiguous inputs the properties feed the backends carry exactly the drawn values.

    A view is non-contiguous whenever its last two axes both have more than one
    element, so ``minicnn.functional`` really receives strided memory.
    """
    a = random_array(np.random.default_rng(seed), shape, dtype)
    view = as_backend_array(a, backend_name, layout)
    np.testing.assert_array_equal(to_numpy(view), a)
    assert view.dtype == a.dtype
    if shape[2] > 1 and shape[3] > 1:
        assert not view.flags.c_contiguous


# --------------------------------------------------------------- 1, 2 equivariance
@given(
    cfg=conv_configs(paddings=0, spatial_multiple_of_stride=True),
    dtype=float_dtypes,
    seed=seeds,
    shift=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
    layout=layouts,
)
def test_conv2d_is_translation_equivariant(backend_name, cfg, dtype, seed, shift, layout):
    """Shifting the input by ``(S_h*a, S_w*b)`` pixels shifts the output by ``(a, b)``.

    Deck 003_7c437a475fa69432.txt, the slide after "CLASIFICACIÓN DE IMÁGENES
    CON PMC": "La operación es equivariante" (shared weights, "PESOS
    COMPARTIDOS"). The input is wrapped around (``numpy.pad(mode="wrap")`` by
    the kernel's extent minus one), which makes the convolution circular and
    the identity exact at the borders too; with stride S only shifts by
    multiples of S move the sampling grid onto itself.
    """
    x, w, _, _ = conv_inputs(cfg, dtype, seed)
    (kh, kw), (dh, dw), (sh, sw) = cfg.kernel, cfg.dilation, cfg.stride
    bottom, right = shapes.dilated_extent(kh, dh) - 1, shapes.dilated_extent(kw, dw) - 1

    def circular_conv(image):
        return run(backend_name, F.conv2d, wrap_pad(image, bottom, right), w, layout=layout, **cfg.kwargs)

    y = circular_conv(x)
    assert y.shape[2:] == (cfg.h // sh, cfg.w // sw)
    y_of_shifted = circular_conv(np.roll(x, (sh * shift[0], sw * shift[1]), axis=(2, 3)))
    assert_close(y_of_shifted, np.roll(y, shift, axis=(2, 3)), dtype)


@given(
    cfg=pool_configs(padded=False, spatial_multiple_of_stride=True),
    dtype=float_dtypes,
    seed=seeds,
    shift=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
    layout=layouts,
)
def test_pooling_is_translation_equivariant_for_shifts_by_the_stride(backend_name, cfg, dtype, seed, shift, layout):
    """Max and average pooling commute with shifts of the input by multiples of the stride.

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN": every
    window is reduced the same way wherever it sits, so moving the input by
    ``(S_h*a, S_w*b)`` moves the pooled map by ``(a, b)``. Circular padding
    (``numpy.pad(mode="wrap")``) makes it exact at the borders. The maximum
    involves no rounding, so max pooling must match bit for bit.
    """
    x = random_array(np.random.default_rng(seed), cfg.x_shape, dtype)
    (kh, kw), (sh, sw) = cfg.kernel, cfg.effective_stride
    moved = np.roll(x, (sh * shift[0], sw * shift[1]), axis=(2, 3))
    for pool in (F.max_pool2d, F.avg_pool2d):
        def circular_pool(image):
            wrapped = wrap_pad(image, kh - 1, kw - 1)
            return run(backend_name, pool, wrapped, cfg.kernel_size, layout=layout, **cfg.kwargs)

        y = circular_pool(x)
        assert y.shape[2:] == (cfg.h // sh, cfg.w // sw)
        expected = np.roll(y, shift, axis=(2, 3))
        if pool is F.max_pool2d:
            np.testing.assert_array_equal(circular_pool(moved), expected)
        else:
            assert_close(circular_pool(moved), expected, dtype)


# ------------------------------------------------------------------- 3 separability
@given(cfg=conv_configs(groups=1), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_rank_one_kernel_is_a_column_pass_then_a_row_pass(backend_name, cfg, dtype, seed, layout):
    """A kernel ``w = u v^T`` equals a ``F_H x 1`` column pass with ``u`` followed by a ``1 x F_W`` row pass with ``v``.

    Deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN ESPACIAL SEPARABLE" (Sobel =
    ``[1, 2, 1]^T [-1, 0, 1]``). Checked per channel (groups = C, as in a
    depthwise layer) with the drawn stride, padding and dilation split by axis.
    The multiplies per output pixel drop from ``k*k`` to ``2k``
    (``shapes.separable_spatial_flops_per_output``), a saving of ``k(k - 2)``.
    """
    rng = np.random.default_rng(seed)
    c, (kh, kw) = cfg.c_in, cfg.kernel
    x = random_array(rng, cfg.x_shape, dtype)
    u = random_array(rng, (c, kh), dtype)
    v = random_array(rng, (c, kw), dtype)
    w = np.einsum("cp,cq->cpq", u, v)[:, None]
    (sh, sw), (ph, pw), (dh, dw) = cfg.stride, cfg.padding, cfg.dilation

    def depthwise(image, kernel, stride, padding, dilation):
        options = dict(stride=stride, padding=padding, dilation=dilation, groups=c)
        return run(backend_name, F.conv2d, image, kernel, layout=layout, **options)

    direct = depthwise(x, w, cfg.stride, cfg.padding, cfg.dilation)
    columns = depthwise(x, u[:, None, :, None], (sh, 1), (ph, 0), (dh, 1))
    separable = depthwise(columns, v[:, None, None, :], (1, sw), (0, pw), (1, dw))
    assert_close(separable, direct, dtype)

    sobel = np.outer([1, 2, 1], [-1, 0, 1])
    np.testing.assert_array_equal(sobel, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    for k in (kh, kw):
        full, two_passes = shapes.separable_spatial_flops_per_output(k)
        assert (full, two_passes) == (k * k, 2 * k)
        # One output pixel of each pass: k taps for the column, k for the row, k*k for the full kernel.
        assert full == shapes.conv2d_macs(1, 1, (k, k), (1, 1))
        assert two_passes == shapes.conv2d_macs(1, 1, (k, 1), (1, 1)) + shapes.conv2d_macs(1, 1, (1, k), (1, 1))
        assert full - two_passes == k * (k - 2)


# --------------------------------------------------------------- 4-7 output sizes
@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds)
def test_conv2d_output_size_formula(backend_name, cfg, dtype, seed):
    """``conv2d`` returns ``(N, C_out, H_out, W_out)`` with ``H_out = floor((H + 2P - D(F-1) - 1)/S) + 1``.

    Deck 003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS"
    (there with D = 1), as computed by ``shapes.conv_output_size``.
    """
    x, w, b, _ = conv_inputs(cfg, dtype, seed)
    y = run(backend_name, F.conv2d, x, w, b, **cfg.kwargs)
    expected = [cfg.n, cfg.c_out]
    for size, f, s, p, d in zip((cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.padding, cfg.dilation):
        out = (size + 2 * p - d * (f - 1) - 1) // s + 1
        assert out >= 1
        assert shapes.conv_output_size(size, f, s, p, d) == out
        expected.append(out)
    assert y.shape == tuple(expected)
    assert y.shape == shapes.conv2d_output_shape(x.shape, w.shape, cfg.stride, cfg.padding, cfg.dilation)


@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_pool_output_size_formula_and_default_stride(backend_name, cfg, dtype, seed, layout):
    """Pooling returns ``H_out = floor((H + 2P - F)/S) + 1``; ``stride=None`` means ``S = F``.

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN"
    (``shapes.pool_output_size``). Leaving the stride out gives exactly the
    result of passing the window size as the stride.
    """
    x = random_array(np.random.default_rng(seed), cfg.x_shape, dtype)
    expected = [cfg.n, cfg.c]
    for size, f, s, p in zip((cfg.h, cfg.w), cfg.kernel, cfg.effective_stride, cfg.padding):
        out = (size + 2 * p - f) // s + 1
        assert shapes.pool_output_size(size, f, s, p) == out
        assert shapes.pool_output_size(size, f, None, p) == shapes.pool_output_size(size, f, f, p)
        expected.append(out)
    for pool in (F.max_pool2d, F.avg_pool2d):
        y = run(backend_name, pool, x, cfg.kernel_size, layout=layout, **cfg.kwargs)
        assert y.shape == tuple(expected) == shapes.pool2d_output_shape(x.shape, cfg.kernel, cfg.stride, cfg.padding)
        if cfg.stride is None:
            explicit = run(backend_name, pool, x, cfg.kernel, stride=cfg.kernel, padding=cfg.padding, layout=layout)
            np.testing.assert_array_equal(y, explicit)


@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds)
def test_dilated_kernel_extent_and_output_size(backend_name, cfg, dtype, seed):
    """A kernel of F taps with dilation D spans ``D(F - 1) + 1`` pixels and sizes the output like a kernel that wide.

    Deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN DILATADA"; deck
    004_d4430ea77d2b90c2.txt, "Convoluciones dilatadas": a 3x3 kernel with rate
    2 sees 5x5 with only 9 parameters.
    """
    assert shapes.dilated_extent(3, 2) == 5
    assert shapes.conv2d_params(1, 1, 3, bias=False) == 9
    x, w, _, _ = conv_inputs(cfg, dtype, seed)
    y = run(backend_name, F.conv2d, x, w, **cfg.kwargs)
    for axis, (size, f, s, p, d) in enumerate(zip((cfg.h, cfg.w), cfg.kernel, cfg.stride, cfg.padding, cfg.dilation)):
        extent = shapes.dilated_extent(f, d)
        assert extent == d * (f - 1) + 1
        assert y.shape[2 + axis] == shapes.conv_output_size(size, f, s, p, d)
        assert y.shape[2 + axis] == shapes.conv_output_size(size, extent, s, p, 1)


@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds)
def test_transposed_conv_size_recovers_the_input_size(backend_name, cfg, dtype, seed):
    """The gradient ``dx`` (a transposed convolution of ``dy``) has the input's shape, and so does the formula.

    Deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN TRANSPUESTA (1)":
    ``(H_out - 1)S - 2P + D(F - 1) + 1 + output_padding = H`` with
    ``output_padding = (H + 2P - D(F - 1) - 1) mod S < S``, the rows the
    stride skipped. Every ``output_padding < S`` gives an input size that the
    convolution maps back to the same ``H_out``.
    """
    x, w, _, dy = conv_inputs(cfg, dtype, seed)
    dx, dw, db = run(backend_name, F.conv2d_grad, x, w, dy, **cfg.kwargs)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (cfg.c_out,)
    axes = zip((cfg.h, cfg.w), cfg.out_shape[2:], cfg.kernel, cfg.stride, cfg.padding, cfg.dilation)
    for size, out, f, s, p, d in axes:
        remainder = (size + 2 * p - shapes.dilated_extent(f, d)) % s
        assert 0 <= remainder < s
        assert shapes.conv_transpose_output_size(out, f, s, p, d, output_padding=remainder) == size
        for output_padding in range(s):
            candidate = shapes.conv_transpose_output_size(out, f, s, p, d, output_padding=output_padding)
            if candidate >= 1:
                assert shapes.conv_output_size(candidate, f, s, p, d) == out


# --------------------------------------------------------------- 8 invalid inputs
@given(call=invalid_calls())
def test_invalid_arguments_are_rejected_with_the_numbers(backend_name, call):
    """Impossible configurations raise ``ValueError``/``TypeError`` whose message names the argument and the numbers.

    The output-size formula of deck 003_7c437a475fa69432.txt ("CAPA
    CONVOLUCIONAL: HIPERPARÁMETROS", "CAPA DE SUBMUESTREO O DECIMACIÓN") must
    give at least one pixel; channels must split evenly into groups (deck
    000_5f24bd8423292174.txt, "CONVOLUCIÓN EN PROFUNDIDAD"); pooling padding
    is at most half the window; arrays are 4-D float32/float64.
    """
    function = getattr(F, call.function)
    arrays = [as_backend_array(a, backend_name) for a in call.arrays]
    with pytest.raises(call.error) as raised:
        function(*arrays, backend=backend_name, **call.kwargs)
    message = str(raised.value)
    for fragment in call.fragments:
        assert fragment in message, f"{call.description}: {fragment!r} missing from {message!r}"


# --------------------------------------------------------------- 9-11 linearity
@given(
    cfg=conv_configs(),
    dtype=float_dtypes,
    seed=seeds,
    a=st.floats(-2, 2, allow_nan=False),
    b=st.floats(-2, 2, allow_nan=False),
    layout=layouts,
)
def test_conv2d_is_linear_in_the_input(backend_name, cfg, dtype, seed, a, b, layout):
    """``conv(a x1 + b x2, w) = a conv(x1, w) + b conv(x2, w)`` (no bias).

    Deck 003_7c437a475fa69432.txt, "PESOS COMPARTIDOS": every output is a sum
    of products ``I(i + m, j + n) K(m, n)``, linear in ``I``.
    """
    rng = np.random.default_rng(seed)
    x1, x2 = random_array(rng, cfg.x_shape, dtype), random_array(rng, cfg.x_shape, dtype)
    w = random_array(rng, cfg.w_shape, dtype)
    a, b = dtype(a), dtype(b)
    mixed = run(backend_name, F.conv2d, a * x1 + b * x2, w, layout=layout, **cfg.kwargs)
    y1 = run(backend_name, F.conv2d, x1, w, layout=layout, **cfg.kwargs)
    y2 = run(backend_name, F.conv2d, x2, w, layout=layout, **cfg.kwargs)
    assert_close(mixed, a * y1 + b * y2, dtype)


@given(
    cfg=conv_configs(),
    dtype=float_dtypes,
    seed=seeds,
    a=st.floats(-2, 2, allow_nan=False),
    b=st.floats(-2, 2, allow_nan=False),
    layout=layouts,
)
def test_conv2d_is_linear_in_the_weights(backend_name, cfg, dtype, seed, a, b, layout):
    """``conv(x, a w1 + b w2) = a conv(x, w1) + b conv(x, w2)``.

    Deck 003_7c437a475fa69432.txt, "PESOS COMPARTIDOS": the sum
    ``sum I(i + m, j + n) K(m, n)`` is linear in ``K`` too.
    """
    rng = np.random.default_rng(seed)
    x = random_array(rng, cfg.x_shape, dtype)
    w1, w2 = random_array(rng, cfg.w_shape, dtype), random_array(rng, cfg.w_shape, dtype)
    a, b = dtype(a), dtype(b)
    mixed = run(backend_name, F.conv2d, x, a * w1 + b * w2, layout=layout, **cfg.kwargs)
    y1 = run(backend_name, F.conv2d, x, w1, layout=layout, **cfg.kwargs)
    y2 = run(backend_name, F.conv2d, x, w2, layout=layout, **cfg.kwargs)
    assert_close(mixed, a * y1 + b * y2, dtype)


@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_conv2d_grad_is_the_adjoint(backend_name, cfg, dtype, seed, layout):
    """``<conv(x, w), y> = <x, dx> = <w, dw>`` and ``<b, db> = <conv(x, w, b) - conv(x, w), y>`` for ``dy = y``.

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation":
    ``delta^(l) = upsample((W^(l))^T delta^(l+1))`` propagates the error with
    the transpose of the layer's linear map, and ``dW = a * rot90(delta, 2)``
    is the transpose of the map ``W -> conv(a, W)``.
    """
    x, w, b, y = conv_inputs(cfg, dtype, seed)
    forward = run(backend_name, F.conv2d, x, w, layout=layout, **cfg.kwargs)
    with_bias = run(backend_name, F.conv2d, x, w, b, layout=layout, **cfg.kwargs)
    dx, dw, db = run(backend_name, F.conv2d_grad, x, w, y, layout=layout, **cfg.kwargs)
    pairing = np.vdot(forward.astype(np.float64), y)
    rtol = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}[np.dtype(dtype)]
    # The error of a sum of products grows with the sum of the absolute products.
    tolerance = rtol * (np.vdot(np.abs(forward), np.abs(y)) + 1.0)
    assert abs(np.vdot(x.astype(np.float64), dx) - pairing) <= tolerance
    assert abs(np.vdot(w.astype(np.float64), dw) - pairing) <= tolerance
    bias_pairing = np.vdot((with_bias - forward).astype(np.float64), y)
    assert abs(np.vdot(b.astype(np.float64), db) - bias_pairing) <= rtol * (np.abs(y).sum() + 1.0)


# ---------------------------------------------------------- 12 finite differences
def directional_check(loss, point, gradient, rng, step, coordinates=3):
    """Central differences of ``loss`` at ``point`` equal ``<gradient, v>``, for a random ``v`` and a few axes."""
    directions = [rng.uniform(-1.0, 1.0, size=point.shape)]
    for flat in rng.choice(point.size, size=min(coordinates, point.size), replace=False):
        unit = np.zeros(point.size)
        unit[flat] = 1.0
        directions.append(unit.reshape(point.shape))
    for v in directions:
        numeric = (loss(point + step * v) - loss(point - step * v)) / (2 * step)
        analytic = np.vdot(gradient, v)
        assert abs(numeric - analytic) <= 1e-6 * (1.0 + abs(analytic)), (numeric, analytic)


@given(cfg=conv_configs(max_hw=8), seed=seeds)
def test_conv2d_grad_matches_finite_differences(backend_name, cfg, seed):
    """``dx``, ``dw`` and ``db`` of ``L = sum(conv(x, w, b) * r)`` equal central finite differences (float64).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (the
    gradient formulas for ``W_k`` and ``b_k``); deck 003_7c437a475fa69432.txt,
    "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES Y DE SUBMUESTREO".
    """
    x, w, b, r = conv_inputs(cfg, np.float64, seed)
    rng = np.random.default_rng([seed, 1])  # directions independent of the inputs
    dx, dw, db = run(backend_name, F.conv2d_grad, x, w, r, **cfg.kwargs)

    def loss(xv, wv, bv):
        return float(np.vdot(run(backend_name, F.conv2d, xv, wv, bv, **cfg.kwargs), r))

    directional_check(lambda xv: loss(xv, w, b), x, dx, rng, step=1e-4)
    directional_check(lambda wv: loss(x, wv, b), w, dw, rng, step=1e-4)
    directional_check(lambda bv: loss(x, w, bv), b, db, rng, step=1e-4)


@given(cfg=pool_configs(max_hw=8), seed=seeds)
def test_pool_grads_match_finite_differences(backend_name, cfg, seed):
    """Average- and max-pooling gradients equal central finite differences (float64, max without ties).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (the error
    is spread over the pooling patch); deck 003_7c437a475fa69432.txt,
    "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES Y DE SUBMUESTREO" (only the
    winner is updated). The inputs are distinct and at least ``2/size``
    apart, so a step of 1e-7 never changes which pixel wins.
    """
    rng = np.random.default_rng(seed)
    x = distinct_array(rng, cfg.x_shape, np.float64)
    r = random_array(rng, cfg.out_shape, np.float64)
    for pool, grad, step in ((F.avg_pool2d, F.avg_pool2d_grad, 1e-4), (F.max_pool2d, F.max_pool2d_grad, 1e-7)):
        dx = run(backend_name, grad, x, r, cfg.kernel_size, **cfg.kwargs)

        def loss(xv, pool=pool):
            return float(np.vdot(run(backend_name, pool, xv, cfg.kernel_size, **cfg.kwargs), r))

        directional_check(loss, x, dx, rng, step=step)


# ------------------------------------------------------ 13, 14 pooling gradients
def scan_windows(x, kernel, stride, padding, out_hw):
    """Visit every pooling window of ``x`` (padding excluded), the slow and obvious way.

    Returns ``(mask, first)``: ``mask`` is True where a pixel equals the maximum
    of some window that contains it; ``first`` holds, per output, the flat
    index ``h*W + w`` of the first maximum of its window in row-major order.
    """
    n, c, h, w = x.shape
    mask = np.zeros(x.shape, dtype=bool)
    first = np.zeros((n, c) + tuple(out_hw), dtype=np.int64)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            top, left = i * stride[0] - padding[0], j * stride[1] - padding[1]
            rows = slice(max(top, 0), min(top + kernel[0], h))
            cols = slice(max(left, 0), min(left + kernel[1], w))
            window = x[:, :, rows, cols]
            mask[:, :, rows, cols] |= window == window.max(axis=(2, 3), keepdims=True)
            r, q = np.divmod(window.reshape(n, c, -1).argmax(axis=2), cols.stop - cols.start)
            first[:, :, i, j] = (rows.start + r) * w + cols.start + q
    return mask, first


@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds, ties=st.booleans(), layout=layouts)
def test_max_pool_gradient_goes_only_to_window_maxima(backend_name, cfg, dtype, seed, ties, layout):
    """Max-pooling's ``dx`` is zero off the window maxima, and each plane's ``sum(dx) == sum(dy)``.

    Deck 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN CAPAS
    CONVOLUCIONALES Y DE SUBMUESTREO": "En la decimación se actualiza sólo la
    neurona ganadora (max-pooling)". The returned indices point, inside each
    window, at the first pixel in row-major order holding the window's
    maximum (DESIGN.md: ties go to the first maximum, as in PyTorch), and
    passing them back gives the same gradient. Inputs with many ties are
    drawn too.
    """
    rng = np.random.default_rng(seed)
    x = (tied_array if ties else random_array)(rng, cfg.x_shape, dtype)
    dy = random_array(rng, cfg.out_shape, dtype)
    (kh, kw), (sh, sw), (ph, pw) = cfg.kernel, cfg.effective_stride, cfg.padding
    y, indices = run(backend_name, F.max_pool2d_with_indices, x, cfg.kernel_size, layout=layout, **cfg.kwargs)
    dx = run(backend_name, F.max_pool2d_grad, x, dy, cfg.kernel_size, layout=layout, **cfg.kwargs)

    assert indices.dtype == np.int64
    n, c, oh, ow = y.shape
    winners = np.take_along_axis(x.reshape(n, c, -1), indices.reshape(n, c, -1), axis=2)
    np.testing.assert_array_equal(winners.reshape(y.shape), y)
    rows, cols = np.divmod(indices, cfg.w)
    top = (np.arange(oh) * sh - ph)[:, None]
    left = (np.arange(ow) * sw - pw)[None, :]
    assert np.all((rows >= top) & (rows < top + kh) & (cols >= left) & (cols < left + kw))
    maxima, first = scan_windows(x, cfg.kernel, cfg.effective_stride, cfg.padding, (oh, ow))
    np.testing.assert_array_equal(indices, first)

    off_maxima = ~maxima
    assert np.all(dx[off_maxima] == 0)
    assert_close(dx.sum(axis=(2, 3)), dy.sum(axis=(2, 3)), dtype)
    indices_on_device = as_backend_array(indices, backend_name)
    via_indices = run(
        backend_name, F.max_pool2d_grad, x, dy, cfg.kernel_size, indices=indices_on_device, layout=layout, **cfg.kwargs
    )
    assert_close(via_indices, dx, dtype)


@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds, ties=st.booleans(), layout=layouts)
def test_relu_commutes_with_max_pooling(backend_name, cfg, dtype, seed, ties, layout):
    """``maxpool(relu(x)) = relu(maxpool(x))``, and the gradients of the two orders are equal.

    ReLU (deck 004_d4430ea77d2b90c2.txt, "Función de activación") never
    decreases, so the largest of the rectified values is the rectified largest
    value; the gradient reaches the window's winner when that value is
    positive and nothing otherwise, in either order. ``Sequential`` relies on
    it to run a ReLU after the pooling that follows it, on the smaller map, so
    both must hold bit for bit, ties and all-negative windows included.
    """
    rng = np.random.default_rng(seed)
    x = (tied_array if ties else random_array)(rng, cfg.x_shape, dtype)
    if ties:
        x = x - np.asarray(1, dtype)  # levels -1, 0, 1: zeros, and windows with no positive value
    dy = random_array(rng, cfg.out_shape, dtype)
    relu_x = np.maximum(x, 0)
    relu_then_pool = run(backend_name, F.max_pool2d, relu_x, cfg.kernel_size, layout=layout, **cfg.kwargs)
    pooled = run(backend_name, F.max_pool2d, x, cfg.kernel_size, layout=layout, **cfg.kwargs)
    np.testing.assert_array_equal(relu_then_pool, np.maximum(pooled, 0))

    # written order: the pool's gradient at relu(x), then the ReLU's mask (relu(x) > 0)
    dx_written = run(backend_name, F.max_pool2d_grad, relu_x, dy, cfg.kernel_size, layout=layout, **cfg.kwargs)
    dx_written = dx_written * (relu_x > 0)
    # swapped order: the ReLU's mask on the pooled map, then the pool's gradient at x
    dy_masked = dy * (np.maximum(pooled, 0) > 0)
    dx_swapped = run(backend_name, F.max_pool2d_grad, x, dy_masked, cfg.kernel_size, layout=layout, **cfg.kwargs)
    np.testing.assert_array_equal(dx_written, dx_swapped)


@given(cfg=pool_configs(strides=None, padded=False, spatial_multiple_of_stride=True), dtype=float_dtypes, seed=seeds,
       layout=layouts)
def test_avg_pool_gradient_is_kron_upsampling(backend_name, cfg, dtype, seed, layout):
    """For non-overlapping windows, ``avg_pool2d_grad = kron(dy, ones(F_H, F_W)) / (F_H F_W)``.

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (tips for
    the upsampling): ``deltaPool = (1/(poolDim*poolDim)) * np.kron(delta, ones(poolDim))``.
    """
    rng = np.random.default_rng(seed)
    x = random_array(rng, cfg.x_shape, dtype)
    dy = random_array(rng, cfg.out_shape, dtype)
    kh, kw = cfg.kernel
    dx = run(backend_name, F.avg_pool2d_grad, x, dy, cfg.kernel_size, layout=layout, **cfg.kwargs)
    assert_close(dx, np.kron(dy, np.ones((1, 1, kh, kw), dtype=dtype)) / (kh * kw), dtype)


# ------------------------------------------------------- 15, 16 true convolution
@given(
    hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    dtype=float_dtypes,
    seed=seeds,
)
def test_full_true_convolution_is_commutative(backend_name, hw, k, dtype, seed):
    """In "full" mode (padding F - 1) the true convolution commutes: ``I * K == K * I``.

    Deck 003_7c437a475fa69432.txt, "PESOS COMPARTIDOS":
    ``S[i, j] = (I * K)[i, j] = sum I[m, n] K[i - m, j - n] = (K * I)[i, j]``;
    the kernel is flipped as in deck 002_35ce60e4ae78ad9e.txt, "Tips de
    implementación" (``W = rot90(W, 2)``). Both also equal
    ``scipy.signal.convolve2d(I, K, mode="full")``.
    """
    rng = np.random.default_rng(seed)
    image = random_array(rng, (1, 1) + hw, dtype)
    kernel = random_array(rng, (1, 1) + k, dtype)
    i_k = run(backend_name, F.true_conv2d, image, kernel, padding=(k[0] - 1, k[1] - 1))
    k_i = run(backend_name, F.true_conv2d, kernel, image, padding=(hw[0] - 1, hw[1] - 1))
    assert i_k.shape == (1, 1, hw[0] + k[0] - 1, hw[1] + k[1] - 1)
    assert_close(i_k, k_i, dtype)
    assert_close(i_k[0, 0], scipy.signal.convolve2d(image[0, 0], kernel[0, 0], mode="full"), dtype)


@given(
    hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    k1=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    k2=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    dtype=float_dtypes,
    seed=seeds,
)
def test_full_true_convolution_is_associative(backend_name, hw, k1, k2, dtype, seed):
    """In "full" mode ``(I * K1) * K2 == I * (K1 * K2)``: two filters in a row are one bigger filter.

    Deck 003_7c437a475fa69432.txt, "PESOS COMPARTIDOS" (true convolution);
    deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN ESPACIAL SEPARABLE" relies on
    it to split a kernel into two passes.
    """
    rng = np.random.default_rng(seed)
    image = random_array(rng, (1, 1) + hw, dtype)
    first, second = random_array(rng, (1, 1) + k1, dtype), random_array(rng, (1, 1) + k2, dtype)

    def full(a, b):
        return run(backend_name, F.true_conv2d, a, b, padding=(b.shape[2] - 1, b.shape[3] - 1))

    left = full(full(image, first), second)
    right = full(image, full(first, second))
    assert left.shape == (1, 1, hw[0] + k1[0] + k2[0] - 2, hw[1] + k1[1] + k2[1] - 2)
    assert_close(left, right, dtype)


@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_dilated_conv_equals_conv_with_zero_inserted_kernel(backend_name, cfg, dtype, seed, layout):
    """Dilation D equals an undilated kernel with ``D - 1`` zeros inserted between neighbouring taps.

    Deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN DILATADA"; deck
    004_d4430ea77d2b90c2.txt, "Convoluciones dilatadas" ("un espacio entre los
    valores en un kernel").
    """
    x, w, b, _ = conv_inputs(cfg, dtype, seed)
    (kh, kw), (dh, dw) = cfg.kernel, cfg.dilation
    spread = np.zeros(w.shape[:2] + (shapes.dilated_extent(kh, dh), shapes.dilated_extent(kw, dw)), dtype=dtype)
    spread[:, :, ::dh, ::dw] = w
    dilated = run(backend_name, F.conv2d, x, w, b, layout=layout, **cfg.kwargs)
    undilated = run(backend_name, F.conv2d, x, spread, b, layout=layout, stride=cfg.stride, padding=cfg.padding,
                    dilation=1, groups=cfg.groups)
    assert_close(dilated, undilated, dtype)


# ----------------------------------------------------- 17 global average pooling
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 12), st.integers(1, 12)),
    dtype=float_dtypes,
    seed=seeds,
    layout=layouts,
)
def test_global_average_pooling_is_the_mean_of_each_map(backend_name, shape, dtype, seed, layout):
    """Average pooling with the window ``(H, W)`` gives ``x.mean((2, 3))``; its gradient spreads ``dy/(H W)``.

    Deck 003_7c437a475fa69432.txt, "SUBMUESTRO GLOBAL PROMEDIO": "tomando
    únicamente el promedio de cada mapa".
    """
    rng = np.random.default_rng(seed)
    x = random_array(rng, shape, dtype)
    dy = random_array(rng, shape[:2] + (1, 1), dtype)
    h, w = shape[2:]
    y = run(backend_name, F.avg_pool2d, x, (h, w), layout=layout)
    assert_close(y, x.mean(axis=(2, 3), keepdims=True), dtype)
    dx = run(backend_name, F.avg_pool2d_grad, x, dy, (h, w), layout=layout)
    assert_close(dx, np.broadcast_to(dy / (h * w), shape), dtype)


@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_avg_pool_is_a_depthwise_conv_with_a_box_kernel(backend_name, cfg, dtype, seed, layout):
    """Average pooling equals a per-channel convolution with ``ones(F_H, F_W)/(F_H F_W)`` (padded zeros counted).

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : POOL:S2": "El
    pooling promedio puede resolverse eficientemente con la función convolve".
    """
    x = random_array(np.random.default_rng(seed), cfg.x_shape, dtype)
    kh, kw = cfg.kernel
    box = np.full((cfg.c, 1, kh, kw), 1.0 / (kh * kw), dtype=dtype)
    pooled = run(backend_name, F.avg_pool2d, x, cfg.kernel_size, layout=layout, **cfg.kwargs)
    convolved = run(
        backend_name, F.conv2d, x, box, layout=layout, stride=cfg.effective_stride, padding=cfg.padding, groups=cfg.c
    )
    assert_close(pooled, convolved, dtype)


# ------------------------------------------------------------ 20 1x1 convolution
@given(cfg=conv_configs(kernels=1, dilations=1), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_1x1_conv_is_a_per_pixel_matrix_product(backend_name, cfg, dtype, seed, layout):
    """A 1x1 convolution is ``einsum('oc,nchw->nohw', W, x) + b`` on the (padded, strided) pixel grid.

    Deck 003_7c437a475fa69432.txt, "CONVOLUCIÓN DE 1×1" ("decimación en
    profundidad"); deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN PUNTUAL (DE 1 × 1)".
    With groups, the channel-mixing matrix is block diagonal.
    """
    x, w, b, _ = conv_inputs(cfg, dtype, seed)
    (ph, pw), (sh, sw) = cfg.padding, cfg.stride
    grid = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))[:, :, ::sh, ::sw]
    mixing = block_diagonal(w[:, :, 0, 0], cfg.groups)
    expected = np.einsum("oc,nchw->nohw", mixing, grid) + b[None, :, None, None]
    y = run(backend_name, F.conv2d, x, w, b, layout=layout, **cfg.kwargs)
    assert_close(y, expected, dtype)


# --------------------------------------------- 18, 19 agreement and output dtype
@given(cfg=conv_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_conv2d_agrees_with_the_numpy_reference(backend_name, cfg, dtype, seed, layout):
    """Forward and all three gradients equal the "numpy" reference on contiguous input (rtol 2e-3 f32, 1e-8 f64).

    The reference backend writes the formula of deck 003_7c437a475fa69432.txt,
    "PESOS COMPARTIDOS", and the gradients of deck 002_35ce60e4ae78ad9e.txt,
    "Aprendizaje: Backpropagation"; the backend under test gets ``layout``
    views of the same values.
    """
    x, w, b, dy = conv_inputs(cfg, dtype, seed)
    expected = [
        F.conv2d(x, w, b, backend="numpy", **cfg.kwargs),
        *F.conv2d_grad(x, w, dy, backend="numpy", **cfg.kwargs),
    ]
    actual = [
        run(backend_name, F.conv2d, x, w, b, layout=layout, **cfg.kwargs),
        *run(backend_name, F.conv2d_grad, x, w, dy, layout=layout, **cfg.kwargs),
    ]
    for got, want in zip(actual, expected):
        assert_close(got, want, dtype, rtol=AGREEMENT_RTOL)


@given(cfg=pool_configs(), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_pooling_agrees_with_the_numpy_reference(backend_name, cfg, dtype, seed, layout):
    """Max pooling (values, indices, gradient) and average pooling (values, gradient) equal the reference.

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN". The
    maximum and its first-in-row-major-order position involve no rounding, so
    they match exactly.
    """
    rng = np.random.default_rng(seed)
    x = random_array(rng, cfg.x_shape, dtype)
    dy = random_array(rng, cfg.out_shape, dtype)
    k = cfg.kernel_size
    y, indices = run(backend_name, F.max_pool2d_with_indices, x, k, layout=layout, **cfg.kwargs)
    y_ref, indices_ref = F.max_pool2d_with_indices(x, k, backend="numpy", **cfg.kwargs)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(indices, indices_ref)
    for function, args in ((F.max_pool2d_grad, (x, dy)), (F.avg_pool2d, (x,)), (F.avg_pool2d_grad, (x, dy))):
        got = run(backend_name, function, *args, k, layout=layout, **cfg.kwargs)
        want = function(*args, k, backend="numpy", **cfg.kwargs)
        assert_close(got, want, dtype, rtol=AGREEMENT_RTOL)


@given(cfg=conv_configs(max_hw=8), pool=pool_configs(max_hw=8), dtype=float_dtypes, seed=seeds, layout=layouts)
def test_outputs_keep_the_input_dtype_and_array_type(backend_name, cfg, pool, dtype, seed, layout):
    """float32 in gives float32 out and float64 gives float64, on the input's device, for every function.

    DESIGN.md: "Layout NCHW, float32 by default, float64 accepted"; a backend
    never silently promotes or moves the data. Max-pooling indices are int64.
    """
    x, w, b, dy = conv_inputs(cfg, dtype, seed)
    array_type = type(as_backend_array(x, backend_name))

    def call(function, *args, **kwargs):
        moved = [as_backend_array(a, backend_name, layout) for a in args]
        out = function(*moved, backend=backend_name, **kwargs)
        return out if isinstance(out, tuple) else (out,)

    outputs = [
        *call(F.conv2d, x, w, b, **cfg.kwargs),
        *call(F.conv2d, x, w, **cfg.kwargs),
        *call(F.true_conv2d, x, w, **cfg.kwargs),
        *call(F.conv2d_grad, x, w, dy, **cfg.kwargs),
    ]
    px = random_array(np.random.default_rng(seed), pool.x_shape, dtype)
    pdy = random_array(np.random.default_rng(seed + 1), pool.out_shape, dtype)
    y, indices = call(F.max_pool2d_with_indices, px, pool.kernel_size, **pool.kwargs)
    outputs += [
        y,
        *call(F.max_pool2d, px, pool.kernel_size, **pool.kwargs),
        *call(F.max_pool2d_grad, px, pdy, pool.kernel_size, **pool.kwargs),
        *call(F.avg_pool2d, px, pool.kernel_size, **pool.kwargs),
        *call(F.avg_pool2d_grad, px, pdy, pool.kernel_size, **pool.kwargs),
    ]
    for out in outputs:
        assert type(out) is array_type
        assert out.dtype == np.dtype(dtype)
    assert type(indices) is array_type and indices.dtype == np.int64
    grads = call(F.conv2d_grad, x, w, dy, **cfg.kwargs)
    assert [g.shape for g in grads] == [x.shape, w.shape, (cfg.c_out,)]


# ------------------------------------------------------- every kernel path, forced
def forced(path, op):
    """The ``plan`` argument that makes the cython backend run ``path`` for ``op`` (the reference for the rest)."""
    return path if op == "forward" else {"input_grad": "reference", "weight_grad": "reference", op: path}


def _taken(cfg, path, op, dtype):
    geometry = shapes.conv2d_geometry(cfg.x_shape, cfg.w_shape, cfg.stride, cfg.padding, cfg.dilation, cfg.groups)
    reason = cython_paths()[path].takes(op, geometry, dtype)
    assert reason == "", f"the strategy drew a layer {path} does not take for {op}: {geometry.describe()}: {reason}"


FORWARD_PATHS = [path for path, op in path_ops() if op == "forward"]
GRADIENT_PATHS = [(path, op) for path, op in path_ops() if op != "forward"]


@pytest.mark.parametrize("path", FORWARD_PATHS)
@given(data=st.data(), dtype=float_dtypes, seed=seeds, a=st.floats(-2, 2), b=st.floats(-2, 2))
def test_every_forward_path_is_linear_and_has_the_output_size_of_the_formula(path, data, dtype, seed, a, b):
    """On each kernel path: ``conv(a x1 + b x2) = a conv(x1) + b conv(x2)``, the same in the weights, and
    ``H_out = (H + 2P - F_H)/S + 1``, ``W_out = (W + 2P - F_W)/S + 1``.

    Deck 003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS" (the
    formulas, each axis on its own) and "PESOS COMPARTIDOS" (the convolution
    is a sum of products: linear in the image and in the filter).
    """
    cfg = data.draw(path_conv_configs(path, "forward", dtype))
    _taken(cfg, path, "forward", dtype)
    x1, w1, _, _ = conv_inputs(cfg, dtype, seed)
    x2, w2, _, _ = conv_inputs(cfg, dtype, seed + 1)

    def conv(x, w):
        return F.conv2d(x, w, plan=path, backend="cython", **cfg.kwargs)

    y = conv(x1, w1)
    n, _, h, w = cfg.x_shape
    expected = [shapes.conv_output_size(size, k, s, p, d) for size, k, s, p, d in
                zip((h, w), cfg.kernel, cfg.stride, cfg.padding, cfg.dilation)]
    assert y.shape == (n, cfg.c_out, *expected)
    assert_close(conv(a * x1 + b * x2, w1), a * y + b * conv(x2, w1), dtype)
    assert_close(conv(x1, a * w1 + b * w2), a * y + b * conv(x1, w2), dtype)


@pytest.mark.parametrize("path, op", GRADIENT_PATHS, ids=[f"{p}-{o}" for p, o in GRADIENT_PATHS])
@given(data=st.data(), dtype=float_dtypes, seed=seeds)
def test_every_gradient_path_is_the_adjoint(path, op, data, dtype, seed):
    """On each kernel path: ``<conv(x, w), y> = <x, dx>`` (input gradient) and ``= <w, dw>`` (weight gradient).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation": the error
    goes back through the transpose of the layer's linear map, and the
    filter's gradient is the transpose of ``W -> conv(a, W)``.
    """
    cfg = data.draw(path_conv_configs(path, op, dtype))
    _taken(cfg, path, op, dtype)
    x, w, _, y = conv_inputs(cfg, dtype, seed)
    forward = F.conv2d(x, w, backend="numpy", **cfg.kwargs)
    dx, dw, _ = F.conv2d_grad(x, w, y, plan=forced(path, op), backend="cython", **cfg.kwargs)
    pairing = np.vdot(forward.astype(np.float64), y)
    rtol = {np.dtype(np.float32): 1e-3, np.dtype(np.float64): 1e-9}[np.dtype(dtype)]
    tolerance = rtol * (np.vdot(np.abs(forward), np.abs(y)) + 1.0)
    got = np.vdot(x.astype(np.float64), dx) if op == "input_grad" else np.vdot(w.astype(np.float64), dw)
    assert abs(got - pairing) <= tolerance, (path, op, got, pairing)
