"""The "cython" backend: compiled CPU kernels from ``kernels/cpu`` (OpenMP over the batch).

It subclasses the reference backend and overrides the primitives with calls
into the extension modules ``minicnn.kernels.cpu.conv2d`` and
``minicnn.kernels.cpu.pool2d``. This module owns the memory the kernels write
(outputs and per-thread workspaces); the kernels only compute.

Convolution has several kernel families, the *paths* of ``cython_paths.py``
(dense, direct, Winograd F(2x2, 3x3), rows, batch-in-lanes, batched, im2col + GEMM, and the NumPy
reference as the last resort). Each says which layers it ``takes`` for the
forward pass, the input gradient and the weight gradient. For each geometry
and dtype the backend makes a ``ConvPlan``, one path per operation:

* measured (``MINICNN_AUTOTUNE=1``, the default): the paths that take the
  layer are timed on this machine the first time it is seen, and the choice
  is kept in memory and in a cache file (``plans.py``), so the next run makes
  the same one without measuring. Layers below ``AUTOTUNE_MIN_MACS``
  multiply-adds are not measured (every path takes microseconds there);
* static (``MINICNN_AUTOTUNE=0``, or small layers): the first path that takes
  the layer in ``STATIC_ORDER``, whose limits come from measurements on the
  development machine (AMD Zen 4, AVX-512; each path's ``note``). On that
  machine a LeNet-5 step runs C1 on the row kernels, C3 forward on the direct
  kernel and its gradients on the batch-in-lanes kernel, C5 as a dense layer.

``explain_conv2d`` (and ``minicnn backends --explain``) prints the plan and
why each path does or does not take the layer. ``plan="name"`` in
``minicnn.functional.conv2d``/``conv2d_grad`` forces a path (the tests reach
every kernel that way).

Beyond the decks: the pooling options (``dilation``, ``ceil_mode``,
four-sided padding, ``count_include_pad``, ``divisor_override``) run in the
pooling kernels (see the comment above ``max_pool2d``); a convolution with
``padding="same"`` for an even kernel or four-sided padding is ``F.pad`` then
the plan's path with the symmetric rest; ``pad``/``pad_grad`` are the
reference's NumPy code, inherited (gathers and one ``add.at``: memory-bound,
no kernel would be faster), as are the activations and softmax of
``minicnn.elementwise`` on every backend.

Threads: ``num_threads`` (default: the CPUs this process may use, or the
environment variable ``MINICNN_NUM_THREADS``) OpenMP threads split the work.
BLAS runs on one thread inside the kernels, always: the SciPy BLAS the kernels
call is set to one thread when this backend loads (NumPy's own BLAS is left
alone), so the two thread pools never fight over the cores and a result never
depends on how BLAS split a product. Work is split in fixed blocks, so results
are the same bits with any number of threads. The kernels release the GIL, so
several Python threads may call them at once.

Memory: when it loads, the backend asks glibc to keep freed memory for reuse
(``keep_freed_memory``; ``MINICNN_KEEP_FREED_MEMORY=0`` leaves malloc as it
is), so a training loop does not page-fault its activations in every step.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..runtime import default_threads, env_flag, keep_freed_memory, single_threaded_blas
from .cython_paths import PATH_CLASSES
from .numpy_backend import NumpyBackend
from .plans import OPS, Autotuner, ConvPlan, PlanCache, autotune_enabled, cpu_model, plan_cache_path


# How long our idle OpenMP threads spin before they sleep, unless the user says otherwise: long
# enough to bridge the gap between two layers of a training step, short enough not to steal the
# cores from another library's threads for long (GNU libgomp counts spins, LLVM libomp milliseconds).
_SHORT_SPIN = {"GOMP_SPINCOUNT": "10000", "KMP_BLOCKTIME": "1"}


def _import_kernels():
    """Import the extension modules, with the OpenMP runtime they load set to spin only briefly.

    An OpenMP runtime reads its settings once, when it loads. By default
    libgomp's idle workers spin for about 300,000 rounds (milliseconds) after
    each parallel region; on a machine with few cores that spinning steals the
    core that another library's threads (BLAS, a second OpenMP runtime such as
    PyTorch's) need. Waiting passively instead costs a wake-up at every region
    (about 15% of a LeNet-5 step here); a short spin keeps most of the speed
    and little of the harm. The variables are restored afterwards, so runtimes
    loaded later keep their defaults; values the user set (including
    ``OMP_WAIT_POLICY``) are left alone.
    """
    user_set = "OMP_WAIT_POLICY" in os.environ
    added = [] if user_set else [key for key in _SHORT_SPIN if key not in os.environ]
    for key in added:
        os.environ[key] = _SHORT_SPIN[key]
    try:
        from minicnn.kernels.cpu import conv2d as conv_kernels
        from minicnn.kernels.cpu import pool2d as pool_kernels
        from minicnn.kernels.cpu import winograd as winograd_kernels
    finally:
        for key in added:
            os.environ.pop(key, None)
    return conv_kernels, pool_kernels, winograd_kernels


class _KernelBlas:
    """Keeps the BLAS that the kernels call (SciPy's, through ``scipy.linalg.cython_blas``) on one thread.

    NumPy and SciPy wheels each bundle their own OpenBLAS; only SciPy's is set,
    once, so NumPy's ``@`` in the user's own code keeps its threads. Where the
    two cannot be told apart (one shared BLAS), nothing is set for the whole
    process and ``per_call`` is True: each kernel call then limits BLAS for its
    own duration (about 0.01 ms).
    """

    def __init__(self):

        self.per_call = True
        self.limiter = single_threaded_blas()
        try:
            import scipy
            import scipy.linalg  # noqa: F401  (loads the BLAS the kernels call)
            from threadpoolctl import ThreadpoolController

            roots = (os.path.dirname(scipy.__file__), os.path.dirname(scipy.__file__) + ".libs")
            mine = [lib for lib in ThreadpoolController().select(user_api="blas").lib_controllers
                    if any(os.path.realpath(lib.filepath).startswith(os.path.realpath(r)) for r in roots)]
            if mine:
                for lib in mine:
                    lib.set_num_threads(1)
                self.per_call = False
        except Exception:  # threadpoolctl missing or unable to inspect: limit call by call
            self.per_call = True

    def __enter__(self):
        if self.per_call:
            self.limiter.__enter__()
        return self

    def __exit__(self, *exc):
        if self.per_call:
            self.limiter.__exit__(*exc)
        return False


__all__ = ["CythonBackend"]


class CythonBackend(NumpyBackend):
    """Compiled CPU kernels: dense, direct, Winograd, row, batch-in-lanes and im2col + BLAS convolution; pooling loops."""

    name = "cython"

    #: The order in which paths are preferred for each operation when nothing is measured.
    STATIC_ORDER = {
        "forward": ("dense", "direct", "winograd", "winograd4", "winograd_wide", "winograd4_wide", "winograd_phases",
                    "rows", "batched", "im2col", "reference"),
        "input_grad": ("dense", "lanes", "direct", "winograd", "winograd4", "winograd_wide", "winograd4_wide",
                       "winograd_phases", "rows", "batched", "im2col", "reference"),
        "weight_grad": ("dense", "lanes", "direct", "winograd", "winograd4", "winograd_phases", "rows", "batched", "im2col",
                        "reference"),
    }
    #: Layers with fewer multiply-adds than this are planned by the static order, never timed.
    AUTOTUNE_MIN_MACS = 1_000_000

    def __init__(self, num_threads=None, autotune=None, cache_dir=None, autotuner=None):
        conv_kernels, pool_kernels, winograd_kernels = _import_kernels()

        self._conv = conv_kernels
        self._pool = pool_kernels
        self._winograd = winograd_kernels
        self.num_threads = default_threads() if num_threads is None else int(num_threads)
        self._blas = _KernelBlas()
        if env_flag("MINICNN_KEEP_FREED_MEMORY", True):
            # A training step frees and allocates the same activations every time; without this
            # glibc hands them back to the kernel and every step page-faults them in again: a LeNet-5
            # step at batch 64 took 3.10 ms against 1.82 ms with it (AMD Zen 5, 2 threads).
            keep_freed_memory()
        self._local = threading.local()
        self._direct_available = conv_kernels.direct_available()
        self._rows_grad_available = conv_kernels.rows_weight_grad_available()
        self._rows_available = conv_kernels.rows_available()
        self._lanes_available = conv_kernels.lanes_available()
        self.reference = NumpyBackend()
        self.paths = {cls.name: cls(self) for cls in PATH_CLASSES}
        self.autotune = autotune_enabled() if autotune is None else bool(autotune)
        self.autotuner = autotuner or Autotuner()
        self._cache_dir = cache_dir
        self._plan_cache = None
        self._plans = {}
        self._plan_lock = threading.RLock()

    # ------------------------------------------------------------------ machine
    @property
    def openmp(self):
        """True when the kernels were compiled with OpenMP."""
        return self._conv.openmp_enabled()

    @property
    def kernel_isa(self):
        """The instruction set of the kernel copies that run here ("x86-64-v4", "x86-64-v3", "x86-64", ...)."""
        isa = getattr(self._conv, "kernel_isa", None)
        return isa() if isa is not None else "unknown"

    def _workspace(self, name, shape, dtype, zero=False):
        """A scratch array kept between calls (one set per Python thread, so concurrent calls never share).

        Large fresh allocations are page-faulted in on every call; reusing
        them keeps the hot path free of allocation costs.
        """
        cache = self._local.__dict__.setdefault("workspaces", {})
        size = int(np.prod(shape))
        key = (name, np.dtype(dtype).char)
        buf = cache.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=dtype)
            cache[key] = buf
        view = buf[:size].reshape(shape)
        if zero:
            view.fill(0)
        return view

    # Below this many multiply-adds per thread, waking a second thread costs more than it saves
    # (and on a busy machine a parallel region waits for every thread to be scheduled).
    MIN_WORK_PER_THREAD = 250_000

    # Pooling does one comparison or addition per input pixel it reads, and is limited by memory
    # more than by arithmetic; a second thread pays off from smaller sizes.
    MIN_POOL_WORK_PER_THREAD = 100_000

    def _threads(self, work_items, work, grain=None):
        """Threads for a call with ``work_items`` independent items and ``work`` operations in all."""
        grain = self.MIN_WORK_PER_THREAD if grain is None else grain
        return max(1, min(self.num_threads, work_items, work // grain))

    def _path_threads(self, name, op, g, macs=None):
        """Threads for path ``name`` computing ``op`` of ``g``: as many as it has independent items of work
        (the images for most paths, blocks of tiles for the Winograd ones) and the work can feed."""
        return self._threads(self.paths[name].parallel_items(op, g), g.macs if macs is None else macs)

    def _pool_threads(self, planes, work):
        return self._threads(planes, work, self.MIN_POOL_WORK_PER_THREAD)

    #: Weight gradients are summed per fixed group of images (never per thread): at most this many
    #: groups, each a partial dW of its own, and at most this much memory for all of them (zeroing
    #: and adding up 16 partials of a deep layer's 2.4 MB dW cost more than its products gained).
    IMAGE_GROUPS = 16
    IMAGE_GROUPS_MAX_BYTES = 16 << 20

    def image_groups(self, n, partial_bytes):
        """How many fixed groups of images a weight gradient is summed in: a power of two (so 2, 4 or 8
        threads share them evenly) that depends on the shapes only, never on the thread count."""
        limit = max(1, min(n, self.IMAGE_GROUPS, self.IMAGE_GROUPS_MAX_BYTES // max(partial_bytes, 1)))
        return 1 << (limit.bit_length() - 1)

    # ---------------------------------------------------------- dense products
    # A fully connected layer (and a convolution whose filter covers its input) is one product on
    # the rows of X; the kernels cut it into fixed blocks of rows or filters (conv2d.pyx).
    DENSE_BLOCK_ROWS = 32
    DENSE_BLOCK_FILTERS = 32

    def dense_forward(self, x, w, b, y, threads):
        with self._blas:
            self._conv.dense_forward(x, w, b, y, self.DENSE_BLOCK_ROWS, threads)
        return y

    def dense_backward(self, x, w, dy, dx, dw, threads):
        with self._blas:
            self._conv.dense_backward(x, w, dy, dx, dw, self.DENSE_BLOCK_ROWS, self.DENSE_BLOCK_FILTERS, threads,
                                      dx is not None, True)

    def dense_input_grad(self, w, dy, dx, threads):
        with self._blas:
            # dX only: dW is not formed, and dx stands in for the unused X and dW arguments
            self._conv.dense_backward(dx, w, dy, dx, dx, self.DENSE_BLOCK_ROWS, self.DENSE_BLOCK_FILTERS, threads,
                                      True, False)

    def linear(self, x, w, b):
        n, o = x.shape[0], w.shape[0]
        y = np.empty((n, o), dtype=x.dtype)
        threads = self._threads(-(-n // self.DENSE_BLOCK_ROWS), n * o * w.shape[1])
        return self.dense_forward(x, w, b, y, threads)

    def linear_grad(self, x, w, dy, input_grad=True):
        n, o = dy.shape
        dx = np.empty_like(x) if input_grad else None
        dw = np.empty_like(w)
        blocks = -(-n // self.DENSE_BLOCK_ROWS) + -(-o // self.DENSE_BLOCK_FILTERS)
        self.dense_backward(x, w, dy, dx, dw, self._threads(blocks, 2 * n * o * w.shape[1]))
        return dx, dw, dy.sum(axis=0)

    # -------------------------------------------------------------- plans
    def takes(self, op, geometry, dtype):
        """``{path: ""}`` for the paths that take ``op`` of this layer, ``{path: reason}`` for the others."""
        return {name: self.paths[name].takes(op, geometry, dtype) for name in self.STATIC_ORDER[op]}

    def prefers(self, op, geometry, dtype):
        """``{path: ""}`` for the paths the static table would pick from, ``{path: reason}`` for those it skips."""
        return {name: self.paths[name].takes(op, geometry, dtype) or self.paths[name].prefers(op, geometry, dtype)
                for name in self.STATIC_ORDER[op]}

    def _static_choice(self, op, geometry, dtype):
        for name in self.STATIC_ORDER[op]:
            path = self.paths[name]
            if not path.takes(op, geometry, dtype) and not path.prefers(op, geometry, dtype):
                return name
        raise AssertionError("the reference path takes every layer")  # pragma: no cover

    def _plan_key(self, g, dtype):
        dims = "x".join(map(str, g.x_shape)) + "|" + "x".join(map(str, g.w_shape))
        hyper = f"s{g.stride[0]},{g.stride[1]}|p{g.padding[0]},{g.padding[1]}|d{g.dilation[0]},{g.dilation[1]}|g{g.groups}"
        return f"{np.dtype(dtype).name}|{dims}|{hyper}|t{self.num_threads}"

    @property
    def plan_cache(self):
        """The ``PlanCache`` file of this CPU model, instruction set and minicnn version."""
        if self._plan_cache is None:
            from .. import __version__

            # the table's paths and their operations too: a cache measured before a path (or a path's
            # operation) was added would never time it
            paths = ",".join(f"{name}:{'+'.join(path.ops)}" for name, path in self.paths.items())
            header = {"cpu": cpu_model(), "isa": self.kernel_isa, "minicnn": __version__, "paths": paths}
            path = plan_cache_path(header["cpu"], header["isa"], header["minicnn"], self._cache_dir)
            self._plan_cache = PlanCache(path, header)
        return self._plan_cache

    def plan_conv2d(self, geometry, dtype, plan=None):
        """The ``ConvPlan`` for this layer: forced by ``plan`` (a path name, a ``{op: name}`` dict or a
        ``ConvPlan`` of this backend), else remembered, read from the cache, measured or static."""
        if isinstance(plan, ConvPlan) and plan.backend == self.name:
            return plan
        if isinstance(plan, (str, dict)):
            return self._forced_plan(plan, geometry, dtype)
        if plan is not None and not isinstance(plan, ConvPlan):
            raise TypeError(f"plan must be a path name, a dict {{op: name}} or a ConvPlan, got {type(plan).__name__}")
        key = self._plan_key(geometry, dtype)
        found = self._plans.get(key)
        if found is not None:
            return found
        with self._plan_lock:
            found = self._plans.get(key)
            if found is None:
                found = self._make_plan(key, geometry, np.dtype(dtype))
                self._plans[key] = found
        return found

    def forget_plans(self):
        """Drop the plans remembered in this process (the cache file stays; see ``calibrate``)."""
        with self._plan_lock:
            self._plans.clear()

    def _forced_plan(self, plan, g, dtype):
        wanted = dict.fromkeys(OPS, plan) if isinstance(plan, str) else dict(plan)
        unknown = set(wanted) - set(OPS)
        if unknown:
            raise ValueError(f"plan: unknown operations {sorted(unknown)}; the operations are {list(OPS)}")
        base = self.plan_conv2d(g, dtype) if len(wanted) < len(OPS) else None
        chosen = {}
        for op in OPS:
            name = wanted.get(op)
            if name is None:
                chosen[op] = base.path(op)
                continue
            if name not in self.paths:
                raise ValueError(f"plan: unknown path {name!r}; the cython backend's paths are {list(self.paths)}")
            chosen[op] = name
        return ConvPlan(**chosen, source="forced", backend=self.name,
                        paired=self._same_pair(chosen["forward"], chosen["weight_grad"]))

    def _same_pair(self, forward, weight_grad):
        """The path itself when it runs both Y and dW and can form them from one column matrix, else ""."""
        return forward if forward == weight_grad and hasattr(self.paths[forward], "forward_and_weight_grad") else ""

    def _pairs(self, g, dtype):
        """The paths that form Y and dW of this layer in one pass (``forward_and_weight_grad``)."""
        return [n for n in self.STATIC_ORDER["forward"] if hasattr(self.paths[n], "forward_and_weight_grad")
                and not self.paths[n].takes("forward", g, dtype) and not self.paths[n].takes("weight_grad", g, dtype)]

    def _check_forced(self, plan, op, g, dtype):
        if plan.source != "forced":
            return
        reason = self.paths[plan.path(op)].takes(op, g, dtype)
        if reason:
            raise ValueError(f"plan: path {plan.path(op)!r} does not take the {op} of conv2d {g.describe()} "
                             f"({np.dtype(dtype).name}): {reason}")

    def _make_plan(self, key, g, dtype):
        static = {op: self._static_choice(op, g, dtype) for op in OPS}
        if not self.autotune or g.macs < self.AUTOTUNE_MIN_MACS:
            # one path for both gradients runs them in one pass where it can (as measured on the
            # development machine: the batch-in-lanes kernel packs dY once for dX and dW)
            same = static["input_grad"] if static["input_grad"] == static["weight_grad"] else ""
            fused = same if same and self.paths[same].fused else ""
            return ConvPlan(**static, source="static", backend=self.name, fused=fused,
                            paired=self._same_pair(static["forward"], static["weight_grad"]))
        cached = self.plan_cache.load().get(key)
        fused = cached.get("fused", "") if cached else ""
        paired = cached.get("paired", "") if cached else ""
        if cached is not None and "paired" in cached and all(
            cached[op] in self.paths and not self.paths[cached[op]].takes(op, g, dtype) for op in OPS
        ) and (not fused or (fused in self.paths and self.paths[fused].fused and not any(
            self.paths[fused].takes(op, g, dtype) for op in ("input_grad", "weight_grad")))
        ) and (not paired or paired in self._pairs(g, dtype)):
            return ConvPlan(cached["forward"], cached["input_grad"], cached["weight_grad"], source="cache",
                            backend=self.name, times=cached.get("times", {}), fused=fused, paired=paired)
        plan = self._measure(g, dtype)
        self.plan_cache.store(key, plan.as_dict())
        return plan

    def _measure(self, g, dtype):
        """Time every path that takes each operation (``Autotuner``); pick the fastest."""
        rng = np.random.default_rng(0)
        x = rng.standard_normal(g.x_shape).astype(dtype)
        w = rng.standard_normal(g.w_shape).astype(dtype)
        b = rng.standard_normal(g.o).astype(dtype)
        dy = rng.standard_normal(g.y_shape).astype(dtype)
        chosen, times = {}, {}
        # paths that form Y and dW from one column matrix (a transposed convolution's backward): timed against
        # the best forward and weight gradient one after the other, so even a lone candidate for either is timed
        pairs = self._pairs(g, dtype)
        # paths that compute dX and dW in one pass: then even a lone candidate for dX or dW is timed,
        # to compare that one pass with the two separate ones
        both = [n for n in self.STATIC_ORDER["input_grad"]
                if n != "reference" and self.paths[n].fused
                and not self.paths[n].takes("input_grad", g, dtype) and not self.paths[n].takes("weight_grad", g, dtype)]
        for op in OPS:
            names = [n for n in self.STATIC_ORDER[op] if n != "reference" and not self.paths[n].takes(op, g, dtype)]
            if not names:
                chosen[op] = "reference"
                continue
            runs = {name: self._runner(name, op, x, w, b, dy, g, self._path_threads(name, op, g)) for name in names}
            alone = (bool(both) and op != "forward") or (bool(pairs) and op != "input_grad")
            chosen[op], times[op] = self.autotuner.choose(runs, time_alone=alone)
        fused = ""
        separate = times.get("input_grad", {}).get(chosen["input_grad"]), times.get("weight_grad", {}).get(chosen["weight_grad"])
        if both and None not in separate:
            # dX and dW in one pass (the batch-in-lanes kernel packs dY once for both; im2col walks the
            # images once): the best such pass against the best dX and dW run one after the other
            runs = {name: self._runner(name, "grad", x, w, b, dy, g, self._path_threads(name, "grad", g, 2 * g.macs))
                    for name in both}
            best, fused_times = self.autotuner.choose(runs, time_alone=True)  # a lone one too: against the two
            times["grad"] = fused_times
            if fused_times.get(best, float("inf")) < sum(separate) * (1 - self.autotuner.tie):
                fused = best
        paired = ""
        apart = times.get("forward", {}).get(chosen["forward"]), times.get("weight_grad", {}).get(chosen["weight_grad"])
        if pairs and None not in apart:
            runs = {name: self._runner(name, "forward_and_weight_grad", x, w, b, dy, g,
                                       self._path_threads(name, "grad", g, 2 * g.macs)) for name in pairs}
            best, pair_times = self.autotuner.choose(runs, time_alone=True)
            times["forward_and_weight_grad"] = pair_times
            if pair_times.get(best, float("inf")) < sum(apart) * (1 - self.autotuner.tie):
                paired = best
        return ConvPlan(**chosen, source="measured", backend=self.name, times=times, fused=fused, paired=paired)

    def _runner(self, name, op, x, w, b, dy, g, threads):
        path = self.paths[name]
        if op == "forward":
            return lambda: self._run(path.forward, x, w, b, g, threads)
        if op == "grad":
            return lambda: self._run(path.grad, x, w, dy, g, threads)
        if op == "forward_and_weight_grad":
            return lambda: self._run(path.forward_and_weight_grad, x, w, dy, g, threads)
        return lambda: self._run(getattr(path, op), x, w, dy, g, threads)

    def _run(self, fn, *args):
        with self._blas:
            return fn(*args)

    def explain_conv2d(self, geometry, dtype=np.float32, plan=None):
        """A text: the plan for this layer and, for each operation, why each path does or does not take it."""
        dtype = np.dtype(dtype)
        chosen = self.plan_conv2d(geometry, dtype, plan)
        how = {"static": "the static order (MINICNN_AUTOTUNE=0, or a layer too small to time)",
               "measured": "measured just now on this machine", "cache": "measured earlier on this machine (cache)",
               "forced": "forced"}[chosen.source]
        lines = [f"conv2d {geometry.describe()}, {dtype.name}: {geometry.macs:,} multiply-adds",
                 f"backend cython, {self.num_threads} threads, kernels for {self.kernel_isa}; plan: {how}"]
        for op in OPS:
            lines.append(f"{op}: {chosen.path(op)}")
            measured = chosen.times.get(op, {})
            for name, reason in self.takes(op, geometry, dtype).items():
                mark = "*" if name == chosen.path(op) else " "
                timing = f"  {measured[name] * 1e3:.3f} ms" if name in measured else ""
                skipped = self.paths[name].prefers(op, geometry, dtype) if not reason else ""
                verdict = ("no: " + reason if reason else
                           "takes it" + (f"; the static table skips it: {skipped}" if skipped else ""))
                lines.append(f"  {mark} {name:<9} {verdict}{timing}")
        if chosen.fused:
            lines.append(f"dX and dW together: {chosen.fused} (one pass, measured faster than the two separately)")
        if chosen.paired:
            how = ("measured faster than the two separately" if "forward_and_weight_grad" in chosen.times
                   else "the plan runs both on it")
            lines.append(f"Y and dW together (a transposed convolution's backward): {chosen.paired} (one pass, {how})")
        if chosen.source == "cache":
            lines.append(f"cache: {self.plan_cache.path}")
        return "\n".join(lines)

    # -------------------------------------------------------------- convolution
    def conv2d(self, x, w, b, geometry, plan=None):
        plan = self.plan_conv2d(geometry, x.dtype, plan)
        self._check_forced(plan, "forward", geometry, x.dtype)
        threads = self._path_threads(plan.forward, "forward", geometry)
        return self._run(self.paths[plan.forward].forward, x, w, b, geometry, threads)

    def conv2d_grad(self, x, w, dy, geometry, input_grad=True, plan=None):
        plan = self.plan_conv2d(geometry, x.dtype, plan)
        g = geometry
        self._check_forced(plan, "weight_grad", g, x.dtype)
        if input_grad:
            self._check_forced(plan, "input_grad", g, x.dtype)
        if input_grad:
            fused = plan.fused
            if plan.source == "forced" and plan.input_grad == plan.weight_grad:
                fused = plan.input_grad  # a path forced for both gradients runs its own (fused) pass
            if fused and self.paths[fused].fused:
                return self._run(self.paths[fused].grad, x, w, dy, g, self._path_threads(fused, "grad", g, 2 * g.macs))
            dx = self._run(self.paths[plan.input_grad].input_grad, x, w, dy, g,
                           self._path_threads(plan.input_grad, "input_grad", g))
        else:
            dx = None
        dw, db = self._run(self.paths[plan.weight_grad].weight_grad, x, w, dy, g,
                           self._path_threads(plan.weight_grad, "weight_grad", g))
        return dx, dw, db

    def conv2d_input_grad(self, w, dy, geometry, plan=None):
        """dX alone, on the plan's input-gradient path. The paths take an ``x`` for its shape and dtype (a
        fused path also forms a dW it drops), so a zero array stands in: calloc'd, it costs no pass over memory."""
        g = geometry
        plan = self.plan_conv2d(g, dy.dtype, plan)
        self._check_forced(plan, "input_grad", g, dy.dtype)
        x = np.zeros(g.x_shape, dtype=dy.dtype)
        return self._run(self.paths[plan.input_grad].input_grad, x, w, dy, g, self._threads(g.n, g.macs))

    def conv2d_weight_grad(self, x, dy, geometry, plan=None):
        """(dW, db) alone, on the plan's weight-gradient path; ``w`` is read for its shape and dtype only."""
        g = geometry
        plan = self.plan_conv2d(g, x.dtype, plan)
        self._check_forced(plan, "weight_grad", g, x.dtype)
        w = np.zeros(g.w_shape, dtype=x.dtype)
        return self._run(self.paths[plan.weight_grad].weight_grad, x, w, dy, g, self._threads(g.n, g.macs))

    def conv2d_and_weight_grad(self, x, w, dy, geometry, plan=None):
        """``(Y, dW, db)`` from one column matrix of ``x`` on the plan's ``paired`` path (im2col:
        ``Im2colPath.forward_and_weight_grad``), chosen when the plan runs both on it or the autotuner measured
        that pass faster than the best two apart; the two primitives one after the other otherwise."""
        g = geometry
        plan = self.plan_conv2d(g, x.dtype, plan)
        self._check_forced(plan, "forward", g, x.dtype)
        self._check_forced(plan, "weight_grad", g, x.dtype)
        if not plan.paired:
            return super().conv2d_and_weight_grad(x, w, dy, geometry, plan)
        return self._run(self.paths[plan.paired].forward_and_weight_grad, x, w, dy, g,
                         self._path_threads(plan.paired, "grad", g, 2 * g.macs))

    # ------------------------------------------------------------------ pooling
    @staticmethod
    def _pool_fits_int32(g):
        """The pooling kernels take their window, stride, padding and dilation as C ints (and a dilated
        window's span ``D*(F - 1) + 1`` must fit too)."""
        spans = (d * (k - 1) + 1 for d, k in zip(g.dilation, g.kernel))
        return max(*g.kernel, *g.stride, *g.padding, *spans, g.h, g.w, g.oh, g.ow) <= 2**31 - 1

    # The pooling options beyond the deck need no path of their own: windows start at i*S - P_0 and are
    # clipped to the image, so ceil_mode and padding after the input are only a larger H_out; dilation
    # has its own loop in the kernel; and an average pool whose windows do not all divide by F_H*F_W
    # takes the (H_out, W_out) array of divisors.
    def max_pool2d(self, x, geometry):
        g = geometry
        if not self._pool_fits_int32(g):
            return self.reference.max_pool2d(x, g)
        y = np.empty(g.y_shape, dtype=x.dtype)
        argmax = np.empty(g.y_shape, dtype=np.int64)
        self._pool.max_pool2d_forward(
            x.reshape(g.n * g.c, g.h, g.w), y.reshape(g.n * g.c, g.oh, g.ow), argmax.reshape(g.n * g.c, g.oh, g.ow),
            *g.kernel, *g.stride, *g.padding, self._pool_threads(g.n * g.c, y.size * g.window), *g.dilation,
        )
        return y, argmax

    def _divisor_array(self, g, dtype):
        """``None`` when every window divides by ``F_H*F_W``, else the (H_out, W_out) divisors."""
        if g.plain_divisor:
            return None
        return np.ascontiguousarray(self.reference._divisors(g, dtype))

    def max_pool2d_grad(self, geometry, dy, argmax):
        g = geometry
        if not self._pool_fits_int32(g):
            return self.reference.max_pool2d_grad(g, dy, argmax)
        dx = np.empty(g.x_shape, dtype=dy.dtype)
        # 2x2 windows, stride 2, no padding, no dilation, covering the plane exactly: each pixel in one window
        tiles_2x2 = (g.kernel == (2, 2) and g.stride == (2, 2) and g.padding == (0, 0) and g.dilation == (1, 1)
                     and g.h == 2 * g.oh and g.w == 2 * g.ow)
        self._pool.max_pool2d_backward(
            dy.reshape(g.n * g.c, g.oh, g.ow),
            argmax.reshape(g.n * g.c, g.oh, g.ow),
            dx.reshape(g.n * g.c, g.h * g.w),
            self._pool_threads(g.n * g.c, dy.size * g.window),
            tiles_2x2,
        )
        return dx

    def avg_pool2d(self, x, geometry):
        g = geometry
        if not self._pool_fits_int32(g):
            return self.reference.avg_pool2d(x, g)
        y = np.empty(g.y_shape, dtype=x.dtype)
        self._pool.avg_pool2d_forward(
            x.reshape(g.n * g.c, g.h, g.w), y.reshape(g.n * g.c, g.oh, g.ow), *g.kernel, *g.stride, *g.padding,
            self._pool_threads(g.n * g.c, y.size * g.window), self._divisor_array(g, x.dtype),
        )
        return y

    def avg_pool2d_grad(self, geometry, dy):
        g = geometry
        if not self._pool_fits_int32(g):
            return self.reference.avg_pool2d_grad(g, dy)
        dx = np.empty(g.x_shape, dtype=dy.dtype)
        self._pool.avg_pool2d_backward(
            dy.reshape(g.n * g.c, g.oh, g.ow), dx.reshape(g.n * g.c, g.h, g.w), *g.kernel, *g.stride, *g.padding,
            self._pool_threads(g.n * g.c, dy.size * g.window), self._divisor_array(g, dy.dtype),
        )
        return dx

