"""Architecture blocks and the model zoo: shapes, gradients, shape-only construction, summaries, learning.

The blocks (minicnn.models.blocks) are checked at tiny sizes: output shapes
against ``output_shape``, gradients against finite differences on every
backend, and the structure each paper describes (a projection shortcut only
where the shape changes, the residual only where MobileNetV2 allows it...).
The zoo (minicnn.models.zoo) is checked for shape-only construction,
``materialize``, summaries and depth; the numbers the slides claim are in
tests/test_spec_architectures.py. Finally a tiny ResNet made of these blocks
learns digits.
"""

import numpy as np
import pytest
from conftest import to_numpy
from gradcheck import check_module_gradients

import minicnn as mc
from minicnn import nn
from minicnn.data import load_dataset, to_network_input
from minicnn.graph import Sequential
from minicnn.models import blocks as B
from minicnn.models import zoo
from minicnn.nn import variants as V
from minicnn.optim import SGD
from numpy.lib.array_utils import byte_bounds


def _xp(backend_name):
    return mc.get_backend(backend_name).xp


def _on(backend_name, module):
    return module.to("cpu" if _xp(backend_name) is np else "gpu")


F64 = {"dtype": np.float64, "rng": 0}

# name -> (block factory in float64, input shape, expected output shape)
BLOCKS = {
    "basic_identity": (lambda: B.BasicBlock(4, 4, **F64), (2, 4, 5, 5), (2, 4, 5, 5)),
    "basic_projection": (lambda: B.BasicBlock(3, 4, 2, **F64), (2, 3, 6, 5), (2, 4, 3, 3)),
    "bottleneck_stride_on_1x1": (lambda: B.Bottleneck(4, 2, 2, **F64), (2, 4, 6, 6), (2, 8, 3, 3)),
    "bottleneck_stride_on_3x3": (lambda: B.Bottleneck(8, 2, 2, stride_on="3x3", **F64), (2, 8, 5, 5), (2, 8, 3, 3)),
    "bottleneck_identity": (lambda: B.Bottleneck(8, 2, **F64), (2, 8, 3, 3), (2, 8, 3, 3)),
    "inception": (lambda: B.Inception(3, 2, 2, 3, 1, 2, 2, **F64), (2, 3, 5, 5), (2, 9, 5, 5)),
    "inception_bn_3x3": (lambda: B.Inception(3, 2, 2, 3, 1, 2, 2, batch_norm=True, kernel_5x5=3, **F64),
                         (2, 3, 4, 4), (2, 9, 4, 4)),
    "dense_layer": (lambda: B.DenseLayer(3, 2, 2, **F64), (2, 3, 4, 4), (2, 2, 4, 4)),
    "dense_block": (lambda: B.DenseBlock(3, 2, 2, 2, **F64), (2, 2, 4, 4), (2, 8, 4, 4)),
    "transition": (lambda: B.Transition(4, 2, **F64), (2, 4, 4, 6), (2, 2, 2, 3)),
    "inverted_residual_skip": (lambda: B.InvertedResidual(4, 4, 1, 3, **F64), (2, 4, 4, 4), (2, 4, 4, 4)),
    "inverted_residual_stride2": (lambda: B.InvertedResidual(3, 5, 2, 2, **F64), (2, 3, 5, 5), (2, 5, 3, 3)),
    "inverted_residual_t1": (lambda: B.InvertedResidual(4, 3, 1, 1, **F64), (2, 4, 3, 3), (2, 3, 3, 3)),
    "mbconv_se": (lambda: B.MBConv(4, 4, 3, 1, 2, **F64), (2, 4, 4, 4), (2, 4, 4, 4)),
    "mbconv_k5_stride2_no_se": (lambda: B.MBConv(3, 5, 5, 2, 6, se_ratio=None, **F64), (2, 3, 6, 6), (2, 5, 3, 3)),
    "convnext": (lambda: B.ConvNeXtBlock(3, kernel_size=3, layer_scale=0.5, **F64), (2, 3, 4, 4), (2, 3, 4, 4)),
    "shuffle_unit": (lambda: B.ShuffleUnit(8, 8, 2, **F64), (2, 8, 4, 4), (2, 8, 4, 4)),
    "shuffle_unit_stride2": (lambda: B.ShuffleUnit(3, 12, 3, 2, grouped_first=False, **F64), (2, 3, 5, 5),
                             (2, 12, 3, 3)),
    "branches_with_fork": (
        lambda: B.Branches(3, ((("conv", 2, 1, 1, 0),),
                               (("conv", 2, 1, 1, 0), ("fork", (("conv", 1, (1, 3), 1, (0, 1)),),
                                                       (("conv", 2, (3, 1), 1, (1, 0)),))),
                               (("avgpool", 3, 1, 1), ("conv", 1, 1, 1, 0)),
                               (("maxpool", 3, 1, 1),)), **F64),
        (2, 3, 5, 5), (2, 9, 5, 5),
    ),
}


