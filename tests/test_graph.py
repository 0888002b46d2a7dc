"""Sequential, the DAG Graph (Add, Concat, fan-out) and LeNet-5."""

import numpy as np
import pytest
from gradcheck import check_module_gradients
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import to_numpy

import minicnn as mc
from minicnn import nn
from minicnn.graph import Add, Concat, Graph, Sequential


def _xp(backend_name):
    return mc.get_backend(backend_name).xp


def _checks(backend_name):
    """Entries checked per tensor: all of them on the reference backend, a random sample on the others."""
    return None if backend_name == "numpy" else 12


def _on(backend_name, module):
    return module.to("cpu" if _xp(backend_name) is np else "gpu", dtype=np.float64)


# --------------------------------------------------------------- Sequential
def test_sequential_forward_and_backward_compose_the_layers(rng):
    layers = [nn.Conv2d(2, 3, 3, padding=1, rng=0), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(12, 4, rng=1)]
    net = Sequential(*layers)
    x = rng.standard_normal((3, 2, 4, 4)).astype(np.float32)
    y = net(x)
    h = x
    for layer in layers:
        h = layer.forward(h)
    np.testing.assert_array_equal(y, h)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    net.zero_grad()
    net(x)
    dx = net.backward(dy)
    grads = [p.grad.copy() for p in net.parameters()]
    net.zero_grad()
    net(x)
    d = dy
    for layer in reversed(layers):
        d = layer.backward(d)
    np.testing.assert_array_equal(dx, d)
    for got, param in zip(grads, net.parameters()):
        np.testing.assert_array_equal(got, param.grad)


@pytest.mark.parametrize("inplace", [False, True])
def test_sequential_runs_relu_after_max_pool_with_identical_results(backend_name, inplace, rng):
    # ReLU then MaxPool2d runs as MaxPool2d then ReLU (they commute); the outputs and every
    # gradient must equal those of the layers run one by one in the written order, bit for bit.
    def build():
        return _on(backend_name, Sequential(
            nn.Conv2d(2, 4, 3, rng=0), nn.ReLU(inplace=inplace), nn.MaxPool2d(2),
            nn.Conv2d(4, 5, 3, padding=1, rng=1), nn.ReLU(inplace=inplace), nn.MaxPool2d(3, stride=2, padding=1),
            nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(5, 3, rng=2),
        ))

    net, reference = build().fuse(), build()
    types = [type(layer).__name__ for layer in net.execution_order]
    assert types[:7] == ["Conv2d", "MaxPool2d", "ReLU", "Conv2d", "MaxPool2d", "ReLU", "ReLU"]
    assert types[7] == "AvgPool2d", "only max pooling commutes with ReLU"
    xp = _xp(backend_name)
    x = rng.standard_normal((3, 2, 14, 14))
    x[0] = -np.abs(x[0])  # an image whose maps are mostly negative: windows with no positive value
    x = xp.asarray(x)
    with mc.use_backend(backend_name):
        y = net(x)
        h = x
        for layer in reference:
            h = layer.forward(h)
        np.testing.assert_array_equal(to_numpy(y), to_numpy(h))
        dy = xp.asarray(rng.standard_normal(y.shape))
        dx = net.backward(dy.copy())
        d = dy.copy()
        for layer in reversed(list(reference)):
            d = layer.backward(d)
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(d))
    for got, want in zip(net.parameters(), reference.parameters()):
        np.testing.assert_array_equal(to_numpy(got.grad), to_numpy(want.grad))


def test_sequential_gradients(backend_name, rng):
    net = _on(backend_name, Sequential(
        nn.Conv2d(1, 3, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 2, rng=1), nn.Sigmoid(),
        nn.Flatten(), nn.Linear(4, 3, rng=2),
    ))
    x = _xp(backend_name).asarray(rng.standard_normal((2, 1, 7, 7)))
    with mc.use_backend(backend_name):
        check_module_gradients(net, x, max_checks=_checks(backend_name))


def test_sequential_names_indexing_and_duplicates():
    relu = nn.ReLU()
    net = Sequential({"conv": nn.Conv2d(1, 2, 3), "act": relu})
    assert len(net) == 2 and net["act"] is relu and net[1] is relu and list(net)[1] is relu
    assert [n for n, _ in net.named_parameters()] == ["conv.weight", "conv.bias"]
    assert isinstance(net[:1], Sequential) and net[:1]["conv"] is net["conv"]
    net.append(nn.Flatten())
    assert net[2].__class__ is nn.Flatten and net["2"] is net[2]
    with pytest.raises(ValueError, match="already in the container"):
        Sequential(relu, relu)
    with pytest.raises(ValueError, match="already taken"):
        Sequential({"forward": nn.ReLU()})
    with pytest.raises(TypeError, match="minicnn.nn.Module"):
        Sequential(np.tanh)


