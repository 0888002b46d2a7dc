"""The building blocks of the architectures on the slides, each a small ``Graph`` of layers.

Deck 001_4dad5adb3ac1e716.txt ("Redes convolucionales") and the survey of
deck 002_35ce60e4ae78ad9e.txt ("Arquitecturas de redes convolucionales")
build their networks by repeating one block:

=====================  ==========================================================
``BasicBlock``         ResNet-18/34: two 3x3 convolutions and a skip, ``H(x) + x``
``Bottleneck``         ResNet-50/101/152: 1x1 (reduce) + 3x3 + 1x1 (restore) + skip
``Inception``          GoogLeNet: 1x1, 3x3, 5x5 and pooling branches, concatenated
``DenseLayer``         DenseNet's ``H_ℓ``: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3
``DenseBlock``         ``x_ℓ = H_ℓ([x_0, ..., x_{ℓ-1}])``
``Transition``         DenseNet: BN-ReLU-Conv1x1 + 2x2 average pooling
``InvertedResidual``   MobileNetV2: expand 1x1, depthwise 3x3, linear 1x1 projection
``MBConv``             EfficientNet: an inverted residual with squeeze-and-excitation
``ConvNeXtBlock``      ConvNeXt: depthwise 7x7, LayerNorm, 1x1 (x4), GELU, 1x1
``ShuffleUnit``        ShuffleNet: grouped 1x1, channel shuffle, depthwise 3x3
=====================  ==========================================================

A block is a ``minicnn.graph.Graph``, so ``forward``/``backward`` run its
layers in topological order (adding the gradients where the input fans out
to the skip connection), and ``output_shape``/``macs``/``num_parameters``
feed ``summary()`` without computing anything.

**Shape-only weights.** Every block can be built ``lazy=True``: its
convolution and linear weights are then read-only zero-stride views
(``shape_only``), which occupy no memory, so a 138M-parameter VGG-16 is built
in milliseconds and its summary and parameter count are exact. ``.materialize(seed)``
gives such a module real, initialised weights (He for convolutions, as the
ResNet paper does); ``lazy=False`` (the default for a block) does that at once.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..graph import Graph, Sequential
from ..nn.init import is_shape_only, shape_only
from ..nn.variants import (
    GELU,
    ChannelShuffle,
    LayerNorm2d,
    LayerScale,
    ReLU6,
    SiLU,
    SqueezeExcitation,
)

__all__ = [
    "shape_only",
    "is_shape_only",
    "layer_depth",
    "Block",
    "BasicBlock",
    "Bottleneck",
    "Inception",
    "Branches",
    "InceptionAux",
    "DenseLayer",
    "DenseBlock",
    "Transition",
    "InvertedResidual",
    "MBConv",
    "ConvNeXtBlock",
    "ShuffleUnit",
    "conv",
    "linear",
    "make_divisible",
]


# ------------------------------------------------------------ lazy weights
# Shape-only weights are a concept of minicnn.nn: init.shape_only, Parameter.is_shape_only and
# Module.is_lazy/materialize/refuse_lazy (shape_only and is_shape_only are re-exported here).


def conv(in_channels, out_channels, kernel_size, stride=1, padding=0, *, groups=1, dilation=1, bias=False,
         init="kaiming_normal", dtype=np.float32):
    """A shape-only ``Conv2d`` that ``materialize`` will initialise with ``init`` (He normal by default)."""
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                      init=shape_only, dtype=dtype)
    layer.initializers = {"weight": init}
    return layer


def linear(in_features, out_features, *, bias=True, init="kaiming_uniform", dtype=np.float32):
    """A shape-only ``Linear`` that ``materialize`` will initialise with ``init``."""
    layer = nn.Linear(in_features, out_features, bias, init=shape_only, dtype=dtype)
    layer.initializers = {"weight": init}
    return layer


def make_divisible(value, divisor=8):
    """Round a channel count to the nearest multiple of ``divisor``, never more than 10% below ``value``.

    The rule MobileNetV2 and EfficientNet use when a width multiplier scales
    the channels.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def layer_depth(module):
    """Layers with weights on the longest path through ``module``: GoogLeNet's "depth" column.

    A ``Conv2d``-like or ``Linear`` layer counts 1, a ``Sequential`` the sum of
    its layers, a ``Graph`` its longest input-to-output chain (a projection
    shortcut running beside two convolutions does not add to the depth).
    Normalisation layers (BatchNorm, LayerNorm, LayerScale) have weights but
    are not counted, as in the papers.
    """
    if isinstance(module, (nn.BatchNorm2d, LayerNorm2d, LayerScale)):
        return 0
    if isinstance(module, Graph):
        depth = {}
        for node in module.nodes:
            before = max((depth[i.index] for i in node.inputs), default=0)
            depth[node.index] = before + (layer_depth(node.module) if node.module is not None else 0)
        return max(depth.values())
    if isinstance(module, Sequential):
        return sum(layer_depth(layer) for layer in module)
    if isinstance(module, SqueezeExcitation):
        return 0  # a side branch that gates the channels, not a layer of the main path
    if any("." not in name for name, _ in module.named_parameters()):
        return 1
    return sum(layer_depth(child) for child in module.children())


