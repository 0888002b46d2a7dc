"""Implicit-GEMM convolution: the launch plan of ``kernels/gpu/implicit_gemm.cu`` and its index formulas in NumPy.

The kernels multiply tiles of a *virtual* im2col matrix: each block gathers
the tile it needs straight from ``x`` (or ``dy``) into shared memory, so the
column matrix (deck 003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL", the
convolution as one matrix product) is never written. This module holds, in
Python, everything about those kernels that does not need a GPU:

* :func:`plan`: the product's sizes ``(M, cols, K)``, the tile shape, the
  grid and, for dW, the number of split ranges of its long reduction, all
  computed from the geometry alone (never from the GPU, so every GPU adds
  the same partial sums in the same order);
* the gather formulas :func:`column_source` (``X^[k, col]``) and
  :func:`error_source` (``dY^[k, pix]``), the same integer arithmetic the
  kernels run, vectorised;
* :func:`emulate`: the kernels' tile loop in NumPy (tiles, k-slices, split
  ranges, the ordered reduction of the splits, the TF32 rounding), which the
  tests run against the reference convolution. It is slow and only a test
  oracle; the GPU runs the .cu file.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["PROBLEMS", "TILES", "TENSOR_CORE_TILE", "tensor_core_map", "BK", "THREADS", "SPLIT_TARGET_BLOCKS", "IGPlan", "plan", "column_source",
           "error_source", "round_tf32", "emulate", "tf32_tolerance"]

PROBLEMS = ("forward", "input_grad", "weight_grad")
#: (name, BM, BN) of the instantiated CUDA-core tile shapes, as in implicit_gemm.cu.
TILES = (("m16", 16, 256), ("m64", 64, 64))
#: the tensor-core (TF32 mma.sync) tile, float32 only.
TENSOR_CORE_TILE = ("tc", 64, 64)
BK = 8
THREADS = 256
#: dW splits its reduction until the grid has about this many blocks (a constant, so results do not depend on the GPU).
SPLIT_TARGET_BLOCKS = 512
#: each split range keeps at least this many k-slices of BK.
MIN_SLICES_PER_SPLIT = 4


class IGPlan(NamedTuple):
    """One launch: ``kernel`` name (without the dtype suffix), product sizes, tile, grid and splits."""

    problem: str
    kernel: str
    rows: int  # M
    cols: int
    depth: int  # K
    bm: int
    bn: int
    grid: tuple
    splits: int


def _sizes(problem, g):
    """``(M, cols, K)`` of the product of one group (see the table at the top of implicit_gemm.cu)."""
    c_g, o_g = g.c // g.groups, g.o // g.groups
    if problem == "forward":
        return o_g, g.n * g.oh * g.ow, c_g * g.kh * g.kw
    if problem == "input_grad":
        return c_g, g.n * g.h * g.w, o_g * g.kh * g.kw
    if problem == "weight_grad":
        return o_g, c_g * g.kh * g.kw, g.n * g.oh * g.ow
    raise ValueError(f"implicit_gemm.plan: problem must be one of {PROBLEMS}, got {problem!r}")


def plan(problem, geometry, tensor_cores=False):
    """The launch of ``problem`` for a checked ``shapes.ConvGeometry``.

    Tile: "m16" (16 x 256) when the product has at most 16 rows (LeNet's 6
    and 16 filters), else "m64" (64 x 64); ``tensor_cores`` (TF32, float32)
    the 64 x 64 "tc" tile of eight warps of mma.sync. Splits (dW only): enough to bring
    the grid near ``SPLIT_TARGET_BLOCKS`` blocks, with at least
    ``MIN_SLICES_PER_SPLIT`` k-slices each.
    """
    rows, cols, depth = _sizes(problem, geometry)
    name, bm, bn = TENSOR_CORE_TILE if tensor_cores else (TILES[0] if rows <= TILES[0][1] else TILES[1])
    tiles = math.ceil(cols / bn) * math.ceil(rows / bm) * geometry.groups
    splits = 1
    if problem == "weight_grad":
        slices = math.ceil(depth / BK)
        splits = max(1, min(SPLIT_TARGET_BLOCKS // tiles, slices // MIN_SLICES_PER_SPLIT))
    grid = (math.ceil(cols / bn), math.ceil(rows / bm), geometry.groups * splits)
    return IGPlan(problem, f"implicit_gemm_{problem}_{name}", rows, cols, depth, bm, bn, grid, splits)


# --------------------------------------------------------------------------- gather formulas
def column_source(g, group, k, col):
    """``X^[k, col]`` of ``group`` as ``(n, c, h, w, inside)`` index arrays (implicit_gemm.cu ``gather_columns``).

    ``k = (c*KH + p)*KW + q`` and ``col = (n*OH + i)*OW + j`` give the input
    pixel ``(i*SH + p*DH - PH, j*SW + q*DW - PW)`` of channel ``group*C_g + c``
    (deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS"); ``inside`` is False in the padding.
    """
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
    k, col = np.asarray(k, dtype=np.int64), np.asarray(col, dtype=np.int64)
    c, p, q = k // (g.kh * g.kw), (k // g.kw) % g.kh, k % g.kw
    j, i, n = col % g.ow, (col // g.ow) % g.oh, col // (g.ow * g.oh)
    h, w = i * sh + p * dh - ph, j * sw + q * dw - pw
    inside = (h >= 0) & (h < g.h) & (w >= 0) & (w < g.w)
    return n, group * (g.c // g.groups) + c, h, w, inside


def error_source(g, group, k, pix):
    """``dY^[k, pix]`` of ``group`` as ``(n, o, i, j, inside)`` (implicit_gemm.cu ``gather_errors``).

    Pixel ``(h, w)`` was read by output ``(i, j)`` through tap ``(p, q)`` when
    ``i*SH + p*DH - PH = h``: ``i = (h + PH - p*DH)/SH`` must divide exactly and
    land in ``[0, OH)`` (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation").
    """
    (sh, sw), (ph, pw), (dh, dw) = g.stride, g.padding, g.dilation
    k, pix = np.asarray(k, dtype=np.int64), np.asarray(pix, dtype=np.int64)
    o, p, q = k // (g.kh * g.kw), (k // g.kw) % g.kh, k % g.kw
    w, h, n = pix % g.w, (pix // g.w) % g.h, pix // (g.w * g.h)
    ti, tj = h + ph - p * dh, w + pw - q * dw
    inside = (ti >= 0) & (tj >= 0) & (ti % sh == 0) & (tj % sw == 0)
    i, j = np.where(inside, ti // sh, 0), np.where(inside, tj // sw, 0)
    inside &= (i < g.oh) & (j < g.ow)
    return n, group * (g.o // g.groups) + o, i, j, inside


def _take(array, index):
    n, ch, a, b, inside = index
    values = array[n, ch, np.where(inside, a, 0), np.where(inside, b, 0)]
    return np.where(inside, values, 0).astype(array.dtype)


def tensor_core_map():
    """Where the "tc" kernel's threads read and write, from mma.m16n8k8's fragment layout (PTX ISA).

    Returns three int arrays over ``(warp, lane, ...)`` (8 warps of 32 lanes):
    ``a_at[w, l, r] = (k, m)`` of register ``a_r`` in the tile's shared ``As[k][m]``,
    ``b_at[w, l, j, r] = (k, n)`` of ``b_r`` of n-tile ``j`` in ``Bs[k][n]``, and
    ``c_at[w, l, j, i] = (m, n)`` where accumulator ``c_i`` of n-tile ``j`` is stored,
    with ``g = lane // 4``, ``t = lane % 4``, warp rows ``16*(w % 4)``, columns ``32*(w // 4)``.
    """
    warp, lane = np.meshgrid(np.arange(8), np.arange(32), indexing="ij")
    g, t = lane // 4, lane % 4
    wm, wn = 16 * (warp % 4), 32 * (warp // 4)
    a_at = np.stack([np.stack([t, wm + g]), np.stack([t, wm + g + 8]),
                     np.stack([t + 4, wm + g]), np.stack([t + 4, wm + g + 8])], axis=-1)  # (2, 8, 32, 4)
    j = np.arange(4)[None, None, :]
    col = wn[..., None] + 8 * j + g[..., None]
    b_at = np.stack([np.stack([np.broadcast_to(t[..., None], col.shape), col]),
                     np.stack([np.broadcast_to(t[..., None] + 4, col.shape), col])], axis=-1)  # (2, 8, 32, 4, 2)
    rows = [wm + g, wm + g, wm + g + 8, wm + g + 8]
    cols = [wn[..., None] + 8 * j + 2 * t[..., None] + (i & 1) for i in range(4)]
    c_at = np.stack([np.stack([np.broadcast_to(rows[i][..., None], cols[i].shape), cols[i]]) for i in range(4)], axis=-1)
    return np.moveaxis(a_at, 0, -1), np.moveaxis(b_at, 0, -1), np.moveaxis(c_at, 0, -1)


def round_tf32(values):
    """float32 rounded to TF32 (10-bit mantissa, ties away from zero), bit for bit as ``round_tf32`` in implicit_gemm.cu."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    finite = (bits & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    rounded = np.where(finite, (bits + np.uint32(0x1000)) & np.uint32(0xFFFFE000), bits)
    return rounded.astype(np.uint32).view(np.float32)


def tf32_tolerance(depth, magnitude):
    """Bound on ``|TF32 product - float32 product|`` for a sum of ``depth`` terms of size at most ``magnitude``.

    Each operand is rounded to 10 mantissa bits: relative error ``u = 2^-11``
    each, so each product is off by at most ``(2u + u^2)`` of ``magnitude``;
    the float32 accumulation adds up to ``depth * 2^-23`` of the running sum
    (a whole float32 ulp per addition, not half: tensor cores need not round
    their partial sums to nearest). The bound is the sum over the ``depth``
    terms (a worst case, no cancellation).
    """
    u = 2.0**-11
    return depth * magnitude * ((2 * u + u * u) + depth * 2.0**-23)


# --------------------------------------------------------------------------- emulation
def _operand_a(problem, g, group, m, k, w, dy):
    if problem == "forward":
        return w.reshape(g.o, -1)[group * (g.o // g.groups) + m, k]
    if problem == "input_grad":
        taps = g.kh * g.kw
        o = group * (g.o // g.groups) + k // taps
        return w.reshape(g.o, g.c // g.groups, taps)[o, m, k % taps]
    n, r = k // (g.oh * g.ow), k % (g.oh * g.ow)
    return dy.reshape(g.n, g.o, -1)[n, group * (g.o // g.groups) + m, r]


def _operand_b(problem, g, group, k, col, x, dy):
    if problem == "forward":
        return _take(x, column_source(g, group, k, col))
    if problem == "input_grad":
        return _take(dy, error_source(g, group, k, col))
    return _take(x, column_source(g, group, col, k))  # dW: B[r, k] = X^[k, r]


def emulate(problem, geometry, *, x=None, w=None, dy=None, tf32=False):
    """The product of ``problem`` computed the kernels' way: per group and split range, k-slices of BK in order.

    Every output is one thread's accumulator, adding its terms in increasing
    ``k``; the tile an output falls in changes which thread that is, not the
    order, so the emulation adds whole k-columns at a time. dW's splits each sum their own k range, then are added in order (the
    kernel ``implicit_gemm_reduce_splits``). Returns the product per group,
    shape ``(G, M, cols)``, before the kernels' store (bias, ReLU and layout
    are the caller's). ``tf32`` rounds every operand as the kernels do.
    """
    launch = plan(problem, geometry)
    dtype = (x if x is not None else dy).dtype
    out = np.zeros((launch.splits, geometry.groups, launch.rows, launch.cols), dtype=dtype)
    slices = math.ceil(launch.depth / BK)
    per = math.ceil(slices / launch.splits)
    rounding = round_tf32 if tf32 else (lambda v: v)
    for group in range(geometry.groups):
        for split in range(launch.splits):
            k_begin, k_end = split * per * BK, min(launch.depth, (split + 1) * per * BK)
            for k0 in range(k_begin, k_end, BK):
                k = np.arange(k0, min(k0 + BK, k_end))
                m, col = np.arange(launch.rows), np.arange(launch.cols)
                a = rounding(_operand_a(problem, geometry, group, m[:, None], k[None, :], w, dy))
                b = rounding(_operand_b(problem, geometry, group, k[:, None], col[None, :], x, dy))
                for kk in range(len(k)):  # one k at a time, as each thread's accumulator
                    out[split, group] += a[:, kk : kk + 1] * b[kk : kk + 1, :]
    total = out[0].copy()
    for split in range(1, launch.splits):
        total += out[split]
    return total
