"""The device-resident step (minicnn/captured.py) on NumPy: bit for bit train.step, and its capture/fallback logic.

The CUDA calls are stubbed: a fake stream whose begin/end_capture succeed or
raise stands in for ``cupy.cuda.Stream``. A real capture records without
executing, so the fake one restores every array the body wrote when the
capture ends and hands back a graph whose ``launch`` runs the body.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pytest

import minicnn as mc
from minicnn import optim
from minicnn.captured import (CupyCapture, DeviceStep, NoCapture, capture_blockers, fused_stages, sgd_update,
                              softmax_cross_entropy)
from minicnn.graph import Sequential
from minicnn.nn import SoftmaxCrossEntropy
from minicnn.train import step


def _lenet(seed=0):
    return mc.models.lenet5(seed=seed).fuse()


def _batches(count, batch_size, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch_size, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, batch_size))
            for _ in range(count)]


def _sgd(net, lr=0.05, momentum=0.9, weight_decay=5e-4):
    return optim.SGD(net.parameters(), lr, momentum=momentum, weight_decay=weight_decay)


def _reference(batches, lr_by_step=None, **sgd):
    """Weights, velocities, loss sum and correct count after train.step over ``batches`` (as train() sums them)."""
    net = _lenet()
    opt = _sgd(net, **sgd)
    loss_fn = SoftmaxCrossEntropy()
    loss_sum, correct = 0.0, 0
    for i, (x, y) in enumerate(batches):
        if lr_by_step:
            opt.lr = lr_by_step[i]
        loss, logits = step(net, loss_fn, opt, x, y)
        loss_sum += loss * len(y)
        correct += int((logits.argmax(axis=1) == y).sum())
    return net, opt, loss_sum, correct


def _device(batches, capturer=None, lr_by_step=None, warmup=2, fused=None, build=_lenet, **sgd):
    net = build()
    opt = _sgd(net, **sgd)
    dev = DeviceStep(net, opt, len(batches[0][1]), (1, 32, 32), capturer=capturer, warmup=warmup, fused=fused)
    for i, (x, y) in enumerate(batches):
        if lr_by_step:
            opt.lr = lr_by_step[i]
        dev.load(x, y)
        dev.run()
    return net, opt, dev


def _assert_same_state(net_a, opt_a, net_b, opt_b):
    for (name, a), (_, b) in zip(net_a.state_dict().items(), net_b.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for va, vb in zip(opt_a.velocities, opt_b.velocities):
        np.testing.assert_array_equal(va, vb)
    assert opt_a.steps == opt_b.steps


# --------------------------------------------------------------------------- bit-identity with train.step
@pytest.mark.parametrize("sgd", [{}, {"momentum": 0.0}, {"weight_decay": 0.0}])
def test_device_step_is_train_step_bit_for_bit(sgd):
    batches = _batches(4, 8)
    net_r, opt_r, loss_r, correct_r = _reference(batches, **sgd)
    net_d, opt_d, dev = _device(batches, **sgd)
    _assert_same_state(net_r, opt_r, net_d, opt_d)
    loss_d, correct_d = dev.metrics()
    assert loss_d == loss_r and correct_d == correct_r
    assert not dev.captured  # NumPy: nothing to capture


def test_a_changed_learning_rate_reaches_the_device_copy():
    batches = _batches(4, 8, seed=3)
    schedule = [0.05, 0.05, 0.01, 0.002]
    net_r, opt_r, *_ = _reference(batches, lr_by_step=schedule)
    net_d, opt_d, dev = _device(batches, lr_by_step=schedule)
    _assert_same_state(net_r, opt_r, net_d, opt_d)
    assert dev.lr == np.float32(0.002)


def test_loss_and_gradient_match_softmax_cross_entropy():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((7, 10)).astype(np.float32) * 4
    labels = rng.integers(0, 10, 7)
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn(logits, labels)
    log_likelihood, dlogits = softmax_cross_entropy(logits, labels)
    assert -float(log_likelihood) / 7 == loss
    np.testing.assert_array_equal(dlogits, loss_fn.backward())


def test_sgd_update_is_optim_sgd():
    net_a, net_b = _lenet(1), _lenet(1)
    rng = np.random.default_rng(2)
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        pa.grad[...] = pb.grad[...] = rng.standard_normal(pa.shape).astype(np.float32)
    opt = _sgd(net_a, lr=0.1)
    opt.step()
    params = list(net_b.parameters())
    velocities = [np.zeros_like(p.data) for p in params]
    sgd_update(params, velocities, np.full((), 0.1, np.float32), 0.9, 5e-4)
    for pa, pb, va, vb in zip(net_a.parameters(), params, opt.velocities, velocities):
        np.testing.assert_array_equal(pa.data, pb.data)
        np.testing.assert_array_equal(va, vb)


def test_metrics_reset_and_the_velocities_are_the_optimizers():
    batches = _batches(2, 4)
    net, opt, dev = _device(batches)
    assert dev.metrics()[0] > 0
    dev.reset_metrics()
    assert dev.metrics() == (0.0, 0)
    assert all(v is w for v, w in zip(dev.velocities, opt.velocities))  # checkpoints see the step's velocities


# --------------------------------------------------------------------------- the loader's checks
def test_load_refuses_wrong_shapes_and_labels():
    net = _lenet()
    dev = DeviceStep(net, _sgd(net), 4, (1, 32, 32))
    x = np.zeros((4, 1, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"shape \(4, 1, 32, 32\)"):
        dev.load(x[:3], np.zeros(3, int))
    with pytest.raises(ValueError, match=r"\[0, K\) = \[0, 10\).*\[0, 10\]"):
        dev.load(x, np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="4 integers"):
        dev.load(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DeviceStep(net, _sgd(net), 0, (1, 32, 32))


# --------------------------------------------------------------------------- capture and fallback, CUDA stubbed
class _FakeGraph:
    def __init__(self, stream):
        self.stream, self.launches = stream, 0

    def launch(self, stream):
        assert stream is self.stream
        self.launches += 1
        self.stream.replay()


class FakeStream:
    """``begin_capture``/``end_capture`` of ``cupy.cuda.Stream``; ``fail`` = "begin", "end" or None."""

    def __init__(self, fail=None):
        self.fail, self.capturing, self.entered = fail, False, 0
        self.arrays, self.replay, self.graph, self.ended = [], None, None, 0

    def __enter__(self):
        self.entered += 1
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self):
        if self.fail == "begin":
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: operation not permitted when stream is capturing")
        self.capturing = True
        self._before = [a.copy() for a in self.arrays]

    def end_capture(self):
        # A capture records, it does not execute: undo what the eager NumPy body wrote.
        for array, before in zip(self.arrays, self._before):
            array[...] = before
        self.capturing = False
        self.ended += 1
        if self.fail == "end":
            raise RuntimeError("cudaErrorStreamCaptureInvalidated: capture was invalidated")
        self.graph = _FakeGraph(self)
        return self.graph

    def synchronize(self):
        pass


class StubbedCapture(CupyCapture):
    """CupyCapture's capture/fallback logic with the two CuPy-only pieces (memory pool, cuBLAS workspace) stubbed."""

    def _memory_scope(self):
        return contextlib.nullcontext()

    def _set_cublas_workspace(self):
        self.prepared = True

    def fence(self):
        self.fences = getattr(self, "fences", 0) + 1