# -------------------------------------------------------------- the block
class Block(Graph):
    """A ``Graph`` its subclass builds in ``__init__``, with shape-only weights until materialised."""

    def __init__(self, dtype=np.float32):
        super().__init__()
        self.dtype = np.dtype(dtype)

    def _finish(self, node, lazy, rng):
        self.output(node)
        if not lazy:
            self.materialize(rng)

    def forward(self, *xs):
        self.refuse_lazy()
        return super().forward(*xs)

    # Adds conv (+ BatchNorm) (+ activation) after ``x``; the node names are ``name``, ``name_bn``, ``name_act``.
    def _conv_unit(self, x, name, in_channels, out_channels, kernel_size, stride=1, padding=0, *, groups=1,
                   bias=False, batch_norm=True, activation=nn.ReLU, bn_eps=1e-5):
        h = self.add(conv(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias,
                          dtype=self.dtype), x, name=name)
        if batch_norm:
            h = self.add(nn.BatchNorm2d(out_channels, eps=bn_eps, dtype=self.dtype), h, name=f"{name}_bn")
        if activation is not None:
            h = self.add(activation(), h, name=f"{name}_act")
        return h


def _count(block, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{block}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{block}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _stride(block, stride):
    if stride not in (1, 2):
        raise ValueError(f"{block}: stride must be 1 or 2, got {stride!r}")
    return stride


# ------------------------------------------------------------------- ResNet
class BasicBlock(Block):
    """ResNet's basic block: ``y = ReLU(BN(conv3x3(ReLU(BN(conv3x3(x))))) + shortcut(x))``.

    Deck 001_4dad5adb3ac1e716.txt, "Entrenando redes más profundas: ResNet
    (2)" (the ``[3x3, C; 3x3, C]`` rows of ResNet-18/34); deck
    002_35ce60e4ae78ad9e.txt, ResNet: "se agrega una skip connection ... y se
    suma al resultado del bloque convolucional". The first convolution takes
    the ``stride``; when the shape changes (stride 2 or new channel count)
    the shortcut is a projection, 1x1 convolution + BN (He et al.'s option B).
    """

    expansion = 1

    def __init__(self, in_channels, out_channels, stride=1, *, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("BasicBlock", "in_channels", in_channels)
        self.out_channels = _count("BasicBlock", "out_channels", out_channels)
        self.stride = _stride("BasicBlock", stride)
        x = self.input()
        h = self._conv_unit(x, "conv1", in_channels, out_channels, 3, stride, 1)
        h = self._conv_unit(h, "conv2", out_channels, out_channels, 3, 1, 1, activation=None)
        shortcut = x
        if stride != 1 or in_channels != out_channels:
            shortcut = self._conv_unit(x, "shortcut", in_channels, out_channels, 1, stride, activation=None)
        y = self.add(nn.Add(), h, shortcut, name="residual")
        self._finish(self.add(nn.ReLU(), y, name="relu"), lazy, rng)


class Bottleneck(Block):
    """ResNet's bottleneck: 1x1 (reduce to ``width``) + 3x3 + 1x1 (restore to ``4*width``) + shortcut.

    Deck 002_35ce60e4ae78ad9e.txt, ResNet: "'bottlenecks': 1×1 (reduce) +
    3×3 (procesa) + 1×1 (restaura). Así el bloque 3×3 trabaja con menos
    dimensiones"; deck 001_4dad5adb3ac1e716.txt, the ``[1x1, 64; 3x3, 64;
    1x1, 256]`` rows of ResNet-50/101/152.

    ``stride_on="1x1"`` puts a block's stride on the first 1x1 convolution,
    as the original paper (He et al., 2015) does, whose FLOPs the table
    reports; ``stride_on="3x3"`` puts it on the 3x3 convolution ("ResNet
    v1.5", the torchvision layout: same parameters, about 0.3 x 10⁹ more
    multiply-adds for ResNet-50, and better accuracy).
    """

    expansion = 4
    STRIDE_ON = ("1x1", "3x3")

    def __init__(self, in_channels, width, stride=1, *, stride_on="1x1", lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        if stride_on not in self.STRIDE_ON:
            raise ValueError(f"Bottleneck: stride_on must be one of {self.STRIDE_ON}, got {stride_on!r}")
        self.in_channels = _count("Bottleneck", "in_channels", in_channels)
        self.width = _count("Bottleneck", "width", width)
        self.out_channels = out = width * self.expansion
        self.stride = _stride("Bottleneck", stride)
        self.stride_on = stride_on
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        x = self.input()
        h = self._conv_unit(x, "conv1", in_channels, width, 1, s1)
        h = self._conv_unit(h, "conv2", width, width, 3, s3, 1)
        h = self._conv_unit(h, "conv3", width, out, 1, activation=None)
        shortcut = x
        if stride != 1 or in_channels != out:
            shortcut = self._conv_unit(x, "shortcut", in_channels, out, 1, stride, activation=None)
        y = self.add(nn.Add(), h, shortcut, name="residual")
        self._finish(self.add(nn.ReLU(), y, name="relu"), lazy, rng)


# ---------------------------------------------------------------- GoogLeNet
class Inception(Block):
    """GoogLeNet's inception module: four parallel branches concatenated along the channels.

    Deck 001_4dad5adb3ac1e716.txt, "Bloques Inception" and the GoogLeNet
    table (columns #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj);
    deck 002_35ce60e4ae78ad9e.txt: "convoluciones en paralelo con diferentes
    tamaños de filtros (1×1, 3×3, 5×5)" and "Convoluciones 1×1: reducción de
    la dimensión". Branches: 1x1; 1x1 reduce then 3x3; 1x1 reduce then 5x5;
    3x3 max pooling (stride 1) then a 1x1 projection. Every convolution is
    followed by a ReLU (and, with ``batch_norm``, a BatchNorm before it).

    ``kernel_5x5`` is the size of the third branch's wide convolution: 5 as
    in the paper; torchvision's ``googlenet`` uses 3 there (kept for its
    pretrained weights), which is what its parameter count assumes.
    ``ceil_mode`` is the branch pool's, as torchvision writes it (True); at
    stride 1 it changes no size.
    """

    def __init__(self, in_channels, ch1x1, ch3x3_reduce, ch3x3, ch5x5_reduce, ch5x5, pool_proj, *, batch_norm=False,
                 kernel_5x5=5, ceil_mode=False, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        for name, value in (("in_channels", in_channels), ("ch1x1", ch1x1), ("ch3x3_reduce", ch3x3_reduce),
                            ("ch3x3", ch3x3), ("ch5x5_reduce", ch5x5_reduce), ("ch5x5", ch5x5),
                            ("pool_proj", pool_proj)):
            _count("Inception", name, value)
        if kernel_5x5 not in (3, 5):
            raise ValueError(f"Inception: kernel_5x5 must be 5 (the paper) or 3 (torchvision), got {kernel_5x5!r}")
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        unit = {"batch_norm": batch_norm, "bias": not batch_norm, "bn_eps": 1e-3}
        x = self.input()
        b1 = self._conv_unit(x, "branch1", in_channels, ch1x1, 1, **unit)
        b2 = self._conv_unit(x, "branch2_reduce", in_channels, ch3x3_reduce, 1, **unit)
        b2 = self._conv_unit(b2, "branch2", ch3x3_reduce, ch3x3, 3, 1, 1, **unit)
        b3 = self._conv_unit(x, "branch3_reduce", in_channels, ch5x5_reduce, 1, **unit)
        b3 = self._conv_unit(b3, "branch3", ch5x5_reduce, ch5x5, kernel_5x5, 1, kernel_5x5 // 2, **unit)
        b4 = self.add(nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=ceil_mode), x, name="branch4_pool")
        b4 = self._conv_unit(b4, "branch4", in_channels, pool_proj, 1, **unit)
        self._finish(self.add(nn.Concat(), b1, b2, b3, b4, name="concat"), lazy, rng)


class InceptionAux(Sequential):
    """GoogLeNet's auxiliary classifier, attached to an intermediate Inception output during training.

    Deck 002_35ce60e4ae78ad9e.txt, "GoogLeNet - Inception": "Clasificadores
    auxiliares: mejora el vanishing gradient problem; sólo utilizados durante
    el entrenamiento; peso de 0.3 en la loss total". As Szegedy et al. (2014)
    describe it: 5x5/3 average pooling (14x14 -> 4x4), a 1x1 convolution to
    128 maps + ReLU, a 1024-unit fully connected layer + ReLU, dropout 70%,
    and a linear layer to the classes. ``batch_norm`` follows torchvision
    (BN after the bias-free 1x1 convolution).
    """

    def __init__(self, in_channels, num_classes=1000, *, batch_norm=False, lazy=False, rng=None, dtype=np.float32):
        rng = np.random.default_rng(rng)
        layers = {"pool": nn.AvgPool2d(5, stride=3),
                  "conv": conv(in_channels, 128, 1, bias=not batch_norm, dtype=dtype)}
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(128, eps=1e-3, dtype=dtype)
        layers.update({"relu": nn.ReLU(), "flatten": nn.Flatten(), "fc1": linear(128 * 4 * 4, 1024, dtype=dtype),
                       "fc1_relu": nn.ReLU(), "dropout": nn.Dropout(0.7, rng=rng),
                       "fc2": linear(1024, num_classes, init="xavier_uniform", dtype=dtype)})
        super().__init__(layers)
        if not lazy:
            materialize(self, rng)


class Branches(Block):
    """Parallel paths from one input, concatenated along the channels: the general Inception module.

    ``paths`` is a sequence of paths; a path is a sequence of steps applied
    one after the other:

    * ``("conv", out_channels, kernel_size, stride, padding)``: convolution
      (no bias) + BatchNorm + ReLU, kernels and paddings an int or ``(h, w)``,
      so the factorised ``1x7``/``7x1`` convolutions of Inception v3 fit;
    * ``("maxpool", kernel, stride, padding)`` / ``("avgpool", ...)``;
    * ``("fork", path, path, ...)``: the current map feeds several sub-paths
      whose outputs are concatenated (Inception v3's ``1x3 | 3x1`` split).

    ``out_channels`` is the sum over the paths' last outputs.
    """

    def __init__(self, in_channels, paths, *, bn_eps=1e-3, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("Branches", "in_channels", in_channels)
        self._bn_eps = bn_eps
        x = self.input()
        ends, widths = [], []
        for i, path in enumerate(paths, start=1):
            node, channels = self._path(x, in_channels, path, f"b{i}")
            ends.append(node)
            widths.append(channels)
        self.out_channels = sum(widths)
        self._finish(self.add(nn.Concat(), *ends, name="concat"), lazy, rng)

    def _path(self, node, channels, steps, prefix):
        for j, step in enumerate(steps, start=1):
            kind, name = step[0], f"{prefix}_{j}"
            if kind == "conv":
                _, out, kernel, stride, padding = step
                node = self._conv_unit(node, name, channels, out, kernel, stride, padding, bn_eps=self._bn_eps)
                channels = out
            elif kind in ("maxpool", "avgpool"):
                _, kernel, stride, padding = step
                pool = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
                node = self.add(pool(kernel, stride=stride, padding=padding), node, name=name)
            elif kind == "fork":
                outs = [self._path(node, channels, sub, f"{name}{chr(ord('a') + k)}") for k, sub in enumerate(step[1:])]
                node = self.add(nn.Concat(), *(o for o, _ in outs), name=f"{name}_concat")
                channels = sum(c for _, c in outs)
            else:
                raise ValueError(f"Branches: a step is ('conv', ...), ('maxpool', ...), ('avgpool', ...) or "
                                 f"('fork', ...), got {step!r}")
        return node, channels


# ----------------------------------------------------------------- DenseNet
class DenseLayer(Block):
    """DenseNet's ``H_ℓ``: BN-ReLU-Conv1x1 (``bn_size*growth`` maps) then BN-ReLU-Conv3x3 (``growth`` maps).

    Deck 002_35ce60e4ae78ad9e.txt, DenseNet: "H : BN + ReLu + Conv 3×3";
    deck 001_4dad5adb3ac1e716.txt, "DenseNet (2)": the ``[1x1 conv; 3x3
    conv]`` rows (DenseNet-B, the 1x1 bottleneck producing ``4k`` maps).
    """

    def __init__(self, in_channels, growth_rate, bn_size=4, *, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("DenseLayer", "in_channels", in_channels)
        self.growth_rate = _count("DenseLayer", "growth_rate", growth_rate)
        inner = _count("DenseLayer", "bn_size", bn_size) * growth_rate
        x = self.input()
        h = self.add(nn.BatchNorm2d(in_channels, dtype=dtype), x, name="bn1")
        h = self.add(nn.ReLU(), h, name="relu1")
        h = self.add(conv(in_channels, inner, 1, dtype=dtype), h, name="conv1")
        h = self.add(nn.BatchNorm2d(inner, dtype=dtype), h, name="bn2")
        h = self.add(nn.ReLU(), h, name="relu2")
        self._finish(self.add(conv(inner, growth_rate, 3, 1, 1, dtype=dtype), h, name="conv2"), lazy, rng)


class DenseBlock(Block):
    """A dense block: layer ``ℓ`` sees the concatenation of the block input and every earlier layer's output.

    Deck 002_35ce60e4ae78ad9e.txt, DenseNet: "Densenet: ``x_ℓ = H_ℓ([x_0,
    x_1, ..., x_{ℓ-1}])``, [...] → concatenación de las capas 0 a la ℓ - 1".
    The block's output is ``[x_0, x_1, ..., x_L]``, with
    ``in_channels + L * growth_rate`` channels.
    """

    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4, *, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.num_layers = _count("DenseBlock", "num_layers", num_layers)
        self.in_channels = _count("DenseBlock", "in_channels", in_channels)
        self.growth_rate = _count("DenseBlock", "growth_rate", growth_rate)
        self.out_channels = in_channels + num_layers * growth_rate
        features = [self.input()]
        for i in range(1, num_layers + 1):
            joined = features[0] if i == 1 else self.add(nn.Concat(), *features, name=f"concat{i}")
            layer = DenseLayer(in_channels + (i - 1) * growth_rate, growth_rate, bn_size, lazy=True, dtype=dtype)
            features.append(self.add(layer, joined, name=f"denselayer{i}"))
        self._finish(self.add(nn.Concat(), *features, name="concat"), lazy, rng)


class Transition(Block):
    """DenseNet's transition layer: BN-ReLU-Conv1x1 (``out_channels``) then 2x2 average pooling, stride 2.

    Deck 002_35ce60e4ae78ad9e.txt, DenseNet: "Transition Layers: Conv 1×1 +
    Average Pooling para reducir dimensión"; deck 001_4dad5adb3ac1e716.txt,
    "DenseNet (2)" ("1 × 1 conv; 2 × 2 average pool, stride 2").
    """

    def __init__(self, in_channels, out_channels, *, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("Transition", "in_channels", in_channels)
        self.out_channels = _count("Transition", "out_channels", out_channels)
        x = self.input()
        h = self.add(nn.BatchNorm2d(in_channels, dtype=dtype), x, name="bn")
        h = self.add(nn.ReLU(), h, name="relu")
        h = self.add(conv(in_channels, out_channels, 1, dtype=dtype), h, name="conv")
        self._finish(self.add(nn.AvgPool2d(2, stride=2), h, name="pool"), lazy, rng)


# --------------------------------------------------- MobileNet / EfficientNet
class InvertedResidual(Block):
    """MobileNetV2's inverted residual with linear bottleneck.

    Deck 000_5f24bd8423292174.txt, "Cuellos de botella residuales inversos"
    (the table of Sandler et al., 2018)::

        h x w x k        1x1 conv2d, ReLU6       h x w x (tk)
        h x w x tk       3x3 dwise s=s, ReLU6    h/s x w/s x (tk)
        h/s x w/s x tk   linear 1x1 conv2d       h/s x w/s x k'

    Narrow -> wide -> narrow (the reverse of ResNet's bottleneck), with no
    activation after the projection ("linear"), and the input added back
    when ``stride == 1`` and ``k == k'``. With ``expand_ratio = 1`` the
    first 1x1 is left out.
    """

    def __init__(self, in_channels, out_channels, stride, expand_ratio, *, kernel_size=3, activation=ReLU6,
                 lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("InvertedResidual", "in_channels", in_channels)
        self.out_channels = _count("InvertedResidual", "out_channels", out_channels)
        self.stride = _stride("InvertedResidual", stride)
        self.expand_ratio = _count("InvertedResidual", "expand_ratio", expand_ratio)
        self.hidden_channels = hidden = int(round(in_channels * expand_ratio))
        self.use_residual = stride == 1 and in_channels == out_channels
        x = self.input()
        h = x
        if expand_ratio != 1:
            h = self._conv_unit(h, "expand", in_channels, hidden, 1, activation=activation)
        h = self._conv_unit(h, "depthwise", hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden,
                            activation=activation)
        h = self._conv_unit(h, "project", hidden, out_channels, 1, activation=None)
        if self.use_residual:
            h = self.add(nn.Add(), h, x, name="residual")
        self._finish(h, lazy, rng)


class MBConv(Block):
    """EfficientNet's mobile inverted bottleneck (MBConv``t``, k x k): expand, depthwise, squeeze-excite, project.

    Deck 000_5f24bd8423292174.txt, "EfficientNets (1)": "Emplea bloques de
    cuello de botella residuales inversos"; the rows "MBConv6, k5x5" of the
    EfficientNet-B0 table. As ``InvertedResidual`` with a SiLU (Swish)
    activation, a ``k x k`` depthwise convolution and squeeze-and-excitation
    between the depthwise and the projection, squeezing to
    ``max(1, in_channels * se_ratio)`` channels (``se_ratio=None`` leaves it
    out). Expanded channels are rounded with ``make_divisible``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride, expand_ratio, *, se_ratio=0.25,
                 activation=SiLU, lazy=False, rng=None, dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("MBConv", "in_channels", in_channels)
        self.out_channels = _count("MBConv", "out_channels", out_channels)
        self.kernel_size = _count("MBConv", "kernel_size", kernel_size)
        self.stride = _stride("MBConv", stride)
        self.expand_ratio = _count("MBConv", "expand_ratio", expand_ratio)
        hidden = make_divisible(in_channels * expand_ratio) if expand_ratio != 1 else in_channels
        self.hidden_channels = hidden
        self.use_residual = stride == 1 and in_channels == out_channels
        x = self.input()
        h = x
        if expand_ratio != 1:
            h = self._conv_unit(h, "expand", in_channels, hidden, 1, activation=activation, bn_eps=1e-3)
        h = self._conv_unit(h, "depthwise", hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden,
                            activation=activation, bn_eps=1e-3)
        if se_ratio is not None:
            if not 0 < se_ratio <= 1:
                raise ValueError(f"MBConv: se_ratio must lie in (0, 1] or be None, got {se_ratio!r}")
            squeeze = max(1, int(in_channels * se_ratio))
            se = SqueezeExcitation(hidden, squeeze, activation, init=shape_only, dtype=dtype)
            se.fc1.initializers = se.fc2.initializers = {"weight": "kaiming_normal"}
            h = self.add(se, h, name="se")
        h = self._conv_unit(h, "project", hidden, out_channels, 1, activation=None, bn_eps=1e-3)
        if self.use_residual:
            h = self.add(nn.Add(), h, x, name="residual")
        self._finish(h, lazy, rng)


# ----------------------------------------------------------------- ConvNeXt
class ConvNeXtBlock(Block):
    """ConvNeXt block: depthwise 7x7 -> LayerNorm -> 1x1 (4C) -> GELU -> 1x1 (C) -> layer scale, plus the input.

    Deck 000_5f24bd8423292174.txt, "Bloques ConvNeXt": ConvNeXt "actualiza
    la familia ResNet con bloques cuello de botella residuales inversos"
    (Liu et al., 2022): a large-kernel depthwise convolution first, one
    normalisation, an inverted bottleneck of pointwise convolutions, and a
    learned per-channel scale ``γ`` (starting at ``layer_scale``) on the
    residual branch.
    """

    def __init__(self, channels, *, kernel_size=7, expansion=4, layer_scale=1e-6, lazy=False, rng=None,
                 dtype=np.float32):
        super().__init__(dtype)
        self.channels = c = _count("ConvNeXtBlock", "channels", channels)
        wide = _count("ConvNeXtBlock", "expansion", expansion) * c
        x = self.input()
        h = self.add(conv(c, c, kernel_size, 1, kernel_size // 2, groups=c, bias=True, dtype=dtype), x,
                     name="depthwise")
        h = self.add(LayerNorm2d(c, dtype=dtype), h, name="norm")
        h = self.add(conv(c, wide, 1, bias=True, init="kaiming_uniform", dtype=dtype), h, name="pointwise1")
        h = self.add(GELU(), h, name="gelu")
        h = self.add(conv(wide, c, 1, bias=True, init="kaiming_uniform", dtype=dtype), h, name="pointwise2")
        h = self.add(LayerScale(c, layer_scale, dtype=dtype), h, name="layer_scale")
        self._finish(self.add(nn.Add(), h, x, name="residual"), lazy, rng)


# --------------------------------------------------------------- ShuffleNet
class ShuffleUnit(Block):
    """ShuffleNet unit: grouped 1x1 -> channel shuffle -> depthwise 3x3 -> grouped 1x1, plus a shortcut.

    Deck 002_35ce60e4ae78ad9e.txt, ShuffleNet: "Grouped convolutions +
    channel shuffle" (Zhang et al., 2018, Fig. 2). The bottleneck has
    ``out_channels // 4`` channels. With ``stride=1`` the input is added
    (``in_channels == out_channels``); with ``stride=2`` the shortcut is a
    3x3 average pooling (stride 2) *concatenated* with the branch, which then
    produces ``out_channels - in_channels`` maps. ReLU follows the first
    1x1 and the join, not the depthwise convolution. ``grouped_first=False``
    makes the first 1x1 dense (the paper does so where the input has few
    channels, at the start of stage 2).
    """

    def __init__(self, in_channels, out_channels, groups=3, stride=1, *, grouped_first=True, lazy=False, rng=None,
                 dtype=np.float32):
        super().__init__(dtype)
        self.in_channels = _count("ShuffleUnit", "in_channels", in_channels)
        self.out_channels = _count("ShuffleUnit", "out_channels", out_channels)
        self.groups = g = _count("ShuffleUnit", "groups", groups)
        self.stride = _stride("ShuffleUnit", stride)
        bottleneck = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if stride == 1 and in_channels != out_channels:
            raise ValueError(
                f"ShuffleUnit: with stride 1 the input is added, so in_channels={in_channels} must equal "
                f"out_channels={out_channels}"
            )
        if branch_out < 1:
            raise ValueError(
                f"ShuffleUnit: with stride 2 the branch makes out_channels - in_channels = {out_channels} - "
                f"{in_channels} = {branch_out} maps; it must be >= 1"
            )
        first_groups = g if grouped_first else 1
        for what, count, divisor in (("out_channels // 4", bottleneck, g), ("the branch output", branch_out, g),
                                     ("in_channels", in_channels, first_groups)):
            if count < 1 or count % divisor:
                raise ValueError(f"ShuffleUnit: {what} = {count} must be a positive multiple of groups={divisor}")
        x = self.input()
        h = self._conv_unit(x, "gconv1", in_channels, bottleneck, 1, groups=first_groups)
        h = self.add(ChannelShuffle(g), h, name="shuffle")
        h = self._conv_unit(h, "depthwise", bottleneck, bottleneck, 3, stride, 1, groups=bottleneck, activation=None)
        h = self._conv_unit(h, "gconv2", bottleneck, branch_out, 1, groups=g, activation=None)
        if stride == 1:
            y = self.add(nn.Add(), h, x, name="residual")
        else:
            shortcut = self.add(nn.AvgPool2d(3, stride=2, padding=1), x, name="shortcut")
            y = self.add(nn.Concat(), shortcut, h, name="concat")
        self._finish(self.add(nn.ReLU(), y, name="relu"), lazy, rng)

