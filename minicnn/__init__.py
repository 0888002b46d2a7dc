"""minicnn: a teaching framework for convolutional networks that is also fast.

Every formula of the course slides lives three times here: as a spec entry
(``spec/``), as readable NumPy reference code (backend "numpy") and as a fast
kernel (backend "cython" on the CPU, "cupy" on the GPU).

>>> import minicnn as mc
>>> "numpy" in mc.available_backends()
True
"""

import importlib
import importlib.util
import warnings

from . import functional, shapes
from .backends import (
    available_backends,
    current_backend_name,
    get_backend,
    set_backend,
    single_threaded_blas,
    use_backend,
)

__version__ = "0.1.0"

# Submodules loaded on first use, so `import minicnn` stays light (no matplotlib, no tqdm).
_LAZY_SUBMODULES = ("nn", "graph", "optim", "models", "data", "train", "io", "plots", "bench", "cli", "graph_spec",
                    "torch_weights")
# Short names for modules whose file name must differ: ``mc.onnx`` is minicnn/onnx_io.py, so that the module
# never shadows the ``onnx`` package it imports (only when called: ``pip install minicnn[onnx]``).
_LAZY_ALIASES = {"onnx": "onnx_io", "onnx_io": "onnx_io"}

__all__ = [
    "functional",
    "shapes",
    "available_backends",
    "current_backend_name",
    "get_backend",
    "set_backend",
    "use_backend",
    "single_threaded_blas",
    "KernelsNotBuiltWarning",
    "__version__",
    *_LAZY_SUBMODULES,
    "onnx",
]


class KernelsNotBuiltWarning(RuntimeWarning):
    """``import minicnn`` found no compiled CPU kernels (``minicnn.kernels``), so the slow "numpy" backend is the default."""


def kernels_not_built_hint(reason):
    """What to do when the "cython" backend failed for ``reason`` because its kernels do not import; None otherwise.

    The top-level ``kernels/`` folder of the source checkout becomes the
    package ``minicnn.kernels`` only when it is built (``pip install -e .``),
    so running from the checkout without building finds no kernels.
    """
    if not reason or not reason.startswith(("ModuleNotFoundError", "ImportError")) or "kernels" not in reason:
        return None
    return (
        "the compiled CPU kernels (minicnn.kernels) are not built or not importable here, so the slow 'numpy' "
        "backend is used; build them with `pip install -e .` in the source checkout (about a minute)"
    )


def _warn_if_kernels_missing():
    """One warning at import when the kernels cannot be imported (cheap: only looked up, not loaded, when present)."""
    try:
        if importlib.util.find_spec("minicnn.kernels.cpu.conv2d") is not None:
            return
    except ImportError:  # minicnn.kernels (or .cpu) itself is missing
        pass
    from .backends import unavailable_reason

    reason = unavailable_reason("cython")
    hint = kernels_not_built_hint(reason)
    if hint is not None:
        warnings.warn(f"minicnn: {hint} ({reason})", KernelsNotBuiltWarning, stacklevel=3)


_warn_if_kernels_missing()


def __getattr__(name):
    if name in _LAZY_SUBMODULES or name in _LAZY_ALIASES:
        module = importlib.import_module(f".{_LAZY_ALIASES.get(name, name)}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
