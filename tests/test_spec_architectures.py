"""The slides' claims about whole networks, checked on the model zoo.

Two parts:

* every entry of ``spec/*.toml`` with ``check = "architecture"`` and
  ``status = "model-zoo"`` is a test (``test_model_zoo_spec_entry[<id>]``),
  checked by the function registered for its id below; an entry without one
  fails, so a new claim cannot go unchecked;
* the architecture tables of the decks, row by row: AlexNet's listing,
  VGG-16, LeNet-5, GoogLeNet's table (with its errata), the ResNet FLOPs,
  DenseNet-121's stages, MobileNetV2's inverted-residual table,
  EfficientNet-B0's Table 1 and compound scaling.

Reference parameter counts: torchvision's model builders, i.e. the
``num_params`` listed with each pretrained weights entry in the torchvision
documentation, and equal to ``sum(p.numel() for p in
torchvision.models.<name>(weights=None).parameters())`` (checked with
torchvision 0.26). AlexNet is the exception: its count is the single-tower
network of the deck 002 listing (torchvision's ``alexnet`` is a different,
61,100,840-parameter variant).

Tolerances follow spec/README.md: a rounded number ("62.3 millones",
"3.8 x 10^9") is met within one unit of its last digit; GoogLeNet's table,
which rounds loosely, within 2%.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from gradcheck import numerical_gradient
from spec_loader import SPEC_DIR, load_spec, values

from minicnn import nn, optim, shapes
from minicnn.data import load_dataset, to_network_input
from minicnn.graph import Sequential
from minicnn.models import blocks as B
from minicnn.models import lenet5, zoo

# ================================================================ spec entries
MODEL_ZOO_ENTRIES = (
    [e for e in load_spec() if e.get("status") == "model-zoo"] if Path(SPEC_DIR).is_dir() else []
)
CHECKS = {}


def check(entry_id):
    """Register the model-zoo check of spec entry ``entry_id``."""

    def register(function):
        CHECKS[entry_id] = function
        return function

    return register


def unit_of_last_digit(value):
    """One unit of the last significant digit of a rounded number: 62.3e6 -> 1e5, 3.8e9 -> 1e8, 60000 -> 1e4."""
    if float(value).is_integer():
        digits = str(int(value))
        return 10.0 ** (len(digits) - len(digits.rstrip("0")))
    return 10.0 ** -len(repr(float(value)).split(".")[1])


def assert_rounded(computed, stated, what):
    unit = unit_of_last_digit(stated)
    assert abs(computed - stated) <= unit, f"{what}: computed {computed:,} is not {stated:,} within {unit:g}"


def layers_of(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def _apply_slide_variant(entry):
    variant = dict(entry)
    for key, value in entry["slide_variant"].items():
        if "." in key:
            raise NotImplementedError(f"dotted slide_variant keys are not used by model-zoo entries: {key!r}")
        variant[key] = value
    return variant


@pytest.mark.parametrize("entry", MODEL_ZOO_ENTRIES, ids=[e["id"] for e in MODEL_ZOO_ENTRIES])
def test_model_zoo_spec_entry(entry):
    checker = CHECKS.get(entry["id"])
    assert checker is not None, (
        f"spec entry {entry['id']!r} ({entry['claim']}) has no model-zoo check; register one with "
        f"@check({entry['id']!r}) in tests/test_spec_architectures.py"
    )
    checker(values(entry))
    if entry.get("erratum"):
        with pytest.raises(AssertionError, match=entry["fails_with"]):
            checker(values(_apply_slide_variant(entry)))


def test_every_registered_check_has_its_entry():
    if MODEL_ZOO_ENTRIES:
        assert set(CHECKS) <= {e["id"] for e in MODEL_ZOO_ENTRIES}


# ------------------------------------------------------------ the checks
@check("zfnet_first_layer")
def _zfnet_first_layer(v):
    zf, alex = zoo.zfnet(), zoo.alexnet()
    assert zf.input_shape == tuple(v["input"])
    assert zf.conv1.kernel_size == (v["conv1_kernel"],) * 2 and zf.conv1.stride == (v["conv1_stride"],) * 2
    assert alex.conv1.kernel_size == (v["alexnet_conv1_kernel"],) * 2
    assert alex.conv1.stride == (v["alexnet_conv1_stride"],) * 2
    # The figure's sizes (Zeiler and Fergus, Fig. 3): 110, 55, 26, 13, 13, 13, 13, 6.
    sizes = zf.named_output_shapes()
    assert [sizes[n][1] for n in ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool3")] == [
        110, 55, 26, 13, 13, 13, 13, 6]


@check("inception_v3_depth")
def _inception_v3_depth(v):
    assert zoo.inception_v3().depth() == v["layers"]


def _check_resnet_flops(v, depths):
    builders = {18: zoo.resnet18, 34: zoo.resnet34, 50: zoo.resnet50, 101: zoo.resnet101, 152: zoo.resnet152}
    for depth, flops in zip(depths, v["flops"]):
        model = builders[depth]()
        counts = [sum(1 for name in model.named_output_shapes() if name.startswith(f"conv{stage}_")) for stage in
                  range(2, 6)]
        assert counts == v[f"blocks_{depth}"], f"ResNet-{depth} blocks per stage"
        if depth >= 50 and "bottleneck_widths" in v:
            widths = [model[f"conv{stage}_1"].width for stage in range(2, 6)]
            assert widths == v["bottleneck_widths"]
            assert all(model[f"conv{s}_1"].out_channels == v["bottleneck_expansion"] * w
                       for s, w in zip(range(2, 6), widths))
        assert model.depth() == depth
        assert_rounded(model.multiply_adds(), flops, f"ResNet-{depth} multiply-adds")


@check("resnet_table_flops")
def _resnet_table_flops(v):
    _check_resnet_flops(v, (18, 34, 50, 101, 152))


@check("resnet_bottleneck_flops")
def _resnet_bottleneck_flops(v):
    _check_resnet_flops(v, (50, 101, 152))


@check("densenet_table")
def _densenet_table(v):
    builders = {121: zoo.densenet121, 169: zoo.densenet169, 201: zoo.densenet201, 161: zoo.densenet161}
    for (depth, build), k in zip(builders.items(), v["growth_rates"]):
        model = build()
        dense_blocks = [model[f"denseblock{i}"] for i in range(1, 5)]
        assert [b.num_layers for b in dense_blocks] == v[f"blocks_{depth}"]
        assert {layer.growth_rate for layer in layers_of(model, B.DenseLayer)} == {k}
        assert model.classifier.out_features == v["classes"]
        assert model.depth() == depth


@check("googlenet_model")
def _googlenet_model(v):
    model = zoo.googlenet()
    assert model.input_shape == tuple(v["input"])
    assert [m.out_channels for m in layers_of(model, B.Inception)] == v["module_depths"]
    assert [d.p for d in layers_of(model, nn.Dropout)] == [v["dropout"]]
    assert model.linear.out_features == v["classes"]
    assert model.depth() == v["layers"]


def tiny_googlenet(dtype=np.float64):
    """A two-layer ``GoogLeNet`` with one auxiliary head on its convolution: the zoo's mechanism, small enough to run."""
    return zoo.GoogLeNet(
        {"conv": B.conv(2, 3, 3, padding=1, dtype=dtype), "relu": nn.ReLU(), "flatten": nn.Flatten(),
         "fc": B.linear(3 * 4 * 4, 4, dtype=dtype)},
        {"conv": Sequential(nn.GlobalAvgPool2d(), nn.Flatten(), B.linear(3, 4, dtype=dtype))},
        name="tiny", input_shape=(2, 4, 4),
    ).materialize(0)


