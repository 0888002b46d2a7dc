"""The exercises: one per reference function a student writes, each with its slide, property and spec entries.

``EXERCISES`` lists them in the order of the course: sizes, the convolution
and its three gradients, pooling and its gradients, the loss and its
gradient, the optimizer, LeNet-5's table, a residual block, and last the
training of LeNet-5 on the student's own kernels. Each ``Exercise`` names
the template function(s) it asks for, the deck and slide, the Hypothesis
property that compares the student with the reference (``prop``, drawing from
``cases``), and the spec entries that check it: ``spec_checks`` are checkers
of the spec suite (``tests/test_spec.py``) run on a backend where only this
exercise's function is the student's; ``spec_ids`` are entries whose values
``spec_entries.py`` checks against the student's function directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import properties as P
from . import reference as ref
from .properties import call, compare


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    slide: str
    functions: tuple
    prop: object = None          # prop(student, case) raises Failure
    cases: object = None         # a Hypothesis strategy of Case
    spec_checks: tuple = ()
    spec_ids: tuple = ()
    needs: tuple = ()            # exercises whose functions this one runs (the training exercise)


def _output_size(s, case):
    n, f, st, p = case.n, case.f, case.stride, case.padding
    yours, slide = call(s, "output_size", case, n, f, st, p), ref.output_size(n, f, st, p)
    if yours != slide:
        raise P.Failure(f"{case.words}, your output_size is {yours}; the slide's formula floor(({n} + 2*{p} - {f})/{st}) + 1 "
                        f"gives {slide}")


def _conv2d(s, case):
    x, w, b, st, p = case.x, case.w, case.b, case.stride, case.padding
    hints = [(ref.conv2d(x, w[:, :, ::-1, ::-1], b, st, p),
              "Your output is the true convolution (the kernel flipped, rot90(W, 2)); the slide's conv2d is the "
              "cross-correlation S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n), without the flip")]
    if b is not None:
        hints.append((ref.conv2d(x, w, None, st, p), "You left out the bias b[o] of each filter"))
    compare("conv2d", case, call(s, "conv2d", case, x, w, b, st, p), ref.conv2d(x, w, b, st, p), hints=hints,
            show=("x", "w", "b"))


def _conv2d_input_grad(s, case):
    w, dy, st, p, shape = case.w, case.dy, case.stride, case.padding, case.x.shape
    flip = ("Your dX is what the unflipped kernel gives: the error reaches the input through the full convolution "
            "with the filter, i.e. a correlation with rot90(W, 2) (deck 002, 'Aprendizaje: Backpropagation'): flip the kernel")
    compare("conv2d_input_grad", case, call(s, "conv2d_input_grad", case, w, dy, shape, st, p),
            ref.conv2d_input_grad(w, dy, shape, st, p), what="dX", show=("w", "dy"),
            hints=[(ref.conv2d_input_grad(w[:, :, ::-1, ::-1], dy, shape, st, p), flip)])


def _conv2d_weight_grad(s, case):
    x, dy, st, p, shape = case.x, case.dy, case.stride, case.padding, case.w.shape
    slide = ref.conv2d_weight_grad(x, dy, shape, st, p)
    hints = [(slide[:, :, ::-1, ::-1], "Your dW is the slide's rotated by 180 degrees: sum_i a_i * rot90(delta, 2) is "
              "the cross-correlation of the input with the error, not of the error with the input"),
             (slide / len(x), "You divided by the batch size; each example's gradient adds up (the loss did the averaging)")]
    compare("conv2d_weight_grad", case, call(s, "conv2d_weight_grad", case, x, dy, shape, st, p), slide, what="dW",
            hints=hints, show=("x", "dy"))


def _conv2d_bias_grad(s, case):
    dy = case.dy
    hints = [(dy[0].sum(axis=(1, 2)), "You summed the first example only: the examples of the batch add up too"),
             (dy.mean(axis=(0, 2, 3)), "You averaged: the slide sums delta over the positions and the examples")]
    compare("conv2d_bias_grad", case, call(s, "conv2d_bias_grad", case, dy), ref.conv2d_bias_grad(dy), what="db",
            hints=hints, show=("dy",))


def _max_pool2d(s, case):
    x, size, st = case.x, case.size, case.stride
    compare("max_pool2d", case, call(s, "max_pool2d", case, x, size, st), ref.max_pool2d(x, size, st), show=("x",),
            hints=[(ref.avg_pool2d(x, size, st), "Your output is each window's mean; max pooling keeps its largest value")])


def _max_pool2d_grad(s, case):
    x, dy, size = case.x, case.dy, case.size
    spread = ref.avg_pool2d_grad(x, dy, size)
    words = ("You sent each window's error to every pixel of the window; only the winner (the window's maximum) "
             "receives it (deck 003, 'RETRO-PROPAGACIÓN': 'sólo la neurona ganadora')")
    compare("max_pool2d_grad", case, call(s, "max_pool2d_grad", case, x, dy, size, None),
            ref.max_pool2d_grad(x, dy, size), what="dX", show=("x", "dy"), hints=[(spread * size * size, words), (spread, words)])


def _avg_pool2d(s, case):
    x, size, st = case.x, case.size, case.stride
    compare("avg_pool2d", case, call(s, "avg_pool2d", case, x, size, st), ref.avg_pool2d(x, size, st), show=("x",),
            hints=[(ref.max_pool2d(x, size, st), "Your output is each window's maximum; average pooling keeps its mean")])


def _avg_pool2d_grad(s, case):
    x, dy, size = case.x, case.dy, case.size
    slide = ref.avg_pool2d_grad(x, dy, size)
    compare("avg_pool2d_grad", case, call(s, "avg_pool2d_grad", case, x, dy, size), slide, what="dX", show=("dy",),
            hints=[(slide * size * size, f"You left out the division by the pool area size**2 = {size * size}: "
                    "kron(delta, ones) / size**2")])


def _softmax_cross_entropy(s, case):
    scores, labels = case.scores, case.labels
    slide = ref.softmax_cross_entropy(scores, labels)
    compare("softmax_cross_entropy", case, call(s, "softmax_cross_entropy", case, scores, labels), slide, what="loss",
            hints=[(slide * case.m, f"You summed over the m = {case.m} examples; the cost (3) is their mean (1/m)")])


def _softmax_cross_entropy_grad(s, case):
    scores, labels = case.scores, case.labels
    slide = ref.softmax_cross_entropy_grad(scores, labels)
    compare("softmax_cross_entropy_grad", case, call(s, "softmax_cross_entropy_grad", case, scores, labels), slide,
            what="gradient",
            hints=[(slide * case.m, f"Your gradient is m = {case.m} times the slide's: divide by the batch size m "
                    "(the 1/m of the cost (3), which the slide's eq. (4) leaves out)"),
                   (-slide, "Your gradient has the wrong sign: it is P - onehot(y), divided by m")])


def _sgd_momentum_step(s, case):
    args = (case.theta.copy(), case.v.copy(), case.grad.copy(), case.lr, case.momentum)
    out = call(s, "sgd_momentum_step", case, *args)
    if not isinstance(out, tuple) or len(out) != 2:
        raise P.Failure(f"{case.words}, your sgd_momentum_step returned {type(out).__name__}; return (theta, v)")
    theta, v = ref.sgd_momentum_step(case.theta, case.v, case.grad, case.lr, case.momentum)
    compare("sgd_momentum_step", case, out[1], v, what="new v",
            hints=[(case.momentum * case.v + case.grad, "Your v leaves out eta: v = gamma v + eta grad")])
    compare("sgd_momentum_step", case, out[0], theta, what="new theta",
            hints=[(case.theta - case.lr * case.grad, "Your theta ignores the velocity: theta = theta - v")])


def _residual_block(s, case):
    x, w1, b1, w2, b2 = case.x, case.w1, case.b1, case.w2, case.b2
    branch = ref.conv2d(np.maximum(ref.conv2d(x, w1, b1, 1, 1), 0), w2, b2, 1, 1)
    compare("residual_block", case, call(s, "residual_block", case, x, w1, b1, w2, b2), ref.residual_block(x, w1, b1, w2, b2),
            hints=[(x + branch, "You left out the final ReLU: y = ReLU(x + F(x))"),
                   (np.maximum(branch, 0), "You left out the skip connection: the block adds x to F(x)")])


_D2, _D3 = "deck 002 (Redes Convolucionales)", "deck 003 (Capas convolucionales)"
_BACKPROP = f"{_D2}, 'Aprendizaje: Backpropagation'"

EXERCISES = (
    Exercise("output_size", "Output size of a convolution or pooling", f"{_D3}, 'CAPA CONVOLUCIONAL: HIPERPARÁMETROS'",
             ("output_size",), _output_size, P.output_size_cases(), spec_ids=("output_size", "pool_output_size")),
    Exercise("conv2d", "Convolution forward: the slide's double sum", f"{_D3}, 'PESOS COMPARTIDOS'", ("conv2d",),
             _conv2d, P.conv_cases(),
             spec_checks=("cross_correlation", "convolution_sum", "flip_equals_rot90", "mask_response", "line_detector",
                          "translation_equivariance", "output_size")),
    Exercise("conv2d_input_grad", "Convolution backward: dX", _BACKPROP, ("conv2d_input_grad",), _conv2d_input_grad,
             P.conv_cases(with_bias=False), spec_checks=("conv_input_grad",)),
    Exercise("conv2d_weight_grad", "Convolution backward: dW", _BACKPROP, ("conv2d_weight_grad",), _conv2d_weight_grad,
             P.conv_cases(with_bias=False), spec_checks=("weight_grad_rot90", "shared_weight_grad")),
    Exercise("conv2d_bias_grad", "Convolution backward: db", _BACKPROP, ("conv2d_bias_grad",), _conv2d_bias_grad,
             P.conv_cases(with_bias=False), spec_checks=("bias_grad_sum",)),
    Exercise("max_pool2d", "Max pooling", f"{_D3}, 'CAPA DE SUBMUESTREO O DECIMACIÓN'", ("max_pool2d",), _max_pool2d,
             P.pool_cases(), spec_checks=("pool_values", "pool_output_size")),
    Exercise("max_pool2d_grad", "Max pooling backward: only the winner", f"{_D3}, 'RETRO-PROPAGACIÓN'",
             ("max_pool2d_grad",), _max_pool2d_grad, P.pool_cases(overlapping=False, distinct=True),
             spec_checks=("max_pool_routing",)),
    Exercise("avg_pool2d", "Average pooling", f"{_D3}, 'CAPA DE SUBMUESTREO O DECIMACIÓN'", ("avg_pool2d",),
             _avg_pool2d, P.pool_cases(), spec_checks=("pool_values", "avg_pool_as_conv", "global_avg_pool")),
    Exercise("avg_pool2d_grad", "Average pooling backward with kron", f"{_BACKPROP} (tips)", ("avg_pool2d_grad",),
             _avg_pool2d_grad, P.pool_cases(overlapping=False), spec_checks=("kron_upsample",)),
    Exercise("softmax_cross_entropy", "Softmax cross-entropy", f"{_BACKPROP}, eq. (3)", ("softmax_cross_entropy",),
             _softmax_cross_entropy, P.softmax_cases(), spec_ids=("softmax", "softmax_cross_entropy")),
    Exercise("softmax_cross_entropy_grad", "Its gradient", f"{_BACKPROP}, eq. (4)", ("softmax_cross_entropy_grad",),
             _softmax_cross_entropy_grad, P.softmax_cases(), spec_ids=("softmax_cross_entropy",)),
    Exercise("sgd_momentum_step", "SGD with momentum", f"{_D2}, 'Aprendizaje: Stochastic Gradient Descend'",
             ("sgd_momentum_step",), _sgd_momentum_step, P.momentum_cases(), spec_ids=("momentum_update",)),
    Exercise("lenet5_layers", "The LeNet-5 table as code", f"{_D2}, 'Arquitectura de la Red'", ("lenet5_layers",),
             spec_ids=("lenet5_table", "lenet_total_params")),
    Exercise("residual_block", "A residual block", f"{_D2}, 'Arquitecturas de redes convolucionales' (ResNet)",
             ("residual_block",), _residual_block, P.residual_cases()),
    Exercise("train_lenet5", "Train LeNet-5 on your kernels (95% on mnist-5k)", f"{_D2}, 'LABORATORIO'", (),
             needs=("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_bias_grad", "max_pool2d",
                    "max_pool2d_grad")),
)

BY_NAME = {exercise.name: exercise for exercise in EXERCISES}
