"""minicnn.functional's messages, whole: each names the function, the argument, the expected layout and the numbers.

The standard (HELPER_RULES / DESIGN.md) asks a bad argument to raise an error
that names the argument, the formula and the numbers; these tests pin the
complete text of each such message (mutation testing, tools/mutation.py,
found that checking a fragment let a wrong function name or layout through).
"""

import numpy as np
import pytest

import minicnn.functional as F

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)
DY = np.zeros((2, 6, 6, 6), np.float32)
X3 = np.zeros((4, 8, 8), np.float32)
W3 = np.zeros((6, 4, 3), np.float32)
POOL_DY = np.zeros((2, 4, 4, 4), np.float32)
ARRAY = "must be a numpy.ndarray (or cupy.ndarray), got"
X_4D = "x must be 4-D (N, C_in, H, W), got 3-D array of shape (4, 8, 8)"
W_4D = "w must be 4-D (C_out, C_in/groups, F_H, F_W), got 3-D array of shape (6, 4, 3)"
POOL_4D = "x must be 4-D (N, C, H, W), got 3-D array of shape (4, 8, 8)"
SHAPE_TYPE = "must be a sequence of 4 ints, got int 5"
DTYPE = "dtype must be float32 or float64, got"

MESSAGES = [
    ("conv2d x ndim", lambda: F.conv2d(X3, W), ValueError, f"conv2d: {X_4D}"),
    ("conv2d w ndim", lambda: F.conv2d(X, W3), ValueError, f"conv2d: {W_4D}"),
    ("conv2d b ndim", lambda: F.conv2d(X, W, np.zeros((6, 1), np.float32)), ValueError,
     "conv2d: b must be 1-D (C_out,), got 2-D array of shape (6, 1)"),
    ("conv2d x type", lambda: F.conv2d([1], W), TypeError, f"conv2d: x {ARRAY} list"),
    ("conv2d w type", lambda: F.conv2d(X, [1]), TypeError, f"conv2d: w {ARRAY} list"),
    ("conv2d b type", lambda: F.conv2d(X, W, [0.0] * 6), TypeError, f"conv2d: b {ARRAY} list"),
    ("conv2d w dtype", lambda: F.conv2d(X, W.astype(np.float64)), TypeError,
     "conv2d: w has dtype float64 but x has dtype float32; use one dtype"),
    ("conv2d b dtype", lambda: F.conv2d(X, W, np.zeros(6)), TypeError,
     "conv2d: b has dtype float64 but x has dtype float32; use one dtype"),
    ("conv2d_grad x ndim", lambda: F.conv2d_grad(X3, W, DY), ValueError, f"conv2d_grad: {X_4D}"),
    ("conv2d_grad w ndim", lambda: F.conv2d_grad(X, W3, DY), ValueError, f"conv2d_grad: {W_4D}"),
    ("conv2d_grad x type", lambda: F.conv2d_grad(1, W, DY), TypeError, f"conv2d_grad: x {ARRAY} int"),
    ("conv2d_grad w type", lambda: F.conv2d_grad(X, 1, DY), TypeError, f"conv2d_grad: w {ARRAY} int"),
    ("conv2d_grad dy type", lambda: F.conv2d_grad(X, W, 1), TypeError, f"conv2d_grad: dy {ARRAY} int"),
    ("conv2d_grad dy dtype", lambda: F.conv2d_grad(X, W, DY.astype(np.float64)), TypeError,
     "conv2d_grad: dy has dtype float64 but x has dtype float32; use one dtype"),
    ("conv2d_grad input_grad", lambda: F.conv2d_grad(X, W, DY, input_grad=1), TypeError,
     "conv2d_grad: input_grad must be a bool, got int 1"),
    ("conv2d_input_grad w ndim", lambda: F.conv2d_input_grad((2, 4, 8, 8), W3, DY), ValueError,
     f"conv2d_input_grad: {W_4D}"),
    ("conv2d_input_grad w type", lambda: F.conv2d_input_grad((2, 4, 8, 8), 1, DY), TypeError,
     f"conv2d_input_grad: w {ARRAY} int"),
    ("conv2d_input_grad dy type", lambda: F.conv2d_input_grad((2, 4, 8, 8), W, 1), TypeError,
     f"conv2d_input_grad: dy {ARRAY} int"),
    ("conv2d_input_grad dy dtype", lambda: F.conv2d_input_grad((2, 4, 8, 8), W, DY.astype(np.float64)), TypeError,
     "conv2d_input_grad: dy has dtype float64 but w has dtype float32; use one dtype"),
    ("conv2d_input_grad x_shape type", lambda: F.conv2d_input_grad(5, W, DY), TypeError,
     f"conv2d_input_grad: x_shape {SHAPE_TYPE}"),
    ("conv2d_input_grad x_shape length", lambda: F.conv2d_input_grad((2, 4, 8), W, DY), ValueError,
     "conv2d_input_grad: x_shape must be 4 ints (N, C, H, W) or (C_out, C_in/groups, F_H, F_W), got (2, 4, 8)"),
    ("conv2d_weight_grad x ndim", lambda: F.conv2d_weight_grad(X3, (6, 4, 3, 3), DY), ValueError,
     f"conv2d_weight_grad: {X_4D}"),
    ("conv2d_weight_grad x type", lambda: F.conv2d_weight_grad(1, (6, 4, 3, 3), DY), TypeError,
     f"conv2d_weight_grad: x {ARRAY} int"),
    ("conv2d_weight_grad w_shape", lambda: F.conv2d_weight_grad(X, 5, DY), TypeError,
     f"conv2d_weight_grad: w_shape {SHAPE_TYPE}"),
    ("conv2d_weight_grad dy type", lambda: F.conv2d_weight_grad(X, (6, 4, 3, 3), 1), TypeError,
     f"conv2d_weight_grad: dy {ARRAY} int"),
    ("conv2d_plan x_shape", lambda: F.conv2d_plan(5, (6, 4, 3, 3)), TypeError, f"conv2d_plan: x_shape {SHAPE_TYPE}"),
    ("conv2d_plan w_shape", lambda: F.conv2d_plan((2, 4, 8, 8), 5), TypeError, f"conv2d_plan: w_shape {SHAPE_TYPE}"),
    ("conv2d_plan dtype", lambda: F.conv2d_plan((2, 4, 8, 8), (6, 4, 3, 3), dtype=np.int32), TypeError,
     f"conv2d_plan: {DTYPE} int32"),
    ("conv2d_plan dtype name", lambda: F.conv2d_plan((2, 4, 8, 8), (6, 4, 3, 3), dtype="nonsense"), TypeError,
     f"conv2d_plan: {DTYPE} 'nonsense'"),
    ("explain_conv2d x_shape", lambda: F.explain_conv2d(5, (6, 4, 3, 3)), TypeError,
     f"explain_conv2d: x_shape {SHAPE_TYPE}"),
    ("explain_conv2d w_shape", lambda: F.explain_conv2d((2, 4, 8, 8), 5), TypeError,
     f"explain_conv2d: w_shape {SHAPE_TYPE}"),
    ("explain_conv2d dtype", lambda: F.explain_conv2d((2, 4, 8, 8), (6, 4, 3, 3), dtype=np.int32), TypeError,
     f"explain_conv2d: {DTYPE} int32"),
    ("linear x ndim", lambda: F.linear(np.zeros(3), np.zeros((2, 3))), ValueError,
     "linear: x must be 2-D (N, in_features), got 1-D array of shape (3,)"),
    ("linear w ndim", lambda: F.linear(np.zeros((1, 3)), np.zeros(3)), ValueError,
     "linear: w must be 2-D (out_features, in_features), got 1-D array of shape (3,)"),
    ("linear x type", lambda: F.linear(1, np.zeros((2, 3))), TypeError, f"linear: x {ARRAY} int"),
    ("linear w type", lambda: F.linear(np.zeros((1, 3)), 1), TypeError, f"linear: w {ARRAY} int"),
    ("linear b type", lambda: F.linear(np.zeros((1, 3)), np.zeros((2, 3)), 1), TypeError, f"linear: b {ARRAY} int"),
    ("linear w dtype", lambda: F.linear(np.zeros((1, 3)), np.zeros((2, 3), np.float32)), TypeError,
     "linear: w has dtype float32 but x has dtype float64; use one dtype"),
    ("linear b dtype", lambda: F.linear(np.zeros((1, 3)), np.zeros((2, 3)), np.zeros(2, np.float32)), TypeError,
     "linear: b has dtype float32 but x has dtype float64; use one dtype"),
    ("linear_grad x ndim", lambda: F.linear_grad(np.zeros(3), np.zeros((2, 3)), np.zeros((1, 2))), ValueError,
     "linear_grad: x must be 2-D (N, in_features), got 1-D array of shape (3,)"),
    ("linear_grad dy type", lambda: F.linear_grad(np.zeros((1, 3)), np.zeros((2, 3)), 1), TypeError,
     f"linear_grad: dy {ARRAY} int"),
    ("true_conv2d w ndim", lambda: F.true_conv2d(X, W3), ValueError, f"true_conv2d: {W_4D}"),
    ("true_conv2d w type", lambda: F.true_conv2d(X, 1), TypeError, f"true_conv2d: w {ARRAY} int"),
    ("max_pool2d x ndim", lambda: F.max_pool2d(X3, 2), ValueError, f"max_pool2d: {POOL_4D}"),
    ("max_pool2d x type", lambda: F.max_pool2d(1, 2), TypeError, f"max_pool2d: x {ARRAY} int"),
    ("max_pool2d_with_indices x ndim", lambda: F.max_pool2d_with_indices(X3, 2), ValueError,
     f"max_pool2d: {POOL_4D}"),
    ("max_pool2d_grad x ndim", lambda: F.max_pool2d_grad(X3, POOL_DY, 2), ValueError, f"max_pool2d_grad: {POOL_4D}"),
    ("max_pool2d_grad x type", lambda: F.max_pool2d_grad(1, POOL_DY, 2), TypeError, f"max_pool2d_grad: x {ARRAY} int"),
    ("max_pool2d_grad dy type", lambda: F.max_pool2d_grad(X, 1, 2), TypeError, f"max_pool2d_grad: dy {ARRAY} int"),
    ("max_pool2d_grad indices type", lambda: F.max_pool2d_grad(X, POOL_DY, 2, indices=[0]), TypeError,
     "max_pool2d_grad: indices must be a ndarray like x, got list"),
    ("max_pool2d_grad_from_forward indices dtype",
     lambda: F.max_pool2d_grad_from_forward(X, POOL_DY, 2, indices=np.zeros((2, 4, 4, 4), np.int32)), TypeError,
     "max_pool2d_grad: indices must be the int64 ndarray of shape (2, 4, 4, 4) that max_pool2d_with_indices "
     "returned, got ndarray int32 (2, 4, 4, 4)"),
    ("avg_pool2d x ndim", lambda: F.avg_pool2d(X3, 2), ValueError, f"avg_pool2d: {POOL_4D}"),
    ("avg_pool2d x type", lambda: F.avg_pool2d(1, 2), TypeError, f"avg_pool2d: x {ARRAY} int"),
    ("avg_pool2d_grad x ndim", lambda: F.avg_pool2d_grad(X3, POOL_DY, 2), ValueError, f"avg_pool2d_grad: {POOL_4D}"),
    ("avg_pool2d_grad x type", lambda: F.avg_pool2d_grad(1, POOL_DY, 2), TypeError, f"avg_pool2d_grad: x {ARRAY} int"),
    ("avg_pool2d_grad dy type", lambda: F.avg_pool2d_grad(X, 1, 2), TypeError, f"avg_pool2d_grad: dy {ARRAY} int"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in MESSAGES], ids=[m[0] for m in MESSAGES])
