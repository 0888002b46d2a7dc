"""``minicnn bench --device gpu``: LeNet-5 training throughput on the CPU and the GPU over a sweep of batch sizes.

A GPU step costs a fixed time to launch and synchronise, whatever the batch;
a CPU step costs about the same per image. So the GPU loses at small
batches and wins at large ones, and the question a student should get a
true answer to is *where* it starts to win: the crossover batch size
(:func:`crossover`), read off a plot of images/s against batch size for both
(:func:`plot_sweep`).

Implementations (each a LeNet-5 SGD-with-momentum step as ``minicnn train``
runs it, the batch copied from host memory every step, as a loader does):

* ``cpu``: :func:`minicnn.train.step` on the "cython" backend (or "numpy"
  where the kernels are not built);
* ``gpu``: :class:`minicnn.captured.DeviceStep` on "cupy": device-resident,
  fused loss and update, replayed as a CUDA graph (im2col + cuBLAS convolutions);
* ``gpu-implicit-gemm``: the same step with the implicit-GEMM convolutions;
* ``gpu-layers``: :func:`minicnn.train.step` on "cupy" (a launch per layer,
  the loss read every step), the layer-by-layer path;
* ``torch-cuda`` where PyTorch sees a GPU (cuDNN, the yardstick).

Timing: ``steps`` back-to-back steps, then one synchronisation, divided by
``steps``; the median of ``repeats`` such runs after a warm-up (which also
compiles kernels and captures the graph).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np

__all__ = ["DEFAULT_BATCHES", "SWEEP_IMPLS", "crossover", "sweep", "format_sweep", "plot_sweep", "gpu_unavailable"]

DEFAULT_BATCHES = (1, 4, 16, 64, 256, 1024)
SWEEP_IMPLS = ("cpu", "gpu", "gpu-implicit-gemm", "gpu-layers", "torch-cuda")
_GPU_IMPLS = ("gpu", "gpu-implicit-gemm", "gpu-layers", "torch-cuda")


def gpu_unavailable():
    """Why the GPU half of the sweep cannot run here (None when the "cupy" backend works)."""
    import minicnn as mc
    from .backends import unavailable_reason

    return None if "cupy" in mc.available_backends() else unavailable_reason("cupy")


# --------------------------------------------------------------------------- crossover (pure)
def crossover(cpu, gpu):
    """Where the GPU starts to win: ``{"batch", "estimate", "ratio"}`` from two ``{batch: images/s}`` maps.

    ``batch``: the smallest measured batch from which the GPU is faster at
    that batch and every larger one measured by both (None if it never is).
    ``estimate``: the batch where the GPU/CPU ratio crosses 1, interpolated
    linearly in ``log(batch)`` between the last batch the CPU wins and
    ``batch`` (equal to ``batch`` when the GPU wins from the smallest one;
    None when it never wins). ``ratio``: GPU/CPU images/s at every common batch.
    """
    common = sorted(set(cpu) & set(gpu))
    for name, rates in (("cpu", cpu), ("gpu", gpu)):
        bad = {b: r for b, r in rates.items() if not (isinstance(b, (int, np.integer)) and b >= 1 and r > 0)}
        if bad:
            raise ValueError(f"crossover: {name} needs positive integer batches and positive images/s, got {bad}")
    ratio = {b: gpu[b] / cpu[b] for b in common}
    first = None
    for b in reversed(common):
        if ratio[b] <= 1:
            break
        first = b
    if first is None:
        return {"batch": None, "estimate": None, "ratio": ratio}
    index = common.index(first)
    if index == 0:
        return {"batch": first, "estimate": float(first), "ratio": ratio}
    lo = common[index - 1]
    r_lo, r_hi = math.log(ratio[lo]), math.log(ratio[first])
    t = (0.0 - r_lo) / (r_hi - r_lo) if r_hi != r_lo else 1.0
    estimate = math.exp(math.log(lo) + t * (math.log(first) - math.log(lo)))
    return {"batch": first, "estimate": estimate, "ratio": ratio}


# --------------------------------------------------------------------------- steps to time
def _batch(batch, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, batch)


def _lenet_and_sgd(device):
    import minicnn as mc

    net = mc.models.lenet5(activation="relu", pool="max", seed=0).fuse()
    if device == "gpu":
        net.to("gpu")
    return net, mc.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def _cpu_step(batch):
    import minicnn as mc
    from .train import step

    backend = "cython" if "cython" in mc.available_backends() else "numpy"
    net, opt = _lenet_and_sgd("cpu")
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    x, y = _batch(batch)

    def run():
        with mc.use_backend(backend):
            step(net, loss_fn, opt, x, y)

    return run, lambda: None


def _gpu_step(batch, algorithm):
    import cupy

    import minicnn as mc
    from .captured import CupyCapture, DeviceStep

    backend = mc.get_backend("cupy")
    net, opt = _lenet_and_sgd("gpu")
    x, y = _batch(batch)
    capture = CupyCapture()
    previous, backend.conv_algorithm = backend.conv_algorithm, algorithm
    try:  # the stages (conv + bias + ReLU fused or not) follow the algorithm
        device_step = DeviceStep(net, opt, batch, (1, 32, 32), xp=cupy, capturer=capture, fused=backend)
    finally:
        backend.conv_algorithm = previous

    def run():
        previous, backend.conv_algorithm = backend.conv_algorithm, algorithm
        try:
            with mc.use_backend("cupy"):
                device_step.load(x, y)
                device_step.run()
        finally:
            backend.conv_algorithm = previous

    run.device_step = device_step
    return run, capture.synchronize


def _gpu_layers_step(batch):
    import cupy

    import minicnn as mc
    from .train import step

    net, opt = _lenet_and_sgd("gpu")
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    x, y = _batch(batch)

    def run():
        with mc.use_backend("cupy"):
            step(net, loss_fn, opt, cupy.asarray(x), y)

    return run, cupy.cuda.Device().synchronize


def _torch_cuda_step(batch):
    import torch

    from .bench import _torch_lenet5

    net = _torch_lenet5("cuda")
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = _batch(batch)
    xt, yt = torch.from_numpy(x).pin_memory(), torch.from_numpy(y).pin_memory()

    def run():
        opt.zero_grad()
        loss_fn(net(xt.to("cuda", non_blocking=True)), yt.to("cuda", non_blocking=True)).backward()
        opt.step()

    return run, torch.cuda.synchronize


def _make(impl, batch):
    if impl == "cpu":
        return _cpu_step(batch)
    if impl == "gpu":
        return _gpu_step(batch, "im2col")
    if impl == "gpu-implicit-gemm":
        return _gpu_step(batch, "implicit_gemm")
    if impl == "gpu-layers":
        return _gpu_layers_step(batch)
    if impl == "torch-cuda":
        return _torch_cuda_step(batch)
    raise ValueError(f"bench --device gpu: unknown implementation {impl!r}; choose from {list(SWEEP_IMPLS)}")


def time_steps(run, sync, steps, repeats, warmup=3):
    """Median seconds per step: ``repeats`` times, ``steps`` back-to-back steps then one ``sync``."""
    for _ in range(warmup):
        run()
    sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        sync()
        samples.append((time.perf_counter() - start) / steps)
    return statistics.median(samples)


# --------------------------------------------------------------------------- the sweep
def sweep(batches=DEFAULT_BATCHES, impls=None, repeats=5, steps=10, cpu_max_batch=None, log=print):
    """Images/s of every implementation at every batch; GPU ones are skipped, with the reason, where no GPU works."""
    reason = gpu_unavailable()
    impls = list(impls or _default_impls())
    skipped = {}
    if reason is not None:
        skipped = {impl: f"no GPU here: {reason}" for impl in impls if impl in _GPU_IMPLS}
        impls = [impl for impl in impls if impl not in _GPU_IMPLS]
        if skipped:
            log(f"bench --device gpu: the GPU half is skipped ({reason}); timing the CPU only")
    seconds, captured = {impl: {} for impl in impls}, {}
    for batch in batches:
        for impl in impls:
            if impl == "cpu" and cpu_max_batch is not None and batch > cpu_max_batch:
                continue
            run, sync = _make(impl, batch)
            seconds[impl][batch] = time_steps(run, sync, steps, repeats)
            if hasattr(run, "device_step"):
                captured.setdefault(impl, {})[batch] = run.device_step.captured
            log(f"batch {batch:>5}  {impl:<18} {seconds[impl][batch] * 1e3:9.3f} ms/step  "
                f"{batch / seconds[impl][batch]:>12,.0f} img/s")
    rates = {impl: {b: b / t for b, t in per.items()} for impl, per in seconds.items()}
    report = {"batches": list(batches), "seconds_per_step": seconds, "images_per_s": rates, "skipped": skipped,
              "captured": captured, "repeats": repeats, "steps": steps, "method": __doc__.split("Implementations")[0].strip()}
    if "cpu" in rates and "gpu" in rates:
        report["crossover"] = crossover(rates["cpu"], rates["gpu"])
    return report


def _default_impls():
    impls = ["cpu", "gpu", "gpu-implicit-gemm", "gpu-layers"]  # the GPU ones are skipped, with the reason, where none works
    try:
        import torch

        if torch.cuda.is_available():
            impls.append("torch-cuda")
    except ImportError:
        pass
    return impls


def format_sweep(report):
    """The CPU-vs-GPU table: one row per batch, images/s of each implementation, GPU/CPU, and the crossover."""
    impls = list(report["images_per_s"])
    header = "| batch | " + " | ".join(f"{impl} img/s" for impl in impls) + (" | gpu/cpu |" if "gpu" in impls and "cpu" in impls else " |")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for batch in report["batches"]:
        cells = [str(batch)] + [f"{report['images_per_s'][impl][batch]:,.0f}" if batch in report["images_per_s"][impl]
                                else "" for impl in impls]
        if "gpu" in impls and "cpu" in impls:
            ratio = report.get("crossover", {}).get("ratio", {}).get(batch)
            cells.append("" if ratio is None else f"{ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    found = report.get("crossover")
    if found is not None:
        if found["batch"] is None:
            lines.append("\nThe GPU is not faster than the CPU at any batch measured.")
        else:
            lines.append(f"\nThe GPU wins from batch {found['batch']} on (ratio 1 crossed near batch {found['estimate']:.1f}).")
    for impl, why in report["skipped"].items():
        lines.append(f"{impl}: skipped ({why})")
    return "\n".join(lines)


def plot_sweep(report, path):
    """Images/s against batch size (log-log), one line per implementation, the crossover marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for impl, rates in report["images_per_s"].items():
        batches = sorted(rates)
        ax.plot(batches, [rates[b] for b in batches], marker="o", label=impl)
    found = report.get("crossover")
    if found is not None and found["estimate"] is not None:
        ax.axvline(found["estimate"], color="grey", linestyle="--", label=f"crossover ~{found['estimate']:.0f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("training images/s (LeNet-5, higher is better)")
    ax.set_title("LeNet-5 training throughput, CPU and GPU")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
