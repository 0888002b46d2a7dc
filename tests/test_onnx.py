"""Models in and out as ONNX: minicnn -> ONNX -> onnxruntime, and ONNX -> minicnn, with the same logits.

Needs the ``onnx`` extra (``pip install -e ".[test,onnx]"``, the README's test
command); the module is skipped only where ``onnx`` or ``onnxruntime`` is
missing.

Tolerances: ``rounding.tolerance``, 4x the float32 rounding noise of the
network measured on the spot (at least 1e-5).
"""

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import minicnn as mc  # noqa: E402
from minicnn import nn  # noqa: E402
from minicnn.cli import main  # noqa: E402
from minicnn.graph import Graph, Sequential  # noqa: E402
from minicnn.io import GRAPH_MODEL, load_model, write_model  # noqa: E402
from minicnn.nn import variants  # noqa: E402
from minicnn.onnx_io import IR_VERSION, OPSET, require  # noqa: E402
from rounding import tolerance  # noqa: E402

helper, TP = onnx.helper, onnx.TensorProto


def run_ort(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def calibrated(model, rng, calibration):
    """Random weights, random BatchNorm scales and shifts, running statistics of a calibration batch (logits O(1))."""
    model.materialize(int(rng.integers(1 << 30)))
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.shape)
        m.bias.data[...] = rng.normal(0.0, 0.1, m.bias.shape)
        m.momentum = 1.0
    model.train()
    model(calibration)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


# --------------------------------------------------------------- the format
def test_export_pins_opset_and_ir_version_and_onnxruntime_runs_it(tmp_path):
    net = mc.models.lenet5().eval()
    model = mc.onnx.export(net, tmp_path / "lenet.onnx")
    assert (OPSET, IR_VERSION) == (17, 8)
    assert model.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    stored = onnx.load(str(tmp_path / "lenet.onnx"))
    onnx.checker.check_model(stored, full_check=True)
    assert stored.ir_version == IR_VERSION
    batch = [d.dim_param or d.dim_value for d in stored.graph.input[0].type.tensor_type.shape.dim]
    assert batch == ["N", 1, 32, 32]
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    assert run_ort(tmp_path / "lenet.onnx", x).shape == (3, 10)  # onnxruntime accepts opset 17 / IR 8


def test_require_names_the_extra_when_a_package_is_missing():
    with pytest.raises(ImportError, match=r"pip install minicnn\[onnx\]"):
        require("onnx_package_that_does_not_exist")


def test_the_commands_without_the_onnx_package_say_how_to_install_it(tmp_path, capsys, monkeypatch):
    write_model(tmp_path / "m.npz", mc.models.lenet5(), model="lenet5", model_kwargs={}, dataset="mnist-5k")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "pip install minicnn[onnx]" in err and "Traceback" not in err


