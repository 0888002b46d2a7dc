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


# ------------------------------------------------------------------------------------------------ pad_grad
PAD_X = np.zeros((2, 3))
PAD_MESSAGES = [
    ("x type", lambda: F.pad_grad([1], np.zeros((2, 5)), (1, 1)), TypeError, f"pad_grad: x {ARRAY} list"),
    ("pad type", lambda: F.pad_grad(PAD_X, np.zeros((2, 5)), 3), TypeError,
     "pad_grad: pad must be a tuple of ints (before, after) per axis, last axis first, got 3"),
    ("mode", lambda: F.pad_grad(PAD_X, np.zeros((2, 5)), (1, 1), mode="edge"), ValueError,
     "pad_grad: mode must be one of ['constant', 'reflect', 'replicate', 'circular'], got 'edge'"),
    ("dy shape", lambda: F.pad_grad(PAD_X, np.zeros((2, 4)), (1, 1)), ValueError,
     "pad_grad: dy must have the output's shape (2, 5), got (2, 4)"),
    ("dy dtype", lambda: F.pad_grad(PAD_X, np.zeros((2, 5), np.float32), (1, 1)), TypeError,
     "pad_grad: dy has dtype float32 but x has dtype float64; use one dtype"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in PAD_MESSAGES], ids=[m[0] for m in PAD_MESSAGES])
def test_pad_grad_bad_argument_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_pad_grad_default_mode_is_constant():
    """As ``pad``: without ``mode`` the padding is constant, so dx is dy without the padded rim."""
    dy = np.arange(10.0).reshape(2, 5)
    got = F.pad_grad(PAD_X, dy, (1, 1), backend="numpy")
    np.testing.assert_array_equal(got, dy[:, 1:4])
    np.testing.assert_array_equal(F.pad_grad(PAD_X, dy, (1, 1), "constant", backend="numpy"), got)


def test_pad_grad_uses_the_backend_it_is_given():
    dy = np.zeros((2, 5))
    F.pad_grad(PAD_X, dy, (1, 1), backend="numpy")
    with pytest.raises(ValueError, match=r"^unknown backend 'fortran'; choose one of \['numpy', 'cython', 'cupy'\]$"):
        F.pad_grad(PAD_X, dy, (1, 1), backend="fortran")


@pytest.mark.parametrize("x_shape, pad", [((2, 3), (-2, -1)), ((2, 0), (1, 1)), ((0, 3), (1, 1))])
def test_pad_grad_of_an_empty_input_or_output_is_zeros_of_x(x_shape, pad):
    """Cropped to nothing, or padding an empty input: no output comes from x, so dx is zeros of x's shape."""
    import minicnn as mc

    x = np.ones(x_shape, np.float32)
    dy = np.ones(F.pad(x, pad, backend="numpy").shape, np.float32)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        dx = F.pad_grad(x, dy, pad, backend=backend)
        assert dx.shape == x_shape and dx.dtype == np.float32 and not dx.any()


def test_explain_conv2d_refuses_a_bad_padding_by_name():
    with pytest.raises(ValueError) as info:
        F.explain_conv2d((1, 2, 5, 5), (3, 2, 3, 3), padding="bogus", backend="numpy")
    assert str(info.value) == "explain_conv2d: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'bogus'"


# A dilated pooling, 2x2 windows and stride 1: dilation (2, 1) makes window (0, 0) rows {0, 2} and columns {0, 1}.
DILATED_X = np.zeros((1, 1, 9, 9))


def _dilated_window_message(dilation):
    taps = [f"{d}*[0, 2)" if d != 1 else "[0, 2)" for d in dilation]
    return (f"max_pool2d_grad: 1 of the indices point outside their own 2x2 window (window (i, j) covers rows "
            f"i*1 - 0 + {taps[0]} and columns j*1 - 0 + {taps[1]}); pass the indices returned by "
            f"max_pool2d_with_indices for the same arguments")