@check("googlenet_auxiliary_classifiers")
def _googlenet_auxiliary_classifiers(v):
    model = zoo.googlenet(aux_logits=True)
    assert len(model.aux_attach) == v["auxiliary_classifiers"]
    assert [attach for attach, _ in model.aux_attach] == ["inception4a", "inception4d"]
    kernels = {c.kernel_size[0] for c in layers_of(model.inception3a, nn.Conv2d)}
    assert sorted(kernels) == v["branch_kernels"]
    # The mechanism, run: the heads run in training, are skipped in evaluation, and their loss
    # enters a training step with the weight the zoo's GoogLeNet gives them.
    tiny = tiny_googlenet()
    assert tiny.aux_weight == model.aux_weight
    calls = []
    head = tiny.aux1
    original = head.forward
    head.forward = lambda x: calls.append(x.shape) or original(x)
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((5, 2, 4, 4)), rng.integers(0, 4, 5)
    outputs = tiny(x)
    assert isinstance(outputs, tuple) and len(outputs) == 2 and calls == [(5, 3, 4, 4)], "training: the head runs"
    total, grads = tiny.training_loss(outputs, labels)
    main, side = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()
    assert math.isclose(total, main(outputs[0], labels) + v["auxiliary_loss_weight"] * side(outputs[1], labels),
                        rel_tol=1e-12), "training loss = L(logits) + 0.3 L(aux)"
    for p in tiny.parameters():
        p.grad[...] = 0
    tiny.backward(grads)
    weight = tiny.conv.weight
    analytic = weight.grad.copy()

    def step_loss(aux_weight):
        def f():
            main_fn, aux_fn = nn.SoftmaxCrossEntropy(), nn.SoftmaxCrossEntropy()
            out = tiny(x)
            return main_fn(out[0], labels) + aux_weight * aux_fn(out[1], labels)
        return f

    for aux_weight, agrees in ((v["auxiliary_loss_weight"], True), (1.0, False), (0.0, False)):
        numeric = numerical_gradient(step_loss(aux_weight), weight.data)
        assert np.allclose(analytic, numeric, rtol=1e-6, atol=1e-9) == agrees, (
            f"the training step's conv gradient {'is not' if agrees else 'is'} that of L + {aux_weight} L_aux"
        )
    before = weight.data.copy()
    optim.SGD(tiny.parameters(), lr=0.1).step()
    np.testing.assert_allclose(weight.data, before - 0.1 * analytic, rtol=1e-12)
    # "Sólo utilizados durante el entrenamiento": in evaluation the head does not run.
    tiny.eval()
    calls.clear()
    logits = tiny(x)
    assert isinstance(logits, np.ndarray) and logits.shape == (5, 4) and calls == [], "evaluation: the head is skipped"
    loss, grad = tiny.training_loss(logits, labels)
    assert math.isclose(loss, nn.SoftmaxCrossEntropy()(logits, labels), rel_tol=1e-12) and grad.shape == (5, 4)


