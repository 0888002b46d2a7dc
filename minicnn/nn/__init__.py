"""Layers, losses and initialisers: ``forward(x)`` keeps a cache, ``backward(dy)`` returns ``dx`` and fills ``.grad``.

>>> import numpy as np, minicnn as mc
>>> layer = mc.nn.Linear(4, 3, rng=0)
>>> layer(np.ones((2, 4), dtype=np.float32)).shape
(2, 3)
"""

from . import init, variants
from .layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from .merge import Add, Concat
from .loss import SoftmaxCrossEntropy, log_softmax, softmax
from .module import Module, NoForwardError, Parameter, array_module
from .activation import Elementwise
from .variants import (
    GELU,
    ChannelShuffle,
    ConstantPad2d,
    HardSigmoid,
    LeakyReLU,
    LogSoftmax,
    Pad,
    ReflectionPad2d,
    ReplicationPad2d,
    Softmax,
    Swish,
    ZeroPad2d,
    Conv1d,
    Conv3d,
    ConvTranspose2d,
    DepthwiseConv2d,
    HardSwish,
    LayerNorm2d,
    LayerScale,
    LocalResponseNorm,
    PointwiseConv2d,
    ReLU6,
    SeparableConv2d,
    SiLU,
    SqueezeExcitation,
)

__all__ = [
    "init",
    "Parameter",
    "Module",
    "NoForwardError",
    "array_module",
    "Conv2d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Identity",
    "Flatten",
    "Dropout",
    "BatchNorm2d",
    "Add",
    "Concat",
    "SoftmaxCrossEntropy",
    "softmax",
    "log_softmax",
    *variants.__all__,
]
