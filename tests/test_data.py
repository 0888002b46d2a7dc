"""Tests for minicnn.data: IDX files, the data sets, the downloader, and the path to network input."""

import gzip
import hashlib
import os
import re
import struct
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from minicnn import data
from minicnn.data import mnist as mnist_module
from data_helpers import LocalMirror, md5_of, small_mnist_files, unreachable_url

FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
# sha256 of the files of Debian's dataset-fashion-mnist package (recompressed, so not Zalando's sums).
FASHION_DEBIAN_SHA256 = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}


def sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------- IDX files

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", IDX_DTYPES)
@pytest.mark.parametrize("file_name", ["array.idx", "array.idx.gz"])
def test_idx_round_trip_raw_and_gzip(tmp_path, dtype, file_name):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 5, 7)) * 100).astype(dtype)
    path = data.write_idx(tmp_path / file_name, array)
    assert (Path(path).read_bytes()[:2] == b"\x1f\x8b") == file_name.endswith(".gz")
    back = data.read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    assert back.shape == (3, 5, 7)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 1  # a writable array, not a view of the file's bytes


@given(array=hnp.arrays(st.sampled_from(IDX_DTYPES), hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_idx_round_trip_property(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "a.idx.gz"
    data.write_idx(path, array)
    back = data.read_idx(path)
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)  # NaN compares equal to NaN here


def test_read_idx_matches_the_format_written_by_hand(tmp_path):
    # MNIST images header 0x00000803, 2 x 3 x 4, then the bytes 0..23; stored raw under a .gz name.
    payload = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 2, 3, 4) + bytes(range(24))
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(payload)
    np.testing.assert_array_equal(data.read_idx(path), np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    # Big-endian int16 labels (type 0x0B), gzip-compressed under a raw name.
    path = tmp_path / "labels.idx"
    path.write_bytes(gzip.compress(struct.pack(">BBBBI3h", 0, 0, 0x0B, 1, 3, -2, 300, 7)))
    labels = data.read_idx(path)
    assert labels.dtype == np.int16
    np.testing.assert_array_equal(labels, [-2, 300, 7])


def test_read_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(struct.pack(">BBBBI", 1, 2, 0x08, 1, 3) + b"abc")
    with pytest.raises(ValueError, match=r"bad.idx.*bad magic number 0x01020801"):
        data.read_idx(path)


def test_read_idx_zero_dimensions_is_a_bad_magic(tmp_path):
    path = tmp_path / "zero.idx"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    with pytest.raises(ValueError, match=r"bad magic number 0x00000800"):
        data.read_idx(path)


def test_read_idx_unknown_type_code(tmp_path):
    path = tmp_path / "type.idx"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x0A, 1, 2) + b"ab")
    with pytest.raises(ValueError, match=r"type.idx.*unknown type code 0x0A"):
        data.read_idx(path)


def test_read_idx_truncated_payload(tmp_path):
    path = tmp_path / "short.idx.gz"
    full = struct.pack(">BBBB3I", 0, 0, 0x08, 3, 4, 28, 28) + bytes(4 * 28 * 28)
    path.write_bytes(gzip.compress(full[:-100]))
    with pytest.raises(ValueError, match=r"short.idx.gz.*4 x 28 x 28 .*= 3136 bytes expected.*has 3036 \(truncated\)"):
        data.read_idx(path)


def test_read_idx_payload_too_long(tmp_path):
    path = tmp_path / "long.idx"
    path.write_bytes(struct.pack(">BBBB2I", 0, 0, 0x0C, 2, 2, 3) + bytes(4 * 6 + 8))
    message = r"long.idx.*2 x 3 x 4 byte\(s\) = 24 bytes expected.*has 32 \(8 extra bytes\)"
    with pytest.raises(ValueError, match=message):
        data.read_idx(path)


def test_read_idx_truncated_header(tmp_path):
    path = tmp_path / "header.idx"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 0x08, 3, 10))
    with pytest.raises(ValueError, match=r"truncated header.*3 dimensions need .* = 16 bytes, the file has 8"):
        data.read_idx(path)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "cut.idx.gz"
    compressed = gzip.compress(struct.pack(">BBBBI", 0, 0, 0x08, 1, 5000) + os.urandom(5000))
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(ValueError, match=r"cut.idx.gz.*gzip stream is truncated"):
        data.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "nothing.idx")


