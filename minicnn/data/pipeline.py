"""From uint8 digit images to network input: polarity, augmentation, padding, normalisation, batches.

The conventions follow MNIST and LeNet-5 (deck 002_35ce60e4ae78ad9e.txt,
"Arquitectura de la Red": "La entrada consiste en una matriz de un solo
plano de 32x32 pixels"): images are 28x28 grey, **white digit on a black
background**; the network sees them zero-padded to 32x32, as LeCun padded
the 28x28 MNIST digits so that strokes reach the centre of the 5x5
receptive fields at the border, then shifted and scaled to roughly zero mean
and unit variance.
"""

import numbers

import numpy as np
from scipy import ndimage

__all__ = ["MNIST_MEAN", "MNIST_STD", "white_on_black", "to_network_input", "batches", "augment", "warp_stack"]

# Mean and standard deviation of the MNIST training pixels scaled to [0, 1] (28x28, all 60,000 images).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

_WARP_CHUNK = 2048  # images resampled per map_coordinates call, to bound the coordinate arrays' memory


def white_on_black(grey):
    """Bring grey crops to the MNIST convention: white digit on black, background 0, strokes up to 255.

    ``grey``: float array (H, W) or (N, H, W) with values in [0, 1]. The
    background level of each image is the median of its outermost ring of
    pixels; a bright background (> 0.5, dark ink on a light plate or paper)
    inverts the image. Then the background maps to 0 and the brightest
    pixel to 255 (contrast stretch); anything darker than the background is
    clipped to 0. A uniform image becomes all zeros. Returns uint8.
    """
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim not in (2, 3):
        raise ValueError(f"white_on_black: grey must be (H, W) or (N, H, W), got shape {grey.shape}")
    stack = grey[None] if grey.ndim == 2 else grey
    ring = np.concatenate(
        [stack[:, 0, :], stack[:, -1, :], stack[:, 1:-1, 0], stack[:, 1:-1, -1]], axis=1
    )
    background = np.median(ring, axis=1)
    bright = background > 0.5
    stack = np.where(bright[:, None, None], 1.0 - stack, stack)
    background = np.where(bright, 1.0 - background, background)
    peak = stack.max(axis=(1, 2))
    span = peak - background
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 1e-6)
    out = np.clip((stack - background[:, None, None]) * scale[:, None, None], 0.0, 255.0)
    out = np.rint(out).astype(np.uint8)
    return out[0] if grey.ndim == 2 else out


def _as_image_stack(images, name, fn):
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"{fn}: {name} must be uint8 images (0..255, as loaded), got dtype {images.dtype}")
    return images


def to_network_input(images, *, pad_to=32, mean=MNIST_MEAN, std=MNIST_STD):
    """uint8 images -> float32 (N, 1, pad_to, pad_to): scale to [0, 1], zero-pad, normalise.

    ``images``: (H, W), (N, H, W) or (N, 1, H, W) uint8. Padding adds black
    (background) pixels evenly on both sides, 28 -> 32 being 2 on each side
    (LeNet-5's 32x32 input, deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de
    la Red"); ``pad_to=None`` keeps the size. Padding happens before
    normalising, so the border equals the background everywhere:
    ``x = (pixel / 255 - mean) / std``.
    """
    images = _as_image_stack(images, "images", "to_network_input")
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[:, None]
    elif images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(
            f"to_network_input: images must be (H, W), (N, H, W) or (N, 1, H, W), got shape {images.shape}"
        )
    if not std > 0:
        raise ValueError(f"to_network_input: std must be > 0, got {std}")
    x = images.astype(np.float32) / np.float32(255.0)
    if pad_to is not None:
        height, width = images.shape[2:]
        if pad_to < height or pad_to < width:
            raise ValueError(
                f"to_network_input: pad_to = {pad_to} is smaller than the images ({height}x{width}); "
                f"padding only grows an image"
            )
        top, left = (pad_to - height) // 2, (pad_to - width) // 2
        x = np.pad(x, ((0, 0), (0, 0), (top, pad_to - height - top), (left, pad_to - width - left)))
    return ((x - np.float32(mean)) / np.float32(std)).astype(np.float32)