@pytest.mark.parametrize("dilation, row, col", [
    ((2, 1), 1, 0),  # between the two taps of a dilated row
    ((1, 2), 0, 1),  # between the two taps of a dilated column
    ((2, 1), 4, 0),  # past the window's rows, on a multiple of the dilation
    ((1, 2), 0, 4),  # past the window's columns, on a multiple of the dilation
])
def test_a_dilated_window_refuses_an_index_that_is_not_one_of_its_taps(dilation, row, col):
    pool = dict(kernel_size=2, stride=1, dilation=dilation)
    y, indices = F.max_pool2d_with_indices(DILATED_X, **pool, backend="numpy")
    dy = np.ones(y.shape)
    tap = indices.copy()
    tap[0, 0, 0, 0] = dilation[0] * DILATED_X.shape[3] + dilation[1]  # the window's last tap is its own
    F.max_pool2d_grad(DILATED_X, dy, **pool, indices=tap)
    bad = indices.copy()
    bad[0, 0, 0, 0] = row * DILATED_X.shape[3] + col
    with pytest.raises(ValueError) as info:
        F.max_pool2d_grad(DILATED_X, dy, **pool, indices=bad)
    assert str(info.value) == _dilated_window_message(dilation)


def _grad_calls(x, w, dy):
    return {
        "conv2d_grad": lambda plan: F.conv2d_grad(x, w, dy, plan=plan, backend="cython"),
        "conv2d_input_grad": lambda plan: F.conv2d_input_grad(x.shape, w, dy, plan=plan, backend="cython"),
        "conv2d_weight_grad": lambda plan: F.conv2d_weight_grad(x, w.shape, dy, plan=plan, backend="cython"),
        "conv2d_and_weight_grad": lambda plan: F.conv2d_and_weight_grad(x, w, dy, plan=plan, backend="cython"),
    }


def _planned_dtypes(monkeypatch):
    """The dtypes the cython backend is asked to plan for, recorded as each call completes its plan."""
    from minicnn.backends import get_backend

    impl, asked = get_backend("cython"), []
    plan_conv2d = impl.plan_conv2d

    def recording(geometry, dtype, plan=None):
        asked.append(np.dtype(dtype))
        return plan_conv2d(geometry, dtype, plan)

    monkeypatch.setattr(impl, "plan_conv2d", recording)
    return asked


@pytest.mark.parametrize("name", sorted(_grad_calls(None, None, None)))
def test_a_partial_plan_is_completed_for_the_dtype_of_the_call(name, monkeypatch):
    """A dict plan forces the operations it names; the others come from the plan for this layer and the arrays'
    dtype (float32 here), never for another dtype (the paths that take a layer, and their limits, depend on it)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 4, 10, 10)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((8, 4, 8, 8)).astype(np.float32)
    asked = _planned_dtypes(monkeypatch)
    _grad_calls(x, w, dy)[name]({"forward": "im2col"})
    assert asked and set(asked) == {np.dtype(np.float32)}


PAD_SHAPE_MESSAGES = [
    ("pad x type", lambda: F.pad([1], (1, 1)), TypeError, f"pad: x {ARRAY} list"),
    ("pad too many pairs", lambda: F.pad(PAD_X, (1, 1, 1, 1, 1, 1)), ValueError,
     "pad: pad must have an even length of at most 2*ndim = 4 (pairs for the last axes, last axis first), "
     "got 6 values for an input of shape (2, 3)"),
    ("pad_grad too many pairs", lambda: F.pad_grad(PAD_X, np.zeros((2, 5)), (1, 1, 1, 1, 1, 1)), ValueError,
     "pad_grad: pad must have an even length of at most 2*ndim = 4 (pairs for the last axes, last axis first), "
     "got 6 values for an input of shape (2, 3)"),
    ("pad_grad crop below zero", lambda: F.pad_grad(PAD_X, np.zeros((2, 0)), (-2, -2)), ValueError,
     "pad_grad: axis 1 would have size 3 + -2 + -2 = -1 < 0"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in PAD_SHAPE_MESSAGES],
                         ids=[m[0] for m in PAD_SHAPE_MESSAGES])
def test_pad_shape_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_pad_uses_the_backend_it_is_given():
    F.pad(PAD_X, (1, 1), backend="numpy")
    with pytest.raises(ValueError, match=r"^unknown backend 'fortran'; choose one of \['numpy', 'cython', 'cupy'\]$"):
        F.pad(PAD_X, (1, 1), backend="fortran")


@pytest.mark.parametrize("x_shape, pad, out_shape", [((2, 3), (-2, -1), (2, 0)), ((2, 0), (1, 1), (2, 2)),
                                                     ((0, 3), (1, 1), (0, 5))])
def test_pad_of_an_empty_input_or_output_is_the_value_in_x_dtype(x_shape, pad, out_shape):
    """Padding an empty axis fills the output with ``value`` alone; cropping to nothing leaves an empty output."""
    import minicnn as mc

    x = np.ones(x_shape, np.float32)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        y = F.pad(x, pad, value=2.5, backend=backend)
        assert y.shape == out_shape and y.dtype == np.float32
        np.testing.assert_array_equal(y, np.full(out_shape, 2.5, np.float32))


def test_a_partial_forward_plan_is_completed_for_the_dtype_of_the_call(monkeypatch):
    """As for the gradients: ``conv2d`` with a dict plan that names no forward path plans it for x's dtype."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    asked = _planned_dtypes(monkeypatch)
    F.conv2d(x, w, padding=1, plan={"input_grad": "reference"}, backend="cython")
    assert asked and set(asked) == {np.dtype(np.float32)}