@check("lenet_model")
def _lenet_model(v):
    model = lenet5()
    assert model.output_shapes(tuple(v["input"]))[-1] == (v["classes"],)
    assert_rounded(sum(p.data.size for p in model.parameters()), v["total_params"], "LeNet-5 parameters")


@check("alexnet_model")
def _alexnet_model(v):
    # training_images (1.2M ImageNet pictures) is a fact about the data set, not the network.
    model = zoo.alexnet()
    assert model.input_shape == tuple(v["input"])
    assert model.fc8.out_features == v["classes"]
    assert_rounded(sum(p.data.size for p in model.parameters()), v["total_params"], "AlexNet parameters")


@check("vgg16_model")
def _vgg16_model(v):
    model = zoo.vgg16()
    assert model.input_shape == tuple(v["input"])
    assert model.fc8.out_features == v["classes"]
    assert len(layers_of(model, nn.Conv2d)) == v["conv_layers"]
    assert len(layers_of(model, nn.Linear)) == v["fc_layers"]
    assert_rounded(sum(p.data.size for p in model.parameters()), v["total_params"], "VGG-16 parameters")


@check("alexnet_facts")
def _alexnet_facts(v):
    # top5_error and top5_error_before are competition results, not properties of the network.
    model = zoo.alexnet()
    assert model.input_shape == tuple(v["input"])
    assert [c.out_channels for c in layers_of(model, nn.Conv2d)] == v["conv_filters"]
    assert [f.out_features for f in layers_of(model, nn.Linear)] == v["fc_units"]
    assert v["fc_units"][-1] == v["classes"]
    assert {d.p for d in layers_of(model, nn.Dropout)} == {v["dropout"]}


@check("lpr_digits_lab")
def _lpr_digits_lab(v):
    images, labels = load_dataset("mnist-5k", "train", size=8, seed=0)
    assert (1, *images.shape[1:]) == tuple(v["input"])
    x = to_network_input(images)  # 28x28 -> LeNet-5's 32x32, zero-padded
    model = lenet5(num_classes=v["classes"])
    assert model(x).shape == (8, v["classes"])
    assert labels.max() < v["classes"]


