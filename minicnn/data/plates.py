"""Synthetic licence-plate digits: the stand-in for the slides' LPR lab data.

The lab of deck 002_35ce60e4ae78ad9e.txt ("LABORATORIO") trains a CNN on
"imágenes de dígitos (LPR) en niveles de gris con un tamaño 28×28 pixeles",
digits cropped from licence plates. That set is not public, so this module
makes plate-style crops itself:

1. every (font, digit) glyph is rendered once, large, from the DejaVu fonts
   that ship inside matplotlib (``matplotlib.ft2font``);
2. each sample warps one glyph into a 28x28 crop with a random affine map
   (scale, aspect, rotation, shear, shift), all samples in one vectorised
   ``scipy.ndimage.map_coordinates`` pass, sometimes with a slice of a
   neighbouring character at the side;
3. the crop gets a plate-like look: light plate with dark ink (or, less
   often, a dark plate with light ink), an illumination gradient, sometimes
   the plate's frame along the top or bottom, Gaussian blur and noise;
4. finally the crop goes through the same polarity rule as a user's own
   crops (:func:`minicnn.data.pipeline.white_on_black`), so the result is
   an MNIST-style white digit on black.

The same ``seed`` always gives the same images; "train" and "test" draw from
different seeds derived from it, so they never share samples.
"""

import functools
import os

import numpy as np
from scipy import ndimage

from .pipeline import warp_stack, white_on_black

__all__ = ["PLATE_FONTS", "PLATE_SIZES", "PLATE_BYTES_PER_IMAGE", "plate_digits"]

# Bold faces first: plate lettering is heavy. All ship in matplotlib's mpl-data/fonts/ttf.
PLATE_FONTS = (
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSans.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
)
PLATE_SIZES = {"train": 6000, "test": 1000}
_SPLIT_KEYS = {"train": 0, "test": 1}
_GLYPH_PIXELS = 64  # em size of the master glyphs, in pixels
_CANVAS = 72  # master glyphs sit centred on a square canvas this big
_OUT = 28
# Peak memory while generating, per image (float64 crops, ink, frame and warp coordinates; measured ~49 kB).
PLATE_BYTES_PER_IMAGE = 50_000
# Used where the free memory cannot be read (no /proc/meminfo, no sysconf): 1 million digits, ~50 GB.
_FALLBACK_MAX_SIZE = 1_000_000