# ------------------------------------------------------------ trained LeNet
@pytest.fixture(scope="module")
def trained_lenet(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "run"
    assert main(["train", "--size", "1024", "--test-size", "64", "--epochs", "2", "--quiet", "--no-plots",
                 "--out", str(out)]) == 0
    return out


def digits(count=64):
    from minicnn.data import load_dataset, to_network_input

    images, _ = load_dataset("mnist-5k", "test", size=count, seed=0)
    return to_network_input(images)


def test_trained_lenet_gives_the_same_logits_in_onnxruntime(tmp_path, trained_lenet, capsys):
    assert main(["export", str(trained_lenet), str(tmp_path / "lenet.onnx")]) == 0
    assert "opset 17, IR version 8" in capsys.readouterr().out
    net, x = load_model(trained_lenet), digits()
    y, y_ort = net(x), run_ort(tmp_path / "lenet.onnx", x)
    assert np.abs(y - y_ort).max() <= tolerance(net, x)
    assert (y.argmax(1) == y_ort.argmax(1)).all()


def test_import_of_the_exported_lenet_writes_a_model_npz_eval_and_export_read(tmp_path, trained_lenet, capsys):
    assert main(["export", str(trained_lenet), str(tmp_path / "lenet.onnx")]) == 0
    assert main(["import", str(tmp_path / "lenet.onnx"), str(tmp_path / "imported.npz")]) == 0
    assert "61,706 parameters" in capsys.readouterr().out
    original, imported = load_model(trained_lenet), load_model(tmp_path / "imported.npz")
    assert isinstance(imported, Graph) and imported.input_shape == (1, 32, 32)
    x = digits()
    np.testing.assert_array_equal(imported(x), original(x))  # the same layers, in the same order, on the same kernels
    assert main(["eval", str(trained_lenet), "--size", "64"]) == 0
    accuracy_original = capsys.readouterr().out.split("accuracy")[1]
    assert main(["eval", str(tmp_path / "imported.npz"), "--size", "64"]) == 0
    assert capsys.readouterr().out.split("accuracy")[1] == accuracy_original
    assert main(["export", str(tmp_path / "imported.npz"), str(tmp_path / "again.onnx")]) == 0
    np.testing.assert_array_equal(run_ort(tmp_path / "again.onnx", x), run_ort(tmp_path / "lenet.onnx", x))


# ------------------------------------------------------------ the zoo, random weights
ZOO = {
    "resnet18": (lambda: mc.models.resnet18(num_classes=10), 64),
    "mobilenet_v2": (lambda: mc.models.mobilenet_v2(num_classes=10), 64),
    "googlenet": (lambda: mc.models.googlenet(num_classes=10), 224),  # LRN, 5x5 branches; 7x7 final pool: 224 only
    # ceil_mode max pools (on odd maps: 96 -> 48 -> 24 -> 12 -> 6 -> 3), a global average pool
    "googlenet_torchvision": (lambda: mc.models.googlenet(num_classes=10, variant="torchvision"), 96),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_round_trips_through_onnxruntime_and_back(tmp_path, name):
    build, size = ZOO[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    net = calibrated(build(), rng, rng.standard_normal((4, 3, size, size)).astype(np.float32))
    x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    path = tmp_path / f"{name}.onnx"
    mc.onnx.export(net, path, (3, size, size))
    y, y_ort = net(x), run_ort(path, x)
    allowed = tolerance(net, x)
    assert np.abs(y - y_ort).max() <= allowed, f"{name}: |minicnn - onnxruntime| > {allowed:.2e}"
    imported = mc.onnx.load(path)
    assert imported.num_parameters() == net.num_parameters()
    np.testing.assert_array_equal(imported(x), y)  # import -> minicnn: the same layers as the original
    assert np.abs(imported(x) - y_ort).max() <= allowed


MORE_OF_THE_ZOO = {
    "densenet121": lambda: mc.models.densenet121(10),
    "shufflenet": lambda: mc.models.shufflenet(3, num_classes=10),  # grouped convolutions, channel shuffle
    "convnext_tiny": lambda: mc.models.convnext_tiny(10),  # LayerNorm2d, GELU, layer scale
    "efficientnet_b0": lambda: mc.models.efficientnet_b0(10),  # SiLU, squeeze-and-excitation
}


@pytest.mark.parametrize("name", sorted(MORE_OF_THE_ZOO))
def test_more_of_the_zoo_exports_to_onnxruntime_and_imports_back(tmp_path, name):
    """EfficientNet-B0 exports only: the Mul of two tensors that gates its channels has no minicnn layer."""
    rng = np.random.default_rng(3)
    net = calibrated(MORE_OF_THE_ZOO[name](), rng, rng.standard_normal((2, 3, 64, 64)).astype(np.float32))
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    mc.onnx.export(net, tmp_path / f"{name}.onnx", (3, 64, 64))
    assert np.abs(net(x) - run_ort(tmp_path / f"{name}.onnx", x)).max() <= tolerance(net, x)
    if name == "efficientnet_b0":
        with pytest.raises(ValueError, match=r"node 'stage2_1.se' \(Mul\): Mul is imported only as x \* Sigmoid"):
            mc.onnx.load(tmp_path / f"{name}.onnx")
    else:
        np.testing.assert_array_equal(mc.onnx.load(tmp_path / f"{name}.onnx")(x), net(x))


# ------------------------------------------------------------ every layer the exporter knows
def every_layer_net(rng):
    """A graph with each exported layer once (groups, dilation, padding, a 3-term sum), float32, random weights."""
    g = Graph()
    x = g.input()
    h = g.add(nn.Conv2d(3, 8, 3, padding=1, rng=rng), x, name="conv")
    h = g.add(nn.BatchNorm2d(8), h, name="bn")
    h = g.add(nn.ReLU(), h, name="relu")
    a = g.add(nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, rng=rng), h, name="grouped_dilated")
    b = g.add(variants.DepthwiseConv2d(8, 3, padding=1, rng=rng), h, name="depthwise")
    c = g.add(variants.SeparableConv2d(8, 8, 3, padding=1, rng=rng), h, name="separable")
    h = g.add(nn.Add(), a, b, c, name="sum3")
    h = g.add(variants.ReLU6(), h, name="relu6")
    h = g.add(variants.LocalResponseNorm(3, alpha=0.1, beta=0.75, k=2.0), h, name="lrn")
    p = g.add(nn.MaxPool2d(3, stride=2, padding=1), h, name="maxpool")
    q = g.add(nn.AvgPool2d(3, stride=2, padding=1), h, name="avgpool")
    h = g.add(nn.Concat(), p, q, name="concat")
    h = g.add(nn.Sigmoid(), h, name="sigmoid")
    h = g.add(variants.ConvTranspose2d(16, 4, 3, stride=2, padding=1, output_padding=1, rng=rng), h, name="up")
    t = g.add(nn.Tanh(), h, name="tanh")
    s = g.add(variants.SiLU(), h, name="silu")
    h = g.add(nn.Add(), t, s, name="join")
    h = g.add(variants.HardSwish(), h, name="hardswish")
    h = g.add(nn.Dropout(0.3), h, name="dropout")
    h = g.add(nn.GlobalAvgPool2d(), h, name="gap")
    h = g.add(nn.Flatten(), h, name="flatten")
    g.output(g.add(nn.Linear(4, 5, rng=rng), h, name="fc"))
    for name in ("bn",):
        layer = getattr(g, name)
        layer.running_mean = rng.normal(0, 0.2, 8).astype(np.float32)
        layer.running_var = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    return g.eval()


def test_every_layer_exports_runs_in_onnxruntime_and_imports_back(tmp_path):
    rng = np.random.default_rng(7)
    net = every_layer_net(rng)
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    model = mc.onnx.export(net, tmp_path / "every.onnx", (3, 12, 12))
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "Gemm", "Relu", "Sigmoid", "Tanh",
            "Clip", "BatchNormalization", "LRN", "Concat", "Add", "Sum", "Flatten", "Dropout", "HardSwish",
            "Mul"} <= ops
    y, y_ort = net(x), run_ort(tmp_path / "every.onnx", x)
    allowed = tolerance(net, x)
    assert np.abs(y - y_ort).max() <= allowed
    imported = mc.onnx.load(tmp_path / "every.onnx")
    np.testing.assert_allclose(imported(x), y_ort, rtol=0, atol=allowed)
    kinds = {type(node.module).__name__ for node in imported.nodes if node.module is not None}
    assert {"ConvTranspose2d", "LocalResponseNorm", "ReLU6", "SiLU", "HardSwish", "Dropout", "Concat", "Add"} <= kinds


def options_net(rng):
    """The options beyond the decks: four-sided and "same" padding, F.pad modes, ceil_mode, dilated and
    pad-excluding pools, LeakyReLU, HardSigmoid, Softmax/LogSoftmax(dim), Flatten(start_dim, end_dim)."""
    g = Graph()
    x = g.input()
    h = g.add(nn.Conv2d(3, 6, 4, padding="same", rng=rng), x, name="same_even")  # one more pixel after than before
    h = g.add(variants.LeakyReLU(0.1), h, name="leaky")
    h = g.add(nn.Conv2d(6, 6, 3, padding=(1, 0, 2, 1), rng=rng), h, name="four_sided")
    h = g.add(variants.ReflectionPad2d((1, 2, 0, 1)), h, name="reflect")
    h = g.add(variants.ReplicationPad2d(1), h, name="replicate")
    h = g.add(variants.ConstantPad2d((0, -1, 1, 0), 0.25), h, name="constant_crop")
    h = g.add(nn.MaxPool2d(3, stride=2, ceil_mode=True), h, name="ceil_max")
    h = g.add(variants.HardSigmoid(), h, name="hardsigmoid")
    a = g.add(nn.MaxPool2d(2, stride=1, dilation=2), h, name="dilated_max")
    b = g.add(nn.AvgPool2d(4, stride=1, padding=(1, 0, 0, 1), count_include_pad=False), h, name="avg_without_pad")
    h = g.add(nn.Concat(), a, b, name="concat")
    h = g.add(nn.AvgPool2d(2, stride=2, ceil_mode=True), h, name="ceil_avg")
    h = g.add(variants.Softmax(1), h, name="softmax_channels")
    h = g.add(nn.Flatten(2), h, name="flatten_maps")  # (N, C, H*W)
    h = g.add(variants.LogSoftmax(-1), h, name="log_softmax_pixels")
    g.output(g.add(nn.Flatten(), h, name="flatten"))
    return g.eval()


def test_the_options_beyond_the_decks_export_and_import(tmp_path):
    rng = np.random.default_rng(5)
    net = options_net(rng)
    x = rng.standard_normal((2, 3, 11, 11)).astype(np.float32)
    model = mc.onnx.export(net, tmp_path / "options.onnx", (3, 11, 11))
    assert {"Pad", "LeakyRelu", "HardSigmoid", "Softmax", "LogSoftmax", "Reshape"} <= {n.op_type for n in model.graph.node}
    y, y_ort = net(x), run_ort(tmp_path / "options.onnx", x)
    allowed = tolerance(net, x)
    assert np.abs(y - y_ort).max() <= allowed
    imported = mc.onnx.load(tmp_path / "options.onnx")
    np.testing.assert_array_equal(imported(x), y)
    pools = {node.name: node.module for node in imported.nodes if isinstance(node.module, (nn.MaxPool2d, nn.AvgPool2d))}
    assert pools["ceil_max"].ceil_mode and pools["dilated_max"].dilation == (2, 2)
    assert not pools["avg_without_pad"].count_include_pad and pools["avg_without_pad"].padding == (1, 0, 0, 1)


@pytest.mark.parametrize("layer, shape", [
    (variants.GELU(), (4, 6, 6)),
    (variants.ChannelShuffle(2), (4, 6, 6)),
    (variants.SqueezeExcitation(4, 2, rng=0), (4, 6, 6)),
])
def test_layers_exported_as_several_operators_match_onnxruntime(tmp_path, layer, shape):
    net = Sequential(nn.Conv2d(shape[0], shape[0], 3, padding=1, rng=1), layer).eval()
    x = np.random.default_rng(3).standard_normal((2, *shape)).astype(np.float32)
    mc.onnx.export(net, tmp_path / "m.onnx", shape)
    np.testing.assert_allclose(run_ort(tmp_path / "m.onnx", x), net(x), rtol=0, atol=1e-5 * max(1, np.abs(net(x)).max()))
    if not isinstance(layer, variants.SqueezeExcitation):  # its gate, a Mul of two tensors, has no minicnn layer
        imported = mc.onnx.load(tmp_path / "m.onnx")
        assert type(imported.nodes[-1].module) is type(layer)
        np.testing.assert_array_equal(imported(x), net(x))


@pytest.mark.parametrize("layer, shape, fragment", [
    (variants.Conv1d(3, 4, 3), (3, 8), "'1' is a Conv1d, which has no ONNX equivalent"),
    (variants.Conv3d(3, 4, 3), (3, 6, 8, 8), "'1' is a Conv3d, which has no ONNX equivalent"),
    (variants.LocalResponseNorm(4), (3, 8, 8), "even size 4"),
    (variants.Pad((1, 1, 1, 1), "circular"), (3, 8, 8), "mode 'circular', which opset 17's Pad does not have"),
    (nn.AvgPool2d(2, divisor_override=3), (3, 8, 8), "divisor_override=3, which ONNX's AveragePool cannot express"),
    (nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True), (3, 7, 7),
     "gives [4, 4] windows on a [7, 7] map, ONNX's ceil_mode [5, 5]"),
])
def test_a_layer_onnx_cannot_express_is_a_value_error_naming_it(tmp_path, layer, shape, fragment):
    net = Sequential(nn.Identity(), layer)
    with pytest.raises(ValueError) as error:
        mc.onnx.export(net, tmp_path / "m.onnx", shape)
    assert fragment in str(error.value) and "'1'" in str(error.value)
    assert not (tmp_path / "m.onnx").exists()


