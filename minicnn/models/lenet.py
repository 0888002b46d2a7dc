"""LeNet-5, as the table of deck 002_35ce60e4ae78ad9e.txt ("Arquitectura de la Red") lays it out.

======  =====  ======  ========  ========  ========  =======  ====  ======
Tipo    Input  CONV    POOL      CONV      POOL      CONV     FC    OUTPUT
Nombre         C1      S2        C3        S4        C5       F6
Size    32x32  6x28x28 6x14x14   16x10x10  16x5x5    120      84    10
======  =====  ======  ========  ========  ========  =======  ====  ======

C3 connects every S2 map to every C3 filter (a full connection table, not
LeCun's original sparse one), so the network has 61,706 parameters:
C1 ``6*25 + 6 = 156``, C3 ``16*6*25 + 16 = 2,416``, C5 ``120*16*25 + 120 =
48,120``, F6 ``120*84 + 84 = 10,164`` and the output ``84*10 + 10 = 850``.
The softmax of the output (eq. 1) is part of the loss,
``minicnn.nn.SoftmaxCrossEntropy``.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from .zoo import Network

__all__ = ["lenet5"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
# He initialisation keeps the variance through ReLUs, Glorot through tanh/sigmoid (see minicnn.nn.init).
_INITS = {"relu": "kaiming_normal", "tanh": "xavier_uniform", "sigmoid": "xavier_uniform"}


def lenet5(activation="relu", pool="max", num_classes=10, seed=0, *, dtype=np.float32):
    """The LeNet-5 of the slides for (N, 1, 32, 32) inputs; returns a ``Network`` (a ``Sequential``), as every model does.

    ``activation`` is "relu", "tanh" or "sigmoid" (the slides' original) and
    also picks the initialisation (He for ReLU, Glorot otherwise); ``pool`` is
    "max" or "avg" (S2 and S4, 2x2 with stride 2). ``seed`` fixes the weights.
    Layers are named as on the slide (C1, S2, C3, S4, C5, F6, output) with the
    activations after them (relu1, ...).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(f"lenet5: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    if pool not in _POOLS:
        raise ValueError(f"lenet5: pool must be one of {sorted(_POOLS)}, got {pool!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"lenet5: num_classes must be an int >= 2, got {num_classes!r}")
    rng = np.random.default_rng(seed)
    pool_layer, init = _POOLS[pool], _INITS[activation]

    def act():
        # each activation reads only the fresh output of the layer before it, so ReLU may work in place
        return nn.ReLU(inplace=True) if activation == "relu" else _ACTIVATIONS[activation]()

    opts = {"init": init, "rng": rng, "dtype": dtype}
    return Network(
        {
            "C1": nn.Conv2d(1, 6, 5, **opts),
            f"{activation}1": act(),
            "S2": pool_layer(2),
            "C3": nn.Conv2d(6, 16, 5, **opts),
            f"{activation}3": act(),
            "S4": pool_layer(2),
            "C5": nn.Conv2d(16, 120, 5, **opts),
            f"{activation}5": act(),
            "flatten": nn.Flatten(),
            "F6": nn.Linear(120, 84, **opts),
            f"{activation}6": act(),
            "output": nn.Linear(84, int(num_classes), init="xavier_uniform", rng=rng, dtype=dtype),
        },
        name="lenet5",
        input_shape=(1, 32, 32),
    )
