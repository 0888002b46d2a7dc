"""The fully connected layer ``y = W a + b``: F6 and the output layer of LeNet-5."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import shapes
from .checks import (
    boolean,
    check_array,
    check_channels,
    check_dtype,
    check_shape_ndim,
    float_dtype,
    initializer,
    make_rng,
    positive_int,
)
from .init import zeros
from .module import Module, Parameter

__all__ = ["Linear"]


class Linear(Module):
    """Fully connected layer ``y = W a + b`` on rows of ``x`` (N, in_features).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (capa FC):
    ``δ^(l) = (W^(l))^T δ^(l+1)``, ``∇W = δ^(l+1) (a^(l))^T``,
    ``∇b = δ^(l+1)``, summed over the batch. Weights have shape
    ``(out_features, in_features)``.
    """

    def __init__(self, in_features, out_features, bias=True, *, init="kaiming_uniform", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = positive_int("Linear", "in_features", in_features)
        self.out_features = positive_int("Linear", "out_features", out_features)
        bias, dtype, init = boolean("Linear", "bias", bias), float_dtype("Linear", dtype), initializer("Linear", init)
        rng = make_rng("Linear", rng)
        self.weight = Parameter(init((self.out_features, self.in_features), rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_features,), dtype=dtype), "bias") if bias else None

    def _check_input_shape(self, shape):
        shape = check_shape_ndim("Linear", shape, 2, "(N, in_features)")
        check_channels("Linear", shape, self.in_features, "in_features", "input features")
        return shape

    def forward(self, x):
        check_array("Linear", x, 2, "(N, in_features)")
        self._check_input_shape(x.shape)
        check_dtype("Linear", x, self.weight.data)
        y = F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self.save(x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        """``dx = dy W`` (None with ``need_dx=False``); adds ``∇W = dyᵀ x`` and ``∇b = Σ dy`` to the ``.grad``."""
        (x,) = self.saved(dy)
        dx, dw, db = F.linear_grad(x, self.weight.data, dy, input_grad=need_dx)
        self.add_grads(weight=dw, bias=db)
        return dx

    def output_shape(self, input_shape):
        n, _ = self._check_input_shape(input_shape)
        return (n, self.out_features)

    def macs(self, input_shape):
        n, _ = self._check_input_shape(input_shape)
        return n * shapes.linear_macs(self.in_features, self.out_features)

    def num_parameters(self):
        return shapes.linear_params(self.in_features, self.out_features, self.bias is not None)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
