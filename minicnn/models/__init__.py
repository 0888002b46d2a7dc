"""Networks built from ``minicnn.nn`` layers: LeNet-5 and the architectures on the slides.

Big networks are built shape-only (``lazy=True``): their parameters take no
memory, so ``summary()`` and parameter counts are instant; call
``model.materialize(seed)`` (or build with ``lazy=False``) to run them.

>>> import minicnn as mc
>>> mc.models.lenet5().num_parameters()
61706
>>> sum(p.data.size for p in mc.models.vgg16().parameters())
138357544
"""

from . import blocks, zoo
from .blocks import (
    BasicBlock,
    Bottleneck,
    Branches,
    ConvNeXtBlock,
    DenseBlock,
    DenseLayer,
    Inception,
    InceptionAux,
    InvertedResidual,
    MBConv,
    ShuffleUnit,
    Transition,
)
from .lenet import lenet5
from .zoo import (
    GoogLeNet,
    Network,
    alexnet,
    convnext_tiny,
    densenet121,
    densenet161,
    densenet169,
    densenet201,
    efficientnet,
    efficientnet_b0,
    googlenet,
    inception_v3,
    mobilenet_v2,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
    shufflenet,
    vgg11,
    vgg13,
    vgg16,
    vgg19,
    zfnet,
)

__all__ = [
    "lenet5", "alexnet", "zfnet", "vgg11", "vgg13", "vgg16", "vgg19", "googlenet", "inception_v3",
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "densenet121", "densenet169", "densenet201", "densenet161",
    "mobilenet_v2", "efficientnet", "efficientnet_b0", "convnext_tiny", "shufflenet",
    "Network", "GoogLeNet", "blocks", "zoo",
    "BasicBlock", "Bottleneck", "Branches", "ConvNeXtBlock", "DenseBlock", "DenseLayer", "Inception", "InceptionAux",
    "InvertedResidual", "MBConv", "ShuffleUnit", "Transition",
]
