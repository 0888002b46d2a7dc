"""minicnn: a teaching framework for convolutional networks that is also fast.

Every formula of the course slides lives three times here: as a spec entry
(``spec/``), as readable NumPy reference code (backend "numpy") and as a fast
kernel (backend "cython" on the CPU, "cupy" on the GPU).

>>> import minicnn as mc
>>> "numpy" in mc.available_backends()
True
"""

import importlib

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
_LAZY_SUBMODULES = ("nn", "graph", "optim", "models", "data", "train", "plots", "bench", "cli")

__all__ = [
    "functional",
    "shapes",
    "available_backends",
    "current_backend_name",
    "get_backend",
    "set_backend",
    "use_backend",
    "single_threaded_blas",
    "__version__",
    *_LAZY_SUBMODULES,
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minicnn' has no attribute {name!r}")
