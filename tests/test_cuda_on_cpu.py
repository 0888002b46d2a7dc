"""The CUDA kernels of the GPU step (implicit_gemm.cu, fused.cu) executed on the CPU (tests/cuda_on_cpu.py), against the reference.

Not a substitute for tests/gpu (no GPU scheduling, no tensor cores, no NVRTC),
but it runs the kernels' own code: indexing, tiles staged in shared memory
between barriers, split reductions, epilogues. g++ does not fuse ``a*b + c``
here (no FMA without -mfma), so a float32 kernel adds its terms exactly as
the NumPy emulation of minicnn/backends/implicit_gemm.py does, and the two
must agree bit for bit; float64 results are compared with the reference
convolution within float64 rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

import minicnn as mc
from minicnn import shapes
from minicnn.backends import implicit_gemm as ig
from minicnn.backends.numpy_backend import NumpyBackend
from minicnn.captured import sgd_update

import cuda_on_cpu

pytestmark = pytest.mark.skipif(not cuda_on_cpu.available(), reason="g++ is not installed")
REF = NumpyBackend()

CASES = {
    "lenet-c1": ((3, 1, 12, 12), (6, 1, 5, 5), 1, 0, 1, 1),
    "lenet-c3": ((2, 6, 9, 9), (16, 6, 5, 5), 1, 0, 1, 1),
    "general": ((2, 4, 9, 10), (6, 2, 3, 2), (2, 3), (1, 0), (1, 2), 2),
    "wide": ((1, 3, 7, 7), (70, 3, 3, 3), 1, 1, 1, 1),
    "split-dw": ((8, 2, 12, 12), (4, 2, 3, 3), 1, 1, 1, 1),
}


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda-on-cpu")
    built = {name: cuda_on_cpu.build(name, folder) for name in ("implicit_gemm.cu", "fused.cu")}
    built["implicit_gemm.cu+mma"] = cuda_on_cpu.build("implicit_gemm.cu", folder, emulate_mma=True)
    return built


def _geometry(name):
    return shapes.conv2d_geometry(*CASES[name])


def _sizes(g):
    return (g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.oh, g.ow, *g.stride, *g.padding, *g.dilation, g.groups)


def _suffix(dtype):
    return "f32" if dtype == np.float32 else "f64"


def _run(module, problem, g, dtype, *, x=None, w=None, b=None, dy=None, relu=0, tf32=0, tensor_cores=False):
    """What cupy_backend's _ig_forward / _ig_input_grad / _ig_weight_grad launch, with the same plan."""
    launch = ig.plan(problem, g, tensor_cores)
    name = f"{launch.kernel}_{_suffix(dtype)}"
    flag = () if tensor_cores else (tf32,)
    if problem == "forward":
        y = np.empty(g.y_shape, dtype)
        module.launch(name, launch.grid, ig.THREADS, x, w, y if b is None else b, y, *_sizes(g), int(b is not None),
                      relu, *flag)
        return y
    if problem == "input_grad":
        dx = np.empty(g.x_shape, dtype)
        module.launch(name, launch.grid, ig.THREADS, dy, w, dx, *_sizes(g), *flag)
        return dx
    dw = np.empty(g.w_shape, dtype)
    partial = dw if launch.splits == 1 else np.empty((launch.splits, dw.size), dtype)
    module.launch(name, launch.grid, ig.THREADS, x, dy, partial, *_sizes(g), launch.splits, *flag)
    if launch.splits > 1:
        module.launch(f"implicit_gemm_reduce_splits_{_suffix(dtype)}", (2,), 64, partial, dw, dw.size, launch.splits)
    return dw


EPS64 = np.finfo(np.float64).eps


def _assert_within_rounding(got, want, magnitude, terms):
    """``got`` and ``want`` are two float64 sums of the same ``terms`` products in different orders: each is within
    ``terms * eps * sum|products|`` of the exact sum (``magnitude`` is that sum of absolute values), so they are
    within twice that of each other."""
    bound = 2 * terms * EPS64 * magnitude
    assert np.all(np.abs(got - want) <= bound), f"largest excess {np.max(np.abs(got - want) - bound):.3g}"


def _data(g, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in (g.x_shape, g.w_shape, (g.o,), g.y_shape)]