def _captured_run(batches, fail=None, warmup=2):
    net = _lenet()
    opt = _sgd(net)
    stream = FakeStream(fail)
    dev = DeviceStep(net, opt, len(batches[0][1]), (1, 32, 32), capturer=StubbedCapture(stream), warmup=warmup)
    stream.arrays, stream.replay = dev.state_arrays(), dev._body
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x, y in batches:
            dev.load(x, y)
            dev.run()
    return net, opt, dev, stream, caught


def test_a_captured_step_replays_with_the_same_results():
    batches = _batches(5, 8)
    net_r, opt_r, loss_r, correct_r = _reference(batches)
    net, opt, dev, stream, caught = _captured_run(batches, warmup=2)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert dev.captured and dev.capturer.prepared
    assert dev.capturer.fences == 1  # at creation: what the default stream queued comes first
    assert dev.metrics() == (loss_r, correct_r)
    dev.reset_metrics()
    assert dev.capturer.fences == 2 and dev.metrics() == (0.0, 0)
    assert stream.graph.launches == 3  # steps 3, 4, 5: the capture's own step is a launch too
    _assert_same_state(net_r, opt_r, net, opt)


@pytest.mark.parametrize("fail", ["begin", "end"])
def test_a_failed_capture_warns_and_falls_back_to_plain_launches(fail):
    batches = _batches(4, 8)
    net_r, opt_r, loss_r, correct_r = _reference(batches)
    net, opt, dev, stream, caught = _captured_run(batches, fail=fail, warmup=1)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "capture failed" in messages[0] and "cudaErrorStreamCapture" in messages[0]
    assert not dev.captured and dev.capture_error is not None
    assert not stream.capturing  # the stream left capture mode
    _assert_same_state(net_r, opt_r, net, opt)
    assert dev.metrics() == (loss_r, correct_r)


