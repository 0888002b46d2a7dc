"""Build the Cython CPU kernels (kernels/cpu/*.pyx) into the minicnn package.

The top-level ``kernels/`` folder is installed as the subpackage
``minicnn.kernels``: ``kernels/cpu/conv2d.pyx`` becomes the extension
``minicnn.kernels.cpu.conv2d`` and ``kernels/gpu/*.cu`` ship as package data
for the CuPy backend.

OpenMP: the flag is picked per compiler (``-fopenmp`` for gcc/clang,
``/openmp`` for MSVC). Set ``MINICNN_NO_OPENMP=1`` to build without it (the
kernels then run on one thread). A compiler that rejects the flag also falls
back to a serial build, with a warning.

Instruction sets: the C kernels are compiled for AVX-512, AVX2 and baseline
x86-64 and pick one at run time; ``MINICNN_SINGLE_TARGET=x86-64-v3`` builds
one copy for the given ``-march`` only (to test that copy on any machine).
"""

import os
import sys
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.extension import Extension

OPENMP_FLAGS = {
    "msvc": (["/openmp"], []),
    "unix": (["-fopenmp"], ["-fopenmp"]),
    "mingw32": (["-fopenmp"], ["-fopenmp"]),
}


def single_target_march():
    """``MINICNN_SINGLE_TARGET=x86-64-v3`` (or any -march value): one copy of each kernel for that
    instruction set instead of the run-time choice among AVX-512, AVX2 and baseline copies
    (kernels/cpu/multiversion.h), so that the AVX2 or baseline code can be tested anywhere."""
    value = os.environ.get("MINICNN_SINGLE_TARGET", "").strip()
    if value and not all(ch.isalnum() or ch in "-_." for ch in value):
        raise ValueError(f"MINICNN_SINGLE_TARGET must be an -march value such as x86-64-v3, got {value!r}")
    return value


class BuildExtOpenMP(build_ext):
    """build_ext that adds the compiler's OpenMP flags unless MINICNN_NO_OPENMP is set."""

    def build_extensions(self):
        use_openmp = os.environ.get("MINICNN_NO_OPENMP", "").strip().lower() not in ("1", "true", "yes", "on")
        single_target = single_target_march()
        compile_flags, link_flags = OPENMP_FLAGS.get(self.compiler.compiler_type, ([], []))
        if use_openmp and compile_flags and not self._compiler_accepts(compile_flags, link_flags):
            sys.stderr.write("minicnn: the compiler rejects OpenMP flags; building serial kernels\n")
            use_openmp = False
        for ext in self.extensions:
            if use_openmp:
                ext.extra_compile_args += compile_flags
                ext.extra_link_args += link_flags
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += ["-O3", "-Wno-unreachable-code", "-Wno-unused-function"]
                if single_target:
                    ext.extra_compile_args.append(f"-march={single_target}")
                    ext.define_macros.append(("MINICNN_SINGLE_TARGET", "1"))
        super().build_extensions()

    def _compiler_accepts(self, compile_flags, link_flags):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp_check.c")
            with open(src, "w") as f:
                f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n")
            try:
                objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=compile_flags)
                self.compiler.link_executable(objs, os.path.join(tmp, "omp_check"), extra_postargs=link_flags)
            except Exception:
                return False
        return True


def extensions():
    exts = []
    for pyx in sorted(glob(os.path.join("kernels", "cpu", "*.pyx"))):
        stem = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(
            Extension(
                f"minicnn.kernels.cpu.{stem}",
                [pyx],
                include_dirs=[numpy.get_include(), os.path.join("kernels", "cpu")],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                depends=sorted(glob(os.path.join("kernels", "cpu", "*.h"))),  # rebuild when a kernel header changes
            )
        )
    return cythonize(
        exts,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "initializedcheck": False,
            "cdivision": True,
            "nonecheck": False,
        },
    )


setup(
    packages=[
        "minicnn",
        "minicnn.backends",
        "minicnn.nn",
        "minicnn.models",
        "minicnn.data",
        "minicnn.exercises",
        "minicnn.exercises.templates",  # student.py, the workspace `minicnn exercises start` writes
        "minicnn.kernels",
        "minicnn.kernels.cpu",
        "minicnn.kernels.gpu",
    ],
    package_dir={"minicnn.kernels": "kernels"},
    package_data={
        "minicnn": ["explore_page.html"],
        "minicnn.kernels.cpu": ["*.pyx", "*.pxd", "*.h"],
        "minicnn.kernels.gpu": ["*.cu", "*.cuh"],
        "minicnn.data": ["mnist-5k/*.gz", "mnist-5k/README.md"],
    },
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtOpenMP},
    zip_safe=False,
)
