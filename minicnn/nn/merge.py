"""Modules with several inputs: the joins of a network graph (``minicnn.graph.Graph``).

``Add`` is the skip connection of ResNet and ``Concat`` the channel
concatenation of DenseNet and Inception (deck 002_35ce60e4ae78ad9e.txt,
"Arquitecturas de redes convolucionales"):

* ResNet: ``x_ℓ = H_ℓ(x_{ℓ-1}) + x_{ℓ-1}``;
* DenseNet: ``x_ℓ = H_ℓ([x_0, x_1, ..., x_{ℓ-1}])``, ``[...]`` a concatenation.

Their ``backward(dy)`` returns one gradient per input, as a tuple.
"""

from __future__ import annotations

import numpy as np

from .module import Module, array_module

__all__ = ["Add", "Concat"]


def _check_inputs(name, xs, minimum=1):
    if len(xs) < minimum:
        raise TypeError(f"{name}: needs at least {minimum} inputs, got {len(xs)}")
    for i, x in enumerate(xs):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{name}: input {i} must be an array, got {type(x).__name__}")
        if x.dtype != xs[0].dtype:
            raise TypeError(f"{name}: input {i} has dtype {x.dtype} but input 0 has {xs[0].dtype}")


class Add(Module):
    """Elementwise sum of its inputs: the ResNet skip connection ``H(x) + x``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    ResNet ("skip connection ... se suma al resultado del bloque
    convolucional"). The gradient of a sum reaches every term unchanged, so
    ``backward(dy)`` returns ``dy`` once per input (the same array; consumers
    must not modify it in place).

    Inputs may differ in shape where NumPy broadcasting (and PyTorch's, and
    ONNX's ``Add``) lines them up: an input of shape ``(1, C, 1, 1)`` is added
    to every pixel of ``(N, C, H, W)``. Each such input's gradient is ``dy``
    summed over the axes it was broadcast along.
    """

    def forward(self, *xs):
        _check_inputs("Add", xs)
        out = self.output_shape(*(x.shape for x in xs))
        y = xs[0] + xs[1] if len(xs) > 1 else xs[0].copy()
        for x in xs[2:]:
            if y.shape == out:
                y += x
            else:
                y = y + x
        self.save(tuple(tuple(x.shape) for x in xs))
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (input_shapes,) = self.saved(dy)
        return tuple(dy if shape == tuple(dy.shape) else _unbroadcast(dy, shape) for shape in input_shapes)

    def output_shape(self, *input_shapes):
        shapes_ = [tuple(int(s) for s in shape) for shape in input_shapes]
        try:
            return tuple(int(s) for s in np.broadcast_shapes(*shapes_))
        except ValueError:
            raise ValueError(
                f"Add: inputs must have equal shapes or shapes that broadcast (each axis equal or 1, counted from "
                f"the last), got {', '.join(str(s) for s in shapes_)}"
            ) from None


def _unbroadcast(dy, shape):
    """``dy`` summed back to ``shape``: over the leading axes ``shape`` lacks and the axes where it has 1."""
    extra = dy.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(extra + k for k, size in enumerate(shape) if size == 1 and dy.shape[extra + k] != 1)
    return dy.sum(axis=axes).reshape(shape) if axes else dy.reshape(shape)


class Concat(Module):
    """Concatenation along ``axis`` (channels, axis 1, by default): DenseNet's ``[x_0, x_1, ..., x_{ℓ-1}]``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    DenseNet ("concatenación con todas las salidas de capas anteriores") and
    the parallel branches of Inception. All other axes must agree;
    ``backward(dy)`` splits ``dy`` back into one slice per input.
    """

    def __init__(self, axis=1):
        super().__init__()
        if isinstance(axis, bool) or not isinstance(axis, int) or axis < 1:
            raise ValueError(f"Concat: axis must be an int >= 1 (axis 0 is the batch), got {axis!r}")
        self.axis = axis

    def forward(self, *xs):
        _check_inputs("Concat", xs)
        self.output_shape(*(x.shape for x in xs))
        self.save([x.shape[self.axis] for x in xs])
        return self._keep_output(array_module(xs[0]).concatenate(xs, axis=self.axis))

    def backward(self, dy, *, need_dx=True):
        (sizes,) = self.saved(dy)
        cuts, start = [], 0
        for size in sizes[:-1]:
            start += size
            cuts.append(start)
        return tuple(array_module(dy).split(dy, cuts, axis=self.axis))

    def output_shape(self, *input_shapes):
        shapes_ = [tuple(int(s) for s in shape) for shape in input_shapes]
        first = shapes_[0]
        if len(first) <= self.axis:
            raise ValueError(f"Concat: axis {self.axis} does not exist in an input of shape {first}")
        for i, shape in enumerate(shapes_[1:], start=1):
            if len(shape) != len(first) or shape[: self.axis] + shape[self.axis + 1 :] != first[: self.axis] + first[self.axis + 1 :]:
                raise ValueError(
                    f"Concat: inputs must agree on every axis except {self.axis}; input 0 has shape {first}, "
                    f"input {i} has shape {shape}"
                )
        total = sum(shape[self.axis] for shape in shapes_)
        return first[: self.axis] + (total,) + first[self.axis + 1 :]

    def extra_repr(self):
        return f"axis={self.axis}"
