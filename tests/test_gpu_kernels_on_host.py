"""kernels/gpu/pool2d.cu run on the CPU: its logic checked against the reference where no GPU is.

The CUDA pooling kernels are plain C++ inside grid-stride loops, so with
``__global__``/``__device__`` defined away and a grid of one thread
(``blockIdx = threadIdx = 0``, ``blockDim = gridDim = 1``) the host C++
compiler builds them into a shared library whose loops visit every item in
turn. The "cupy" backend's own pooling methods then run on NumPy arrays, with
``_launch`` calling that library through ctypes, so the arguments the backend
passes (geometry, dilation, the average-pooling options) are checked too.
What this cannot see (the GPU's memory model, NVRTC) tests/gpu covers where a
GPU works; ``.ci/compile_cuda.sh`` compiles the file with nvcc.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn.backends.cupy_backend as cupy_backend
from minicnn.backends.numpy_backend import NumpyBackend

from strategies import pool_option_configs, seeds

SOURCE = Path(__file__).resolve().parents[1] / "kernels" / "gpu" / "pool2d.cu"
SHIM = """
struct minicnn_dim3 { unsigned x, y, z; };
static const minicnn_dim3 blockIdx = {0, 0, 0}, threadIdx = {0, 0, 0}, blockDim = {1, 1, 1}, gridDim = {1, 1, 1};
#define __global__
#define __device__
#define __restrict__
#include "%s"
"""
COMPILER = shutil.which("c++") or shutil.which("g++")
pytestmark = pytest.mark.skipif(COMPILER is None, reason="no host C++ compiler to build kernels/gpu/pool2d.cu with")
REFERENCE = NumpyBackend()


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pool2d_cu_on_host")
    (folder / "shim.cpp").write_text(SHIM % SOURCE)
    library = folder / "pool2d_host.so"
    subprocess.run([COMPILER, "-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-o", str(library),
                    str(folder / "shim.cpp")], check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(library))


@pytest.fixture(scope="module")
def gpu_on_host(host_kernels):
    """A CupyBackend whose arrays are NumPy's and whose kernels are the host build of pool2d.cu
    (on a subclass: the real class and the module's ``cupy`` are restored after this module)."""
    fake_cupy = type("HostCupy", (), {"ndarray": np.ndarray, "empty": staticmethod(np.empty), "int64": np.int64})

    class HostCupyBackend(cupy_backend.CupyBackend):
        def _launch(self, filename, name, dtype, total, arrays, sizes):
            assert filename == "pool2d.cu"
            kernel = getattr(host_kernels, f"{name}_{cupy_backend._SUFFIX[np.dtype(dtype)]}")
            kernel(*[a.ctypes.data_as(ctypes.c_void_p) for a in arrays], *[ctypes.c_int(int(s)) for s in sizes])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cupy_backend, "cupy", fake_cupy)
        yield HostCupyBackend.__new__(HostCupyBackend)


DTYPES = st.sampled_from([np.float32, np.float64])


def _close(got, want, dtype, terms):
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got, want, rtol=0, atol=4 * terms * eps * max(1.0, float(np.abs(want).max(initial=0))))


@given(config=pool_option_configs("max"), seed=seeds, dtype=DTYPES)
def test_cuda_max_pool_finds_the_reference_winners(gpu_on_host, config, seed, dtype):
    g = config.geometry
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 4, config.x_shape).astype(dtype)  # few values: many ties, first maximum wins
    y, idx = gpu_on_host.max_pool2d(x, g)
    want_y, want_idx = REFERENCE.max_pool2d(x, g)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)
    dy = rng.standard_normal(g.y_shape).astype(dtype)
    _close(gpu_on_host.max_pool2d_grad(g, dy, idx), REFERENCE.max_pool2d_grad(g, dy, want_idx), dtype,
           int(np.prod(g.kernel)))


@given(config=pool_option_configs("avg"), seed=seeds, dtype=DTYPES)
def test_cuda_avg_pool_options_agree_with_the_reference(gpu_on_host, config, seed, dtype):
    g = config.geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(config.x_shape).astype(dtype)
    _close(gpu_on_host.avg_pool2d(x, g), REFERENCE.avg_pool2d(x, g), dtype, int(np.prod(g.kernel)))
    dy = rng.standard_normal(g.y_shape).astype(dtype)
    _close(gpu_on_host.avg_pool2d_grad(g, dy), REFERENCE.avg_pool2d_grad(g, dy), dtype, int(np.prod(g.kernel)))