def test_bad_argument_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_explain_conv2d_describes_the_layer_on_the_backend_asked_for():
    """On a one-path backend the text names that backend and the whole geometry (dilation and groups
    included), whatever the current backend is; a bad geometry is refused under explain_conv2d's name."""
    import minicnn as mc

    for current in mc.available_backends():
        with mc.use_backend(current):
            text = F.explain_conv2d((1, 4, 9, 9), (4, 2, 3, 3), dilation=2, groups=2, backend="numpy")
            assert text == ("conv2d x 1x4x9x9, w 4x2x3x3, dilation 2, groups 2: the numpy backend has one path "
                            "for every layer")
    with pytest.raises(ValueError) as info:
        F.explain_conv2d((1, 4, 4, 4), (4, 4, 5, 5), backend="numpy")
    assert str(info.value).startswith("explain_conv2d: output height (4 + 2*0 - 1*(5-1) - 1)//1 + 1 = 0 < 1")


def test_explain_conv2d_passes_a_forced_plan_on():
    import minicnn as mc

    if "cython" not in mc.available_backends():
        pytest.skip("the cython backend is not built here")
    forced = F.explain_conv2d((1, 4, 9, 9), (4, 4, 3, 3), plan="direct", backend="cython")
    chosen = F.explain_conv2d((1, 4, 9, 9), (4, 4, 3, 3), backend="cython")
    assert "plan: forced" in forced and "plan: forced" not in chosen
    assert "forward: direct" in forced


