"""The networks of the architecture survey, built from ``minicnn.nn`` layers and ``minicnn.models.blocks``.

Deck 001_4dad5adb3ac1e716.txt ("Redes convolucionales") and deck
002_35ce60e4ae78ad9e.txt ("Arquitecturas de redes convolucionales") walk
from LeNet to EfficientNet; deck 004_d4430ea77d2b90c2.txt quotes their
sizes (LeNet 60k, AlexNet 62.3M, VGG-16 138.4M parameters). Each
constructor here returns a ``Network`` (a ``Sequential`` whose layers carry
the papers' names: ``conv1``, ``inception3a``, ``conv4_6``,
``denseblock3``...), so ``summary()`` prints the papers' tables: output
shape, parameters and multiply-accumulates per layer or block, from
``minicnn.shapes``.

The big networks are built **lazy** by default: their weights are
shape-only (``minicnn.nn.init.shape_only``), so building VGG-16 takes
milliseconds and no weight memory, ``summary()`` is instant and
``sum(p.data.size for p in model.parameters())`` is exact.
``model.materialize(seed)`` (or ``lazy=False``) draws real weights so the
model can run.

Parameter counts match the reference implementations of torchvision
(``torchvision.models``, the "num_params" of each weights entry); where the
paper and torchvision differ the constructor says which it follows.
"""

from __future__ import annotations

import math

import numpy as np

from .. import nn
from ..graph import Sequential
from ..nn.variants import LayerNorm2d, LocalResponseNorm, ReLU6, SiLU
from . import blocks
from .blocks import (
    BasicBlock,
    Bottleneck,
    Branches,
    ConvNeXtBlock,
    DenseBlock,
    Inception,
    InceptionAux,
    InvertedResidual,
    MBConv,
    ShuffleUnit,
    Transition,
    conv,
    linear,
    make_divisible,
)

__all__ = [
    "Network",
    "GoogLeNet",
    "alexnet",
    "zfnet",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "densenet121",
    "densenet169",
    "densenet201",
    "densenet161",
    "mobilenet_v2",
    "efficientnet",
    "efficientnet_b0",
    "convnext_tiny",
    "shufflenet",
    "EFFICIENTNET_B0_STAGES",
    "MOBILENET_V2_SETTINGS",
    "VGG_CONFIGS",
]


class Network(Sequential):
    """A ``Sequential`` that knows its input shape and can be built shape-only.

    ``summary()``, ``output_shapes()`` and ``named_output_shapes()`` default
    to the network's ``input_shape`` (one sample, no batch axis, e.g.
    ``(3, 224, 224)``); ``multiply_adds()`` is the per-sample count the
    papers call FLOPs (one multiply-add counted once).
    """

    def __init__(self, layers, *, name, input_shape):
        super().__init__(layers)
        self.name = name
        self.input_shape = tuple(int(s) for s in input_shape)

    def forward(self, x):
        self.refuse_lazy()
        return super().forward(x)

    def _shape(self, input_shape):
        return self.input_shape if input_shape is None else tuple(int(s) for s in input_shape)

    def summary(self, input_shape=None):
        return super().summary(self._shape(input_shape))

    def output_shapes(self, input_shape=None):
        return super().output_shapes(self._shape(input_shape))

    def named_output_shapes(self, input_shape=None):
        """``{layer name: per-sample output shape}`` in layer order."""
        names = [name for name, _ in self._layers]
        return dict(zip(names, self.output_shapes(input_shape)))

    def multiply_adds(self, input_shape=None):
        """Multiply-accumulates of one forward pass on one sample (the "FLOPs" of the ResNet table)."""
        return self.macs((1, *self._shape(input_shape)))

    def depth(self):
        """Layers with weights on the longest path (GoogLeNet's "depth"; 16 for VGG-16, 50 for ResNet-50)."""
        return blocks.layer_depth(self)

    def extra_repr(self):
        return f"name={self.name!r}, input_shape={self.input_shape}"


