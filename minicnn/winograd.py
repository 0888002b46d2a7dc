"""Winograd's minimal filtering, F(2x2, 3x3): the textbook version in NumPy.

Reference: A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016 (arXiv:1509.09308), section 4.1. The cython backend's
``winograd`` path (kernels/cpu/winograd.pyx) computes the same thing with
BLAS; this module is the readable version the tests check it against.

The 1-D case, F(2, 3): two outputs of a 3-tap correlation
---------------------------------------------------------
Four inputs ``d0..d3`` and a filter ``g0, g1, g2``; the correlation wants::

    y0 = d0*g0 + d1*g1 + d2*g2
    y1 = d1*g0 + d2*g1 + d3*g2            (6 multiplications)

Winograd computes four products instead::

    m0 = (d0 - d2) * g0
    m1 = (d1 + d2) * (g0 + g1 + g2) / 2
    m2 = (d2 - d1) * (g0 - g1 + g2) / 2
    m3 = (d1 - d3) * g2

    y0 = m0 + m1 + m2
    y1 = m1 - m2 - m3

Check y0 by hand: m1 + m2 = [(d1 + d2)(g0 + g2) + (d1 + d2) g1 + (d2 - d1)(g0 + g2)
- (d2 - d1) g1] / 2 = d2 (g0 + g2) + d1 g1, and adding m0 = d0 g0 - d2 g0 leaves
d0 g0 + d1 g1 + d2 g2. Likewise m1 - m2 = d1 (g0 + g2) + d2 g1, and subtracting
m3 = d1 g2 - d3 g2 leaves d1 g0 + d2 g1 + d3 g2 = y1.

The filter factors (``g0``, ``(g0+g1+g2)/2``, ...) depend on the filter alone,
so over many tiles they are computed once. In matrix form, with the matrices
below, ``y = A^T [(G g) ⊙ (B^T d)]`` (⊙: elementwise product).

The 2-D case, F(2x2, 3x3)
-------------------------
Nesting the 1-D algorithm in rows and columns: for a 4x4 input tile ``d`` and
a 3x3 filter ``g`` the 2x2 output tile is::

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A

16 multiplications instead of 36. Over the channels of a layer the elementwise
product becomes, for each of the 16 positions ξ of the 4x4 transformed tile,
a matrix product: ``M[ξ] = U[ξ] @ V[ξ]`` with ``U[ξ] (C_out x C_in)`` the
transformed filters and ``V[ξ] (C_in x tiles)`` the transformed input tiles
(Lavin and Gray, eq. 12). Neighbouring tiles overlap by 2 pixels (the filter
size minus one); an output of odd size has its last tile padded with zeros and
cropped.

The price is accuracy: the transforms add and subtract values of similar size
(and halve them), so in float32 the result is a little less accurate than a
direct correlation (Lavin and Gray, section 5; the tests state the tolerance).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BT", "G", "AT", "winograd_conv2d", "winograd_input_grad"]

#: Input transform B^T (4x4), Lavin and Gray 2016, eq. (7)/(8) for F(2x2, 3x3).
BT = np.array([[1, 0, -1, 0],
               [0, 1, 1, 0],
               [0, -1, 1, 0],
               [0, 1, 0, -1]], dtype=np.float64)

#: Filter transform G (4x3), same source.
G = np.array([[1.0, 0.0, 0.0],
              [0.5, 0.5, 0.5],
              [0.5, -0.5, 0.5],
              [0.0, 0.0, 1.0]], dtype=np.float64)

#: Output transform A^T (2x4), same source.
AT = np.array([[1, 1, 1, 0],
               [0, 1, -1, -1]], dtype=np.float64)


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def winograd_conv2d(x, w, padding=0, b=None):
    """``conv2d(x, w, b, stride=1, padding=padding)`` for 3x3 filters by F(2x2, 3x3).

    ``x`` (N, C_in, H, W), ``w`` (C_out, C_in, 3, 3); returns (N, C_out, H + 2P - 2, W + 2P - 2).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    n, c, h, wd = x.shape
    o, c_w, kh, kw = w.shape
    if (kh, kw) != (3, 3) or c_w != c:
        raise ValueError(f"needs 3x3 filters over all {c} input channels, got {w.shape}")
    ph, pw = _pair(padding)
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    if oh < 1 or ow < 1:
        raise ValueError("the filter does not fit in the padded input")
    th, tw = -(-oh // 2), -(-ow // 2)  # tiles of 2x2 outputs, the last ones padded
    # zero padding: P on the top and left, enough on the bottom and right for whole 4x4 patches
    padded = np.zeros((n, c, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    # d[n, c, ti, tj] is the 4x4 patch at rows 2ti..2ti+3, columns 2tj..2tj+3 (overlapping by 2)
    d = np.lib.stride_tricks.sliding_window_view(padded, (4, 4), axis=(2, 3))[:, :, ::2, ::2]
    u = np.einsum("ij,ocjk,lk->ocil", G, w, G)          # U = G g G^T, per (filter, channel)
    v = np.einsum("ij,nctsjk,lk->nctsil", BT, d, BT)     # V = B^T d B, per (image, channel, tile)
    m = np.einsum("ocil,nctsil->notsil", u, v)           # the elementwise product, summed over channels
    y = np.einsum("ai,notsil,bl->notsab", AT, m, AT)     # Y = A^T M A: a 2x2 output tile
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, o, 2 * th, 2 * tw)[:, :, :oh, :ow]
    if b is not None:
        y = y + np.asarray(b).reshape(1, o, 1, 1)
    return np.ascontiguousarray(y, dtype=np.result_type(x, w))


def winograd_input_grad(w, dy, padding, x_shape):
    """dX of ``y = conv2d(x, w, padding=padding)`` (3x3, stride 1) by F(2x2, 3x3): the same algorithm on
    dY zero-padded by 2 - P, with the filters rotated by 180 degrees and their channel axes swapped
    (dX[c, y, x] = sum_{o,p,q} W[o, c, p, q] dY[o, y + P - p, x + P - q])."""
    ph, pw = _pair(padding)
    if ph > 2 or pw > 2:
        raise ValueError("padding above 2 leaves dY padded by a negative amount")
    w_rot = np.asarray(w)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dx = winograd_conv2d(dy, w_rot, (2 - ph, 2 - pw))
    if dx.shape != tuple(x_shape):
        raise ValueError(f"dY {np.shape(dy)} does not come from an input of shape {tuple(x_shape)}")
    return dx
