"""Run the CUDA kernels of kernels/gpu on the CPU: each block's threads as C++ threads, ``__syncthreads`` a barrier.

The .cu sources are compiled with g++ (C++20) after a small header of shims
(``__global__``, ``__shared__``, ``blockIdx``, ``__syncthreads``,
``__float_as_uint``, ...). Blocks run one after the other, each with
``blockDim.x`` threads meeting at a ``std::barrier``, so ``__shared__``
arrays (static storage) belong to the running block. ``__CUDA_ARCH__`` is
700, so the TF32 tensor-core kernels run their CUDA-core loop (``mma.sync``
has no CPU form) -- or, with ``emulate_mma``, 800 with an emulated
``mma.sync`` that follows the PTX fragment layout, so the tensor-core
kernels' own loop runs too. This executes the kernels' own index arithmetic, tiling,
shared-memory staging and split reductions -- what a GPU run would execute
-- at CPU speed, on small problems. Every ``extern "C"`` kernel gets a
wrapper ``run_<name>(gx, gy, gz, bx, <its arguments>)``.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

SOURCES = Path(__file__).resolve().parents[1] / "kernels" / "gpu"

SHIMS = r"""
#include <barrier>
#include <cstring>
#include <functional>
#include <math.h>
#include <thread>
#include <vector>
struct dim3_ { unsigned x, y, z; };
static thread_local dim3_ threadIdx, blockIdx;
static dim3_ blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(n)
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 700
#endif
static inline void __syncthreads() { block_barrier->arrive_and_wait(); }
static inline unsigned __float_as_uint(float v) { unsigned u; std::memcpy(&u, &v, 4); return u; }
static inline float __uint_as_float(unsigned u) { float v; std::memcpy(&v, &u, 4); return v; }
/* mma.sync.m16n8k8 .tf32 of a warp, from the PTX ISA's fragment layout (g = lane/4, t = lane%4):
   A[row][k] is register (row >= 8) + 2*(k >= 4) of lane (row%8)*4 + k%4; B[k][col] is register
   (k >= 4) of lane col*4 + k%4; lane's c_i is C[g + 8*(i >= 2)][2t + i%2]. The lanes publish their
   registers, meet at the block's barrier, and each adds its 8 products in k order. */
static float mma_a[8][32][4], mma_b[8][32][2];
static void emulated_mma_m16n8k8_tf32(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                      unsigned b0, unsigned b1) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const unsigned a[4] = {a0, a1, a2, a3}, b[2] = {b0, b1};
    for (int r = 0; r < 4; ++r) mma_a[warp][lane][r] = __uint_as_float(a[r]);
    for (int r = 0; r < 2; ++r) mma_b[warp][lane][r] = __uint_as_float(b[r]);
    __syncthreads();
    float out[4];
    for (int i = 0; i < 4; ++i) {
        const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float acc = c[i];
        for (int k = 0; k < 8; ++k)
            acc += mma_a[warp][(row % 8) * 4 + k % 4][(row >= 8) + 2 * (k >= 4)] * mma_b[warp][col * 4 + k % 4][k >= 4];
        out[i] = acc;
    }
    __syncthreads();
    for (int i = 0; i < 4; ++i) c[i] = out[i];
}
static void launch(int gx, int gy, int gz, int bx, const std::function<void()>& kernel) {
    gridDim = {(unsigned)gx, (unsigned)gy, (unsigned)gz};
    blockDim = {(unsigned)bx, 1, 1};
    for (int z = 0; z < gz; ++z) for (int y = 0; y < gy; ++y) for (int x = 0; x < gx; ++x) {
        std::barrier<> barrier(bx);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (int t = 0; t < bx; ++t)
            threads.emplace_back([=, &kernel] {
                threadIdx = {(unsigned)t, 0, 0};
                blockIdx = {(unsigned)x, (unsigned)y, (unsigned)z};
                kernel();
            });
        for (auto& thread : threads) thread.join();
    }
}
"""

_SIGNATURE = re.compile(r'extern\s+"C"\s+void\s+(\w+)\s*\(([^)]*)\)')


def available():
    return shutil.which("g++") is not None


def _wrappers(preprocessed):
    """``run_<kernel>`` for every extern "C" kernel of the preprocessed source, and the kernels' parameter types."""
    out, signatures = [], {}
    for name, params in _SIGNATURE.findall(preprocessed):
        parts = [p.strip() for p in params.split(",") if p.strip()]
        names = [re.findall(r"\w+", p)[-1] for p in parts]
        types = [p[: p.rfind(n)].strip() for p, n in zip(parts, names)]
        signatures[name] = types
        joined = ", ".join(parts)
        out.append(f'extern "C" void run_{name}(int gx, int gy, int gz, int bx, {joined}) '
                   f"{{ launch(gx, gy, gz, bx, [&] {{ {name}({', '.join(names)}); }}); }}")
    return "\n".join(out), signatures