@check("efficientnet_b0_baseline")
def _efficientnet_b0_baseline(v):
    model = zoo.efficientnet_b0()
    stages = model.stages
    assert [s["resolution"][0] for s in stages] == v["resolutions"]
    assert [s["channels"] for s in stages] == v["channels"]
    assert [len(s["layers"]) for s in stages] == v["layers"]
    kernels, expansion = [], []
    for s in stages:
        first = model[s["layers"][0]]
        if isinstance(first, B.MBConv):
            kernels.append(first.kernel_size)
            expansion.append(first.expand_ratio)
        else:
            kernels.append(first.conv.kernel_size[0])
            expansion.append(0)
    assert kernels == v["kernels"] and expansion == v["expansion"]


@check("mobilenetv2_block")
def _mobilenetv2_block(v):
    block = B.InvertedResidual(16, 24, 2, 6)
    convs = layers_of(block, nn.Conv2d)
    assert len(convs) == v["convolutions"]
    assert block.depthwise.kernel_size == (v["depthwise_kernel"],) * 2 and block.depthwise.groups == 96
    for act in layers_of(block, nn.ReLU6):
        assert act(np.array([100.0]))[0] == v["relu_cap"]
    names = [node.name for node in block.nodes]
    assert names[-1] == "project_bn"  # linear: nothing after the projection


# ====================================================== tables of the decks
def test_alexnet_listing_sizes_and_parameters():
    """Deck 002_35ce60e4ae78ad9e.txt, "Full (simplified) AlexNet architecture"; deck 004: "62.3 millones"."""
    model = zoo.alexnet()
    sizes = model.named_output_shapes()
    listed = {"conv1": (96, 55), "pool1": (96, 27), "conv2": (256, 27), "pool2": (256, 13), "conv3": (384, 13),
              "conv4": (384, 13), "conv5": (256, 13), "pool3": (256, 6)}
    for name, (depth, size) in listed.items():
        assert sizes[name] == (depth, size, size), name
    assert [sizes[n][0] for n in ("fc6", "fc7", "fc8")] == [4096, 4096, 1000]
    total = sum(p.data.size for p in model.parameters())
    assert total == 62_378_344
    assert_rounded(total, 62.3e6, "AlexNet parameters")


def test_alexnet_listing_errata_266_and_334_filters():
    """The listing's "CONV2: 266" and "CONV4: 334" are typos for 256 and 384.

    CONV2's own output column reads 27x27x256; with 334 filters in CONV4 the
    network would have 62.1M parameters, not deck 004's 62.3M.
    """
    model = zoo.alexnet()
    assert model.conv2.out_channels == 256 and model.conv4.out_channels == 384
    fc = shapes.linear_params(9216, 4096) + shapes.linear_params(4096, 4096) + shapes.linear_params(4096, 1000)
    slide_conv4 = (shapes.conv2d_params(3, 96, 11) + shapes.conv2d_params(96, 256, 5) +
                   shapes.conv2d_params(256, 384, 3) + shapes.conv2d_params(384, 334, 3) +
                   shapes.conv2d_params(334, 256, 3) + fc)
    assert abs(slide_conv4 - 62.3e6) > unit_of_last_digit(62.3e6)
    assert round(slide_conv4 / 1e6, 1) == 62.1


def test_vgg16_thirteen_conv_three_fc_138_4_million():
    """Deck 004_d4430ea77d2b90c2.txt, "VGGNet-16": 138.4 millones, 13 convolucionales y 3 completamente conectadas."""
    model = zoo.vgg16()
    assert len(layers_of(model, nn.Conv2d)) == 13 and len(layers_of(model, nn.Linear)) == 3
    assert model.depth() == 16
    total = sum(p.data.size for p in model.parameters())
    assert total == 138_357_544
    assert_rounded(total, 138.4e6, "VGG-16 parameters")
    # Deck 002, "VGG": every size halves at each of the five 2x2/2 poolings.
    sizes = model.named_output_shapes()
    assert [sizes[f"pool{i}"][1] for i in range(1, 6)] == [112, 56, 28, 14, 7]