# ------------------------------------------------------------------------------------ conv2d_and_weight_grad
AND_MESSAGES = [
    ("x type", lambda: F.conv2d_and_weight_grad([1], W, DY), TypeError, f"conv2d_and_weight_grad: x {ARRAY} list"),
    ("w type", lambda: F.conv2d_and_weight_grad(X, [1], DY), TypeError, f"conv2d_and_weight_grad: w {ARRAY} list"),
    ("x ndim", lambda: F.conv2d_and_weight_grad(X3, W, DY), ValueError, f"conv2d_and_weight_grad: {X_4D}"),
    ("w ndim", lambda: F.conv2d_and_weight_grad(X, W3, DY), ValueError, f"conv2d_and_weight_grad: {W_4D}"),
    ("w dtype", lambda: F.conv2d_and_weight_grad(X, W.astype(np.float64), DY), TypeError,
     "conv2d_and_weight_grad: w has dtype float64 but x has dtype float32; use one dtype"),
    ("padding", lambda: F.conv2d_and_weight_grad(X, W, DY, padding="bogus"), ValueError,
     "conv2d_and_weight_grad: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'bogus'"),
    ("dy shape", lambda: F.conv2d_and_weight_grad(X, W, DY, padding=(0, 1, 0, 1)), ValueError,
     "conv2d_and_weight_grad: dy must have the output's shape (2, 6, 7, 7), got (2, 6, 6, 6)"),
    ("weight_grad padding", lambda: F.conv2d_weight_grad(X, W.shape, DY, padding="bogus"), ValueError,
     "conv2d_weight_grad: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'bogus'"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in AND_MESSAGES], ids=[m[0] for m in AND_MESSAGES])
def test_conv2d_and_weight_grad_bad_argument_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_conv2d_and_weight_grad_geometry_errors_carry_its_name():
    x, w = np.zeros((1, 4, 4, 4)), np.zeros((4, 4, 5, 5))
    with pytest.raises(ValueError) as info:
        F.conv2d_and_weight_grad(x, w, np.zeros((1, 4, 1, 1)), backend="numpy")
    assert str(info.value).startswith("conv2d_and_weight_grad: output height (4 + 2*0 - 1*(5-1) - 1)//1 + 1 = 0 < 1")


def test_conv2d_and_weight_grad_uses_the_backend_and_plan_it_is_given():
    """As every entry point: an unknown backend is refused, and so is a path name on the one-path reference."""
    import minicnn as mc

    x, w, dy = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3)), np.zeros((1, 3, 3, 3))
    F.conv2d_and_weight_grad(x, w, dy, backend="numpy")
    with pytest.raises(ValueError, match=r"^unknown backend 'fortran'; choose one of \['numpy', 'cython', 'cupy'\]$"):
        F.conv2d_and_weight_grad(x, w, dy, backend="fortran")
    for current in [b for b in mc.available_backends() if b != "cupy"]:
        with mc.use_backend(current):
            with pytest.raises(ValueError, match=r"^plan: the numpy backend has no kernel paths to choose from"):
                F.conv2d_and_weight_grad(x, w, dy, plan="im2col", backend="numpy")


def test_conv2d_and_weight_grad_of_an_empty_batch_gives_zeros_of_the_input_dtype():
    import minicnn as mc

    x, w, dy = np.zeros((0, 3, 6, 6), np.float32), np.ones((4, 3, 3, 3), np.float32), np.zeros((0, 4, 4, 4), np.float32)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        y, dw, db = F.conv2d_and_weight_grad(x, w, dy, backend=backend)
        for a, shape in [(y, (0, 4, 4, 4)), (dw, (4, 3, 3, 3)), (db, (4,))]:
            assert a.shape == shape and a.dtype == np.float32 and not a.any()


