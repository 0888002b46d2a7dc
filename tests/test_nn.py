"""Layers and the softmax cross-entropy: gradients, formulas, modes, state and errors."""

import numpy as np
import pytest
from conftest import to_numpy
from hypothesis import given
from hypothesis import strategies as st
from gradcheck import check_function_gradient, check_module_gradients

import minicnn as mc
import minicnn.functional as F
from minicnn.graph import Sequential
from minicnn import nn


def _xp(backend_name):
    return mc.get_backend(backend_name).xp


def _checks(backend_name):
    """Entries checked per tensor: all of them on the reference backend, a random sample on the others."""
    return None if backend_name == "numpy" else 12


def _on(backend_name, module):
    """``module`` in float64 on the backend's device."""
    device = "cpu" if _xp(backend_name) is np else "gpu"
    return module.to(device, dtype=np.float64)


def _randn(backend_name, rng, *shape):
    return _xp(backend_name).asarray(rng.standard_normal(shape))


# ----------------------------------------------------------- gradient checks
LAYER_CASES = {
    "conv_3x3_pad1": (lambda: nn.Conv2d(3, 4, 3, padding=1, rng=1), (2, 3, 6, 5)),
    "conv_stride_dilation": (lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), rng=2), (2, 2, 7, 8)),
    "conv_groups_nobias": (lambda: nn.Conv2d(4, 6, 3, groups=2, bias=False, rng=3), (1, 4, 5, 5)),
    "conv_1x1": (lambda: nn.Conv2d(3, 2, 1, rng=4), (2, 3, 4, 4)),
    "linear": (lambda: nn.Linear(7, 5, rng=5), (3, 7)),
    "linear_nobias": (lambda: nn.Linear(4, 3, bias=False, rng=6), (2, 4)),
    "maxpool_2x2": (lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    "maxpool_overlap_pad": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
    "avgpool_2x2": (lambda: nn.AvgPool2d(2), (2, 3, 6, 6)),
    "avgpool_overlap_pad": (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 2, 7, 6)),
    "global_avgpool": (lambda: nn.GlobalAvgPool2d(), (2, 3, 4, 5)),
    "relu": (lambda: nn.ReLU(), (2, 3, 4, 4)),
    "sigmoid": (lambda: nn.Sigmoid(), (2, 3, 4, 4)),
    "tanh": (lambda: nn.Tanh(), (3, 5)),
    "flatten": (lambda: nn.Flatten(), (2, 3, 2, 2)),
    "identity": (lambda: nn.Identity(), (2, 3)),
    "dropout_eval": (lambda: nn.Dropout(0.5, rng=0).eval(), (2, 6)),
    "batchnorm_train": (lambda: nn.BatchNorm2d(3), (4, 3, 3, 3)),
    "batchnorm_eval": (lambda: _bn_with_stats().eval(), (2, 3, 3, 3)),
}


def _bn_with_stats():
    bn = nn.BatchNorm2d(3)
    bn.running_mean[:] = [0.5, -1.0, 2.0]
    bn.running_var[:] = [2.0, 0.5, 1.5]
    bn.weight.data[:] = [1.5, -0.5, 2.0]
    bn.bias.data[:] = [0.1, 0.2, -0.3]
    return bn


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_gradients_match_finite_differences(case, backend_name, rng):
    make, shape = LAYER_CASES[case]
    layer = _on(backend_name, make())
    x = _randn(backend_name, rng, *shape)
    with mc.use_backend(backend_name):
        compared = check_module_gradients(layer, x, seed=1, max_checks=_checks(backend_name))
    assert compared >= min(x.size, 12)


def test_dropout_train_gradient_with_a_fixed_mask(backend_name, rng):
    layer = _on(backend_name, nn.Dropout(0.4))

    def same_mask():
        layer.rng = np.random.default_rng(7)
        layer._gpu_rng = None

    x = _randn(backend_name, rng, 3, 8)
    with mc.use_backend(backend_name):
        check_module_gradients(layer, x, before_forward=same_mask)