def build(filename, folder, emulate_mma=False, code=None):
    """Compile ``kernels/gpu/<filename>`` (or the source text ``code``) for the CPU into ``folder``; a :class:`CpuModule`.

    ``emulate_mma``: compile the sm_80 code path with the emulated ``mma.sync`` above (the tensor-core kernels' own loop).
    """
    defines = "#define __CUDA_ARCH__ 800\n#define MINICNN_EMULATE_MMA 1\n" if emulate_mma else ""
    text = code if code is not None else (SOURCES / filename).read_text(encoding="utf-8")
    source = defines + SHIMS + text
    folder = Path(folder) / ("mma" if emulate_mma else "plain")
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / f"{filename}.cpp"
    plain.write_text(source, encoding="utf-8")
    pre = subprocess.run(["g++", "-std=c++20", "-E", "-P", str(plain)], capture_output=True, text=True, check=True).stdout
    wrappers, signatures = _wrappers(pre[pre.find("struct dim3_"):])
    full = folder / f"{filename}-run.cpp"
    full.write_text(source + "\n" + wrappers + "\n", encoding="utf-8")
    library = folder / f"{filename}.so"
    result = subprocess.run(["g++", "-std=c++20", "-O1", "-fPIC", "-shared", "-pthread", "-w", str(full), "-o", str(library)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"g++ could not build {filename} for the CPU:\n{result.stderr[-4000:]}")
    return CpuModule(ctypes.CDLL(str(library)), signatures)


_CTYPES = {"int": ctypes.c_int, "long long": ctypes.c_longlong, "float": ctypes.c_float, "double": ctypes.c_double}


class CpuModule:
    """``module.launch(name, grid, block, *args)`` as ``cupy.RawKernel(grid, block, args)``; arrays are NumPy."""

    def __init__(self, library, signatures):
        self.library, self.signatures = library, signatures

    def launch(self, name, grid, block, *args):
        grid = tuple(grid) + (1,) * (3 - len(tuple(grid)))
        types = self.signatures[name]
        if len(types) != len(args):
            raise TypeError(f"{name} takes {len(types)} arguments, got {len(args)}")
        converted = []
        for kind, value in zip(types, args):
            if "*" in kind:
                assert isinstance(value, np.ndarray) and value.flags.c_contiguous, (name, kind)
                converted.append(ctypes.c_void_p(value.ctypes.data))
            else:
                scalar = _CTYPES[kind.replace("const", "").strip()]
                converted.append(scalar(float(value) if scalar in (ctypes.c_float, ctypes.c_double) else int(value)))
        function = getattr(self.library, f"run_{name}")
        function.restype = None
        function(ctypes.c_int(grid[0]), ctypes.c_int(grid[1]), ctypes.c_int(grid[2]), ctypes.c_int(block), *converted)


# --------------------------------------------------------------------------- a CuPy stand-in
class _Kernel:
    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, grid, block, args):
        self.module.launch(self.name, grid, block[0], *args)


def fake_cupy(folder, emulate_mma=False):
    """A module that answers what minicnn/backends/cupy_backend.py asks of ``cupy``, on NumPy arrays.

    Arrays are NumPy; ``RawModule(code=...)`` compiles the source with :func:`build`
    and ``get_function(name)`` returns a kernel launched on the CPU. With it the
    backend's own wrappers (argument order, sizes, grids, scratch buffers) run.
    """
    import hashlib
    import types

    fake = types.ModuleType("cupy")
    for name in ("empty", "empty_like", "asarray", "ascontiguousarray", "matmul", "arange", "zeros", "maximum", "add",
                 "float32", "float64", "int8", "int64", "uint8", "ndarray"):
        setattr(fake, name, getattr(np, name))
    built = {}

    class RawModule:
        def __init__(self, code, options=()):
            key = hashlib.sha256(code.encode()).hexdigest()[:16]
            if key not in built:
                built[key] = build(f"module-{key}.cu", folder, emulate_mma=emulate_mma, code=code)
            self.module = built[key]

        def get_function(self, name):
            return _Kernel(self.module, name)

    fake.RawModule = RawModule
    return fake
