"""The reference solutions of the exercises: each function of the student template, computed by minicnn.

The arithmetic is minicnn's reference backend (``minicnn.backends.numpy_backend``,
the slide formulas as NumPy code) reached through ``minicnn.functional``;
this module only adapts the signatures of ``templates/student.py``. It is
what ``minicnn exercises check`` compares a student's function with, and the
test suite checks that it passes every exercise.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, shapes

_REF = "numpy"


def output_size(n, f, stride=1, padding=0):
    """``(n + 2P - f)//S + 1`` (deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS")."""
    return shapes.conv_output_size(n, f, stride, padding)


def conv2d(x, w, b=None, stride=1, padding=0):
    return F.conv2d(x, w, b, stride=stride, padding=padding, backend=_REF)


def conv2d_input_grad(w, dy, x_shape, stride=1, padding=0):
    return F.conv2d_input_grad(tuple(x_shape), w, dy, stride=stride, padding=padding, backend=_REF)


def conv2d_weight_grad(x, dy, w_shape, stride=1, padding=0):
    return F.conv2d_weight_grad(x, tuple(w_shape), dy, stride=stride, padding=padding, backend=_REF)[0]


def conv2d_bias_grad(dy):
    return np.asarray(dy).sum(axis=(0, 2, 3))


def max_pool2d(x, size, stride=None):
    return F.max_pool2d(x, size, stride=stride, backend=_REF)


def max_pool2d_grad(x, dy, size, stride=None):
    return F.max_pool2d_grad(x, dy, size, stride=stride, backend=_REF)


def avg_pool2d(x, size, stride=None):
    return F.avg_pool2d(x, size, stride=stride, backend=_REF)


def avg_pool2d_grad(x, dy, size):
    return F.avg_pool2d_grad(x, dy, size, backend=_REF)


def softmax_cross_entropy(scores, labels):
    return nn.SoftmaxCrossEntropy()(np.asarray(scores, dtype=np.float64), np.asarray(labels))


def softmax_cross_entropy_grad(scores, labels):
    loss = nn.SoftmaxCrossEntropy()
    loss(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    return loss.backward()


def sgd_momentum_step(theta, v, grad, lr, momentum):
    """``v = gamma v + eta grad; theta = theta - v`` (deck 002, "Aprendizaje: Stochastic Gradient Descend")."""
    v = momentum * np.asarray(v) + lr * np.asarray(grad)
    return np.asarray(theta) - v, v


def lenet5_layers():
    """The layers of ``minicnn.models.lenet5()`` (deck 002's table), in order."""
    from ..models import lenet5

    return list(lenet5())


def residual_block(x, w1, b1, w2, b2):
    branch = F.conv2d(np.maximum(F.conv2d(x, w1, b1, padding=1, backend=_REF), 0), w2, b2, padding=1, backend=_REF)
    return np.maximum(x + branch, 0)