# ------------------------------------------------------------------------------------- pad's other checks
PAD_MODE_MESSAGES = [
    ("value type", lambda: F.pad(PAD_X, (1, 1), value="a"), TypeError, "pad: value must be a number, got str 'a'"),
    ("circular", lambda: F.pad(PAD_X, (4, 0), mode="circular"), ValueError,
     "pad: circular padding (4, 0) of axis 1 (size 3) is impossible: it needs 0 <= padding and padding <= size"),
    ("replicate", lambda: F.pad(np.zeros((2, 0)), (1, 1), mode="replicate"), ValueError,
     "pad: replicate padding (1, 1) of axis 1 (size 0) is impossible: it needs 0 <= padding and size >= 1"),
    ("reflect", lambda: F.pad(PAD_X, (3, 0), mode="reflect"), ValueError,
     "pad: reflect padding (3, 0) of axis 1 (size 3) is impossible: it needs 0 <= padding and padding < size "
     "(the edge is not repeated)"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in PAD_MODE_MESSAGES],
                         ids=[m[0] for m in PAD_MODE_MESSAGES])
def test_pad_mode_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_check_pad_spec_without_a_value_takes_every_mode(mode):
    """The value defaults to 0, the fill every mode allows (a non-zero one is constant mode's alone)."""
    assert F.check_pad_spec("Pad", [1, np.int64(2)], mode) == (1, 2)


# --------------------------------------------------------------------- conv2d_input_grad: padding, plan, batch
INPUT_GRAD_MESSAGES = [
    ("padding", lambda: F.conv2d_input_grad((1, 2, 5, 5), np.zeros((3, 2, 3, 3)), np.zeros((1, 3, 5, 5)),
                                            padding="bogus"), ValueError,
     "conv2d_input_grad: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'bogus'"),
    ("same strided", lambda: F.conv2d_input_grad((1, 2, 6, 6), np.zeros((3, 2, 3, 3)), np.zeros((1, 3, 3, 3)),
                                                 padding="same", stride=2), ValueError,
     "conv2d_input_grad: padding='same' is not supported for strided convolutions (stride=(2, 2)), as in PyTorch: "
     "with stride S the output is ceil(H/S), not H; give the padding as numbers"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in INPUT_GRAD_MESSAGES],
                         ids=[m[0] for m in INPUT_GRAD_MESSAGES])
def test_conv2d_input_grad_padding_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


INPUT_GRAD_LAYERS = [
    ((2, 4, 7, 8), (6, 2, 3, 2), dict(padding=(1, 0, 2, 1), groups=2)),  # F.pad (left, right, top, bottom)
    ((2, 3, 6, 8), (4, 3, 3, 2), dict(padding=(0, 2, 1, 3))),  # more after than before on both axes
    ((2, 3, 7, 8), (4, 3, 3, 2), dict(padding="same", dilation=(2, 1))),  # "same" pads by the dilated kernel
    ((1, 3, 9, 8), (4, 3, 2, 3), dict(stride=(2, 1), padding=(0, 1), dilation=(1, 2))),
]


@pytest.mark.parametrize("x_shape, w_shape, kwargs", INPUT_GRAD_LAYERS)
def test_conv2d_input_grad_is_the_dx_of_conv2d_grad_for_every_padding(x_shape, w_shape, kwargs):
    """dX alone, from x's shape only, is conv2d_grad's dX: the asymmetric part of the padding is undone, "same"
    resolved from the filter, its dilation and the stride."""
    import minicnn as mc

    rng = np.random.default_rng(13)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    dy = rng.standard_normal(F.conv2d(x, w, **kwargs, backend="numpy").shape)
    want = F.conv2d_grad(x, w, dy, **kwargs, backend="numpy")[0]
    assert want.shape == x_shape
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        got = F.conv2d_input_grad(x_shape, w, dy, **kwargs, backend=backend)
        assert got.shape == x_shape and got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_conv2d_input_grad_of_an_empty_batch_has_the_unpadded_shape():
    dx = F.conv2d_input_grad((0, 2, 5, 6), np.ones((3, 2, 3, 3)), np.zeros((0, 3, 6, 5)), padding=(1, 0, 2, 1),
                             backend="numpy")
    assert dx.shape == (0, 2, 5, 6) and dx.dtype == np.float64