# A pooling whose kernel, stride and padding differ per axis, so a message or check that mixes the axes shows.
POOL_X = np.zeros((1, 1, 7, 5))
POOL = dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0))
WINDOW_MESSAGE = ("max_pool2d_grad: 1 of the indices point outside their own 3x2 window (window (i, j) covers rows "
                  "i*2 - 1 + [0, 3) and columns j*1 - 0 + [0, 2)); pass the indices returned by "
                  "max_pool2d_with_indices for the same arguments")


def _pool_indices():
    y, indices = F.max_pool2d_with_indices(POOL_X, **POOL, backend="numpy")
    return np.ones(y.shape), indices


def test_an_index_one_row_or_one_column_past_its_window_is_refused():
    """Window (0, 0) covers rows -1, 0, 1 and columns 0, 1: row 2 and column 2 are its first pixels outside."""
    dy, indices = _pool_indices()
    for row, col in [(2, 0), (0, 2)]:
        bad = indices.copy()
        bad[0, 0, 0, 0] = row * POOL_X.shape[3] + col
        with pytest.raises(ValueError) as info:
            F.max_pool2d_grad(POOL_X, dy, **POOL, indices=bad)
        assert str(info.value) == WINDOW_MESSAGE
    last = indices.copy()
    last[0, 0, 0, 0] = 1 * POOL_X.shape[3] + 1  # the window's last pixel is its own
    F.max_pool2d_grad(POOL_X, dy, **POOL, indices=last)


