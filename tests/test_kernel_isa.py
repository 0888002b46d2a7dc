"""The kernels' instruction-set copies (kernels/cpu/multiversion.h) and the lane counts they report.

Each kernel family has an AVX-512, an AVX2 and a baseline copy with its own register blocking, and
the number of pixels or images in a vector differs between them. These tests check that
``kernel_isa()`` names a known copy, that ``row_lanes()``, ``lanes_group()`` and
``rows_weight_grad_lanes()`` are the ones of that copy, and that every kernel family matches the
NumPy reference on shapes built from the RUNTIME lane counts: rows of exactly one vector and one
vector + 3 (a shifted last vector), batches of exactly one group and one group + 5 (zero lanes in
the last group). Run them on each build: the normal one (AVX-512 on this project's machine) and
``MINICNN_SINGLE_TARGET=x86-64-v3`` / ``x86-64`` ones (.ci/instruction_sets.sh).

Tolerances do not depend on the CPU: 1e-4 (float32) and 1e-10 (float64), relative to the largest
reference value (the copies add in different orders, and only the baseline has no FMA).
"""

import numpy as np
import pytest

import minicnn as mc
from minicnn import functional as F

# kernel_isa() -> (row_lanes, lanes_group f32, lanes_group f64, rows_weight_grad_lanes f32, f64)
LANES = {
    "x86-64-v4": (16, 16, 8, 16, 8),
    "x86-64-v3": (8, 8, 4, 8, 4),
    "x86-64": (4, 4, 2, 4, 2),
    "aarch64": (4, 4, 2, 4, 2),  # the baseline blocking, 128-bit NEON vectors
}
DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def kernels():
    if "cython" not in mc.available_backends():
        pytest.fail("cython backend not built")
    from minicnn.kernels.cpu import conv2d

    return conv2d


