"""MNIST-format data sets: the bundled subset, full MNIST (downloaded), Fashion-MNIST.

All three use the same four IDX files (see :mod:`minicnn.data.idx`):

* ``"mnist-5k"``: 5,000 real MNIST digits shipped inside the package
  (4,000 train / 1,000 test, balanced), read with ``importlib.resources``;
* ``"mnist"``: the full 60,000 / 10,000 set, kept in a cache folder and
  downloaded on first use from public mirrors, checked against the MD5 sums
  that torchvision and others publish, after the download and again on every
  load (about 0.1 s for the 55 MB), so a damaged or substituted file in the
  cache is fetched afresh rather than used;
* ``"fashion-mnist"``: Zalando's 60,000 / 10,000 clothing images, as packaged
  by Debian (``apt-get install dataset-fashion-mnist``).

Images are white on black, uint8 (N, 28, 28); labels int64 (N,) in 0..9.
"""

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np

from ._tempfiles import remove_stale_temporaries, temporary_path
from .idx import read_idx

__all__ = [
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "FASHION_MNIST_DEFAULT_ROOT",
    "FASHION_MNIST_CLASSES",
    "DownloadError",
    "default_mnist_root",
    "download_mnist",
    "load_idx_pair",
    "load_mnist_5k",
    "load_mnist",
    "load_fashion_mnist",
]

