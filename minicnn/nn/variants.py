"""The variants of the convolutional layer and the small layers modern architectures add around them.

Deck 000_5f24bd8423292174.txt ("Variantes de capas convolucionales"). Each
lives in the file of its kind (``conv.py``, ``activation.py``, ``norm.py``,
``shape.py``, ``squeeze.py``); this module gathers them under one name, as
``minicnn.nn.variants``.
"""

from .activation import GELU, HardSigmoid, HardSwish, LeakyReLU, LogSoftmax, ReLU, ReLU6, Sigmoid, SiLU, Softmax, Swish
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose2d, DepthwiseConv2d, PointwiseConv2d, SeparableConv2d
from .norm import LayerNorm2d, LayerScale, LocalResponseNorm
from .pool import GlobalAvgPool2d
from .shape import ChannelShuffle, ConstantPad2d, Pad, ReflectionPad2d, ReplicationPad2d, ZeroPad2d
from .squeeze import SqueezeExcitation

__all__ = [
    "DepthwiseConv2d",
    "PointwiseConv2d",
    "SeparableConv2d",
    "ConvTranspose2d",
    "Conv1d",
    "Conv3d",
    "ChannelShuffle",
    "ReLU6",
    "LeakyReLU",
    "HardSigmoid",
    "SiLU",
    "Swish",
    "HardSwish",
    "GELU",
    "Softmax",
    "LogSoftmax",
    "Pad",
    "ZeroPad2d",
    "ConstantPad2d",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "LocalResponseNorm",
    "SqueezeExcitation",
    "LayerNorm2d",
    "LayerScale",
]