def _close(got, want):
    """Equal up to 1e-4 (float32) or 1e-10 (float64) of the largest reference value."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = 1e-4 if want.dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got / scale, want / scale, rtol=tol, atol=tol)


def _data(seed, dtype, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


# ------------------------------------------------------------------ what the copies report


def test_kernel_isa_is_a_known_name(kernels):
    from minicnn.kernels.cpu import pool2d

    isa = kernels.kernel_isa()
    assert isa in set(LANES) | {"generic"}
    assert pool2d.kernel_isa() == isa  # one choice for every kernel of the build


def test_kernel_isa_is_not_above_the_cpu(kernels):
    # The copy that runs never needs more than the CPU has (a dispatching build picks the best the
    # CPU supports; a MINICNN_SINGLE_TARGET build only runs on a CPU of its level at least).
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    isa = kernels.kernel_isa()
    if isa == "x86-64-v4":
        assert {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    if isa in ("x86-64-v4", "x86-64-v3"):
        assert {"avx2", "fma"} <= flags


def test_lane_counts_are_those_of_the_copy_that_runs(kernels):
    isa = kernels.kernel_isa()
    if isa == "generic":
        pytest.skip("no vector kernels in this build")
    row, group32, group64, grad32, grad64 = LANES[isa]
    assert kernels.row_lanes() == row
    assert kernels.lanes_group(False) == group32
    assert kernels.lanes_group(True) == group64
    assert kernels.rows_weight_grad_lanes(False) == grad32
    assert kernels.rows_weight_grad_lanes(True) == grad64


@pytest.mark.parametrize("double", [False, True])
def test_lanes_workspace_leaves_room_for_alignment(kernels, double):
    # conv2d_grad_lanes starts each thread's part on a 64-byte boundary: the slack must be 64 bytes
    # whatever the group size (8 floats on AVX2 would only be 32).
    c, h, w, o, k = 6, 14, 14, 16, 5
    lanes = kernels.lanes_group(double)
    data = (o * (h - k + 1) * (w - k + 1) + c * h * w) * lanes
    assert (kernels.lanes_workspace_size(c, h, w, o, k, k, double) - data) * (8 if double else 4) >= 64


def test_rows_workspace_follows_the_row_lanes(kernels):
    lanes = kernels.row_lanes()
    # a row of exactly one vector needs no copy; a narrower one is widened to one vector
    assert kernels.rows_workspace_sizes(1, lanes + 4, lanes + 4, 6, 5, 5, 0, 0) == (0, 0)
    size_in, size_out = kernels.rows_workspace_sizes(1, lanes + 3, lanes + 3, 6, 5, 5, 0, 0)
    assert size_in == (lanes + 3) * (lanes + 4) and size_out == 6 * (lanes - 1) * lanes


# ------------------------------------------------------------------ through minicnn.functional


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extra", [0, 3])
def test_row_forward_on_rows_of_one_vector_and_more(kernels, dtype, extra):
    # Few filters (6, not a multiple of 16): the row kernel, rows of row_lanes() (+3) outputs.
    ow = max(kernels.row_lanes(), 6) + extra
    x, w, b = _data(1, dtype, (3, 2, ow + 2, ow + 4), (6, 2, 3, 5), (6,))
    _close(F.conv2d(x, w, b, backend="cython"), F.conv2d(x, w, b, backend="numpy"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", ["lanes", "lanes+3", "2*lanes", 14, 28])
def test_row_input_gradient_on_rows_of_one_vector_and_more(kernels, dtype, width):
    # LeNet's C3 with fewer images than a group: dX by the row kernel (a "full" correlation of dY).
    lanes = kernels.row_lanes()
    wd = {"lanes": lanes, "lanes+3": lanes + 3, "2*lanes": 2 * lanes}.get(width, width)
    if wd < 5:
        wd += 5
    x, w = _data(2, dtype, (2, 6, 14, wd), (16, 6, 5, 5))
    dy = _data(3, dtype, (2, 16, 10, wd - 4))[0]
    got = F.conv2d_grad(x, w, dy, backend="cython")
    want = F.conv2d_grad(x, w, dy, backend="numpy")
    for g, e in zip(got, want):
        _close(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extra", [0, 3])
def test_row_weight_gradient_on_rows_of_one_vector_and_more(kernels, dtype, extra):
    # LeNet's C1 (one input channel, 6 filters): dW and db by the row kernel, W_out = its lanes (+3).
    ow = kernels.rows_weight_grad_lanes(dtype == np.float64) + extra
    n = 9  # blocks of 4 images: the last one partial
    x, w = _data(4, dtype, (n, 1, 5 + 4, ow + 4), (6, 1, 5, 5))
    dy = _data(5, dtype, (n, 6, 5, ow))[0]
    for input_grad in (False, True):
        got = F.conv2d_grad(x, w, dy, input_grad=input_grad, backend="cython")
        want = F.conv2d_grad(x, w, dy, backend="numpy")
        if not input_grad:
            assert got[0] is None
            got, want = got[1:], want[1:]
        for g, e in zip(got, want):
            _close(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ow", [4, 5, 6, 7, 13])
@pytest.mark.parametrize("padding", [0, 1])
def test_direct_forward_on_narrow_and_odd_rows(kernels, dtype, ow, padding):
    # 16 and 32 filters: the direct kernel (AVX2: 6-pixel blocks, 4-pixel ones for rows of 4-5,
    # the last block shifted left); 5 output rows (an odd last row block on AVX-512).
    for o in (16, 32):
        x, w, b = _data(6, dtype, (2, 3, 5 + 2 - 2 * padding, ow + 2 - 2 * padding), (o, 3, 3, 3), (o,))
        _close(F.conv2d(x, w, b, padding=padding, backend="cython"),
               F.conv2d(x, w, b, padding=padding, backend="numpy"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ow", [4, 7, 10])
def test_direct_weight_gradient(kernels, dtype, ow):
    # One input channel and 16 filters: dW by the direct kernel (taps in blocks of at most 5).
    for k in (3, 5, 7):
        x, w = _data(7, dtype, (3, 1, 4 + k - 1, ow + k - 1), (16, 1, k, k))
        dy = _data(8, dtype, (3, 16, 4, ow))[0]
        got = F.conv2d_grad(x, w, dy, backend="cython")
        want = F.conv2d_grad(x, w, dy, backend="numpy")
        for g, e in zip(got, want):
            _close(g, e)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", ["group", "group+5", "2*group-1"])
def test_batch_lanes_on_one_group_and_more(kernels, dtype, batch):
    # LeNet's C3-like layers with the batch in the lanes: exactly lanes_group() images, and more.
    group = kernels.lanes_group(dtype == np.float64)
    n = {"group": group, "group+5": group + 5, "2*group-1": 2 * group - 1}[batch]
    for o, k in ((16, 5), (5, 3)):  # dW blocks of the AVX-512 copy (4 filters) and of AVX2 (2), and 1
        x, w = _data(9, dtype, (n, 6, 12, 12), (o, 6, k, k))
        dy = _data(10, dtype, (n, o, 13 - k, 13 - k))[0]
        got = F.conv2d_grad(x, w, dy, backend="cython")
        want = F.conv2d_grad(x, w, dy, backend="numpy")
        for g, e in zip(got, want):
            _close(g, e)


# ------------------------------------------------------------------ the wrappers themselves
# The backend's routing may change (it is being replaced by a measured plan); these call each
# kernel family directly, so every family is checked whatever the routing.


def _reference_grads(x, w, dy):
    return F.conv2d_grad(x, w, dy, backend="numpy")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extra", [0, 3, -1])
def test_wrapper_rows_forward(kernels, dtype, extra):
    lanes = kernels.row_lanes()
    ow = lanes + extra  # -1: narrower than a vector, computed in a widened copy
    c, o, k = 2, 6, 3
    x, w, b = _data(11, dtype, (3, c, 7 + k - 1, ow + k - 1), (o, c, k, k), (o,))
    w_t = np.ascontiguousarray(w.transpose(1, 2, 3, 0)).reshape(c * k * k, o)
    size_in, size_out = kernels.rows_workspace_sizes(c, x.shape[2], x.shape[3], o, k, k, 0, 0)
    y = np.empty((3, o, 7, ow), dtype)
    kernels.conv2d_rows(x, w_t, b, y, 0, 0, np.empty((2, max(size_in, 1)), dtype),
                        np.empty((2, max(size_out, 1)), dtype), 2)
    _close(y, F.conv2d(x, w, b, backend="numpy"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extra", [0, 3])
def test_wrapper_rows_weight_grad(kernels, dtype, extra):
    ow = kernels.rows_weight_grad_lanes(dtype == np.float64) + extra
    n, c, o, k = 6, 2, 7, 5  # 7 filters: blocks of 3 (AVX-512) or 2 (AVX2), then 1
    x, w = _data(12, dtype, (n, c, 4 + k - 1, ow + k - 1), (o, c, k, k))
    dy = _data(13, dtype, (n, o, 4, ow))[0]
    partial = np.empty((-(-n // 4), w.size + o), dtype)
    kernels.conv2d_weight_grad_rows(x, dy, partial, 4, 2)
    total = partial.sum(axis=0)
    _, want_dw, want_db = _reference_grads(x, w, dy)
    _close(total[: w.size].reshape(w.shape), want_dw)
    _close(total[w.size:], want_db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("extra", [0, 5])
def test_wrapper_batch_lanes(kernels, dtype, extra):
    double = dtype == np.float64
    group = kernels.lanes_group(double)
    n, c, o, k = group + extra, 3, 7, 3
    x, w = _data(14, dtype, (n, c, 9, 8), (o, c, k, k))
    dy = _data(15, dtype, (n, o, 9 - k + 1, 8 - k + 1))[0]
    groups = -(-n // group)
    partial = np.empty((groups, w.size + o), dtype)
    workspace = np.empty((2, kernels.lanes_workspace_size(c, 9, 8, o, k, k, double)), dtype)
    dx = np.empty_like(x)
    kernels.conv2d_grad_lanes(x, np.ascontiguousarray(w.transpose(0, 2, 3, 1)), dy, dx, partial, workspace, 2)
    total = partial.sum(axis=0)
    want_dx, want_dw, want_db = _reference_grads(x, w, dy)
    _close(dx, want_dx)
    _close(total[: w.size].reshape(w.shape), want_dw)
    _close(total[w.size:], want_db)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ow", [4, 5, 6, 11])
def test_wrapper_direct(kernels, dtype, ow):
    n, c, o, k = 2, 3, 32, 3
    x, w, b = _data(16, dtype, (n, c, 3 + k - 1, ow + k - 1), (o, c, k, k), (o,))
    dy = _data(17, dtype, (n, o, 3, ow))[0]
    y = np.empty((n, o, 3, ow), dtype)
    kernels.conv2d_forward_direct(x, np.ascontiguousarray(w.reshape(o, -1).T), b, y,
                                  np.empty((2, 3 * ow * o), dtype), 0, 0, np.empty((2, 1), dtype), 2)
    _close(y, F.conv2d(x, w, b, backend="numpy"))
    dw_t = np.zeros((2, 1, c * k * k, o), dtype)
    kernels.conv2d_weight_grad_direct(x, dy, dw_t, np.empty((2, 3 * ow * o), dtype), 2)
    _close(np.ascontiguousarray(dw_t.sum(axis=0)[0].T).reshape(w.shape), _reference_grads(x, w, dy)[1])