@pytest.mark.parametrize("merge", ["add", "concat"])
def test_merge_gradients(merge, backend_name, rng):
    layer = nn.Add() if merge == "add" else nn.Concat()
    shapes_ = [(2, 3, 4, 4)] * 3 if merge == "add" else [(2, 1, 4, 4), (2, 3, 4, 4), (2, 2, 4, 4)]
    xs = [_randn(backend_name, rng, *s) for s in shapes_]
    with mc.use_backend(backend_name):
        check_module_gradients(layer, *xs)


def test_softmax_cross_entropy_gradient(backend_name, rng):
    xp = _xp(backend_name)
    logits = xp.asarray(rng.standard_normal((5, 4)) * 3)
    labels = np.array([0, 3, 1, 1, 2])
    loss_fn = nn.SoftmaxCrossEntropy()
    loss_fn(logits, labels)
    dlogits = loss_fn.backward()
    check_function_gradient(lambda: loss_fn(logits, labels), dlogits, logits, name="logits")


# ---------------------------------------------------------- forward formulas
def test_conv2d_forward_is_functional_conv_with_bias(rng):
    layer = nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0)
    layer.bias.data[:] = rng.standard_normal(4)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    expected = F.conv2d(x, layer.weight.data, layer.bias.data, stride=2, padding=1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6, atol=1e-6)
    assert layer(x).dtype == np.float32


def test_linear_forward_is_affine_map(rng):
    layer = nn.Linear(6, 3, rng=0)
    layer.bias.data[:] = [1.0, -2.0, 0.5]
    x = rng.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.weight.data.T + layer.bias.data, rtol=1e-6, atol=1e-6)


def test_activation_formulas_and_cached_output_derivatives(rng):
    x = rng.standard_normal((3, 7)) * 4
    dy = rng.standard_normal((3, 7))
    for layer, f, fprime_of_y in [
        (nn.ReLU(), lambda v: np.maximum(v, 0), lambda y: (y > 0).astype(float)),
        (nn.Sigmoid(), lambda v: 1 / (1 + np.exp(-v)), lambda y: y * (1 - y)),
        (nn.Tanh(), np.tanh, lambda y: 1 - y**2),
    ]:
        y = layer(x)
        np.testing.assert_allclose(y, f(x), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(layer.backward(dy), dy * fprime_of_y(y), rtol=1e-12, atol=1e-15)


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = nn.Sigmoid()(np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32))
    np.testing.assert_array_equal(y, [[0.0, 0.5, 1.0]])


