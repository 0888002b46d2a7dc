"""kernels/gpu/implicit_gemm.cu without a GPU: its launch plan and its index arithmetic, emulated in NumPy.

minicnn/backends/implicit_gemm.py writes the kernels' gather formulas and
tile loop in NumPy. With integer-valued float64 data every partial sum is
exact, so the emulation must equal the reference convolution bit for bit
whatever the order of the terms: any wrong index (a tap, a stride, a
padding offset, a group) changes a sum by a whole integer and fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from minicnn import shapes
from minicnn.backends import implicit_gemm as ig
from minicnn.backends.numpy_backend import NumpyBackend

REF = NumpyBackend()

CASES = [
    # (x shape, w shape, stride, padding, dilation, groups)
    ((2, 1, 12, 12), (6, 1, 5, 5), 1, 0, 1, 1),  # LeNet C1 (smaller image)
    ((2, 6, 7, 7), (16, 6, 5, 5), 1, 0, 1, 1),  # LeNet C3
    ((1, 4, 9, 8), (8, 4, 3, 3), 1, 1, 1, 1),  # mid 3x3, padding 1
    ((2, 4, 9, 10), (6, 2, 3, 2), (2, 3), (1, 0), (1, 2), 2),  # stride, padding, dilation, groups
    ((1, 3, 11, 11), (70, 3, 3, 3), 2, 1, 1, 1),  # more than 64 filters: two m64 row tiles
]


def _geometry(case):
    x_shape, w_shape, stride, padding, dilation, groups = case
    return shapes.conv2d_geometry(x_shape, w_shape, stride, padding, dilation, groups)


def _integers(shape, seed):
    return np.random.default_rng(seed).integers(-4, 5, shape).astype(np.float64)


def _per_group_output(y, g):
    """(N, O, OH, OW) -> (G, O_g, N*OH*OW): the layout of the forward product."""
    return y.reshape(g.n, g.groups, g.o // g.groups, g.oh * g.ow).transpose(1, 2, 0, 3).reshape(g.groups, g.o // g.groups, -1)


@pytest.mark.parametrize("case", CASES)
def test_forward_gather_is_the_convolution(case):
    g = _geometry(case)
    x, w = _integers(g.x_shape, 1), _integers(g.w_shape, 2)
    expected = _per_group_output(REF.conv2d(x, w, None, g), g)
    np.testing.assert_array_equal(ig.emulate("forward", g, x=x, w=w), expected)


@pytest.mark.parametrize("case", CASES)
def test_input_grad_gather_is_the_adjoint(case):
    g = _geometry(case)
    w, dy = _integers(g.w_shape, 3), _integers(g.y_shape, 4)
    dx = REF.conv2d_input_grad(w, dy, g)
    expected = dx.reshape(g.n, g.groups, g.c // g.groups, g.h * g.w).transpose(1, 2, 0, 3).reshape(g.groups, g.c // g.groups, -1)
    np.testing.assert_array_equal(ig.emulate("input_grad", g, w=w, dy=dy), expected)


@pytest.mark.parametrize("case", CASES)
def test_weight_grad_with_split_reduction_is_the_reference(case):
    g = _geometry(case)
    x, dy = _integers(g.x_shape, 5), _integers(g.y_shape, 6)
    dw, _ = REF.conv2d_weight_grad(x, dy, g)
    expected = dw.reshape(g.groups, g.o // g.groups, -1)
    np.testing.assert_array_equal(ig.emulate("weight_grad", g, x=x, dy=dy), expected)


def test_the_weight_gradient_of_a_long_reduction_is_split():
    g = shapes.conv2d_geometry((64, 1, 32, 32), (6, 1, 5, 5))  # LeNet C1 at batch 64: 50,176 positions
    launch = ig.plan("weight_grad", g)
    assert launch.splits > 1 and launch.grid[2] == launch.splits
    assert launch.kernel == "implicit_gemm_weight_grad_m16"
    assert np.prod(launch.grid) <= ig.SPLIT_TARGET_BLOCKS
    assert -(-launch.depth // ig.BK) // launch.splits >= ig.MIN_SLICES_PER_SPLIT
    # a short reduction is not split, and the forward never is
    assert ig.plan("weight_grad", shapes.conv2d_geometry((1, 1, 6, 6), (6, 1, 5, 5))).splits == 1
    assert ig.plan("forward", g).splits == 1


def test_split_emulation_sums_the_ranges_in_order():
    """A split weight gradient in float32 differs from one long sum only in rounding, and repeats bit for bit."""
    g = shapes.conv2d_geometry((24, 2, 16, 16), (4, 2, 3, 3), padding=1)
    assert ig.plan("weight_grad", g).splits > 1
    rng = np.random.default_rng(7)
    x = rng.standard_normal(g.x_shape).astype(np.float32)
    dy = rng.standard_normal(g.y_shape).astype(np.float32)
    first = ig.emulate("weight_grad", g, x=x, dy=dy)
    np.testing.assert_array_equal(first, ig.emulate("weight_grad", g, x=x, dy=dy))
    dw64, _ = REF.conv2d_weight_grad(x.astype(np.float64), dy.astype(np.float64), g)
    depth = g.n * g.oh * g.ow
    bound = depth * np.finfo(np.float32).eps * np.abs(x).max() * np.abs(dy).max()
    assert np.abs(first.reshape(g.w_shape) - dw64).max() <= bound


@pytest.mark.parametrize("problem,rows", [("forward", 6), ("forward", 64), ("forward", 65), ("input_grad", 16)])
def test_tile_choice_and_grid_cover_the_product(problem, rows):
    if problem == "forward":
        g = shapes.conv2d_geometry((3, 4, 10, 10), (rows, 4, 3, 3))
    else:
        g = shapes.conv2d_geometry((3, rows, 10, 10), (8, rows, 3, 3))
    launch = ig.plan(problem, g)
    assert (launch.bm == 16) == (launch.rows <= 16)
    assert launch.grid[0] * launch.bn >= launch.cols > (launch.grid[0] - 1) * launch.bn
    assert launch.grid[1] * launch.bm >= launch.rows > (launch.grid[1] - 1) * launch.bm
    assert launch.kernel.startswith(f"implicit_gemm_{problem}_m")


def test_plan_refuses_an_unknown_problem():
    with pytest.raises(ValueError, match="problem must be one of"):
        ig.plan("backward", shapes.conv2d_geometry((1, 1, 5, 5), (1, 1, 3, 3)))


# --------------------------------------------------------------------------- TF32
def test_round_tf32_keeps_ten_mantissa_bits_ties_away_from_zero():
    one = np.float32(1.0)
    ulp = np.float32(2.0**-10)  # TF32's spacing just above 1
    values = np.array([1.0, 1 + 2.0**-11, 1 + 2.0**-11 - 2.0**-23, -(1 + 2.0**-11), 3.0e38, np.inf, -np.inf], np.float32)
    rounded = ig.round_tf32(values)
    assert rounded[0] == one
    assert rounded[1] == one + ulp  # a tie goes away from zero
    assert rounded[2] == one  # just below the tie goes down
    assert rounded[3] == -(one + ulp)
    assert np.isposinf(rounded[5]) and np.isneginf(rounded[6])
    assert (ig.round_tf32(rounded) == rounded).all()  # already TF32: unchanged
    assert (rounded.view(np.uint32)[:5] & 0x1FFF == 0).all()  # the 13 low bits cleared
    rng = np.random.default_rng(0)
    many = rng.standard_normal(10_000).astype(np.float32)
    relative = np.abs(ig.round_tf32(many) - many) / np.abs(many)
    assert relative.max() <= 2.0**-11


def test_tf32_forward_stays_within_the_derived_tolerance():
    g = shapes.conv2d_geometry((2, 6, 9, 9), (16, 6, 5, 5))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(g.x_shape).astype(np.float32)
    w = rng.standard_normal(g.w_shape).astype(np.float32)
    tf32 = ig.emulate("forward", g, x=x, w=w, tf32=True)
    exact = _per_group_output(REF.conv2d(x.astype(np.float64), w.astype(np.float64), None, g), g)
    error = np.abs(tf32 - exact).max()
    bound = ig.tf32_tolerance(g.k, np.abs(x).max() * np.abs(w).max())
    assert error <= bound
    # and TF32 is really coarser than float32 here (the rounding is applied)
    assert error > np.abs(ig.emulate("forward", g, x=x, w=w) - exact).max()


# --------------------------------------------------------------------------- the tensor-core tile
def _ptx_fragments():
    """mma.m16n8k8 .tf32 fragment layout as the PTX ISA states it: per lane and register, (row, col)."""
    lane = np.arange(32)
    g, t = lane // 4, lane % 4
    a = [(g, t), (g + 8, t), (g, t + 4), (g + 8, t + 4)]  # A is 16 x 8 (row, k)
    b = [(t, g), (t + 4, g)]  # B is 8 x 8 (k, col)
    c = [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)]  # C is 16 x 8
    return a, b, c


def test_tensor_core_warps_cover_the_tile_once_and_multiply_it():
    a_at, b_at, c_at = ig.tensor_core_map()
    stored = c_at.reshape(-1, 2)
    assert len({tuple(p) for p in stored}) == 64 * 64 and stored.min() == 0 and stored.max() == 63
    rng = np.random.default_rng(11)
    As = rng.integers(-3, 4, (ig.BK, 64)).astype(np.float64)  # As[k][m], Bs[k][n] as in shared memory
    Bs = rng.integers(-3, 4, (ig.BK, 64)).astype(np.float64)
    a_ptx, b_ptx, c_ptx = _ptx_fragments()
    out = np.full((64, 64), np.nan)
    for warp in range(8):
        A = np.zeros((16, 8))
        for r, (row, col) in enumerate(a_ptx):  # what the hardware sees: lane l's register a_r is A[row][col]
            A[row, col] = As[a_at[warp, :, r, 0], a_at[warp, :, r, 1]]
        for j in range(4):
            B = np.zeros((8, 8))
            for r, (row, col) in enumerate(b_ptx):
                B[row, col] = Bs[b_at[warp, :, j, r, 0], b_at[warp, :, j, r, 1]]
            D = A @ B
            for i, (row, col) in enumerate(c_ptx):
                out[c_at[warp, :, j, i, 0], c_at[warp, :, j, i, 1]] = D[row, col]
    np.testing.assert_array_equal(out, As.T @ Bs)


def test_tensor_core_plan_uses_the_tc_tile():
    g = shapes.conv2d_geometry((64, 6, 14, 14), (16, 6, 5, 5))
    launch = ig.plan("forward", g, tensor_cores=True)
    assert launch.kernel == "implicit_gemm_forward_tc" and (launch.bm, launch.bn) == (64, 64)
    assert ig.plan("weight_grad", g, tensor_cores=True).kernel == "implicit_gemm_weight_grad_tc"
