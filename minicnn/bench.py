"""``minicnn bench``: time minicnn's kernels against PyTorch, CPU and GPU, in one process.

Method (so the ratios are fair):

* every implementation of a case runs in the same process on the same arrays;
* the implementations take turns in blocks of a few runs, many times over,
  so that a slow moment of the machine hits them alike;
* the first run of each block is not timed: an OpenMP runtime's idle
  threads keep spinning after their work and would be charged to the next
  library; PyTorch's OpenMP runtime also gets the same short spin-wait as
  minicnn's (``GOMP_SPINCOUNT``/``KMP_BLOCKTIME``, unless you set them or
  ``OMP_WAIT_POLICY`` yourself);
* each gets warm-up runs first (the GPU compiles its kernels then, so
  compile time is excluded), and GPU timers stop only after the device has
  synchronised.

The figure reported is the median. A ratio is ``PyTorch time / minicnn
time`` on the same device: above 1, minicnn is faster.

Cases:

* conv2d forward + all gradients (dx, dw, db) for LeNet-5's C1 and C3, a
  mid-network and a deep 3x3 layer and a 1x1 layer; for the cython backend
  also every kernel path that takes each operation, timed alone, and how the
  path its plan chose compares with the fastest;
* the forward pass of VGG-16's 13 convolutions (with ReLU and max pooling)
  on one 224x224 image, and the forward path the plan gave each layer;
* max and average pooling 2x2, forward + backward;
* LeNet-5 (ReLU, max pooling) SGD-with-momentum training steps, images/s.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import minicnn as mc
import minicnn.functional as F

__all__ = ["CASES", "run_benchmarks", "add_parser", "run", "machine_info"]


@dataclass
class Case:
    name: str
    kind: str  # "conv", "pool", "train", "model"
    description: str
    params: dict = field(default_factory=dict)
    flops: float = 0.0  # floating-point operations per run (2 per multiply-add), for GFLOP/s
    images: int = 0  # images per run (training cases)


def _conv_flops(x_shape, w_shape, padding):
    from . import shapes

    n, c, h, w = x_shape
    o, cg, kh, kw = w_shape
    oh = shapes.conv_output_size(h, kh, 1, padding)
    ow = shapes.conv_output_size(w, kw, 1, padding)
    # forward, input gradient and weight gradient are one multiply-add each per MAC
    return 3 * 2 * n * shapes.conv2d_macs(c, o, (kh, kw), (oh, ow))


CASES = [
    Case("conv_c1", "conv", "conv2d fwd+bwd, LeNet C1: x 64x1x32x32, w 6x1x5x5",
         dict(x=(64, 1, 32, 32), w=(6, 1, 5, 5), padding=0)),
    Case("conv_c3", "conv", "conv2d fwd+bwd, LeNet C3: x 64x6x14x14, w 16x6x5x5",
         dict(x=(64, 6, 14, 14), w=(16, 6, 5, 5), padding=0)),
    Case("conv_mid", "conv", "conv2d fwd+bwd, mid 3x3: x 32x64x56x56, w 64x64x3x3, pad 1",
         dict(x=(32, 64, 56, 56), w=(64, 64, 3, 3), padding=1)),
    Case("conv_deep", "conv", "conv2d fwd+bwd, deep 3x3: x 16x256x14x14, w 256x256x3x3, pad 1",
         dict(x=(16, 256, 14, 14), w=(256, 256, 3, 3), padding=1)),
    Case("conv_1x1", "conv", "conv2d fwd+bwd, 1x1: x 32x128x28x28, w 128x128x1x1",
         dict(x=(32, 128, 28, 28), w=(128, 128, 1, 1), padding=0)),
    Case("vgg16", "model", "VGG-16's 13 convolutions (+ ReLU, 5 max pools), forward of one 3x224x224 image",
         dict(x=(1, 3, 224, 224), config="vgg16")),
    Case("maxpool", "pool", "max pool 2x2 fwd+bwd, x 64x6x28x28", dict(x=(64, 6, 28, 28), kind="max")),
    Case("avgpool", "pool", "avg pool 2x2 fwd+bwd, x 64x6x28x28", dict(x=(64, 6, 28, 28), kind="avg")),
    Case("train_b64", "train", "LeNet-5 (relu, max) SGD-momentum step, batch 64", dict(batch=64)),
    Case("train_b256", "train", "LeNet-5 (relu, max) SGD-momentum step, batch 256", dict(batch=256)),
    Case("train_b1024", "train", "LeNet-5 (relu, max) SGD-momentum step, batch 1024", dict(batch=1024)),
]
def _vgg_layers(config, x_shape):
    """(x_shape, w_shape) of each 3x3/1 pad-1 convolution of a VGG configuration ("M": a 2x2/2 max pool)."""
    from .models.zoo import VGG_CONFIGS

    n, c, h, w = x_shape
    layers = []
    for item in VGG_CONFIGS[config]:
        if item == "M":
            h, w = h // 2, w // 2
        else:
            layers.append(((n, c, h, w), (item, c, 3, 3)))
            c = item
    return layers


for _case in CASES:
    if _case.kind == "conv":
        _case.flops = _conv_flops(_case.params["x"], _case.params["w"], _case.params["padding"])
    if _case.kind == "model":  # forward only: a third of _conv_flops' forward + two gradients
        _case.flops = sum(_conv_flops(x, w, 1) / 3 for x, w in _vgg_layers(_case.params["config"], _case.params["x"]))
    if _case.kind == "train":
        _case.images = _case.params["batch"]


# ----------------------------------------------------------------- implementations
#: The "cupy" backend with its implicit-GEMM convolutions (float32, and opt-in TF32): conv cases only.
CUPY_VARIANTS = {"cupy-implicit-gemm": {"conv_algorithm": "implicit_gemm", "tf32": False},
                 "cupy-implicit-gemm-tf32": {"conv_algorithm": "implicit_gemm", "tf32": True}}


def _sync_for(impl):
    if impl.startswith("cupy"):
        import cupy

        return cupy.cuda.Device().synchronize
    if impl == "torch-cuda":
        import torch

        return torch.cuda.synchronize
    return lambda: None


def _to_device(a, impl):
    if impl.startswith("cupy"):
        import cupy

        return cupy.asarray(a)
    return a


def _torch_device(impl):
    return "cuda" if impl == "torch-cuda" else "cpu"


def _make_conv(impl, params, rng):
    x = rng.standard_normal(params["x"]).astype(np.float32)
    w = (rng.standard_normal(params["w"]) * 0.1).astype(np.float32)
    b = np.zeros(params["w"][0], np.float32)
    pad = params["padding"]
    if impl.startswith("torch"):
        import torch

        dev = _torch_device(impl)
        xt = torch.tensor(x, device=dev, requires_grad=True)
        wt = torch.tensor(w, device=dev, requires_grad=True)
        bt = torch.tensor(b, device=dev, requires_grad=True)
        dyt = torch.ones(torch.nn.functional.conv2d(xt, wt, bt, padding=pad).shape, device=dev)

        def step():
            xt.grad = wt.grad = bt.grad = None
            torch.nn.functional.conv2d(xt, wt, bt, padding=pad).backward(dyt)

        return step
    xd, wd, bd = (_to_device(a, impl) for a in (x, w, b))
    dy = _to_device(np.ones(mc.shapes.conv2d_output_shape(x.shape, w.shape, padding=pad), np.float32), impl)
    settings = CUPY_VARIANTS.get(impl, {})
    name = "cupy" if settings else impl

    def step():
        backend = mc.get_backend(name)
        saved = {key: getattr(backend, key) for key in settings}
        try:
            for key, value in settings.items():
                setattr(backend, key, value)
            F.conv2d(xd, wd, bd, padding=pad, backend=name)
            F.conv2d_grad(xd, wd, dy, padding=pad, backend=name)
        finally:
            for key, value in saved.items():
                setattr(backend, key, value)

    return step


def _make_pool(impl, params, rng):
    x = rng.standard_normal(params["x"]).astype(np.float32)
    kind = params["kind"]
    if impl.startswith("torch"):
        import torch

        dev = _torch_device(impl)
        xt = torch.tensor(x, device=dev, requires_grad=True)
        pool = getattr(torch.nn.functional, f"{kind}_pool2d")
        dyt = torch.ones(pool(xt, 2).shape, device=dev)

        def step():
            xt.grad = None
            pool(xt, 2).backward(dyt)

        return step
    xd = _to_device(x, impl)
    dy = _to_device(np.ones(mc.shapes.pool2d_output_shape(x.shape, 2), np.float32), impl)
    if kind == "max":

        def step():
            _, idx = F.max_pool2d_with_indices(xd, 2, backend=impl)
            F.max_pool2d_grad_from_forward(xd, dy, 2, indices=idx, backend=impl)

    else:

        def step():
            F.avg_pool2d(xd, 2, backend=impl)
            F.avg_pool2d_grad(xd, dy, 2, backend=impl)

    return step


def _torch_lenet5(device):
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ).to(device)


def _make_train(impl, params, rng):
    batch = params["batch"]
    x = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    if impl.startswith("torch"):
        import torch

        dev = _torch_device(impl)
        net = _torch_lenet5(dev)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = torch.nn.CrossEntropyLoss()
        xt = torch.tensor(x, device=dev)
        yt = torch.tensor(labels, device=dev)

        def step():
            opt.zero_grad()
            loss_fn(net(xt), yt).backward()
            opt.step()

        return step
    from .train import step as training_step

    net = mc.models.lenet5(activation="relu", pool="max", seed=0).fuse()  # as `minicnn train` runs it
    if impl == "cupy":
        net.to("gpu")
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    opt = mc.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    xd, yd = _to_device(x, impl), _to_device(labels, impl)

    def step():  # the step of `minicnn train` and the README: no thread settings of the user's own
        with mc.use_backend(impl):
            training_step(net, loss_fn, opt, xd, yd)

    return step


def _make_model(impl, params, rng):
    """Inference through a VGG configuration's convolutions: conv 3x3 pad 1 + bias, ReLU, and 2x2/2 max pools."""
    from .models.zoo import VGG_CONFIGS

    x = rng.standard_normal(params["x"]).astype(np.float32)
    weights = [((rng.standard_normal(w) * np.sqrt(2 / (9 * w[1]))).astype(np.float32), np.zeros(w[0], np.float32))
               for _, w in _vgg_layers(params["config"], params["x"])]
    config = VGG_CONFIGS[params["config"]]
    if impl.startswith("torch"):
        import torch

        dev = _torch_device(impl)
        tw = [(torch.tensor(w, device=dev), torch.tensor(b, device=dev)) for w, b in weights]
        xt = torch.tensor(x, device=dev)

        def step():
            with torch.no_grad():
                y, k = xt, 0
                for item in config:
                    if item == "M":
                        y = torch.nn.functional.max_pool2d(y, 2)
                    else:
                        y = torch.relu_(torch.nn.functional.conv2d(y, *tw[k], padding=1))
                        k += 1
            return y

        return step
    xp = np
    if impl == "cupy":
        import cupy as xp
    dw = [(_to_device(w, impl), _to_device(b, impl)) for w, b in weights]
    xd = _to_device(x, impl)

    def step():
        y, k = xd, 0
        for item in config:
            if item == "M":
                y = F.max_pool2d(y, 2, backend=impl)
            else:
                y = F.conv2d(y, *dw[k], padding=1, backend=impl)
                xp.maximum(y, 0, out=y)
                k += 1
        return y

    return step