def test_pooling_layers_match_slide_example():
    # Deck 002, "Arquitectura de la Red : POOL:S2": a 4x4 map pooled 2x2 without overlap.
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x)[0, 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x)[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(nn.GlobalAvgPool2d()(x), [[[[7.5]]]])


def test_avgpool_backward_is_kron_upsampling():
    # Deck 002, "Aprendizaje: Backpropagation": deltaPool = kron(delta, ones(2)) / 4.
    pool = nn.AvgPool2d(2)
    pool(np.zeros((1, 1, 4, 4)))
    delta = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(pool.backward(delta[None, None])[0, 0], np.kron(delta, np.ones((2, 2))) / 4)


def test_maxpool_backward_routes_error_to_the_winner():
    pool = nn.MaxPool2d(2)
    x = np.array([[[[1.0, 9.0], [3.0, 2.0]]]])
    pool(x)
    np.testing.assert_array_equal(pool.backward(np.array([[[[5.0]]]])), [[[[0.0, 5.0], [0.0, 0.0]]]])


def test_flatten_shapes():
    flat = nn.Flatten()
    x = np.arange(2 * 16 * 5 * 5, dtype=np.float32).reshape(2, 16, 5, 5)
    assert flat(x).shape == (2, 400)
    assert flat.backward(flat(x)).shape == x.shape


@given(
    data=st.data(),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
)
def test_output_shape_and_parameter_count_agree_with_forward(data, kernel, stride, dilation, groups):
    padding = data.draw(st.integers(0, kernel // 2), label="padding")
    extent = dilation * (kernel - 1) + 1
    h = data.draw(st.integers(max(1, extent - 2 * padding), 9), label="h")
    w = data.draw(st.integers(max(1, extent - 2 * padding), 9), label="w")
    conv = nn.Conv2d(2 * groups, 2 * groups, kernel, stride, padding, dilation, groups, rng=0)
    pool = nn.MaxPool2d(kernel, stride=stride, padding=padding)
    x = np.zeros((2, 2 * groups, h, w), dtype=np.float32)
    y = conv(x)
    assert conv.output_shape(x.shape) == y.shape
    assert conv.num_parameters() == sum(p.data.size for p in conv.parameters())
    assert conv.macs(x.shape) == y.size * 2 * kernel * kernel  # each output: (C_in/groups) * F_H * F_W products
    assert pool.output_shape(x.shape) == pool(x).shape


# ------------------------------------------------------------------ dropout
def test_dropout_train_drops_and_rescales_eval_is_identity():
    x = np.ones((200, 100), dtype=np.float32)
    drop = nn.Dropout(0.3, rng=0)
    y = drop(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.03  # inverted dropout keeps the expectation
    dy = np.full_like(x, 2.0)
    np.testing.assert_array_equal(drop.backward(dy) != 0, kept)  # the same mask gates the gradient
    drop.eval()
    assert not drop.training
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(dy), dy)
    drop.train()
    assert (drop(x) == 0).any()


def test_dropout_is_deterministic_for_a_seed_and_edge_probabilities():
    x = np.ones((10, 10))
    np.testing.assert_array_equal(nn.Dropout(0.5, rng=3)(x), nn.Dropout(0.5, rng=3)(x))
    np.testing.assert_array_equal(nn.Dropout(0.0)(x), x)
    np.testing.assert_array_equal(nn.Dropout(1.0)(x), np.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)


def test_train_eval_switch_recursively_changes_dropout():
    net = mc.graph.Sequential(nn.Linear(4, 4, rng=0), nn.Dropout(0.5, rng=0), nn.Linear(4, 2, rng=1))
    x = np.ones((8, 4), dtype=np.float32)
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    np.testing.assert_array_equal(net(x), net(x))
    net.train()
    assert all(m.training for m in net.modules())
    assert not np.array_equal(net(x), net(x))


# ---------------------------------------------------------------- batchnorm
def test_batchnorm_normalises_and_tracks_running_statistics(rng):
    bn = nn.BatchNorm2d(2, momentum=0.5, dtype=np.float64)
    x = rng.standard_normal((4, 2, 3, 3)) * [[[[3.0]], [[0.5]]]] + [[[[1.0]], [[-2.0]]]]
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-3)
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3), ddof=1))
    assert set(bn.state_dict()) == {"weight", "bias", "running_mean", "running_var"}


# ------------------------------------------------------------- initialisers
def test_initialisers_have_the_documented_spread():
    rng = np.random.default_rng(0)
    shape = (64, 32, 3, 3)  # fan_in = 288, fan_out = 576
    assert nn.init.fans(shape) == (288, 576)
    assert nn.init.fans((10, 84)) == (84, 10)
    assert abs(nn.init.kaiming_normal(shape, rng).std() - np.sqrt(2 / 288)) < 0.02 * np.sqrt(2 / 288)
    he_u = nn.init.kaiming_uniform(shape, rng)
    assert np.abs(he_u).max() <= np.sqrt(6 / 288) and abs(he_u.std() - np.sqrt(2 / 288)) < 0.02 * np.sqrt(2 / 288)
    assert abs(nn.init.xavier_normal(shape, rng).std() - np.sqrt(2 / 864)) < 0.02 * np.sqrt(2 / 864)
    xa_u = nn.init.xavier_uniform(shape, rng)
    assert np.abs(xa_u).max() <= np.sqrt(6 / 864) and xa_u.dtype == np.float32


