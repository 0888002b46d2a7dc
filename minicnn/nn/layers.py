"""The layers of the slides, each a ``forward``/``backward`` pair around one formula.

Layers own state (weights, the cache one backward pass needs); the arithmetic
of convolution and pooling is done by ``minicnn.functional``, so the current
backend (``minicnn.use_backend``) does the work and a layer never loops over
pixels. Activations keep their *output* and differentiate through it.
Everything stays in the input's dtype (float32 for training, float64 for
gradient checks) and on the input's device (NumPy or CuPy).

Shapes are NCHW; ``output_shape`` and ``macs`` answer from ``minicnn.shapes``
without computing anything (``Sequential.summary`` uses them).
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import shapes
from ..backends import backend_for_array
from .init import get_initializer, zeros
from .module import Module, Parameter, array_module

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


# ------------------------------------------------------------------- checks
def _check_array(layer, x, ndim, layout):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{layer}: input must be a numpy.ndarray (or cupy.ndarray), got {type(x).__name__}")
    if x.ndim != ndim:
        hint = " (use Flatten first)" if ndim == 2 and x.ndim > 2 else ""
        raise ValueError(f"{layer}: input must be {ndim}-D {layout}, got {x.ndim}-D array of shape {tuple(x.shape)}{hint}")
    if x.dtype.kind != "f":
        raise TypeError(f"{layer}: input must be float32 or float64, got dtype {x.dtype}")


def _check_dtype(layer, x, weight):
    if x.dtype != weight.dtype:
        raise TypeError(
            f"{layer}: input dtype {x.dtype} differs from the weights' dtype {weight.dtype}; cast the input "
            f"(x.astype(np.{weight.dtype})) or the model (model.to(dtype=np.{x.dtype}))"
        )


def _check_shape_ndim(layer, shape, ndim, layout):
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim:
        raise ValueError(f"{layer}: input must be {ndim}-D {layout}, got shape {shape}")
    return shape


def _positive_int(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{layer}: {name} must be >= 1, got {value}")
    return int(value)


def _number(layer, name, value, ok=None, rule=""):
    """A finite real ``value`` (``ok(value)`` true, ``rule`` says what that means) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer}: {name} must be a number{' ' + rule if rule else ''}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (ok is not None and not ok(value)):
        raise ValueError(f"{layer}: {name} must be a finite number{' ' + rule if rule else ''}, got {value}")
    return float(value)


