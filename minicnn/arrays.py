"""NumPy or CuPy: the one place that tells the two array kinds apart, moves arrays to the host and makes them contiguous.

Every array minicnn computes on is a ``numpy.ndarray`` or a ``cupy.ndarray``;
the code that works on both asks this module which one it holds
(``array_module``, as ``cupy.get_array_module`` does, but without importing
CuPy for NumPy input), instead of testing type names itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["is_cupy", "is_array", "array_module", "import_cupy", "to_host", "host_copy", "contiguous", "to_device"]


def is_cupy(a):
    """True for a ``cupy.ndarray`` (or another CuPy object), without importing CuPy."""
    return type(a).__module__.startswith("cupy")


def is_array(a):
    """True for a ``numpy.ndarray`` or a ``cupy.ndarray``."""
    return isinstance(a, np.ndarray) or is_cupy(a)


def array_module(a):
    """``numpy`` or ``cupy``: the module that owns array ``a``."""
    if is_cupy(a):
        import cupy

        return cupy.get_array_module(a)
    return np


def import_cupy(what):
    """``import cupy``, or a ``RuntimeError`` saying that ``what`` needs it and how to install it."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA runtime that fails to load
        raise RuntimeError(
            f"{what} needs CuPy and a CUDA GPU, but CuPy could not be imported ({type(exc).__name__}: {exc}); "
            "install it with `pip install minicnn[gpu]` (cupy-cuda12x) on a machine with a GPU"
        ) from exc
    return cupy


def to_host(a):
    """``a`` as a NumPy array: copied from the GPU for a CuPy array, ``numpy.asarray`` otherwise (no copy)."""
    return a.get() if is_cupy(a) else np.asarray(a)


def host_copy(a):
    """A NumPy copy of ``a`` that later changes to ``a`` do not reach."""
    return a.get() if is_cupy(a) else np.array(a, copy=True)


def contiguous(a):
    """``a`` itself when it is C-contiguous, else a C-contiguous copy on the same device."""
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


def to_device(a, device, dtype=None):
    """Return array ``a`` on ``device`` ("cpu"/"gpu"), cast to ``dtype`` if given; no copy when nothing changes."""
    if device == "gpu":
        cupy = import_cupy("to('gpu')")
        a = cupy.asarray(a)
        xp = cupy
    elif device == "cpu":
        a = a.get() if is_cupy(a) else a
        xp = np
    else:
        xp = array_module(a)
    if dtype is not None and a.dtype != dtype:
        a = a.astype(dtype)
    return xp.ascontiguousarray(a)
