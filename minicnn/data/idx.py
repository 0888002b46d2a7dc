"""The IDX file format of MNIST and Fashion-MNIST: read and write.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension and
then the array itself in row-major (C) order, big-endian::

    magic = 0x00 0x00 <type code> <number of dimensions>
    dims  = d_1, ..., d_n          (uint32, big-endian)
    data  = d_1 * ... * d_n items  (the type code's dtype, big-endian)

The MNIST images are ``0x00000803`` (unsigned bytes, 3 dimensions:
N x 28 x 28), the labels ``0x00000801`` (unsigned bytes, N). Files are usually
gzip-compressed; :func:`read_idx` recognises gzip by its own magic bytes, so
the file name does not matter.
"""

import gzip
import os
import zlib
from math import prod

import numpy as np

__all__ = ["IDX_TYPE_CODES", "read_idx", "parse_idx", "write_idx"]

# Type code (third byte of the magic number) -> big-endian dtype of the payload.
IDX_TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Read an IDX file (raw or gzip-compressed) into an array of the header's shape.

    Returns a writable, native-byte-order array: ``uint8`` for type code 0x08,
    and ``int8``, ``int16``, ``int32``, ``float32``, ``float64`` for the others.

    Raises ``ValueError`` naming the file and the numbers when the magic number
    is wrong, the type code unknown, the dimensions do not match the payload
    size (a truncated or over-long file), or the gzip stream is cut short or
    corrupt. A missing file raises ``FileNotFoundError``.
    """
    source = os.fspath(path)
    with open(source, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except EOFError as exc:
            raise ValueError(f"read_idx: {source}: the gzip stream is truncated ({exc})") from exc
        except (OSError, zlib.error) as exc:
            raise ValueError(f"read_idx: {source}: the gzip stream is corrupt ({exc})") from exc
    return parse_idx(raw, source=source)


def parse_idx(buffer, *, source="<bytes>"):
    """Decode the bytes of an (uncompressed) IDX file; ``source`` names it in error messages."""
    buffer = memoryview(buffer).cast("B")
    if len(buffer) < 4:
        raise ValueError(f"read_idx: {source}: {len(buffer)} bytes is too short for the 4-byte IDX magic number")
    zero0, zero1, type_code, ndim = buffer[0], buffer[1], buffer[2], buffer[3]
    magic = int.from_bytes(buffer[:4], "big")
    if zero0 != 0 or zero1 != 0 or ndim == 0:
        raise ValueError(
            f"read_idx: {source}: bad magic number 0x{magic:08X}; an IDX file starts with two zero bytes, "
            f"a type code and the number of dimensions (>= 1), e.g. 0x00000803 for MNIST images, "
            f"0x00000801 for labels"
        )
    if type_code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{code:02X} ({dt.name})" for code, dt in IDX_TYPE_CODES.items())
        raise ValueError(
            f"read_idx: {source}: unknown type code 0x{type_code:02X} in magic number 0x{magic:08X}; known: {known}"
        )
    header_size = 4 + 4 * ndim
    if len(buffer) < header_size:
        raise ValueError(
            f"read_idx: {source}: truncated header, {ndim} dimensions need 4 + 4*{ndim} = {header_size} bytes, "
            f"the file has {len(buffer)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(buffer, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_TYPE_CODES[type_code]
    expected = prod(dims) * dtype.itemsize
    actual = len(buffer) - header_size
    if actual != expected:
        what = "truncated" if actual < expected else f"{actual - expected} extra bytes"
        shape = " x ".join(str(d) for d in dims)
        raise ValueError(
            f"read_idx: {source}: dimensions {shape} x {dtype.itemsize} byte(s) = {expected} bytes expected "
            f"after the {header_size}-byte header, the file has {actual} ({what})"
        )
    array = np.frombuffer(buffer, dtype=dtype, count=prod(dims), offset=header_size).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path, array, *, compress=None):
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` is true.

    ``compress=None`` compresses when the file name ends in ``.gz``. The dtype
    must be one of the IDX types (uint8, int8, int16, int32, float32, float64).
    """
    array = np.asarray(array)
    for type_code, dtype in IDX_TYPE_CODES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            break
    else:
        names = ", ".join(dt.newbyteorder("=").name for dt in IDX_TYPE_CODES.values())
        raise TypeError(f"write_idx: array dtype {array.dtype} has no IDX type code; use one of {names}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: array.ndim = {array.ndim}; IDX stores 1 to 255 dimensions")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"write_idx: array.shape {array.shape} has a dimension >= 2**32")
    payload = (
        bytes([0, 0, type_code, array.ndim])
        + np.asarray(array.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(array, dtype=dtype).tobytes()
    )
    path = os.fspath(path)
    if compress is None:
        compress = path.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
    return path
