"""Pooling layers: max and average pooling over windows, and global average pooling.

Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN": output
``(H + 2P - F)//S + 1``; the arithmetic runs on the backend's pooling kernels.
"""

from __future__ import annotations

from .. import functional as F
from .. import shapes
from .checks import check_array, check_shape_ndim, spatial_args
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


class _Pool2d(Module):
    _name = "Pool2d"

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = spatial_args(
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

    def output_shape(self, input_shape):
        shape = check_shape_ndim(self._name, input_shape, 4, "(N, C, H, W)")
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
        check_array(self._name, x, 4, "(N, C, H, W)")
        y, indices = F.max_pool2d_with_indices(x, self.kernel_size, stride=self.stride, padding=self.padding)
        self.save(x, indices)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        x, indices = self.saved(dy)
        return F.max_pool2d_grad_from_forward(
            x, dy, self.kernel_size, stride=self.stride, padding=self.padding, indices=indices
        )


class AvgPool2d(_Pool2d):
    """Average pooling (padded zeros count in the mean).

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN".
    Backward: ``deltaPool = kron(delta, ones(F)) / F²`` (deck
    002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", tips for the
    upsampling).
    """

    _name = "AvgPool2d"

    def forward(self, x):
        check_array(self._name, x, 4, "(N, C, H, W)")
        y = F.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)
        self.save(x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        return F.avg_pool2d_grad(x, dy, self.kernel_size, stride=self.stride, padding=self.padding)


class GlobalAvgPool2d(Module):
    """Global average pooling: the mean of each feature map, ``(N, C, H, W) -> (N, C, 1, 1)``.

    Deck 003_7c437a475fa69432.txt, "SUBMUESTRO GLOBAL PROMEDIO". It is average
    pooling with one window the size of the map, so it runs on the backend's
    pooling kernels. Follow it with ``Flatten`` to feed a ``Linear`` layer.
    """

    def forward(self, x):
        check_array("GlobalAvgPool2d", x, 4, "(N, C, H, W)")
        self.save(x)
        return self._keep_output(F.avg_pool2d(x, x.shape[2:]))

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        return F.avg_pool2d_grad(x, dy, x.shape[2:])

    def output_shape(self, input_shape):
        n, c, _, _ = check_shape_ndim("GlobalAvgPool2d", input_shape, 4, "(N, C, H, W)")
        return (n, c, 1, 1)