def test_a_body_that_raises_during_capture_ends_the_capture():
    net = _lenet()
    stream = FakeStream()
    capture = StubbedCapture(stream)

    def body():
        raise RuntimeError("cudaErrorStreamCaptureUnsupported: a synchronising call")

    with pytest.raises(RuntimeError, match="StreamCaptureUnsupported"):
        capture.capture(body)
    assert not stream.capturing and stream.ended == 1
    assert capture_blockers(net) == []


def test_host_random_layers_block_the_capture():
    net = Sequential(mc.nn.Flatten(), mc.nn.Dropout(0.5), mc.nn.Linear(32 * 32, 10))
    assert capture_blockers(net) == ["Dropout"]
    opt = _sgd(net)
    stream = FakeStream()
    dev = DeviceStep(net, opt, 4, (1, 32, 32), capturer=StubbedCapture(stream), warmup=0)
    x, y = _batches(1, 4)[0]
    dev.load(x, y)
    dev.run()
    assert not dev.captured and stream.graph is None


def test_no_capture_is_never_available():
    assert NoCapture().available is False and CupyCapture.available is True


# --------------------------------------------------------------------------- train() on the device path
def test_train_on_the_device_path_is_train_bit_for_bit(tmp_path, monkeypatch):
    """train()'s GPU loop (DeviceStep per batch size, sums read once an epoch), run on NumPy, equals its CPU loop."""
    from minicnn import train as training
    from minicnn.train import TrainConfig, load_checkpoint

    def run(out):
        config = TrainConfig(size=72, test_size=32, epochs=2, batch_size=16, plots=False, out=out)  # last batch: 8
        return training.train(config, progress=False)

    plain = run(tmp_path / "plain")
    monkeypatch.setattr(training, "_uses_device_step", lambda backend: True)
    device = run(tmp_path / "device")
    for a, b in zip(plain["epochs"], device["epochs"]):
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"):
            assert a[key] == b[key], key
    saved_a, saved_b = (load_checkpoint(tmp_path / name / "checkpoint.npz") for name in ("plain", "device"))
    for name in saved_a["model"]:
        np.testing.assert_array_equal(saved_a["model"][name], saved_b["model"][name], err_msg=name)
    for name in saved_a["optimizer"]:
        np.testing.assert_array_equal(saved_a["optimizer"][name], saved_b["optimizer"][name], err_msg=name)