# ----------------------------------------------------------------- helpers
def _check_classes(fn, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{fn}: num_classes must be a positive int, got {num_classes!r}")
    return int(num_classes)


def _finish(model, lazy, seed):
    if not isinstance(lazy, bool):
        raise TypeError(f"{model.name}: lazy must be True or False, got {lazy!r}")
    if not lazy:
        model.materialize(seed)
    return model


def _conv_bn_act(in_channels, out_channels, kernel_size, stride=1, padding=0, *, groups=1, activation=nn.ReLU,
                 bn_eps=1e-5, dtype=np.float32):
    layers = {
        "conv": conv(in_channels, out_channels, kernel_size, stride, padding, groups=groups, dtype=dtype),
        "bn": nn.BatchNorm2d(out_channels, eps=bn_eps, dtype=dtype),
    }
    if activation is not None:
        layers["act"] = activation()
    return Sequential(layers)


# --------------------------------------------------------- AlexNet, ZFNet
def alexnet(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """AlexNet as the single-tower listing of deck 002_35ce60e4ae78ad9e.txt ("Full (simplified) AlexNet architecture").

    ::

        [227x227x3] INPUT
        [55x55x96]  CONV1: 96 11x11 filters at stride 4, pad 0
        [27x27x96]  MAX POOL1: 3x3 filters at stride 2
        [27x27x96]  NORM1
        [27x27x256] CONV2: 256 5x5 filters at stride 1, pad 2
        [13x13x256] MAX POOL2: 3x3 filters at stride 2
        [13x13x256] NORM2
        [13x13x384] CONV3: 384 3x3 filters at stride 1, pad 1
        [13x13x384] CONV4: 384 3x3 filters at stride 1, pad 1
        [13x13x256] CONV5: 256 3x3 filters at stride 1, pad 1
        [6x6x256]   MAX POOL3: 3x3 filters at stride 2
        [4096] FC6, [4096] FC7, [1000] FC8

    (The slide's "266" filters in CONV2 and "334" in CONV4 are typos for 256
    and 384: the shapes next to them say so.) ReLU after every convolution
    and hidden FC layer, dropout 0.5 before FC6 and FC7, NORM as
    ``LocalResponseNorm(5, α=1e-4, β=0.75, k=2)`` (Krizhevsky et al., 2012).
    62,378,344 parameters (deck 004_d4430ea77d2b90c2.txt: "62.3 millones").
    """
    return _alexnet_family("alexnet", num_classes, lazy, seed, dtype, conv1=(11, 4, 0), pool_padding=0,
                           conv2=(1, 2), input_shape=(3, 227, 227))


def zfnet(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """ZFNet (Zeiler & Fergus, 2014, Fig. 3): AlexNet with a 7x7 stride-2 first layer and a stride-2 second layer.

    Deck 001_4dad5adb3ac1e716.txt, "Arquitecturas de redes convolucionales:
    ZFNet": "Muy similar a AlexNet pero usa filtros más pequeños con menor
    desplazamiento". From a 224x224x3 input: 96 7x7/2 -> 110x110, 3x3/2 max
    pool -> 55x55, 256 5x5/2 -> 26x26, 3x3/2 max pool -> 13x13, then 384,
    384, 256 3x3 filters -> 13x13, 3x3/2 max pool -> 6x6x256, FC 4096, 4096,
    classes. Padding 1 in conv1 and the first two poolings reproduces the
    figure's sizes.
    """
    return _alexnet_family("zfnet", num_classes, lazy, seed, dtype, conv1=(7, 2, 1), pool_padding=1,
                           conv2=(2, 0), input_shape=(3, 224, 224))


def _alexnet_family(name, num_classes, lazy, seed, dtype, conv1, pool_padding, conv2, input_shape):
    """AlexNet's layers; ``conv1`` = (kernel, stride, padding), ``conv2`` = (stride, padding) and the
    padding of the first two poolings are where ZFNet differs."""
    classes = _check_classes(name, num_classes)
    lrn = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}
    rng = np.random.default_rng(seed)
    model = Network(
        {
            "conv1": conv(3, 96, *conv1, bias=True, dtype=dtype), "relu1": nn.ReLU(),
            "pool1": nn.MaxPool2d(3, stride=2, padding=pool_padding), "norm1": LocalResponseNorm(**lrn),
            "conv2": conv(96, 256, 5, *conv2, bias=True, dtype=dtype), "relu2": nn.ReLU(),
            "pool2": nn.MaxPool2d(3, stride=2, padding=pool_padding), "norm2": LocalResponseNorm(**lrn),
            "conv3": conv(256, 384, 3, 1, 1, bias=True, dtype=dtype), "relu3": nn.ReLU(),
            "conv4": conv(384, 384, 3, 1, 1, bias=True, dtype=dtype), "relu4": nn.ReLU(),
            "conv5": conv(384, 256, 3, 1, 1, bias=True, dtype=dtype), "relu5": nn.ReLU(),
            "pool3": nn.MaxPool2d(3, stride=2),
            "flatten": nn.Flatten(),
            "drop6": nn.Dropout(0.5, rng=rng), "fc6": linear(256 * 6 * 6, 4096, dtype=dtype), "relu6": nn.ReLU(),
            "drop7": nn.Dropout(0.5, rng=rng), "fc7": linear(4096, 4096, dtype=dtype), "relu7": nn.ReLU(),
            "fc8": linear(4096, classes, init="xavier_uniform", dtype=dtype),
        },
        name=name,
        input_shape=input_shape,
    )
    return _finish(model, lazy, seed)


# --------------------------------------------------------------------- VGG
#: Simonyan & Zisserman (2014), Table 1: output channels of each 3x3 convolution, "M" a 2x2/2 max pool.
VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def _vgg(name, num_classes, lazy, seed, dtype, batch_norm):
    classes = _check_classes(name, num_classes)
    rng = np.random.default_rng(seed)
    layers, channels, stage, index = {}, 3, 1, 1
    for item in VGG_CONFIGS[name]:
        if item == "M":
            layers[f"pool{stage}"] = nn.MaxPool2d(2, stride=2)
            stage, index = stage + 1, 1
            continue
        tag = f"{stage}_{index}"
        layers[f"conv{tag}"] = conv(channels, item, 3, 1, 1, bias=not batch_norm, dtype=dtype)
        if batch_norm:
            layers[f"bn{tag}"] = nn.BatchNorm2d(item, dtype=dtype)
        layers[f"relu{tag}"] = nn.ReLU()
        channels, index = item, index + 1
    layers.update(
        {
            "flatten": nn.Flatten(),
            "fc6": linear(512 * 7 * 7, 4096, dtype=dtype), "relu6": nn.ReLU(), "drop6": nn.Dropout(0.5, rng=rng),
            "fc7": linear(4096, 4096, dtype=dtype), "relu7": nn.ReLU(), "drop7": nn.Dropout(0.5, rng=rng),
            "fc8": linear(4096, classes, init="xavier_uniform", dtype=dtype),
        }
    )
    model = Network(layers, name=name + ("_bn" if batch_norm else ""), input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)


def vgg11(num_classes=1000, lazy=True, *, batch_norm=False, seed=0, dtype=np.float32):
    """VGG-11 (configuration A): 8 convolutions 3x3/1 in 5 stages with 2x2/2 max pooling, then FC 4096-4096-classes.

    Deck 002_35ce60e4ae78ad9e.txt, "VGG": "se repiten bloques
    convolución(3x3)-pooling(2x2) para construir diferentes versiones: VGG-11,
    VGG-13, VGG-16, VGG-19". 132,863,336 parameters (torchvision ``vgg11``).
    """
    return _vgg("vgg11", num_classes, lazy, seed, dtype, batch_norm)


def vgg13(num_classes=1000, lazy=True, *, batch_norm=False, seed=0, dtype=np.float32):
    """VGG-13 (configuration B): 10 convolutions + 3 FC; 133,047,848 parameters (torchvision ``vgg13``)."""
    return _vgg("vgg13", num_classes, lazy, seed, dtype, batch_norm)


def vgg16(num_classes=1000, lazy=True, *, batch_norm=False, seed=0, dtype=np.float32):
    """VGG-16 (configuration D): 13 convolutions + 3 FC, 138,357,544 parameters.

    Deck 004_d4430ea77d2b90c2.txt, "VGGNet-16": "Total de parámetros: 138.4
    millones. Total de capas: 16 capas (13 convolucionales y 3 completamente
    conectadas)"; input 224x224 color, 1000 classes.
    """
    return _vgg("vgg16", num_classes, lazy, seed, dtype, batch_norm)


def vgg19(num_classes=1000, lazy=True, *, batch_norm=False, seed=0, dtype=np.float32):
    """VGG-19 (configuration E): 16 convolutions + 3 FC (deck 001: "19 capas").

    143,667,240 parameters (torchvision ``vgg19``).
    """
    return _vgg("vgg19", num_classes, lazy, seed, dtype, batch_norm)


# --------------------------------------------------------------- GoogLeNet
#: Deck 001_4dad5adb3ac1e716.txt, "GoogLeNet (2)": #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj.
GOOGLENET_INCEPTIONS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}
#: The 3x3/2 max pools between GoogLeNet's stages: after inception (3b) -> 14x14, after (4e) -> 7x7.
STAGE_END_POOLS = {"inception3b": "pool3", "inception4e": "pool4"}


class GoogLeNet(Network):
    """A ``Network`` with auxiliary classifiers hanging off some of its layers, used only while training.

    In training mode ``forward(x)`` returns ``(logits, aux_1, aux_2, ...)``
    (the heads in the order of the layers they hang from) and ``backward``
    takes one gradient per output: each head's gradient is added to the
    gradient flowing back into the layer it hangs from. In evaluation mode
    the heads are skipped and ``forward`` returns the logits alone. The total
    loss is ``L(logits) + aux_weight * Σ L(aux_i)`` (``aux_weight`` = 0.3,
    deck 002_35ce60e4ae78ad9e.txt, "GoogLeNet - Inception": "Peso de 0.3 en
    la loss total"), so the heads' gradients carry that factor;
    ``training_loss(outputs, labels)`` computes that total and those gradients.
    """

    def __init__(self, layers, aux_heads, *, name, input_shape, aux_weight=0.3):
        super().__init__(layers, name=name, input_shape=input_shape)
        names = [n for n, _ in self._layers]
        self.aux_weight = float(aux_weight)
        self.aux_attach = []
        for i, (attach, head) in enumerate(aux_heads.items(), start=1):
            if attach not in names:
                raise ValueError(f"GoogLeNet: an auxiliary head hangs from {attach!r}, which is not a layer: {names}")
            setattr(self, f"aux{i}", head)
            self.aux_attach.append((attach, f"aux{i}"))
        self._aux_ran = False

    def forward(self, x):
        self.refuse_lazy()
        heads = dict(self.aux_attach) if self.training else {}
        aux = []
        for name, layer in self._layers:
            x = layer.forward(x)
            if name in heads:
                aux.append(getattr(self, heads[name]).forward(x))
        self._aux_ran = bool(aux)
        return (x, *aux) if aux else x

    def backward(self, dy, *, need_dx=True):
        heads = {}
        if self._aux_ran:
            if not isinstance(dy, (tuple, list)) or len(dy) != 1 + len(self.aux_attach):
                raise TypeError(
                    f"GoogLeNet.backward: the training forward returned {1 + len(self.aux_attach)} outputs "
                    "(logits and auxiliary logits); pass one gradient for each, as a tuple"
                )
            dy, *daux = dy
            heads = {attach: (head, d) for (attach, head), d in zip(self.aux_attach, daux)}
        self._aux_ran = False
        for name, layer in reversed(self._layers):
            if name in heads:
                head, d = heads[name]
                dy = dy + getattr(self, head).backward(d)
            dy = layer.backward(dy)
        return dy

    def training_loss(self, outputs, labels, loss=nn.SoftmaxCrossEntropy):
        """``L(logits) + aux_weight * Σ L(aux_i)`` and the gradients ``backward`` takes, for one training step.

        ``outputs`` is what ``forward`` returned: the tuple ``(logits, aux_1, ...)``
        in training mode, the logits alone in evaluation mode (then the loss is
        ``L(logits)`` and the gradient one array). ``loss`` makes one loss
        object per output (``loss_fn(outputs, labels)`` a float,
        ``loss_fn.backward()`` its gradient). Returns ``(total, grads)``; a step is
        ``total, grads = model.training_loss(model(x), labels)``,
        ``model.backward(grads)``, ``optimizer.step()``.
        """
        if not isinstance(outputs, tuple):
            loss_fn = loss()
            return loss_fn(outputs, labels), loss_fn.backward()
        if len(outputs) != 1 + len(self.aux_attach):
            raise ValueError(
                f"GoogLeNet.training_loss: expected {1 + len(self.aux_attach)} outputs (logits and one per auxiliary "
                f"head), got {len(outputs)}"
            )
        total, grads = 0.0, []
        for i, out in enumerate(outputs):
            weight = 1.0 if i == 0 else self.aux_weight
            loss_fn = loss()
            total += weight * loss_fn(out, labels)
            grads.append(weight * loss_fn.backward())
        return total, tuple(grads)

    def num_parameters(self):
        """Every parameter, the auxiliary heads' included (``summary`` lists the inference network only)."""
        return sum(int(p.data.size) for p in self.parameters())


def googlenet(num_classes=1000, lazy=True, *, variant="paper", aux_logits=False, seed=0, dtype=np.float32):
    """GoogLeNet (Inception v1), the table of deck 001_4dad5adb3ac1e716.txt ("GoogLeNet (2)"), without the auxiliary classifiers.

    Rows ``conv1`` (7x7/2, 64), ``pool1`` (3x3/2), ``conv2`` (1x1 reduce 64
    then 3x3/1 192), ``pool2``, ``inception3a``..``inception5b``, with 3x3/2
    max pooling between the stages, ``avgpool`` 7x7/1, dropout 40% and a
    linear layer: 22 layers with weights on the longest path. The max pools
    pad by 1 so that 112 -> 56 -> 28 -> 14 -> 7 as in the table.

    ``variant="paper"``: convolutions with biases and ReLU, local response
    normalisation after ``pool1`` and ``conv2`` (Szegedy et al., 2014,
    Fig. 3), 5x5 convolutions in the third branch.
    ``variant="torchvision"``: torchvision's ``googlenet`` (BatchNorm after
    every bias-free convolution, no LRN, 3x3 in the "5x5" branch, dropout
    0.2): 6,624,904 parameters. Its max pools round up (``ceil_mode=True``,
    no padding; ``pool4`` is 2x2/2) and the average pool is global, as
    torchvision's, so every input size gives torchvision's shapes.

    ``aux_logits=True`` adds the two auxiliary classifiers (``InceptionAux``)
    on the outputs of ``inception4a`` and ``inception4d`` and returns a
    ``GoogLeNet`` (13,004,888 parameters in the torchvision variant).
    """
    classes = _check_classes("googlenet", num_classes)
    if variant not in ("paper", "torchvision"):
        raise ValueError(f"googlenet: variant must be 'paper' or 'torchvision', got {variant!r}")
    paper = variant == "paper"
    rng = np.random.default_rng(seed)
    lrn = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}

    def unit(name, in_channels, out_channels, kernel_size, stride=1, padding=0):
        if paper:
            return {name: conv(in_channels, out_channels, kernel_size, stride, padding, bias=True, dtype=dtype),
                    f"{name}_relu": nn.ReLU()}
        return {name: conv(in_channels, out_channels, kernel_size, stride, padding, dtype=dtype),
                f"{name}_bn": nn.BatchNorm2d(out_channels, eps=1e-3, dtype=dtype), f"{name}_relu": nn.ReLU()}

    def pool(kernel_size=3):
        # torchvision rounds up (ceil_mode) where the paper's table pads by 1; both give 112 -> 56 -> 28 -> 14 -> 7
        return nn.MaxPool2d(3, stride=2, padding=1) if paper else nn.MaxPool2d(kernel_size, stride=2, ceil_mode=True)

    layers = {"conv1": Sequential(unit("conv", 3, 64, 7, 2, 3)), "pool1": pool()}
    if paper:
        layers["norm1"] = LocalResponseNorm(**lrn)
    layers["conv2"] = Sequential({**unit("reduce", 64, 64, 1), **unit("conv", 64, 192, 3, 1, 1)})
    if paper:
        layers["norm2"] = LocalResponseNorm(**lrn)
    layers["pool2"] = pool()
    for name, channels in GOOGLENET_INCEPTIONS.items():
        layers[name] = Inception(*channels, batch_norm=not paper, kernel_5x5=5 if paper else 3, ceil_mode=not paper,
                                 lazy=True, dtype=dtype)
        if name in STAGE_END_POOLS:
            layers[STAGE_END_POOLS[name]] = pool(3 if STAGE_END_POOLS[name] == "pool3" else 2)
    layers.update(
        {
            "avgpool": nn.AvgPool2d(7, stride=1) if paper else nn.GlobalAvgPool2d(),
            "dropout": nn.Dropout(0.4 if paper else 0.2, rng=rng),
            "flatten": nn.Flatten(),
            "linear": linear(1024, classes, init="xavier_uniform", dtype=dtype),
        }
    )
    name = "googlenet" if paper else "googlenet_torchvision"
    if not aux_logits:
        return _finish(Network(layers, name=name, input_shape=(3, 224, 224)), lazy, seed)
    heads = {attach: InceptionAux(layers[attach].out_channels, classes,
                                  batch_norm=not paper, lazy=True, rng=rng, dtype=dtype)
             for attach in ("inception4a", "inception4d")}
    return _finish(GoogLeNet(layers, heads, name=name, input_shape=(3, 224, 224)), lazy, seed)


