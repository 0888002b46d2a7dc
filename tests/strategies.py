"""Shared Hypothesis strategies for the minicnn test suite.

Everything drawn here is small (N <= 3, C <= 6, H, W <= 12, kernels <= 4) so a
property runs in milliseconds, and always valid unless the strategy says
otherwise:

* ``conv_configs`` draws ``(N, C_in, C_out, H, W, kernel, stride, padding,
  dilation, groups)`` whose output is at least 1x1 (deck
  003_7c437a475fa69432.txt, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS", with the
  dilated extent of deck 000_5f24bd8423292174.txt, "CONVOLUCIÓN DILATADA") and
  whose channel counts are divisible by ``groups``;
* ``pool_configs`` draws pooling windows with ``padding <= kernel_size//2``
  (deck 003, "CAPA DE SUBMUESTREO O DECIMACIÓN");
* ``invalid_calls`` draws calls that ``minicnn.functional`` must reject, with the
  exception type and the numbers its message has to show.

Arrays are not drawn element by element: a strategy draws an integer seed and
``numpy.random.default_rng(seed)`` fills the array, which keeps Hypothesis fast
and the examples reproducible. ``with_layout`` hands the same values back as a
non-contiguous view (transposed, strided, reversed or Fortran-ordered), and
``as_backend_array`` moves an array to the device a backend works on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from minicnn import shapes

MAX_N = 3
MAX_C = 6
MAX_HW = 12
MAX_K = 4

FLOAT_DTYPES = (np.float32, np.float64)
float_dtypes = st.sampled_from(FLOAT_DTYPES)
seeds = st.integers(min_value=0, max_value=2**32 - 1)

#: Memory layouts with the same values: "contiguous" plus four non-contiguous views.
LAYOUTS = ("contiguous", "transposed", "strided", "reversed", "fortran")
NON_CONTIGUOUS_LAYOUTS = LAYOUTS[1:]
layouts = st.sampled_from(LAYOUTS)
non_contiguous_layouts = st.sampled_from(NON_CONTIGUOUS_LAYOUTS)


# ------------------------------------------------------------------ device helpers
def array_module(backend_name):
    """NumPy, or CuPy for the "cupy" backend."""
    if backend_name == "cupy":
        import cupy

        return cupy
    return np


def to_numpy(a):
    """Bring an array back to the host (CuPy arrays have ``.get()``); other values pass through."""
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return a


def as_backend_array(a, backend_name, layout="contiguous"):
    """``a`` (a NumPy array) on the device of ``backend_name``, laid out as ``layout``.

    The layout is applied on the device, so a CuPy array can be non-contiguous
    too. Anything that is not a NumPy array is returned unchanged.
    """
    if not isinstance(a, np.ndarray):
        return a
    xp = array_module(backend_name)
    return with_layout(xp.asarray(a), layout)


def with_layout(a, layout):
    """The values of ``a`` as a view with the given memory ``layout`` (see ``LAYOUTS``).

    * "transposed": a C-contiguous copy of the axes reversed, viewed back;
    * "strided": every other element along the last axis of a twice-as-wide buffer;
    * "reversed": a copy flipped along the last two axes, viewed flipped back
      (negative strides);
    * "fortran": column-major order.

    Works for NumPy and CuPy arrays alike.
    """
    if layout == "contiguous":
        return a
    xp = np if isinstance(a, np.ndarray) else array_module("cupy")
    if a.ndim == 0:
        return a
    if layout == "transposed":
        return xp.ascontiguousarray(a.T).T
    if layout == "strided":
        buffer = xp.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        buffer[..., ::2] = a
        return buffer[..., ::2]
    if layout == "reversed":
        flip = (Ellipsis, slice(None, None, -1), slice(None, None, -1)) if a.ndim >= 2 else (slice(None, None, -1),)
        return xp.ascontiguousarray(a[flip])[flip]
    if layout == "fortran":
        return xp.asfortranarray(a)
    raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")


# ------------------------------------------------------------------------- arrays
def random_array(rng, shape, dtype, low=-1.0, high=1.0):
    """Uniform values in ``[low, high)`` from the ``numpy.random.Generator`` ``rng``."""
    return rng.uniform(low, high, size=shape).astype(dtype)


def distinct_array(rng, shape, dtype):
    """Values in ``[-1, 1]`` that are pairwise distinct, at least ``2/size`` apart (no ties for max pooling)."""
    size = int(np.prod(shape))
    ranks = rng.permutation(size).reshape(shape)
    return ((2.0 * ranks - (size - 1)) / max(size, 1)).astype(dtype)


def tied_array(rng, shape, dtype, levels=3):
    """Values from only ``levels`` distinct numbers, so max-pooling windows often tie."""
    return rng.integers(0, levels, size=shape).astype(dtype)


# ------------------------------------------------------------ convolution configs
def _compact(value, compact):
    """An ``(h, w)`` pair, or the int it repeats when ``compact`` (both forms are accepted)."""
    return value[0] if compact and value[0] == value[1] else value


@dataclass(frozen=True)
class ConvConfig:
    """A valid conv2d configuration: input (N, C_in, H, W), filters (C_out, C_in/groups, kh, kw)."""

    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    compact: bool = False

    @property
    def x_shape(self):
        return (self.n, self.c_in, self.h, self.w)

    @property
    def w_shape(self):
        return (self.c_out, self.c_in // self.groups) + tuple(self.kernel)

    @property
    def out_shape(self):
        return shapes.conv2d_output_shape(self.x_shape, self.w_shape, self.stride, self.padding, self.dilation)

    @property
    def kwargs(self):
        """Keyword arguments of ``conv2d``/``conv2d_grad`` (ints where both axes agree and ``compact``)."""
        return dict(
            stride=_compact(self.stride, self.compact),
            padding=_compact(self.padding, self.compact),
            dilation=_compact(self.dilation, self.compact),
            groups=self.groups,
        )


def _axis_pair(draw, values):
    """Draw an ``(h, w)`` pair; each element from ``values`` (a strategy or an int)."""
    if isinstance(values, int):
        return (values, values)
    return (draw(values), draw(values))


@st.composite
def conv_configs(
    draw,
    kernels=st.integers(1, MAX_K),
    strides=st.integers(1, 3),
    paddings=st.integers(0, 2),
    dilations=st.integers(1, 3),
    groups=st.sampled_from([1, 1, 2, 3]),
    max_n=MAX_N,
    max_c=MAX_C,
    max_hw=MAX_HW,
    spatial_multiple_of_stride=False,
):
    """Valid conv2d configurations; pass an int instead of a strategy to fix a hyperparameter.

    ``H`` and ``W`` are drawn so that ``H + 2P >= D*(F - 1) + 1`` (output >= 1),
    at most ``max_hw`` unless the dilated kernel alone is wider. With
    ``spatial_multiple_of_stride`` they are multiples of the stride.
    """
    g = groups if isinstance(groups, int) else draw(groups)
    c_in = g * draw(st.integers(1, max(1, max_c // g)))
    c_out = g * draw(st.integers(1, max(1, max_c // g)))
    kernel = _axis_pair(draw, kernels)
    stride = _axis_pair(draw, strides)
    padding = _axis_pair(draw, paddings)
    dilation = _axis_pair(draw, dilations)
    hw = []
    for k, s, p, d in zip(kernel, stride, padding, dilation):
        smallest = max(1, shapes.dilated_extent(k, d) - 2 * p)
        if spatial_multiple_of_stride:
            hw.append(s * draw(st.integers(-(-smallest // s), max(-(-smallest // s), max_hw // s))))
        else:
            hw.append(draw(st.integers(smallest, max(smallest, max_hw))))
    n = draw(st.integers(1, max_n))
    return ConvConfig(n, c_in, c_out, hw[0], hw[1], kernel, stride, padding, dilation, g, draw(st.booleans()))


# ----------------------------------------------------------------- pooling configs
@dataclass(frozen=True)
class PoolConfig:
    """A valid pooling configuration: input (N, C, H, W), window, stride (None = window), padding."""

    n: int
    c: int
    h: int
    w: int
    kernel: tuple
    stride: tuple | None
    padding: tuple
    compact: bool = False

    @property
    def x_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def effective_stride(self):
        return self.kernel if self.stride is None else self.stride

    @property
    def out_shape(self):
        return shapes.pool2d_output_shape(self.x_shape, self.kernel, self.stride, self.padding)

    @property
    def kwargs(self):
        """Keyword arguments of the pooling functions except ``kernel_size``."""
        stride = None if self.stride is None else _compact(self.stride, self.compact)
        return dict(stride=stride, padding=_compact(self.padding, self.compact))

    @property
    def kernel_size(self):
        return _compact(self.kernel, self.compact)


@st.composite
def pool_configs(
    draw,
    kernels=st.integers(1, MAX_K),
    strides=st.integers(1, 3),
    default_stride=st.booleans(),
    padded=True,
    max_n=MAX_N,
    max_c=MAX_C,
    max_hw=MAX_HW,
    spatial_multiple_of_stride=False,
):
    """Valid pooling configurations with ``0 <= padding <= kernel_size//2`` on each axis.

    ``strides`` draws the stride of each axis (an int fixes it; ``None`` always
    leaves it out, i.e. stride = window); ``default_stride`` decides whether
    to leave it out anyway. ``padded=False`` fixes the padding at 0.
    """
    kernel = _axis_pair(draw, kernels)
    leave_out = default_stride if isinstance(default_stride, bool) else draw(default_stride)
    stride = None if strides is None or leave_out else _axis_pair(draw, strides)
    padding = tuple(draw(st.integers(0, k // 2)) if padded else 0 for k in kernel)
    effective = kernel if stride is None else stride
    hw = []
    for k, s, p in zip(kernel, effective, padding):
        smallest = max(1, k - 2 * p)
        if spatial_multiple_of_stride:
            hw.append(s * draw(st.integers(-(-smallest // s), max(-(-smallest // s), max_hw // s))))
        else:
            hw.append(draw(st.integers(smallest, max(smallest, max_hw))))
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(1, max_c))
    return PoolConfig(n, c, hw[0], hw[1], kernel, stride, padding, draw(st.booleans()))


@dataclass(frozen=True)
class PoolOptionConfig:
    """A pooling call with the options beyond the deck (``torch.nn.functional``'s names).

    ``kwargs`` is what ``F.max_pool2d`` / ``F.avg_pool2d`` take after
    ``kernel_size``; ``symmetric`` says whether torch can take the same call
    (torch's pooling has no four-sided padding).
    """

    x_shape: tuple
    kernel_size: tuple
    kwargs: dict
    symmetric: bool

    @property
    def geometry(self):
        fn = "max_pool2d" if "dilation" in self.kwargs else "avg_pool2d"
        return shapes.pool2d_geometry(self.x_shape, self.kernel_size, fn=fn, **self.kwargs)


@st.composite
def pool_option_configs(draw, kind="max", symmetric=None, max_hw=MAX_HW):
    """Valid max (``kind="max"``: dilation, ceil_mode) or average (``"avg"``: ceil_mode,
    count_include_pad, divisor_override) pooling calls, padding <= kernel_size//2 on every side,
    asymmetric (F.pad's four numbers) unless ``symmetric``; the output is at least 1x1."""
    kernel = (draw(st.integers(1, MAX_K)), draw(st.integers(1, MAX_K)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    sym = draw(st.booleans()) if symmetric is None else symmetric
    begin = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    end = begin if sym else tuple(draw(st.integers(0, k // 2)) for k in kernel)
    padding = begin if sym else (begin[1], end[1], begin[0], end[0])
    kwargs = dict(stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if kind == "max":
        kwargs["dilation"] = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        kwargs["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 9)))
    x_shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, max_hw)),
               draw(st.integers(1, max_hw)))
    config = PoolOptionConfig(x_shape, kernel, kwargs, sym)
    try:
        config.geometry
    except ValueError:
        assume(False)
    return config


# -------------------------------------------------------------- invalid arguments
@dataclass(frozen=True)
class InvalidCall:
    """A call of ``minicnn.functional.<function>`` that must raise ``error``.

    ``fragments`` are pieces of text (argument names and numbers) the message
    must contain, so the user can see what was wrong and by how much.
    """

    description: str
    function: str
    arrays: tuple
    kwargs: dict = field(default_factory=dict)
    error: type = ValueError
    fragments: tuple = ()


def _zeros(shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


def _with_dy(function, x, w):
    """Arguments for ``function``: ``(x, w)``, plus a ``dy`` for ``conv2d_grad`` (checked after x and w)."""
    if function == "conv2d_grad":
        return (x, w, _zeros((x.shape[0], w.shape[0], 1, 1)))
    return (x, w)


@st.composite
def _kernel_larger_than_padded_input(draw):
    axis = draw(st.sampled_from(["height", "width"]))
    size = draw(st.integers(1, 5))
    p = draw(st.integers(0, 2))
    d = draw(st.integers(1, 3))
    s = draw(st.integers(1, 3))
    # The smallest number of taps whose extent D*(F-1)+1 exceeds the padded size, plus a little.
    k = -(-(size + 2 * p) // d) + 1 + draw(st.integers(0, 1))
    out = (size + 2 * p - d * (k - 1) - 1) // s + 1
    h, w, kh, kw = (size, 6, k, 1) if axis == "height" else (6, size, 1, k)
    pad = (p, 0) if axis == "height" else (0, p)
    dil = (d, 1) if axis == "height" else (1, d)
    stride = (s, 1) if axis == "height" else (1, s)
    return InvalidCall(
        "kernel larger than the padded input",
        "conv2d",
        (_zeros((1, 2, h, w)), _zeros((3, 2, kh, kw))),
        dict(stride=stride, padding=pad, dilation=dil),
        ValueError,
        (f"output {axis}", f"= {out} < 1", str(shapes.dilated_extent(k, d)), str(size + 2 * p)),
    )


@st.composite
def _channel_mismatch(draw):
    g = draw(st.sampled_from([1, 2, 3]))
    c_in = g * draw(st.integers(1, 2))
    wrong = c_in // g + draw(st.integers(1, 3))
    function = draw(st.sampled_from(["conv2d", "conv2d_grad"]))
    return InvalidCall(
        "w.shape[1] differs from C_in/groups",
        function,
        _with_dy(function, _zeros((1, c_in, 5, 5)), _zeros((g, wrong, 3, 3))),
        dict(groups=g),
        ValueError,
        (f"w.shape[1]={wrong}", f"{c_in}/{g}", f"C_in={c_in}"),
    )


@st.composite
def _groups_not_dividing(draw):
    g = draw(st.integers(2, 4))
    if draw(st.booleans()):
        c_in = g * draw(st.integers(1, 2)) + draw(st.integers(1, g - 1))
        x, w = _zeros((1, c_in, 5, 5)), _zeros((g, 1, 3, 3))
        fragments = (f"C_in={c_in}", f"groups={g}")
    else:
        c_in = g
        c_out = g + draw(st.integers(1, g - 1))
        x, w = _zeros((1, c_in, 5, 5)), _zeros((c_out, 1, 3, 3))
        fragments = (f"C_out={c_out}", f"groups={g}")
    return InvalidCall("groups does not divide the channels", "conv2d", (x, w), dict(groups=g), ValueError, fragments)


@st.composite
def _out_of_range_hyperparameter(draw):
    """Negative padding, zero or negative stride/dilation, groups < 1 (conv), as int or pair."""
    name, minimum = draw(st.sampled_from([("padding", 0), ("stride", 1), ("dilation", 1), ("groups", 1)]))
    bad = minimum - draw(st.integers(1, 3))
    value = bad
    if name != "groups" and draw(st.booleans()):
        value = (bad, minimum + 1) if draw(st.booleans()) else (minimum + 1, bad)
    function = draw(st.sampled_from(["conv2d", "conv2d_grad"]))
    return InvalidCall(
        f"{name} below {minimum}",
        function,
        _with_dy(function, _zeros((1, 2, 6, 6)), _zeros((2, 2, 3, 3))),
        {name: value},
        ValueError,
        (name, f">= {minimum}", str(bad)),
    )


@st.composite
def _pool_out_of_range(draw):
    """Pooling: padding above kernel_size//2, negative padding, stride 0, kernel_size 0."""
    function = draw(st.sampled_from(["max_pool2d", "avg_pool2d"]))
    kind = draw(st.sampled_from(["padding_over_half", "negative_padding", "stride_zero", "kernel_zero"]))
    x = _zeros((1, 1, 8, 8))
    k = draw(st.integers(1, 4))
    if kind == "padding_over_half":
        p = k // 2 + draw(st.integers(1, 2))
        return InvalidCall(
            "pool padding above kernel_size//2",
            function,
            (x, k),
            dict(padding=p),
            ValueError,
            ("padding", f"{k}//2 = {k // 2}", f"padding={p}"),
        )
    if kind == "negative_padding":
        p = -draw(st.integers(1, 2))
        return InvalidCall("negative pool padding", function, (x, k), dict(padding=p), ValueError, ("padding", str(p)))
    if kind == "stride_zero":
        return InvalidCall("pool stride 0", function, (x, k), dict(stride=0), ValueError, ("stride", ">= 1", "0"))
    return InvalidCall("pool window of size 0", function, (x, 0), {}, ValueError, ("kernel_size", ">= 1", "0"))


@st.composite
def _pool_window_larger_than_input(draw):
    k = draw(st.integers(2, 4))
    p = draw(st.integers(0, (k - 2) // 2))
    size = draw(st.integers(1, k - 2 * p - 1))
    return InvalidCall(
        "pool window larger than the padded input",
        draw(st.sampled_from(["max_pool2d", "avg_pool2d"])),
        (_zeros((1, 1, size, 8)), k),
        dict(padding=(p, 0)),
        ValueError,
        ("height", f"({k})", f"({size + 2 * p})"),
    )


@st.composite
def _wrong_ndim(draw):
    ndim = draw(st.sampled_from([2, 3, 5]))
    shape = (2, 5, 5, 1, 1)[:ndim] if ndim != 2 else (5, 5)
    function = draw(st.sampled_from(["conv2d", "max_pool2d", "avg_pool2d"]))
    if function == "conv2d":
        if draw(st.booleans()):
            arrays, name = (_zeros(shape), _zeros((1, 2, 3, 3))), "x"
        else:
            arrays, name = (_zeros((1, 2, 5, 5)), _zeros(shape)), "w"
    else:
        arrays, name = (_zeros(shape), 2), "x"
    return InvalidCall(
        "wrong number of dimensions", function, arrays, {}, ValueError, (name, "4-D", f"{ndim}-D", str(shape))
    )


@st.composite
def _bad_dtype(draw):
    dtype = draw(st.sampled_from([np.int32, np.int64, np.float16, np.complex64, np.bool_]))
    function = draw(st.sampled_from(["conv2d", "max_pool2d", "avg_pool2d"]))
    x = np.zeros((1, 1, 5, 5), dtype=dtype)
    arrays = (x, _zeros((1, 1, 3, 3))) if function == "conv2d" else (x, 2)
    return InvalidCall(
        "dtype other than float32/float64",
        function,
        arrays,
        {},
        TypeError,
        ("float32", "float64", np.dtype(dtype).name),
    )


@st.composite
def _mixed_dtypes(draw):
    x_dtype, w_dtype = draw(st.permutations([np.float32, np.float64]))
    return InvalidCall(
        "x and w of different dtypes",
        "conv2d",
        (_zeros((1, 1, 5, 5), x_dtype), _zeros((1, 1, 3, 3), w_dtype)),
        {},
        TypeError,
        (np.dtype(x_dtype).name, np.dtype(w_dtype).name),
    )


@st.composite
def _bad_bias_or_dy(draw):
    c_out = draw(st.integers(1, 4))
    x, w = _zeros((2, 1, 5, 5)), _zeros((c_out, 1, 3, 3))
    if draw(st.booleans()):
        b = _zeros((c_out + draw(st.integers(1, 2)),))
        return InvalidCall(
            "bias of the wrong length", "conv2d", (x, w, b), {}, ValueError, ("b", f"({c_out},)", str(b.shape))
        )
    dy = _zeros((2, c_out, 3, 3 + draw(st.integers(1, 2))))
    return InvalidCall(
        "dy of the wrong shape", "conv2d_grad", (x, w, dy), {}, ValueError, ("dy", str((2, c_out, 3, 3)), str(dy.shape))
    )


@st.composite
def _non_integer_hyperparameter(draw):
    name = draw(st.sampled_from(["stride", "padding", "dilation"]))
    value = draw(st.sampled_from([1.5, 2.0, "2", (1, 2, 3), True]))
    x, w = _zeros((1, 1, 6, 6)), _zeros((1, 1, 3, 3))
    # padding also takes the strings "same" and "valid": another string is a wrong value, not a wrong type
    error = ValueError if name == "padding" and isinstance(value, str) else TypeError
    return InvalidCall(f"{name} not an int", "conv2d", (x, w), {name: value}, error, (name,))


def invalid_calls():
    """Calls of ``minicnn.functional`` that must raise, one kind of mistake each."""
    return st.one_of(
        _kernel_larger_than_padded_input(),
        _channel_mismatch(),
        _groups_not_dividing(),
        _out_of_range_hyperparameter(),
        _pool_out_of_range(),
        _pool_window_larger_than_input(),
        _wrong_ndim(),
        _bad_dtype(),
        _mixed_dtypes(),
        _bad_bias_or_dy(),
        _non_integer_hyperparameter(),
    )


# ------------------------------------------------- configurations for each kernel path
def cython_paths():
    """The cython backend's convolution paths (``minicnn.backends.cython_paths``): ``{name: path}``, or ``{}``."""
    import minicnn as mc

    return mc.get_backend("cython").paths if "cython" in mc.available_backends() else {}


def path_ops():
    """Every ``(path, operation)`` the cython backend implements: the properties force each one."""
    return [(name, op) for name, path in cython_paths().items() for op in path.ops]


def _config(n, c_in, c_out, h, w, kernel, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
    return ConvConfig(n, c_in, c_out, h, w, tuple(kernel), tuple(stride), tuple(padding), tuple(dilation), groups)


def _sides(kernel, padding, out_h, out_w):
    """Input sides giving output sides ``out_h x out_w`` at stride 1 (``H = out + F - 1 - 2P``, at least 1)."""
    return tuple(max(1, o + k - 1 - 2 * p) for o, k, p in zip((out_h, out_w), kernel, padding))


@st.composite
def path_conv_configs(draw, path, op, dtype=np.float64):
    """Layers the cython path ``path`` takes for ``op``, large enough to reach its vector kernels.

    Kernels, paddings and sizes are drawn per axis (non-square). What each path
    needs (``minicnn/backends/cython_paths.py``): ``dense`` a filter as large as
    its input; ``direct`` stride 1 and 16 or 32 maps on the side it vectorises,
    rows of 8+ pixels; the ``winograd*`` paths 3x3 at stride 1 (``winograd_phases`` 4x4 at
    stride 2, padding 1); ``rows`` and ``lanes``
    stride 1 without padding, rows of one vector or more (``rows``) and whole
    groups of images in the vector lanes (``lanes``); ``batched``, ``im2col``
    and ``reference`` any layer (strides, dilations and groups included).
    """
    paths = cython_paths()
    f64 = np.dtype(dtype) == np.float64
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    if path == "dense":
        return _config(draw(st.integers(1, 40)), draw(st.integers(1, 8)), draw(st.integers(1, 40)), *kernel, kernel,
                       stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))))
    if path == "direct":
        if kernel[0] * kernel[1] < 2:
            kernel = (kernel[0], 2)
        wide = draw(st.sampled_from([16, 32]))
        narrow = draw(st.integers(1, 6))
        if op == "input_grad":
            padding = (draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)))
            h = draw(st.integers(max(4, kernel[0] - 2 * padding[0]), 12))
            w = draw(st.integers(max(4, kernel[1] - 2 * padding[1]), 16))
            return _config(draw(st.integers(1, 3)), wide, narrow, h, w, kernel, padding=padding)
        padding = (0, 0) if op == "weight_grad" else (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        h, w = _sides(kernel, padding, draw(st.integers(2, 10)), draw(st.integers(8, 24)))
        return _config(draw(st.integers(1, 4)), narrow, wide, h, w, kernel, padding=padding)
    if path == "winograd_phases":  # 4x4, stride 2, padding 1 (a transposed convolution k4 s2 p1's layer)
        h, w = draw(st.integers(2, 21)), draw(st.integers(2, 21))
        return _config(draw(st.integers(1, 4)), draw(st.integers(1, 20)), draw(st.integers(1, 20)), h, w, (4, 4),
                       stride=(2, 2), padding=(1, 1))
    if path.startswith("winograd"):  # winograd, winograd4 and their shared-block (wide) variants
        p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
        h, w = draw(st.integers(max(1, 3 - 2 * p[0]), 17)), draw(st.integers(max(1, 3 - 2 * p[1]), 17))
        return _config(draw(st.integers(1, 4)), draw(st.integers(1, 20)), draw(st.integers(1, 20)), h, w, (3, 3),
                       padding=p)
    if path == "rows":
        rows = paths["rows"].conv
        if op == "weight_grad":
            lanes = rows.rows_weight_grad_lanes(f64)
            out_w = draw(st.integers(lanes, 2 * lanes + 7))
        elif op == "input_grad":
            out_w = draw(st.integers(14, 4 * rows.row_lanes())) - kernel[1] + 1
        else:
            out_w = draw(st.integers(6, 40))
        h, w = _sides(kernel, (0, 0), draw(st.integers(1, 9)), max(1, out_w))
        return _config(draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 16)), h, w, kernel)
    if path == "lanes":
        group = paths["lanes"].conv.lanes_group(f64)
        if kernel[0] * kernel[1] < 2:
            kernel = (2, kernel[1])
        h, w = _sides(kernel, (0, 0), draw(st.integers(1, 8)), draw(st.integers(1, 10)))
        return _config(draw(st.integers(group, 2 * group)), draw(st.integers(2, 7)), draw(st.integers(1, 9)), h, w,
                       kernel)
    # batched, im2col, reference: any layer
    return draw(conv_configs(kernels=st.integers(1, 3), dilations=st.integers(1, 2), groups=st.sampled_from([1, 2])))
