"""Argument checks shared by the layers: each raises a ``TypeError``/``ValueError`` that names the layer, the argument and the numbers.

Layers validate their constructor arguments and their inputs here, once, so
``minicnn.functional`` and the kernels below it receive values they can trust.
"""

from __future__ import annotations

import math

import numpy as np

from .. import shapes
from .init import get_initializer

__all__ = [
    "check_array", "check_dtype", "check_shape_ndim", "check_channels", "check_groups", "positive_int", "number",
    "boolean", "float_dtype", "make_rng", "initializer", "spatial_args", "tuple_arg", "output_sizes",
]


def check_array(layer, x, ndim, layout):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(f"{layer}: input must be a numpy.ndarray (or cupy.ndarray), got {type(x).__name__}")
    if x.ndim != ndim:
        hint = " (use Flatten first)" if ndim == 2 and x.ndim > 2 else ""
        raise ValueError(f"{layer}: input must be {ndim}-D {layout}, got {x.ndim}-D array of shape {tuple(x.shape)}{hint}")
    if x.dtype.kind != "f":
        raise TypeError(f"{layer}: input must be float32 or float64, got dtype {x.dtype}")


def check_dtype(layer, x, weight):
    if x.dtype != weight.dtype:
        raise TypeError(
            f"{layer}: input dtype {x.dtype} differs from the weights' dtype {weight.dtype}; cast the input "
            f"(x.astype(np.{weight.dtype})) or the model (model.to(dtype=np.{x.dtype}))"
        )


def check_shape_ndim(layer, shape, ndim, layout):
    shape = tuple(int(s) for s in shape)
    if len(shape) != ndim:
        raise ValueError(f"{layer}: input must be {ndim}-D {layout}, got shape {shape}")
    return shape


def positive_int(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{layer}: {name} must be >= 1, got {value}")
    return int(value)


def number(layer, name, value, ok=None, rule=""):
    """A finite real ``value`` (``ok(value)`` true, ``rule`` says what that means) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer}: {name} must be a number{' ' + rule if rule else ''}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (ok is not None and not ok(value)):
        raise ValueError(f"{layer}: {name} must be a finite number{' ' + rule if rule else ''}, got {value}")
    return float(value)


def boolean(layer, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{layer}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def float_dtype(layer, dtype):
    """``dtype`` as a NumPy floating-point dtype (weights must be float32 or float64)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.kind != "f":
        what = dt if dt is not None else f"{type(dtype).__name__} {dtype!r}"
        raise TypeError(f"{layer}: dtype must be a floating-point type such as np.float32 or np.float64, got {what}")
    return dt


def make_rng(layer, rng):
    """``numpy.random.default_rng(rng)`` with an error that names the layer and the argument."""
    try:
        if isinstance(rng, (bool, float, str, bytes)):
            raise TypeError  # default_rng would take True as the seed 1
        return np.random.default_rng(rng)
    except (TypeError, ValueError):
        raise TypeError(
            f"{layer}: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got {type(rng).__name__} {rng!r}"
        ) from None


def initializer(layer, init):
    try:
        return get_initializer(init)
    except ValueError as exc:
        raise ValueError(f"{layer}: {exc}") from None


def spatial_args(layer, optional=(), **pairs):
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


def tuple_arg(layer, name, value, length, minimum):
    """An int or a ``length``-sequence of ints, each >= ``minimum``, as a tuple."""
    if isinstance(value, bool):
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {length} ints, got bool {value!r}")
    if isinstance(value, (int, np.integer)):
        value = (int(value),) * length
    elif isinstance(value, (tuple, list)) and len(value) == length and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
    ):
        value = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{layer}: {name} must be an int or a tuple of {length} ints, got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{layer}: {name} must be >= {minimum} along every axis, got {name}={value!r}")
    return value


def check_groups(layer, in_channels, out_channels, groups):
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: in_channels={in_channels} and out_channels={out_channels} must both be divisible by "
            f"groups={groups}"
        )


def check_channels(layer, shape, expected, name="in_channels", what="input channels"):
    """Axis 1 of ``shape`` (channels, or a dense layer's features) must be ``expected``, the layer's ``name``."""
    if shape[1] != expected:
        raise ValueError(f"{layer}: expected {expected} {what} ({name}), got {shape[1]} in input of shape {shape}")


def output_sizes(layer, sizes, kernel, stride, padding, dilation):
    """``floor((H + 2P - D*(F-1) - 1)/S) + 1`` along every axis (deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS")."""
    out = []
    for size, k, s, p, d in zip(sizes, kernel, stride, padding, dilation):
        o = shapes.conv_output_size(size, k, s, p, d)
        if o < 1:
            raise ValueError(
                f"{layer}: output size ({size} + 2*{p} - {d}*({k}-1) - 1)//{s} + 1 = {o} < 1: the kernel spans "
                f"{shapes.dilated_extent(k, d)} samples but the padded input has {size + 2 * p}"
            )
        out.append(o)
    return tuple(out)