def test_export_refuses_shape_only_and_float64_weights(tmp_path):
    with pytest.raises(ValueError, match="shape-only weights; call net.materialize"):
        mc.onnx.export(mc.models.resnet18(), tmp_path / "r.onnx", (3, 64, 64))
    with pytest.raises(ValueError, match="float64 weights"):
        mc.onnx.export(mc.models.lenet5(dtype=np.float64), tmp_path / "l.onnx")
    with pytest.raises(ValueError, match="input_shape"):
        mc.onnx.export(Sequential(nn.ReLU()), tmp_path / "s.onnx")
    with pytest.raises(ValueError, match=r"Conv2d: expected 1 input channels \(in_channels\), got 3"):
        mc.onnx.export(mc.models.lenet5(), tmp_path / "l.onnx", (3, 32, 32))
    two = Graph()
    two.output(two.add(nn.Add(), two.input(), two.input()))
    with pytest.raises(ValueError, match="the graph has 2 inputs"):
        mc.onnx.export(two, tmp_path / "two.onnx", (3, 4, 4))
    with pytest.raises(TypeError, match="net must be a minicnn.nn.Module"):
        mc.onnx.export(lambda x: x, tmp_path / "f.onnx", (3, 4, 4))


# ------------------------------------------------------------ graphs not written by minicnn
def tensor(name, array):
    return onnx.numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def make_model(nodes, initializers, input_shape=("N", 3, 8, 8), output_shape=("N", "C", "H", "W"), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info("y", TP.FLOAT, list(output_shape))], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)