# -------------------------------------------------------------------- Graph
def _residual_graph():
    """conv -> relu -> conv, plus the input again (the input fans out to conv1 and to the sum)."""
    g = Graph()
    x = g.input()
    h = g.add(nn.Conv2d(2, 2, 3, padding=1, rng=0), x, name="conv1")
    h = g.add(nn.ReLU(), h, name="relu")
    h = g.add(nn.Conv2d(2, 2, 3, padding=1, rng=1), h, name="conv2")
    y = g.add(Add(), h, x, name="sum")
    g.output(y)
    return g


def _inception_graph():
    """Three branches of one input concatenated on channels, then pooled and classified; one branch is used twice."""
    g = Graph()
    x = g.input()
    a = g.add(nn.Conv2d(3, 2, 1, rng=0), x, name="b1x1")
    b = g.add(nn.Conv2d(3, 2, 3, padding=1, rng=1), x, name="b3x3")
    c = g.add(nn.MaxPool2d(3, stride=1, padding=1), x, name="bpool")
    t = g.add(nn.Tanh(), a, name="tanh")
    cat = g.add(Concat(), t, b, c, a, name="cat")  # a fans out to tanh and to the concatenation
    gap = g.add(nn.GlobalAvgPool2d(), cat, name="gap")
    flat = g.add(nn.Flatten(), gap, name="flat")
    g.output(g.add(nn.Linear(9, 4, rng=2), flat, name="fc"))
    return g


@pytest.mark.parametrize("make", [_residual_graph, _inception_graph], ids=["residual", "inception"])
def test_graph_gradients_with_add_concat_and_fan_out(make, backend_name, rng):
    g = _on(backend_name, make())
    channels = 2 if make is _residual_graph else 3
    x = _xp(backend_name).asarray(rng.standard_normal((2, channels, 5, 5)))
    with mc.use_backend(backend_name):
        check_module_gradients(g, x, max_checks=_checks(backend_name))


def test_graph_with_two_inputs_and_two_outputs_gradients(backend_name, rng):
    g = Graph()
    a, b = g.input("image"), g.input("extra")
    h = g.add(nn.Linear(3, 4, rng=0), a, name="fc_a")
    s = g.add(Add(), h, b, name="sum")
    out1 = g.add(nn.Tanh(), s, name="head1")
    out2 = g.add(nn.Linear(4, 2, rng=1), s, name="head2")
    g.output(out1, out2)
    g = _on(backend_name, g)
    xp = _xp(backend_name)
    xa, xb = xp.asarray(rng.standard_normal((3, 3))), xp.asarray(rng.standard_normal((3, 4)))
    assert len(g(xa, xb)) == 2
    with mc.use_backend(backend_name):
        check_module_gradients(g, xa, xb)


def test_graph_forward_equals_composition(rng):
    g = _residual_graph()
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    y = g(x)
    expected = g.conv2.forward(g.relu.forward(g.conv1.forward(x))) + x
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_fan_out_gradient_is_the_sum_of_both_paths(rng):
    # y = relu(x) + x: dy/dx = 1{x > 0} + 1.
    g = Graph()
    x = g.input()
    g.output(g.add(Add(), g.add(nn.ReLU(), x), x))
    xv = rng.standard_normal((4, 5))
    g(xv)
    np.testing.assert_array_equal(g.backward(np.ones_like(xv)), (xv > 0) + 1.0)


def test_graph_output_can_skip_unused_branches_and_gradients():
    g = Graph()
    x = g.input()
    main = g.add(nn.Linear(3, 2, rng=0), x, name="main")
    aux = g.add(nn.Linear(3, 2, rng=1), x, name="aux")
    g.output(main, aux)
    xv = np.ones((2, 3), dtype=np.float32)
    g(xv)
    g.zero_grad()
    g.backward(np.ones((2, 2), dtype=np.float32), None)  # the auxiliary head does not reach the loss
    assert g.main.weight.grad.any() and not g.aux.weight.grad.any()
    g.output(main)
    assert g(xv).shape == (2, 2)