def test_conv2d_input_grad_checks_a_forced_path():
    """A path that cannot compute this dX is refused, not replaced by the backend's own choice."""
    import minicnn as mc

    if "cython" not in mc.available_backends():
        pytest.skip("the cython backend is not built here")
    w, dy = np.zeros((3, 2, 3, 3), np.float32), np.zeros((1, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"^plan: path 'direct' does not take the input_grad of conv2d x 1x2x5x5, "
                                         r"w 3x2x3x3 \(float32\): "):
        F.conv2d_input_grad((1, 2, 5, 5), w, dy, plan="direct", backend="cython")


PLAN_MESSAGES = [
    ("padding", lambda: F.conv2d_plan((1, 2, 5, 5), (3, 2, 3, 3), padding="bogus"), ValueError,
     "conv2d_plan: padding must be an int, a pair, 4 ints, 'same' or 'valid', got 'bogus'"),
    ("same strided", lambda: F.conv2d_plan((1, 2, 6, 6), (3, 2, 3, 3), padding="same", stride=2), ValueError,
     "conv2d_plan: padding='same' is not supported for strided convolutions (stride=(2, 2)), as in PyTorch: "
     "with stride S the output is ceil(H/S), not H; give the padding as numbers"),
    ("dilated kernel", lambda: F.conv2d_plan((1, 1, 4, 4), (1, 1, 3, 3), dilation=2, backend="numpy"), ValueError,
     "conv2d_plan: output height (4 + 2*0 - 2*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 5 pixels (dilation 2) "
     "but the padded input height is 4"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in PLAN_MESSAGES], ids=[m[0] for m in PLAN_MESSAGES])
def test_conv2d_plan_refuses_a_bad_layer_by_name(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


def test_conv2d_plan_takes_a_dilated_grouped_same_layer():
    """padding="same" of a 3x3 filter with dilation 2 pads 2 on each side, so a 2x2 input keeps its size;
    with groups 2 the filters hold C_in/2 channels."""
    import minicnn as mc

    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        plan = F.conv2d_plan((1, 4, 2, 2), (4, 2, 3, 3), padding="same", dilation=2, groups=2, backend=backend)
        assert plan is None if backend == "numpy" else plan.backend == backend


def test_a_shape_may_be_given_as_text():
    """``minicnn backends --explain`` passes the shapes as typed: "1x2x5x5" or "3,2,3,3"."""
    text = F.explain_conv2d("1x2x5x5", "3,2,3,3", backend="numpy")
    assert text == "conv2d x 1x2x5x5, w 3x2x3x3: the numpy backend has one path for every layer"
    with pytest.raises(ValueError) as info:
        F.explain_conv2d("1xbx5x5", (3, 2, 3, 3), backend="numpy")
    assert str(info.value) == "x_shape must be sizes joined by 'x', e.g. 64x6x14x14, got '1xbx5x5'"


@pytest.mark.parametrize("x_shape, w_shape, name, got", [
    ((1, 2, 5.0, 5), (3, 2, 3, 3), "x_shape", "(1, 2, 5.0, 5)"),
    ((1, 2, 5, 5), (3, 2, 3, True), "w_shape", "(3, 2, 3, True)"),
])
def test_a_shape_of_other_than_ints_is_refused(x_shape, w_shape, name, got):
    with pytest.raises(ValueError) as info:
        F.conv2d_plan(x_shape, w_shape, backend="numpy")
    assert str(info.value) == (f"conv2d_plan: {name} must be 4 ints (N, C, H, W) or (C_out, C_in/groups, F_H, F_W), "
                               f"got {got}")


class _DeviceArray:
    """What another GPU library's array exposes (numba, a torch CUDA tensor): the CUDA array interface, not CuPy's type."""

    __cuda_array_interface__ = {"shape": (2, 3), "typestr": "<f4", "data": (0, False), "version": 3}
    shape, dtype = (2, 3), np.dtype(np.float32)


@pytest.mark.parametrize("x, message", [
    (_DeviceArray(), f"pad: x {ARRAY} _DeviceArray"),
    (np.zeros(3, np.float16), "pad: x must have dtype float32 or float64, got float16"),
    (np.zeros(3, np.int32), "pad: x must have dtype float32 or float64, got int32"),
])
def test_only_float32_and_float64_numpy_or_cupy_arrays_are_taken(x, message):
    with pytest.raises(TypeError) as info:
        F.pad(x, (1, 1))
    assert str(info.value) == message


@pytest.mark.parametrize("padding", [(0, 30000), (30000, 0)])
def test_much_padding_on_one_axis_only_is_taken(padding):
    """The padded input is N*C*(H + 2P_H)*(W + 2P_W) = 60,001 values here, far under the limit: each axis by its own P."""
    y = F.conv2d(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), padding=padding, backend="numpy")
    assert y.shape == (1, 1, 1 + 2 * padding[0], 1 + 2 * padding[1]) and y.sum() == 1.0


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_too_much_padding_for_a_ceil_mode_window_is_refused_with_the_stride_it_adds(name):
    """A partial last window (ceil_mode) may reach one stride past the padded input: N*C*(H + 2P + S)*(W + 2P + S)."""
    x = np.zeros((1, 2, 2, 3))
    with pytest.raises(ValueError) as info:
        getattr(F, name)(x, (60001, 60001), stride=(2, 3), padding=30000, ceil_mode=True, backend="numpy")
    assert str(info.value) == (
        f"{name}: padding (30000, 30000) makes the padded input N*C*(H + 2P + S)*(W + 2P + S) = "
        "1*2*(2 + 2*30000 + 2)*(3 + 2*30000 + 3) = 7,201,200,048 values, more than 2,147,483,647; use less padding")


def test_conv2d_and_conv2d_grad_of_an_empty_batch_have_the_shapes_of_a_full_one():
    """y (0, C_out, H_out, W_out) of the padded input; dx of x's own, unpadded shape (or None), dW of w's, db (C_out,)."""
    import minicnn as mc

    x, w = np.zeros((0, 3, 5, 6), np.float32), np.ones((4, 3, 3, 3), np.float32)
    dy = np.zeros((0, 4, 6, 5), np.float32)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        y = F.conv2d(x, w, padding=(1, 0, 2, 1), backend=backend)
        assert y.shape == dy.shape and y.dtype == np.float32
        for input_grad in (True, False):
            dx, dw, db = F.conv2d_grad(x, w, dy, padding=(1, 0, 2, 1), input_grad=input_grad, backend=backend)
            assert dx is None if not input_grad else (dx.shape == x.shape and dx.dtype == np.float32)
            assert dw.shape == w.shape and db.shape == (4,) and dw.dtype == db.dtype == np.float32
            assert not dw.any() and not db.any()


def test_the_padded_size_limit_counts_padding_on_one_axis_and_is_inclusive():
    """x's shape alone is enough to be refused (dy is never read, so a wrong one shows which check ran first):
    padding on W alone can pass the limit, and exactly 2**31 - 1 padded values are still allowed."""
    w, dy = np.zeros((1, 65536, 1, 1)), np.zeros((1, 1, 1, 1))
    with pytest.raises(ValueError) as info:
        F.conv2d_input_grad((1, 65536, 1, 1), w, dy, padding=(0, 16384), backend="numpy")
    assert str(info.value) == (
        "conv2d_input_grad: padding (0, 16384) makes the padded input N*C*(H + 2P)*(W + 2P) = "
        "1*65536*(1 + 2*0)*(1 + 2*16384) = 2,147,549,184 values, more than 2,147,483,647; use less padding")
    with pytest.raises(ValueError) as info:  # 1*1*1*(1 + 2*(2**30 - 1)) = 2**31 - 1: taken, then dy is checked
        F.conv2d_input_grad((1, 1, 1, 1), np.zeros((1, 1, 1, 1)), dy, padding=(0, 2**30 - 1), backend="numpy")
    assert str(info.value) == "conv2d_input_grad: dy must have the output's shape (1, 1, 1, 2147483647), got (1, 1, 1, 1)"


def test_conv2d_refuses_a_bias_of_the_wrong_length_by_name():
    with pytest.raises(ValueError) as info:
        F.conv2d(X, W, np.zeros(5, np.float32))
    assert str(info.value) == "conv2d: b must have shape (C_out,) = (6,), got (5,)"


def test_the_padded_size_limit_of_f_pad_amounts_counts_each_side():
    """Four F.pad amounts: the input is padded by the uneven part first, so the limit counts H + top + bottom and
    W + left + right; exactly 2**31 - 1 values are still allowed (then dy, wrong here on purpose, is checked)."""
    with pytest.raises(ValueError) as info:
        F.conv2d(np.zeros((1, 2, 1, 1)), np.zeros((1, 2, 1, 1)), padding=(30000, 30001, 20000, 20001), backend="numpy")
    assert str(info.value) == (
        "conv2d: padding (30000, 30001, 20000, 20001) makes the padded input N*C*(H + top + bottom)*(W + left + right) "
        "= 1*2*40002*60002 = 4,800,400,008 values, more than 2,147,483,647; use less padding")
    with pytest.raises(ValueError) as info:  # 1*1*1*(2 + (2**30 - 2) + (2**30 - 1)) = 2**31 - 1
        F.conv2d_grad(np.zeros((1, 1, 1, 2)), np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 1, 1)),
                      padding=(2**30 - 2, 2**30 - 1, 0, 0), backend="numpy")
    assert str(info.value) == "conv2d_grad: dy must have the output's shape (1, 1, 1, 2147483647), got (1, 1, 1, 1)"