# --------------------------------------------------------------------------- fused ReLU + 2x2 max pooling stages
class NumpyReluPool:
    """fused.cu's relu_max_pool2x2 forward/backward, its documented formula written in NumPy (the kernel's mirror)."""

    def __init__(self):
        self.calls = 0

    def relu_max_pool2x2(self, x):
        self.calls += 1
        n, c, h, w = x.shape
        oh, ow = h // 2, w // 2
        # candidates in the kernel's order: (0,0), (0,1), (1,0), (1,1) -> winner 2a + b, first maximum on ties
        windows = np.stack([x[:, :, a : 2 * oh : 2, b : 2 * ow : 2] for a in (0, 1) for b in (0, 1)])
        best, arg = windows[0].copy(), np.zeros((n, c, oh, ow), np.int8)
        for index in (1, 2, 3):
            better = windows[index] > best
            best[better], arg[better] = windows[index][better], index
        positive = best > 0
        return np.where(positive, best, 0).astype(x.dtype), np.where(positive, arg, -1).astype(np.int8)

    def relu_max_pool2x2_grad(self, dy, winner, x_shape):
        n, c, h, w = x_shape
        dx = np.zeros(x_shape, dy.dtype)
        for a in (0, 1):
            for b in (0, 1):
                hits = winner == 2 * a + b
                dx[:, :, a : 2 * (h // 2) : 2, b : 2 * (w // 2) : 2] = np.where(hits, dy, 0)
        return dx


def test_fused_relu_pool_stages_replace_both_pairs_of_lenet():
    net = _lenet()
    stages = fused_stages(net, NumpyReluPool())
    fused = [s for s in stages if type(s).__name__ == "ReluPool2x2"]
    assert len(fused) == 2 and len(stages) == len(net.execution_order) - 2
    assert fused_stages(net, None) is None and fused_stages(net, object()) is None


def test_only_plain_2x2_max_pools_are_fused():
    from minicnn.captured import _is_pool2x2

    assert _is_pool2x2(mc.nn.MaxPool2d(2))
    for pool in (mc.nn.MaxPool2d(2, dilation=2), mc.nn.MaxPool2d(2, ceil_mode=True),
                 mc.nn.MaxPool2d(2, return_indices=True), mc.nn.MaxPool2d(2, padding=1), mc.nn.MaxPool2d(3, 2)):
        assert not _is_pool2x2(pool), pool


def test_the_step_with_fused_relu_pool_is_train_step_bit_for_bit():
    batches = _batches(4, 8, seed=9)
    net_r, opt_r, loss_r, correct_r = _reference(batches)
    fused = NumpyReluPool()
    net, opt, dev = _device(batches, fused=fused)
    assert fused.calls == 2 * len(batches)
    _assert_same_state(net_r, opt_r, net, opt)
    assert dev.metrics() == (loss_r, correct_r)


class NumpyConvRelu(NumpyReluPool):
    """A backend that also fuses Conv2d + ReLU: ``max(0, conv2d(x, w, b))``, computed as the layers compute it."""

    fuses_conv_bias_relu = True

    def conv2d_bias_relu(self, x, w, b, geometry):
        import minicnn.functional as F

        self.calls += 1
        (sh, sw), (ph, pw), (dh, dw) = geometry.stride, geometry.padding, geometry.dilation
        y = F.conv2d(x, w, b, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=geometry.groups)
        return np.maximum(y, 0, out=y)


def test_conv_relu_pairs_fuse_where_the_backend_says_so():
    net = _lenet()
    names = [type(s).__name__ for s in fused_stages(net, NumpyConvRelu())]
    assert names.count("ConvBiasRelu") == 1 and names.count("ReluPool2x2") == 2  # C5 + ReLU; C1, C3 feed the pools
    unfused = mc.models.lenet5(seed=0)  # as written: conv, ReLU, pool
    names = [type(s).__name__ for s in fused_stages(unfused, NumpyConvRelu())]
    assert names.count("ConvBiasRelu") == 3 and "ReluPool2x2" not in names


@pytest.mark.parametrize("fuse_order", [True, False])
def test_the_step_with_fused_conv_relu_is_train_step_bit_for_bit(fuse_order):
    batches = _batches(3, 8, seed=13)
    build = (lambda: mc.models.lenet5(seed=0).fuse()) if fuse_order else (lambda: mc.models.lenet5(seed=0))
    ref_net = build()
    ref_opt = _sgd(ref_net)
    loss_fn = SoftmaxCrossEntropy()
    for x, y in batches:
        step(ref_net, loss_fn, ref_opt, x, y)
    fused = NumpyConvRelu()
    net, opt, _ = _device(batches, fused=fused, build=build)
    assert fused.calls == 3 * len(batches)
    _assert_same_state(ref_net, ref_opt, net, opt)


def test_a_failing_preparation_falls_back_like_a_failed_capture():
    class NoWorkspace(StubbedCapture):
        def _set_cublas_workspace(self):
            raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED: no workspace")

    batches = _batches(3, 4)
    net_r, opt_r, loss_r, correct_r = _reference(batches)
    net = _lenet()
    opt = _sgd(net)
    stream = FakeStream()
    dev = DeviceStep(net, opt, 4, (1, 32, 32), capturer=NoWorkspace(stream), warmup=1)
    stream.arrays, stream.replay = dev.state_arrays(), dev._body
    with pytest.warns(RuntimeWarning, match="CUBLAS_STATUS_NOT_SUPPORTED"):
        for x, y in batches:
            dev.load(x, y)
            dev.run()
    assert not dev.captured and stream.graph is None and not stream.capturing
    _assert_same_state(net_r, opt_r, net, opt)
    assert dev.metrics() == (loss_r, correct_r)


def test_the_device_path_reports_divergence_at_the_end_of_the_epoch(tmp_path, monkeypatch):
    from minicnn import train as training
    from minicnn.train import TrainConfig, TrainingDiverged

    monkeypatch.setattr(training, "_uses_device_step", lambda backend: True)
    config = TrainConfig(size=64, test_size=32, epochs=2, batch_size=16, plots=False, lr=1e6, out=tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in the diverging arithmetic itself
        with pytest.raises(TrainingDiverged, match=r"training loss of epoch 1/2 is (nan|inf).*lr = 1e\+06.*no checkpoint"):
            training.train(config, progress=False)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_uploads_alternate_two_staging_buffers_and_wait_for_their_last_copy(monkeypatch):
    """The CuPy loader path with CuPy stubbed: pinned buffers in turn, each reused only after its event."""
    import sys
    import types

    class DeviceArray(np.ndarray):
        def set(self, host):
            self.copies.append(host)
            self[...] = host

    log = []

    class Event:
        def __init__(self, disable_timing=False):
            self.number = len([e for e in log if e[0] == "record"])

        def record(self):
            log.append(("record", self.number))

        def synchronize(self):
            log.append(("wait", self.number))

    fake_cupy = types.ModuleType("cupy")
    fake_cupy.cuda = types.SimpleNamespace(Event=Event)
    fake_cupyx = types.ModuleType("cupyx")
    fake_cupyx.empty_pinned = lambda shape, dtype: np.empty(shape, dtype)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupyx", fake_cupyx)

    def device(array):
        out = array.view(DeviceArray)
        out.copies = []
        return out

    xp = types.SimpleNamespace(zeros=lambda shape, dtype: device(np.zeros(shape, dtype)),
                               full=lambda shape, value, dtype: device(np.full(shape, value, dtype)),
                               zeros_like=lambda a: device(np.zeros_like(a)))
    net = _lenet()
    dev = DeviceStep(net, _sgd(net), 4, (1, 32, 32), xp=xp)
    batches = _batches(3, 4)
    for x, y in batches:
        dev.load(x, y)
    np.testing.assert_array_equal(dev.x, batches[-1][0])
    np.testing.assert_array_equal(dev.labels, batches[-1][1])
    sources = [id(host) for host in dev.x.copies]
    assert sources[0] == sources[2] != sources[1]  # two pinned buffers, taken in turn
    assert log == [("record", 0), ("record", 1), ("wait", 0), ("record", 2)]  # buffer 0 reused after its copy