def vgg_style_model(rng):
    """A VGG-like graph as other exporters write it: auto_pad SAME, Constant clip bounds, a reshape, Gemm options, MatMul + Add."""
    w = lambda *shape: rng.standard_normal(shape).astype(np.float32) * 0.3  # noqa: E731
    inits = [tensor("w1", w(6, 3, 3, 3)), tensor("b1", w(6)), tensor("w2", w(6, 6, 3, 3)),
             tensor("fc1", w(24, 6 * 4 * 4)), tensor("fc1_b", w(1, 24)), tensor("fc2", w(24, 10)), tensor("fc2_b", w(10)),
             onnx.numpy_helper.from_array(np.array([0, -1], np.int64), "flat")]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="block1/conv", auto_pad="SAME_UPPER"),
        helper.make_node("Constant", [], ["lo"], value=tensor("lo", 0.0)),
        helper.make_node("Constant", [], ["hi"], value=tensor("hi", 6.0)),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"], name="block1/relu6"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="block2.conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Sum", ["r2", "r1", "c1"], ["s"], name="sum"),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Reshape", ["p", "flat"], ["f"]),
        helper.make_node("Gemm", ["f", "fc1", "fc1_b"], ["h"], transB=1, alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("MatMul", ["hr", "fc2"], ["m"]),
        helper.make_node("Add", ["m", "fc2_b"], ["y"]),
    ]
    return make_model(nodes, inits, output_shape=("N", 10))