def test_the_filter_shape_may_be_any_iterable_of_four_ints():
    """``w_shape`` is read once, as ``conv2d_plan`` and ``conv2d_input_grad`` read theirs: an iterator is taken."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal((2, 3, 3, 3))
    want = F.conv2d_weight_grad(x, (3, 2, 3, 3), dy, backend="numpy")
    got = F.conv2d_weight_grad(x, iter((3, 2, 3, 3)), dy, backend="numpy")
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)


def test_arrays_of_one_library_go_together_whatever_their_subclass(tmp_path):
    """x memory-mapped from a file (np.memmap, an ndarray subclass) with a plain w: the same device, so taken; the
    result is the convolution of the same values."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    np.testing.assert_array_equal(F.conv2d(mapped, w, backend="numpy"), F.conv2d(x, w, backend="numpy"))


# ------------------------------------------------------------------------------------------------ linear
LINEAR_MESSAGES = [
    ("linear features", lambda: F.linear(np.zeros((1, 3)), np.zeros((2, 4))), ValueError,
     "linear: x has 3 features but w expects in_features = w.shape[1] = 4"),
    ("linear_grad features", lambda: F.linear_grad(np.zeros((1, 3)), np.zeros((2, 4)), np.zeros((1, 2))), ValueError,
     "linear_grad: x has 3 features but w expects in_features = w.shape[1] = 4"),
    ("linear b shape", lambda: F.linear(np.zeros((1, 3)), np.zeros((2, 3)), np.zeros(3)), ValueError,
     "linear: b must have shape (out_features,) = (2,), got (3,)"),
]