# ---------------------------------------------------------------- bundled MNIST subset


@pytest.mark.parametrize("split, per_class", [("train", 400), ("test", 100)])
def test_mnist_5k_counts_and_types(split, per_class):
    images, labels = data.load_dataset("mnist-5k", split)
    assert images.shape == (10 * per_class, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10 * per_class,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [per_class] * 10)
    # White digits on a black background: the border is almost always black, strokes reach 255.
    assert images[:, 0, :].mean() < 1 and images.max() == 255


def test_mnist_5k_train_and_test_are_disjoint():
    train, _ = data.load_dataset("mnist-5k", "train")
    test, _ = data.load_dataset("mnist-5k", "test")
    assert not {img.tobytes() for img in train} & {img.tobytes() for img in test}


def test_mnist_5k_files_match_the_readme_sha256_table():
    folder = resources.files("minicnn.data") / "mnist-5k"
    readme = (folder / "README.md").read_text()
    table = dict(re.findall(r"^\| (\S+\.gz) \|[^|]*\| ([0-9a-f]{64}) \|$", readme, flags=re.M))
    assert sorted(table) == sorted(n for pair in data.MNIST_FILES.values() for n in pair)
    for name, digest in table.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


def test_load_dataset_size_is_a_reproducible_subset():
    images, labels = data.load_dataset("mnist-5k", "test", size=50, seed=3)
    again, _ = data.load_dataset("mnist-5k", "test", size=50, seed=3)
    other, _ = data.load_dataset("mnist-5k", "test", size=50, seed=4)
    assert images.shape == (50, 28, 28) and labels.shape == (50,)
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    assert len(np.unique(labels)) > 3  # a random subset, not the first class of a class-ordered file
    with pytest.raises(ValueError, match=r"size = 1001 is larger than the split's 1000 samples"):
        data.load_dataset("mnist-5k", "test", size=1001)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="emnist"), r"unknown data set 'emnist'; choose one of .*mnist-5k"),
        (dict(name="folder:"), r"unknown data set 'folder:'"),
        (dict(name="mnist-5k", split="valid"), r"split must be 'train' or 'test', got 'valid'"),
        (dict(name="mnist-5k", size=0), r"size must be a positive integer"),
        (dict(name="plates", seed=-1), r"seed must be a non-negative integer"),
    ],
)
def test_load_dataset_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_dataset(**kwargs)


def test_dataset_names():
    assert data.DATASET_NAMES == ("mnist-5k", "mnist", "fashion-mnist", "plates", "folder:PATH")


# ---------------------------------------------------------------- full MNIST: cache and downloader


@pytest.fixture
def mirror():
    server = LocalMirror()
    yield server
    server.close()


@pytest.fixture
def served_mnist(tmp_path, mirror):
    """Tiny MNIST-format files served at <base>/b/, with their MD5 table."""
    source = tmp_path / "source"
    source.mkdir()
    files = small_mnist_files(source)
    for name, (_, payload) in files.items():
        mirror.routes[f"/b/{name}"] = payload
    checksums = {name: md5_of(payload) for name, (_, payload) in files.items()}
    return files, checksums


def test_download_success_then_load_from_cache(tmp_path, mirror, served_mnist, monkeypatch):
    files, checksums = served_mnist
    monkeypatch.setattr(mnist_module, "MNIST_MD5", checksums)  # load_dataset checks the cache against MNIST_MD5
    cache = tmp_path / "cache"
    assert data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums) == cache
    assert sorted(os.listdir(cache)) == sorted(files)  # no temporary files left over
    for name, (_, payload) in files.items():
        assert (cache / name).read_bytes() == payload
    requests_made = len(mirror.requests)
    data.download_mnist(cache, mirrors=[f"{mirror.base}/b"], checksums=checksums)
    assert len(mirror.requests) == requests_made  # present files are not fetched again
    images, labels = data.load_dataset("mnist", "test", root=cache, download=False)
    np.testing.assert_array_equal(images, files["t10k-images-idx3-ubyte.gz"][0])
    np.testing.assert_array_equal(labels, files["t10k-labels-idx1-ubyte.gz"][0])
    assert labels.dtype == np.int64


