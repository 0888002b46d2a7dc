"""Kernel plans: every path of the cython backend, forced by name, against the reference; and the autotuner.

For each path and each operation it implements (forward, input_grad,
weight_grad) a strategy draws layers that the path's ``takes`` accepts (the
test asserts it does), big enough to reach the vector kernels: C_out a
multiple of 16 for the direct kernel, whole groups of images for the
batch-in-lanes kernel, rows of a vector or more for the row kernels. The
path is forced with ``plan=...`` and compared with the NumPy reference in
float64 (tight) and float32.

The lane counts come from the build that runs (``row_lanes()``,
``lanes_group()``, ...), so the same tests reach the AVX-512, AVX2 and
baseline copies when .ci/instruction_sets.sh builds one at a time.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from minicnn.backends.plans import OPS, Autotuner, ConvPlan, PlanCache, plan_cache_path

TOL = {np.float32: dict(rtol=2e-3, atol=2e-3), np.float64: dict(rtol=1e-9, atol=1e-9)}
DTYPES = st.sampled_from([np.float32, np.float64])


@pytest.fixture(scope="module")
def cython():
    if "cython" not in mc.available_backends():
        pytest.fail("the cython backend is not built")
    return mc.get_backend("cython")


def _backend():
    return mc.get_backend("cython")


# ----------------------------------------------------------------- strategies
@st.composite
def dense_layers(draw):
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    return ((draw(st.integers(1, 40)), draw(st.integers(1, 8)), h, w), (draw(st.integers(1, 40)), None, h, w),
            dict(stride=draw(st.integers(1, 3))))


@st.composite
def direct_forward_layers(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if kh * kw < 2:
        kw = 2
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh + 1 - 2 * ph), kh + 8))  # 2+ output rows
    w = draw(st.integers(max(1, kw + 7 - 2 * pw), kw + 19))  # 8+ output columns
    return ((draw(st.integers(1, 4)), draw(st.integers(1, 6)), h, w),
            (draw(st.sampled_from([16, 32])), None, kh, kw), dict(padding=(ph, pw)))


@st.composite
def direct_input_grad_layers(draw):
    kh, kw = draw(st.integers(2, 5)), draw(st.integers(1, 5))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(4, kh - 2 * ph), 12))
    w = draw(st.integers(max(4, kw - 2 * pw), 16))
    return ((draw(st.integers(1, 3)), draw(st.sampled_from([16, 32])), h, w), (draw(st.integers(1, 6)), None, kh, kw),
            dict(padding=(ph, pw)))


@st.composite
def direct_weight_grad_layers(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    oh, ow = draw(st.integers(2, 12)), draw(st.integers(8, 24))
    return ((draw(st.integers(1, 4)), draw(st.integers(1, 5)), oh + kh - 1, ow + kw - 1),
            (draw(st.sampled_from([16, 32])), None, kh, kw), {})


@st.composite
def rows_forward_layers(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    oh, ow = draw(st.integers(1, 9)), draw(st.integers(6, 40))
    return ((draw(st.integers(1, 4)), draw(st.integers(1, 5)), oh + kh - 1, ow + kw - 1),
            (draw(st.integers(1, 12)), None, kh, kw), {})


def _row_input_widths():
    lanes = _backend().paths["rows"].conv.row_lanes()
    return [w for w in range(14, 4 * lanes + 1) if w >= 7 / 8 * (-(-w // lanes) * lanes)]


@st.composite
def rows_input_grad_layers(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    w = draw(st.sampled_from(_row_input_widths()))
    assume_w = max(w, kw)
    return ((draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(kh, kh + 8)), assume_w),
            (draw(st.integers(1, 16)), None, kh, kw), {})


@st.composite
def rows_weight_grad_layers(draw, dtype):
    lanes = _backend().paths["rows"].conv.rows_weight_grad_lanes(dtype == np.float64)
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    oh, ow = draw(st.integers(1, 8)), draw(st.integers(lanes, 2 * lanes + 7))
    return ((draw(st.integers(1, 9)), draw(st.integers(1, 4)), oh + kh - 1, ow + kw - 1),
            (draw(st.integers(1, 32)), None, kh, kw), {})


@st.composite
def lanes_layers(draw, dtype):
    group = _backend().paths["lanes"].conv.lanes_group(dtype == np.float64)
    groups = draw(st.integers(1, 2))
    n = draw(st.integers(max(group, -(-3 * groups * group // 4)), groups * group))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if kh * kw < 2:
        kh = 2
    oh, ow = draw(st.integers(1, 8)), draw(st.integers(1, 10))
    return ((n, draw(st.integers(2, 7)), oh + kh - 1, ow + kw - 1), (draw(st.integers(1, 9)), None, kh, kw), {})


@st.composite
def batched_layers(draw):
    stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 2]))
    k = draw(st.integers(1, 3))
    out = draw(st.integers(1, 8))
    size = (out - 1) * stride + dilation * (k - 1) + 1
    return ((draw(st.integers(1, 6)), groups * draw(st.integers(1, 3)), size, size),
            (groups * draw(st.integers(1, 4)), None, k, k), dict(stride=stride, dilation=dilation, groups=groups))


@st.composite
def winograd_layers(draw):
    """3x3 stride-1 layers, padding 0-2 (odd and even output sizes: the last tiles cropped)."""
    p = draw(st.integers(0, 2))
    h, w = draw(st.integers(max(3 - 2 * p, 3), 17)), draw(st.integers(max(3 - 2 * p, 3), 17))
    return ((draw(st.integers(1, 4)), draw(st.integers(1, 20)), h, w), (draw(st.integers(1, 20)), None, 3, 3),
            dict(padding=p))


@st.composite
def phase_layers(draw):
    """4x4 filters, stride 2, padding 1 (a transposed convolution k4 s2 p1's layer), odd sizes and 2x2 included."""
    h, w = draw(st.integers(2, 18)), draw(st.integers(2, 18))
    return ((draw(st.integers(1, 3)), draw(st.integers(1, 12)), h, w), (draw(st.integers(1, 12)), None, 4, 4),
            dict(stride=2, padding=1))


@st.composite
def any_layers(draw):
    stride, padding, dilation = draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(1, 2))
    groups = draw(st.sampled_from([1, 1, 2]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h = draw(st.integers(max(1, dilation * (kh - 1) + 1 - 2 * padding), 14))
    w = draw(st.integers(max(1, dilation * (kw - 1) + 1 - 2 * padding), 14))
    return ((draw(st.integers(1, 4)), groups * draw(st.integers(1, 3)), h, w), (groups * draw(st.integers(1, 4)), None, kh, kw),
            dict(stride=stride, padding=padding, dilation=dilation, groups=groups))


def _each(strategy, ops=OPS):
    """The same strategy (taking no dtype) for each operation in ``ops``."""
    return {op: (lambda dt, make=strategy: make()) for op in ops}


# (path, operation) -> a strategy of (x_shape, w_shape with None for C_in/groups, kwargs), per dtype
CASES = {
    **{("dense", op): s for op, s in _each(dense_layers).items()},
    ("direct", "forward"): lambda dt: direct_forward_layers(),
    ("direct", "input_grad"): lambda dt: direct_input_grad_layers(),
    ("direct", "weight_grad"): lambda dt: direct_weight_grad_layers(),
    ("winograd", "forward"): lambda dt: winograd_layers(),
    ("winograd", "input_grad"): lambda dt: winograd_layers(),
    ("winograd", "weight_grad"): lambda dt: winograd_layers(),
    ("winograd4", "forward"): lambda dt: winograd_layers(),
    ("winograd4", "input_grad"): lambda dt: winograd_layers(),
    ("winograd4", "weight_grad"): lambda dt: winograd_layers(),
    **{(name, op): (lambda dt: winograd_layers()) for name in ("winograd_wide", "winograd4_wide")
       for op in ("forward", "input_grad")},
    **{("winograd_phases", op): (lambda dt: phase_layers()) for op in OPS},
    ("rows", "forward"): lambda dt: rows_forward_layers(),
    ("rows", "input_grad"): lambda dt: rows_input_grad_layers(),
    ("rows", "weight_grad"): rows_weight_grad_layers,
    ("lanes", "input_grad"): lanes_layers,
    ("lanes", "weight_grad"): lanes_layers,
    **{("batched", op): s for op, s in _each(batched_layers).items()},
    **{("im2col", op): s for op, s in _each(any_layers).items()},
    **{("reference", op): s for op, s in _each(any_layers).items()},
}


def _arrays(case, dtype, seed):
    x_shape, (o, _, kh, kw), kwargs = case
    w_shape = (o, x_shape[1] // kwargs.get("groups", 1), kh, kw)
    geometry = shapes.conv2d_geometry(x_shape, w_shape, **kwargs)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    dy = rng.standard_normal(geometry.y_shape).astype(dtype)
    return geometry, x, w, b, dy, kwargs


def test_every_path_of_the_table_is_covered_for_every_operation_it_has(cython):
    for name, path in cython.paths.items():
        for op in path.ops:
            assert (name, op) in CASES, f"no test strategy reaches {name}'s {op}"
    assert {name for name, _ in CASES} == set(cython.paths)


@st.composite
def plain_layers(draw, max_n=6, max_c=5, max_o=20, min_taps=1, max_k=4):
    """Any valid correlation (stride 1, no padding): narrow rows, one channel, 1x1 filters included."""
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    if kh * kw < min_taps:
        kw = 2
    return ((draw(st.integers(1, max_n)), draw(st.integers(1, max_c)), kh + draw(st.integers(0, 9)), kw + draw(st.integers(0, 20))),
            (draw(st.integers(1, max_o)), None, kh, kw), {})


@st.composite
def deep_direct_layers(draw):
    """Direct-kernel layers beyond the static table's limits: 1x1 filters, K = C*F_H*F_W above 1,280,
    fewer than 16 output positions (the autotuner times them all)."""
    k = draw(st.sampled_from([1, 3]))
    c = draw(st.sampled_from([3, 150])) if k == 3 else draw(st.integers(1, 40))
    return ((1, c, k - 1 + draw(st.integers(1, 5)), k - 1 + draw(st.integers(4, 7))), (16, None, k, k), {})


# Layers every path takes but the static table would not send to it (its measured limits): the
# autotuner may pick them there, so they must be right too.
EDGE_CASES = {
    ("rows", "forward"): lambda dt: plain_layers(),
    ("rows", "input_grad"): lambda dt: plain_layers(),
    ("lanes", "input_grad"): lambda dt: plain_layers(max_n=40, max_o=8),
    ("lanes", "weight_grad"): lambda dt: plain_layers(max_n=40, max_o=8),
    ("direct", "forward"): lambda dt: deep_direct_layers(),
    ("batched", "forward"): lambda dt: any_layers(),
    ("batched", "weight_grad"): lambda dt: any_layers(),
}


@pytest.mark.parametrize("path, op", sorted(CASES), ids=[f"{p}-{o}" for p, o in sorted(CASES)])
@given(data=st.data(), dtype=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_forced_path_matches_the_reference(cython, path, op, data, dtype, seed):
    _check_forced_path(cython, path, op, data.draw(CASES[path, op](dtype)), dtype, seed)


@pytest.mark.parametrize("path, op", sorted(EDGE_CASES), ids=[f"{p}-{o}" for p, o in sorted(EDGE_CASES)])
@given(data=st.data(), dtype=DTYPES, seed=st.integers(0, 2**32 - 1))
def test_forced_path_matches_the_reference_beyond_the_static_limits(cython, path, op, data, dtype, seed):
    _check_forced_path(cython, path, op, data.draw(EDGE_CASES[path, op](dtype)), dtype, seed)


def _check_forced_path(cython, path, op, case, dtype, seed):
    geometry, x, w, b, dy, kwargs = _arrays(case, dtype, seed)
    reason = cython.paths[path].takes(op, geometry, dtype)
    assert reason == "", f"{path} does not take the {op} of {geometry.describe()}: {reason}"
    tol = TOL[dtype]
    if op == "forward":
        got = F.conv2d(x, w, b, plan=path, backend="cython", **kwargs)
        np.testing.assert_allclose(got, F.conv2d(x, w, b, backend="numpy", **kwargs), **tol)
        return
    want_dx, want_dw, want_db = F.conv2d_grad(x, w, dy, backend="numpy", **kwargs)
    if op == "input_grad":
        plan = {"input_grad": path, "weight_grad": "reference"}
        dx, _, _ = F.conv2d_grad(x, w, dy, plan=plan, backend="cython", **kwargs)
        np.testing.assert_allclose(dx, want_dx, **tol)
        # dX alone, by the same path
        np.testing.assert_allclose(F.conv2d_input_grad(x.shape, w, dy, plan=plan, backend="cython", **kwargs), want_dx, **tol)
        if cython.paths[path].takes("weight_grad", geometry, dtype) == "":
            # both by this path: its fused pass where it has one
            dx, dw, db = F.conv2d_grad(x, w, dy, plan=path, backend="cython", **kwargs)
            for got, want in ((dx, want_dx), (dw, want_dw), (db, want_db)):
                np.testing.assert_allclose(got, want, **tol)
        return
    dx, dw, db = F.conv2d_grad(x, w, dy, input_grad=False, plan={"weight_grad": path}, backend="cython", **kwargs)
    assert dx is None
    np.testing.assert_allclose(dw, want_dw, **tol)
    np.testing.assert_allclose(db, want_db, **tol)
    assert dw.dtype == db.dtype == np.dtype(dtype) and dw.shape == w.shape
    # (dW, db) alone, by the same path
    for got, want in zip(F.conv2d_weight_grad(x, w.shape, dy, plan={"weight_grad": path}, backend="cython", **kwargs),
                         (want_dw, want_db)):
        np.testing.assert_allclose(got, want, **tol)


# One layer per path, big enough that the work is split over two threads.
THREAD_CASES = {
    "dense": ((64, 16, 5, 5), (120, 16, 5, 5), {}),
    "direct": ((16, 6, 14, 14), (16, 6, 5, 5), {}),
    "rows": ((16, 3, 32, 32), (6, 3, 5, 5), {}),
    "winograd": ((16, 16, 15, 14), (24, 16, 3, 3), dict(padding=1)),
    "winograd4": ((16, 16, 15, 14), (24, 16, 3, 3), dict(padding=1)),
    "winograd_wide": ((2, 16, 15, 14), (96, 16, 3, 3), dict(padding=1)),
    "winograd4_wide": ((2, 16, 15, 14), (96, 16, 3, 3), dict(padding=1)),
    "winograd_phases": ((16, 8, 16, 16), (12, 8, 4, 4), dict(stride=2, padding=1)),
    "lanes": ((64, 6, 14, 14), (16, 6, 5, 5), {}),
    "batched": ((32, 16, 6, 6), (32, 16, 3, 3), {}),
    "im2col": ((16, 8, 20, 20), (16, 8, 3, 3), dict(padding=1)),
}


@pytest.mark.parametrize("path", sorted(THREAD_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_path_gives_the_same_bits_on_one_and_two_threads(cython, path, dtype):
    """Work is split in fixed blocks (images, groups of images, rows of a product), never per thread."""
    from minicnn.backends.cython_backend import CythonBackend

    x_shape, w_shape, kwargs = THREAD_CASES[path]
    geometry, x, w, b, dy, _ = _arrays((x_shape, (w_shape[0], None, *w_shape[2:]), kwargs), dtype, 7)
    one, two = CythonBackend(num_threads=1), CythonBackend(num_threads=2)
    assert two._threads(geometry.n, geometry.macs) == 2
    for op in OPS:
        if cython.paths[path].takes(op, geometry, dtype):
            continue
        plan = ConvPlan(forward=path if op == "forward" else "im2col", input_grad=path if op == "input_grad" else "im2col",
                        weight_grad=path if op == "weight_grad" else "im2col", source="forced")
        if op == "forward":
            np.testing.assert_array_equal(one.conv2d(x, w, b, geometry, plan), two.conv2d(x, w, b, geometry, plan))
        else:
            for a, c in zip(one.conv2d_grad(x, w, dy, geometry, True, plan), two.conv2d_grad(x, w, dy, geometry, True, plan)):
                np.testing.assert_array_equal(a, c)


def test_a_forced_path_that_does_not_take_the_layer_says_why(cython):
    x = np.zeros((2, 3, 8, 8), np.float32)
    w = np.zeros((6, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"path 'direct' does not take the forward .*C_out \(6\) is not a multiple of 16"):
        F.conv2d(x, w, plan="direct", backend="cython")
    with pytest.raises(ValueError, match=r"path 'lanes' .*has no forward kernel"):
        F.conv2d(x, w, plan="lanes", backend="cython")
    with pytest.raises(ValueError, match=r"unknown path 'fft'"):
        F.conv2d(x, w, plan="fft", backend="cython")
    with pytest.raises(ValueError, match=r"unknown operations \['backward'\]"):
        F.conv2d_grad(x, w, np.zeros((2, 6, 6, 6), np.float32), plan={"backward": "im2col"}, backend="cython")
    with pytest.raises(TypeError, match="plan must be"):
        F.conv2d(x, w, plan=3, backend="cython")
    with pytest.raises(ValueError, match="no kernel paths"):
        F.conv2d(x, w, plan="im2col", backend="numpy")


def test_static_plan_of_lenet5_layers(cython):
    """With nothing measured (MINICNN_AUTOTUNE=0 in the tests), LeNet-5's layers take the paths whose limits
    were set by measurements on the development machine: C1 rows, C3 direct + lanes, C5 dense."""
    plan = lambda x, w: F.conv2d_plan(x, w, backend="cython")  # noqa: E731
    c1, c3, c5 = plan((64, 1, 32, 32), (6, 1, 5, 5)), plan((64, 6, 14, 14), (16, 6, 5, 5)), plan((64, 16, 5, 5), (120, 16, 5, 5))
    assert (c1.forward, c1.weight_grad, c1.source) == ("rows", "rows", "static")
    assert (c3.forward, c3.input_grad, c3.weight_grad) == ("direct", "lanes", "lanes")
    assert (c5.forward, c5.input_grad, c5.weight_grad) == ("dense", "dense", "dense")
    # a layer no compiled path may index falls back to the reference
    huge = shapes.conv2d_geometry((1, 1, 4, 4), (1, 1, 1, 1), stride=2**31)
    assert cython.plan_conv2d(huge, np.float64).forward == "reference"


def test_conv_layer_keeps_the_plan_of_its_forward_pass_for_its_backward(cython, monkeypatch):
    layer = mc.nn.Conv2d(6, 16, 5, rng=0)
    x = np.random.default_rng(0).standard_normal((16, 6, 14, 14)).astype(np.float32)
    y = layer(x)
    calls = []
    real = cython.plan_conv2d

    def spy(geometry, dtype, plan=None):
        calls.append(plan)
        return real(geometry, dtype, plan)

    monkeypatch.setattr(cython, "plan_conv2d", spy)
    layer.backward(np.ones_like(y))
    assert calls and all(isinstance(p, ConvPlan) for p in calls), "backward must reuse the forward's plan"


def test_explain_names_the_chosen_path_and_every_reason(cython):
    text = F.explain_conv2d("64x6x14x14", "16x6x5x5")
    assert "conv2d x 64x6x14x14, w 16x6x5x5, float32" in text
    assert f"kernels for {cython.kernel_isa}" in text
    for op in OPS:
        assert f"{op}: " in text
    assert "* lanes" in text and "* direct" in text
    assert "no: the filter (5x5) is not as large as the input (14x14)" in text
    with pytest.raises(ValueError, match="w_shape must be sizes joined by 'x'"):
        F.explain_conv2d("64x6x14x14", "sixteen")
    with pytest.raises(ValueError, match="channel mismatch"):
        F.explain_conv2d("64x6x14x14", "16x5x5x5")


def test_cli_explain_prints_the_plan(capsys):
    from minicnn.cli import main

    assert main(["backends", "--explain", "64x1x32x32", "6x1x5x5"]) == 0
    out = capsys.readouterr().out
    assert "conv2d x 64x1x32x32, w 6x1x5x5" in out and "forward: " in out
    assert main(["backends", "--explain", "64x1x32x32", "6x2x5x5"]) == 2
    assert "channel mismatch" in capsys.readouterr().err


# ----------------------------------------------------------------- autotuner
class FakeClock:
    """A clock that only moves when a fake kernel runs: each candidate costs what the test says."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def kernel(self, seconds, log=None, name=None):
        def run():
            self.now += seconds
            if log is not None:
                log.append(name)
        return run


def test_autotuner_picks_the_fastest_and_gives_up_on_hopeless_candidates():
    clock = FakeClock()
    log = []
    tuner = Autotuner(repeats=3, budget_s=10.0, clock=clock)
    best, times = tuner.choose({"a": clock.kernel(3e-3, log, "a"), "b": clock.kernel(1e-3, log, "b"),
                                "c": clock.kernel(9e-3, log, "c")})
    assert best == "b" and times == pytest.approx({"a": 3e-3, "b": 1e-3, "c": 9e-3})
    assert log.count("a") == 4 and log.count("b") == 4  # one warm-up + 3 timed runs
    assert log.count("c") == 2  # warm-up + one run: more than 2x the best, not repeated
    # a tie within 2% keeps the earlier (static) candidate
    assert tuner.choose({"static": clock.kernel(1.00e-3), "other": clock.kernel(0.99e-3)})[0] == "static"
    # candidates within 15% of the best take turns again (6 more runs each); others do not
    log.clear()
    best, _ = tuner.choose({"a": clock.kernel(1.10e-3, log, "a"), "b": clock.kernel(1.00e-3, log, "b"),
                            "c": clock.kernel(1.50e-3, log, "c")})
    assert best == "b" and log.count("a") == log.count("b") == 4 + 6 and log.count("c") == 4
    assert log[-12:] == ["a", "b"] * 6, "the close candidates alternate"
    # the budget: past it, each remaining candidate gets one timed run only
    log.clear()
    Autotuner(repeats=5, budget_s=0.0, clock=clock).choose({"a": clock.kernel(1e-3, log, "a"), "b": clock.kernel(1e-3, log, "b")})
    assert log == ["a", "a", "b", "b"]


def _fake_backend(tmp_path, costs, autotune=True):
    """A real cython backend whose paths' kernels are replaced by fake ones costing ``costs[path]``
    seconds on a fake clock (so the test decides which path is fastest)."""
    from minicnn.backends.cython_backend import CythonBackend

    clock = FakeClock()
    backend = CythonBackend(num_threads=2, autotune=autotune, cache_dir=tmp_path, autotuner=Autotuner(clock=clock))
    timed = []
    for name, path in backend.paths.items():
        cost = costs.get(name, 1.0)
        for op in ("forward", "input_grad", "weight_grad", "grad", "forward_and_weight_grad"):
            if hasattr(path, op):
                def fake(*args, _cost=cost, _name=name, _op=op):
                    clock.now += _cost
                    timed.append((_name, _op))
                    return None
                setattr(path, op, fake)
    return backend, timed


C3 = shapes.conv2d_geometry((64, 6, 14, 14), (16, 6, 5, 5))


def test_autotune_chooses_the_fastest_fake_path_and_caches_it(tmp_path):
    backend, timed = _fake_backend(tmp_path, {"im2col": 1e-4, "direct": 5e-4, "rows": 9e-4, "lanes": 3e-4})
    plan = backend.plan_conv2d(C3, np.float32)
    assert plan.source == "measured"
    assert (plan.forward, plan.input_grad, plan.weight_grad) == ("im2col", "im2col", "im2col")
    assert plan.times["forward"]["im2col"] == pytest.approx(1e-4)
    assert "reference" not in {name for name, _ in timed}, "the reference is never timed"
    files = list(tmp_path.glob("kernel-plans-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    assert data["isa"] == backend.kernel_isa and data["minicnn"] == mc.__version__
    (key, entry), = data["plans"].items()
    assert key.startswith("float32|64x6x14x14|16x6x5x5|") and entry["forward"] == "im2col"

    # a second process (a new backend) reads the cache and times nothing
    again, timed_again = _fake_backend(tmp_path, {"direct": 1e-6})
    plan2 = again.plan_conv2d(C3, np.float32)
    assert plan2.source == "cache" and plan2.forward == "im2col" and not timed_again
    # the same backend remembers it in memory too
    assert again.plan_conv2d(C3, np.float32) is plan2


def test_autotune_keeps_a_fused_gradient_when_it_beats_the_two_separately(tmp_path):
    backend, timed = _fake_backend(tmp_path, {"lanes": 4e-4, "im2col": 3e-4, "direct": 9e-4, "rows": 9e-4})
    # each gradient alone: im2col 3e-4 < lanes 4e-4; together lanes' one pass 4e-4 < 3e-4 + 3e-4
    plan = backend.plan_conv2d(C3, np.float32)
    assert plan.input_grad == "im2col" and plan.weight_grad == "im2col"
    assert plan.fused in ("lanes", "im2col")
    assert ("lanes", "grad") in timed


# A transposed convolution's backward: Y and dW of one strided convolution (batched, winograd_phases and
# im2col take it; the fake paths cost 1 s but those the test times)
STRIDED = shapes.conv2d_geometry((32, 16, 32, 32), (32, 16, 4, 4), stride=2, padding=1)


@pytest.mark.parametrize("pair_cost, paired", [(4e-4, "im2col"), (7e-4, "")])
def test_autotune_keeps_the_one_pass_of_y_and_dw_only_when_it_beats_the_two_apart(tmp_path, pair_cost, paired):
    """im2col forms Y and dW from one column matrix (``forward_and_weight_grad``); the autotuner keeps that pass
    when it is faster than the best forward and the best weight gradient one after the other (here 3e-4 + 3e-4),
    and the choice is cached with the plan."""
    backend, timed = _fake_backend(tmp_path, {"im2col": 3e-4, "batched": 5e-4})

    def pair(*args):
        backend.autotuner.clock.now += pair_cost
        timed.append(("im2col", "forward_and_weight_grad"))

    backend.paths["im2col"].forward_and_weight_grad = pair
    plan = backend.plan_conv2d(STRIDED, np.float32)
    assert (plan.forward, plan.weight_grad, plan.paired) == ("im2col", "im2col", paired)
    assert plan.times["forward_and_weight_grad"]["im2col"] == pytest.approx(pair_cost)
    again, timed_again = _fake_backend(tmp_path, {})
    cached = again.plan_conv2d(STRIDED, np.float32)
    assert (cached.source, cached.paired, timed_again) == ("cache", paired, [])


def test_a_lone_one_pass_candidate_is_still_timed_against_the_two_apart(tmp_path):
    """A layer only im2col takes (its batch's column matrix is beyond the batched path's limit): its one pass of
    dX and dW, and of Y and dW, are each timed against its own two passes apart (3e-4 each here), not skipped
    for being the only candidate."""
    large = shapes.conv2d_geometry((64, 64, 64, 64), (64, 64, 4, 4), stride=2)  # no padding: not the phases
    backend, timed = _fake_backend(tmp_path, {"im2col": 3e-4})
    assert [n for n, r in backend.takes("weight_grad", large, np.float32).items() if not r] == ["im2col", "reference"]

    def pair(*args):
        backend.autotuner.clock.now += 4e-4

    backend.paths["im2col"].forward_and_weight_grad = pair
    plan = backend.plan_conv2d(large, np.float32)
    assert (plan.fused, plan.paired) == ("im2col", "im2col")
    assert ("im2col", "grad") in timed


def test_a_cached_plan_from_before_the_paired_pass_is_measured_again(tmp_path):
    """An entry without ``paired`` was measured without timing the one pass of Y and dW: it is not trusted."""
    backend, _ = _fake_backend(tmp_path, {"im2col": 3e-4, "batched": 5e-4})
    key = backend._plan_key(STRIDED, np.float32)
    backend.plan_cache.store(key, {"forward": "batched", "input_grad": "batched", "weight_grad": "batched",
                                   "fused": "", "times": {}})
    plan = backend.plan_conv2d(STRIDED, np.float32)
    assert plan.source == "measured" and plan.forward == "im2col"


@pytest.mark.parametrize("plan, one_pass", [
    ("im2col", True),  # forced on one path that pairs them
    ({"forward": "batched", "weight_grad": "im2col"}, False),
    (ConvPlan("im2col", "im2col", "im2col", source="measured", paired="im2col"), True),
    (ConvPlan("im2col", "im2col", "im2col", source="measured", paired=""), False),  # measured slower together
])
def test_conv2d_and_weight_grad_takes_one_pass_only_where_the_plan_pairs_it(cython, monkeypatch, plan, one_pass):
    from minicnn.backends.cython_paths import Im2colPath

    calls, real = [], Im2colPath.forward_and_weight_grad
    monkeypatch.setattr(Im2colPath, "forward_and_weight_grad", lambda self, *a: calls.append(1) or real(self, *a))
    rng = np.random.default_rng(3)
    x, w = rng.integers(-3, 4, (2, 3, 9, 8)).astype(np.float64), rng.integers(-3, 4, (4, 3, 4, 4)).astype(np.float64)
    dy = rng.integers(-3, 4, (2, 4, 4, 4)).astype(np.float64)
    y, dw, db = F.conv2d_and_weight_grad(x, w, dy, stride=2, padding=1, plan=plan, backend="cython")
    assert calls == ([1] if one_pass else [])
    np.testing.assert_array_equal(y, F.conv2d(x, w, stride=2, padding=1, backend="numpy"))
    want_dw, want_db = F.conv2d_weight_grad(x, w.shape, dy, stride=2, padding=1, backend="numpy")
    np.testing.assert_array_equal(dw, want_dw)
    np.testing.assert_array_equal(db, want_db)


def test_cache_file_is_rewritten_atomically_and_keeps_other_entries(tmp_path):
    path = plan_cache_path("cpu", "isa", "v", tmp_path)
    cache = PlanCache(path, {"cpu": "cpu", "isa": "isa", "minicnn": "v"})
    entry = {"forward": "im2col", "input_grad": "im2col", "weight_grad": "rows"}
    assert cache.store("k1", entry) and cache.store("k2", dict(entry, forward="direct"))
    assert set(cache.load()) == {"k1", "k2"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "no temporary file is left behind"
    # the file is replaced, never written in place: an open reader keeps the old contents
    before = path.stat().st_ino
    cache.store("k3", entry)
    assert path.stat().st_ino != before


@pytest.mark.parametrize("contents", ["{not json", "[]", '{"format": 1, "plans": 3}'])
def test_a_corrupt_cache_is_ignored_with_a_warning_and_replaced(tmp_path, contents):
    backend, timed = _fake_backend(tmp_path, {"im2col": 1e-4})
    backend.plan_cache.path.parent.mkdir(parents=True, exist_ok=True)
    backend.plan_cache.path.write_text(contents)
    with pytest.warns(RuntimeWarning, match="corrupt kernel plan cache"):
        plan = backend.plan_conv2d(C3, np.float32)
    assert plan.source == "measured" and timed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert C3 and backend.plan_cache.load()  # rewritten, readable again


def test_a_foreign_cache_is_ignored_with_a_warning(tmp_path):
    backend, _ = _fake_backend(tmp_path, {"im2col": 1e-4})
    path = backend.plan_cache.path
    path.parent.mkdir(parents=True, exist_ok=True)
    foreign = {"format": 1, "cpu": "another CPU", "isa": backend.kernel_isa, "minicnn": mc.__version__,
               "plans": {backend._plan_key(C3, np.float32): {"forward": "rows", "input_grad": "rows", "weight_grad": "rows"}}}
    path.write_text(json.dumps(foreign))
    with pytest.warns(RuntimeWarning, match="written for"):
        plan = backend.plan_conv2d(C3, np.float32)
    assert plan.source == "measured" and plan.forward == "im2col"


def test_a_cache_measured_by_another_table_of_paths_is_measured_again(tmp_path):
    """A path added since the cache was written (say, Winograd) must get its chance to be timed."""
    backend, timed = _fake_backend(tmp_path, {"im2col": 1e-4})
    old_table = dict(backend.plan_cache.header, paths="dense,direct,rows,lanes,batched,im2col,reference")
    path = backend.plan_cache.path
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"forward": "direct", "input_grad": "lanes", "weight_grad": "lanes"}
    path.write_text(json.dumps({"format": 1, **old_table, "plans": {backend._plan_key(C3, np.float32): entry}}))
    with pytest.warns(RuntimeWarning, match="written for"):
        plan = backend.plan_conv2d(C3, np.float32)
    assert plan.source == "measured" and timed


def test_small_layers_and_autotune_off_use_the_static_order(tmp_path):
    backend, timed = _fake_backend(tmp_path, {"im2col": 1e-9}, autotune=False)
    assert backend.plan_conv2d(C3, np.float32).source == "static" and not timed
    on, timed_on = _fake_backend(tmp_path, {"im2col": 1e-9})
    tiny = shapes.conv2d_geometry((1, 1, 8, 8), (2, 1, 3, 3))
    assert on.plan_conv2d(tiny, np.float32).source == "static" and not timed_on


def test_real_autotune_measures_the_real_kernels_and_reuses_the_cache(tmp_path):
    """The real thing, once: timing LeNet-5's C3 on this machine, then a second backend reads the cache."""
    from minicnn.backends.cython_backend import CythonBackend

    backend = CythonBackend(autotune=True, cache_dir=tmp_path)
    plan = backend.plan_conv2d(C3, np.float32)
    assert plan.source == "measured"
    for op in OPS:
        assert backend.paths[plan.path(op)].takes(op, C3, np.float32) == ""
        assert plan.times[op] and min(plan.times[op].values()) > 0
        assert plan.path(op) in plan.times[op]
    again = CythonBackend(autotune=True, cache_dir=tmp_path)
    assert again.plan_conv2d(C3, np.float32) == ConvPlan(plan.forward, plan.input_grad, plan.weight_grad,
                                                           source="cache", fused=plan.fused, paired=plan.paired)
    x = np.random.default_rng(1).standard_normal(C3.x_shape).astype(np.float32)
    w = np.random.default_rng(2).standard_normal(C3.w_shape).astype(np.float32)
    np.testing.assert_allclose(again.conv2d(x, w, None, C3), F.conv2d(x, w, backend="numpy"), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("variable, value, message", [
    ("MINICNN_AUTOTUNE", "maybe", "MINICNN_AUTOTUNE must be 1 or 0"),
    ("MINICNN_NUM_THREADS", "abc", "MINICNN_NUM_THREADS must be a positive int, got 'abc'"),
    ("MINICNN_NUM_THREADS", "0", "MINICNN_NUM_THREADS must be >= 1"),
])
def test_a_bad_setting_fails_loudly_instead_of_falling_back_to_numpy(monkeypatch, variable, value, message):
    import subprocess
    import sys

    env = dict(os.environ, **{variable: value})
    code = "import minicnn as mc; print(mc.available_backends())"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_reads_and_writes_a_1x1_layer_in_place(groups, dtype):
    """1x1 filters, stride 1, no padding: the products use the image as its own column matrix (conv2d.pyx,
    is_pointwise), forward, dX alone, dW alone and both in one pass."""
    geometry, x, w, b, dy, kwargs = _arrays(((3, 4 * groups, 5, 7), (6 * groups, None, 1, 1), dict(groups=groups)), dtype, 3)
    tol = TOL[dtype]
    np.testing.assert_allclose(F.conv2d(x, w, b, plan="im2col", **kwargs), F.conv2d(x, w, b, backend="numpy", **kwargs), **tol)
    want = F.conv2d_grad(x, w, dy, backend="numpy", **kwargs)
    for got, expected in zip(F.conv2d_grad(x, w, dy, plan="im2col", **kwargs), want):
        np.testing.assert_allclose(got, expected, **tol)
    dx, _, _ = F.conv2d_grad(x, w, dy, plan={"input_grad": "im2col", "weight_grad": "reference"}, **kwargs)
    np.testing.assert_allclose(dx, want[0], **tol)
    _, dw, db = F.conv2d_grad(x, w, dy, input_grad=False, plan="im2col", **kwargs)
    np.testing.assert_allclose(dw, want[1], **tol)
