"""Winograd's minimal filtering, F(2x2, 3x3) and F(4x4, 3x3), and F(3x3, 2x2) on the four phases of a
stride-2 layer (the end of this module): the textbook version in NumPy.

Reference: A. Lavin and S. Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016 (arXiv:1509.09308), sections 4.1 and 4.2. The cython
backend's ``winograd`` path (kernels/cpu/winograd.pyx) computes F(2x2, 3x3)
with BLAS; this module is the readable version the tests check it against.
(Beyond the decks: the slides compute a correlation as the double sum of deck
003, "Correlación cruzada"; this is a faster way to get the same numbers.)

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

Where the matrices come from: the correlation is a product of polynomials
(Toom-Cook). ``G g`` evaluates the filter polynomial g0 + g1 t + g2 t^2 at the
points 0, 1, -1 and "infinity" (its leading coefficient), scaled; the products
are the output polynomial at those points, and ``A^T`` interpolates it back
(its columns are the powers of the points: (1, 0), (1, 1), (1, -1), and
(0, -1) for infinity). F(4, 3) does the same with six points, 0, 1, -1, 2, -2
and infinity (``POINTS``): 6 multiplications for 4 outputs instead of 12.

The 2-D case, F(m x m, 3x3)
---------------------------
Nesting the 1-D algorithm in rows and columns: for an (m + 2) x (m + 2) input
tile ``d`` and a 3x3 filter ``g`` the m x m output tile is::

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A

F(2x2, 3x3): 16 multiplications instead of 36; F(4x4, 3x3): 36 instead of
144 (``multiplications``). Over the channels of a layer the elementwise
product becomes, for each position ξ of the transformed tile, a matrix
product: ``M[ξ] = U[ξ] @ V[ξ]`` with ``U[ξ] (C_out x C_in)`` the transformed
filters and ``V[ξ] (C_in x tiles)`` the transformed input tiles (Lavin and
Gray, eq. 12). Neighbouring tiles overlap by 2 pixels (the filter size minus
one); an output whose size is not a multiple of m has its last tiles padded
with zeros and cropped.

The gradients
-------------
* dX is the same algorithm on dY padded by 2 - P, with the filters rotated by
  180 degrees and their channel axes swapped (deck 002, "Aprendizaje:
  Backpropagation", eq. 2).
* dW[o, c] = sum over images and tiles of the correlation of the input patch
  with the m x m tile of dY: a 3x3 output of an m x m "filter", F(3 x 3, m x m).
  Writing the tile's contribution to the loss, sum(dY ⊙ Y) =
  sum((A dY A^T) ⊙ (G g G^T) ⊙ (B^T d B)), and differentiating by g gives::

      dW = G^T [ sum over tiles (A dY A^T) ⊙ (B^T d B) ] G

  the same input transform, A in the place of G for dY, G^T in the place of
  A^T: 16 (36) products per tile again, each a matrix product over the tiles,
  ``M[ξ] = DY[ξ] @ V[ξ]^T`` (C_out x C_in).

Accuracy
--------
The transforms add and subtract values of similar size (and scale them), so
in float32 the result is less accurate than a direct correlation (Lavin and
Gray, section 5), and F(4x4) more so than F(2x2): its matrices hold entries up
to 8 and 1/24. ``error_bound`` is the worst-case bound of the computed result
(the algorithm run on absolute values, times the rounding of the longest chain
of operations); the tests check the compiled and the NumPy versions against
it. Measured on unit-normal data (float32 against float64, 16x16 maps, max
error over the largest output; AMD EPYC Zen 5, this module's NumPy version):

=====  ===========  ===========  ========
C_in   F(2x2,3x3)   F(4x4,3x3)   direct
=====  ===========  ===========  ========
1      1.1e-7       1.4e-6       8.6e-8
16     1.9e-7       1.9e-6       8.9e-8
64     3.8e-7       6.7e-6       1.4e-7
256    6.1e-7       8.5e-6       2.2e-7
=====  ===========  ===========  ========

(``test_winograd.py::test_the_measured_error_growth``, which prints the table.)
F(2x2) stays within the 1e-4 relative asked of a float32 path by more than two
orders of magnitude; F(4x4) is 10-17 times less accurate than F(2x2), still
within it. The compiled path (kernels/cpu/winograd.pyx) is F(2x2, 3x3) for
that reason: on the deep 256-channel layer its error is below the direct
kernel's (test_winograd.py).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BT", "G", "AT", "BT4", "G4", "AT4", "MATRICES", "POINTS", "multiplications",
           "winograd_conv2d", "winograd_input_grad", "winograd_weight_grad", "error_bound",
           "PHASE_TAPS", "phase_tiles", "phase_multiplications", "phase_conv2d", "phase_input_grad",
           "phase_weight_grad"]

#: Input transform B^T (4x4), Lavin and Gray 2016, section 4.1, for F(2x2, 3x3).
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

#: Input transform B^T (6x6), Lavin and Gray 2016, section 4.2, for F(4x4, 3x3).
BT4 = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)

#: Filter transform G (6x3), same source.
G4 = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)

#: Output transform A^T (4x6), same source.
AT4 = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)

#: Output tile size m -> (A^T, G, B^T) of F(m x m, 3x3).
MATRICES = {2: (AT, G, BT), 4: (AT4, G4, BT4)}

#: Output tile size m -> the polynomial points of the matrices, in the order of their rows of G.
POINTS = {2: (0, 1, -1, np.inf), 4: (0, 1, -1, 2, -2, np.inf)}


def _pair(value):
    return (value, value) if np.isscalar(value) else tuple(value)


def _matrices(m):
    if m not in MATRICES:
        raise ValueError(f"tile size m must be one of {sorted(MATRICES)} (F(m x m, 3x3)), got {m!r}")
    return MATRICES[m]


def multiplications(m, r=3):
    """(Winograd, direct) multiplications per m x m output tile of an r x r filter and one channel pair:
    the elementwise product has as many entries as the transformed tile, B^T's size squared
    (16 and 36 for m = 2 and 4), against m*m*r*r for the double sum (36 and 144)."""
    if r != 3:
        raise ValueError(f"the matrices here are for 3x3 filters, got r = {r}")
    alpha = _matrices(m)[2].shape[0]
    return alpha * alpha, m * m * r * r


def _tiles(x, padding, m):
    """The overlapping (m + 2) x (m + 2) patches of x zero-padded by P (and at the far edges to whole
    tiles): (patches (N, C, tiles_h, tiles_w, m+2, m+2), output height, output width)."""
    n, c, h, wd = x.shape
    ph, pw = _pair(padding)
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    if oh < 1 or ow < 1:
        raise ValueError("the filter does not fit in the padded input")
    th, tw = -(-oh // m), -(-ow // m)  # tiles of m x m outputs, the last ones padded
    padded = np.zeros((n, c, m * th + 2, m * tw + 2), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + wd] = x
    # d[n, c, ti, tj] is the patch at rows m*ti..m*ti+m+1, columns m*tj..m*tj+m+1
    d = np.lib.stride_tricks.sliding_window_view(padded, (m + 2, m + 2), axis=(2, 3))[:, :, ::m, ::m]
    return d, oh, ow


def winograd_conv2d(x, w, padding=0, b=None, m=2):
    """``conv2d(x, w, b, stride=1, padding=padding)`` for 3x3 filters by F(m x m, 3x3), m = 2 or 4.

    ``x`` (N, C_in, H, W), ``w`` (C_out, C_in, 3, 3); returns (N, C_out, H + 2P - 2, W + 2P - 2).
    """
    return _correlate(np.asarray(x), np.asarray(w), padding, b, m, *_matrices(m))


def _correlate(x, w, padding, b, m, at, g_mat, bt):
    dtype = np.result_type(x, w)
    at, g_mat, bt = (mat.astype(dtype) for mat in (at, g_mat, bt))  # float32 data: float32 transforms
    n, c = x.shape[:2]
    o, c_w, kh, kw = w.shape
    if (kh, kw) != (3, 3) or c_w != c:
        raise ValueError(f"needs 3x3 filters over all {c} input channels, got {w.shape}")
    d, oh, ow = _tiles(x, padding, m)
    th, tw = d.shape[2:4]
    u = np.einsum("ij,ocjk,lk->ocil", g_mat, w, g_mat)   # U = G g G^T, per (filter, channel)
    v = np.einsum("ij,nctsjk,lk->nctsil", bt, d, bt)     # V = B^T d B, per (image, channel, tile)
    prod = np.einsum("ocil,nctsil->notsil", u, v)        # the elementwise product, summed over channels
    y = np.einsum("ai,notsil,bl->notsab", at, prod, at)  # Y = A^T M A: an m x m output tile
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, o, m * th, m * tw)[:, :, :oh, :ow]
    if b is not None:
        y = y + np.asarray(b).reshape(1, o, 1, 1)
    return np.ascontiguousarray(y, dtype=dtype)


def winograd_input_grad(w, dy, padding, x_shape, m=2):
    """dX of ``y = conv2d(x, w, padding=padding)`` (3x3, stride 1) by F(m x m, 3x3): the same algorithm on
    dY zero-padded by 2 - P, with the filters rotated by 180 degrees and their channel axes swapped
    (dX[c, y, x] = sum_{o,p,q} W[o, c, p, q] dY[o, y + P - p, x + P - q])."""
    ph, pw = _pair(padding)
    if ph > 2 or pw > 2:
        raise ValueError("padding above 2 leaves dY padded by a negative amount")
    w_rot = np.asarray(w)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    dx = winograd_conv2d(dy, w_rot, (2 - ph, 2 - pw), m=m)
    if dx.shape != tuple(x_shape):
        raise ValueError(f"dY {np.shape(dy)} does not come from an input of shape {tuple(x_shape)}")
    return dx


def winograd_weight_grad(x, dy, padding=0, m=2):
    """(dW, db) of ``y = conv2d(x, w, b, padding=padding)`` (3x3, stride 1) by F(3x3, m x m):
    ``dW = G^T [sum over images and tiles (A dY A^T) ⊙ (B^T d B)] G`` and ``db[o] = sum dY[:, o]``."""
    x, dy = np.asarray(x), np.asarray(dy)
    dtype = np.result_type(x, dy)
    at, g_mat, bt = (mat.astype(dtype) for mat in _matrices(m))
    d, oh, ow = _tiles(x, padding, m)
    n, o = dy.shape[:2]
    if dy.shape != (n, o, oh, ow) or n != x.shape[0]:
        raise ValueError(f"dY {dy.shape} does not come from x {x.shape} with padding {padding} "
                         f"(it would be (N, C_out, {oh}, {ow}))")
    th, tw = d.shape[2:4]
    tiles = np.zeros((n, o, m * th, m * tw), dtype=dy.dtype)
    tiles[:, :, :oh, :ow] = dy  # the last tiles padded with zeros, as in the forward pass
    e = tiles.reshape(n, o, th, m, tw, m).transpose(0, 1, 2, 4, 3, 5)  # e[n, o, ti, tj] = m x m tile of dY
    v = np.einsum("ij,nctsjk,lk->nctsil", bt, d, bt)       # V = B^T d B (the forward's input transform)
    dyt = np.einsum("ia,notsab,jb->notsij", at.T, e, at.T)  # A dY A^T, per (image, filter, tile)
    prod = np.einsum("notsil,nctsil->ocil", dyt, v)        # summed over images and tiles
    dw = np.einsum("ji,ocjk,kl->ocil", g_mat, prod, g_mat)  # G^T M G: the 3x3 gradient
    return np.ascontiguousarray(dw, dtype=dtype), dy.sum(axis=(0, 2, 3)).astype(dtype)


def error_bound(x, w, padding=0, m=2, dtype=np.float32):
    """An upper bound of |Winograd in ``dtype`` - exact correlation| for every output of
    ``winograd_conv2d(x, w, padding, m=m)``, inputs already representable in ``dtype``.

    The algorithm run on absolute values (|A^T| [(|G| |g| |G|^T) ⊙ (|B^T| |d| |B|)] |A|) times
    gamma_k = k u / (1 - k u), u the unit roundoff and k the longest chain of roundings one output
    goes through: the two-sided filter and input transforms, the sum over C_in channels, the output
    transform, and the constants of G, which are not exact in binary (Higham, "Accuracy and
    Stability of Numerical Algorithms", 2002, section 3.1: a sum of k products in any order is off
    by at most gamma_k times the sum of their absolute values). A worst case, so it holds for
    any summation order a BLAS or a thread count picks; real errors are 10-100 times smaller.
    """
    at, g_mat, bt = _matrices(m)
    x, w = np.abs(np.asarray(x, dtype=np.float64)), np.abs(np.asarray(w, dtype=np.float64))

    def chain(mat):  # roundings of a two-sided transform by ``mat``: per side, the additions of a row and a scaling
        return 2 * int(np.count_nonzero(mat, axis=1).max())

    k = chain(g_mat) + chain(bt) + chain(at) + x.shape[1] + 1
    u = np.finfo(dtype).eps / 2
    gamma = k * u / (1 - k * u)
    return gamma * _correlate(x, w, padding, None, m, np.abs(at), np.abs(g_mat), np.abs(bt))


# ----------------------------------------------------------------------------------------------------
# The four stride-2 phases of a 4x4, stride-2, padding-1 layer: F(3x3, 2x2)
#
# Deck 000_5f24bd8423292174.txt, "Convolución transpuesta (1)": a transposed convolution k4 s2 p1 (the
# input gradient of this layer) spreads each input pixel over a 4x4 patch of the output, 2 pixels apart.
# Along one axis, output pixel y = 2s - p (phase p = 0 for even y, 1 for odd) receives exactly two taps:
#
#     dX[2s]     = W[3] dY[s - 1] + W[1] dY[s]        (phase 0)
#     dX[2s - 1] = W[2] dY[s - 1] + W[0] dY[s]        (phase 1)
#
# so every phase is a 2-tap correlation of the *same* window (dY[s - 1], dY[s]): the tap of phase p and
# window offset a is PHASE_TAPS[p][a] = 3 - p - 2a. In 2-D the four phases are 2x2 correlations of dY, and
# three positions s of a phase are F(3, 2), the weight gradient's algorithm above with the roles renamed:
# ``z = G^T [(A f) ⊙ (B^T d)]`` for a 4-pixel window d and a 2-tap filter f (A = AT.T). The input
# transform B^T d B of a 4x4 window of dY serves all four phases: per tile of 3x3 positions and channel
# pair, 4 x 16 products give 36 pixels of dX, against 4 x 36 multiply-adds.
#
# The forward pass Y = conv2d(X) is the adjoint (the transpose of each step, in reverse order): gather
# each phase's 3x3 pixels of X, E = G e G^T, the products U[ξ]^T E[ξ] summed over phases and channels,
# then B Ŷ B^T, whose 4x4 windows overlap their neighbours by one row and column and are added up. The
# weight gradient pairs the two transforms: dU = sum over tiles E ⊙ V, and df = A^T dU A for each phase.

#: PHASE_TAPS[p][a]: the filter row (or column) that phase p reads at window offset a.
PHASE_TAPS = np.array([[3, 1], [2, 0]])


def phase_tiles(size):
    """Tiles of 3 phase positions along an axis of X of ``size`` pixels: s runs over 0 .. size // 2."""
    return -(-(size // 2 + 1) // 3)


def phase_multiplications():
    """(Winograd, direct) multiplications per tile of 3x3 phase positions (36 pixels of dX) and channel pair:
    the four phases' elementwise products, B^T's size squared each (64), against the 4 taps of each pixel
    (144), counted from the matrices and PHASE_TAPS."""
    positions = G.T.shape[0] ** 2  # the 3x3 outputs of G^T M G per phase
    taps = PHASE_TAPS.shape[1] ** 2  # the 2x2 filter of a phase
    return 4 * BT.shape[0] ** 2, 4 * positions * taps


def _phase_filters(w):
    """U[p, q, c, o] = A f A^T of the 2x2 filters f[a, b] = w[o, c, PHASE_TAPS[p][a], PHASE_TAPS[q][b]]."""
    f = np.asarray(w)[:, :, PHASE_TAPS][:, :, :, :, PHASE_TAPS]  # (O, C, p, a, q, b)
    a_mat = AT.T.astype(f.dtype)
    return np.einsum("ia,pqcoab,jb->pqcoij", a_mat, f.transpose(2, 4, 1, 0, 3, 5), a_mat)


def _dy_windows(dy, tiles_high, tiles_wide):
    """V = B^T d B of the 4x4 windows of dY at rows 3ti - 1 .., columns 3tj - 1 .. (zero outside)."""
    n, o, oh, ow = dy.shape
    padded = np.zeros((n, o, 3 * tiles_high + 1, 3 * tiles_wide + 1), dtype=dy.dtype)
    padded[:, :, 1:1 + oh, 1:1 + ow] = dy
    d = np.lib.stride_tricks.sliding_window_view(padded, (4, 4), axis=(2, 3))[:, :, ::3, ::3]
    bt = BT.astype(dy.dtype)
    return np.einsum("ij,notsjk,lk->notsil", bt, d, bt)


def _x_phases(x, tiles_high, tiles_wide):
    """E = G e G^T of each phase's 3x3 tiles e of X: e[p, q][s, s'] = X[2s - p, 2s' - q] (zero outside)."""
    n, c, h, w = x.shape
    e = np.zeros((n, 2, 2, c, 3 * tiles_high, 3 * tiles_wide), dtype=x.dtype)
    for p in range(2):
        for q in range(2):
            phase = x[:, :, p::2, q::2]  # pixels 2s - p: s from p on
            e[:, p, q, :, p:p + phase.shape[2], q:q + phase.shape[3]] = phase
    e = e.reshape(n, 2, 2, c, tiles_high, 3, tiles_wide, 3).transpose(0, 1, 2, 3, 4, 6, 5, 7)
    g_mat = G.astype(x.dtype)
    return np.einsum("ia,npqctsab,jb->npqctsij", g_mat, e, g_mat)


def _check_phase_layer(x_shape, w_shape, dy_shape=None):
    n, c, h, w = x_shape
    if len(w_shape) != 4 or tuple(w_shape[1:]) != (c, 4, 4):
        raise ValueError(f"needs filters (C_out, {c}, 4, 4) for an input {tuple(x_shape)}, got {tuple(w_shape)}")
    if h < 2 or w < 2:
        raise ValueError(f"needs an input of 2x2 pixels at least (H, W), got {(h, w)}")
    want = (n, w_shape[0], h // 2, w // 2)
    if dy_shape is not None and tuple(dy_shape) != want:
        raise ValueError(f"dY must have the output's shape (N, C_out, H // 2, W // 2) = {want}, got {tuple(dy_shape)}")
    return phase_tiles(h), phase_tiles(w)


def phase_input_grad(w, dy, x_shape):
    """dX of ``y = conv2d(x, w, stride=2, padding=1)`` for 4x4 filters (a transposed convolution k4 s2 p1 of dY)
    by F(3x3, 2x2) on the four phases: ``z = G^T [U ⊙ V] G``, V of dY's windows shared by the phases."""
    dy = np.asarray(dy)
    n, c, h, wd = x_shape
    th, tw = _check_phase_layer(x_shape, np.shape(w), dy.shape)
    prod = np.einsum("pqcoij,notsij->npqctsij", _phase_filters(w), _dy_windows(dy, th, tw))
    gt = G.T.astype(prod.dtype)
    z = np.einsum("ai,npqctsij,bj->npqctsab", gt, prod, gt)
    z = z.transpose(0, 1, 2, 3, 4, 6, 5, 7).reshape(n, 2, 2, c, 3 * th, 3 * tw)
    dx = np.empty(x_shape, dtype=prod.dtype)
    for p in range(2):
        for q in range(2):
            rows, cols = dx[:, :, p::2, q::2].shape[2:]
            dx[:, :, p::2, q::2] = z[:, p, q, :, p:p + rows, q:q + cols]
    return dx


def phase_conv2d(x, w, b=None):
    """``conv2d(x, w, b, stride=2, padding=1)`` for 4x4 filters: the adjoint of ``phase_input_grad``, step by step."""
    x = np.asarray(x)
    n, c, h, wd = x.shape
    th, tw = _check_phase_layer(x.shape, np.shape(w))
    prod = np.einsum("pqcoij,npqctsij->notsij", _phase_filters(w), _x_phases(x, th, tw))
    bt = BT.astype(prod.dtype)
    windows = np.einsum("ia,notsij,jb->notsab", bt, prod, bt)  # B Ŷ B^T: 4x4 windows of Y, one row/column shared
    y = np.zeros((n, prod.shape[1], 3 * th + 1, 3 * tw + 1), dtype=prod.dtype)
    for ti in range(th):
        for tj in range(tw):
            y[:, :, 3 * ti:3 * ti + 4, 3 * tj:3 * tj + 4] += windows[:, :, ti, tj]
    y = y[:, :, 1:1 + h // 2, 1:1 + wd // 2]
    return y if b is None else y + np.asarray(b).reshape(1, -1, 1, 1)


def phase_weight_grad(x, dy):
    """dW of ``y = conv2d(x, w, stride=2, padding=1)`` for 4x4 filters: ``df = A^T [sum over tiles E ⊙ V] A`` per
    phase, E of X's phase tiles and V of dY's windows (the two transforms above)."""
    x, dy = np.asarray(x), np.asarray(dy)
    th, tw = _check_phase_layer(x.shape, (dy.shape[1], x.shape[1], 4, 4), dy.shape)
    du = np.einsum("npqctsij,notsij->pqcoij", _x_phases(x, th, tw), _dy_windows(dy, th, tw))
    at = AT.astype(du.dtype)
    df = np.einsum("ai,pqcoij,bj->pqcoab", at, du, at)
    dw = np.empty((dy.shape[1], x.shape[1], 4, 4), dtype=du.dtype)
    for p in range(2):
        for q in range(2):
            dw[:, :, PHASE_TAPS[p][:, None], PHASE_TAPS[q][None, :]] = df[p, q].transpose(1, 0, 2, 3)
    return dw