@pytest.mark.parametrize("name", list(CASES))
def test_implicit_gemm_kernels_compute_the_convolution(modules, name):
    g = _geometry(name)
    x, w, b, dy = _data(g, np.float64)
    module = modules["implicit_gemm.cu"]
    y = _run(module, "forward", g, np.float64, x=x, w=w, b=b)
    _assert_within_rounding(y, REF.conv2d(x, w, b, g), REF.conv2d(abs(x), abs(w), abs(b), g), g.k + 1)
    relu = _run(module, "forward", g, np.float64, x=x, w=w, b=b, relu=1)
    np.testing.assert_array_equal(relu, np.maximum(y, 0))  # the conv + bias + ReLU epilogue
    dx = _run(module, "input_grad", g, np.float64, w=w, dy=dy)
    _assert_within_rounding(dx, REF.conv2d_input_grad(w, dy, g), REF.conv2d_input_grad(abs(w), abs(dy), g),
                            g.o * g.taps)
    dw = _run(module, "weight_grad", g, np.float64, x=x, dy=dy)
    _assert_within_rounding(dw, REF.conv2d_weight_grad(x, dy, g)[0], REF.conv2d_weight_grad(abs(x), abs(dy), g)[0],
                            g.n * g.oh * g.ow)
    if name == "split-dw":
        assert ig.plan("weight_grad", g).splits > 1


@pytest.mark.parametrize("tf32,tensor_cores,mma", [(0, False, False), (1, False, False), (1, True, False), (1, True, True)],
                         ids=["float32", "tf32-cuda-cores", "tc-kernel-below-sm80", "tc-kernel-emulated-mma"])