def test_layers_are_deterministic_for_a_seed_and_take_init():
    a, b, c = nn.Conv2d(3, 8, 3, rng=5), nn.Conv2d(3, 8, 3, rng=5), nn.Conv2d(3, 8, 3, rng=6)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    assert a.weight.data.dtype == np.float32 and not a.bias.data.any()
    ones = nn.Linear(3, 2, init=lambda shape, rng, dtype: np.ones(shape, dtype=dtype))
    np.testing.assert_array_equal(ones.weight.data, np.ones((2, 3)))
    with pytest.raises(ValueError, match="init must be one of"):
        nn.Linear(3, 2, init="orthogonal")


# -------------------------------------------------------------- module state
def test_parameters_names_and_gradient_accumulation(rng):
    layer = nn.Linear(3, 2, rng=0)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    p = layer.weight
    assert p.name == "weight" and p.grad.shape == p.data.shape and not p.grad.any()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    layer(x)
    layer.backward(dy)
    once = p.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(p.grad, 2 * once, rtol=1e-6)  # gradients add up until zero_grad
    layer.zero_grad()
    assert not p.grad.any() and not layer.bias.grad.any()


def test_parameter_rejects_non_float_arrays():
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        nn.Parameter([1.0, 2.0])
    with pytest.raises(TypeError, match="is a Parameter"):
        nn.Linear(2, 2).weight = np.zeros((2, 2))


def test_state_dict_round_trip_and_copies(rng):
    net = mc.graph.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=1))
    x = rng.standard_normal((4, 1, 4, 4)).astype(np.float32)
    net(x)  # moves the running statistics away from their start
    state = net.state_dict()
    assert set(state) == {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "4.weight", "4.bias"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    other = mc.graph.Sequential(nn.Conv2d(1, 2, 3, rng=9), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=9))
    other.load_state_dict(state)
    net.eval(), other.eval()
    np.testing.assert_array_equal(net(x), other(x))
    saved = state["0.weight"].copy()
    net[0].weight.data += 1.0  # training goes on: the saved state must not change
    np.testing.assert_array_equal(state["0.weight"], saved)


