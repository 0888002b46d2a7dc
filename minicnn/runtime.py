"""The process's runtime settings: thread counts, BLAS on one thread, and glibc's allocator kept warm.

minicnn's CPU kernels parallelise over the batch with their own OpenMP
threads; the BLAS libraries NumPy and SciPy load bring thread pools of their
own. This module holds what decides how many threads run and how memory is
reused, so the backends and the training loop share one answer:

* ``default_threads()``: ``MINICNN_NUM_THREADS``, or the CPUs this process may use;
* ``single_threaded_blas()``: BLAS on one thread inside a block (threadpoolctl);
* ``keep_freed_memory()``: glibc keeps freed blocks for the next step (``mallopt``);
* ``env_flag``/``EnvironmentSettingError``: the yes/no ``MINICNN_*`` settings.
"""

from __future__ import annotations

import os
import threading

__all__ = ["EnvironmentSettingError", "env_flag", "default_threads", "single_threaded_blas", "keep_freed_memory"]


class EnvironmentSettingError(ValueError):
    """An environment variable of minicnn's (MINICNN_NUM_THREADS, MINICNN_AUTOTUNE, ...) holds a bad value.

    Raised, not swallowed: a backend that fails for this reason must not be
    silently replaced by a slower one.
    """


def env_flag(name, default):
    """A yes/no environment variable: unset or empty gives ``default``; 1/true/yes/on or 0/false/no/off;
    anything else raises ``EnvironmentSettingError`` naming the variable."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise EnvironmentSettingError(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {value!r}")


def default_threads():
    """OpenMP threads for the kernels: ``MINICNN_NUM_THREADS`` if set (an int >= 1), else the CPUs this process may use."""
    env = os.environ.get("MINICNN_NUM_THREADS")
    if env is not None and env.strip():
        try:
            value = int(env)
        except ValueError:
            raise EnvironmentSettingError(f"MINICNN_NUM_THREADS must be a positive int, got {env!r}") from None
        if value < 1:
            raise EnvironmentSettingError(f"MINICNN_NUM_THREADS must be >= 1, got {value}")
        return value
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class _OneBlasThread:
    """Context manager: BLAS on one thread inside the block (threadpoolctl), re-entrant and cheap.

    ``threadpoolctl.threadpool_limits`` finds the loaded BLAS libraries anew
    on every call (about 0.2 ms here, 5% of a LeNet-5 training step at batch
    64); this keeps one ``ThreadpoolController`` and only sets and restores
    the limit (about 0.01 ms). Nested and concurrent uses share a counter:
    the first one in sets the limit, the last one out restores it.

    OpenBLAS 0.3.27 and later also keep a thread count per calling thread, and
    the process-wide limit does not reach a thread that is not the main one (a
    worker thread's products ran on 2 threads inside the block); so each
    thread that enters also sets its own count with
    ``openblas_set_num_threads_local`` and restores it when it leaves.
    """

    _LOCAL_SETTERS = ("openblas_set_num_threads_local", "scipy_openblas_set_num_threads_local64_",
                      "scipy_openblas_set_num_threads_local")

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter = None
        self._controller = None
        self._local_setters = []
        self._saved = threading.local()
        try:
            import scipy.linalg  # noqa: F401  (loads SciPy's BLAS, which the kernels call, before the scan)
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController().select(user_api="blas")
            self._local_setters = self._find_local_setters(self._controller)
        except Exception:  # threadpoolctl missing or unable to inspect: leave BLAS as it is
            self._controller = None

    @classmethod
    def _find_local_setters(cls, controller):
        import ctypes

        setters = []
        for lib in controller.lib_controllers:
            if lib.internal_api != "openblas":
                continue
            try:
                handle = ctypes.CDLL(lib.filepath)
            except OSError:
                continue
            for name in cls._LOCAL_SETTERS:
                setter = getattr(handle, name, None)
                if setter is not None:
                    setter.argtypes, setter.restype = (ctypes.c_int,), ctypes.c_int
                    setters.append(setter)
                    break
        return setters

    def __enter__(self):
        if self._controller is None:
            return self
        with self._lock:
            if self._depth == 0:
                self._limiter = self._controller.limit(limits=1)
            self._depth += 1
        stack = self._saved.__dict__.setdefault("stack", [])
        stack.append([setter(1) for setter in self._local_setters])
        return self

    def __exit__(self, *exc):
        if self._controller is None:
            return False
        for setter, previous in zip(self._local_setters, self._saved.stack.pop()):
            setter(previous)
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._limiter.restore_original_limits()
                self._limiter = None
        return False

    def local_thread_counts(self):
        """The calling thread's own OpenBLAS thread counts (what ``openblas_set_num_threads_local``
        reports), one per OpenBLAS library that has them."""
        counts = []
        for setter in self._local_setters:
            current = setter(1)
            setter(current)
            counts.append(current)
        return counts


_blas_limiter = None
_blas_limiter_lock = threading.Lock()


def _shared_blas_limiter():
    global _blas_limiter
    with _blas_limiter_lock:
        if _blas_limiter is None:
            _blas_limiter = _OneBlasThread()
    return _blas_limiter


def single_threaded_blas():
    """Context manager: BLAS (NumPy's and SciPy's) on one thread inside the block.

    minicnn's CPU kernels parallelise over the batch with OpenMP; the small
    matrix products of a CNN's dense layers gain nothing from BLAS threads,
    and on a machine with few cores two thread pools that spin-wait for each
    other make a training step many times slower. ``minicnn train`` and
    ``minicnn bench`` run inside this; wrap your own training loop in it too.
    The BLAS libraries are found once, at the first call: a BLAS loaded later
    (by another library) is not limited.
    """
    return _shared_blas_limiter()


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold=32 * 2**20, trim_threshold=512 * 2**20):
    """Ask glibc's ``malloc`` to keep freed memory for the next allocation instead of unmapping it.

    A training step allocates and frees the same few megabytes of
    activations and gradients every time. By default glibc hands blocks
    above a threshold back to the kernel when they are freed, so every step
    pays for page faults on fresh memory (about 2,000 per LeNet-5 step at
    batch 256 here, a fifth of its time). This raises the thresholds for the
    whole process; the cython backend calls it when it loads (unless
    ``MINICNN_KEEP_FREED_MEMORY=0``). Returns False where the C library has no
    ``mallopt`` (not glibc), True otherwise.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