def test_graph_errors():
    g = Graph()
    x = g.input()
    relu = nn.ReLU()
    with pytest.raises(RuntimeError, match="no output"):
        g(np.ones(3))
    g.add(relu, x)
    with pytest.raises(ValueError, match="already in the container"):
        g.add(relu, x)
    with pytest.raises(ValueError, match="another graph"):
        g.add(nn.ReLU(), Graph().input())
    with pytest.raises(ValueError, match="already used"):
        g.add(nn.ReLU(), x, name="input")
    with pytest.raises(ValueError, match="already taken"):
        g.add(nn.ReLU(), x, name="backward")
    with pytest.raises(TypeError, match="at least one input"):
        g.add(nn.ReLU())
    other = g.input("unused")
    g.output(g.add(nn.Tanh(), x))
    with pytest.raises(ValueError, match="'unused' does not reach any output"):
        g(np.ones(3), np.ones(3))
    assert other.module is None


def test_add_and_concat_shape_checks():
    with pytest.raises(ValueError, match=r"equal shapes.*\(1, 2\).*\(1, 3\)"):
        Add()(np.ones((1, 2)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="every axis except 1"):
        Concat()(np.ones((1, 2, 4, 4)), np.ones((1, 3, 5, 4)))
    y = Concat()(np.zeros((1, 2, 3, 3)), np.ones((1, 1, 3, 3)))
    assert y.shape == (1, 3, 3, 3) and y[0, 2].all() and not y[0, :2].any()


def test_graph_summary_and_shapes():
    g = _inception_graph()
    text = g.summary((3, 8, 8))
    assert "tanh, b3x3, bpool, b1x1" in text and "9x8x8" in text and text.splitlines()[-1].split() == ["total", "104", "3,876"]
    shapes_ = g.output_shapes((3, 8, 8))
    assert shapes_["cat"] == (9, 8, 8) and shapes_["fc"] == (4,)
    assert g.num_parameters() == sum(p.data.size for p in g.parameters()) == (3 * 2 + 2) + (3 * 9 * 2 + 2) + (9 * 4 + 4)
    assert g.output_shape((5, 3, 8, 8)) == (5, 4)
    assert g(np.zeros((5, 3, 8, 8), dtype=np.float32)).shape == (5, 4)
    assert [n for n, _ in g.named_parameters()][:2] == ["b1x1.weight", "b1x1.bias"]


def test_graph_state_dict_round_trip(rng):
    a, b = _residual_graph(), _residual_graph()
    for p in b.parameters():
        p.data[...] = 0
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize("make", [lambda: mc.models.lenet5(seed=2), _residual_graph], ids=["lenet5", "residual"])
def test_backward_without_input_gradient_gives_the_same_parameter_gradients(make, rng):
    net = make()
    shape = (3, 1, 32, 32) if isinstance(net, Sequential) else (3, 2, 5, 5)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(net(x).shape).astype(np.float32)
    net.zero_grad()
    net(x)
    assert net.backward(dy).shape == x.shape
    full = {name: p.grad.copy() for name, p in net.named_parameters()}
    net.zero_grad()
    net(x)
    assert net.backward(dy, need_dx=False) is None
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.grad, full[name], err_msg=name)


