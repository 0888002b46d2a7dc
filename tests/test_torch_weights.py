"""torchvision-named state_dicts into the zoo's models: the same logits as PyTorch on the same weights.

torchvision cannot be installed beside torch 2.13 here, so the PyTorch
models below are written in this file with torchvision's module names,
layers and pooling (``torchvision/models/resnet.py``, ``mobilenetv2.py``,
``googlenet.py``, ``densenet.py``: the names are what a state_dict holds).
Their weights are random (BatchNorm statistics too), saved with
``torch.save`` and read back by ``mc.torch_weights.load_state_dict`` through
``torch.load(..., weights_only=True)``.

Tolerance: ``rounding.tolerance``, 4x the float32 rounding noise of the
network (minicnn float32 against minicnn float64 on the same input), at
least 1e-5.
"""

from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tnn = torch.nn
tF = torch.nn.functional

import minicnn as mc  # noqa: E402
from minicnn.models.zoo import GOOGLENET_INCEPTIONS, MOBILENET_V2_SETTINGS  # noqa: E402

from rounding import tolerance  # noqa: E402


# ------------------------------------------------------------- torchvision's ResNet
def conv_bn(cin, cout, k, stride=1, padding=0, groups=1):
    return tnn.Conv2d(cin, cout, k, stride, padding, groups=groups, bias=False), tnn.BatchNorm2d(cout)


class BasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(inplanes, planes, 3, stride, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, 1, 1)
        self.relu, self.downsample = tnn.ReLU(), downsample

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(inplanes, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, stride, 1)  # v1.5: the stride on the 3x3
        self.conv3, self.bn3 = conv_bn(planes, planes * 4, 1)
        self.relu, self.downsample = tnn.ReLU(), downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(tnn.Module):
    def __init__(self, block, layers, num_classes):
        super().__init__()
        self.inplanes = 64
        self.conv1, self.bn1 = conv_bn(3, 64, 7, 2, 3)
        self.relu, self.maxpool = tnn.ReLU(), tnn.MaxPool2d(3, 2, 1)
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            setattr(self, f"layer{i}", self._make_layer(block, planes, count, 1 if i == 1 else 2))
        self.avgpool, self.fc = tnn.AdaptiveAvgPool2d(1), tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = tnn.Sequential(*conv_bn(self.inplanes, planes * block.expansion, 1, stride))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ------------------------------------------------------------- torchvision's MobileNetV2