def test_vgg19_and_resnet34_flops_of_the_resnet_figure():
    """Deck 004, "ResNet": "VGG-19 con 19.6 billones de FLOPS ... ResNet con 3.6 billones de FLOPS"."""
    assert_rounded(zoo.vgg19().multiply_adds(), 19.6e9, "VGG-19 multiply-adds")
    assert_rounded(zoo.resnet34().multiply_adds(), 3.6e9, "ResNet-34 multiply-adds")


def test_lenet5_about_60k_parameters():
    """Deck 004, "LeNet": "Total de parámetros: 60,000"; the slides' LeNet-5 table gives 61,706."""
    total = lenet5().num_parameters()
    assert total == 61_706
    assert_rounded(total, 60_000, "LeNet-5 parameters")


# -------------------------------------------------------------- GoogLeNet
#: The GoogLeNet table of deck 001 ("GoogLeNet (2)"), as spec/arquitecturas.toml holds it: one entry per row.
GOOGLENET_ROWS = [e for e in load_spec() if e["check"] == "inception_row" and "row" in e] if Path(SPEC_DIR).is_dir() else []
GOOGLENET_DEPTHS = next((e for e in load_spec() if e["id"] == "googlenet_22_layers"), None) if Path(SPEC_DIR).is_dir() else None


def slide_number(entry, field):
    """The number the slide prints: the slide_variant's value for an erratum, the entry's otherwise."""
    return entry.get("slide_variant", {}).get(field, entry.get(field))


def test_googlenet_table_sizes_and_depths():
    """Every row's output size and depth column, on the zoo's GoogLeNet; the depth column adds up to 22."""
    assert GOOGLENET_ROWS and GOOGLENET_DEPTHS
    model = zoo.googlenet()
    sizes = model.named_output_shapes()
    for entry in GOOGLENET_ROWS:
        row, hw = entry["row"], entry["output_hw"]
        depth_maps = entry.get("depth", entry["convs"][-1]["out"] if "convs" in entry else None)
        shape = sizes[row] if row != "linear" else (*sizes[row], 1, 1)  # the table writes 1x1x1000
        assert shape == (depth_maps, hw, hw), row
    depth_column = dict(zip(GOOGLENET_DEPTHS["stages"], GOOGLENET_DEPTHS["blocks"], strict=True))
    for row, depth in depth_column.items():
        if row in sizes:
            assert B.layer_depth(model[row]) == depth, row
    assert sum(depth_column.values()) == model.depth() == 22  # deck 001, "GoogLeNet (1)": "22 capas"


def test_googlenet_total_multiply_adds():
    """Szegedy et al.: "a computational budget of 1.5 billion multiply-adds".

    The ops column as the slide prints it adds to 1,502M; the zoo's network does
    that plus what the first row's erratum (34M printed, 118M computed) leaves out.
    """
    printed = {e["row"]: slide_number(e, "ops_m") for e in GOOGLENET_ROWS if "ops_m" in e}
    assert set(printed) == {"conv1", "conv2", "linear"} | set(zoo.GOOGLENET_INCEPTIONS)
    conv1 = next(e for e in GOOGLENET_ROWS if e["id"] == "googlenet_conv1_ops")
    computed = zoo.googlenet().multiply_adds() / 1e6
    assert math.isclose(computed - (conv1["ops_m"] - slide_number(conv1, "ops_m")), sum(printed.values()), rel_tol=0.02)
    assert math.isclose(computed, 1.5e3, rel_tol=0.06)


def test_googlenet_parameter_counts():
    """torchvision ``googlenet``: 6,624,904 without the auxiliary classifiers, 13,004,888 with them."""
    assert zoo.googlenet(variant="torchvision").num_parameters() == 6_624_904
    assert zoo.googlenet(variant="torchvision", aux_logits=True).num_parameters() == 13_004_888
    # The paper's variant (biases instead of BatchNorm, true 5x5 convolutions):
    assert zoo.googlenet().num_parameters() == 6_998_552


# ------------------------------------------------------------------ ResNet
@pytest.mark.parametrize(
    "build, stated", [(zoo.resnet18, 1.8e9), (zoo.resnet34, 3.6e9), (zoo.resnet50, 3.8e9), (zoo.resnet101, 7.6e9),
                      (zoo.resnet152, 11.3e9)],
)
def test_resnet_flops_of_the_table(build, stated):
    """Deck 001, "ResNet (2)": FLOPs (multiply-adds) 1.8/3.6/3.8/7.6/11.3 x 10⁹.

    Built as the paper builds them (the bottleneck's stride on its first 1x1).
    """
    assert_rounded(build().multiply_adds(), stated, build.__name__)


