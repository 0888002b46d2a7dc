"""A user's own digit crops: ``ROOT/<digit>/*.png`` (e.g. digits cut from photos of plates).

Any size, colour or grey. Each image becomes a 28x28 uint8 MNIST-style crop:

1. read with Pillow (a dependency of matplotlib); transparent pixels are
   composited over white, then the image is converted to grey (ITU-R 601
   luma, Pillow's "L" mode);
2. resized to 28x28 with Pillow's bilinear (triangle) filter, which widens
   when shrinking, so it averages without aliasing or ringing; the crop is
   stretched to the square, like the 28x28 LPR crops of deck
   002_35ce60e4ae78ad9e.txt ("LABORATORIO");
3. put in the MNIST polarity, white digit on black: a bright background
   (dark ink on a light plate or paper) is inverted, then the background is
   mapped to 0 and the brightest stroke to 255
   (:func:`minicnn.data.pipeline.white_on_black`).

:func:`load_folder` splits every class 80/20 into train/test, the same way
for the same ``seed``.
"""

import os
from pathlib import Path

import numpy as np

from .pipeline import white_on_black

__all__ = ["IMAGE_SUFFIXES", "TEST_FRACTION", "load_images", "load_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
TEST_FRACTION = 0.2
_SIDE = 28


def load_images(path):
    """One image file -> uint8 (28, 28), white digit on black (the folder preprocessing above)."""
    from PIL import Image

    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            grey = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    except FileNotFoundError:
        raise
    except OSError as exc:  # Pillow's UnidentifiedImageError is an OSError
        raise ValueError(f"load_images: {path} is not a readable image ({exc})") from exc
    return white_on_black(np.asarray(grey, dtype=np.float64) / 255.0)


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


def load_folder(root, split="train", *, seed=0):
    """Images ``root/<digit>/*.png`` -> (uint8 (N, 28, 28), int64 (N,)), one split.

    Within each digit folder the files (sorted by name) are shuffled with
    ``seed`` and the last ``round(0.2 * n)`` go to "test" (none when a class
    has a single image), the rest to "train"; the two splits never overlap.
    Digits without a folder are simply absent.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chosen, labels = [], []
    for digit, files in _class_files(root).items():
        order = np.random.default_rng([int(seed), digit]).permutation(len(files))
        n_test = int(round(TEST_FRACTION * len(files))) if len(files) > 1 else 0
        picked = order[len(files) - n_test :] if split == "test" else order[: len(files) - n_test]
        chosen += [files[i] for i in sorted(picked)]
        labels += [digit] * len(picked)
    images = np.zeros((len(chosen), _SIDE, _SIDE), dtype=np.uint8)
    for i, path in enumerate(chosen):
        images[i] = load_images(path)
    return images, np.asarray(labels, dtype=np.int64)