def test_an_index_outside_the_plane_is_refused_by_name():
    dy, indices = _pool_indices()
    bad = indices.copy()
    bad[0, 0, 1, 1] = 35
    with pytest.raises(ValueError) as info:
        F.max_pool2d_grad(POOL_X, dy, **POOL, indices=bad)
    assert str(info.value) == "max_pool2d_grad: indices must lie in [0, H*W) = [0, 35), got values in [0, 35]"


def test_checked_indices_of_any_integer_dtype_route_the_gradient_as_int64_ones_do():
    import minicnn as mc

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 5))
    _, indices = F.max_pool2d_with_indices(x, **POOL, backend="numpy")
    dy = rng.standard_normal(indices.shape)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        want = F.max_pool2d_grad(x, dy, **POOL, indices=indices, backend=backend)
        for dtype in (np.int32, np.uint16, np.uint64):
            got = F.max_pool2d_grad(x, dy, **POOL, indices=indices.astype(dtype), backend=backend)
            np.testing.assert_array_equal(got, want)


def test_true_conv2d_adds_the_bias():
    """True convolution is the cross-correlation with rot90(W, 2) (deck 002, "Convolución"), bias included."""
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    got = F.true_conv2d(x, w, b, padding=1, backend="numpy")
    want = F.conv2d(x, np.rot90(w, 2, axes=(2, 3)).copy(), backend="numpy", padding=1) + b.reshape(1, 4, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------ every entry point: its own name, the backend and plan asked for
def _conv_call(name, x, w, dy, **kwargs):
    calls = {
        "conv2d": lambda: F.conv2d(x, w, **kwargs),
        "conv2d_grad": lambda: F.conv2d_grad(x, w, dy, **kwargs),
        "conv2d_input_grad": lambda: F.conv2d_input_grad(x.shape, w, dy, **kwargs),
        "conv2d_weight_grad": lambda: F.conv2d_weight_grad(x, w.shape, dy, **kwargs),
        "conv2d_plan": lambda: F.conv2d_plan(x.shape, w.shape, dtype=x.dtype, **kwargs),
        "explain_conv2d": lambda: F.explain_conv2d(x.shape, w.shape, dtype=x.dtype, **kwargs),
    }
    return calls[name]()


def _pool_call(name, x, dy, kernel_size, **kwargs):
    calls = {
        "max_pool2d": lambda: F.max_pool2d(x, kernel_size, **kwargs),
        "max_pool2d_with_indices": lambda: F.max_pool2d_with_indices(x, kernel_size, **kwargs),
        "max_pool2d_grad": lambda: F.max_pool2d_grad(x, dy, kernel_size, **kwargs),
        "avg_pool2d": lambda: F.avg_pool2d(x, kernel_size, **kwargs),
        "avg_pool2d_grad": lambda: F.avg_pool2d_grad(x, dy, kernel_size, **kwargs),
    }
    return calls[name]()


CONV_NAMES = ["conv2d", "conv2d_grad", "conv2d_input_grad", "conv2d_weight_grad", "conv2d_plan", "explain_conv2d"]
POOL_NAMES = ["max_pool2d", "max_pool2d_with_indices", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad"]
POOL_FN = {"max_pool2d_with_indices": "max_pool2d"}  # it reports as max_pool2d, the call a user makes


@pytest.mark.parametrize("name", CONV_NAMES)
def test_conv_geometry_errors_carry_the_function_name(name):
    x, w = np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 5, 5))
    with pytest.raises(ValueError) as info:
        _conv_call(name, x, w, np.zeros((1, 4, 1, 1)), backend="numpy")
    assert str(info.value).startswith(f"{name}: output height (4 + 2*0 - 1*(5-1) - 1)//1 + 1 = 0 < 1")