def test_a_graph_written_by_another_exporter_imports_with_onnxruntimes_logits(tmp_path):
    rng = np.random.default_rng(11)
    onnx.save(vgg_style_model(rng), str(tmp_path / "vgg.onnx"))
    x = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    net = mc.onnx.load(tmp_path / "vgg.onnx")
    kinds = [type(node.module).__name__ for node in net.nodes if node.module is not None]
    assert kinds == ["Conv2d", "ReLU6", "Conv2d", "ReLU", "Add", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    y_ort = run_ort(tmp_path / "vgg.onnx", x)
    np.testing.assert_allclose(net(x), y_ort, rtol=0, atol=1e-5 * max(1, np.abs(y_ort).max()))


def test_symbolic_input_sizes_need_input_shape(tmp_path):
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])]
    path = tmp_path / "sym.onnx"
    onnx.save(make_model(nodes, [tensor("w", rng.standard_normal((2, 3, 3, 3)))], ("N", 3, "H", "W")), str(path))
    with pytest.raises(ValueError, match=r"has shape \[None, 3, None, None\]; give input_shape"):
        mc.onnx.load(path)
    net = mc.onnx.load(path, input_shape=(3, 5, 7))
    x = rng.standard_normal((1, 3, 5, 7)).astype(np.float32)
    np.testing.assert_allclose(net(x), run_ort(path, x), rtol=0, atol=1e-5)