def _available_memory():
    """Bytes of memory available to a new allocation (Linux MemAvailable, else free pages), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(size):
    """Refuse a ``size`` whose generation would not fit in memory, before allocating anything."""
    available = _available_memory()
    limit = _FALLBACK_MAX_SIZE if available is None else available // PLATE_BYTES_PER_IMAGE
    if size <= limit:
        return
    need = size * PLATE_BYTES_PER_IMAGE
    where = (
        f"more than the {available / 1e9:.1f} GB of memory available here"
        if available is not None
        else f"more than this machine's free memory can be checked for (the cap is then {_FALLBACK_MAX_SIZE:,})"
    )
    raise ValueError(
        f"plates: size = {size:,} digits would need about {need / 1e9:,.1f} GB while they are generated "
        f"(about {PLATE_BYTES_PER_IMAGE // 1000} kB each), {where}; ask for at most {limit:,}"
    )


def _font_path(file_name):
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf", file_name)


@functools.lru_cache(maxsize=1)
def _master_glyphs():
    """Render digits 0-9 in every plate font once: (len(PLATE_FONTS) * 10, _CANVAS, _CANVAS) float32 in [0, 1].

    Also returns the ink height and width of each glyph (its tight bounding box), in pixels.
    """
    from matplotlib.ft2font import FT2Font

    glyphs = np.zeros((len(PLATE_FONTS) * 10, _CANVAS, _CANVAS), dtype=np.float32)
    extents = np.zeros((len(PLATE_FONTS) * 10, 2), dtype=np.float64)
    for f, file_name in enumerate(PLATE_FONTS):
        font = FT2Font(_font_path(file_name))
        font.set_size(_GLYPH_PIXELS, 72)  # points at 72 dpi = pixels
        for digit in range(10):
            font.set_text(str(digit), 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
            rows = np.flatnonzero(bitmap.max(axis=1) > 0)
            cols = np.flatnonzero(bitmap.max(axis=0) > 0)
            ink = bitmap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            h, w = ink.shape
            top, left = (_CANVAS - h) // 2, (_CANVAS - w) // 2
            glyphs[f * 10 + digit, top : top + h, left : left + w] = ink
            extents[f * 10 + digit] = (h, w)
    return glyphs, extents


def _random_warps(rng, extents, count):
    """Affine maps from a master glyph to the 28x28 crop: returns (inverse (K,2,2), offsets (K,2), width (K,))."""
    height_frac = rng.uniform(0.62, 0.86, count)  # digit height / crop height
    scale = height_frac * _OUT / extents[:, 0]
    aspect = rng.uniform(0.8, 1.25, count)
    # Keep the digit itself inside the crop horizontally.
    aspect = np.minimum(aspect, 0.92 * _OUT / (extents[:, 1] * scale))
    angle = np.deg2rad(rng.uniform(-6.0, 6.0, count))
    shear = rng.uniform(-0.15, 0.15, count)
    shift = rng.uniform(-1.5, 1.5, (count, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
    shear_m = np.zeros((count, 2, 2))
    shear_m[:, 0, 0] = shear_m[:, 1, 1] = 1.0
    shear_m[:, 1, 0] = shear  # column shifts with row: a slanted, italic-like digit
    stretch = np.zeros((count, 2, 2))
    stretch[:, 0, 0] = scale
    stretch[:, 1, 1] = scale * aspect
    forward = rotation @ shear_m @ stretch  # glyph (row, col) about its centre -> crop about its centre
    inverse = np.linalg.inv(forward)
    glyph_centre = np.full(2, (_CANVAS - 1) / 2)
    crop_centre = np.full(2, (_OUT - 1) / 2) + shift
    offsets = glyph_centre - np.einsum("kij,kj->ki", inverse, crop_centre)
    width = extents[:, 1] * scale * aspect
    return inverse, offsets, width


def plate_digits(size=None, *, split="train", seed=0):
    """Generate ``size`` plate-style digits: (images uint8 (size, 28, 28), labels int64 (size,)).

    White digit on black (MNIST convention). Labels are balanced: each digit
    appears ``size // 10`` or ``size // 10 + 1`` times, in random order.
    ``size`` defaults to :data:`PLATE_SIZES` (6,000 train, 1,000 test). A
    ``size`` whose generation needs more memory than is available (about
    :data:`PLATE_BYTES_PER_IMAGE` bytes per digit) raises ``ValueError`` up front.
    """
    if split not in _SPLIT_KEYS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if size is None:
        size = PLATE_SIZES[split]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"plates: size must be a positive integer, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"plates: seed must be a non-negative integer, got {seed!r}")
    _check_memory(int(size))
    rng = np.random.default_rng([int(seed), _SPLIT_KEYS[split]])
    glyphs, extents = _master_glyphs()
    n_fonts = len(PLATE_FONTS)

    labels = rng.permutation(np.arange(size) % 10).astype(np.int64)
    fonts = rng.integers(0, n_fonts, size)
    which = fonts * 10 + labels
    inverse, offsets, width = _random_warps(rng, extents[which], size)
    ink = warp_stack(glyphs, which, inverse, offsets, (_OUT, _OUT))

    # A slice of the neighbouring character on the plate, left or right of the digit.
    has_neighbour = np.flatnonzero(rng.random(size) < 0.3)
    if has_neighbour.size:
        k = has_neighbour
        neighbour = fonts[k] * 10 + rng.integers(0, 10, k.size)
        side = rng.choice([-1.0, 1.0], k.size)
        gap = rng.uniform(2.0, 4.5, k.size)
        neighbour_width = extents[neighbour, 1] * width[k] / extents[which[k], 1]
        step = side * (width[k] / 2 + gap + neighbour_width / 2)
        # Shifting the neighbour by `step` crop columns moves its sampling point by inverse @ (0, -step).
        neighbour_offsets = offsets[k] - inverse[k, :, 1] * step[:, None]
        ink[k] = np.maximum(ink[k], warp_stack(glyphs, neighbour, inverse[k], neighbour_offsets, (_OUT, _OUT)))

    # Plate look: paint, ink, light gradient, frame, blur, noise (values in [0, 1]).
    dark_plate = rng.random(size) < 0.2
    paint = np.where(dark_plate, rng.uniform(0.05, 0.3, size), rng.uniform(0.6, 0.95, size))
    ink_level = np.where(dark_plate, rng.uniform(0.7, 1.0, size), rng.uniform(0.02, 0.3, size))
    ramp = np.linspace(-0.5, 0.5, _OUT)
    gradient = rng.uniform(-0.15, 0.15, (size, 2))
    background = (
        paint[:, None, None] + gradient[:, 0, None, None] * ramp[:, None] + gradient[:, 1, None, None] * ramp[None, :]
    )
    frame = np.zeros((size, _OUT, _OUT), dtype=np.float32)
    framed = np.flatnonzero(rng.random(size) < 0.3)
    thickness = rng.integers(1, 4, framed.size)
    at_top = rng.random(framed.size) < 0.5
    for i, t, top in zip(framed, thickness, at_top):
        if top:
            frame[i, :t] = 1.0
        else:
            frame[i, _OUT - t :] = 1.0
    alpha = np.maximum(ink, frame)
    crops = background * (1.0 - alpha) + ink_level[:, None, None] * alpha
    sigmas = rng.uniform(0.0, 1.0, size)
    for i in range(size):
        crops[i] = ndimage.gaussian_filter(crops[i], sigmas[i])
    crops += rng.normal(0.0, 1.0, crops.shape) * rng.uniform(0.01, 0.06, size)[:, None, None]
    images = white_on_black(np.clip(crops, 0.0, 1.0))
    return images, labels