@pytest.mark.parametrize("name", CONV_NAMES[:4] + POOL_NAMES)
def test_too_much_padding_is_refused_with_the_function_name(name):
    """The padded input N*C*(H + 2P)*(W + 2P) must stay under 2**31 values (the reference builds it)."""
    x, dy = np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1))
    if name in CONV_NAMES:
        call = lambda: _conv_call(name, x, np.zeros((1, 1, 1, 1)), dy, padding=30000, backend="numpy")  # noqa: E731
    else:
        call = lambda: _pool_call(name, x, dy, 60001, padding=30000, backend="numpy")  # noqa: E731
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == (
        f"{POOL_FN.get(name, name)}: padding (30000, 30000) makes the padded input N*C*(H + 2P)*(W + 2P) = "
        "1*1*(1 + 2*30000)*(1 + 2*30000) = 3,600,120,001 values, more than 2,147,483,647; use less padding")


@pytest.mark.parametrize("name", POOL_NAMES)
def test_pool_geometry_errors_carry_the_function_name(name):
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError) as info:
        _pool_call(name, x, np.zeros((1, 1, 1, 1)), 5, backend="numpy")
    assert str(info.value).startswith(f"{POOL_FN.get(name, name)}: output height (4 + 2*0 - 5)//5 + 1 = 0 < 1")


def _valid_calls():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    dy, pool_dy = rng.standard_normal((2, 4, 4, 4)), rng.standard_normal((2, 3, 3, 3))
    xl, wl, dyl = rng.standard_normal((2, 5)), rng.standard_normal((3, 5)), rng.standard_normal((2, 3))
    calls = {name: (lambda name=name, **kw: _conv_call(name, x, w, dy, **kw)) for name in CONV_NAMES}
    calls.update({name: (lambda name=name, **kw: _pool_call(name, x, pool_dy, 2, **kw)) for name in POOL_NAMES})
    calls["max_pool2d_grad_from_forward"] = lambda **kw: F.max_pool2d_grad_from_forward(
        x, pool_dy, 2, indices=F.max_pool2d_with_indices(x, 2, backend="numpy")[1], **kw)
    calls["true_conv2d"] = lambda **kw: F.true_conv2d(x, w, b, **kw)
    calls["linear"] = lambda **kw: F.linear(xl, wl, **kw)
    calls["linear_grad"] = lambda **kw: F.linear_grad(xl, wl, dyl, **kw)
    return calls


@pytest.mark.parametrize("name", sorted(_valid_calls()))
def test_every_entry_point_uses_the_backend_it_is_given(name):
    """``backend=`` names the backend: an unknown name is refused, never replaced by the current backend."""
    call = _valid_calls()[name]
    call(backend="numpy")
    with pytest.raises(ValueError, match=r"^unknown backend 'fortran'; choose one of \['numpy', 'cython', 'cupy'\]$"):
        call(backend="fortran")


