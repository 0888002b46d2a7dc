"""Shared pytest configuration: Hypothesis profiles and the backend parametrisation.

Hypothesis profiles (choose with MINICNN_HYPOTHESIS_PROFILE):

* ``ci`` (default): few examples per property, so the suite stays fast on 2 cores;
* ``thorough``: many examples, for a deliberate hunt before a release;
* ``dev``: the fewest, while editing.

Any test that takes an argument named ``backend_name`` runs once per backend
in ``minicnn.available_backends()``; ``fast_backend_name`` runs once per
non-reference backend (the ones checked against the "numpy" oracle).

Kernel plans: the suite runs with ``MINICNN_AUTOTUNE=0`` (the static plan
table), unless the environment says otherwise, so that which kernel computes
a layer does not depend on how busy the machine was while the tests ran, and
with ``MINICNN_CACHE_DIR`` in a temporary folder, so no test reads or writes
the user's plan cache. The tests of the autotuner turn it on themselves, and
the plan tests force every path by name.
"""

import os
import tempfile

os.environ.setdefault("MINICNN_AUTOTUNE", "0")
os.environ.setdefault("MINICNN_CACHE_DIR", tempfile.mkdtemp(prefix="minicnn-test-cache-"))

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import minicnn as mc

settings.register_profile(
    "ci", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "thorough", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "dev", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("MINICNN_HYPOTHESIS_PROFILE", "ci"))

BACKENDS = mc.available_backends()
FAST_BACKENDS = [name for name in BACKENDS if name != "numpy"]


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", BACKENDS)
    if "fast_backend_name" in metafunc.fixturenames:
        metafunc.parametrize("fast_backend_name", FAST_BACKENDS)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def to_numpy(a):
    """Bring an array back to the host (CuPy arrays have ``.get()``)."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)