@pytest.mark.parametrize("name", ["lenet-c3", "split-dw", "wide"])
def test_float32_kernels_add_exactly_as_the_numpy_emulation(modules, name, tf32, tensor_cores, mma):
    """The tc kernels: their CUDA-core loop (below sm_80), and their mma.sync loop with the emulated instruction."""
    g = _geometry(name)
    x, w, _, dy = _data(g, np.float32, seed=1)
    module = modules["implicit_gemm.cu+mma" if mma else "implicit_gemm.cu"]
    emulated = {p: ig.emulate(p, g, x=x, w=w, dy=dy, tf32=bool(tf32)) for p in ig.PROBLEMS}
    y = _run(module, "forward", g, np.float32, x=x, w=w, tf32=tf32, tensor_cores=tensor_cores)
    per_group = y.reshape(g.n, g.groups, -1, g.oh * g.ow).transpose(1, 2, 0, 3).reshape(g.groups, g.o // g.groups, -1)
    np.testing.assert_array_equal(per_group, emulated["forward"])
    dx = _run(module, "input_grad", g, np.float32, w=w, dy=dy, tf32=tf32, tensor_cores=tensor_cores)
    dx_groups = dx.reshape(g.n, g.groups, -1, g.h * g.w).transpose(1, 2, 0, 3).reshape(g.groups, g.c // g.groups, -1)
    np.testing.assert_array_equal(dx_groups, emulated["input_grad"])
    dw = _run(module, "weight_grad", g, np.float32, x=x, dy=dy, tf32=tf32, tensor_cores=tensor_cores)
    np.testing.assert_array_equal(dw.reshape(g.groups, g.o // g.groups, -1), emulated["weight_grad"])


# --------------------------------------------------------------------------- fused.cu
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (1, 2, 7, 9)])
def test_relu_max_pool_kernels(modules, shape):
    rng = np.random.default_rng(2)
    x = rng.integers(-2, 3, shape).astype(np.float32)  # ties and all-negative windows
    n, c, h, w = shape
    oh, ow = h // 2, w // 2
    y, winner = np.empty((n, c, oh, ow), np.float32), np.empty((n, c, oh, ow), np.int8)
    module = modules["fused.cu"]
    module.launch("relu_max_pool2x2_forward_f32", (2,), 32, x, y, winner, n, c, h, w, oh, ow)
    pooled = mc.functional.max_pool2d(x, 2, backend="numpy")
    np.testing.assert_array_equal(y, np.maximum(pooled, 0))
    dy = rng.standard_normal((n, c, oh, ow)).astype(np.float32)
    dx = np.empty(shape, np.float32)
    module.launch("relu_max_pool2x2_backward_f32", (3,), 32, dy, winner, dx, n, c, h, w, oh, ow)
    np.testing.assert_array_equal(dx, mc.functional.max_pool2d_grad(x, dy * (pooled > 0), 2, backend="numpy"))


def test_softmax_cross_entropy_kernel(modules):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((300, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, 300).astype(np.int64)
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss = loss_fn(logits, labels)
    dlogits = np.empty_like(logits)
    loss_sum, correct = np.array(5.0), np.array(7, np.int64)  # running sums: the kernel adds to them
    modules["fused.cu"].launch("softmax_cross_entropy_f32", (1,), 256, logits, labels, dlogits, loss_sum, correct, 300, 10)
    eps = np.finfo(np.float32).eps
    assert abs((float(loss_sum) - 5.0) - loss * 300) <= 300 * 10 * eps * max(1.0, abs(loss))
    assert int(correct) - 7 == int((logits.argmax(axis=1) == labels).sum())
    np.testing.assert_allclose(dlogits, loss_fn.backward(), rtol=0, atol=10 * eps / 300)


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_one_launch_sgd_kernel_is_sgd_update_bit_for_bit(modules, momentum):
    net = mc.models.lenet5(seed=0)
    params = list(net.parameters())
    rng = np.random.default_rng(4)
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape).astype(np.float32)
    velocities = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    kernel_data, kernel_v = [p.data.copy() for p in params], [v.copy() for v in velocities]
    lr = np.full((), 0.05, np.float32)
    tables = [np.array([a.ctypes.data for a in arrays], np.uint64) for arrays in
              (kernel_data, [p.grad for p in params], kernel_v)]
    offsets = np.cumsum([0] + [p.data.size for p in params]).astype(np.int64)
    modules["fused.cu"].launch("sgd_momentum_multi_f32", (4,), 128, *tables, offsets, lr, len(params),
                               np.float32(momentum), np.float32(5e-4))
    sgd_update(params, velocities, lr, momentum, 5e-4)
    for p, data, v, kv in zip(params, kernel_data, velocities, kernel_v):
        np.testing.assert_array_equal(data, p.data)
        np.testing.assert_array_equal(kv, v)


# --------------------------------------------------------------------------- the cupy backend's own wrappers
@pytest.fixture(scope="module")
def fake_cupy_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fake-cupy")


@pytest.fixture(params=[False, True], ids=["sm70", "sm80-emulated-mma"])
def cpu_backend(request, fake_cupy_folder, monkeypatch):
    """minicnn's CupyBackend with ``cupy`` replaced by NumPy and CPU-built kernels (cuda_on_cpu.fake_cupy)."""
    from minicnn.backends import cupy_backend

    fake = cuda_on_cpu.fake_cupy(fake_cupy_folder / str(request.param), emulate_mma=request.param)
    monkeypatch.setattr(cupy_backend, "cupy", fake)
    monkeypatch.setattr(cupy_backend, "_address", lambda a: a.ctypes.data)
    cupy_backend._module.cache_clear()
    cupy_backend._kernel.cache_clear()
    backend = cupy_backend.CupyBackend()
    backend.xp = np
    backend.conv_algorithm = "implicit_gemm"
    yield backend
    cupy_backend._module.cache_clear()  # no fake module may outlive the test (a GPU machine has the real cupy)
    cupy_backend._kernel.cache_clear()


@pytest.mark.parametrize("cpu_backend", [False], ids=["sm70"], indirect=True)
def test_the_backend_launches_implicit_gemm_with_the_right_arguments(cpu_backend):
    g = _geometry("general")
    x, w, b, dy = _data(g, np.float64, seed=5)
    _assert_within_rounding(cpu_backend.conv2d(x, w, b, g), REF.conv2d(x, w, b, g),
                            REF.conv2d(abs(x), abs(w), abs(b), g), g.k + 1)
    dx, dw, db = cpu_backend.conv2d_grad(x, w, dy, g)
    ref_dx, (ref_dw, ref_db) = REF.conv2d_input_grad(w, dy, g), REF.conv2d_weight_grad(x, dy, g)
    abs_dw, abs_db = REF.conv2d_weight_grad(abs(x), abs(dy), g)
    _assert_within_rounding(dx, ref_dx, REF.conv2d_input_grad(abs(w), abs(dy), g), g.o * g.taps)
    _assert_within_rounding(dw, ref_dw, abs_dw, g.n * g.oh * g.ow)
    _assert_within_rounding(db, ref_db, abs_db, g.n * g.oh * g.ow)
    np.testing.assert_array_equal(cpu_backend.conv2d_input_grad(w, dy, g), dx)
    np.testing.assert_array_equal(cpu_backend.conv2d_weight_grad(x, dy, g)[0], dw)
    np.testing.assert_array_equal(cpu_backend.conv2d_bias_relu(x, w, b, g), np.maximum(cpu_backend.conv2d(x, w, b, g), 0))


@pytest.mark.parametrize("tensor_cores", [False, True])
def test_the_backend_tf32_switches_reach_the_kernels(cpu_backend, tensor_cores):
    g = _geometry("split-dw")
    x, w, _, dy = _data(g, np.float32, seed=6)
    cpu_backend.tf32, cpu_backend.tensor_cores = True, tensor_cores
    emulated = ig.emulate("weight_grad", g, x=x, dy=dy, tf32=True)
    np.testing.assert_array_equal(cpu_backend.conv2d_weight_grad(x, dy, g)[0].reshape(emulated.shape), emulated)
    y = cpu_backend.conv2d(x, w, None, g)
    assert not np.array_equal(y, REF.conv2d(x, w, None, g))  # rounded operands: not the float32 result
    cpu_backend.tf32 = False
    np.testing.assert_array_equal(cpu_backend.conv2d_weight_grad(x, dy, g)[0].reshape(emulated.shape),
                                  ig.emulate("weight_grad", g, x=x, dy=dy))


@pytest.mark.parametrize("cpu_backend", [False], ids=["sm70"], indirect=True)
def test_the_backend_fused_kernels(cpu_backend):
    rng = np.random.default_rng(7)
    x = rng.integers(-2, 3, (2, 3, 8, 6)).astype(np.float32)
    y, winner = cpu_backend.relu_max_pool2x2(x)
    pooled = mc.functional.max_pool2d(x, 2, backend="numpy")
    np.testing.assert_array_equal(y, np.maximum(pooled, 0))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(cpu_backend.relu_max_pool2x2_grad(dy, winner, x.shape),
                                  mc.functional.max_pool2d_grad(x, dy * (pooled > 0), 2, backend="numpy"))
    with pytest.raises(ValueError, match=r"relu_max_pool2x2: x must be \(N, C, H, W\) with H, W >= 2"):
        cpu_backend.relu_max_pool2x2(np.ascontiguousarray(x[:, :, :1]))
    logits = rng.standard_normal((5, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 5)
    loss_sum, correct = np.zeros((), np.float64), np.zeros((), np.int64)
    with pytest.raises(ValueError, match="labels must have dtype int64"):
        cpu_backend.softmax_cross_entropy_fused(logits, labels.astype(np.int32), loss_sum, correct)
    dlogits = cpu_backend.softmax_cross_entropy_fused(logits, labels.astype(np.int64), loss_sum, correct)
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss, eps = loss_fn(logits, labels), np.finfo(np.float32).eps  # bounds as in test_softmax_cross_entropy_kernel
    assert abs(float(loss_sum) - loss * 5) <= 5 * 10 * eps * max(1.0, abs(loss))
    np.testing.assert_allclose(dlogits, loss_fn.backward(), rtol=0, atol=10 * eps / 5)


@pytest.mark.parametrize("cpu_backend", [False], ids=["sm70"], indirect=True)
def test_the_device_step_with_every_fused_kernel_follows_train_step(cpu_backend):
    """DeviceStep with the backend's fused loss, update, ReLU + pooling and conv + bias + ReLU, on CPU-run kernels."""
    from minicnn.captured import ConvBiasRelu, DeviceStep, ReluPool2x2
    from minicnn.train import step

    rng = np.random.default_rng(8)
    batches = [(rng.standard_normal((4, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, 4)) for _ in range(2)]
    ref = mc.models.lenet5(seed=0).fuse()
    ref_opt = mc.optim.SGD(ref.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn, loss_sum = mc.nn.SoftmaxCrossEntropy(), 0.0
    for x, y in batches:
        loss_sum += step(ref, loss_fn, ref_opt, x, y)[0] * len(y)
    net = mc.models.lenet5(seed=0).fuse()
    opt = mc.optim.SGD(net.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    dev = DeviceStep(net, opt, 4, (1, 32, 32), fused=cpu_backend)
    assert {ReluPool2x2, ConvBiasRelu} <= {type(s) for s in dev.stages}
    for x, y in batches:
        dev.load(x, y)
        dev.run()
    assert dev.metrics()[0] == pytest.approx(loss_sum, rel=1e-5)
    for (name, a), (_, b) in zip(ref.state_dict().items(), net.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * max(1.0, np.abs(a).max()), err_msg=name)