@pytest.mark.parametrize("call, error, message", [m[1:] for m in LINEAR_MESSAGES], ids=[m[0] for m in LINEAR_MESSAGES])
def test_linear_bad_argument_message_is_complete(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message


@pytest.mark.parametrize("x_shape, w_shape", [((0, 5), (3, 5)), ((2, 0), (3, 0)), ((2, 5), (0, 5)), ((2, 5), (1, 5))])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_of_empty_or_thin_operands_follows_the_formula(x_shape, w_shape, with_bias):
    """y = x Wᵀ + b for any size: an empty batch, no input feature (y = b), no output, a single output."""
    import minicnn as mc

    rng = np.random.default_rng(11)
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    b = (rng.standard_normal(w_shape[0]) + 2).astype(np.float32) if with_bias else None
    want = x @ w.T + (b if with_bias else 0)
    for backend in [b for b in mc.available_backends() if b != "cupy"]:
        got = F.linear(x, w, b, backend=backend)
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("x_shape, w_shape", [((0, 5), (3, 5)), ((2, 0), (3, 0)), ((2, 5), (0, 5)), ((2, 5), (1, 5))])
def test_linear_grad_leaves_dx_out_when_told_for_any_size(x_shape, w_shape):
    """input_grad=False: dx is None, whatever the sizes; dW and db follow the formula (a single output too)."""
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    dy = rng.standard_normal((x_shape[0], w_shape[0]))
    dx, dw, db = F.linear_grad(x, w, dy, input_grad=False, backend="numpy")
    assert dx is None
    np.testing.assert_allclose(dw, dy.T @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-12, atol=1e-12)
    dx, _, _ = F.linear_grad(x, w, dy, backend="numpy")
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-12, atol=1e-12)
    assert dx.shape == x.shape


# ------------------------------------------------------------------------------------------------ pooling
FORWARD_INDICES_MESSAGES = [
    ("not an array", [1, 2], TypeError,
     "max_pool2d_grad: indices must be the int64 ndarray of shape (2, 3, 3, 3) that max_pool2d_with_indices "
     "returned, got list  ()"),
    ("out of range", np.full((2, 3, 3, 3), 36, np.int64), ValueError,
     "max_pool2d_grad: indices must lie in [0, H*W) = [0, 36), got values in [36, 36]"),
]