@pytest.mark.parametrize("name", CONV_NAMES[:5])
def test_a_path_name_is_checked_by_the_backend_asked_for(name):
    """The reference has one path: a path name is refused there, whatever the current backend is."""
    import minicnn as mc

    call = _valid_calls()[name]
    for current in [b for b in mc.available_backends() if b != "cupy"]:
        with mc.use_backend(current):
            with pytest.raises(ValueError, match=r"^plan: the numpy backend has no kernel paths to choose from"):
                call(backend="numpy", plan="im2col")


@pytest.mark.parametrize("name", ["conv2d_grad", "conv2d_weight_grad"])
def test_a_forced_path_is_checked_for_the_dtype_of_the_call(name):
    """The row weight-gradient kernel needs an output row of one vector: 16 float32 or 8 float64 lanes with
    AVX-512 (fewer elsewhere). An output row between the two is refused for float32 and taken for float64."""
    import minicnn as mc

    if "cython" not in mc.available_backends():
        pytest.skip("the cython backend is not built here")
    from minicnn.backends import get_backend

    conv = get_backend("cython").paths["rows"].conv
    lanes32, lanes64 = conv.rows_weight_grad_lanes(False), conv.rows_weight_grad_lanes(True)
    if lanes64 >= lanes32 or not get_backend("cython")._rows_grad_available:
        pytest.skip("no row kernel whose vector width depends on the dtype here")
    ow = lanes64
    x, w, dy = np.zeros((1, 2, ow + 2, ow + 2)), np.zeros((3, 2, 3, 3)), np.zeros((1, 3, ow, ow))
    plan = {"weight_grad": "rows"}
    _conv_call(name, x, w, dy, plan=plan, backend="cython")  # float64: taken
    x, w, dy = (a.astype(np.float32) for a in (x, w, dy))
    with pytest.raises(ValueError, match=rf"^plan: path 'rows' does not take the weight_grad .*\(float32\): output rows "
                                         rf"of {ow} < {lanes32} pixels"):
        _conv_call(name, x, w, dy, plan=plan, backend="cython")


@pytest.mark.parametrize("name", ["conv2d", "conv2d_grad", "conv2d_input_grad", "conv2d_weight_grad"])
def test_a_forced_reference_path_on_cython_is_the_reference_bit_for_bit(name):
    """plan="reference" makes the cython backend run the NumPy reference itself, so the results are its own bits
    (the default plan runs other kernels, whose sums round differently)."""
    import minicnn as mc

    if "cython" not in mc.available_backends():
        pytest.skip("the cython backend is not built here")
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 9, 9)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    got = _conv_call(name, x, w, dy, plan="reference", backend="cython")
    want = _conv_call(name, x, w, dy, backend="numpy")
    for g, r in zip(got if isinstance(got, tuple) else [got], want if isinstance(want, tuple) else [want]):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("name", ["conv2d", "conv2d_grad", "conv2d_input_grad", "conv2d_weight_grad"])
def test_an_empty_batch_gives_zeros_of_the_input_dtype(name):
    x, w, dy = np.zeros((0, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32), np.zeros((0, 4, 4, 4), np.float32)
    out = _conv_call(name, x, w, dy, backend="numpy")
    for a in out if isinstance(out, tuple) else [out]:
        assert a is None or (a.dtype == np.float32 and not a.any())


def test_linear_grad_computes_dx_unless_told_not_to():
    rng = np.random.default_rng(9)
    x, w, dy = rng.standard_normal((2, 5)), rng.standard_normal((3, 5)), rng.standard_normal((2, 3))
    dx, dw, db = F.linear_grad(x, w, dy, backend="numpy")
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-12)
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape", [((0, 5), (3, 5)), ((2, 0), (3, 0)), ((2, 5), (0, 5))])
def test_linear_grad_of_empty_operands_follows_the_formula(x_shape, w_shape):
    """An empty batch, no input feature or no output: dx = dy W, dW = dyᵀ x, db = Σ dy, as for any size.
    With no input feature y = b, so db is Σ dy, not zero (a bug mutation testing found: it was zeros)."""
    import minicnn as mc

    rng = np.random.default_rng(10)
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal((x_shape[0], w_shape[0])).astype(np.float32)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        dx, dw, db = F.linear_grad(x, w, dy, backend=backend)
        for got, want in [(dx, dy @ w), (dw, dy.T @ x), (db, dy.sum(axis=0))]:
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)
