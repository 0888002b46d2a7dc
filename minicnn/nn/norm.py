"""Normalisation layers: batch, layer and local response normalisation, and ConvNeXt's learned scale."""

from __future__ import annotations

import numpy as np

from .checks import check_array, check_channels, check_dtype, check_shape_ndim, float_dtype, number, positive_int
from .module import Module, Parameter, array_module

__all__ = ["BatchNorm2d", "LocalResponseNorm", "LayerNorm2d", "LayerScale"]


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
        self.num_features = positive_int("BatchNorm2d", "num_features", num_features)
        self.eps = number("BatchNorm2d", "eps", eps, lambda v: v > 0, "> 0")
        self.momentum = number("BatchNorm2d", "momentum", momentum, lambda v: 0 <= v <= 1, "in [0, 1]")
        dtype = float_dtype("BatchNorm2d", dtype)
        self.weight = Parameter(np.ones(self.num_features, dtype=dtype), "weight")
        self.bias = Parameter(np.zeros(self.num_features, dtype=dtype), "bias")
        self.register_buffer("running_mean", np.zeros(self.num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(self.num_features, dtype=dtype))

    def forward(self, x):
        check_array("BatchNorm2d", x, 4, "(N, C, H, W)")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d: expected {self.num_features} channels (num_features), got {x.shape[1]} in input of "
                f"shape {tuple(x.shape)}"
            )
        check_dtype("BatchNorm2d", x, self.weight.data)
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
        self.save(x_hat, inv_std, self.training)
        return self._keep_output(x_hat * self.weight.data.reshape(1, -1, 1, 1) + self.bias.data.reshape(1, -1, 1, 1))

    def backward(self, dy, *, need_dx=True):
        x_hat, inv_std, used_batch_stats = self.saved(dy)
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

    def output_shape(self, input_shape):
        shape = check_shape_ndim("BatchNorm2d", input_shape, 4, "(N, C, H, W)")
        if shape[1] != self.num_features:
            raise ValueError(f"BatchNorm2d: expected {self.num_features} channels, got input shape {shape}")
        return shape

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def _channel_window_sum(a, before, after):
    """``S[:, c] = Σ_{c' = c - before}^{c + after} a[:, c']`` with zeros beyond the channels."""
    xp = array_module(a)
    c = a.shape[1]
    widths = [(0, 0), (before, after)] + [(0, 0)] * (a.ndim - 2)
    padded = xp.pad(a, widths)
    total = padded[:, 0:c].copy()
    for shift in range(1, before + after + 1):
        total += padded[:, shift : shift + c]
    return total


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet's "NORM1"/"NORM2").

    Deck 002_35ce60e4ae78ad9e.txt, "Arquitecturas de redes convolucionales",
    AlexNet listing ("NORM1: Normalization layer"); deck 001_4dad5adb3ac1e716.txt,
    AlexNet ("Normaliza respuestas"). Same formula as
    ``torch.nn.LocalResponseNorm``::

        b_c = a_c / (k + α/n Σ_{c'} a_{c'}²)^β,   c' from c - n//2 to c + (n-1)//2

    (Krizhevsky et al. use n = 5, k = 2, β = 0.75.) Backward, with
    ``D_c = k + α/n S_c``::

        dL/da_j = dy_j D_j^{-β} - (2αβ/n) a_j Σ_{c ∋ j} dy_c a_c D_c^{-β-1}
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = positive_int("LocalResponseNorm", "size", size)
        # k > 0 and alpha >= 0 keep the base k + alpha/n * sum(a^2) positive, so its power is defined.
        self.alpha = number("LocalResponseNorm", "alpha", alpha, lambda v: v >= 0, ">= 0")
        self.beta = number("LocalResponseNorm", "beta", beta)
        self.k = number("LocalResponseNorm", "k", k, lambda v: v > 0, "> 0")

    def forward(self, x):
        if not hasattr(x, "ndim") or x.ndim < 3:
            raise ValueError(
                f"LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got {getattr(x, 'shape', x)!r}"
            )
        if x.dtype.kind != "f":
            raise TypeError(f"LocalResponseNorm: input must be float32/float64, got dtype {x.dtype}")
        n = self.size
        base = self.k + (self.alpha / n) * _channel_window_sum(x * x, n // 2, (n - 1) // 2)
        scale = base ** (-self.beta)
        self.save(x, base, scale)
        return self._keep_output(x * scale)

    def backward(self, dy, *, need_dx=True):
        x, base, scale = self.saved(dy)
        n = self.size
        inner = dy * x * scale / base  # dy_c a_c D_c^{-β-1}
        spread = _channel_window_sum(inner, (n - 1) // 2, n // 2)  # Σ over the windows that contain j
        return dy * scale - (2.0 * self.alpha * self.beta / n) * x * spread

    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        if len(shape) < 3:  # as forward: summary() must not accept a shape that running refuses
            raise ValueError(f"LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got {shape!r}")
        return shape

    def extra_repr(self):
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LayerNorm2d(Module):
    """Layer normalisation over the channels of each pixel: ``y = γ (x - μ) / sqrt(σ² + ε) + β``.

    ConvNeXt's normalisation (deck 000_5f24bd8423292174.txt, "Bloques
    ConvNeXt"; Liu et al., 2022): ``μ`` and ``σ²`` (biased) are taken over
    the ``C`` channels at every ``(n, h, w)``, with per-channel ``γ``, ``β``.
    """

    def __init__(self, num_channels, eps=1e-6, *, dtype=np.float32):
        super().__init__()
        self.num_channels = positive_int("LayerNorm2d", "num_channels", num_channels)
        self.eps = number("LayerNorm2d", "eps", eps, lambda v: v > 0, "> 0")
        dtype = float_dtype("LayerNorm2d", dtype)
        self.weight = Parameter(np.ones(self.num_channels, dtype=dtype), "weight")
        self.bias = Parameter(np.zeros(self.num_channels, dtype=dtype), "bias")

    def _check(self, shape):
        shape = check_shape_ndim("LayerNorm2d", shape, 4, "(N, C, H, W)")
        check_channels("LayerNorm2d", shape, self.num_channels, "num_channels")
        return shape

    def forward(self, x):
        check_array("LayerNorm2d", x, 4, "(N, C, H, W)")
        self._check(x.shape)
        check_dtype("LayerNorm2d", x, self.weight.data)
        xp = array_module(x)
        centred = x - x.mean(axis=1, keepdims=True)
        inv_std = 1.0 / xp.sqrt((centred * centred).mean(axis=1, keepdims=True) + self.eps)
        x_hat = centred * inv_std
        self.save(x_hat, inv_std)
        return self._keep_output(x_hat * self.weight.data.reshape(1, -1, 1, 1) + self.bias.data.reshape(1, -1, 1, 1))

    def backward(self, dy, *, need_dx=True):
        x_hat, inv_std = self.saved(dy)
        self.weight.grad += (dy * x_hat).sum(axis=(0, 2, 3))
        self.bias.grad += dy.sum(axis=(0, 2, 3))
        g = dy * self.weight.data.reshape(1, -1, 1, 1)
        return inv_std * (g - g.mean(axis=1, keepdims=True) - x_hat * (g * x_hat).mean(axis=1, keepdims=True))

    def output_shape(self, input_shape):
        return self._check(input_shape)

    def extra_repr(self):
        return f"{self.num_channels}, eps={self.eps}"


class LayerScale(Module):
    """A learned per-channel scale ``y = γ_c x_c``: ConvNeXt multiplies each residual branch by it (``γ`` starts at 1e-6)."""

    def __init__(self, channels, init_value=1e-6, *, dtype=np.float32):
        super().__init__()
        self.channels = positive_int("LayerScale", "channels", channels)
        init_value = number("LayerScale", "init_value", init_value)
        dtype = float_dtype("LayerScale", dtype)
        self.weight = Parameter(np.full(self.channels, init_value, dtype=dtype), "weight")

    def forward(self, x):
        check_array("LayerScale", x, 4, "(N, C, H, W)")
        check_channels("LayerScale", tuple(x.shape), self.channels, "channels")
        self.save(x)
        return self._keep_output(x * self.weight.data.reshape(1, -1, 1, 1))

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        self.weight.grad += (dy * x).sum(axis=(0, 2, 3))
        return dy * self.weight.data.reshape(1, -1, 1, 1)

    def output_shape(self, input_shape):
        shape = check_shape_ndim("LayerScale", input_shape, 4, "(N, C, H, W)")
        check_channels("LayerScale", shape, self.channels, "channels")
        return shape
