"""Backends: one small interface, several implementations.

A backend is an object with the primitives of ``NumpyBackend`` (conv2d,
conv2d_grad and each gradient alone: conv2d_input_grad, conv2d_weight_grad;
linear, linear_grad; max_pool2d, max_pool2d_grad, avg_pool2d,
avg_pool2d_grad). Threads, BLAS limits and allocator tuning live in
``minicnn.runtime`` (re-exported here).
``minicnn.functional`` validates arguments and then calls the chosen one.

* ``"numpy"``  the reference (readable NumPy, the test oracle);
* ``"cython"`` compiled CPU kernels from ``kernels/cpu`` (OpenMP);
* ``"cupy"``   CUDA kernels from ``kernels/gpu`` (only where a GPU works).

The current backend is kept in a ``contextvars.ContextVar``, so
``use_backend`` in one thread does not change what another thread uses.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib

from ..arrays import is_cupy
from ..runtime import EnvironmentSettingError, env_flag, keep_freed_memory, single_threaded_blas

__all__ = [
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "backend_for_array",
    "single_threaded_blas",
    "keep_freed_memory",
    "BACKEND_NAMES",
    "register_backend",
    "unregister_backend",
    "EnvironmentSettingError",
    "env_flag",
]

BACKEND_NAMES = ("numpy", "cython", "cupy")

_MODULES = {
    "numpy": ("minicnn.backends.numpy_backend", "NumpyBackend"),
    "cython": ("minicnn.backends.cython_backend", "CythonBackend"),
    "cupy": ("minicnn.backends.cupy_backend", "CupyBackend"),
}

_instances: dict = {}
_load_errors: dict = {}
_current: contextvars.ContextVar = contextvars.ContextVar("minicnn_backend", default=None)
_default_name = None
#: Backends added at run time (``register_backend``), e.g. the one built from a student's exercises.
_registered: dict = {}


def _load(name):
    """Instantiate backend ``name`` once; remember why it failed if it cannot load."""
    if name in _instances:
        return _instances[name]
    if name not in _MODULES:
        return None
    if name in _load_errors:
        return None
    module_name, class_name = _MODULES[name]
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        backend = cls()
        check = getattr(backend, "check_available", None)
        if check is not None:
            check()
    except EnvironmentSettingError:
        raise
    except Exception as exc:  # any other failure means "not available here"; the reason is kept
        _load_errors[name] = f"{type(exc).__name__}: {exc}"
        return None
    _instances[name] = backend
    return backend


def available_backends():
    """Names of the backends that work on this machine, e.g. ``["numpy", "cython"]``.

    ``"cupy"`` is listed only when CuPy imports *and* a GPU runs a kernel.
    """
    return [name for name in BACKEND_NAMES if _load(name) is not None] + list(_registered)


def register_backend(name, backend):
    """Make the backend object ``backend`` usable as ``name`` (``use_backend(name)``, ``backend=name``).

    For backends built at run time, such as ``minicnn.exercises``' backend made
    from a student's functions; the built-in names cannot be replaced.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register_backend: name must be an identifier string, got {name!r}")
    if name in _MODULES:
        raise ValueError(f"register_backend: {name!r} is a built-in backend; choose another name")
    _registered[name] = backend
    _instances[name] = backend


def unregister_backend(name):
    """Forget a backend added with ``register_backend`` (a built-in name raises ``ValueError``)."""
    if name not in _registered:
        raise ValueError(f"unregister_backend: {name!r} was not registered (registered: {sorted(_registered)})")
    del _registered[name]
    _instances.pop(name, None)


def unavailable_reason(name):
    """Why backend ``name`` could not load (``None`` if it loads)."""
    _check_name(name)
    _load(name)
    return _load_errors.get(name)


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"backend must be a str, one of {list(BACKEND_NAMES)}; got {type(name).__name__} {name!r}")
    if name not in _MODULES and name not in _registered:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKEND_NAMES) + list(_registered)}")


def get_backend(name=None):
    """The backend object called ``name``, or the current one when ``name`` is None.

    The default current backend is "cython" when it is built, else "numpy".
    """
    if name is None:
        name = _current.get() or _default()
    _check_name(name)
    backend = _load(name)
    if backend is None:
        raise RuntimeError(
            f"backend {name!r} is not available here ({_load_errors[name]}); "
            f"available: {available_backends()}"
        )
    return backend


def _default():
    global _default_name
    if _default_name is None:
        _default_name = "cython" if _load("cython") is not None else "numpy"
    return _default_name


def current_backend_name():
    """Name of the backend used for NumPy arrays when no ``backend=`` is given."""
    return _current.get() or _default()


def set_backend(name):
    """Make ``name`` the current backend (in this thread/context) until changed."""
    get_backend(name)  # raises if unknown or unavailable
    _current.set(name)


@contextlib.contextmanager
def use_backend(name):
    """Context manager: run the block with backend ``name``, then restore the previous one.

    >>> import minicnn as mc
    >>> with mc.use_backend("numpy"):
    ...     pass
    """
    get_backend(name)
    token = _current.set(name)
    try:
        yield get_backend(name)
    finally:
        _current.reset(token)


def backend_for_array(x, name=None):
    """Pick the backend for array ``x``: CuPy arrays go to "cupy", NumPy arrays to the current one."""
    if name is not None:
        return get_backend(name)
    if is_cupy(x):
        return get_backend("cupy")
    return get_backend(None)