@pytest.mark.parametrize("indices, error, message", [m[1:] for m in FORWARD_INDICES_MESSAGES],
                         ids=[m[0] for m in FORWARD_INDICES_MESSAGES])
def test_max_pool2d_grad_from_forward_refuses_bad_indices_by_name(indices, error, message):
    x, dy = np.zeros((2, 3, 6, 6)), np.zeros((2, 3, 3, 3))
    with pytest.raises(error) as info:
        F.max_pool2d_grad_from_forward(x, dy, 2, indices=indices, backend="numpy")
    assert str(info.value) == message


def test_pooling_of_an_empty_batch_gives_zeros_of_the_input_dtype_and_shape():
    """N = 0: every pooling result is empty, of the output's (or, for a gradient, the input's) shape and dtype."""
    x, dy = np.zeros((0, 3, 6, 6), np.float32), np.zeros((0, 3, 3, 3), np.float32)
    y, indices = F.max_pool2d_with_indices(x, 2, backend="numpy")
    assert (y.shape, y.dtype, indices.shape, indices.dtype) == ((0, 3, 3, 3), np.float32, (0, 3, 3, 3), np.int64)
    y = F.avg_pool2d(x, 2, backend="numpy")
    assert (y.shape, y.dtype) == ((0, 3, 3, 3), np.float32)
    for dx in [F.max_pool2d_grad(x, dy, 2, backend="numpy"), F.avg_pool2d_grad(x, dy, 2, backend="numpy"),
               F.max_pool2d_grad_from_forward(x, dy, 2, indices=indices, backend="numpy")]:
        assert (dx.shape, dx.dtype) == ((0, 3, 6, 6), np.float32)


class _Tagged(np.ndarray):
    """A user's ndarray subclass (as an array carrying units or axis names would be)."""


EMPTY_PRODUCTS = [((0, 3), (2, 3)), ((2, 0), (3, 0)), ((2, 3), (0, 3))]
EMPTY_PRODUCT_IDS = ["no sample", "no input feature", "no output"]


def _cpu_backends():
    import minicnn as mc

    return [b for b in mc.available_backends() if b != "cupy"]


@pytest.mark.parametrize("x_shape, w_shape", EMPTY_PRODUCTS, ids=EMPTY_PRODUCT_IDS)
@pytest.mark.parametrize("tagged", ["x", "w"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_of_an_empty_product_is_a_plain_array_of_the_bias_on_every_backend(x_shape, w_shape, tagged,
                                                                                   with_bias):
    """No sample, no input feature or no output: y = 0 + b, answered by minicnn itself, so every CPU backend
    gives the same plain ndarray of x's dtype, even when x or w is an ndarray subclass."""
    x, w = np.ones(x_shape), np.ones(w_shape)
    x, w = (x.view(_Tagged), w) if tagged == "x" else (x, w.view(_Tagged))
    b = np.arange(1.0, w_shape[0] + 1) if with_bias else None
    want = np.zeros((x_shape[0], w_shape[0])) + (b if with_bias else 0.0)
    for backend in _cpu_backends():
        y = F.linear(x, w, b, backend=backend)
        assert type(y) is np.ndarray and y.dtype == np.float64
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("x_shape, w_shape", EMPTY_PRODUCTS, ids=EMPTY_PRODUCT_IDS)
@pytest.mark.parametrize("tagged", ["x", "w"])
def test_linear_grad_of_an_empty_product_gives_zeros_like_each_operand_on_every_backend(x_shape, w_shape, tagged):
    """No sample, no input feature or no output: dx = zeros_like(x), dw = zeros_like(w) (an ndarray subclass of
    x or w kept, as zeros_like keeps it) and db = Σ dy, the same on every CPU backend."""
    x, w = np.ones(x_shape), np.ones(w_shape)
    x, w = (x.view(_Tagged), w) if tagged == "x" else (x, w.view(_Tagged))
    dy = np.arange(1.0, x_shape[0] * w_shape[0] + 1).reshape(x_shape[0], w_shape[0])
    for backend in _cpu_backends():
        dx, dw, db = F.linear_grad(x, w, dy, backend=backend)
        assert (type(dx), type(dw), type(db)) == (type(x), type(w), np.ndarray)
        np.testing.assert_array_equal(dx, np.zeros(x_shape))
        np.testing.assert_array_equal(dw, np.zeros(w_shape))
        np.testing.assert_array_equal(db, dy.sum(axis=0))