@pytest.mark.parametrize("case", sorted(BLOCKS))
def test_block_forward_shape_matches_output_shape(case, rng):
    make, in_shape, out_shape = BLOCKS[case]
    block = make()
    y = block(rng.standard_normal(in_shape))
    assert y.shape == block.output_shape(in_shape)
    if out_shape is not None:
        assert y.shape == out_shape
    assert block.backward(np.ones_like(y)).shape == in_shape


@pytest.mark.parametrize("case", sorted(BLOCKS))
def test_block_gradients_match_finite_differences(case, backend_name, rng):
    make, in_shape, _ = BLOCKS[case]
    block = _on(backend_name, make())
    x = _xp(backend_name).asarray(rng.standard_normal(in_shape))
    with mc.use_backend(backend_name):
        compared = check_module_gradients(block, x, seed=1, max_checks=8, rtol=1e-5, atol=1e-6)
    assert compared >= 8


def test_branches_fork_concatenates_both_halves():
    # 2 (1x1) + [1 | 2] (fork) + 1 (pool proj) + 3 (max-pooled input)
    assert BLOCKS["branches_with_fork"][0]().out_channels == 9
    halved = B.Branches(3, ((("conv", 2, 1, 1, 0),), (("maxpool", 3, 2, 0),)))
    with pytest.raises(ValueError, match="Concat: inputs must agree"):
        halved.output_shape((1, 3, 5, 5))
    ok = B.Branches(3, ((("conv", 2, 1, 1, 0),), (("conv", 2, 1, 1, 0), ("fork", (("conv", 1, (1, 3), 1, (0, 1)),),
                                                                          (("conv", 2, (3, 1), 1, (1, 0)),)))))
    assert ok.out_channels == 5 and ok.output_shape((1, 3, 5, 5)) == (1, 5, 5, 5)
    assert B.layer_depth(ok) == 2


# ------------------------------------------------------- block structure
def _node_names(block):
    return {node.name for node in block.nodes}


def test_resnet_blocks_project_the_shortcut_only_when_the_shape_changes():
    """Deck 001, "ResNet (2)": identity shortcuts inside a stage, 1x1 projections where the stage changes."""
    assert "shortcut" not in _node_names(B.BasicBlock(64, 64))
    assert "shortcut" in _node_names(B.BasicBlock(64, 128, 2))
    assert "shortcut" in _node_names(B.Bottleneck(64, 64))  # 64 -> 256 channels
    assert "shortcut" not in _node_names(B.Bottleneck(256, 64))


def test_bottleneck_reduces_then_restores():
    """Deck 002, ResNet: "1×1 (reduce) + 3×3 (procesa) + 1×1 (restaura)": 256 -> 64 -> 64 -> 256, 69,632 weights."""
    block = B.Bottleneck(256, 64, lazy=True)
    shapes_ = block.output_shapes((256, 56, 56))
    assert shapes_["conv1"] == (64, 56, 56) and shapes_["conv2"] == (64, 56, 56) and shapes_["conv3"] == (256, 56, 56)
    weights = sum(p.data.size for p in block.parameters() if p.data.ndim == 4)
    assert weights == 256 * 64 + 64 * 64 * 9 + 64 * 256 == 69_632


