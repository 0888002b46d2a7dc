"""Your minicnn exercises: write each function as the slide says, then run

    minicnn exercises check .            # every exercise
    minicnn exercises check . conv2d     # one exercise

Conventions (the same as minicnn's): images are NumPy arrays in NCHW order
(batch, channels, height, width), filters in OIHW order (filters, channels,
height, width); ``stride`` and ``padding`` are ints (the same on both axes).
Use NumPy only; loops over the few kernel offsets (p, q) are fine.
Decks: 002 = "Redes Convolucionales" (procesamiento de imágenes),
003 = "Aprendizaje Profundo - Capas convolucionales".
"""

import numpy as np

import minicnn as mc


def output_size(n, f, stride=1, padding=0):
    """Output size along one axis of a convolution or pooling window.

    Deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS": an input of ``n`` pixels,
    a filter of ``f`` pixels, stride ``S`` and padding ``P`` give
    ``(n + 2P - f)/S + 1`` outputs (rounded down when S does not divide).
    """
    raise NotImplementedError


def conv2d(x, w, b=None, stride=1, padding=0):
    """Cross-correlation of ``x`` (N, C, H, W) with filters ``w`` (O, C, F, F); returns (N, O, H', W').

    Deck 003, "PESOS COMPARTIDOS": ``S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)``,
    for every filter, summed over the input channels, plus the filter's bias
    ``b[o]`` (``b`` may be None). Zero-pad by ``padding`` first; output (i, j)
    reads the input from row ``i*stride``, column ``j*stride``. H' and W' come
    from your ``output_size``.
    """
    raise NotImplementedError


def conv2d_input_grad(w, dy, x_shape, stride=1, padding=0):
    """``dL/dX`` of ``conv2d`` given ``dy = dL/dY`` (N, O, H', W'); returns an array of shape ``x_shape``.

    Deck 002, "Aprendizaje: Backpropagation": ``delta^(l) = upsample(W^T delta^(l+1))``:
    each output's error goes back to the input pixels under the filter, weighted
    by the filter; for stride 1 it is the *full convolution* of the error with
    the filter, i.e. a correlation with ``rot90(W, 2)``: the kernel is flipped.
    """
    raise NotImplementedError


def conv2d_weight_grad(x, dy, w_shape, stride=1, padding=0):
    """``dL/dW`` of ``conv2d`` (shape ``w_shape`` = (O, C, F, F)) given the input ``x`` and ``dy``.

    Deck 002, "Aprendizaje: Backpropagation": ``grad W_k = sum_i a_i * rot90(delta_k, 2)``
    (true convolution with the rotated error), which is the cross-correlation
    of the (padded) input with the error, summed over the batch.
    Deck 003, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES": a shared weight's
    gradient is the sum of the gradients at every position.
    """
    raise NotImplementedError


def conv2d_bias_grad(dy):
    """``dL/db`` of ``conv2d`` (one number per filter) given ``dy`` (N, O, H', W').

    Deck 002, "Aprendizaje: Backpropagation": ``grad b_k = sum_{a,b} delta_k[a, b]``,
    summed over the examples of the batch too.
    """
    raise NotImplementedError


def max_pool2d(x, size, stride=None):
    """Max pooling of ``x`` (N, C, H, W) over ``size x size`` windows (``stride=None`` means ``size``).

    Deck 003, "CAPA DE SUBMUESTREO O DECIMACIÓN": each output is the largest
    value of its window; the output size is your ``output_size`` (no padding).
    """
    raise NotImplementedError


def max_pool2d_grad(x, dy, size, stride=None):
    """``dL/dX`` of ``max_pool2d`` given the input ``x`` and ``dy`` (the pooled map's error).

    Deck 003, "RETRO-PROPAGACIÓN": "En la decimación se actualiza sólo la
    neurona ganadora (max-pooling)": each window's error goes to its maximum
    only (the first one, in reading order, if several tie).
    """
    raise NotImplementedError


def avg_pool2d(x, size, stride=None):
    """Average pooling of ``x`` (N, C, H, W) over ``size x size`` windows (``stride=None`` means ``size``).

    Deck 003, "CAPA DE SUBMUESTREO O DECIMACIÓN"; deck 002, "POOL:S2": the
    mean of each window, a convolution with ``ones(F)/F^2``.
    """
    raise NotImplementedError


def avg_pool2d_grad(x, dy, size):
    """``dL/dX`` of ``avg_pool2d`` with non-overlapping windows (stride = size), shape of ``x``.

    Deck 002, "Aprendizaje: Backpropagation" (tips): upsample the error with
    ``np.kron(delta, np.ones((size, size)))`` and divide by the pool area
    ``size**2``; pixels that no window covered (when ``size`` does not divide
    H or W) get zero.
    """
    raise NotImplementedError


def softmax_cross_entropy(scores, labels):
    """Mean cross-entropy of the softmax of ``scores`` (m, K) for integer ``labels`` (m,).

    Deck 002, "Aprendizaje: Backpropagation", eq. (3): ``J = -(1/m) sum_i log P(y_i | x_i)`` with
    ``P(y = k | x) = e^{s_k} / sum_j e^{s_j}`` (subtract each row's maximum
    before ``exp`` so that large scores do not overflow).
    """
    raise NotImplementedError


def softmax_cross_entropy_grad(scores, labels):
    """``dJ/dscores`` (m, K) of ``softmax_cross_entropy``.

    Deck 002, "Aprendizaje: Backpropagation", eq. (4), with respect to the
    scores: ``-(1/m) (1{y_i = k} - P(y_i = k | x_i))`` for every example i and
    class k: the probabilities minus the one-hot labels, divided by the batch
    size m (the slide prints eq. (4) without the 1/m of its cost (3): an
    erratum, see minicnn's spec/README.md).
    """
    raise NotImplementedError


def sgd_momentum_step(theta, v, grad, lr, momentum):
    """One step of SGD with momentum; returns the new ``(theta, v)``.

    Deck 002, "Aprendizaje: Stochastic Gradient Descend" (momentum): ``v = gamma v + eta grad``,
    ``theta = theta - v`` (``eta`` is ``lr``, ``gamma`` is ``momentum``).
    """
    raise NotImplementedError


def lenet5_layers():
    """The LeNet-5 table of deck 002 ("Arquitectura de la Red") as a list of minicnn layers.

    32x32 -> C1 6x28x28 -> S2 6x14x14 -> C3 16x10x10 -> S4 16x5x5 -> C5 120
    -> F6 84 -> 10. Use ``mc.nn.Conv2d(in, out, kernel)``, ``mc.nn.MaxPool2d(2)``,
    ``mc.nn.ReLU()``, ``mc.nn.Flatten()`` and ``mc.nn.Linear(in, out)``; a ReLU
    after every layer but the last. It has 61,706 parameters.
    """
    raise NotImplementedError


def residual_block(x, w1, b1, w2, b2):
    """A residual block: ``y = ReLU(x + F(x))`` with ``F(x) = conv(ReLU(conv(x, w1, b1)), w2, b2)``.

    Deck 002, "Arquitecturas de redes convolucionales" (ResNet,
    ``x_l = H_l(x_{l-1}) + x_{l-1}``): the block learns the residual ``F(x) = H(x) - x`` and
    the skip connection adds ``x`` back. Both convolutions are 3x3 with
    padding 1 and stride 1 (so ``F(x)`` has the shape of ``x``); use your
    ``conv2d``.
    """
    raise NotImplementedError
