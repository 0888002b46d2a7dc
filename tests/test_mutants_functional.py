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
