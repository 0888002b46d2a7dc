"""A user's own digit crops: ``ROOT/<digit>/*.png`` (e.g. digits cut from photos of plates).

Any size, colour or grey. Each image becomes a 28x28 uint8 MNIST-style crop:

1. read with Pillow (a dependency of matplotlib); transparent pixels are
   composited over white, then the image is converted to grey (ITU-R 601
   luma, Pillow's "L" mode). Images deeper than 8 bits (16-bit PNG, 32-bit
   integer or float TIFF: Pillow's "I;16", "I" and "F" modes) are scaled
   to [0, 1] by their range instead (:func:`unit_range`), so a 16-bit copy
   of a digit loads like the 8-bit one;
2. resized to 28x28 with Pillow's bilinear (triangle) filter, in floating
   point (no rounding to 8 bits before step 3), which widens
   when shrinking, so it averages without aliasing or ringing; the crop is
   stretched to the square, like the 28x28 LPR crops of deck
   002_35ce60e4ae78ad9e.txt ("LABORATORIO");
3. put in the MNIST polarity, white digit on black: a bright background
   (dark ink on a light plate or paper) is inverted, then the background is
   mapped to 0 and the brightest stroke to 255
   (:func:`minicnn.data.pipeline.white_on_black`).

:func:`load_folder` splits every class 80/20 into train/test, the same way
for the same ``seed``.

Images over :data:`MAX_IMAGE_PIXELS` are refused before they are decoded (a
digit crop is small; a huge file is a mistake or a decompression bomb).
"""

import os
import warnings
from pathlib import Path

import numpy as np

from .pipeline import white_on_black

__all__ = ["IMAGE_SUFFIXES", "TEST_FRACTION", "MAX_IMAGE_PIXELS", "load_images", "load_folder", "unit_range"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
TEST_FRACTION = 0.2
# 50 megapixels: more than a phone photo of a whole plate; a 14000 x 14000 scan (196 Mpx) is refused.
MAX_IMAGE_PIXELS = 50_000_000
_SIDE = 28
# Pillow modes with more than 8 bits per grey pixel; converting them to "L" clips at 255 (a black crop).
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def unit_range(values, mode, source="image"):
    """Grey values of a Pillow image deeper than 8 bits -> float64 in [0, 1].

    * "I;16" (16-bit PNG/TIFF): divided by 65535, the mode's full range;
    * "I" (32-bit integers) and "F" (floats) carry no fixed range, so the
      values' own one decides: within [0, 1] (floats) they are kept, within
      [0, 255] divided by 255, within [0, 65535] by 65535 (8- or 16-bit data
      in a wider file), otherwise stretched from their minimum to maximum.

    So the 8-bit, 16-bit, 32-bit and float copies of one digit give the same
    grey image. NaN or infinite values raise ``ValueError`` naming ``source``.
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"load_images: {source} has NaN or infinite pixel values (mode {mode}); cannot read it as grey levels")
    if values.size == 0:
        return values
    if mode.startswith("I;16"):
        return values / 65535.0
    lo, hi = float(values.min()), float(values.max())
    if lo >= 0 and hi <= 1 and mode == "F":
        return values
    for full in (255.0, 65535.0):
        if lo >= 0 and hi <= full:
            return values / full
    if hi == lo:
        return np.zeros_like(values)  # a uniform image (outside both ranges): no digit to see
    return (values - lo) / (hi - lo)


def _check_pixels(path, size):
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"load_images: {path} is {width} x {height} = {width * height:,} pixels, more than the limit of "
            f"{MAX_IMAGE_PIXELS:,} (minicnn.data.folder.MAX_IMAGE_PIXELS) for a digit crop; crop or shrink it first"
        )


def load_images(path):
    """One image file -> uint8 (28, 28), white digit on black (the folder preprocessing above)."""
    from PIL import Image

    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 Mpx and raises above 179 Mpx; the limit here is lower and says so itself.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_pixels(path, image.size)
                image.load()
                if image.mode in _DEEP_MODES:
                    unit = unit_range(image, image.mode, path)
                else:
                    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                        rgba = image.convert("RGBA")
                        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
                    unit = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
                # Resized in floating point ("F" mode), so no depth is rounded to 8 bits before the contrast stretch.
                small = Image.fromarray(unit.astype(np.float32)).resize((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"load_images: {path} is too large for a digit crop ({exc}); the limit here is {MAX_IMAGE_PIXELS:,} "
            "pixels (minicnn.data.folder.MAX_IMAGE_PIXELS): crop or shrink it first"
        ) from None
    except (OSError, SyntaxError) as exc:  # Pillow's UnidentifiedImageError is an OSError; some decoders raise SyntaxError
        raise ValueError(f"load_images: {path} is not a readable image ({exc})") from exc
    return white_on_black(np.clip(np.asarray(small, dtype=np.float64), 0.0, 1.0))


def _class_files(root):
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"folder data set: {root} is not a folder; expected {root}/<digit>/*.png with digit folders 0..9"
        )
    files = {}
    for digit in range(10):
        folder = root / str(digit)
        if folder.is_dir():
            found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if found:
                files[digit] = found
    if not files:
        raise ValueError(
            f"folder data set: no images in {root}; expected sub-folders named 0..9 holding PNG "
            f"(or {', '.join(IMAGE_SUFFIXES[1:])}) files, e.g. {root}/7/crop001.png"
        )
    return files


def _test_count(n):
    """How many of a class's ``n`` images go to the test split: ``round(0.2 n)``, none for a single image."""
    return int(round(TEST_FRACTION * n)) if n > 1 else 0


def load_folder(root, split="train", *, seed=0):
    """Images ``root/<digit>/*.png`` -> (uint8 (N, 28, 28), int64 (N,)), one split.

    Within each digit folder the files (sorted by name) are shuffled with
    ``seed`` and the last ``round(0.2 * n)`` go to "test" (none when a class
    has a single image), the rest to "train"; the two splits never overlap.
    Digits without a folder are simply absent. A test split without any
    image (every class has fewer than 3) raises ``ValueError`` saying so.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chosen, labels = [], []
    class_files = _class_files(root)
    for digit, files in class_files.items():
        order = np.random.default_rng([int(seed), digit]).permutation(len(files))
        n_test = _test_count(len(files))
        picked = order[len(files) - n_test :] if split == "test" else order[: len(files) - n_test]
        chosen += [files[i] for i in sorted(picked)]
        labels += [digit] * len(picked)
    if not chosen:  # only the test split can be empty: a class of n images keeps n - round(0.2 n) >= 1 for training
        need = next(n for n in range(2, 100) if _test_count(n) >= 1)
        counts = ", ".join(f"{digit}: {len(files)}" for digit, files in class_files.items())
        raise ValueError(
            f"folder data set: {Path(root).expanduser()} has no test images: a class of n images gives "
            f"round({TEST_FRACTION} * n) of them to the test split (none when n = 1), so at least one digit folder "
            f"needs {need} or more images; images per class here: {counts}"
        )
    images = np.zeros((len(chosen), _SIDE, _SIDE), dtype=np.uint8)
    for i, path in enumerate(chosen):
        images[i] = load_images(path)
    return images, np.asarray(labels, dtype=np.int64)