def test_load_state_dict_reports_names_and_shapes():
    layer = nn.Linear(3, 2)
    state = layer.state_dict()
    with pytest.raises(ValueError, match=r"missing \['bias'\]"):
        layer.load_state_dict({"weight": state["weight"]})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]"):
        layer.load_state_dict({**state, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match=r"'weight' has shape \(3, 2\) in the state but \(2, 3\)"):
        layer.load_state_dict({**state, "weight": np.zeros((3, 2))})
    layer.load_state_dict({"weight": np.ones((2, 3))}, strict=False)
    np.testing.assert_array_equal(layer.weight.data, np.ones((2, 3)))


def test_to_changes_dtype_and_gpu_needs_cupy():
    layer = nn.Conv2d(1, 2, 3).to(dtype=np.float64)
    assert layer.weight.data.dtype == np.float64 and layer.weight.grad.dtype == np.float64
    with pytest.raises(ValueError, match="'cpu' or 'gpu'"):
        layer.to("tpu")
    try:
        import cupy  # noqa: F401
    except Exception:
        with pytest.raises(RuntimeError, match="CuPy"):
            layer.to("gpu")
    else:
        layer.to("gpu")
        assert type(layer.weight.data).__module__.startswith("cupy")
        layer.to("cpu")
        assert isinstance(layer.weight.data, np.ndarray)


# -------------------------------------------------------------------- errors
def test_linear_wrong_features_names_both_numbers():
    with pytest.raises(ValueError, match=r"expected 120 input features.*got 84"):
        nn.Linear(120, 84)(np.zeros((2, 84), dtype=np.float32))
    with pytest.raises(ValueError, match="Flatten first"):
        nn.Linear(120, 84)(np.zeros((2, 120, 1, 1), dtype=np.float32))


def test_conv2d_input_checks():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"4-D \(N, C_in, H, W\), got 3-D"):
        conv(np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 3 input channels.*got 1"):
        conv(np.zeros((2, 1, 8, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="float64 differs from the weights' dtype float32"):
        conv(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="too small"):
        conv.output_shape((1, 3, 2, 2))


@pytest.mark.parametrize(
    "layer", [nn.Conv2d(1, 1, 1), nn.Linear(2, 2), nn.MaxPool2d(2), nn.AvgPool2d(2), nn.GlobalAvgPool2d(), nn.ReLU(),
              nn.Sigmoid(), nn.Tanh(), nn.Flatten(), nn.Dropout(), nn.BatchNorm2d(1), nn.Add(), nn.Concat()],
    ids=lambda layer: type(layer).__name__,
)
def test_backward_before_forward_is_a_clear_error(layer):
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((1, 1, 2, 2), dtype=np.float32))


def test_backward_uses_one_forward_only():
    relu = nn.ReLU()
    relu(np.ones(3))
    relu.backward(np.ones(3))
    with pytest.raises(nn.NoForwardError):
        relu.backward(np.ones(3))


def test_softmax_cross_entropy_values_checks_and_stability():
    loss_fn = nn.SoftmaxCrossEntropy()
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 1])
    expected = -(np.log(np.exp(3) / np.exp([1, 2, 3]).sum()) + np.log(1 / 3)) / 2
    loss = loss_fn(logits, labels)
    assert isinstance(loss, float) and loss == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(loss_fn.probabilities.sum(axis=1), 1.0)
    big = np.array([[1000.0, 0.0], [0.0, -1000.0]], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert loss_fn(big, np.array([0, 0])) == pytest.approx(0.0, abs=1e-6)
        assert loss_fn(big, np.array([1, 0])) == pytest.approx(500.0, rel=1e-6)
    assert loss_fn.backward().dtype == np.float32
    with pytest.raises(ValueError, match=r"labels must have shape \(N,\) = \(2,\)"):
        loss_fn(logits, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        loss_fn(logits, np.array([0, 3]))
    with pytest.raises(TypeError, match="integer"):
        loss_fn(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="2-D"):
        loss_fn(logits[0], labels[:1])
    with pytest.raises(RuntimeError, match="before computing a loss"):
        nn.SoftmaxCrossEntropy().backward()


# --------------------------------------------------------------- PyTorch
def test_layers_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 4, 9, 8))
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=(2, 1), groups=2, rng=0).to(dtype=np.float64)
    conv.bias.data[:] = rng.standard_normal(6)
    tconv = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=(2, 1), groups=2).double()
    with torch.no_grad():
        tconv.weight.copy_(torch.from_numpy(conv.weight.data))
        tconv.bias.copy_(torch.from_numpy(conv.bias.data))
    bn, tbn = nn.BatchNorm2d(4).to(dtype=np.float64), torch.nn.BatchNorm2d(4).double()
    pairs = [
        (conv, tconv),
        (nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)),
        (nn.AvgPool2d(3, stride=2, padding=1), torch.nn.AvgPool2d(3, stride=2, padding=1)),
        (nn.GlobalAvgPool2d(), torch.nn.AdaptiveAvgPool2d(1)),
        (bn, tbn),
    ]
    for ours, theirs in pairs:
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = theirs(tx)
        dy = rng.standard_normal(tuple(ty.shape))
        ty.backward(torch.from_numpy(dy))
        np.testing.assert_allclose(ours(x), ty.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=type(ours).__name__)
        np.testing.assert_allclose(ours.backward(dy), tx.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=type(ours).__name__)
    np.testing.assert_allclose(conv.weight.grad, tconv.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-10)
    logits, labels = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    tlogits = torch.from_numpy(logits.copy()).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(tlogits, torch.from_numpy(labels))
    tloss.backward()
    loss_fn = nn.SoftmaxCrossEntropy()
    assert loss_fn(logits, labels) == pytest.approx(tloss.item(), rel=1e-12)
    np.testing.assert_allclose(loss_fn.backward(), tlogits.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_layers_follow_the_input_array_module():
    x = np.ones((1, 2, 4, 4), dtype=np.float32)
    for layer in [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(2, 1, 3), nn.GlobalAvgPool2d()]:
        assert isinstance(to_numpy(layer(x)), np.ndarray) and isinstance(layer(x), np.ndarray)
    assert nn.array_module(x) is np


def test_relu_inplace_matches_and_overwrites(backend_name):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4, 4))
    dy = rng.standard_normal(x.shape)
    plain, inplace = mc.nn.ReLU(), mc.nn.ReLU(inplace=True)
    with mc.use_backend(backend_name if backend_name != "cupy" else "numpy"):
        y = plain(x.copy())
        x_in = x.copy()
        y_in = inplace(x_in)
        assert y_in is x_in  # the input array now holds the output
        np.testing.assert_array_equal(y_in, y)
        dx = plain.backward(dy.copy())
        dy_in = dy.copy()
        dx_in = inplace.backward(dy_in)
        assert dx_in is dy_in
        np.testing.assert_array_equal(dx_in, dx)
    with pytest.raises(TypeError, match="inplace must be a bool"):
        mc.nn.ReLU(inplace=1)