_FACTORIES = {"conv": _make_conv, "pool": _make_pool, "train": _make_train, "model": _make_model}


def _same_openmp_settings_for_torch():
    """Give PyTorch's OpenMP runtime the short spin-wait minicnn's runtime uses (unless the user chose).

    Both libraries then run under the same settings, and neither one's idle
    threads hold the cores for milliseconds while the other is being timed.
    An OpenMP runtime reads these variables when it loads, so this must run
    before ``import torch``; it changes nothing once torch is imported.
    """
    from minicnn.backends.cython_backend import _SHORT_SPIN

    if "OMP_WAIT_POLICY" in os.environ:
        return
    for key, value in _SHORT_SPIN.items():
        os.environ.setdefault(key, value)


def implementations(include_reference=False):
    """The implementations present here: minicnn backends, then PyTorch CPU/CUDA when installed."""
    impls = [b for b in mc.available_backends() if b != "numpy" or include_reference]
    if "cupy" in impls:
        impls[impls.index("cupy") + 1 : impls.index("cupy") + 1] = list(CUPY_VARIANTS)
    _same_openmp_settings_for_torch()
    try:
        import torch

        impls.append("torch")
        if torch.cuda.is_available():
            impls.append("torch-cuda")
    except ImportError:
        pass
    return impls


