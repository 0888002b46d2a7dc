"""Tests that need a GPU: they run only where the "cupy" backend works.

"cupy" is available when CuPy imports *and* a GPU runs a kernel
(``CupyBackend.check_available``). Elsewhere every test in this folder is
skipped, and the skip reason (also printed in the report header) says which
of the two facts failed, as ``minicnn.backends.unavailable_reason("cupy")``
tells it.
"""

from pathlib import Path

import pytest

import minicnn as mc
from minicnn.backends import unavailable_reason

CUPY_AVAILABLE = "cupy" in mc.available_backends()
SKIP_REASON = None if CUPY_AVAILABLE else f"the cupy backend is not available here: {unavailable_reason('cupy')}"
_HERE = Path(__file__).resolve().parent


def pytest_report_header(config):
    return f"minicnn cupy backend: {'available' if CUPY_AVAILABLE else SKIP_REASON}"


def pytest_collection_modifyitems(config, items):
    if CUPY_AVAILABLE:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