# split -> (images file, labels file); the standard names of the MNIST distribution.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_BUNDLED_FOLDER = "mnist-5k"
_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum."""


def _check_split(split):
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def load_idx_pair(images_path, labels_path):
    """Read an images/labels IDX pair and check it is an MNIST-shaped classification set.

    Returns ``(images uint8 (N, 28, 28), labels int64 (N,))``.
    """
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels (one per image in {images_path}), "
            f"got shape {labels.shape}"
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{labels_path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}")
    return images, labels


def load_mnist_5k(split="train"):
    """The bundled MNIST subset: 4,000 train / 1,000 test images, 400 / 100 per class, ordered by class."""
    _check_split(split)
    folder = resources.files(__package__) / _BUNDLED_FOLDER
    images_name, labels_name = MNIST_FILES[split]
    with resources.as_file(folder / images_name) as images_path, resources.as_file(folder / labels_name) as labels_path:
        return load_idx_pair(images_path, labels_path)


def default_mnist_root():
    """The MNIST cache folder: ``$MINICNN_DATA/mnist`` if MINICNN_DATA is set, else ``~/.cache/minicnn/mnist``."""
    base = os.environ.get("MINICNN_DATA")
    base = Path(base).expanduser() if base else Path.home() / ".cache" / "minicnn"
    return base / "mnist"


def _md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url, destination, md5, timeout):
    """Download ``url`` to ``destination`` atomically: a temporary file beside it, checked, then renamed.

    On any failure (network, short response, wrong checksum, interruption)
    the temporary file is removed and ``destination`` is left untouched. The
    ``.part`` files of an earlier download that was killed (its process has
    ended) are removed first.
    """
    remove_stale_temporaries(destination, "part", legacy=True)
    temp_path = os.fspath(temporary_path(destination, "part"))
    try:
        digest = hashlib.md5()
        received = 0
        with open(temp_path, "xb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
        if announced is not None and received != int(announced):
            raise ValueError(f"short response: received {received} of {announced} bytes")
        if digest.hexdigest() != md5:
            raise ValueError(f"checksum mismatch: MD5 {digest.hexdigest()} of {received} bytes, expected {md5}")
        os.replace(temp_path, destination)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def _is_unreachable(error):
    """True for failures to reach a server (no route, refused, DNS, timeout), not for bad answers."""
    if isinstance(error, urllib.error.HTTPError):
        return False
    return isinstance(error, (urllib.error.URLError, ConnectionError, TimeoutError))


def _cache_problem(path, md5):
    """Why the cached file ``path`` cannot be used (missing, or not the file with MD5 ``md5``), or None if it can."""
    if not path.exists():
        return "missing"
    actual = _md5(path)
    if actual != md5:
        return f"MD5 {actual} of {path.stat().st_size:,} bytes, expected {md5}"
    return None


def download_mnist(root, *, mirrors=None, timeout=30, checksums=None):
    """Make sure the four MNIST files are in ``root``, each with its MD5; download the others. Returns ``root``.

    Each missing file is fetched from the first mirror that delivers it with
    the right MD5 (``checksums``, default :data:`MNIST_MD5`); a 404, a short
    response or a checksum mismatch moves on to the next mirror. Writes are
    atomic (temporary file in ``root``, then ``os.replace``), so neither a
    partial nor an unchecked file is ever left under the final name.
    Files already present are kept when their MD5 is right; a damaged or
    substituted one (e.g. the bundled 5k subset copied in) is downloaded again
    and replaced only by a file that passes the check.

    Raises :class:`DownloadError` when every mirror fails for a file; when no
    mirror could be reached at all, the message says where to put the files
    by hand.
    """
    mirrors = tuple(MNIST_MIRRORS if mirrors is None else mirrors)
    checksums = dict(MNIST_MD5 if checksums is None else checksums)
    if not mirrors:
        raise ValueError("download_mnist: mirrors is empty; give at least one base URL")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    file_names = [name for pair in MNIST_FILES.values() for name in pair]
    for name in file_names:
        destination = root / name
        if name not in checksums:
            raise ValueError(f"download_mnist: checksums has no MD5 for {name!r}")
        problem = _cache_problem(destination, checksums[name])
        if problem is None:
            continue
        # A cached file that fails the check stays until a good copy replaces it (os.replace in _fetch).
        replacing = "" if problem == "missing" else f"; the cached {name} was refused ({problem})"
        failures = []
        for base in mirrors:
            url = base if base.endswith("/") else base + "/"
            url += name
            try:
                _fetch(url, os.fspath(destination), checksums[name], timeout)
                break
            except (OSError, http.client.HTTPException, ValueError) as error:
                failures.append((url, error))
        else:
            tried = "; ".join(f"{url}: {error}" for url, error in failures)
            if all(_is_unreachable(error) for _, error in failures):
                if replacing:
                    raise DownloadError(
                        f"cannot download {name} into {root} to replace the cached file, which is not the original"
                        f"{replacing}: no mirror could be reached ({tried}); copy the original file there by hand, "
                        f"or train on the bundled subset with load_dataset('mnist-5k')"
                    )
                raise DownloadError(
                    f"cannot download MNIST: no mirror could be reached ({tried}). If this machine is offline, "
                    f"copy the files {', '.join(n for n in file_names if not (root / n).exists())} "
                    f"(from a machine with internet, e.g. "
                    f"{mirrors[0]}) into the folder {root} (or pass root=... / set MINICNN_DATA), "
                    f"or train on the bundled subset with load_dataset('mnist-5k')."
                )
            raise DownloadError(f"cannot download {name} into {root}: every mirror failed ({tried}){replacing}")
    return root


def load_mnist(split="train", *, root=None, download=True, mirrors=None, timeout=30, checksums=None):
    """Full MNIST (60,000 train / 10,000 test) from the cache folder ``root``.

    ``root`` defaults to :func:`default_mnist_root`. Both files of the split
    are checked against their MD5 (``checksums``, default :data:`MNIST_MD5`)
    on every load. Missing files, and files that fail the check, are
    downloaded when ``download`` is true; otherwise a ``FileNotFoundError``
    (missing) or ``ValueError`` (wrong MD5) says which files to put where.
    """
    _check_split(split)
    checksums = dict(MNIST_MD5 if checksums is None else checksums)
    root = Path(root).expanduser() if root is not None else default_mnist_root()
    images_name, labels_name = MNIST_FILES[split]
    missing = [name for name in (images_name, labels_name) if not (root / name).exists()]
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST {split} files missing in {root}: {', '.join(missing)}; put them there, or call with "
            f"download=True to fetch them from {', '.join(MNIST_MIRRORS)}"
        )
    bad = {}
    for name in (images_name, labels_name):
        if name not in missing:
            problem = _cache_problem(root / name, checksums[name])
            if problem is not None:
                bad[name] = problem
    if bad and not download:
        listed = "; ".join(f"{name}: {problem}" for name, problem in bad.items())
        raise ValueError(
            f"MNIST {split} files in {root} are not the original ones ({listed}): damaged, truncated or another "
            f"data set (the bundled mnist-5k?); delete them, or call with download=True to fetch the originals"
        )
    if missing or bad:
        download_mnist(root, mirrors=mirrors, timeout=timeout, checksums=checksums)
    try:
        return load_idx_pair(root / images_name, root / labels_name)
    except ValueError as exc:
        raise ValueError(f"{exc}; delete the damaged file from {root} and load again to download it afresh") from exc


def load_fashion_mnist(split="train", *, root=None):
    """Fashion-MNIST (60,000 train / 10,000 test) from ``root`` or Debian's package folder.

    Labels 0..9 name :data:`FASHION_MNIST_CLASSES`. The Debian/Ubuntu package
    ``dataset-fashion-mnist`` installs the files in
    :data:`FASHION_MNIST_DEFAULT_ROOT`.
    """
    _check_split(split)
    root = Path(root).expanduser() if root is not None else Path(FASHION_MNIST_DEFAULT_ROOT)
    images_name, labels_name = MNIST_FILES[split]
    missing = [name for name in (images_name, labels_name) if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST {split} files missing in {root}: {', '.join(missing)}. On Debian/Ubuntu run "
            f"`apt-get install dataset-fashion-mnist` (installs them in {FASHION_MNIST_DEFAULT_ROOT}), or put the "
            f"four IDX files from https://github.com/zalandoresearch/fashion-mnist in a folder and pass root=FOLDER"
        )
    return load_idx_pair(root / images_name, root / labels_name)
