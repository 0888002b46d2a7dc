"""The layers of LeNet-5's table, by their old home: each now lives in the file of its kind.

``conv.py`` (convolutions), ``linear.py``, ``pool.py``, ``activation.py``,
``norm.py``, ``shape.py``, ``dropout.py``; this module re-exports them so
``from minicnn.nn.layers import Conv2d`` keeps working.
"""

from .activation import ReLU, Sigmoid, Tanh
from .conv import Conv2d
from .dropout import Dropout
from .linear import Linear
from .norm import BatchNorm2d
from .pool import AvgPool2d, GlobalAvgPool2d, MaxPool2d
from .shape import Flatten, Identity

__all__ = [
    "Conv2d",
    "Linear",
    "MaxPool2d",
    "AvgPool2d",
    "GlobalAvgPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Flatten",
    "Dropout",
    "BatchNorm2d",
    "Identity",
]