def test_download_checksum_mismatch_leaves_no_file(tmp_path, mirror, served_mnist):
    _, checksums = served_mnist
    checksums = dict(checksums, **{"train-images-idx3-ubyte.gz": "0" * 32})
    cache = tmp_path / "cache"
    with pytest.raises(data.DownloadError, match=r"train-images-idx3-ubyte.gz.*checksum mismatch.*expected 0{32}"):
        data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    assert os.listdir(cache) == []  # neither the final file nor the temporary one


def test_download_short_response_leaves_no_file(tmp_path, mirror, served_mnist):
    _, checksums = served_mnist
    mirror.short.add("/b/train-images-idx3-ubyte.gz")
    cache = tmp_path / "cache"
    message = r"train-images-idx3-ubyte.gz.*every mirror failed.*(short response|IncompleteRead)"
    with pytest.raises(data.DownloadError, match=message):
        data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    assert os.listdir(cache) == []


def test_download_removes_the_part_files_of_a_killed_download(tmp_path, mirror, served_mnist):
    import subprocess
    import sys
    import time

    files, checksums = served_mnist
    cache = tmp_path / "cache"
    cache.mkdir()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that has ended, like that of a download killed with SIGKILL
    name = "train-images-idx3-ubyte.gz"
    old = time.time() - 2 * 3600
    stale = [cache / f".{name}.{child.pid}.0123abcd.part", cache / f".{name}.k3j_x9zq.part"]  # new and mkstemp names
    fresh_legacy = cache / f".{name}.abcdefgh.part"  # no pid and a minute old: may be a running older minicnn
    for path in [*stale, fresh_legacy]:
        path.write_bytes(b"partial")
    for path in stale:
        os.utime(path, (old, old))
    data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    assert sorted(os.listdir(cache)) == sorted([*files, fresh_legacy.name])


def test_download_falls_back_to_the_next_mirror_after_404(tmp_path, mirror, served_mnist):
    files, checksums = served_mnist
    cache = tmp_path / "cache"
    data.download_mnist(cache, mirrors=[f"{mirror.base}/a/", f"{mirror.base}/b/"], checksums=checksums)
    assert sorted(os.listdir(cache)) == sorted(files)
    assert mirror.requests[:2] == ["/a/train-images-idx3-ubyte.gz", "/b/train-images-idx3-ubyte.gz"]


def test_download_reports_404_on_every_mirror(tmp_path, mirror, served_mnist):
    _, checksums = served_mnist
    cache = tmp_path / "cache"
    with pytest.raises(data.DownloadError, match=r"every mirror failed.*/a/train-images-idx3-ubyte.gz: HTTP Error 404"):
        data.download_mnist(cache, mirrors=[f"{mirror.base}/a/"], checksums=checksums)
    assert os.listdir(cache) == []


