"""Digit data for minicnn: loaders, the IDX format, and the path to network input.

Every loader returns ``(images, labels)``: images uint8 (N, 28, 28), white
digit on black (the MNIST convention); labels int64 (N,) in 0..9::

    from minicnn import data
    images, labels = data.load_dataset("mnist-5k")   # bundled, no internet needed
    x = data.to_network_input(images)               # float32 (N, 1, 32, 32) for LeNet-5
    for epoch in range(10):
        for xb, yb in data.batches(x, labels, 64, seed=epoch):
            ...

Data sets (:data:`DATASET_NAMES`):

* ``"mnist-5k"``: 5,000 real MNIST digits inside the package (4,000 / 1,000);
* ``"mnist"``: full MNIST, downloaded once into a cache folder (``root``,
  else ``$MINICNN_DATA/mnist``, else ``~/.cache/minicnn/mnist``);
* ``"fashion-mnist"``: from ``root`` or ``/usr/share/datasets/fashion-mnist``
  (``apt-get install dataset-fashion-mnist``);
* ``"plates"``: synthetic licence-plate digits, like the LPR lab of deck
  002_35ce60e4ae78ad9e.txt ("LABORATORIO");
* ``"folder:PATH"``: your own crops, ``PATH/<digit>/*.png``.
"""

import numpy as np

from .folder import load_folder, load_images
from .idx import parse_idx, read_idx, write_idx
from .mnist import (
    FASHION_MNIST_CLASSES,
    MNIST_FILES,
    MNIST_MD5,
    MNIST_MIRRORS,
    DownloadError,
    default_mnist_root,
    download_mnist,
    load_fashion_mnist,
    load_mnist,
    load_mnist_5k,
)
from .pipeline import MNIST_MEAN, MNIST_STD, augment, batches, to_network_input, white_on_black
from .plates import plate_digits

__all__ = [
    "DATASET_NAMES",
    "load_dataset",
    "read_idx",
    "parse_idx",
    "write_idx",
    "load_images",
    "load_folder",
    "to_network_input",
    "batches",
    "augment",
    "white_on_black",
    "download_mnist",
    "default_mnist_root",
    "load_mnist",
    "load_mnist_5k",
    "load_fashion_mnist",
    "plate_digits",
    "DownloadError",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "FASHION_MNIST_CLASSES",
]

DATASET_NAMES = ("mnist-5k", "mnist", "fashion-mnist", "plates", "folder:PATH")
_FOLDER_PREFIX = "folder:"


def _subset(images, labels, size, seed):
    """A reproducible random subset of ``size`` samples, kept in the original order."""
    if size is None:
        return images, labels
    if size > len(labels):
        raise ValueError(f"load_dataset: size = {size} is larger than the split's {len(labels)} samples")
    keep = np.sort(np.random.default_rng(seed).choice(len(labels), size=size, replace=False))
    return images[keep], labels[keep]


def load_dataset(name, split="train", *, root=None, size=None, seed=0, download=True):
    """Load one split of a data set by name -> (images uint8 (N, 28, 28), labels int64 (N,)).

    ``split``: "train" or "test". ``root``: the folder holding the files for
    "mnist" (cache, default ``$MINICNN_DATA/mnist`` or ``~/.cache/minicnn/mnist``)
    and "fashion-mnist" (default ``/usr/share/datasets/fashion-mnist``).
    ``size``: for "plates" the number of digits generated (default 6,000
    train / 1,000 test); for the other sets a random subset of that many
    samples, drawn with ``seed``. ``seed`` also fixes the plates and the
    folder train/test split. ``download``: fetch missing MNIST files.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a string, one of {DATASET_NAMES}, got {type(name).__name__}")
    if split not in ("train", "test"):
        raise ValueError(f"load_dataset: split must be 'train' or 'test', got {split!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise ValueError(f"load_dataset: size must be a positive integer or None, got {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load_dataset: seed must be a non-negative integer, got {seed!r}")

    if name == "plates":
        return plate_digits(size, split=split, seed=seed)
    if name == "mnist-5k":
        images, labels = load_mnist_5k(split)
    elif name == "mnist":
        images, labels = load_mnist(split, root=root, download=download)
    elif name == "fashion-mnist":
        images, labels = load_fashion_mnist(split, root=root)
    elif name.startswith(_FOLDER_PREFIX) and len(name) > len(_FOLDER_PREFIX):
        images, labels = load_folder(name[len(_FOLDER_PREFIX) :], split, seed=seed)
    else:
        raise ValueError(f"load_dataset: unknown data set {name!r}; choose one of {DATASET_NAMES}")
    return _subset(images, labels, size, seed)