def _device_of(impl):
    return "gpu" if impl.startswith("cupy") or impl == "torch-cuda" else "cpu"


BLOCK = 5  # consecutive runs of one implementation before the next takes its turn


def time_case(case, impls, repeats, warmup=3, seed=0):
    """Median seconds per run of each implementation; implementations take turns in blocks of runs.

    In a block, the first run after a switch is not timed: it pays for the
    other library's threads still holding the cores (an OpenMP runtime's idle
    workers spin for milliseconds before they sleep) and for waking its own.
    The next ``BLOCK - 1`` runs are timed back to back, as a training loop runs.
    """
    rng = np.random.default_rng(seed)
    steps = {impl: _FACTORIES[case.kind](impl, case.params, rng) for impl in impls}
    syncs = {impl: _sync_for(impl) for impl in impls}
    for impl in impls:
        for _ in range(warmup):
            steps[impl]()
        syncs[impl]()
    times = {impl: [] for impl in impls}
    rounds = max(1, -(-repeats // (BLOCK - 1)))
    for _ in range(rounds):
        for impl in impls:
            steps[impl]()
            syncs[impl]()
            for _ in range(BLOCK - 1):
                start = time.perf_counter()
                steps[impl]()
                syncs[impl]()
                times[impl].append(time.perf_counter() - start)
    return {impl: statistics.median(ts) for impl, ts in times.items()}, times


def machine_info():
    """What the numbers were measured on."""
    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "minicnn": mc.__version__,
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "backends": mc.available_backends(),
    }
    from .backends.plans import cpu_model

    info["cpu"] = cpu_model()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        info["instruction_sets"] = [f for f in ("avx2", "fma", "avx512f", "avx512bw", "avx512vl") if f in flags]
    except OSError:
        pass
    info["openblas_env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}
    try:
        import threadpoolctl

        info["blas"] = [{k: lib.get(k) for k in ("prefix", "architecture", "num_threads")}
                        for lib in threadpoolctl.threadpool_info() if lib.get("user_api") == "blas"]
    except Exception:  # threadpoolctl is a dependency, but a broken BLAS must not stop the benchmark
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            # cuDNN's float32 convolutions run on TF32 tensor cores while this is True (PyTorch's default)
            info["torch_cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
    except ImportError:
        pass
    if "cupy" in info["backends"]:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        info["cupy"] = cupy.__version__
    if "cython" in info["backends"]:
        backend = mc.get_backend("cython")
        info["cython_threads"] = backend.num_threads
        info["openmp"] = backend.openmp
        info["kernel_isa"] = backend.kernel_isa
        info["autotune"] = backend.autotune
    return info


def cpu_gemm_rate(size=2048, repeats=5):
    """The machine's float32 GEMM rate in GFLOP/s: NumPy's ``a @ b`` on two ``size`` x ``size``
    matrices, all BLAS threads, median of ``repeats`` after one warm-up (the yardstick for the
    mid-layer convolution, which is mostly matrix products)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def calibrate():
    """Forget the cython backend's measured plans, in memory and on disk, so they are measured anew."""
    if "cython" not in mc.available_backends():
        return "calibrate: the cython backend is not available here; nothing to measure"
    backend = mc.get_backend("cython")
    backend.forget_plans()
    path = backend.plan_cache.path
    try:
        path.unlink()
        return f"calibrate: removed {path}; every layer's kernel paths are measured again"
    except FileNotFoundError:
        return f"calibrate: no plan cache yet ({path}); every layer's kernel paths are measured"


def run_benchmarks(case_names=None, impls=None, repeats=15, include_reference=False, log=print):
    """Run the chosen cases; return a JSON-ready dict with medians, raw times and ratios.

    With the mid-layer case on the CPU, the machine's float32 GEMM rate is
    measured too, and the case's row gives each CPU implementation's GFLOP/s
    as a fraction of it.
    """
    impls = impls or implementations(include_reference)
    chosen = [c for c in CASES if case_names is None or c.name in case_names]
    results = []
    for case in chosen:
        case_impls = [i for i in impls if case.kind == "conv" or i not in CUPY_VARIANTS]
        if case.name == "train_b1024":
            # batch 1024 is a GPU size; CPU implementations are timed at 64 and 256.
            case_impls = [i for i in case_impls if _device_of(i) == "gpu"]
        big = case.name in BIG_CASES
        if big and "numpy" in case_impls:
            case_impls.remove("numpy")
        if not case_impls:
            continue
        n = max(3, repeats // 3) if big else repeats
        medians, raw = time_case(case, case_impls, n)
        row = {"case": case.name, "description": case.description, "repeats": n, "median_s": medians, "raw_s": raw}
        if case.flops:
            row["gflops"] = {i: case.flops / t / 1e9 for i, t in medians.items()}
        if case.name == "conv_mid" and any(_device_of(i) == "cpu" for i in case_impls):
            rate = cpu_gemm_rate()
            row["cpu_gemm_gflops"] = rate
            row["fraction_of_cpu_gemm"] = {i: g / rate for i, g in row["gflops"].items() if _device_of(i) == "cpu"}
        if case.images:
            row["images_per_s"] = {i: case.images / t for i, t in medians.items()}
        row["ratio_torch_over_minicnn"] = _ratios(medians)
        if case.kind == "conv" and "cython" in case_impls:
            row["cython_paths"] = time_paths(case, n)
        if case.kind == "model" and "cython" in case_impls:
            row["cython_forward_paths"] = _model_plans(case)
        results.append(row)
        log(_format_row(row))
    return {"machine": machine_info(), "method": __doc__.split("Cases:")[0].strip(), "results": results}


BIG_CASES = ("conv_mid", "conv_deep", "conv_1x1", "vgg16")


def _model_plans(case):
    """The forward path the cython backend's plan takes for each convolution of a model case."""
    from . import shapes

    backend = mc.get_backend("cython")
    return [{"x": list(x), "w": list(w),
             "forward": backend.plan_conv2d(shapes.conv2d_geometry(x, w, padding=1), np.float32).forward}
            for x, w in _vgg_layers(case.params["config"], case.params["x"])]


def time_paths(case, repeats):
    """For a conv case: every cython path that takes each operation, timed alone (medians), the
    path the backend's plan chose, and chosen time / fastest time per operation (1.0: the plan
    picked the fastest path)."""
    from . import shapes

    backend = mc.get_backend("cython")
    params = case.params
    geometry = shapes.conv2d_geometry(params["x"], params["w"], padding=params["padding"])
    plan = backend.plan_conv2d(geometry, np.float32)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(geometry.x_shape).astype(np.float32)
    w = (rng.standard_normal(geometry.w_shape) * 0.1).astype(np.float32)
    dy = np.ones(geometry.y_shape, np.float32)
    report = {"plan": plan.as_dict() | {"source": plan.source}, "ops": {}}
    for op in ("forward", "input_grad", "weight_grad"):
        takers = [name for name, reason in backend.takes(op, geometry, np.float32).items()
                  if not reason and name != "reference"]
        steps = {}
        for name in takers:
            forced = mc.backends.plans.ConvPlan(**{o: (name if o == op else plan.path(o)) for o in
                                                   ("forward", "input_grad", "weight_grad")}, source="forced")
            if op == "forward":
                steps[name] = lambda forced=forced: backend.conv2d(x, w, None, geometry, forced)
            elif op == "input_grad":
                threads = backend._path_threads(name, "input_grad", geometry)
                steps[name] = lambda forced=forced, threads=threads: backend._run(
                    backend.paths[forced.input_grad].input_grad, x, w, dy, geometry, threads)
            else:
                steps[name] = lambda forced=forced: backend.conv2d_grad(x, w, dy, geometry, False, forced)
        times = {}
        for name, step in steps.items():
            step()
            samples = []
            for _ in range(max(3, repeats)):
                start = time.perf_counter()
                step()
                samples.append(time.perf_counter() - start)
            times[name] = statistics.median(samples)
        chosen = plan.path(op)
        report["ops"][op] = {"median_s": times, "chosen": chosen,
                             "chosen_over_fastest": times[chosen] / min(times.values()) if chosen in times else None}
    return report


def _ratios(medians):
    ratios = {}
    for impl, t in medians.items():
        if impl.startswith("torch"):
            continue
        peer = "torch-cuda" if _device_of(impl) == "gpu" else "torch"
        if peer in medians:
            ratios[impl] = medians[peer] / t
    return ratios


def _format_row(row):
    parts = [f"{row['case']:<12}"]
    for impl, t in row["median_s"].items():
        extra = ""
        if "images_per_s" in row:
            extra = f" ({row['images_per_s'][impl]:,.0f} img/s)"
        elif "gflops" in row:
            extra = f" ({row['gflops'][impl]:.1f} GFLOP/s)"
        parts.append(f"{impl}: {t * 1e3:9.3f} ms{extra}")
    for impl, r in row["ratio_torch_over_minicnn"].items():
        parts.append(f"torch/{impl} = {r:.2f}")
    text = " | ".join(parts)
    if "cython_paths" in row:
        for op, entry in row["cython_paths"]["ops"].items():
            paths = ", ".join(f"{name} {t * 1e3:.3f}" for name, t in entry["median_s"].items())
            ratio = entry["chosen_over_fastest"]
            text += (f"\n{'':<12} | cython {op}: {paths} ms; plan: {entry['chosen']}"
                     + (f" ({ratio:.2f}x the fastest)" if ratio else ""))
    if "cython_forward_paths" in row:
        layers = ", ".join(f"{layer['w'][1]}->{layer['w'][0]}@{layer['x'][2]}: {layer['forward']}"
                           for layer in row["cython_forward_paths"])
        text += f"\n{'':<12} | cython forward paths: {layers}"
    if "cpu_gemm_gflops" in row:
        shares = ", ".join(f"{impl} {f:.0%}" for impl, f in row["fraction_of_cpu_gemm"].items())
        text += f"\n{'':<12} | float32 GEMM here (NumPy, 2048^3): {row['cpu_gemm_gflops']:.1f} GFLOP/s; {shares} of it"
    return text


def format_table(report):
    """A Markdown table of medians and ratios."""
    impls = []
    for row in report["results"]:
        for impl in row["median_s"]:
            if impl not in impls:
                impls.append(impl)
    ratio_cols = [i for i in impls if not i.startswith("torch")]
    header = "| case | " + " | ".join(f"{i} (ms)" for i in impls) + " | " + " | ".join(
        f"torch/{i}" for i in ratio_cols) + " |"
    lines = [header, "|" + " --- |" * (1 + len(impls) + len(ratio_cols))]
    for row in report["results"]:
        cells = [row["case"]]
        for impl in impls:
            t = row["median_s"].get(impl)
            if t is None:
                cells.append("")
            elif "images_per_s" in row:
                cells.append(f"{t * 1e3:.2f} ({row['images_per_s'][impl]:,.0f} img/s)")
            else:
                cells.append(f"{t * 1e3:.3f}")
        for impl in ratio_cols:
            r = row["ratio_torch_over_minicnn"].get(impl)
            cells.append("" if r is None else f"{r:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    for row in report["results"]:
        if "cpu_gemm_gflops" in row:
            shares = ", ".join(f"{impl} {f:.0%}" for impl, f in row["fraction_of_cpu_gemm"].items())
            lines.append(
                f"\n{row['case']}: {', '.join(f'{i} {g:.1f}' for i, g in row['gflops'].items())} GFLOP/s; float32 GEMM "
                f"here (NumPy, 2048^3) {row['cpu_gemm_gflops']:.1f} GFLOP/s, so {shares} of it"
            )
    return "\n".join(lines)


def plot(report, path):
    """Bar chart of median times per case (log scale), one bar per implementation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    impls = []
    for row in rows:
        for impl in row["median_s"]:
            if impl not in impls:
                impls.append(impl)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(rows)), 4))
    width = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        xs = [i + k * width for i, row in enumerate(rows) if impl in row["median_s"]]
        ys = [row["median_s"][impl] * 1e3 for row in rows if impl in row["median_s"]]
        ax.bar(xs, ys, width, label=impl)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    ax.set_xticklabels([row["case"] for row in rows], rotation=20)
    ax.set_yscale("log")
    ax.set_ylabel("median time per run (ms, log scale)")
    ax.set_title("minicnn vs PyTorch (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------- command line
def add_parser(subparsers):
    p = subparsers.add_parser(
        "bench",
        help="time the kernels and LeNet-5 training against PyTorch",
        description=(
            "Time conv2d (LeNet C1, C3, a mid 3x3 layer), pooling and LeNet-5 training steps for every "
            "available backend and for PyTorch (CPU, and CUDA where present), taking turns in one process; "
            "print a table of medians and ratios (PyTorch time / minicnn time), write JSON and a bar chart.\n\n"
            "example: minicnn bench --cases conv_c1 conv_c3 --repeats 30 --out benchmarks/results/cpu-run"
        ),
    )
    p.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], help="cases to run (default: all)")
    p.add_argument("--impls", nargs="+", help="implementations (default: every backend but numpy, plus torch)")
    p.add_argument("--repeats", type=int, default=15, help="timed runs per implementation (median reported)")
    p.add_argument("--reference", action="store_true", help="also time the slow NumPy reference backend")
    p.add_argument("--calibrate", action="store_true",
                   help="forget the kernel plans measured on this machine (the cache file) and measure them again")
    p.add_argument("--out", type=Path, default=None,
                   help="write OUT.json and OUT.png (default: benchmarks/results/<device>-<time>)")
    p.add_argument("--device", choices=("cpu", "gpu"), default=None,
                   help="gpu: LeNet-5 training images/s on the CPU and the GPU over a sweep of batch sizes, the "
                        "batch where the GPU starts to win, and a plot of both (OUT-sweep.json, OUT-sweep.png); "
                        "where no GPU works, the CPU half runs and the GPU half is skipped with the reason")
    p.add_argument("--batches", nargs="+", type=int, default=None,
                   help="batch sizes of the --device gpu sweep (default: 1 4 16 64 256 1024)")
    p.add_argument("--cpu-max-batch", type=int, default=None,
                   help="--device gpu: time the CPU only up to this batch (its images/s is flat beyond a few hundred)")
    return p


def run(args):
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.device == "gpu":
        ignored = [flag for flag, given in (("--cases", args.cases), ("--reference", args.reference),
                                            ("--calibrate", args.calibrate)) if given]
        if ignored:
            raise ValueError(f"{', '.join(ignored)}: not options of --device gpu (the LeNet-5 training sweep); "
                             "leave out --device gpu to time the kernel cases")
        return run_sweep(args)
    given = [flag for flag, value in (("--batches", args.batches), ("--cpu-max-batch", args.cpu_max_batch))
             if value is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: options of the --device gpu sweep only; add --device gpu")
    known = implementations(include_reference=True) + ["numpy"]
    for impl in args.impls or []:
        if impl not in known:
            raise ValueError(f"--impls: {impl!r} is not available here; choose from {sorted(set(known))}")
    if args.calibrate:
        print(calibrate())
    report = run_benchmarks(args.cases, args.impls, args.repeats, args.reference)
    print()
    print(format_table(report))
    out = args.out
    if out is None:
        device = "gpu" if any(_device_of(i) == "gpu" for r in report["results"] for i in r["median_s"]) else "cpu"
        out = Path("benchmarks/results") / f"{device}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    plot(report, out.with_suffix(".png"))
    print(f"\nwrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")
    return 0


def run_sweep(args):
    """``minicnn bench --device gpu``: the CPU-vs-GPU sweep (minicnn.bench_sweep), its table, JSON and plot."""
    from . import bench_sweep

    batches = tuple(args.batches or bench_sweep.DEFAULT_BATCHES)
    bad = [b for b in batches if b < 1]
    if bad:
        raise ValueError(f"--batches must be positive integers, got {bad}")
    if args.cpu_max_batch is not None and args.cpu_max_batch < 1:
        raise ValueError(f"--cpu-max-batch must be >= 1, got {args.cpu_max_batch}")
    impls = args.impls
    for impl in impls or []:
        if impl not in bench_sweep.SWEEP_IMPLS:
            raise ValueError(f"--impls with --device gpu: {impl!r} is not one of {list(bench_sweep.SWEEP_IMPLS)}")
    report = bench_sweep.sweep(sorted(set(batches)), impls, repeats=args.repeats, cpu_max_batch=args.cpu_max_batch)
    report["machine"] = machine_info()
    print()
    print(bench_sweep.format_sweep(report))
    out = args.out or Path("benchmarks/results") / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = Path(f"{out}-sweep.json"), Path(f"{out}-sweep.png")
    json_path.write_text(json.dumps(report, indent=2, default=_json_key))
    bench_sweep.plot_sweep(report, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    return 0


def _json_key(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