def _inception_a(in_channels, pool_features):
    return (
        (("conv", 64, 1, 1, 0),),
        (("conv", 48, 1, 1, 0), ("conv", 64, 5, 1, 2)),
        (("conv", 64, 1, 1, 0), ("conv", 96, 3, 1, 1), ("conv", 96, 3, 1, 1)),
        (("avgpool", 3, 1, 1), ("conv", pool_features, 1, 1, 0)),
    )


def _inception_b():
    return (
        (("conv", 384, 3, 2, 0),),
        (("conv", 64, 1, 1, 0), ("conv", 96, 3, 1, 1), ("conv", 96, 3, 2, 0)),
        (("maxpool", 3, 2, 0),),
    )


def _inception_c(c7):
    row, col = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
    return (
        (("conv", 192, 1, 1, 0),),
        (("conv", c7, 1, 1, 0), ("conv", c7, *row), ("conv", 192, *col)),
        (("conv", c7, 1, 1, 0), ("conv", c7, *col), ("conv", c7, *row), ("conv", c7, *col), ("conv", 192, *row)),
        (("avgpool", 3, 1, 1), ("conv", 192, 1, 1, 0)),
    )


def _inception_d():
    return (
        (("conv", 192, 1, 1, 0), ("conv", 320, 3, 2, 0)),
        (("conv", 192, 1, 1, 0), ("conv", 192, (1, 7), 1, (0, 3)), ("conv", 192, (7, 1), 1, (3, 0)),
         ("conv", 192, 3, 2, 0)),
        (("maxpool", 3, 2, 0),),
    )