BAD_GRAPHS = {
    "unknown operator": ([helper.make_node("Softsign", ["x"], ["y"], name="soft")], [],
                         "node 'soft' (Softsign): operator Softsign is not supported"),
    "an attribute minicnn lacks": ([helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", output_shape=[9, 9])],
                                   [tensor("w", np.ones((3, 2, 3, 3)))],
                                   "node 'up' (ConvTranspose): attribute output_shape=[9, 9] is not supported"),
    "an attribute ONNX lacks": ([helper.make_node("Relu", ["x"], ["y"], name="r", alpha=0.1)], [],
                                "not a valid ONNX model: Unrecognized attribute: alpha for operator Relu"),
    "asymmetric cropping of a transposed convolution": (
        [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", pads=[0, 0, 1, 1])],
        [tensor("w", np.ones((3, 2, 3, 3)))], "node 'up' (ConvTranspose): attribute pads=[0, 0, 1, 1]"),
    "a ceil_mode window that starts in the padding": (
        [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                          ceil_mode=1)], [], "node 'p' (MaxPool): attribute ceil_mode=1 is not supported",
        "ONNX gives [5, 5] windows, minicnn [4, 4]", ("N", 3, 7, 7)),
    "a softmax over several axes (before opset 13)": (
        [helper.make_node("Softmax", ["x"], ["y"], name="s", axis=1)], [], "node 's' (Softmax): attribute axis=1",
        11),
    "a reshape that is no flatten": (
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="r")],
        [onnx.numpy_helper.from_array(np.array([0, 8, 24], np.int64), "shape")],
        "node 'r' (Reshape): target shape [0, 8, 24] of an input [1, 3, 8, 8]"),
    "conv weight of other channels": ([helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                                      [tensor("w", np.ones((2, 4, 3, 3)))],
                                      "W has 4 input channels per group x group 1 = 4, but the input has 3"),
    "conv bias of another length": ([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="c")],
                                    [tensor("w", np.ones((2, 3, 3, 3))), tensor("b", np.ones(3))],
                                    "bias B has shape (3,), expected (2,)"),
    "batch norm statistics of another length": (
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")],
        [tensor("s", np.ones(3)), tensor("b", np.ones(3)), tensor("m", np.ones(4)), tensor("v", np.ones(3))],
        "node 'bn' (BatchNormalization): running_mean has shape (4,), expected (3,)"),
    "a clip that is no ReLU": ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")],
                               [tensor("lo", -1.0), tensor("hi", 1.0)], "Clip(-1.0, 1.0) has no minicnn layer"),
    "a dense layer of other input features": (
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "b"], ["y"], name="fc", transB=1)],
        [tensor("b", np.ones((10, 100)))], "node 'fc' (Gemm): the weight takes 100 input features, but the input has 192",
        ("N", 10)),
    "an addition of a constant": ([helper.make_node("Add", ["x", "c"], ["y"], name="plus")], [tensor("c", np.ones(8))],
                                  "node 'plus' (Add): input 1 ('c') is a constant"),
    "a concatenation along the batch": ([helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0)], [],
                                        "node 'cat' (Concat): attribute axis=0 is not supported"),
    "an even local response window": ([helper.make_node("LRN", ["x"], ["y"], name="lrn", size=4)], [],
                                      "node 'lrn' (LRN): attribute size=4 is not supported"),
    "a negative variance": ([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")],
                            [tensor("s", np.ones(3)), tensor("b", np.ones(3)), tensor("m", np.ones(3)),
                             tensor("v", -np.ones(3))], "node 'bn' (BatchNormalization): running_var + epsilon must be > 0"),
    "a kernel larger than the input": ([helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                                       [tensor("w", np.ones((2, 3, 11, 11)))], "node 'c' (Conv):", "is too small for kernel (11, 11)"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRAPHS))
def test_what_minicnn_cannot_compute_is_a_value_error_naming_node_op_and_attribute(tmp_path, case, capsys):
    nodes, inits, *fragments = BAD_GRAPHS[case]
    options = {"output_shape" if len(f) == 2 else "input_shape": f for f in fragments if isinstance(f, tuple)}
    options.update({"opset": f for f in fragments if isinstance(f, int)})
    path = tmp_path / "bad.onnx"
    onnx.save(make_model(nodes, inits, **options), str(path))
    fragments = [f for f in fragments if isinstance(f, str)]
    with pytest.raises(ValueError) as error:
        mc.onnx.load(path)
    for fragment in fragments:
        assert fragment in str(error.value)
    assert main(["import", str(path), str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "onnx import: " in err
    assert not (tmp_path / "bad.npz").exists()


def test_a_file_that_is_not_onnx_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "junk.onnx").write_bytes(b"\x00\xffnot a protobuf" * 10)
    assert main(["import", str(tmp_path / "junk.onnx"), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "is not a readable ONNX model" in err or "holds no ONNX graph" in err
    assert main(["import", str(tmp_path / "missing.onnx"), str(tmp_path / "out.npz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_damaged_graph_in_a_model_file_is_a_value_error(tmp_path):
    spec, weights = mc.onnx.load_spec(_lenet_onnx(tmp_path))
    net = mc.graph_spec.build_graph(spec)
    net.load_state_dict(weights)
    spec["nodes"][0]["layer"] = "os.system"
    write_model(tmp_path / "bad.npz", net, model=GRAPH_MODEL, model_kwargs={}, dataset="mnist-5k", extra={"graph": spec})
    with pytest.raises(ValueError, match="damaged minicnn model file: graph description: node 'C1': unknown layer"):
        load_model(tmp_path / "bad.npz")
    spec["nodes"][0]["layer"] = "Conv2d"
    spec["nodes"][0]["args"]["in_channels"] = 3
    write_model(tmp_path / "bad.npz", net, model=GRAPH_MODEL, model_kwargs={}, dataset="mnist-5k", extra={"graph": spec})
    with pytest.raises(ValueError, match="damaged minicnn model file: graph description: its layers do not fit"):
        load_model(tmp_path / "bad.npz")


def _lenet_onnx(tmp_path):
    path = tmp_path / "lenet.onnx"
    mc.onnx.export(mc.models.lenet5().eval(), path)
    return path


# ------------------------------------------------------------ files written by PyTorch's exporter
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "googlenet", "densenet121"])
def test_onnx_files_written_by_pytorch_import_with_onnxruntimes_logits(tmp_path, name):
    """torch.onnx.export (TorchScript exporter, opset 17) of the torchvision-named models of test_torch_weights.py.

    Its graphs differ from minicnn's own (BatchNorm folded into the convolutions, Clip bounds as Constant
    nodes, ceil_mode pools, names like "/layer1/layer1.0/conv1/Conv"); the imported graph must give
    onnxruntime's logits, and PyTorch's.
    """
    torch = pytest.importorskip("torch")
    import test_torch_weights as tw

    make_torch, _, size = tw.MODELS[name]
    model = tw.randomised(make_torch(), sum(map(ord, name)), size)
    x = np.random.default_rng(2).standard_normal((2, 3, size, size)).astype(np.float32)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated; the new one needs onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}})
    net = mc.onnx.load(path)
    y, y_ort = net(x), run_ort(path, x)
    with torch.no_grad():
        y_torch = model(torch.from_numpy(x)).numpy()
    allowed = tolerance(net, x)
    assert np.abs(y - y_ort).max() <= allowed, f"{name}: |minicnn - onnxruntime| > {allowed:.2e}"
    assert np.abs(y - y_torch).max() <= allowed, f"{name}: |minicnn - torch| > {allowed:.2e}"


def test_small_layers_as_pytorch_exports_them_import(tmp_path):
    """GELU (Div, Erf, Add, Mul, Mul), LeakyReLU, Hardswish, Hardsigmoid, ReLU6 (Clip), channel shuffle (Reshape,
    Transpose, Reshape), ceil_mode and count_include_pad=False pools, torch.flatten, Softmax, and F.pad, whose pads
    PyTorch computes with ConstantOfShape, Concat, Slice, Transpose and Cast (folded on import): as PyTorch writes them."""
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class Small(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = tnn.Conv2d(3, 8, 3, padding=1), tnn.Conv2d(8, 8, 3, groups=2)
            self.act = tnn.Sequential(tnn.GELU(), tnn.LeakyReLU(0.2), tnn.Hardswish(), tnn.ReLU6())
            self.pool = tnn.MaxPool2d(3, 2, ceil_mode=True)
            self.avg = tnn.AvgPool2d(3, 1, padding=1, count_include_pad=False)
            self.fc = tnn.Linear(8 * 4 * 4, 5)

        def forward(self, x):
            h = self.act(self.conv1(x))
            h = tnn.functional.pad(h, (1, 0, 0, 1), mode="reflect")
            h = h.reshape(-1, 2, 4, 11, 11).transpose(1, 2).reshape(-1, 8, 11, 11)  # channel shuffle
            h = self.avg(self.pool(tnn.functional.hardsigmoid(self.conv2(h))))
            return torch.softmax(self.fc(torch.flatten(h, 1)), dim=1)

    torch.manual_seed(0)
    model = Small().eval()
    x = np.random.default_rng(4).standard_normal((2, 3, 10, 10)).astype(np.float32)
    path = tmp_path / "small.onnx"
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, and says what it does not fold
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, opset_version=17)
    net = mc.onnx.load(path)
    kinds = {type(node.module).__name__ for node in net.nodes if node.module is not None}
    assert {"GELU", "LeakyReLU", "HardSwish", "ReLU6", "Pad", "ChannelShuffle", "HardSigmoid", "Softmax"} <= kinds
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), run_ort(path, x), rtol=0, atol=1e-6)
    np.testing.assert_allclose(net(x), expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------ a property: refuse clearly, or agree with onnxruntime
def _pool_node(data):
    op = data.draw(st.sampled_from(["MaxPool", "AveragePool"]))
    attrs = {"kernel_shape": data.draw(st.lists(st.integers(1, 5), min_size=2, max_size=2)),
             "strides": data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=2)),
             "pads": data.draw(st.lists(st.integers(0, 2), min_size=4, max_size=4)),
             "ceil_mode": data.draw(st.integers(0, 1))}
    if op == "MaxPool":
        attrs["dilations"] = data.draw(st.lists(st.integers(1, 2), min_size=2, max_size=2))
    else:
        attrs["count_include_pad"] = data.draw(st.integers(0, 1))
    return [helper.make_node(op, ["x"], ["y"], name="op", **attrs)], [], 4