# ------------------------------------------------------------------ LeNet-5
def test_lenet5_summary_matches_the_slide_table():
    net = mc.models.lenet5()
    text = net.summary((1, 32, 32))
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:] if line and not line.startswith("-")}
    assert rows["C1"][1:4] == ["Conv2d", "6x28x28", "156"]
    assert rows["S2"][2] == "6x14x14"
    assert rows["C3"][1:4] == ["Conv2d", "16x10x10", "2,416"]
    assert rows["S4"][2] == "16x5x5"
    assert rows["C5"][1:4] == ["Conv2d", "120x1x1", "48,120"]
    assert rows["F6"][1:4] == ["Linear", "84", "10,164"]
    assert rows["output"][1:4] == ["Linear", "10", "850"]
    assert rows["total"][1] == "61,706"
    assert rows["C1"][4] == "117,600"  # 28*28 outputs x 6 filters x 25 taps
    conv_pool = [s for s in net.output_shapes((1, 32, 32))]
    for shape in [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1), (84,), (10,)]:
        assert shape in conv_pool
    assert net.num_parameters() == sum(p.data.size for p in net.parameters()) == 61_706
    assert net.output_shape((7, 1, 32, 32)) == (7, 10)


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("tanh", "avg"), ("sigmoid", "max")])
def test_lenet5_options(activation, pool):
    net = mc.models.lenet5(activation, pool, num_classes=5, seed=3)
    types = [type(layer).__name__ for layer in net]
    assert types.count({"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}[activation]) == 4
    assert types.count("MaxPool2d" if pool == "max" else "AvgPool2d") == 2
    y = net(np.zeros((2, 1, 32, 32), dtype=np.float32))
    assert y.shape == (2, 5) and y.dtype == np.float32
    same = mc.models.lenet5(activation, pool, num_classes=5, seed=3).state_dict()
    assert all(np.array_equal(v, same[k]) for k, v in net.state_dict().items())
    other = mc.models.lenet5(activation, pool, num_classes=5, seed=4).state_dict()
    assert not np.array_equal(other["C1.weight"], same["C1.weight"])


def test_lenet5_rejects_unknown_options():
    with pytest.raises(ValueError, match="activation must be one of"):
        mc.models.lenet5("gelu")
    with pytest.raises(ValueError, match="pool must be one of"):
        mc.models.lenet5(pool="min")
    with pytest.raises(ValueError, match="num_classes"):
        mc.models.lenet5(num_classes=1)


def test_lenet5_gradients_sampled(backend_name, rng):
    net = _on(backend_name, mc.models.lenet5("tanh", "avg", num_classes=3, seed=1))
    x = _xp(backend_name).asarray(rng.standard_normal((2, 1, 32, 32)))
    with mc.use_backend(backend_name):
        check_module_gradients(net, x, max_checks=6)


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("tanh", "avg"), ("sigmoid", "max")])
def test_lenet5_matches_torch(activation, pool, rng):
    torch = pytest.importorskip("torch")
    net = mc.models.lenet5(activation, pool, seed=0).to(dtype=np.float64)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[activation]
    tpool = torch.nn.MaxPool2d if pool == "max" else torch.nn.AvgPool2d
    tnet = torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5), act(), tpool(2), torch.nn.Conv2d(6, 16, 5), act(), tpool(2),
        torch.nn.Conv2d(16, 120, 5), act(), torch.nn.Flatten(), torch.nn.Linear(120, 84), act(), torch.nn.Linear(84, 10),
    ).double()
    ours = [m for m in net if m.num_parameters()]
    theirs = [m for m in tnet if sum(p.numel() for p in m.parameters())]
    with torch.no_grad():
        for a, b in zip(ours, theirs):
            b.weight.copy_(torch.from_numpy(a.weight.data))
            b.bias.copy_(torch.from_numpy(a.bias.data))
    x = rng.standard_normal((4, 1, 32, 32))
    labels = np.array([3, 1, 4, 1])
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(tnet(tx), torch.from_numpy(labels))
    tloss.backward()
    loss_fn = nn.SoftmaxCrossEntropy()
    loss = loss_fn(net(x), labels)
    dx = net.backward(loss_fn.backward())
    assert loss == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-8, atol=1e-13)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.weight.grad, b.weight.grad.numpy(), rtol=1e-8, atol=1e-13)
        np.testing.assert_allclose(a.bias.grad, b.bias.grad.numpy(), rtol=1e-8, atol=1e-13)


@settings(max_examples=20)
@given(
    layers=st.lists(st.sampled_from(["relu", "max", "avg", "conv", "tanh"]), min_size=2, max_size=7),
    inplace=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_fuse_changes_nothing(layers, inplace, seed):
    # Any stack of convolutions, activations and poolings: the fused network gives the unfused one's
    # output, input gradient and parameter gradients bit for bit.
    def build():
        rng = np.random.default_rng(seed)
        made = {"relu": lambda: nn.ReLU(inplace=inplace), "tanh": nn.Tanh, "max": lambda: nn.MaxPool2d(2, stride=1),
                "avg": lambda: nn.AvgPool2d(2, stride=1), "conv": lambda: nn.Conv2d(2, 2, 2, rng=rng, dtype=np.float64)}
        return Sequential(nn.Conv2d(1, 2, 1, rng=rng, dtype=np.float64), *(made[name]() for name in layers))

    x = np.random.default_rng(seed).standard_normal((2, 1, 12, 12))
    for backend_name in [b for b in mc.available_backends() if b != "cupy"]:
        plain, fused = build(), build().fuse()
        assert fused.fused and not plain.fused
        assert [type(m) for m in plain.execution_order] == [type(m) for m in plain]
        with mc.use_backend(backend_name):
            y, y_fused = plain(x.copy()), fused(x.copy())
            np.testing.assert_array_equal(y_fused, y)
            dy = np.random.default_rng(seed + 1).standard_normal(y.shape)
            np.testing.assert_array_equal(fused.backward(dy.copy()), plain.backward(dy.copy()))
        for got, want in zip(fused.parameters(), plain.parameters()):
            np.testing.assert_array_equal(got.grad, want.grad)
