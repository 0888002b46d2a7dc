"""ConvTranspose2d forward + backward of two minicnn checkouts, in alternating processes.

    python benchmarks/conv_transpose_versions.py OLD_CHECKOUT NEW_CHECKOUT [--processes 8] [--steps 30]

Each checkout must have its kernels built in place (``python setup.py build_ext --inplace``, with
``MINICNN_SINGLE_TARGET=x86-64-v3`` for the AVX2 build). Every process loads one checkout's
``minicnn`` and ``kernels/`` (not the installed package), times ``--steps`` steps of the layer
``ConvTranspose2d(64, 32, 4, 2, 1)`` on a batch (32, 64, 16, 16) after three warm-up steps, and
prints its median; the processes of the two checkouts take turns, each with its own plan cache,
and the medians of their medians are compared (benchmarks/results/cpu-2core-amd-epyc-zen4-conv-transpose.txt).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time


def _load(root):
    """Import ``minicnn`` from the checkout ``root``, its kernels from ``root/kernels``."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, root)
    kernels = os.path.join(root, "kernels")
    spec = importlib.util.spec_from_file_location("minicnn.kernels", os.path.join(kernels, "__init__.py"),
                                                  submodule_search_locations=[kernels])
    module = importlib.util.module_from_spec(spec)
    sys.modules["minicnn.kernels"] = module
    spec.loader.exec_module(module)
    import minicnn

    if not minicnn.__file__.startswith(os.path.abspath(root)):
        raise SystemExit(f"loaded minicnn from {minicnn.__file__}, not from {root}")
    return minicnn


def _time_one(root, steps):
    import numpy as np

    mc = _load(root)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 64, 16, 16)).astype(np.float32)
    dy = rng.standard_normal((32, 32, 32, 32)).astype(np.float32)
    layer = mc.nn.ConvTranspose2d(64, 32, 4, 2, 1, rng=0)
    for _ in range(3):
        layer(x)
        layer.backward(dy)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        layer(x)
        layer.backward(dy)
        times.append(time.perf_counter() - start)
    print(f"{np.median(times) * 1e3:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: time OLD alone
    args = parser.parse_args(argv)
    if args.one:
        return _time_one(args.old, args.steps)
    import numpy as np

    caches = {name: tempfile.mkdtemp(prefix=f"minicnn-{name}-") for name in ("old", "new")}
    medians = {"old": [], "new": []}
    for _ in range(args.processes):
        for name in ("old", "new"):
            root = os.path.abspath(getattr(args, name))
            out = subprocess.run([sys.executable, __file__, root, root, "--one", "--steps", str(args.steps)],
                                 env={**os.environ, "MINICNN_CACHE_DIR": caches[name]},
                                 capture_output=True, text=True, check=True)
            medians[name].append(float(out.stdout.split()[-1]))
    old, new = np.median(medians["old"]), np.median(medians["new"])
    for name in ("old", "new"):
        print(name, " ".join(f"{t:.2f}" for t in medians[name]), f"median {np.median(medians[name]):.2f} ms")
    print(f"ratio {old / new:.2f}x")


if __name__ == "__main__":
    main()