def _bool(layer, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{layer}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _float_dtype(layer, dtype):
    """``dtype`` as a NumPy floating-point dtype (weights must be float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        what = dt if dt is not None else f"{type(dtype).__name__} {dtype!r}"
        raise TypeError(f"{layer}: dtype must be a floating-point type such as np.float32 or np.float64, got {what}")
    return dt


def _make_rng(layer, rng):
    """``numpy.random.default_rng(rng)`` with an error that names the layer and the argument."""
    try:
        if isinstance(rng, (bool, float, str, bytes)):
            raise TypeError  # default_rng would take True as the seed 1
        return np.random.default_rng(rng)
    except (TypeError, ValueError):
        raise TypeError(
            f"{layer}: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got {type(rng).__name__} {rng!r}"
        ) from None


def _initializer(layer, init):
    try:
        return get_initializer(init)
    except ValueError as exc:
        raise ValueError(f"{layer}: {exc}") from None


def _spatial_args(layer, optional=(), **pairs):
    """Each ``name=(value, minimum)`` as an ``(h, w)`` pair of ints >= minimum; names in ``optional`` may be None."""
    out = []
    for name, (value, minimum) in pairs.items():
        if value is None and name in optional:
            out.append(None)
            continue
        try:
            pair = shapes.pair(value, name)
        except TypeError as exc:
            raise TypeError(f"{layer}: {exc}") from None
        if min(pair) < minimum:
            raise ValueError(f"{layer}: {name} must be >= {minimum} along both axes, got {name}={value!r}")
        out.append(pair)
    return out


# -------------------------------------------------------------- convolution
class Conv2d(Module):
    """2-D convolution layer: ``A_i = w_i * I + b_i`` for each of ``out_channels`` filters.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : CONV:C1"
    (computed, as every framework does, as a cross-correlation; deck
    003_7c437a475fa69432.txt, "PESOS COMPARTIDOS"). Output size
    ``(H + 2P - D*(F-1) - 1)//S + 1`` (deck 003, "CAPA CONVOLUCIONAL:
    HIPERPARÁMETROS"); parameters ``C_out*(C_in/groups)*F_H*F_W + C_out``
    (deck 002: C1 has ``25*6 + 6 = 156``).

    Backward (deck 002, "Aprendizaje: Backpropagation", eq. 2):
    ``∇W_k = Σ_i a_i * rot90(δ_k, 2)``, ``∇b_k = Σ_{a,b} (δ_k)_{a,b}``, and the
    error goes back through the transposed filters.

    Weights ``(C_out, C_in/groups, F_H, F_W)`` start from ``init`` (He uniform
    by default, see ``minicnn.nn.init``), biases from zero; ``rng`` (a NumPy
    ``Generator`` or a seed) makes them reproducible.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        *,
        init="kaiming_uniform",
        rng=None,
        dtype=np.float32,
    ):
        super().__init__()
        name = type(self).__name__
        self.in_channels = _positive_int(name, "in_channels", in_channels)
        self.out_channels = _positive_int(name, "out_channels", out_channels)
        self.groups = _positive_int(name, "groups", groups)
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(
                f"{name}: in_channels={self.in_channels} and out_channels={self.out_channels} must both be "
                f"divisible by groups={self.groups}"
            )
        self.kernel_size, self.stride, self.padding, self.dilation = _spatial_args(
            name, kernel_size=(kernel_size, 1), stride=(stride, 1), padding=(padding, 0), dilation=(dilation, 1)
        )
        bias, dtype, init = _bool(name, "bias", bias), _float_dtype(name, dtype), _initializer(name, init)
        rng = _make_rng(name, rng)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(init(shape, rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_channels,), dtype=dtype), "bias") if bias else None
        self._x = None
        self._plan = None
        self._plan_for = None

    def _check_input_shape(self, shape):
        n, c, h, w = _check_shape_ndim("Conv2d", shape, 4, "(N, C_in, H, W)")
        if c != self.in_channels:
            raise ValueError(
                f"Conv2d: expected {self.in_channels} input channels (in_channels), got {c} in input of shape {shape}"
            )
        return shape

    def forward(self, x):
        _check_array("Conv2d", x, 4, "(N, C_in, H, W)")
        self._check_input_shape(x.shape)
        _check_dtype("Conv2d", x, self.weight.data)
        b = None if self.bias is None else self.bias.data
        args = dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)
        # the kernel plan chosen for this input goes with it to the backward pass, which never decides again
        backend = backend_for_array(x).name
        if self._plan_for != (x.shape, self.weight.data.shape, x.dtype, backend):
            self._plan = F.conv2d_plan(x.shape, self.weight.shape, dtype=x.dtype, **args, backend=backend)
            self._plan_for = (x.shape, self.weight.data.shape, x.dtype, backend)
        y = F.conv2d(x, self.weight.data, b, plan=self._plan, **args)
        self._x = x
        return self._keep_output(y)

    accepts_input_grad = True

    def backward(self, dy, input_grad=True):
        """``dx`` (None with ``input_grad=False``, which skips its cost); adds ``∇W``, ``∇b`` to the ``.grad``."""
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        dx, dw, db = F.conv2d_grad(
            x,
            self.weight.data,
            dy,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            input_grad=input_grad,
            plan=self._plan,
        )
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        self._x = None
        return dx

    def _clear_cache(self):
        self._x = None

    def output_shape(self, input_shape):
        shape = self._check_input_shape(input_shape)
        out = shapes.conv2d_output_shape(shape, self.weight.shape, self.stride, self.padding, self.dilation)
        if min(out[2:]) < 1:
            raise ValueError(
                f"Conv2d: input {shape} is too small for kernel {self.kernel_size} (dilation {self.dilation}, "
                f"padding {self.padding}, stride {self.stride}): output (H + 2P - D*(F-1) - 1)//S + 1 gives {out[2:]}"
            )
        return out

    def macs(self, input_shape):
        out = self.output_shape(input_shape)
        per_sample = shapes.conv2d_macs(self.in_channels, self.out_channels, self.kernel_size, out[2:], self.groups)
        return out[0] * per_sample

    def num_parameters(self):
        return shapes.conv2d_params(
            self.in_channels, self.out_channels, self.kernel_size, self.groups, self.bias is not None
        )

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text