def _pad_node(data):
    mode = data.draw(st.sampled_from(["constant", "reflect", "edge"]))
    amounts = data.draw(st.lists(st.integers(-2, 3), min_size=4, max_size=4))
    pads = [0, 0, amounts[0], amounts[1], 0, 0, amounts[2], amounts[3]]
    init = onnx.numpy_helper.from_array(np.array(pads, np.int64), "pads")
    return [helper.make_node("Pad", ["x", "pads"], ["y"], name="op", mode=mode)], [init], 4


def _conv_node(data):
    groups = data.draw(st.sampled_from([1, 3]))
    out = groups * data.draw(st.integers(1, 2))
    kernel = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=2))
    attrs = {"strides": data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=2)),
             "dilations": data.draw(st.lists(st.integers(1, 2), min_size=2, max_size=2)), "group": groups}
    auto_pad = data.draw(st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if auto_pad == "NOTSET":
        attrs["pads"] = data.draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))
    else:
        attrs["auto_pad"] = auto_pad
    if auto_pad.startswith("SAME"):
        attrs["dilations"] = [1, 1]  # onnxruntime has no dilated SAME (the ONNX formula has, and minicnn follows it)
    rng = np.random.default_rng(data.draw(st.integers(0, 100)))
    inits = [tensor("w", rng.standard_normal((out, 3 // groups, *kernel))), tensor("b", rng.standard_normal(out))]
    return [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="op", **attrs)], inits, 4


def _reshape_node(data):
    target = data.draw(st.one_of(st.lists(st.integers(-1, 8), min_size=1, max_size=5),
                                 st.sampled_from([[0, -1], [-1, 192], [0, 3, 64], [-1, 24, 8], [0, 3, -1]])))
    init = onnx.numpy_helper.from_array(np.array(target, np.int64), "shape")
    return [helper.make_node("Reshape", ["x", "shape"], ["y"], name="op")], [init], len(target)


@given(data=st.data())
def test_an_imported_node_is_refused_with_a_value_error_or_agrees_with_onnxruntime(data):
    nodes, inits, rank = data.draw(st.sampled_from([_conv_node, _pool_node, _pad_node, _reshape_node]))(data)
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, [f"d{i}" for i in range(rank)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.onnx"
        onnx.save(model, str(path))
        x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
        try:
            net = mc.onnx.load(path)
            y = net(x)
        except ValueError as error:
            assert "onnx import: node 'op'" in str(error) or str(error).startswith("pad:"), str(error)
            return
        y_ort = run_ort(path, x)  # what minicnn accepts, onnxruntime runs
        assert y.shape == y_ort.shape
        np.testing.assert_allclose(y, y_ort, rtol=0, atol=1e-5 * max(1.0, float(np.abs(y_ort).max(initial=0))))