def test_download_offline_says_where_to_put_the_files(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(data.DownloadError) as info:
        data.download_mnist(cache, mirrors=[unreachable_url()], timeout=5)
    message = str(info.value)
    assert "no mirror could be reached" in message
    assert str(cache) in message and "train-images-idx3-ubyte.gz" in message and "mnist-5k" in message
    assert os.listdir(cache) == []


def test_load_dataset_mnist_downloads_missing_files_or_explains(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", (unreachable_url(),))
    with pytest.raises(data.DownloadError, match=re.escape(str(tmp_path))):
        data.load_dataset("mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.gz.*download=True"):
        data.load_dataset("mnist", root=tmp_path, download=False)


def test_default_mnist_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    assert data.default_mnist_root() == tmp_path / "mnist"
    monkeypatch.delenv("MINICNN_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.default_mnist_root() == tmp_path / "home" / ".cache" / "minicnn" / "mnist"


def test_load_mnist_rejects_labels_that_do_not_match_the_images(tmp_path, monkeypatch):
    small_mnist_files(tmp_path)
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    checksums = {name: md5_of((tmp_path / name).read_bytes()) for name in os.listdir(tmp_path)}
    monkeypatch.setattr(mnist_module, "MNIST_MD5", checksums)  # files that pass the MD5 check, yet do not match
    with pytest.raises(ValueError, match=r"expected 10 labels .*got shape \(7,\).*delete the damaged file"):
        data.load_dataset("mnist", "test", root=tmp_path, download=False)


def _bundled_5k_into(cache):
    """What a user might do: copy the bundled mnist-5k files into the MNIST cache."""
    cache.mkdir(parents=True, exist_ok=True)
    folder = resources.files("minicnn.data") / "mnist-5k"
    for pair in data.MNIST_FILES.values():
        for name in pair:
            (cache / name).write_bytes((folder / name).read_bytes())


def test_the_bundled_5k_copied_into_the_cache_is_not_taken_for_full_mnist(tmp_path, mirror, served_mnist, monkeypatch):
    files, checksums = served_mnist  # the "real" MNIST of this test: what the mirror serves, with its MD5 table
    cache = tmp_path / "cache"
    _bundled_5k_into(cache)
    monkeypatch.setattr(mnist_module, "MNIST_MD5", checksums)
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", (f"{mirror.base}/b/",))
    message = r"MNIST test files in .*cache are not the original ones \(t10k-images-idx3-ubyte.gz: MD5 [0-9a-f]{32} of .* bytes, expected"
    with pytest.raises(ValueError, match=message):
        data.load_dataset("mnist", "test", root=cache, download=False)
    images, labels = data.load_dataset("mnist", "test", root=cache)  # downloads the originals over the copies
    np.testing.assert_array_equal(images, files["t10k-images-idx3-ubyte.gz"][0])
    assert len(labels) == 10
    for name, (_, payload) in files.items():
        assert (cache / name).read_bytes() == payload
    assert sorted(os.listdir(cache)) == sorted(files)  # no temporary files
    requests_made = len(mirror.requests)
    data.load_dataset("mnist", "train", root=cache)
    assert len(mirror.requests) == requests_made  # verified files are not fetched again


def test_a_corrupt_cached_file_is_downloaded_again(tmp_path, mirror, served_mnist):
    files, checksums = served_mnist
    cache = tmp_path / "cache"
    data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    name = "train-images-idx3-ubyte.gz"
    (cache / name).write_bytes(files[name][1][:100])  # truncated by a full disk, say
    images, _ = data.load_mnist("train", root=cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    np.testing.assert_array_equal(images, files[name][0])
    assert (cache / name).read_bytes() == files[name][1]
    assert mirror.requests[-1] == f"/b/{name}"


def test_a_bad_cached_file_that_cannot_be_replaced_is_reported_and_kept(tmp_path, mirror, served_mnist):
    files, checksums = served_mnist
    cache = tmp_path / "cache"
    data.download_mnist(cache, mirrors=[f"{mirror.base}/b/"], checksums=checksums)
    name = "t10k-labels-idx1-ubyte.gz"
    (cache / name).write_bytes(b"junk")
    message = rf"cannot download {name} .*every mirror failed .*HTTP Error 404.*the cached {name} was refused \(MD5"
    with pytest.raises(data.DownloadError, match=message):
        data.load_mnist("test", root=cache, mirrors=[f"{mirror.base}/a/"], checksums=checksums)
    assert (cache / name).read_bytes() == b"junk"  # replaced only by a good copy
    with pytest.raises(data.DownloadError, match=r"to replace the cached file, which is not the original.*no mirror could be reached"):
        data.load_mnist("test", root=cache, mirrors=[unreachable_url()], checksums=checksums, timeout=5)


# ---------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_a_root_folder(tmp_path):
    files = small_mnist_files(tmp_path, n_train=20, n_test=10, seed=5)
    images, labels = data.load_dataset("fashion-mnist", "train", root=tmp_path)
    np.testing.assert_array_equal(images, files["train-images-idx3-ubyte.gz"][0])
    np.testing.assert_array_equal(labels, np.arange(20) % 10)


def test_fashion_mnist_missing_names_the_package_and_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*root="):
        data.load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.skipif(
    not os.path.isdir(FASHION_ROOT), reason=f"{FASHION_ROOT} absent (apt-get install dataset-fashion-mnist)"
)
def test_fashion_mnist_debian_package_files():
    for name, digest in FASHION_DEBIAN_SHA256.items():
        assert sha256_file(os.path.join(FASHION_ROOT, name)) == digest, name
    images, labels = data.load_dataset("fashion-mnist", "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), [1000] * 10)
    images, labels = data.load_dataset("fashion-mnist", "train")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)


# ---------------------------------------------------------------- synthetic plates


def test_plates_shapes_types_and_balanced_labels():
    images, labels = data.load_dataset("plates", size=205, seed=1)
    assert images.shape == (205, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (205,) and labels.dtype == np.int64
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == 205 and counts.min() == 20 and counts.max() == 21
    assert not np.array_equal(labels, np.sort(labels))  # shuffled, not class-ordered
    # Values vary within and across images; MNIST polarity: black background, white strokes.
    assert (images.reshape(205, -1).std(axis=1) > 20).all()
    assert (images.max(axis=(1, 2)) == 255).all()
    assert np.median(images[:, [0, -1], :]) < 40 and np.median(images[:, 8:20, 8:20]) > np.median(images[:, 0, :])
    assert images.std(axis=0).mean() > 30


def test_plates_deterministic_for_a_seed_and_split():
    a = data.load_dataset("plates", size=60, seed=7)
    b = data.load_dataset("plates", size=60, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other_seed = data.load_dataset("plates", size=60, seed=8)
    test_split = data.load_dataset("plates", "test", size=60, seed=7)
    assert not np.array_equal(a[0], other_seed[0])
    assert not np.array_equal(a[0], test_split[0])


def test_plates_default_test_size():
    images, labels = data.load_dataset("plates", "test")
    assert images.shape == (1000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), [100] * 10)


def test_plates_refuse_a_size_that_cannot_fit_in_memory_before_allocating(monkeypatch):
    from minicnn.data import plates

    with pytest.raises(ValueError, match=r"plates: size = 10,000,000,000 digits would need about 500,000.0 GB .*ask for at most"):
        data.plate_digits(10_000_000_000)
    monkeypatch.setattr(plates, "_available_memory", lambda: 1_000_000)  # 1 MB: room for 20 digits
    with pytest.raises(ValueError, match=r"size = 21 digits would need about 0.0 GB .*more than the 0.0 GB .*at most 20$"):
        data.plate_digits(21)
    assert data.plate_digits(20)[0].shape == (20, 28, 28)
    monkeypatch.setattr(plates, "_available_memory", lambda: None)  # unknown: a fixed cap of a million
    with pytest.raises(ValueError, match=r"the cap is then 1,000,000"):
        data.plate_digits(1_000_001)


def test_plates_labels_match_the_drawn_digits():
    # Nearest class mean, learned on one split, must recognise the other far above chance (10%; ~0.9 seen).
    x_train, y_train = data.load_dataset("plates", size=2000, seed=0)
    x_test, y_test = data.load_dataset("plates", "test", size=500, seed=0)
    x_train = x_train.reshape(len(x_train), -1).astype(np.float64)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float64)
    means = np.stack([x_train[y_train == d].mean(axis=0) for d in range(10)])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=-1)
    assert (distances.argmin(axis=1) == y_test).mean() > 0.7


# ---------------------------------------------------------------- a folder of the user's crops


def _dark_digit_on_light(height, width, bar_col):
    """A grey test 'digit': a dark vertical bar on a light background, values in [0, 1]."""
    image = np.full((height, width), 0.9)
    c0 = int(bar_col * width)
    image[height // 6 : -height // 6, c0 : c0 + max(1, width // 5)] = 0.1
    return image


@pytest.fixture
def crops(tmp_path):
    import matplotlib.image

    root = tmp_path / "crops"
    for digit in (0, 3, 7):
        folder = root / str(digit)
        folder.mkdir(parents=True)
        for k in range(5):
            grey = _dark_digit_on_light(30 + 7 * k, 20 + 3 * k, 0.1 + 0.05 * k + 0.3 * digit / 7)
            if k % 2:  # colour image (RGB), tinted
                rgb = np.stack([grey, grey * 0.8, grey * 0.6], axis=-1)
                matplotlib.image.imsave(folder / f"crop{k}.png", rgb)
            else:
                matplotlib.image.imsave(folder / f"crop{k}.png", grey, cmap="gray", vmin=0, vmax=1)
        (folder / "notes.txt").write_text("not an image")
    (root / "misc").mkdir()
    return root


def test_folder_split_labels_and_shapes(crops):
    train, train_labels = data.load_dataset(f"folder:{crops}", "train", seed=0)
    test, test_labels = data.load_dataset(f"folder:{crops}", "test", seed=0)
    assert train.shape == (12, 28, 28) and train.dtype == np.uint8 and train_labels.dtype == np.int64
    assert test.shape == (3, 28, 28)
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10)[[0, 3, 7]], [4, 4, 4])
    np.testing.assert_array_equal(test_labels, [0, 3, 7])
    all_images = {img.tobytes() for img in np.concatenate([train, test])}
    assert len(all_images) == 15  # the two splits together hold every crop exactly once
    again, _ = data.load_dataset(f"folder:{crops}", "test", seed=0)
    np.testing.assert_array_equal(test, again)
    splits = {data.load_dataset(f"folder:{crops}", "test", seed=s)[0].tobytes() for s in range(6)}
    assert len(splits) > 1  # the seed chooses which crops are held out


def test_load_images_inverts_dark_ink_on_light_background(crops):
    image = data.load_images(crops / "0" / "crop0.png")
    assert image.shape == (28, 28) and image.dtype == np.uint8
    assert image[0].max() == 0 and image[:, -1].max() == 0  # light background -> black
    assert image.max() == 255 and image[14].max() > 200  # dark ink -> white stroke
    bar_cols = np.flatnonzero(image[14] > 128)
    assert 2 <= bar_cols.min() and bar_cols.max() <= 10  # the bar spans columns 0.1-0.3 of the crop


def test_load_images_keeps_white_on_black(tmp_path):
    import matplotlib.image

    grey = 1.0 - _dark_digit_on_light(56, 56, 0.5)  # already MNIST polarity
    matplotlib.image.imsave(tmp_path / "w.png", grey, cmap="gray", vmin=0, vmax=1)
    image = data.load_images(tmp_path / "w.png")
    assert image[0].max() == 0 and image[14, 14:19].min() > 200


def test_load_images_rejects_a_non_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"fake.png is not a readable image"):
        data.load_images(path)


def _deep_copies(folder, index):
    """One mnist-5k digit as dark ink on a light page (values 30..220), saved at every bit depth Pillow writes."""
    from PIL import Image

    images, _ = data.load_dataset("mnist-5k", "test")
    page = np.kron(255 - images[index], np.ones((2, 2), dtype=np.uint8)).astype(np.float64)
    page = np.rint(30 + page * (190 / 255)).astype(np.uint8)
    paths = {
        "L": folder / "digit8.png",
        "I;16": folder / "digit16.png",
        "I": folder / "digit32.tif",
        "I (8-bit values)": folder / "digit32_small.tif",
        "F": folder / "digitF.tif",
        "F (0..255)": folder / "digitF255.tif",
    }
    Image.fromarray(page).save(paths["L"])
    Image.fromarray(page.astype(np.uint16) * 257).save(paths["I;16"])
    Image.fromarray(page.astype(np.int32) * 257).save(paths["I"])
    Image.fromarray(page.astype(np.int32)).save(paths["I (8-bit values)"])
    Image.fromarray(page.astype(np.float32) / 255).save(paths["F"])
    Image.fromarray(page.astype(np.float32)).save(paths["F (0..255)"])
    return paths


@pytest.mark.parametrize("index", [150, 999])
def test_16_bit_32_bit_and_float_images_load_like_the_8_bit_copy(tmp_path, index):
    from PIL import Image

    paths = _deep_copies(tmp_path, index)
    reference = data.load_images(paths["L"]).astype(int)
    assert reference.max() == 255 and reference.mean() > 10  # a white digit on black, not an empty crop
    for mode, path in paths.items():
        with Image.open(path) as image:
            assert image.mode == mode.split(" ")[0]
        loaded = data.load_images(path).astype(int)
        assert np.abs(loaded - reference).max() <= 1, mode  # within 1/255 (used to be an all-black crop)


def test_unit_range_rules():
    from minicnn.data.folder import unit_range

    np.testing.assert_allclose(unit_range(np.array([[0, 65535]]), "I;16"), [[0.0, 1.0]])
    np.testing.assert_allclose(unit_range(np.array([[0, 255]]), "I"), [[0.0, 1.0]])
    np.testing.assert_allclose(unit_range(np.array([[0, 1000]]), "I"), [[0.0, 1000 / 65535]])
    np.testing.assert_allclose(unit_range(np.array([[-5, 5]]), "I"), [[0.0, 1.0]])
    np.testing.assert_allclose(unit_range(np.array([[0.25, 0.5]]), "F"), [[0.25, 0.5]])
    np.testing.assert_allclose(unit_range(np.array([[-3.0, -3.0]]), "F"), [[0.0, 0.0]])
    with pytest.raises(ValueError, match=r"x.tif has NaN or infinite pixel values \(mode F\)"):
        unit_range(np.array([[0.0, np.nan]]), "F", "x.tif")


def test_a_float_image_with_nan_is_a_clear_error(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0.0, np.nan], [1.0, 0.5]], dtype=np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(ValueError, match=r"nan.tif has NaN or infinite pixel values"):
        data.load_images(tmp_path / "nan.tif")