def conv_bn_relu6(cin, cout, k=3, stride=1, groups=1):
    return tnn.Sequential(*conv_bn(cin, cout, k, stride, (k - 1) // 2, groups), tnn.ReLU6())


class InvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [conv_bn_relu6(inp, hidden, k=1)] if expand_ratio != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden), *conv_bn(hidden, oup, 1)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        features, channels = [conv_bn_relu6(3, 32, stride=2)], 32
        for t, c, n, s in MOBILENET_V2_SETTINGS:
            for i in range(n):
                features.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        features.append(conv_bn_relu6(channels, 1280, k=1))
        self.features = tnn.Sequential(*features)
        self.classifier = tnn.Sequential(tnn.Dropout(0.2), tnn.Linear(1280, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(tF.adaptive_avg_pool2d(self.features(x), 1), 1))


# ------------------------------------------------------------- torchvision's GoogLeNet (names; minicnn's pools)
class BasicConv2d(tnn.Module):
    def __init__(self, cin, cout, **kwargs):
        super().__init__()
        self.conv, self.bn = tnn.Conv2d(cin, cout, bias=False, **kwargs), tnn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return tF.relu(self.bn(self.conv(x)))


class Inception(tnn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = tnn.Sequential(BasicConv2d(cin, ch3x3red, kernel_size=1),
                                      BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = tnn.Sequential(BasicConv2d(cin, ch5x5red, kernel_size=1),
                                      BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
                                      BasicConv2d(cin, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(tnn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name, channels in GOOGLENET_INCEPTIONS.items():
            setattr(self, name, Inception(*channels))
        self.maxpool3 = tnn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.maxpool4 = tnn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.fc = tnn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        for name in GOOGLENET_INCEPTIONS:
            x = getattr(self, name)(x)
            x = {"inception3b": self.maxpool3, "inception4e": self.maxpool4}.get(name, lambda h: h)(x)
        return self.fc(torch.flatten(tF.adaptive_avg_pool2d(x, 1), 1))


# ------------------------------------------------------------- torchvision's DenseNet
class DenseLayer(tnn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1, self.relu1 = tnn.BatchNorm2d(cin), tnn.ReLU()
        self.conv1 = tnn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = tnn.BatchNorm2d(bn_size * growth), tnn.ReLU()
        self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(tnn.ModuleDict):
    def __init__(self, count, cin, growth, bn_size):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth, bn_size) for i in range(count)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class DenseNet(tnn.Module):
    def __init__(self, growth, blocks, init_features, num_classes, bn_size=4):
        super().__init__()
        stem = [("conv0", tnn.Conv2d(3, init_features, 7, 2, 3, bias=False)), ("norm0", tnn.BatchNorm2d(init_features)),
                ("relu0", tnn.ReLU()), ("pool0", tnn.MaxPool2d(3, 2, 1))]
        self.features = tnn.Sequential(OrderedDict(stem))
        channels = init_features
        for i, count in enumerate(blocks, start=1):
            self.features.add_module(f"denseblock{i}", DenseBlock(count, channels, growth, bn_size))
            channels += count * growth
            if i != len(blocks):
                self.features.add_module(f"transition{i}", tnn.Sequential(OrderedDict(
                    norm=tnn.BatchNorm2d(channels), relu=tnn.ReLU(), conv=tnn.Conv2d(channels, channels // 2, 1, bias=False),
                    pool=tnn.AvgPool2d(2, 2))))
                channels //= 2
        self.features.add_module("norm5", tnn.BatchNorm2d(channels))
        self.classifier = tnn.Linear(channels, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(tF.adaptive_avg_pool2d(tF.relu(self.features(x)), 1), 1))


# ------------------------------------------------------------- the tests
MODELS = {
    "resnet18": (lambda: ResNet(BasicBlock, (2, 2, 2, 2), 10), lambda: mc.models.resnet18(10), 64),
    "resnet50": (lambda: ResNet(Bottleneck, (3, 4, 6, 3), 10), lambda: mc.models.resnet50(10, stride_on="3x3"), 64),
    "mobilenet_v2": (lambda: MobileNetV2(10), lambda: mc.models.mobilenet_v2(10), 64),
    "googlenet": (lambda: GoogLeNet(10), lambda: mc.models.googlenet(10, variant="torchvision"), 96),
    "densenet121": (lambda: DenseNet(32, (6, 12, 24, 16), 64, 10), lambda: mc.models.densenet121(10), 64),
}


def randomised(model, seed, size):
    """He-normal weights, random BatchNorm scales, running statistics of a random calibration batch (logits O(1))."""
    torch.manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, tnn.BatchNorm2d)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (tnn.Conv2d, tnn.Linear)):
                tnn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1)
        for m in norms:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.1)
            m.momentum = 1.0
        model.train()(torch.randn(4, 3, size, size))
    for m in norms:
        m.momentum = 0.1
    return model.eval()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torchvision_state_dict_gives_torchs_logits(tmp_path, name):
    make_torch, make_ours, size = MODELS[name]
    theirs = randomised(make_torch(), sum(map(ord, name)), size)
    torch.save(theirs.state_dict(), tmp_path / f"{name}.pth")
    ours = mc.torch_weights.load_state_dict(make_ours(), tmp_path / f"{name}.pth").eval()
    assert not ours.is_lazy
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    got = ours(x)
    allowed = tolerance(ours, x)
    assert np.abs(got - expected).max() <= allowed, f"{name}: |minicnn - torch| > {allowed:.2e}"


def test_every_key_is_mapped_one_to_one():
    net = mc.models.resnet34(10)
    names = mc.torch_weights.torchvision_names(net)
    assert len(set(names.values())) == len(names) == len(dict(net.named_parameters())) + len(dict(net.named_buffers()))
    assert names["conv3_1.shortcut.weight"] == "layer2.0.downsample.0.weight"
    assert names["conv3_1.shortcut_bn.running_var"] == "layer2.0.downsample.1.running_var"
    torch_keys = {k for k in ResNet(BasicBlock, (3, 4, 6, 3), 10).state_dict() if not k.endswith("num_batches_tracked")}
    assert set(names.values()) == torch_keys
    aux = mc.torch_weights.torchvision_names(mc.models.googlenet(10, variant="torchvision", aux_logits=True))
    assert aux["aux2.bn.weight"] == "aux2.conv.bn.weight" and aux["aux1.fc2.bias"] == "aux1.fc2.bias"


def torchvision_vgg(config, num_classes):
    """torchvision's ``VGG`` layout (``features`` numbered layer by layer, ``classifier.0/3/6``), on the meta device."""
    layers, channels = [], 3
    for item in config:
        if item == "M":
            layers.append(tnn.MaxPool2d(2, 2))
            continue
        layers += [tnn.Conv2d(channels, item, 3, padding=1), tnn.ReLU()]
        channels = item
    model = tnn.Module()
    model.features = tnn.Sequential(*layers)
    model.classifier = tnn.Sequential(tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, 4096),
                                      tnn.ReLU(), tnn.Dropout(), tnn.Linear(4096, num_classes))
    return model


@pytest.mark.parametrize("name", ["vgg11", "vgg16", "vgg19"])
def test_vgg_names_and_shapes_match_torchvisions(name):
    """Names and shapes only (VGG's 133-144M weights would take seconds to fill): torch's meta device holds none."""
    from minicnn.models.zoo import VGG_CONFIGS

    with torch.device("meta"):
        theirs = torchvision_vgg(VGG_CONFIGS[name], 10).state_dict()
    ours = getattr(mc.models, name)(10)
    names = mc.torch_weights.torchvision_names(ours)
    assert set(names.values()) == {k for k in theirs if not k.endswith("num_batches_tracked")}
    shapes = {name: param.shape for name, param in ours.named_parameters()}
    for key, torch_key in names.items():
        assert tuple(shapes[key]) == tuple(theirs[torch_key].shape), (key, torch_key)


def test_a_wrong_shape_names_the_key_and_both_shapes():
    state = ResNet(BasicBlock, (2, 2, 2, 2), 1000).state_dict()
    with pytest.raises(ValueError, match=r"'fc.weight' \(minicnn 'fc.weight'\) has shape \(1000, 512\) in the "
                                         r"state_dict but \(10, 512\) in the model"):
        mc.torch_weights.load_state_dict(mc.models.resnet18(10), state)


def test_half_precision_weights_load_as_float32():
    theirs = randomised(ResNet(BasicBlock, (2, 2, 2, 2), 10), 0, 32)
    state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in theirs.state_dict().items()}
    ours = mc.torch_weights.load_state_dict(mc.models.resnet18(10), state)
    np.testing.assert_array_equal(ours.fc.weight.data, state["fc.weight"].float().numpy())
    assert ours.fc.weight.data.dtype == np.float32


def test_missing_and_unexpected_keys_are_reported_together():
    state = ResNet(BasicBlock, (2, 2, 2, 2), 10).state_dict()
    del state["layer1.0.bn1.running_mean"]
    state["layer1.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"missing 1 key\(s\) \['layer1.0.bn1.running_mean'\], "
                                         r"unexpected 1 key\(s\) \['layer1.0.extra.weight'\]"):
        mc.torch_weights.load_state_dict(mc.models.resnet18(10), state)


def test_models_whose_layout_is_not_torchvisions_are_refused():
    with pytest.raises(ValueError, match=r"stride_on='3x3'"):
        mc.torch_weights.load_state_dict(mc.models.resnet50(10), {})
    with pytest.raises(ValueError, match=r"variant='torchvision'"):
        mc.torch_weights.torchvision_names(mc.models.googlenet(10))
    with pytest.raises(ValueError, match="no torchvision names for model 'vgg16_bn'"):
        mc.torch_weights.torchvision_names(mc.models.vgg16(batch_norm=True))  # torchvision's keep the conv biases


class NotATensor:
    """A class a pickle could construct: weights_only=True must refuse to."""


def test_files_are_read_with_weights_only(tmp_path):
    torch.save({"conv1.weight": NotATensor()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match=r"cannot be read as tensors only \(torch.load with weights_only=True\)"):
        mc.torch_weights.load_state_dict(mc.models.resnet18(10), tmp_path / "pickled.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read as tensors only"):
        mc.torch_weights.load_state_dict(mc.models.resnet18(10), tmp_path / "junk.pth")