def batches(x, y, batch_size, *, shuffle=True, seed=0, drop_last=False):
    """Iterate over ``(x[idx], y[idx])`` mini-batches that cover every sample once per pass.

    ``shuffle`` permutes the samples with ``np.random.default_rng(seed)``
    (``seed`` may also be a ``np.random.Generator``); pass a different seed
    each epoch (e.g. ``seed=epoch``) for a new order. The last batch is
    smaller when ``batch_size`` does not divide ``len(x)``, unless
    ``drop_last`` drops it.
    """
    n = len(x)
    if len(y) != n:
        raise ValueError(f"batches: x and y must have the same length, got len(x) = {n}, len(y) = {len(y)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive integer, got {batch_size!r}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


def augment(images, rng, *, max_shift=2, max_rotation=10.0):
    """Small random shifts and rotations of uint8 (N, H, W) images (data augmentation).

    Each image is rotated about its centre by an angle drawn uniformly from
    [-max_rotation, max_rotation] degrees and shifted by (dy, dx) drawn
    uniformly from [-max_shift, max_shift] pixels, with bilinear resampling
    and a black fill (white-on-black images). ``rng`` is a
    ``np.random.Generator``; the same generator state gives the same result.
    Returns a new uint8 array of the same shape.
    """
    images = _as_image_stack(images, "images", "augment")
    if images.ndim != 3:
        raise ValueError(f"augment: images must be (N, H, W), got shape {images.shape}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"augment: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if max_shift < 0 or max_rotation < 0:
        raise ValueError(f"augment: max_shift and max_rotation must be >= 0, got {max_shift} and {max_rotation}")
    n, height, width = images.shape
    angles = np.deg2rad(rng.uniform(-max_rotation, max_rotation, size=n))
    shifts = rng.uniform(-max_shift, max_shift, size=(n, 2))
    cos, sin = np.cos(angles), np.sin(angles)
    # Inverse map (output pixel -> input position): rotate by -angle about the centre, undo the shift.
    inverse = np.stack([np.stack([cos, -sin], axis=-1), np.stack([sin, cos], axis=-1)], axis=-2)
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    offsets = centre - np.einsum("nij,nj->ni", inverse, centre + shifts)
    warped = warp_stack(images.astype(np.float32), np.arange(n), inverse, offsets, (height, width))
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8)


def warp_stack(stack, which, inverse, offsets, output_shape):
    """Affine-resample many images in one vectorised pass (bilinear, zero outside).

    Output image ``k`` samples ``stack[which[k]]`` at ``inverse[k] @ (r, c) + offsets[k]``
    for every output pixel ``(r, c)``: the batched form of
    ``scipy.ndimage.affine_transform``, done with one ``map_coordinates`` call
    per chunk over the stack (the image index being an exact integer
    coordinate). ``inverse``: (K, 2, 2); ``offsets``: (K, 2). Returns float
    (K, *output_shape).
    """
    which = np.asarray(which)
    count = len(which)
    out = np.empty((count, *output_shape), dtype=np.float32)
    rows, cols = np.mgrid[0 : output_shape[0], 0 : output_shape[1]].astype(np.float64)
    for start in range(0, count, _WARP_CHUNK):
        sl = slice(start, min(start + _WARP_CHUNK, count))
        m = inverse[sl, :, :, None, None]
        src_r = m[:, 0, 0] * rows + m[:, 0, 1] * cols + offsets[sl, 0, None, None]
        src_c = m[:, 1, 0] * rows + m[:, 1, 1] * cols + offsets[sl, 1, None, None]
        index = np.broadcast_to(which[sl].astype(np.float64)[:, None, None], src_r.shape)
        out[sl] = ndimage.map_coordinates(stack, [index, src_r, src_c], order=1, mode="constant", cval=0.0)
    return out