def test_a_decompression_bomb_is_refused_with_its_size(tmp_path):
    from PIL import Image

    path = tmp_path / "bomb.png"
    Image.new("1", (14000, 14000)).save(path)  # 196 Mpx, a few kB on disk: Pillow raises DecompressionBombError
    with pytest.raises(ValueError, match=r"bomb.png is too large for a digit crop \(Image size \(196000000 pixels\)"):
        data.load_images(path)


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image

    from minicnn.data import folder

    monkeypatch.setattr(folder, "MAX_IMAGE_PIXELS", 1000)
    Image.new("L", (40, 30)).save(tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"big.png is 40 x 30 = 1,200 pixels, more than the limit of 1,000 \(minicnn.data.folder.MAX_IMAGE_PIXELS\)"):
        data.load_images(tmp_path / "big.png")
    Image.new("L", (40, 25)).save(tmp_path / "ok.png")
    assert data.load_images(tmp_path / "ok.png").shape == (28, 28)


def test_a_folder_with_too_few_images_per_class_for_a_test_split_is_refused(tmp_path):
    import matplotlib.image

    for digit, count in ((0, 1), (1, 2)):
        (tmp_path / str(digit)).mkdir()
        for k in range(count):
            matplotlib.image.imsave(tmp_path / str(digit) / f"{k}.png", _dark_digit_on_light(20, 20, 0.3), cmap="gray")
    assert len(data.load_dataset(f"folder:{tmp_path}", "train")[1]) == 3
    message = r"has no test images: .* needs 3 or more images; images per class here: 0: 1, 1: 2"
    with pytest.raises(ValueError, match=message):
        data.load_dataset(f"folder:{tmp_path}", "test")
    matplotlib.image.imsave(tmp_path / "1" / "2.png", _dark_digit_on_light(20, 20, 0.5), cmap="gray")
    assert len(data.load_dataset(f"folder:{tmp_path}", "test")[1]) == 1  # 3 images of one class are enough


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is not a folder"):
        data.load_dataset(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no images in .*empty.*sub-folders named 0..9"):
        data.load_dataset(f"folder:{tmp_path / 'empty'}")
    (tmp_path / "nopng" / "4").mkdir(parents=True)
    (tmp_path / "nopng" / "4" / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no images in .*nopng"):
        data.load_dataset(f"folder:{tmp_path / 'nopng'}")


# ---------------------------------------------------------------- network input, batches, augmentation


def test_to_network_input_pads_and_normalises():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    x = data.to_network_input(images)
    assert x.shape == (5, 1, 32, 32) and x.dtype == np.float32
    background = (0.0 - data.MNIST_MEAN) / data.MNIST_STD
    inside = np.zeros((32, 32), dtype=bool)
    inside[2:30, 2:30] = True  # 28 -> 32: two black pixels on every side
    np.testing.assert_allclose(x[:, 0][:, ~inside], background, rtol=1e-6)
    np.testing.assert_allclose(x[:, 0, 2:30, 2:30], (images / 255.0 - data.MNIST_MEAN) / data.MNIST_STD, rtol=1e-5)


def test_to_network_input_shapes_and_options():
    image = np.full((28, 28), 255, dtype=np.uint8)
    assert data.to_network_input(image).shape == (1, 1, 32, 32)
    assert data.to_network_input(image[None, None]).shape == (1, 1, 32, 32)
    x = data.to_network_input(image[None], pad_to=None, mean=0.0, std=1.0)
    assert x.shape == (1, 1, 28, 28)
    np.testing.assert_array_equal(x, 1.0)
    assert data.to_network_input(np.zeros((2, 27, 27), np.uint8), pad_to=32).shape == (2, 1, 32, 32)


def test_to_network_input_rejects_bad_input():
    with pytest.raises(TypeError, match=r"images must be uint8.*float64"):
        data.to_network_input(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match=r"pad_to = 20 is smaller than the images \(28x28\)"):
        data.to_network_input(np.zeros((2, 28, 28), np.uint8), pad_to=20)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\), got shape \(2, 3, 28, 28\)"):
        data.to_network_input(np.zeros((2, 3, 28, 28), np.uint8))


def test_batches_cover_every_sample_once_and_are_deterministic():
    x = np.arange(103)[:, None] * np.ones((1, 4))
    y = np.arange(103)
    batches = list(data.batches(x, y, 10, seed=5))
    assert [len(yb) for _, yb in batches] == [10] * 10 + [3]
    seen = np.concatenate([yb for _, yb in batches])
    np.testing.assert_array_equal(np.sort(seen), y)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], yb)  # x and y stay paired
    again = np.concatenate([yb for _, yb in data.batches(x, y, 10, seed=5)])
    other = np.concatenate([yb for _, yb in data.batches(x, y, 10, seed=6)])
    np.testing.assert_array_equal(seen, again)
    assert not np.array_equal(seen, other) and not np.array_equal(seen, y)


