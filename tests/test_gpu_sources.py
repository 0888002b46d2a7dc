"""The CUDA sources without a GPU: every kernel the cupy backend launches exists, for float and double.

With nvcc on the PATH the sources are compiled to PTX (as .ci/compile_cuda.sh
does, warnings as errors) and the entry points read from the PTX; without
nvcc the test is skipped with that reason. The kernel names the backend asks
for are read from its source (``_launch("file.cu", "name"`` and
``_kernel("file.cu", "name"``) and from the implicit-GEMM plan.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from minicnn.backends import implicit_gemm

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "kernels" / "gpu"
BACKEND = ROOT / "minicnn" / "backends" / "cupy_backend.py"
_CALL = re.compile(r'_(?:launch|kernel)\(\s*"(?P<file>[a-z_0-9]+\.cu)",\s*"(?P<name>[a-z_0-9]+)"')


def _launched():
    names = {(m["file"], m["name"]) for m in _CALL.finditer(BACKEND.read_text())}
    for problem in implicit_gemm.PROBLEMS:
        for tile, _, _ in implicit_gemm.TILES:
            names.add(("implicit_gemm.cu", f"implicit_gemm_{problem}_{tile}"))
    return sorted(names)


def _tensor_core_kernels():
    return [f"implicit_gemm_{problem}_{implicit_gemm.TENSOR_CORE_TILE[0]}_f32" for problem in implicit_gemm.PROBLEMS]


@functools.lru_cache(maxsize=None)
def _entries(filename, tmp):
    ptx = Path(tmp) / f"{filename}.ptx"
    result = subprocess.run(["nvcc", "-ptx", "-arch=sm_80", "--std=c++14", "-Werror", "all-warnings",
                             str(SOURCES / filename), "-o", str(ptx)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(re.findall(r"^\.visible \.entry ([A-Za-z0-9_]+)", ptx.read_text(), re.M))


def test_the_backend_launches_kernels_of_every_gpu_source():
    files = {f for f, _ in _launched()}
    assert {"conv2d.cu", "pool2d.cu", "fused.cu", "implicit_gemm.cu"} <= files
    assert ("fused.cu", "softmax_cross_entropy") in _launched()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on the PATH (the CUDA toolkit is not installed)")
def test_every_launched_kernel_compiles_to_ptx_for_both_dtypes(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ptx"))
    missing = []
    for filename, name in _launched():
        entries = _entries(filename, tmp)
        missing += [f"{filename}: {name}_{suffix}" for suffix in ("f32", "f64") if f"{name}_{suffix}" not in entries]
    assert not missing, f"kernels the cupy backend launches but the PTX lacks: {missing}"
    entries = _entries("implicit_gemm.cu", tmp)
    assert set(_tensor_core_kernels()) <= entries  # the TF32 tensor-core kernels, float only
    ptx = (Path(tmp) / "implicit_gemm.cu.ptx").read_text()
    assert ptx.count("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32") >= len(implicit_gemm.PROBLEMS)


def _nvrtc():
    """libnvrtc (what cupy.RawModule compiles with), from the pip package nvidia-cuda-nvrtc-cu12 or the system; or None."""
    import ctypes
    import ctypes.util
    import glob
    import site

    candidates = [p for d in site.getsitepackages() for p in sorted(glob.glob(f"{d}/nvidia/cuda_nvrtc/lib/libnvrtc.so*"))]
    found = ctypes.util.find_library("nvrtc")
    for path in candidates + ([found] if found else []):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@pytest.mark.skipif(_nvrtc() is None, reason="libnvrtc is not installed (pip install nvidia-cuda-nvrtc-cu12)")
@pytest.mark.parametrize("filename", ["conv2d.cu", "pool2d.cu", "fused.cu", "implicit_gemm.cu"])
def test_every_source_compiles_with_nvrtc_as_cupy_compiles_it(filename):
    import ctypes

    from minicnn.backends.cupy_backend import kernel_source

    lib = _nvrtc()
    code = kernel_source(filename).encode("ascii", "backslashreplace")  # as cupy_backend._module passes it
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), code, filename.encode(), 0, None, None) == 0
    options = [b"--std=c++14", b"-arch=compute_90"]
    status = lib.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    assert status == 0, log.value.decode(errors="replace")