def _inception_e():
    split = ("fork", (("conv", 384, (1, 3), 1, (0, 1)),), (("conv", 384, (3, 1), 1, (1, 0)),))
    return (
        (("conv", 320, 1, 1, 0),),
        (("conv", 384, 1, 1, 0), split),
        (("conv", 448, 1, 1, 0), ("conv", 384, 3, 1, 1), split),
        (("avgpool", 3, 1, 1), ("conv", 192, 1, 1, 0)),
    )


def inception_v3(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """Inception v3 (Szegedy et al., 2016) for 299x299 inputs, without the auxiliary classifier.

    Deck 001_4dad5adb3ac1e716.txt, "GoogLeNet (1)": "Versiones posteriores
    fueron más profundas. Por ej. Inception v3 es de 48 capas": counted as
    layers with weights on the longest path (``depth()``), it has 48: five
    stem convolutions, three ``Mixed_5`` modules of depth 3, ``Mixed_6a``
    (3), four ``Mixed_6`` modules with factorised 7x7 convolutions (5 each),
    ``Mixed_7a`` (4), two ``Mixed_7`` modules (3 each) and the classifier.
    Every convolution is bias-free with BatchNorm and ReLU (``Branches``).
    23,834,568 parameters: torchvision's ``inception_v3`` (27,161,264) less
    its auxiliary classifier (1x1 conv 768->128 + BN, 5x5 conv 128->768 + BN,
    fc 768->1000: 3,326,696).
    """
    classes = _check_classes("inception_v3", num_classes)
    rng = np.random.default_rng(seed)

    def stem(in_channels, out_channels, kernel_size, stride=1, padding=0):
        return _conv_bn_act(in_channels, out_channels, kernel_size, stride, padding, bn_eps=1e-3, dtype=dtype)

    layers = {
        "conv1a": stem(3, 32, 3, 2), "conv2a": stem(32, 32, 3), "conv2b": stem(32, 64, 3, 1, 1),
        "pool1": nn.MaxPool2d(3, stride=2),
        "conv3b": stem(64, 80, 1), "conv4a": stem(80, 192, 3),
        "pool2": nn.MaxPool2d(3, stride=2),
    }
    modules = [("mixed5b", 192, _inception_a(192, 32)), ("mixed5c", 256, _inception_a(256, 64)),
               ("mixed5d", 288, _inception_a(288, 64)), ("mixed6a", 288, _inception_b()),
               ("mixed6b", 768, _inception_c(128)), ("mixed6c", 768, _inception_c(160)),
               ("mixed6d", 768, _inception_c(160)), ("mixed6e", 768, _inception_c(192)),
               ("mixed7a", 768, _inception_d()), ("mixed7b", 1280, _inception_e()), ("mixed7c", 2048, _inception_e())]
    channels = 192
    for name, in_channels, paths in modules:
        layers[name] = Branches(in_channels, paths, lazy=True, dtype=dtype)
        channels = layers[name].out_channels
    layers.update(
        {
            "avgpool": nn.GlobalAvgPool2d(),
            "dropout": nn.Dropout(0.5, rng=rng),
            "flatten": nn.Flatten(),
            "fc": linear(channels, classes, dtype=dtype),
        }
    )
    model = Network(layers, name="inception_v3", input_shape=(3, 299, 299))
    return _finish(model, lazy, seed)


# ------------------------------------------------------------------ ResNet
def _resnet(name, block, counts, num_classes, lazy, seed, dtype, stride_on="1x1"):
    """Deck 001_4dad5adb3ac1e716.txt, "ResNet (2)": conv1 7x7/2 64, 3x3/2 max pool, stages conv2_x..conv5_x, average pool, fc."""
    classes = _check_classes(name, num_classes)
    layers = {
        "conv1": conv(3, 64, 7, 2, 3, dtype=dtype),
        "bn1": nn.BatchNorm2d(64, dtype=dtype),
        "relu": nn.ReLU(),
        "maxpool": nn.MaxPool2d(3, stride=2, padding=1),
    }
    channels = 64
    for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts), start=2):
        for i in range(1, count + 1):
            stride = 2 if (i == 1 and stage > 2) else 1
            if block is BasicBlock:
                unit = BasicBlock(channels, width, stride, lazy=True, dtype=dtype)
            else:
                unit = Bottleneck(channels, width, stride, stride_on=stride_on, lazy=True, dtype=dtype)
            layers[f"conv{stage}_{i}"] = unit
            channels = unit.out_channels
    layers.update(
        {"avgpool": nn.GlobalAvgPool2d(), "flatten": nn.Flatten(), "fc": linear(channels, classes, dtype=dtype)}
    )
    model = Network(layers, name=name, input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)