def test_batches_drop_last_and_no_shuffle():
    y = np.arange(25)
    ordered = [yb for _, yb in data.batches(y, y, 10, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(ordered), y)
    dropped = [yb for _, yb in data.batches(y, y, 10, drop_last=True)]
    assert [len(b) for b in dropped] == [10, 10]
    with pytest.raises(ValueError, match=r"len\(x\) = 25, len\(y\) = 24"):
        next(data.batches(y, y[:-1], 10))
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        next(data.batches(y, y, 0))


def test_augment_shape_dtype_and_determinism():
    images, _ = data.load_dataset("mnist-5k", "test", size=64, seed=0)
    a = data.augment(images, np.random.default_rng(1))
    b = data.augment(images, np.random.default_rng(1))
    c = data.augment(images, np.random.default_rng(2))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, images)


def test_augment_identity_and_small_moves():
    images, _ = data.load_dataset("mnist-5k", "test", size=64, seed=0)
    np.testing.assert_array_equal(data.augment(images, np.random.default_rng(0), max_shift=0, max_rotation=0), images)
    moved = data.augment(images, np.random.default_rng(0), max_shift=2, max_rotation=10.0)
    # MNIST digits sit in the central 20x20 box, so a small move keeps the ink and moves its centre <= ~2.5 px.
    ink_before = images.reshape(64, -1).sum(axis=1).astype(float)
    ink_after = moved.reshape(64, -1).sum(axis=1).astype(float)
    np.testing.assert_allclose(ink_after, ink_before, rtol=0.1)
    before = np.array([ndimage.center_of_mass(img) for img in images])
    after = np.array([ndimage.center_of_mass(img) for img in moved])
    assert np.hypot(*(after - before).T).max() < 2 * np.sqrt(2) + 1.0


def test_augment_rejects_bad_arguments():
    images = np.zeros((2, 28, 28), np.uint8)
    with pytest.raises(TypeError, match=r"rng must be a numpy.random.Generator"):
        data.augment(images, 0)
    with pytest.raises(ValueError, match=r"max_shift and max_rotation must be >= 0"):
        data.augment(images, np.random.default_rng(0), max_shift=-1)
    with pytest.raises(ValueError, match=r"images must be \(N, H, W\)"):
        data.augment(images[0], np.random.default_rng(0))