def test_resnet50_with_the_stride_on_the_3x3_is_not_the_tables_network():
    """torchvision's layout ("v1.5") costs 4.1 x 10⁹: the table's 3.8 x 10⁹ is the original, stride-on-1x1 ResNet-50."""
    v15 = zoo.resnet50(stride_on="3x3").multiply_adds()
    assert round(v15 / 1e9, 1) == 4.1
    assert abs(v15 - 3.8e9) > unit_of_last_digit(3.8e9)


def test_resnet_stage_sizes():
    """Deck 001, "ResNet (2)": conv1 112, conv2_x 56, conv3_x 28, conv4_x 14, conv5_x 7, pool 1."""
    sizes = zoo.resnet50().named_output_shapes()
    assert sizes["conv1"] == (64, 112, 112) and sizes["maxpool"] == (64, 56, 56)
    assert [sizes[f"conv{s}_1"] for s in range(2, 6)] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14),
                                                          (2048, 7, 7)]
    assert sizes["avgpool"] == (2048, 1, 1)


# ---------------------------------------------------------- parameter counts
TORCHVISION_PARAMS = {
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "densenet161": 28_681_000, "mobilenet_v2": 3_504_872, "efficientnet_b0": 5_288_548,
    "convnext_tiny": 28_589_128,
}


@pytest.mark.parametrize("name", sorted(TORCHVISION_PARAMS))
def test_parameter_count_matches_torchvision(name):
    """Source: the num_params of torchvision.models.<name> (torchvision documentation, pretrained weights tables)."""
    model = getattr(zoo, name)()
    assert model.is_lazy
    assert sum(p.data.size for p in model.parameters()) == TORCHVISION_PARAMS[name]
    assert model.num_parameters() == TORCHVISION_PARAMS[name]


def test_inception_v3_parameters_and_depth():
    """torchvision inception_v3 has 27,161,264 parameters with its auxiliary head (3,326,696); 48 layers deep."""
    model = zoo.inception_v3()
    aux = (shapes.conv2d_params(768, 128, 1, bias=False) + 2 * 128 + shapes.conv2d_params(128, 768, 5, bias=False)
           + 2 * 768 + shapes.linear_params(768, 1000))
    assert model.num_parameters() + aux == 27_161_264
    assert model.depth() == 48


# ---------------------------------------------------------------- DenseNet
def test_densenet121_stage_sizes():
    """Deck 001, "DenseNet (2)": 112 -> 56 (pool) -> block 56 -> transition 28 -> 28 -> 14 -> 14 -> 7 -> 7 -> 1."""
    sizes = zoo.densenet121().named_output_shapes()
    expected = {"conv0": (64, 112), "pool0": (64, 56), "denseblock1": (256, 56), "transition1": (128, 28),
                "denseblock2": (512, 28), "transition2": (256, 14), "denseblock3": (1024, 14),
                "transition3": (512, 7), "denseblock4": (1024, 7), "pool5": (1024, 1)}
    for name, (channels, size) in expected.items():
        assert sizes[name] == (channels, size, size), name
    # The transition's 1x1 convolution works at the block's size; its pooling halves it ("56 x 56 / 28 x 28").
    inside = zoo.densenet121()["transition1"].output_shapes((256, 56, 56))
    assert inside["conv"] == (128, 56, 56) and inside["pool"] == (128, 28, 28)


# --------------------------------------------------------------- MobileNetV2
def test_mobilenet_v2_inverted_residual_table():
    """Sandler et al., Table 2 (t, c, n, s), with each block as deck 000's "Cuellos de botella residuales inversos"."""
    model = zoo.mobilenet_v2()
    sizes = model.named_output_shapes()
    assert sizes["conv0"] == (32, 112, 112)
    size, channels, index = 112, 32, 1
    for t, c, n, s in zoo.MOBILENET_V2_SETTINGS:
        for i in range(n):
            block = model[f"block{index}"]
            stride = s if i == 0 else 1
            size //= stride
            assert (block.in_channels, block.out_channels, block.stride) == (channels, c, stride)
            assert block.hidden_channels == t * channels
            assert block.use_residual == (stride == 1 and channels == c)
            assert sizes[f"block{index}"] == (c, size, size)
            channels, index = c, index + 1
    assert index - 1 == 17 and sizes["conv_last"] == (1280, 7, 7)