def resnet18(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """ResNet-18: basic blocks ``[2, 2, 2, 2]``; 11,689,512 parameters (torchvision ``resnet18``), 1.8 x 10⁹ multiply-adds."""
    return _resnet("resnet18", BasicBlock, (2, 2, 2, 2), num_classes, lazy, seed, dtype)


def resnet34(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """ResNet-34: basic blocks ``[3, 4, 6, 3]``; 21,797,672 parameters (torchvision ``resnet34``), 3.6 x 10⁹ multiply-adds."""
    return _resnet("resnet34", BasicBlock, (3, 4, 6, 3), num_classes, lazy, seed, dtype)


def resnet50(num_classes=1000, lazy=True, *, stride_on="1x1", seed=0, dtype=np.float32):
    """ResNet-50: bottlenecks ``[3, 4, 6, 3]``; 25,557,032 parameters (torchvision ``resnet50``).

    ``stride_on="1x1"`` (default) is the original paper's layout, 3.8 x 10⁹
    multiply-adds as in the table; ``"3x3"`` is torchvision's ("v1.5").
    """
    return _resnet("resnet50", Bottleneck, (3, 4, 6, 3), num_classes, lazy, seed, dtype, stride_on)


def resnet101(num_classes=1000, lazy=True, *, stride_on="1x1", seed=0, dtype=np.float32):
    """ResNet-101: bottlenecks ``[3, 4, 23, 3]``; 44,549,160 parameters (torchvision), 7.6 x 10⁹ multiply-adds."""
    return _resnet("resnet101", Bottleneck, (3, 4, 23, 3), num_classes, lazy, seed, dtype, stride_on)


def resnet152(num_classes=1000, lazy=True, *, stride_on="1x1", seed=0, dtype=np.float32):
    """ResNet-152: bottlenecks ``[3, 8, 36, 3]``; 60,192,808 parameters (torchvision), 11.3 x 10⁹ multiply-adds."""
    return _resnet("resnet152", Bottleneck, (3, 8, 36, 3), num_classes, lazy, seed, dtype, stride_on)


# ---------------------------------------------------------------- DenseNet
def _densenet(name, growth_rate, block_config, init_features, num_classes, lazy, seed, dtype, bn_size=4):
    """Deck 001_4dad5adb3ac1e716.txt, "DenseNet (2)": conv 7x7/2, max pool 3x3/2, four dense blocks with
    transitions (1x1 conv halving the channels, 2x2/2 average pool) between them, 7x7 global average pool, fc."""
    classes = _check_classes(name, num_classes)
    layers = {
        "conv0": conv(3, init_features, 7, 2, 3, dtype=dtype),
        "norm0": nn.BatchNorm2d(init_features, dtype=dtype),
        "relu0": nn.ReLU(),
        "pool0": nn.MaxPool2d(3, stride=2, padding=1),
    }
    channels = init_features
    for i, count in enumerate(block_config, start=1):
        block = DenseBlock(count, channels, growth_rate, bn_size, lazy=True, dtype=dtype)
        layers[f"denseblock{i}"] = block
        channels = block.out_channels
        if i != len(block_config):
            layers[f"transition{i}"] = Transition(channels, channels // 2, lazy=True, dtype=dtype)
            channels //= 2
    layers.update(
        {
            "norm5": nn.BatchNorm2d(channels, dtype=dtype),
            "relu5": nn.ReLU(),
            "pool5": nn.GlobalAvgPool2d(),
            "flatten": nn.Flatten(),
            "classifier": linear(channels, classes, dtype=dtype),
        }
    )
    model = Network(layers, name=name, input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)


def densenet121(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """DenseNet-121 (k = 32, blocks 6-12-24-16); 7,978,856 parameters (torchvision ``densenet121``)."""
    return _densenet("densenet121", 32, (6, 12, 24, 16), 64, num_classes, lazy, seed, dtype)


def densenet169(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """DenseNet-169 (k = 32, blocks 6-12-32-32); 14,149,480 parameters (torchvision ``densenet169``)."""
    return _densenet("densenet169", 32, (6, 12, 32, 32), 64, num_classes, lazy, seed, dtype)


def densenet201(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """DenseNet-201 (k = 32, blocks 6-12-48-32); 20,013,928 parameters (torchvision ``densenet201``)."""
    return _densenet("densenet201", 32, (6, 12, 48, 32), 64, num_classes, lazy, seed, dtype)


def densenet161(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """DenseNet-161 (k = 48, 96 initial maps, blocks 6-12-36-24); 28,681,000 parameters (torchvision ``densenet161``)."""
    return _densenet("densenet161", 48, (6, 12, 36, 24), 96, num_classes, lazy, seed, dtype)


# --------------------------------------------------------------- MobileNetV2
#: Sandler et al. (2018), Table 2: expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                         (6, 320, 1, 1))


def mobilenet_v2(num_classes=1000, lazy=True, *, width_mult=1.0, seed=0, dtype=np.float32):
    """MobileNetV2: conv 3x3/2 (32), 17 inverted residual blocks, conv 1x1 (1280), pooling, dropout 0.2, fc.

    Deck 000_5f24bd8423292174.txt, "Cuellos de botella residuales inversos";
    deck 002_35ce60e4ae78ad9e.txt, "MobileNet" ("MobileNetV2: inverted
    convolutions"). Blocks ``block1``..``block17`` follow
    ``MOBILENET_V2_SETTINGS``; channels scale by ``width_mult`` (rounded to
    multiples of 8). 3,504,872 parameters (torchvision ``mobilenet_v2``).
    """
    classes = _check_classes("mobilenet_v2", num_classes)
    rng = np.random.default_rng(seed)
    channels = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    layers = {"conv0": _conv_bn_act(3, channels, 3, 2, 1, activation=ReLU6, dtype=dtype)}
    index = 1
    for t, c, n, s in MOBILENET_V2_SETTINGS:
        out = make_divisible(c * width_mult)
        for i in range(n):
            layers[f"block{index}"] = InvertedResidual(channels, out, s if i == 0 else 1, t, lazy=True, dtype=dtype)
            channels, index = out, index + 1
    layers.update(
        {
            "conv_last": _conv_bn_act(channels, last, 1, activation=ReLU6, dtype=dtype),
            "pool": nn.GlobalAvgPool2d(),
            "flatten": nn.Flatten(),
            "dropout": nn.Dropout(0.2, rng=rng),
            "classifier": linear(last, classes, dtype=dtype),
        }
    )
    model = Network(layers, name="mobilenet_v2", input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)


# -------------------------------------------------------------- EfficientNet
#: Deck 000_5f24bd8423292174.txt, "EfficientNets (3)", Table 1 (EfficientNet-B0), stages 2-8:
#: (expansion t, kernel k, first stride, output channels, layers).
EFFICIENTNET_B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
                          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))

#: Tan & Le (2019), eq. 3 and Section 4.2: α = 1.2, β = 1.1, γ = 1.15, found by grid search with φ = 1.
COMPOUND_COEFFICIENTS = (1.2, 1.1, 1.15)


def efficientnet(phi=0, num_classes=1000, lazy=True, *, alpha=1.2, beta=1.1, gamma=1.15, dropout=0.2, seed=0,
                 dtype=np.float32):
    """EfficientNet-B0 scaled by the compound coefficient ``φ``: depth ``α^φ``, width ``β^φ``, resolution ``γ^φ``.

    Deck 004_d4430ea77d2b90c2.txt and deck 002_35ce60e4ae78ad9e.txt,
    "EfficientNet": ``d = α^φ, w = β^φ, r = γ^φ`` subject to
    ``α·β²·γ² ≈ 2``, so FLOPs grow about ``2^φ``. Stage ``i`` gets
    ``ceil(d·L_i)`` layers and ``make_divisible(w·C_i)`` channels; the input
    is ``round(224·r)`` pixels square. ``φ = 0`` is B0 (Table 1 of deck
    000, "EfficientNets (3)"), 5,288,548 parameters (torchvision
    ``efficientnet_b0``). (The released B1-B7 use hand-rounded
    coefficients, not exactly ``α^φ, β^φ, γ^φ``.)

    Layers are named by the table's stages: ``stage1`` (conv 3x3/2),
    ``stage2_1`` ... ``stage8_1`` (MBConv blocks), ``stage9_conv`` (conv
    1x1), ``stage9_pool``, ``stage9_fc``. ``model.stages`` lists, per stage,
    the operator, the input resolution, the output channels and the layer
    names.
    """
    classes = _check_classes("efficientnet", num_classes)
    if isinstance(phi, bool) or not isinstance(phi, (int, float, np.integer, np.floating)) or phi < 0:
        raise ValueError(f"efficientnet: phi must be a number >= 0, got {phi!r}")
    depth, width, resolution = alpha**phi, beta**phi, gamma**phi
    size = int(round(224 * resolution))
    rng = np.random.default_rng(seed)
    channels = make_divisible(32 * width)
    layers = {"stage1": _conv_bn_act(3, channels, 3, 2, 1, activation=SiLU, bn_eps=1e-3, dtype=dtype)}
    stages = [{"stage": 1, "operator": "Conv3x3", "channels": channels, "layers": ["stage1"]}]
    for stage, (t, k, s, c, n) in enumerate(EFFICIENTNET_B0_STAGES, start=2):
        out = make_divisible(c * width)
        names = []
        for i in range(1, math.ceil(n * depth) + 1):
            name = f"stage{stage}_{i}"
            layers[name] = MBConv(channels, out, k, s if i == 1 else 1, t, lazy=True, dtype=dtype)
            names.append(name)
            channels = out
        stages.append({"stage": stage, "operator": f"MBConv{t}, k{k}x{k}", "channels": out, "layers": names})
    last = 4 * channels
    layers.update(
        {
            "stage9_conv": _conv_bn_act(channels, last, 1, activation=SiLU, bn_eps=1e-3, dtype=dtype),
            "stage9_pool": nn.GlobalAvgPool2d(),
            "stage9_flatten": nn.Flatten(),
            "stage9_dropout": nn.Dropout(dropout, rng=rng),
            "stage9_fc": linear(last, classes, dtype=dtype),
        }
    )
    stages.append({"stage": 9, "operator": "Conv1x1 & Pooling & FC", "channels": last, "layers": ["stage9_conv"]})
    model = Network(layers, name=f"efficientnet_phi{phi:g}", input_shape=(3, size, size))
    model.phi, model.coefficients = phi, {"depth": depth, "width": width, "resolution": resolution}
    shapes_ = model.named_output_shapes()
    previous = model.input_shape
    for entry in stages:
        entry["resolution"] = tuple(previous[1:])
        previous = shapes_[entry["layers"][-1]]
    model.stages = stages
    return _finish(model, lazy, seed)


def efficientnet_b0(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """EfficientNet-B0, the baseline of deck 000_5f24bd8423292174.txt, "EfficientNets (3)" (``efficientnet(0)``)."""
    model = efficientnet(0, num_classes, lazy, seed=seed, dtype=dtype)
    model.name = "efficientnet_b0"
    return model


# ------------------------------------------------------------------ ConvNeXt
def convnext_tiny(num_classes=1000, lazy=True, *, seed=0, dtype=np.float32):
    """ConvNeXt-T (Liu et al., 2022): patchify stem 4x4/4, stages of 3-3-9-3 ConvNeXt blocks (96-192-384-768 channels).

    Deck 000_5f24bd8423292174.txt, "Bloques ConvNeXt". Between stages a
    LayerNorm and a 2x2/2 convolution downsample; the head is global average
    pooling, LayerNorm and a linear layer. 28,589,128 parameters
    (torchvision ``convnext_tiny``).
    """
    classes = _check_classes("convnext_tiny", num_classes)
    dims, depths = (96, 192, 384, 768), (3, 3, 9, 3)
    layers = {"stem": Sequential({"conv": conv(3, dims[0], 4, 4, bias=True, dtype=dtype),
                                  "norm": LayerNorm2d(dims[0], dtype=dtype)})}
    for stage, (dim, count) in enumerate(zip(dims, depths), start=1):
        if stage > 1:
            layers[f"downsample{stage}"] = Sequential({"norm": LayerNorm2d(dims[stage - 2], dtype=dtype),
                                                       "conv": conv(dims[stage - 2], dim, 2, 2, bias=True, dtype=dtype)})
        for i in range(1, count + 1):
            layers[f"stage{stage}_{i}"] = ConvNeXtBlock(dim, lazy=True, dtype=dtype)
    layers.update(
        {
            "pool": nn.GlobalAvgPool2d(),
            "norm": LayerNorm2d(dims[-1], dtype=dtype),
            "flatten": nn.Flatten(),
            "fc": linear(dims[-1], classes, dtype=dtype),
        }
    )
    model = Network(layers, name="convnext_tiny", input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)


# ---------------------------------------------------------------- ShuffleNet
#: Zhang et al. (2018), Table 1: output channels of stages 2-4 for each number of groups g (ShuffleNet 1x).
SHUFFLENET_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088),
                       8: (384, 768, 1536)}


def shufflenet(groups=3, num_classes=1000, lazy=True, *, repeats=(4, 8, 4), seed=0, dtype=np.float32):
    """ShuffleNet 1x with ``groups`` groups (Zhang et al., 2018, Table 1).

    Deck 002_35ce60e4ae78ad9e.txt, "ShuffleNet": "Grouped convolutions +
    channel shuffle". Conv 3x3/2 (24 maps), max pool 3x3/2, stages 2-4 of
    ``ShuffleUnit``s (the first of each with stride 2, ``repeats`` units in
    all), global average pooling, fc. The first unit of stage 2 keeps its
    first 1x1 dense (24 input channels are too few to split).
    """
    if groups not in SHUFFLENET_CHANNELS:
        raise ValueError(f"shufflenet: groups must be one of {sorted(SHUFFLENET_CHANNELS)}, got {groups!r}")
    classes = _check_classes("shufflenet", num_classes)
    if len(repeats) != 3 or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in repeats):
        raise ValueError(f"shufflenet: repeats must be three positive ints (units per stage), got {repeats!r}")
    layers = {"conv1": _conv_bn_act(3, 24, 3, 2, 1, dtype=dtype), "maxpool": nn.MaxPool2d(3, stride=2, padding=1)}
    channels = 24
    for stage, (out, count) in enumerate(zip(SHUFFLENET_CHANNELS[groups], repeats), start=2):
        for i in range(1, count + 1):
            first = i == 1
            layers[f"stage{stage}_{i}"] = ShuffleUnit(channels, out, groups, 2 if first else 1,
                                                      grouped_first=not (first and stage == 2), lazy=True, dtype=dtype)
            channels = out
    layers.update({"pool": nn.GlobalAvgPool2d(), "flatten": nn.Flatten(), "fc": linear(channels, classes, dtype=dtype)})
    model = Network(layers, name=f"shufflenet_g{groups}", input_shape=(3, 224, 224))
    return _finish(model, lazy, seed)
