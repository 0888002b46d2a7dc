"""SGD with momentum as deck 002 writes it, learning-rate schedules, checkpoints, and a tiny training run."""

import math

import numpy as np
import pytest

import minicnn as mc
from minicnn import nn
from minicnn.optim import SGD, CosineLR, StepLR


def _param(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


def test_plain_sgd_step():
    p = _param([1.0, -2.0])
    opt = SGD([p], lr=0.1)
    p.grad[:] = [0.5, -1.0]
    opt.step()
    np.testing.assert_allclose(p.data, [1.0 - 0.05, -2.0 + 0.1])


def test_momentum_follows_the_slide_over_several_steps_with_a_changing_rate():
    # v := γ v + η ∇θ ; θ := θ - v  (deck 002, "Aprendizaje: Stochastic Gradient Descend")
    p = _param([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9)
    grads = [[1.0, -1.0], [0.5, 0.0], [-2.0, 1.0], [0.0, 3.0]]
    rates = [0.1, 0.1, 0.01, 0.01]
    theta, v = np.array([1.0, 2.0]), np.zeros(2)
    for g, lr in zip(grads, rates):
        opt.lr = lr
        p.grad[:] = g
        opt.step()
        v = 0.9 * v + lr * np.array(g)
        theta = theta - v
        np.testing.assert_allclose(p.data, theta, rtol=1e-15)
        np.testing.assert_allclose(opt.velocities[0], v, rtol=1e-15)
    # By hand: v1 = (0.1, -0.1), θ1 = (0.9, 2.1); v2 = (0.14, -0.09), θ2 = (0.76, 2.19)
    # v3 = (0.106, -0.071), θ3 = (0.654, 2.261); v4 = (0.0954, -0.0339), θ4 = (0.5586, 2.2949)
    np.testing.assert_allclose(p.data, [0.5586, 2.2949], rtol=1e-12)


def test_weight_decay_adds_to_the_gradient_first():
    p = _param([2.0, -1.0])
    opt = SGD([p], lr=0.5, momentum=0.5, weight_decay=0.1)
    p.grad[:] = [1.0, 1.0]
    opt.step()  # g = (1.2, 0.9); v = 0.5 g = (0.6, 0.45); θ = (1.4, -1.45)
    np.testing.assert_allclose(p.data, [1.4, -1.45])
    opt.step()  # g = (1.14, 0.855); v = 0.5*(0.6, 0.45) + 0.5 g = (0.87, 0.6525)
    np.testing.assert_allclose(p.data, [1.4 - 0.87, -1.45 - 0.6525])


def test_zero_grad_and_float32_updates_stay_float32():
    layer = nn.Linear(3, 2, rng=0)
    opt = SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    layer.weight.grad[:] = 1.0
    opt.step()
    assert layer.weight.data.dtype == np.float32 and opt.velocities[0].dtype == np.float32
    opt.zero_grad()
    assert not layer.weight.grad.any() and not layer.bias.grad.any()


def test_sgd_argument_checks():
    p = _param([1.0])
    with pytest.raises(ValueError, match="params is empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match=r"momentum must be \[0.0, 1.0\)"):
        SGD([p], lr=0.1, momentum=1.0)
    opt = SGD([p, p], lr=0.1)
    assert len(opt.params) == 1  # a shared parameter is updated once
    with pytest.raises(TypeError, match="real number"):
        opt.lr = "fast"


def test_sgd_state_dict_round_trip_continues_identically():
    def run(opt, p, grads):
        for g in grads:
            p.grad[:] = g
            opt.step()

    grads = [[1.0, 2.0], [-1.0, 0.5], [0.3, 0.3], [2.0, -2.0]]
    p = _param([0.0, 0.0])
    opt = SGD([p], lr=0.1, momentum=0.8, weight_decay=0.01)
    run(opt, p, grads[:2])
    state, theta = opt.state_dict(), p.data.copy()
    assert state["velocity.0"].shape == (2,) and state["steps"] == 2
    run(opt, p, grads[2:])
    q = _param(theta)
    restored = SGD([q], lr=0.5).load_state_dict(state)
    assert restored.lr == 0.1 and restored.momentum == 0.8 and restored.weight_decay == 0.01
    run(restored, q, grads[2:])
    np.testing.assert_array_equal(q.data, p.data)
    with pytest.raises(ValueError, match="shape"):
        SGD([_param([0.0, 0.0, 0.0])], lr=0.1).load_state_dict(state)


def test_sgd_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5)
    grads = rng.standard_normal((4, 5))
    for momentum, decay in [(0.0, 0.0), (0.9, 0.0), (0.9, 0.05)]:
        p = _param(start.copy())
        t = torch.tensor(start.copy(), requires_grad=True)
        ours = SGD([p], lr=0.05, momentum=momentum, weight_decay=decay)
        theirs = torch.optim.SGD([t], lr=0.05, momentum=momentum, weight_decay=decay)
        for g in grads:  # with a constant rate, both ways of writing momentum agree
            p.grad[:] = g
            t.grad = torch.tensor(g)
            ours.step()
            theirs.step()
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12)


# --------------------------------------------------------------- schedules
def test_step_lr():
    opt = SGD([_param([0.0])], lr=0.1)
    sched = StepLR(opt, step_size=2, gamma=0.5)
    rates = [sched.step() for _ in range(5)]
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.05, 0.025, 0.025])
    assert opt.lr == pytest.approx(0.025)