# ------------------------------------------------------------------- linear
class Linear(Module):
    """Fully connected layer ``y = W a + b`` on rows of ``x`` (N, in_features).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (capa FC):
    ``δ^(l) = (W^(l))^T δ^(l+1)``, ``∇W = δ^(l+1) (a^(l))^T``,
    ``∇b = δ^(l+1)``, summed over the batch. Weights have shape
    ``(out_features, in_features)``.
    """

    def __init__(self, in_features, out_features, bias=True, *, init="kaiming_uniform", rng=None, dtype=np.float32):
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        bias, dtype, init = _bool("Linear", "bias", bias), _float_dtype("Linear", dtype), _initializer("Linear", init)
        rng = _make_rng("Linear", rng)
        self.weight = Parameter(init((self.out_features, self.in_features), rng, dtype), "weight")
        self.bias = Parameter(zeros((self.out_features,), dtype=dtype), "bias") if bias else None
        self._x = None

    def _check_input_shape(self, shape):
        n, f = _check_shape_ndim("Linear", shape, 2, "(N, in_features)")
        if f != self.in_features:
            raise ValueError(
                f"Linear: expected {self.in_features} input features (in_features), got {f} in input of shape {shape}"
            )
        return shape

    def forward(self, x):
        _check_array("Linear", x, 2, "(N, in_features)")
        self._check_input_shape(x.shape)
        _check_dtype("Linear", x, self.weight.data)
        y = F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self._x = x
        return self._keep_output(y)

    accepts_input_grad = True

    def backward(self, dy, input_grad=True):
        """``dx = dy W`` (None with ``input_grad=False``); adds ``∇W = dyᵀ x`` and ``∇b = Σ dy`` to the ``.grad``."""
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        dx, dw, db = F.linear_grad(x, self.weight.data, dy, input_grad=input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        self._x = None
        return dx

    def _clear_cache(self):
        self._x = None

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


# ------------------------------------------------------------------ pooling
class _Pool2d(Module):
    _name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = _spatial_args(
            self._name, ("stride",), kernel_size=(kernel_size, 1), stride=(stride, 1), padding=(padding, 0)
        )
        if self.stride is None:
            self.stride = self.kernel_size
        for axis, k, p in zip(("height", "width"), self.kernel_size, self.padding):
            if p > k // 2:
                raise ValueError(
                    f"{self._name}: padding must be at most half the window, padding <= kernel_size//2 = {k}//2 = "
                    f"{k // 2} along {axis}, got padding={padding!r}"
                )
        self._x = None

    def _clear_cache(self):
        self._x = None

    def output_shape(self, input_shape):
        shape = _check_shape_ndim(self._name, input_shape, 4, "(N, C, H, W)")
        out = shapes.pool2d_output_shape(shape, self.kernel_size, self.stride, self.padding)
        if min(out[2:]) < 1:
            raise ValueError(
                f"{self._name}: input {shape} is too small for window {self.kernel_size} (padding {self.padding}, "
                f"stride {self.stride}): output (H + 2P - F)//S + 1 gives {out[2:]}"
            )
        return out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max pooling: each output is the largest activation of its window.

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN" (output
    ``(H + 2P - F)//S + 1``; ``stride=None`` means the window size, as S2 of
    deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : POOL:S2").
    Backward: "En la decimación se actualiza sólo la neurona ganadora" (deck
    003, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES Y DE SUBMUESTREO"); the
    winners' indices are kept from the forward pass.
    """

    _name = "MaxPool2d"

    def forward(self, x):
        _check_array(self._name, x, 4, "(N, C, H, W)")
        y, self._indices = F.max_pool2d_with_indices(x, self.kernel_size, stride=self.stride, padding=self.padding)
        self._x = x
        return self._keep_output(y)

    def backward(self, dy):
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        dx = F.max_pool2d_grad_from_forward(
            x, dy, self.kernel_size, stride=self.stride, padding=self.padding, indices=self._indices
        )
        self._x = self._indices = None
        return dx

    def _clear_cache(self):
        self._x = self._indices = None


class AvgPool2d(_Pool2d):
    """Average pooling (padded zeros count in the mean).

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN".
    Backward: ``deltaPool = kron(delta, ones(F)) / F²`` (deck
    002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", tips for the
    upsampling).
    """

    _name = "AvgPool2d"

    def forward(self, x):
        _check_array(self._name, x, 4, "(N, C, H, W)")
        y = F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)
        self._x = x
        return self._keep_output(y)

    def backward(self, dy):
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        dx = F.avg_pool2d_grad(x, dy, self.kernel_size, stride=self.stride, padding=self.padding)
        self._x = None
        return dx


class GlobalAvgPool2d(Module):
    """Global average pooling: the mean of each feature map, ``(N, C, H, W) -> (N, C, 1, 1)``.

    Deck 003_7c437a475fa69432.txt, "SUBMUESTRO GLOBAL PROMEDIO". It is average
    pooling with one window the size of the map, so it runs on the backend's
    pooling kernels. Follow it with ``Flatten`` to feed a ``Linear`` layer.
    """

    def __init__(self):
        super().__init__()
        self._x = None

    def forward(self, x):
        _check_array("GlobalAvgPool2d", x, 4, "(N, C, H, W)")
        self._x = x
        return self._keep_output(F.avg_pool2d(x, x.shape[2:]))

    def backward(self, dy):
        x = self._x
        if x is None:
            raise self._no_forward()
        self._check_dy(dy)
        self._x = None
        return F.avg_pool2d_grad(x, dy, x.shape[2:])

    def _clear_cache(self):
        self._x = None

    def output_shape(self, input_shape):
        n, c, _, _ = _check_shape_ndim("GlobalAvgPool2d", input_shape, 4, "(N, C, H, W)")
        return (n, c, 1, 1)


# -------------------------------------------------------------- activations
class _Activation(Module):
    """Elementwise ``y = f(x)``; backward ``dx = dy ∘ f'(x)`` written with the cached output ``y``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def _clear_cache(self):
        self._y = None

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)

    def _check(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            what = x.dtype if hasattr(x, "dtype") else type(x).__name__
            raise TypeError(f"{type(self).__name__}: input must be a float32/float64 array, got {what}")

    def _take_output(self, dy):
        y = self._y
        if y is None:
            raise self._no_forward()
        self._check_dy(dy)
        self._y = None
        return y


class ReLU(_Activation):
    """Rectified linear unit ``y = max(0, x)``; ``f'(x) = 1`` where ``y > 0``, else 0.

    Deck 004_d4430ea77d2b90c2.txt, "Función de activación" (a ReLU after each
    convolution); deck 002_35ce60e4ae78ad9e.txt, AlexNet ("ReLu ... como
    función de activación").
    """

    def __init__(self, inplace=False):
        super().__init__()
        if not isinstance(inplace, bool):
            raise TypeError(f"ReLU: inplace must be a bool, got {type(inplace).__name__} {inplace!r}")
        self.inplace = inplace

    def forward(self, x):
        self._check(x)
        xp = array_module(x)
        # inplace: overwrite x (and, in backward, dy) instead of allocating; only for inputs
        # nobody else reads, such as a convolution's output inside a Sequential
        self._y = y = xp.maximum(x, 0, out=x) if self.inplace else xp.maximum(x, 0)
        return self._keep_output(y)

    def backward(self, dy):
        y = self._take_output(dy)
        if self.inplace:
            return array_module(dy).multiply(dy, y > 0, out=dy)
        return dy * (y > 0)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Sigmoid(_Activation):
    """Logistic sigmoid ``C = 1 / (1 + e^{-A})``; ``f'(A) = C (1 - C)``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : CONV:C1".
    Computed with ``scipy.special.expit`` (``cupyx`` on the GPU), which never
    overflows.
    """

    def forward(self, x):
        self._check(x)
        if array_module(x) is np:
            from scipy.special import expit
        else:
            from cupyx.scipy.special import expit
        self._y = y = expit(x)
        return self._keep_output(y)

    def backward(self, dy):
        y = self._take_output(dy)
        return dy * y * (1 - y)


class Tanh(_Activation):
    """Hyperbolic tangent ``y = tanh(x)``; ``f'(x) = 1 - y²``.

    A rescaled sigmoid (``tanh(x) = 2σ(2x) - 1``, deck 002_35ce60e4ae78ad9e.txt,
    "Arquitectura de la Red : CONV:C1" has σ) centred on zero; the slides'
    backpropagation (eq. 2) needs only its derivative ``f'``.
    """

    def forward(self, x):
        self._check(x)
        self._y = y = array_module(x).tanh(x)
        return self._keep_output(y)

    def backward(self, dy):
        y = self._take_output(dy)
        return dy * (1 - y * y)


class Identity(Module):
    """``y = x`` (a placeholder, e.g. the skip path of a residual block)."""

    def __init__(self):
        super().__init__()

    def forward(self, x):
        return self._keep_output(x)

    def backward(self, dy):
        return self._check_dy(dy)

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)


# --------------------------------------------------------------- reshaping
class Flatten(Module):
    """``(N, C, H, W) -> (N, C*H*W)``: the feature maps become the input vector of a dense layer.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red": the 16x5x5
    outputs of S4 (400 neurons) feed the fully connected layers.
    """

    def __init__(self):
        super().__init__()
        self._shape = None

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 2:
            raise ValueError(f"Flatten: input must have a batch axis and at least one more, got {getattr(x, 'shape', x)!r}")
        self._shape = x.shape
        return self._keep_output(x.reshape(x.shape[0], -1))

    def backward(self, dy):
        if self._shape is None:
            raise self._no_forward()
        self._check_dy(dy)
        shape, self._shape = self._shape, None
        return dy.reshape(shape)

    def _clear_cache(self):
        self._shape = None

    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        if len(shape) < 2:
            raise ValueError(f"Flatten: input must have a batch axis and at least one more, got shape {shape}")
        return (shape[0], shapes.numel(shape[1:]))


# ------------------------------------------------------------------ dropout
class Dropout(Module):
    """Dropout: in training, zero each activation with probability ``p``.

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    AlexNet: "setting to zero the output of each hidden neuron with
    probability 0.5 ... [they] do not participate in backpropagation". This is
    *inverted* dropout: the kept activations are scaled by ``1/(1-p)`` while
    training, so evaluation (``eval()``) is the identity with no rescaling.
    The same mask gates the gradient.
    """

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"Dropout: p must be a number in [0, 1], got {type(p).__name__} {p!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"Dropout: p is a probability and must lie in [0, 1], got {p}")
        self.p = float(p)
        self.rng = _make_rng("Dropout", rng)
        self._gpu_rng = None
        self._mask = None
        self._ran = False

    def _uniform(self, x):
        xp = array_module(x)
        if xp is np:
            return self.rng.random(x.shape, dtype=x.dtype)
        if self._gpu_rng is None:
            # Seeded from the NumPy generator, so a seed still fixes the masks on the GPU.
            self._gpu_rng = xp.random.default_rng(int(self.rng.integers(2**63)))
        return self._gpu_rng.random(x.shape, dtype=x.dtype)

    def forward(self, x):
        if not hasattr(x, "dtype") or x.dtype.kind != "f":
            raise TypeError(f"Dropout: input must be a float32/float64 array, got {type(x).__name__}")
        self._ran = True
        if not self.training or self.p == 0.0:
            self._mask = None
            return self._keep_output(x)
        xp = array_module(x)
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        self._mask = xp.where(self._uniform(x) >= self.p, x.dtype.type(scale), x.dtype.type(0))
        return self._keep_output(x * self._mask)

    def backward(self, dy):
        if not self._ran:
            raise self._no_forward()
        self._check_dy(dy)
        self._ran = False
        mask, self._mask = self._mask, None
        return dy if mask is None else dy * mask

    def _clear_cache(self):
        self._mask = None
        self._ran = False

    def output_shape(self, input_shape):
        return tuple(int(s) for s in input_shape)

    def extra_repr(self):
        return f"p={self.p}"


# ------------------------------------------------------------ normalisation
class BatchNorm2d(Module):
    """Batch normalisation of each channel: ``y = γ (x - μ_B) / sqrt(σ²_B + ε) + β``.

    The "BN" of DenseNet's ``H = BN + ReLu + Conv 3×3`` (deck
    002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    DenseNet); the formula is Ioffe & Szegedy (2015). In training, ``μ_B`` and
    ``σ²_B`` are the mean and (biased) variance over N, H, W, and the running
    estimates (buffers ``running_mean``, ``running_var``, the latter with the
    unbiased variance) move by ``momentum``; in evaluation the running
    estimates are used.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32):
        super().__init__()
        self.num_features = _positive_int("BatchNorm2d", "num_features", num_features)
        self.eps = _number("BatchNorm2d", "eps", eps, lambda v: v > 0, "> 0")
        self.momentum = _number("BatchNorm2d", "momentum", momentum, lambda v: 0 <= v <= 1, "in [0, 1]")
        dtype = _float_dtype("BatchNorm2d", dtype)
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype), "weight")
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype), "bias")
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))
        self._cache = None

    def forward(self, x):
        _check_array("BatchNorm2d", x, 4, "(N, C, H, W)")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d: expected {self.num_features} channels (num_features), got {x.shape[1]} in input of "
                f"shape {tuple(x.shape)}"
            )
        _check_dtype("BatchNorm2d", x, self.weight.data)
        xp = array_module(x)
        axes = (0, 2, 3)
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise ValueError(f"BatchNorm2d: training needs more than one value per channel, got input {tuple(x.shape)}")
            mean = x.mean(axis=axes)
            centred = x - mean.reshape(1, -1, 1, 1)
            var = (centred * centred).mean(axis=axes)
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean
            self.running_var = (1 - m) * self.running_var + m * var * (count / (count - 1))
        else:
            centred = x - self.running_mean.reshape(1, -1, 1, 1)
            var = self.running_var
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        x_hat = centred * inv_std.reshape(1, -1, 1, 1)
        self._cache = (x_hat, inv_std, self.training)
        return self._keep_output(x_hat * self.weight.data.reshape(1, -1, 1, 1) + self.bias.data.reshape(1, -1, 1, 1))

    def backward(self, dy):
        if self._cache is None:
            raise self._no_forward()
        self._check_dy(dy)
        x_hat, inv_std, used_batch_stats = self._cache
        self._cache = None
        axes = (0, 2, 3)
        dgamma = (dy * x_hat).sum(axis=axes)
        dbeta = dy.sum(axis=axes)
        self.weight.grad += dgamma
        self.bias.grad += dbeta
        scale = (self.weight.data * inv_std).reshape(1, -1, 1, 1)
        if not used_batch_stats:
            return dy * scale
        count = dy.shape[0] * dy.shape[2] * dy.shape[3]
        return scale * (dy - (dbeta / count).reshape(1, -1, 1, 1) - x_hat * (dgamma / count).reshape(1, -1, 1, 1))

    def _clear_cache(self):
        self._cache = None

    def output_shape(self, input_shape):
        shape = _check_shape_ndim("BatchNorm2d", input_shape, 4, "(N, C, H, W)")
        if shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected {self.num_features} channels, got input shape {shape}")
        return shape

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