# ------------------------------------------------------------------ shape-only (lazy) weights
def test_a_shape_only_parameter_has_no_values_and_no_gradient_until_materialized():
    layer = mc.nn.Conv2d(3, 8, 3, init="shape_only", bias=False)
    p = layer.weight
    assert p.is_shape_only and p.grad is None and layer.is_lazy and "shape-only" in repr(p)
    assert p.data.nbytes == 8 * 3 * 3 * 3 * 4 and not any(p.data.strides)  # a view of one zero: no memory
    layer.zero_grad()  # nothing to zero, no error
    values = np.random.default_rng(0).standard_normal(p.shape).astype(np.float32)
    p.materialize(values)
    values[0, 0, 0, 0] = 99  # materialize keeps a copy
    assert not p.is_shape_only and not layer.is_lazy and p.data[0, 0, 0, 0] != 99
    assert p.grad.shape == p.shape and not p.grad.any() and p.data.flags.writeable
    with pytest.raises(ValueError, match=r"Parameter.materialize: 'weight' has shape \(8, 3, 3, 3\), got values of shape \(8, 3\)"):
        p.materialize(np.zeros((8, 3), np.float32))


def test_a_lazy_layer_refuses_to_run_train_or_save_by_name():
    layer = mc.nn.Linear(4, 2, init="shape_only")
    x = np.ones((1, 4), np.float32)
    with pytest.raises(RuntimeError, match=r"Linear was built lazy \(shape-only weights.*weight\).*materialize"):
        layer(x)
    with pytest.raises(RuntimeError, match="materialize"):
        layer.state_dict()
    with pytest.raises(ValueError, match=r"SGD: parameter 0 \('weight', shape \(2, 4\)\) is shape-only"):
        mc.optim.SGD(layer.parameters(), lr=0.1)
    layer.materialize(0)
    assert layer(x).shape == (1, 2)
    mc.optim.SGD(layer.parameters(), lr=0.1)


def test_load_state_dict_gives_a_lazy_model_its_weights():
    trained = Sequential(mc.nn.Conv2d(1, 2, 3, rng=1), mc.nn.ReLU(), mc.nn.Flatten(), mc.nn.Linear(18, 3, rng=2))
    lazy = Sequential(mc.nn.Conv2d(1, 2, 3, init="shape_only"), mc.nn.ReLU(), mc.nn.Flatten(),
                            mc.nn.Linear(18, 3, init="shape_only"))
    assert lazy.is_lazy
    lazy.load_state_dict(trained.state_dict())
    assert not lazy.is_lazy
    x = np.random.default_rng(3).standard_normal((2, 1, 5, 5)).astype(np.float32)
    assert np.array_equal(lazy(x), trained(x))


def test_to_keeps_a_shape_only_parameter_shape_only_in_the_new_dtype():
    layer = mc.nn.Conv2d(3, 8, 3, init="shape_only").to(dtype=np.float64)
    assert layer.weight.is_shape_only and layer.weight.data.dtype == np.float64
    layer.materialize(0)
    assert layer.weight.data.dtype == np.float64 and layer.bias.data.dtype == np.float64