def test_cosine_lr():
    opt = SGD([_param([0.0])], lr=0.2)
    sched = CosineLR(opt, epochs=4, min_lr=0.02)
    rates = [sched.step() for _ in range(6)]
    expected = [0.02 + 0.18 * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4, 4, 4)]
    np.testing.assert_allclose(rates, expected)
    assert rates[1] == pytest.approx(0.11) and rates[3] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="min_lr"):
        CosineLR(SGD([_param([0.0])], lr=0.01), epochs=3, min_lr=0.1)


def test_schedule_state_dict_round_trip():
    opt = SGD([_param([0.0])], lr=0.1)
    sched = StepLR(opt, step_size=1, gamma=0.1)
    sched.step(), sched.step()
    state = sched.state_dict()
    opt2 = SGD([_param([0.0])], lr=0.1)
    sched2 = StepLR(opt2, step_size=1, gamma=0.1).load_state_dict(state)
    assert sched2.epoch == 2 and opt2.lr == pytest.approx(0.001)
    assert sched2.step() == pytest.approx(sched.step())


# ---------------------------------------------------------------- training
def _bars(n, rng):
    """Noisy 32x32 images: class 0 has a horizontal bar, class 1 a vertical one."""
    labels = rng.integers(0, 2, n)
    x = rng.normal(0.0, 0.3, (n, 1, 32, 32)).astype(np.float32)
    rows, cols = rng.integers(6, 22, n), rng.integers(6, 22, n)
    for i in range(n):
        if labels[i] == 0:
            x[i, 0, rows[i] : rows[i] + 3, 6:26] += 1.0
        else:
            x[i, 0, 6:26, cols[i] : cols[i] + 3] += 1.0
    return x, labels


def test_lenet5_learns_a_small_problem():
    rng = np.random.default_rng(0)
    x, labels = _bars(200, rng)
    net = mc.models.lenet5(num_classes=2, seed=0)
    opt = SGD(net.parameters(), lr=0.02, momentum=0.9)
    loss_fn = nn.SoftmaxCrossEntropy()
    epoch_losses = []
    for _ in range(4):
        losses = []
        for i in range(0, 200, 25):
            opt.zero_grad()
            losses.append(loss_fn(net(x[i : i + 25]), labels[i : i + 25]))
            net.backward(loss_fn.backward())
            opt.step()
        epoch_losses.append(np.mean(losses))
    assert epoch_losses[-1] < 0.25 * epoch_losses[0]
    net.eval()
    assert (net(x).argmax(axis=1) == labels).mean() >= 0.95