# -------------------------------------------------------------- EfficientNet
EFFICIENTNET_B0_TABLE = [  # deck 000, "EfficientNets (3)", Table 1: operator, resolution, channels, layers
    ("Conv3x3", 224, 32, 1), ("MBConv1, k3x3", 112, 16, 1), ("MBConv6, k3x3", 112, 24, 2),
    ("MBConv6, k5x5", 56, 40, 2), ("MBConv6, k3x3", 28, 80, 3), ("MBConv6, k5x5", 14, 112, 3),
    ("MBConv6, k5x5", 14, 192, 4), ("MBConv6, k3x3", 7, 320, 1), ("Conv1x1 & Pooling & FC", 7, 1280, 1),
]


def test_efficientnet_b0_table():
    model = zoo.efficientnet_b0()
    got = [(s["operator"], s["resolution"][0], s["channels"], len(s["layers"])) for s in model.stages]
    assert got == EFFICIENTNET_B0_TABLE
    assert model.stage9_fc.in_features == 1280


def test_efficientnet_b0_has_18_layers_not_the_19_rows_of_deck_002():
    """Deck 002, "EfficientNet": "d = 1 → 18 capas convolucionales" (Table 1's #Layers add to 18).

    Deck 002's expanded table (spec entry efficientnet_b0_table_rows) repeats
    the 192-channel row five times, where the network's stage 7 has four layers.
    """
    model = zoo.efficientnet_b0()
    rows = [model.named_output_shapes()[name][0] for s in model.stages for name in s["layers"]]
    assert len(rows) == sum(len(s["layers"]) for s in model.stages) == 18
    entry = next(e for e in load_spec() if e["id"] == "efficientnet_b0_table_rows")
    slide_rows = entry["slide_variant"]["row_channels"]
    assert rows.count(192) == 4 and slide_rows.count(192) == 5 and len(slide_rows) == 19
    assert entry["row_channels"] == rows


def test_compound_scaling_grows_flops_about_two_to_the_phi():
    """Deck 004 / deck 002, "EfficientNet": d = α^φ, w = β^φ, r = γ^φ with α·β²·γ² ≈ 2, so FLOPs ≈ 2^φ.

    α = 1.2, β = 1.1, γ = 1.15 (Tan & Le, 2019): α·β²·γ² = 1.92. The built
    networks round depths up and channels to multiples of 8, so φ = 1 (every
    stage one layer longer) overshoots most; log2 of the FLOPs ratio stays
    within 0.4 of φ.
    """
    alpha, beta, gamma = zoo.COMPOUND_COEFFICIENTS
    assert math.isclose(alpha * beta**2 * gamma**2, 2, rel_tol=0.05)
    base = zoo.efficientnet(0).multiply_adds()
    ratios = []
    for phi in (1, 2, 3):
        model = zoo.efficientnet(phi)
        assert model.input_shape[1] == round(224 * gamma**phi)
        assert model.coefficients == {"depth": alpha**phi, "width": beta**phi, "resolution": gamma**phi}
        ratios.append(model.multiply_adds() / base)
        assert abs(math.log2(ratios[-1]) - phi) < 0.4, (phi, ratios[-1])
    assert ratios[0] < ratios[1] < ratios[2]


# ---------------------------------------------------------------- ShuffleNet
@pytest.mark.parametrize("groups, mflops", [(1, 143), (2, 140), (3, 137), (4, 133), (8, 137)])
def test_shufflenet_complexity(groups, mflops):
    """Zhang et al. (2018), Table 1: ShuffleNet 1x complexity (MFLOPs, multiply-adds) for g = 1, 2, 3, 4, 8."""
    model = zoo.shufflenet(groups)
    assert math.isclose(model.multiply_adds() / 1e6, mflops, rel_tol=0.02)
    sizes = model.named_output_shapes()
    assert [sizes[f"stage{s}_1"][1:] for s in (2, 3, 4)] == [(28, 28), (14, 14), (7, 7)]
    assert [sizes[f"stage{s}_1"][0] for s in (2, 3, 4)] == list(zoo.SHUFFLENET_CHANNELS[groups])
