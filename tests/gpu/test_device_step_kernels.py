"""On a GPU: implicit-GEMM convolution (float32, TF32), the fused kernels and the captured step.

Skipped (conftest.py) where the "cupy" backend does not work. Tolerances:
float32 ``rtol 2e-3`` of the largest reference value as in
test_cupy_backend.py; TF32 from ``implicit_gemm.tf32_tolerance`` (10-bit
mantissa per operand, float32 accumulation over K terms); float64 ``1e-8``.
Everything without atomics must repeat bit for bit.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from minicnn.backends import implicit_gemm as ig
from minicnn.backends.numpy_backend import NumpyBackend

pytestmark = pytest.mark.gpu
REF = NumpyBackend()

# (x shape, w shape, padding): LeNet C1, C3 at batch 64, the mid 3x3 layer at batch 4, a grouped strided case
SHAPES = {
    "c1": ((64, 1, 32, 32), (6, 1, 5, 5), 0, 1, 1),
    "c3": ((64, 6, 14, 14), (16, 6, 5, 5), 0, 1, 1),
    "mid": ((4, 64, 28, 28), (64, 64, 3, 3), 1, 1, 1),
    "wide": ((2, 8, 11, 11), (130, 8, 3, 3), 1, 2, 1),
    "groups": ((3, 8, 9, 9), (12, 4, 3, 3), 1, 1, 2),
}


@pytest.fixture(scope="module")
def cp():
    return importlib.import_module("cupy")


@pytest.fixture
def gpu(monkeypatch):
    backend = mc.get_backend("cupy")
    monkeypatch.setattr(backend, "conv_algorithm", "implicit_gemm")
    monkeypatch.setattr(backend, "tf32", False)
    monkeypatch.setattr(backend, "tensor_cores", True)
    return backend


def _case(name, dtype, seed=0):
    x_shape, w_shape, padding, stride, groups = SHAPES[name]
    g = shapes.conv2d_geometry(x_shape, w_shape, stride, padding, 1, groups)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(g.x_shape).astype(dtype)
    w = rng.standard_normal(g.w_shape).astype(dtype)
    b = rng.standard_normal(g.o).astype(dtype)
    dy = rng.standard_normal(g.y_shape).astype(dtype)
    return g, x, w, b, dy


def _close(got, want, atol):
    np.testing.assert_allclose(got.get(), want, rtol=0, atol=atol)


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_implicit_gemm_matches_the_reference_and_repeats_bitwise(cp, gpu, name, dtype):
    g, x, w, b, dy = _case(name, dtype)
    ref64 = [a.astype(np.float64) for a in (x, w, b, dy)]
    y = REF.conv2d(*ref64[:3], g)
    dx = REF.conv2d_input_grad(ref64[1], ref64[3], g)
    dw, db = REF.conv2d_weight_grad(ref64[0], ref64[3], g)
    xd, wd, bd, dyd = (cp.asarray(a) for a in (x, w, b, dy))
    rtol = 2e-3 if dtype == np.float32 else 1e-8
    got = [gpu.conv2d(xd, wd, bd, g), *gpu.conv2d_grad(xd, wd, dyd, g)]
    for value, want in zip(got, (y, dx, dw, db)):
        _close(value, want, rtol * max(1.0, np.abs(want).max()))
    again = [gpu.conv2d(xd, wd, bd, g), *gpu.conv2d_grad(xd, wd, dyd, g)]
    for first, second in zip(got, again):
        assert (first == second).all()  # no atomics: the same bits every run
    if name == "c1":
        assert ig.plan("weight_grad", g).splits > 1  # the split, ordered reduction was exercised


@pytest.mark.parametrize("tensor_cores", [True, False], ids=["mma", "cuda-cores"])
@pytest.mark.parametrize("name", ["c1", "c3", "mid", "wide"])
def test_tf32_is_opt_in_and_within_its_derived_tolerance(cp, gpu, monkeypatch, name, tensor_cores):
    g, x, w, b, dy = _case(name, np.float32, seed=1)
    xd, wd, dyd = cp.asarray(x), cp.asarray(w), cp.asarray(dy)
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    exact = REF.conv2d(x64, w64, None, g)
    exact_dx = REF.conv2d_input_grad(w64, dy64, g)
    exact_dw, _ = REF.conv2d_weight_grad(x64, dy64, g)
    fp32 = gpu.conv2d(xd, wd, None, g).get()
    monkeypatch.setattr(gpu, "tf32", True)
    monkeypatch.setattr(gpu, "tensor_cores", tensor_cores)
    tf32 = gpu.conv2d(xd, wd, None, g)
    tf32_dx = gpu.conv2d_input_grad(wd, dyd, g)
    tf32_dw = gpu.conv2d_weight_grad(xd, dyd, g)[0]
    assert (tf32 == gpu.conv2d(xd, wd, None, g)).all() and (tf32_dw == gpu.conv2d_weight_grad(xd, dyd, g)[0]).all()
    tf32, tf32_dx, tf32_dw = tf32.get(), tf32_dx.get(), tf32_dw.get()
    assert np.abs(tf32 - exact).max() <= ig.tf32_tolerance(g.k, np.abs(x).max() * np.abs(w).max())
    dx_depth = (g.o // g.groups) * g.kh * g.kw
    assert np.abs(tf32_dx - exact_dx).max() <= ig.tf32_tolerance(dx_depth, np.abs(w).max() * np.abs(dy).max())
    depth = g.n * g.oh * g.ow
    assert np.abs(tf32_dw - exact_dw).max() <= ig.tf32_tolerance(depth, np.abs(x).max() * np.abs(dy).max())
    assert np.abs(tf32 - exact).max() > np.abs(fp32 - exact).max()  # TF32 really rounds; float32 is the default


def test_implicit_gemm_matches_cudnn(cp, gpu):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device")
    g, x, w, b, dy = _case("c3", np.float32, seed=2)
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        tx, tw, tb = (torch.tensor(a, device="cuda", requires_grad=True) for a in (x, w, b))
        torch.nn.functional.conv2d(tx, tw, tb).backward(torch.tensor(dy, device="cuda"))
        ty = torch.nn.functional.conv2d(tx, tw, tb).detach().cpu().numpy()
    finally:
        torch.backends.cudnn.allow_tf32 = saved
    xd, wd, bd, dyd = (cp.asarray(a) for a in (x, w, b, dy))
    dx, dw, db = gpu.conv2d_grad(xd, wd, dyd, g)
    for got, want in ((gpu.conv2d(xd, wd, bd, g), ty), (dx, tx.grad.cpu().numpy()), (dw, tw.grad.cpu().numpy())):
        _close(got, want, 2e-3 * max(1.0, np.abs(want).max()))


def test_conv_bias_relu_is_one_fused_launch_of_the_same_numbers(cp, gpu):
    g, x, w, b, _ = _case("c3", np.float32, seed=3)
    xd, wd, bd = cp.asarray(x), cp.asarray(w), cp.asarray(b)
    assert (gpu.conv2d_bias_relu(xd, wd, bd, g) == cp.maximum(gpu.conv2d(xd, wd, bd, g), 0)).all()


@pytest.mark.parametrize("shape", [(4, 6, 28, 28), (2, 3, 7, 9)])
def test_relu_max_pool_fused_is_pool_then_relu_forward_and_backward(cp, gpu, shape):
    rng = np.random.default_rng(4)
    x = rng.integers(-2, 3, shape).astype(np.float64)  # ties and non-positive windows on purpose
    dy_shape = (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    dy = rng.standard_normal(dy_shape)
    pooled = F.max_pool2d(x, 2, backend="numpy")
    want_y = np.maximum(pooled, 0)
    want_dx = F.max_pool2d_grad(x, dy * (pooled > 0), 2, backend="numpy")
    y, winner = gpu.relu_max_pool2x2(cp.asarray(x))
    assert (y.get() == want_y).all()
    assert (gpu.relu_max_pool2x2_grad(cp.asarray(dy), winner, shape).get() == want_dx).all()


def test_fused_softmax_cross_entropy_matches_the_layer(cp, gpu):
    rng = np.random.default_rng(5)
    logits = (rng.standard_normal((300, 10)) * 3).astype(np.float32)
    labels = rng.integers(0, 10, 300)
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss = loss_fn(logits, labels)
    dlogits = loss_fn.backward()
    loss_sum, correct = cp.zeros((), cp.float64), cp.zeros((), cp.int64)
    got = gpu.softmax_cross_entropy_fused(cp.asarray(logits), cp.asarray(labels), loss_sum, correct)
    eps = np.finfo(np.float32).eps
    assert abs(float(loss_sum) - loss * 300) <= 300 * 10 * eps * max(1.0, abs(loss))
    assert int(correct) == int((logits.argmax(axis=1) == labels).sum())
    _close(got, dlogits, 10 * eps)
    gpu.softmax_cross_entropy_fused(cp.asarray(logits), cp.asarray(labels), loss_sum, correct)
    assert int(correct) == 2 * int((logits.argmax(axis=1) == labels).sum())  # the sums accumulate


def test_one_launch_sgd_matches_optim_sgd(cp, gpu):
    from minicnn.captured import sgd_update

    net = mc.models.lenet5(seed=0).to("gpu")
    params = list(net.parameters())
    rng = np.random.default_rng(6)
    for p in params:
        p.grad[...] = cp.asarray(rng.standard_normal(p.shape).astype(np.float32))
    data = [p.data.copy() for p in params]
    v_ref = [cp.full(p.shape, 0.5, cp.float32) for p in params]
    v_fused = [v.copy() for v in v_ref]
    lr = cp.full((), 0.05, cp.float32)
    gpu.sgd_momentum_update(params, v_fused, lr, 0.9, 5e-4)
    fused = [p.data.copy() for p in params]
    for p, d in zip(params, data):
        p.data[...] = d
    sgd_update(params, v_ref, lr, 0.9, 5e-4)
    eps = np.finfo(np.float32).eps
    for a, b, va, vb in zip(fused, params, v_fused, v_ref):
        _close(a, b.data.get(), 4 * eps * max(1.0, float(cp.abs(b.data).max())))
        _close(va, vb.get(), 4 * eps * max(1.0, float(cp.abs(vb).max())))


# --------------------------------------------------------------------------- the captured step
def _device_step(cp, capture, batches, algorithm="im2col"):
    from minicnn.captured import CupyCapture, DeviceStep

    backend = mc.get_backend("cupy")
    backend.conv_algorithm = algorithm
    net = mc.models.lenet5(seed=0).fuse().to("gpu")
    opt = mc.optim.SGD(net.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    capturer = CupyCapture() if capture else _PlainCupy()
    step = DeviceStep(net, opt, len(batches[0][1]), (1, 32, 32), xp=cp, capturer=capturer, fused=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture is a test failure here
        with mc.use_backend("cupy"):
            for x, y in batches:
                step.load(x, y)
                step.run()
    return net, step


class _PlainCupy:
    """The same stream handling as CupyCapture, never capturing: the plain launches to compare against."""

    available = False

    def __init__(self):
        from minicnn.captured import CupyCapture

        self.inner = CupyCapture()

    def run(self, body):
        self.inner.run(body)

    def synchronize(self):
        self.inner.synchronize()

    def fence(self):
        self.inner.fence()


def _batches(count, batch):
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((batch, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, batch)) for _ in range(count)]


@pytest.mark.parametrize("algorithm", ["im2col", "implicit_gemm"])
def test_the_step_captures_and_replays_the_same_bits_as_plain_launches(cp, gpu, algorithm):
    batches = _batches(6, 64)
    net_c, step_c = _device_step(cp, True, batches, algorithm)
    net_p, step_p = _device_step(cp, False, batches, algorithm)
    assert step_c.captured and not step_p.captured
    for (name, a), (_, b) in zip(net_c.state_dict().items(), net_p.state_dict().items()):
        assert np.array_equal(a, b), name
    assert step_c.metrics() == step_p.metrics()


@pytest.mark.parametrize("algorithm", ["im2col", "implicit_gemm"])
def test_the_gpu_step_follows_the_cpu_step(cp, gpu, algorithm):
    """Fused loss, update, ReLU + pooling (and, with implicit GEMM, conv + bias + ReLU), captured: close to train.step."""
    from minicnn.captured import ConvBiasRelu, ReluPool2x2
    from minicnn.train import step as training_step

    batches = _batches(3, 32)
    net_gpu, device_step = _device_step(cp, True, batches, algorithm)
    kinds = {type(stage) for stage in device_step.stages}
    assert ReluPool2x2 in kinds and (ConvBiasRelu in kinds) == (algorithm == "implicit_gemm")
    net = mc.models.lenet5(seed=0).fuse()
    opt = mc.optim.SGD(net.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss_sum = 0.0
    for x, y in batches:
        loss, _ = training_step(net, loss_fn, opt, x, y)
        loss_sum += loss * len(y)
    assert device_step.metrics()[0] == pytest.approx(loss_sum, rel=1e-4)
    for (name, a), (_, b) in zip(net.state_dict().items(), net_gpu.state_dict().items()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * max(1.0, np.abs(a).max()), err_msg=name)