def test_bottleneck_stride_placement_changes_only_the_cost():
    """Stride on the first 1x1 (He et al.) or on the 3x3 (torchvision): same weights, the 3x3 on a 4x larger map."""
    on_1x1 = B.Bottleneck(256, 128, 2, stride_on="1x1", lazy=True)
    on_3x3 = B.Bottleneck(256, 128, 2, stride_on="3x3", lazy=True)
    assert on_1x1.num_parameters() == on_3x3.num_parameters()
    assert on_1x1.output_shape((1, 256, 56, 56)) == on_3x3.output_shape((1, 256, 56, 56)) == (1, 512, 28, 28)
    extra = on_3x3.macs((1, 256, 56, 56)) - on_1x1.macs((1, 256, 56, 56))
    assert extra == (56 * 56 - 28 * 28) * 256 * 128  # the first 1x1 now runs at full resolution


def test_inverted_residual_table_shapes():
    """Deck 000, "Cuellos de botella residuales inversos": h x w x k -> h x w x tk -> h/s x w/s x tk -> h/s x w/s x k'."""
    h, w, k, t, s, k_out = 56, 56, 24, 6, 2, 32
    block = B.InvertedResidual(k, k_out, s, t, lazy=True)
    shapes_ = block.output_shapes((k, h, w))
    assert shapes_["expand_act"] == (t * k, h, w)
    assert shapes_["depthwise_act"] == (t * k, h // s, w // s)
    assert shapes_["project_bn"] == (k_out, h // s, w // s)
    assert isinstance(block.depthwise_act, V.ReLU6) and isinstance(block.expand_act, V.ReLU6)
    assert "project_act" not in _node_names(block)  # linear bottleneck
    assert block.depthwise.groups == t * k and block.depthwise.kernel_size == (3, 3)
    assert not block.use_residual and B.InvertedResidual(k, k, 1, t, lazy=True).use_residual


def test_dense_block_concatenates_every_earlier_output():
    """Deck 002, DenseNet: x_ℓ = H_ℓ([x_0, ..., x_{ℓ-1}]); layer ℓ reads k_0 + (ℓ-1)k channels."""
    block = B.DenseBlock(4, 16, 8, lazy=True)
    assert [getattr(block, f"denselayer{i}").in_channels for i in range(1, 5)] == [16, 24, 32, 40]
    assert block.output_shape((1, 16, 7, 7)) == (1, 16 + 4 * 8, 7, 7)
    assert B.layer_depth(block) == 8


def test_shuffle_unit_shuffles_between_grouped_convolutions():
    unit = B.ShuffleUnit(240, 240, 3)
    assert unit.gconv1.groups == 3 and unit.gconv2.groups == 3 and unit.shuffle.groups == 3
    assert unit.depthwise.groups == 60
    with pytest.raises(ValueError, match="in_channels=24 must equal out_channels=240"):
        B.ShuffleUnit(24, 240, 3, 1)


def test_mbconv_squeezes_to_a_quarter_of_its_input():
    block = B.MBConv(40, 80, 3, 2, 6, lazy=True)
    assert block.se.channels == 240 and block.se.squeeze_channels == 10
    assert isinstance(block.se.activation, V.SiLU) and isinstance(block.depthwise_act, V.SiLU)


# ------------------------------------------------------------- shape-only
def test_lazy_vgg16_is_shape_only_and_counts_its_parameters():
    model = zoo.vgg16()
    weights = [p.data for p in model.parameters() if p.data.ndim > 1]
    assert all(B.is_shape_only(w) for w in weights)
    assert sum(w.nbytes for w in weights) > 500e6  # what they would take if allocated ...
    for w in weights:  # ... while each is a view of one stored zero
        low, high = byte_bounds(w)
        assert high - low == w.itemsize
    assert model.is_lazy
    assert sum(p.data.size for p in model.parameters()) == 138_357_544
    with pytest.raises(RuntimeError, match="materialize"):
        model(np.zeros((1, 3, 224, 224), dtype=np.float32))


def test_materialize_gives_real_reproducible_weights():
    a = zoo.shufflenet(3, num_classes=10, repeats=(1, 1, 1))
    b = zoo.shufflenet(3, num_classes=10, repeats=(1, 1, 1), lazy=False, seed=4)
    assert a.is_lazy and not b.is_lazy
    a.materialize(4)
    assert not a.is_lazy
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data, err_msg=name)
        assert pa.data.flags.writeable and pa.grad.shape == pa.data.shape
    conv1 = a.conv1.conv.weight.data
    fan_in = 3 * 3 * 3
    assert abs(conv1.std() - np.sqrt(2 / fan_in)) < 0.2 * np.sqrt(2 / fan_in)  # He normal


def test_materialized_zoo_model_runs_forward_and_backward(rng):
    model = zoo.shufflenet(3, num_classes=10, repeats=(1, 2, 1), lazy=False, seed=0)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    y = model(x)
    assert y.shape == (2, 10) == (2, *model.output_shapes((3, 64, 64))[-1])
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert all(np.isfinite(p.grad).all() for p in model.parameters())


def test_summary_rows_and_totals():
    model = zoo.resnet18()
    table = model.summary()
    assert "conv5_2" in table and "BasicBlock" in table and "512x7x7" in table
    assert f"{11_689_512:,}" in table and f"{model.multiply_adds():,}" in table
    assert model.named_output_shapes()["conv3_1"] == (128, 28, 28)
    # Any input size works for a fully convolutional trunk.
    assert model.named_output_shapes((3, 112, 112))["conv5_2"] == (512, 4, 4)


def test_depth_counts_layers_with_weights_on_the_longest_path():
    assert zoo.vgg16().depth() == 16
    assert zoo.resnet50().depth() == 50
    assert zoo.densenet121().depth() == 121
    assert B.layer_depth(B.BasicBlock(3, 4, 2)) == 2  # the projection runs beside the two convolutions


def test_zoo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        zoo.resnet18(num_classes=0)
    with pytest.raises(ValueError, match="variant must be"):
        zoo.googlenet(variant="v4")
    with pytest.raises(ValueError, match="stride_on must be one of"):
        zoo.resnet50(stride_on="both")
    with pytest.raises(ValueError, match="groups must be one of"):
        zoo.shufflenet(5)
    with pytest.raises(ValueError, match="phi must be a number >= 0"):
        zoo.efficientnet(-1)
    with pytest.raises(TypeError, match="lazy must be True or False"):
        zoo.alexnet(lazy="yes")


# -------------------------------------------------------------- learning
def test_a_tiny_resnet_of_these_blocks_learns_digits():
    """Two basic blocks on 500 bundled MNIST digits: held-out accuracy well above chance (10%) after 4 epochs."""
    images, labels = load_dataset("mnist-5k", "train", size=500, seed=0)
    x_train, y_train = to_network_input(images, pad_to=None), labels
    images, labels = load_dataset("mnist-5k", "test", size=300, seed=0)
    x_test, y_test = to_network_input(images, pad_to=None), labels
    net = zoo.Network(
        {
            "stem": B.conv(1, 8, 3, 1, 1), "bn": nn.BatchNorm2d(8), "relu": nn.ReLU(), "pool0": nn.MaxPool2d(2),
            "block1": B.BasicBlock(8, 8, lazy=True), "block2": B.BasicBlock(8, 16, 2, lazy=True),
            "pool": nn.GlobalAvgPool2d(), "flatten": nn.Flatten(), "fc": B.linear(16, 10),
        },
        name="tiny_resnet",
        input_shape=(1, 28, 28),
    ).materialize(0)
    loss_fn = nn.SoftmaxCrossEntropy()
    optimizer = SGD(net.parameters(), lr=0.1, momentum=0.9)
    order = np.random.default_rng(0)
    batch = 25
    with mc.use_backend("numpy"):  # the reference: at these tiny sizes NumPy's einsum is quick enough
        epoch_losses = []
        for epoch in range(4):
            perm = order.permutation(len(y_train))
            losses = []
            for i in range(0, len(y_train), batch):
                idx = perm[i : i + batch]
                net.zero_grad()
                losses.append(loss_fn(net(x_train[idx]), y_train[idx]))
                net.backward(loss_fn.backward())
                optimizer.step()
            epoch_losses.append(np.mean(losses))
        # BatchNorm's running statistics trail the fast-moving weights; re-estimate them on the training set.
        for i in range(0, len(y_train), batch):
            net(x_train[i : i + batch])
        net.eval()
        accuracy = (net(x_test).argmax(axis=1) == y_test).mean()
    assert epoch_losses[-1] < 0.6 * epoch_losses[0]
    assert accuracy > 0.4, f"held-out accuracy {accuracy:.2f}"
