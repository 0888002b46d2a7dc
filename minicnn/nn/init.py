"""Weight initialisation that lets a network train.

The slides train LeNet-5 by gradient descent but do not say where the weights
start. These are the two standard choices, matched to the activation:

* **He (Kaiming)**, for ReLU (He et al., "Delving Deep into Rectifiers", 2015):
  ``Var(w) = 2 / fan_in``, so a ReLU layer keeps the variance of its input.
* **Glorot (Xavier)**, for tanh and sigmoid (Glorot & Bengio, "Understanding
  the difficulty of training deep feedforward neural networks", 2010):
  ``Var(w) = 2 / (fan_in + fan_out)``.

For a convolution with weights ``(C_out, C_in/groups, F_H, F_W)`` one output
sees ``fan_in = C_in/groups * F_H * F_W`` inputs and one input feeds
``fan_out = C_out * F_H * F_W`` outputs; for a linear layer ``(out, in)`` they
are ``in`` and ``out``. Every function takes a NumPy ``Generator``, so a seed
fixes the weights.
"""

from __future__ import annotations

import math

import numpy as np

from .. import shapes

__all__ = [
    "fans",
    "kaiming_normal",
    "kaiming_uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
    "shape_only",
    "is_shape_only",
    "get_initializer",
    "INITIALIZERS",
]


def fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape``: (out, in) for linear, (out, in/groups, F_H, F_W) for conv."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"fans: a weight needs at least 2 dimensions (out, in, ...), got shape {shape}")
    receptive_field = shapes.numel(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def kaiming_normal(shape, rng, dtype=np.float32, gain=math.sqrt(2.0)):
    """He normal: ``N(0, std²)`` with ``std = gain / sqrt(fan_in)`` (gain √2 for ReLU)."""
    fan_in, _ = fans(shape)
    return (gain / math.sqrt(fan_in)) * rng.standard_normal(shape, dtype=np.float64).astype(dtype)


def kaiming_uniform(shape, rng, dtype=np.float32, gain=math.sqrt(2.0)):
    """He uniform: ``U(-a, a)`` with ``a = gain * sqrt(3 / fan_in)`` (same variance as ``kaiming_normal``)."""
    fan_in, _ = fans(shape)
    bound = gain * math.sqrt(3.0 / fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def xavier_normal(shape, rng, dtype=np.float32, gain=1.0):
    """Glorot normal: ``N(0, std²)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    return (gain * math.sqrt(2.0 / (fan_in + fan_out))) * rng.standard_normal(shape, dtype=np.float64).astype(dtype)


def xavier_uniform(shape, rng, dtype=np.float32, gain=1.0):
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def zeros(shape, rng=None, dtype=np.float32):
    """All zeros (the usual start for biases)."""
    return np.zeros(shape, dtype=dtype)


def shape_only(shape, rng=None, dtype=np.float32):
    """An initializer that allocates nothing: a read-only, zero-stride view of one zero with ``shape``.

    A weight made so is *shape-only*: its layer knows its shapes (for
    ``summary`` and parameter counts; a 138M-parameter VGG-16 is built in
    milliseconds) but cannot run, be trained or be saved until
    ``Module.materialize`` (or ``load_state_dict``) gives it real values.
    The models of the zoo are built this way (``lazy=True``).
    """
    return np.broadcast_to(np.zeros((), dtype=dtype), tuple(int(s) for s in shape))


def is_shape_only(array):
    """True for an array made by ``shape_only``: read-only, every stride zero, at least one axis and one element."""
    return (
        isinstance(array, np.ndarray)
        and array.ndim > 0
        and array.size > 0
        and not array.flags.writeable
        and not any(array.strides)
    )


INITIALIZERS = {
    "shape_only": shape_only,
    "kaiming_normal": kaiming_normal,
    "kaiming_uniform": kaiming_uniform,
    "he_normal": kaiming_normal,
    "he_uniform": kaiming_uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
}


def get_initializer(init):
    """The function for ``init``: a name in ``INITIALIZERS`` or a callable ``init(shape, rng, dtype) -> array``."""
    if callable(init):
        return init
    if isinstance(init, str) and init in INITIALIZERS:
        return INITIALIZERS[init]
    raise ValueError(f"init must be one of {sorted(INITIALIZERS)} or a callable (shape, rng, dtype) -> array, got {init!r}")
