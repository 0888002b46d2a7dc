"""Pooling layers: max and average pooling over windows, and global average pooling.

Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN": output
``(H + 2P - F)//S + 1``; the arithmetic runs on the backend's pooling kernels.
"""

from __future__ import annotations

from .. import functional as F
from .. import shapes
from .checks import boolean, check_array, check_shape_ndim, positive_int, spatial_args
from .module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


class _Pool2d(Module):
    _name = "Pool2d"
    #: the keyword options of this pooling beyond the deck, with their defaults (torch's names)
    _options = {}

    def __init__(self, kernel_size, stride=None, padding=0, **options):
        super().__init__()
        self.kernel_size, self.stride = spatial_args(
            self._name, ("stride",), kernel_size=(kernel_size, 1), stride=(stride, 1)
        )
        if self.stride is None:
            self.stride = self.kernel_size
        try:
            begin, end = shapes.pad_pairs(padding)
        except TypeError as exc:
            raise TypeError(f"{self._name}: {exc}") from None
        # symmetric padding keeps the (h, w) pair of the deck; asymmetric keeps F.pad's four numbers
        self.padding = begin if begin == end else (begin[1], end[1], begin[0], end[0])
        for axis, k, pads in zip(("height", "width"), self.kernel_size, zip(begin, end)):
            if min(pads) < 0:
                raise ValueError(f"{self._name}: padding must be >= 0 along both axes, got padding={padding!r}")
            if max(pads) > k // 2:
                raise ValueError(
                    f"{self._name}: padding must be at most half the window, padding <= kernel_size//2 = {k}//2 = "
                    f"{k // 2} along {axis}, got padding={padding!r}"
                )
        for name, value in options.items():  # checked by the subclass; what depends on the input size, in forward
            setattr(self, name, value)

    def _geometry_options(self):
        return {name: getattr(self, name) for name in self._options if name != "return_indices"}

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, **self._geometry_options())

    def output_shape(self, input_shape):
        shape = check_shape_ndim(self._name, input_shape, 4, "(N, C, H, W)")
        geometry = shapes.pool2d_geometry(shape, self.kernel_size, self.stride, self.padding, fn=self._name,
                                          **self._geometry_options())
        return geometry.y_shape

    def extra_repr(self):
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        for name, default in self._options.items():
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text


class MaxPool2d(_Pool2d):
    """Max pooling: each output is the largest activation of its window.

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN" (output
    ``(H + 2P - F)//S + 1``; ``stride=None`` means the window size, as S2 of
    deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : POOL:S2").
    Backward: "En la decimación se actualiza sólo la neurona ganadora" (deck
    003, "RETRO-PROPAGACIÓN EN CAPAS CONVOLUCIONALES Y DE SUBMUESTREO"); the
    winners' indices are kept from the forward pass.

    Beyond the deck, as ``torch.nn.MaxPool2d``: ``dilation``, ``ceil_mode``
    (see ``minicnn.functional.max_pool2d``) and ``return_indices=True``, with
    which ``forward`` returns ``(y, indices)`` (``backward`` still takes the
    gradient of ``y`` alone). ``padding`` may be four F.pad ints
    ``(left, right, top, bottom)``.
    """

    _name = "MaxPool2d"
    _options = {"dilation": (1, 1), "return_indices": False, "ceil_mode": False}

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        (dilation,) = spatial_args(self._name, dilation=(dilation, 1))
        super().__init__(kernel_size, stride, padding, dilation=dilation,
                         return_indices=boolean(self._name, "return_indices", return_indices),
                         ceil_mode=boolean(self._name, "ceil_mode", ceil_mode))

    def forward(self, x):
        check_array(self._name, x, 4, "(N, C, H, W)")
        y, indices = F.max_pool2d_with_indices(x, self.kernel_size, **self._args())
        self.save(x, indices)
        self._keep_output(y)
        return (y, indices) if self.return_indices else y

    def backward(self, dy, *, need_dx=True):
        x, indices = self.saved(dy)
        return F.max_pool2d_grad_from_forward(x, dy, self.kernel_size, indices=indices, **self._args())


class AvgPool2d(_Pool2d):
    """Average pooling (padded zeros count in the mean).

    Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN".
    Backward: ``deltaPool = kron(delta, ones(F)) / F²`` (deck
    002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", tips for the
    upsampling).

    Beyond the deck, as ``torch.nn.AvgPool2d``: ``ceil_mode``,
    ``count_include_pad`` and ``divisor_override`` (see
    ``minicnn.functional.avg_pool2d``).
    """

    _name = "AvgPool2d"
    _options = {"ceil_mode": False, "count_include_pad": True, "divisor_override": None}

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        if divisor_override is not None:
            divisor_override = positive_int(self._name, "divisor_override", divisor_override)
        super().__init__(kernel_size, stride, padding, ceil_mode=boolean(self._name, "ceil_mode", ceil_mode),
                         count_include_pad=boolean(self._name, "count_include_pad", count_include_pad),
                         divisor_override=divisor_override)

    def forward(self, x):
        check_array(self._name, x, 4, "(N, C, H, W)")
        y = F.avg_pool2d(x, self.kernel_size, **self._args())
        self.save(x)
        return self._keep_output(y)

    def backward(self, dy, *, need_dx=True):
        (x,) = self.saved(dy)
        return F.avg_pool2d_grad(x, dy, self.kernel_size, **self._args())


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
