"""Behaviour of minicnn.nn that mutation testing (tools/mutation.py run nn) found no test asserting.

Each test asserts documented behaviour through the public API (the docstrings of minicnn/nn/*.py), so it
stands on its own whatever mutmut later changes."""

import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from minicnn import nn
from minicnn.graph import Sequential
from minicnn.nn.init import shape_only
from minicnn.nn.module import NoForwardError


def test_parameter_refuses_non_float_data_and_names_the_dtype():
    with pytest.raises(TypeError, match=r"^Parameter: data must be a floating-point array, got dtype int64$"):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match=r"^Parameter: data must be a numpy.ndarray \(or cupy.ndarray\), got list$"):
        nn.Parameter([1.0, 2.0])


#: (layer, input shape, repr, MACs of one forward pass): the repr names every hyper-parameter that is not its
#: default (Module.extra_repr), output_shape predicts forward's shape, and macs counts N * outputs * taps.
LAYERS = [
    (lambda: nn.ReLU(), (2, 3), "ReLU()", 0),
    (lambda: nn.ReLU(inplace=True), (2, 3), "ReLU(inplace=True)", 0),
    (lambda: nn.GELU(), (2, 3), "GELU()", 0),
    (lambda: nn.GELU(approximate="tanh"), (2, 3), "GELU(approximate='tanh')", 0),
    (lambda: nn.LeakyReLU(0.2), (2, 3), "LeakyReLU(negative_slope=0.2)", 0),
    (lambda: nn.Softmax(dim=0), (2, 3), "Softmax(dim=0)", 0),
    (lambda: nn.LogSoftmax(axis=-1), (2, 3), "LogSoftmax(dim=-1)", 0),
    (lambda: nn.Conv2d(3, 4, 3), (1, 3, 6, 6), "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))", 64 * 27),
    (lambda: nn.Conv2d(4, 6, (3, 1), stride=2, padding=1, dilation=(1, 2), groups=2, bias=False, rng=0), (1, 4, 7, 7),
     "Conv2d(4, 6, kernel_size=(3, 1), stride=(2, 2), padding=(1, 1), dilation=(1, 2), groups=2, bias=False)",
     6 * 4 * 5 * (2 * 3 * 1)),
    (lambda: nn.Conv2d(3, 4, 3, padding="same"), (1, 3, 5, 5),
     "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=same)", 4 * 25 * 27),
    (lambda: nn.Conv2d(3, 4, 3, padding=(1, 0, 2, 1)), (1, 3, 5, 5),
     "Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 0, 2, 1))", 4 * 6 * 4 * 27),
    (lambda: nn.DepthwiseConv2d(4, 3, padding=1), (1, 4, 5, 5),
     "DepthwiseConv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)", 4 * 25 * 9),
    (lambda: nn.PointwiseConv2d(4, 2), (1, 4, 5, 5), "PointwiseConv2d(4, 2, kernel_size=(1, 1), stride=(1, 1))", 2 * 25 * 4),
    (lambda: nn.SeparableConv2d(4, 6, 3, padding=1), (1, 4, 5, 5),
     "SeparableConv2d(4, 6, kernel_size=(3, 3), mode='depthwise'\n"
     "  (depthwise): DepthwiseConv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)\n"
     "  (pointwise): PointwiseConv2d(4, 6, kernel_size=(1, 1), stride=(1, 1))\n)", 4 * 25 * 9 + 6 * 25 * 4),
    (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1, output_padding=1), (1, 3, 4, 4),
     "ConvTranspose2d(3, 2, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_padding=(1, 1))", 16 * 3 * 2 * 9),
    (lambda: nn.ConvTranspose2d(3, 2, 2), (1, 3, 4, 4), "ConvTranspose2d(3, 2, kernel_size=(2, 2), stride=(1, 1))",
     16 * 3 * 2 * 4),
    (lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2), (2, 3, 9),
     "Conv1d(3, 4, kernel_size=(3,), stride=(2,), padding=(1,), dilation=(2,))", 2 * 4 * 4 * 3 * 3),
    (lambda: nn.Conv1d(3, 4, 3), (2, 3, 9), "Conv1d(3, 4, kernel_size=(3,), stride=(1,))", 2 * 4 * 7 * 3 * 3),
    (lambda: nn.Conv1d(4, 6, 3, groups=2), (1, 4, 9), "Conv1d(4, 6, kernel_size=(3,), stride=(1,), groups=2)", 6 * 7 * 2 * 3),
    (lambda: nn.Conv3d(4, 6, 3, stride=2, groups=2, dilation=2, padding=2), (1, 4, 9, 9, 9),
     "Conv3d(4, 6, kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=(2, 2, 2), dilation=(2, 2, 2), groups=2)",
     6 * 125 * 2 * 27),
    (lambda: nn.Conv3d(2, 4, 3, padding=1), (1, 2, 4, 5, 5),
     "Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))", 4 * 4 * 5 * 5 * 2 * 27),
    (lambda: nn.Linear(4, 3), (2, 4), "Linear(in_features=4, out_features=3, bias=True)", 2 * 4 * 3),
    (lambda: nn.Linear(4, 3, bias=False), (2, 4), "Linear(in_features=4, out_features=3, bias=False)", 2 * 4 * 3),
    (lambda: nn.MaxPool2d(2), (1, 2, 6, 6), "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))", 0),
    (lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True), (1, 2, 9, 9),
     "MaxPool2d(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(2, 2), ceil_mode=True)", 0),
    (lambda: nn.MaxPool2d(2, padding=(1, 0, 0, 1)), (1, 2, 6, 6),
     "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(1, 0, 0, 1))", 0),
    (lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False, divisor_override=2, ceil_mode=True),
     (1, 2, 6, 6), "AvgPool2d(kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), ceil_mode=True, "
                   "count_include_pad=False, divisor_override=2)", 0),
    (lambda: nn.AvgPool2d((2, 3)), (1, 2, 6, 6), "AvgPool2d(kernel_size=(2, 3), stride=(2, 3), padding=(0, 0))", 0),
    (lambda: nn.GlobalAvgPool2d(), (1, 2, 6, 6), "GlobalAvgPool2d()", 0),
    (lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=0.2), (2, 3, 4, 4), "BatchNorm2d(3, eps=0.001, momentum=0.2)", 0),
    (lambda: nn.LocalResponseNorm(3, alpha=1e-3, beta=0.5, k=2.0), (2, 5, 4, 4),
     "LocalResponseNorm(size=3, alpha=0.001, beta=0.5, k=2.0)", 0),
    (lambda: nn.LayerNorm2d(3), (2, 3, 4, 4), "LayerNorm2d(3, eps=1e-06)", 0),
    (lambda: nn.SqueezeExcitation(8, 2), (2, 8, 4, 4),
     "SqueezeExcitation(8, squeeze_channels=2\n  (pool): GlobalAvgPool2d()\n"
     "  (fc1): Conv2d(8, 2, kernel_size=(1, 1), stride=(1, 1))\n  (activation): ReLU()\n"
     "  (fc2): Conv2d(2, 8, kernel_size=(1, 1), stride=(1, 1))\n  (gate): Sigmoid()\n)", 2 * (8 * 2 + 2 * 8)),
    (lambda: nn.LayerScale(3), (2, 3, 4, 4), "LayerScale()", 0),
    (lambda: nn.Dropout(0.3), (2, 3), "Dropout(p=0.3)", 0),
    (lambda: nn.Flatten(), (2, 3, 4, 4), "Flatten()", 0),
    (lambda: nn.ChannelShuffle(2), (1, 4, 3, 3), "ChannelShuffle(groups=2)", 0),
    (lambda: nn.ReflectionPad2d((1, 0, 2, 1)), (1, 2, 3, 3), "ReflectionPad2d(pad=(1, 0, 2, 1), mode='reflect')", 0),
    (lambda: nn.ConstantPad2d(1, 0.5), (1, 2, 3, 3), "ConstantPad2d(pad=(1, 1, 1, 1), mode='constant', value=0.5)", 0),
    (lambda: nn.Pad((1, 1), mode="reflect"), (1, 2, 3, 3), "Pad(pad=(1, 1), mode='reflect')", 0),
]


@pytest.mark.parametrize("make, shape, text, macs", LAYERS, ids=[case[2].split("(")[0] + str(i) for i, case in enumerate(LAYERS)])
def test_repr_output_shape_and_macs_of_each_layer(make, shape, text, macs):
    layer = make()
    assert repr(layer) == text
    y = layer(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    assert layer.output_shape(shape) == y.shape
    assert layer.macs(shape) == macs and type(layer.macs(shape)) is int  # a count


def _raises(kind, message):
    """``pytest.raises`` for exactly this message (the user reads all of it, not a part)."""
    return pytest.raises(kind, match="^" + re.escape(message) + "$")


def test_output_shape_refuses_the_wrong_rank_or_channels_with_the_layer_s_name():
    with _raises(ValueError, "LayerScale: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"):
        nn.LayerScale(3).output_shape((2, 3, 4))
    with _raises(ValueError, "LayerScale: expected 3 input channels (channels), got 4 in input of shape (2, 4, 4, 4)"):
        nn.LayerScale(3).output_shape((2, 4, 4, 4))
    with _raises(ValueError, "LayerNorm2d: expected 3 input channels (num_channels), got 4 in input of shape (2, 4, 4, 4)"):
        nn.LayerNorm2d(3).output_shape((2, 4, 4, 4))
    with _raises(ValueError, "Softmax: dim must lie in [-ndim, ndim) = [-2, 2) for a 2-D input, got 2"):
        nn.Softmax(dim=2).output_shape((2, 3))
    with _raises(ValueError, "Conv2d: expected 4 input channels (in_channels), got 3 in input of shape (1, 3, 5, 5)"):
        nn.SeparableConv2d(4, 6, 3).output_shape((1, 3, 5, 5))


def test_a_module_that_forgets_a_method_is_told_which():
    class Half(nn.Module):
        pass

    class Square(nn.Elementwise):
        pass

    with _raises(NotImplementedError, "Half must define forward()"):
        Half()(np.ones(2))
    with _raises(NotImplementedError, "Half must define backward()"):
        Half().backward(np.ones(2))
    with _raises(NotImplementedError, "Half does not define output_shape(); define it to use it in summary()"):
        Half().output_shape((2,))
    with _raises(NotImplementedError, "Square must define f(x)"):
        Square()(np.ones(2))
    with _raises(NotImplementedError, "Square must define df(x) or df(y)"):
        Square().df(np.ones(2))
    assert repr(Half()) == "Half()" and Half().macs((2,)) == 0


def test_parameter_repr_says_name_shape_dtype_and_whether_it_has_values():
    assert repr(nn.Parameter(np.zeros((2, 3), np.float32), "w")) == "Parameter(name='w', shape=(2, 3), dtype=float32)"
    assert repr(nn.Parameter(shape_only((2, 3)))) == "Parameter(name=None, shape=(2, 3), dtype=float32, shape-only)"


def test_nested_containers_indent_each_level_by_two_spaces():
    net = Sequential(nn.SeparableConv2d(4, 6, 3), nn.ReLU())
    inner = repr(nn.SeparableConv2d(4, 6, 3)).replace("\n", "\n  ")
    assert repr(net).splitlines()[1:] == ("  (0): " + inner).splitlines() + ["  (1): ReLU()", ")"]
    assert repr(net).splitlines()[3] == "    (pointwise): PointwiseConv2d(4, 6, kernel_size=(1, 1), stride=(1, 1))"


def test_softmax_of_the_loss_module_sums_to_one_and_matches_exp_of_log_softmax():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p = nn.softmax(logits)
    e = np.exp([1.0, 2.0, 3.0])
    # exp and log round differently with each libm/SIMD build (a few ulp each): a tolerance well above that, far
    # below any wrong formula
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-13)
    np.testing.assert_array_equal(p[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p, np.exp(nn.log_softmax(logits)), rtol=1e-13)


def test_load_state_dict_names_what_is_wrong_and_accepts_nested_lists():
    net = Sequential(nn.Linear(2, 2, rng=0), nn.BatchNorm2d(2))
    with _raises(TypeError, "load_state_dict: state must be a mapping name -> array, got list"):
        net.load_state_dict([1, 2])
    with _raises(ValueError, "load_state_dict: names do not match Sequential's: missing ['0.bias', '0.weight', '1.bias', "
                             "'1.running_mean', '1.running_var', '1.weight'], unexpected ['x']"):
        net.load_state_dict({"x": 1})
    with _raises(TypeError, "load_state_dict: parameter 0.weight has dtype int64; expected float32 or float64 "
                            "(the model's is float32)"):
        net.load_state_dict({"0.weight": np.zeros((2, 2), np.int64)}, strict=False)
    with _raises(TypeError, "load_state_dict: buffer 1.running_mean has dtype int64; expected float32 or float64 "
                            "(the model's is float32)"):
        net.load_state_dict({"1.running_mean": np.zeros(2, np.int64)}, strict=False)
    with _raises(TypeError, "load_state_dict: parameter 0.weight must be an array, got list"):
        net.load_state_dict({"0.weight": [[1.0], [2.0, 3.0]]}, strict=False)
    with _raises(TypeError, "load_state_dict: buffer 1.running_var must be an array, got list"):
        net.load_state_dict({"1.running_var": [[1.0], [2.0, 3.0]]}, strict=False)
    net.load_state_dict({"0.weight": [[1.0, 2.0], [3.0, 4.0]], "1.running_var": [2.0, 3.0]}, strict=False)
    assert net[0].weight.data.dtype == np.float32 and net[0].weight.data.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert net[1].running_var.dtype == np.float32 and net[1].running_var.tolist() == [2.0, 3.0]


def test_layer_scale_gradients_accumulate_and_scale_dy_per_channel():
    layer = nn.LayerScale(2, init_value=0.5)
    x = np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4)
    dy = np.ones_like(x)
    for _ in range(2):
        layer(x)
        dx = layer.backward(dy)
    np.testing.assert_array_equal(dx, 0.5 * dy)
    np.testing.assert_array_equal(layer.weight.grad, 2 * x.sum(axis=(0, 2, 3)))


ELEMENTWISE = [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ReLU6, nn.LeakyReLU, nn.HardSigmoid, nn.SiLU, nn.HardSwish, nn.GELU,
               nn.Softmax, nn.LogSoftmax]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", ELEMENTWISE, ids=[m.__name__ for m in ELEMENTWISE])
def test_activations_keep_the_dtype_forward_and_backward(make, dtype):
    """float32 in, float32 out: a derivative mask of another dtype would promote dx to float64."""
    layer = make()
    x = np.linspace(-8, 8, 24, dtype=dtype).reshape(2, 12)
    y = layer(x)
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape


CAST = ("input dtype float64 differs from the weights' dtype float32; cast the input (x.astype(np.float32)) or the model "
        "(model.to(dtype=np.float64))")
#: (layer, shape of a wrong input, dtype, error, its whole message): the layer's own name, the layout it wants, the
#: numbers it got (HELPER_RULES: bad input gets a clear error naming the argument and the numbers).
BAD_INPUTS = [
    ("LayerScale(3)", (2, 3, 4), np.float32, ValueError,
     "LayerScale: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("LayerScale(3)", (2, 4, 4, 4), np.float32, ValueError,
     "LayerScale: expected 3 input channels (channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("LayerScale(3)", (2, 3, 4, 4), np.int32, TypeError, "LayerScale: input must be float32 or float64, got dtype int32"),
    ("LayerNorm2d(3)", (2, 3, 4), np.float32, ValueError,
     "LayerNorm2d: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("LayerNorm2d(3)", (2, 4, 4, 4), np.float32, ValueError,
     "LayerNorm2d: expected 3 input channels (num_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("LayerNorm2d(3)", (2, 3, 4, 4), np.int32, TypeError, "LayerNorm2d: input must be float32 or float64, got dtype int32"),
    ("BatchNorm2d(3)", (2, 3, 4), np.float32, ValueError,
     "BatchNorm2d: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("BatchNorm2d(3)", (2, 4, 4, 4), np.float32, ValueError,
     "BatchNorm2d: expected 3 channels (num_features), got 4 in input of shape (2, 4, 4, 4)"),
    ("BatchNorm2d(3)", (2, 3, 4, 4), np.int32, TypeError, "BatchNorm2d: input must be float32 or float64, got dtype int32"),
    ("LocalResponseNorm(3)", (2, 3), np.float32, ValueError,
     "LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got (2, 3)"),
    ("LocalResponseNorm(3)", (2, 3, 4), np.int32, TypeError, "LocalResponseNorm: input must be float32/float64, got dtype int32"),
    ("Conv2d(3, 4, 3)", (2, 3, 4), np.float32, ValueError,
     "Conv2d: input must be 4-D (N, C_in, H, W), got 3-D array of shape (2, 3, 4)"),
    ("Conv2d(3, 4, 3)", (2, 4, 4, 4), np.float32, ValueError,
     "Conv2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("Conv2d(3, 4, 3)", (2, 3, 4, 4), np.int32, TypeError, "Conv2d: input must be float32 or float64, got dtype int32"),
    ("Linear(4, 3)", (2, 3, 4), np.float32, ValueError,
     "Linear: input must be 2-D (N, in_features), got 3-D array of shape (2, 3, 4) (use Flatten first)"),
    ("Linear(4, 3)", (2, 3), np.float32, ValueError,
     "Linear: expected 4 input features (in_features), got 3 in input of shape (2, 3)"),
    ("Linear(4, 3)", (2, 4), np.int32, TypeError, "Linear: input must be float32 or float64, got dtype int32"),
    ("MaxPool2d(2)", (2, 3, 4), np.float32, ValueError,
     "MaxPool2d: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("MaxPool2d(2)", (2, 3, 4, 4), np.int32, TypeError, "MaxPool2d: input must be float32 or float64, got dtype int32"),
    ("AvgPool2d(2)", (2, 3, 4), np.float32, ValueError,
     "AvgPool2d: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("AvgPool2d(2)", (2, 3, 4, 4), np.int32, TypeError, "AvgPool2d: input must be float32 or float64, got dtype int32"),
    ("GlobalAvgPool2d()", (2, 3, 4), np.float32, ValueError,
     "GlobalAvgPool2d: input must be 4-D (N, C, H, W), got 3-D array of shape (2, 3, 4)"),
    ("Softmax()", (2,), np.float32, ValueError, "Softmax: dim must lie in [-ndim, ndim) = [-1, 1) for a 1-D input, got 1"),
    ("Softmax()", (2, 3), np.int32, TypeError, "Softmax: input must be a float32/float64 array, got int32"),
    ("LogSoftmax()", (2, 3), np.int32, TypeError, "LogSoftmax: input must be a float32/float64 array, got int32"),
    ("ReLU6()", (2, 3), np.int32, TypeError, "ReLU6: input must be a float32/float64 array, got int32"),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4), np.float32, ValueError,
     "ConvTranspose2d: input must be 4-D (N, C_in, H, W), got 3-D array of shape (2, 3, 4)"),
    ("ConvTranspose2d(3, 2, 2)", (2, 4, 4, 4), np.float32, ValueError,
     "ConvTranspose2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4, 4), np.int32, TypeError,
     "ConvTranspose2d: input must be float32 or float64, got dtype int32"),
    ("Conv1d(3, 4, 3)", (2, 3), np.float32, ValueError, "Conv1d: input must be 3-D (N, C_in, L), got 2-D array of shape (2, 3)"),
    ("Conv1d(3, 4, 3)", (2, 4, 9), np.float32, ValueError,
     "Conv1d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 9)"),
    ("Conv1d(3, 4, 3)", (2, 3, 9), np.int32, TypeError, "Conv1d: input must be float32 or float64, got dtype int32"),
    ("Conv3d(2, 4, 3)", (2, 2, 4, 4), np.float32, ValueError,
     "Conv3d: input must be 5-D (N, C_in, D, H, W), got 4-D array of shape (2, 2, 4, 4)"),
    ("Conv3d(2, 4, 3)", (1, 3, 4, 4, 4), np.float32, ValueError,
     "Conv3d: expected 2 input channels (in_channels), got 3 in input of shape (1, 3, 4, 4, 4)"),
    ("Conv3d(2, 4, 3)", (1, 2, 4, 4, 4), np.int32, TypeError, "Conv3d: input must be float32 or float64, got dtype int32"),
    ("SqueezeExcitation(8, 2)", (1, 8, 4), np.float32, ValueError,
     "SqueezeExcitation: input must be 4-D (N, C, H, W), got 3-D array of shape (1, 8, 4)"),
    ("SqueezeExcitation(8, 2)", (1, 4, 4, 4), np.float32, ValueError,
     "SqueezeExcitation: expected 8 input channels (channels), got 4 in input of shape (1, 4, 4, 4)"),
    ("ChannelShuffle(2)", (1, 4, 3), np.float32, ValueError,
     "ChannelShuffle: input must be 4-D (N, C, H, W), got 3-D array of shape (1, 4, 3)"),
    ("ChannelShuffle(2)", (1, 3, 3, 3), np.float32, ValueError,
     "ChannelShuffle: channels C=3 must be divisible by groups=2 (C = groups * k)"),
    ("ChannelShuffle(2)", (1, 4, 3, 3), np.int32, TypeError, "ChannelShuffle: input must be float32 or float64, got dtype int32"),
    ("LayerNorm2d(3)", (2, 3, 4, 4), np.float64, TypeError, f"LayerNorm2d: {CAST}"),
    ("BatchNorm2d(3)", (2, 3, 4, 4), np.float64, TypeError, f"BatchNorm2d: {CAST}"),
    ("Conv2d(3, 4, 3)", (2, 3, 4, 4), np.float64, TypeError, f"Conv2d: {CAST}"),
    ("Linear(4, 3)", (2, 4), np.float64, TypeError, f"Linear: {CAST}"),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4, 4), np.float64, TypeError, f"ConvTranspose2d: {CAST}"),
    ("Conv1d(3, 4, 3)", (2, 3, 9), np.float64, TypeError, f"Conv1d: {CAST}"),
    ("Conv3d(2, 4, 3)", (1, 2, 4, 4, 4), np.float64, TypeError, f"Conv3d: {CAST}"),
]


@pytest.mark.parametrize("layer, shape, dtype, kind, message", BAD_INPUTS, ids=[f"{c[0]}-{c[1]}-{c[2].__name__}" for c in BAD_INPUTS])
def test_a_wrong_input_gets_the_whole_message(layer, shape, dtype, kind, message):
    with _raises(kind, message):
        eval("nn." + layer)(np.zeros(shape, dtype))  # noqa: S307 (a table of constructor calls)


def test_relu6_slope_is_one_strictly_inside_zero_to_six():
    """f'(x) = 1 for 0 < x < 6, else 0 (the kinks at 0 and 6 take the outer side, as torch)."""
    layer = nn.ReLU6()
    x = np.array([-1.0, 0.0, 3.0, 6.0, 7.0])
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones(5)), [0, 0, 1, 0, 0])


def test_softmax_defaults_to_the_channel_axis_and_wants_an_int_dim():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    np.testing.assert_allclose(nn.Softmax()(x).sum(axis=1), np.ones((2, 4)), rtol=1e-13)
    with _raises(TypeError, "Softmax: dim must be an int, got float 1.0"):
        nn.Softmax(1.0)
    with _raises(TypeError, "LogSoftmax: dim must be an int, got bool True"):
        nn.LogSoftmax(axis=True)


#: (constructor call, error, its whole message): a layer checks its hyper-parameters when it is built.
BAD_ARGUMENTS = [
    ("LayerScale(0)", ValueError, "LayerScale: channels must be >= 1, got 0"),
    ("LayerScale(2, init_value='a')", TypeError, "LayerScale: init_value must be a number, got str 'a'"),
    ("LayerScale(2, dtype=np.int32)", TypeError,
     "LayerScale: dtype must be a floating-point type such as np.float32 or np.float64, got int32"),
    ("LayerNorm2d(0)", ValueError, "LayerNorm2d: num_channels must be >= 1, got 0"),
    ("LayerNorm2d(2, eps=0)", ValueError, "LayerNorm2d: eps must be a finite number > 0, got 0"),
    ("LayerNorm2d(2, dtype=np.int32)", TypeError,
     "LayerNorm2d: dtype must be a floating-point type such as np.float32 or np.float64, got int32"),
    ("BatchNorm2d(0)", ValueError, "BatchNorm2d: num_features must be >= 1, got 0"),
    ("BatchNorm2d(2, eps=-1)", ValueError, "BatchNorm2d: eps must be a finite number > 0, got -1"),
    ("BatchNorm2d(2, momentum=2)", ValueError, "BatchNorm2d: momentum must be a finite number in [0, 1], got 2"),
    ("BatchNorm2d(2, dtype='int8')", TypeError,
     "BatchNorm2d: dtype must be a floating-point type such as np.float32 or np.float64, got int8"),
    ("LocalResponseNorm(0)", ValueError, "LocalResponseNorm: size must be >= 1, got 0"),
    ("LocalResponseNorm(2, alpha='a')", TypeError, "LocalResponseNorm: alpha must be a number >= 0, got str 'a'"),
    ("LocalResponseNorm(2, beta=None)", TypeError, "LocalResponseNorm: beta must be a number, got NoneType None"),
    ("LocalResponseNorm(2, k=None)", TypeError, "LocalResponseNorm: k must be a number > 0, got NoneType None"),
    ("Linear(0, 2)", ValueError, "Linear: in_features must be >= 1, got 0"),
    ("Linear(2, 0)", ValueError, "Linear: out_features must be >= 1, got 0"),
    ("Linear(2, 2, bias=1)", TypeError, "Linear: bias must be True or False, got int 1"),
    ("Linear(2, 2, dtype=np.int32)", TypeError,
     "Linear: dtype must be a floating-point type such as np.float32 or np.float64, got int32"),
    ("Conv2d(0, 2, 3)", ValueError, "Conv2d: in_channels must be >= 1, got 0"),
    ("Conv2d(2, 0, 3)", ValueError, "Conv2d: out_channels must be >= 1, got 0"),
    ("Conv2d(2, 2, 0)", ValueError, "Conv2d: kernel_size must be >= 1 along both axes, got kernel_size=0"),
    ("Conv2d(2, 2, 3, stride=0)", ValueError, "Conv2d: stride must be >= 1 along both axes, got stride=0"),
    ("Conv2d(2, 2, 3, padding=-1)", ValueError, "Conv2d: padding must be >= 0 along both axes, got padding=-1"),
    ("Conv2d(2, 2, 3, dilation=0)", ValueError, "Conv2d: dilation must be >= 1 along both axes, got dilation=0"),
    ("Conv2d(3, 2, 3, groups=2)", ValueError, "Conv2d: in_channels=3 and out_channels=2 must both be divisible by groups=2"),
    ("Conv2d(2, 3, 3, groups=2)", ValueError, "Conv2d: in_channels=2 and out_channels=3 must both be divisible by groups=2"),
    ("Conv2d(2, 2, 3, bias='x')", TypeError, "Conv2d: bias must be True or False, got str 'x'"),
    ("Conv2d(2, 2, 3, groups=0)", ValueError, "Conv2d: groups must be >= 1, got 0"),
    ("MaxPool2d(0)", ValueError, "MaxPool2d: kernel_size must be >= 1 along both axes, got kernel_size=0"),
    ("MaxPool2d(2, stride=0)", ValueError, "MaxPool2d: stride must be >= 1 along both axes, got stride=0"),
    ("MaxPool2d(2, padding=2)", ValueError, "MaxPool2d: padding must be at most half the window, padding <= "
                                            "kernel_size//2 = 2//2 = 1 along height, got padding=2"),
    ("MaxPool2d((4, 2), padding=(1, 2))", ValueError, "MaxPool2d: padding must be at most half the window, padding <= "
                                                      "kernel_size//2 = 2//2 = 1 along width, got padding=(1, 2)"),
    ("MaxPool2d(2, padding=-1)", ValueError, "MaxPool2d: padding must be >= 0 along both axes, got padding=-1"),
    ("MaxPool2d(2, dilation=0)", ValueError, "MaxPool2d: dilation must be >= 1 along both axes, got dilation=0"),
    ("MaxPool2d(2, return_indices=1)", TypeError, "MaxPool2d: return_indices must be True or False, got int 1"),
    ("MaxPool2d(2, ceil_mode=1)", TypeError, "MaxPool2d: ceil_mode must be True or False, got int 1"),
    ("AvgPool2d(2, divisor_override=0)", ValueError, "AvgPool2d: divisor_override must be >= 1, got 0"),
    ("AvgPool2d(2, count_include_pad=1)", TypeError, "AvgPool2d: count_include_pad must be True or False, got int 1"),
    ("AvgPool2d(2, ceil_mode='no')", TypeError, "AvgPool2d: ceil_mode must be True or False, got str 'no'"),
    ("AvgPool2d(3, padding=(2, 1))", ValueError, "AvgPool2d: padding must be at most half the window, padding <= "
                                                 "kernel_size//2 = 3//2 = 1 along height, got padding=(2, 1)"),
    ("ReLU(inplace=1)", TypeError, "ReLU: inplace must be a bool, got int 1"),
    ("LeakyReLU('a')", TypeError, "LeakyReLU: negative_slope must be a number, got str 'a'"),
    ("LeakyReLU(float('inf'))", ValueError, "LeakyReLU: negative_slope must be finite, got inf"),
    ("LeakyReLU(True)", TypeError, "LeakyReLU: negative_slope must be a number, got bool True"),
    ("GELU('x')", ValueError, "GELU: approximate must be 'none' or 'tanh', got 'x'"),
    ("Dropout(1.5)", ValueError, "Dropout: p is a probability and must lie in [0, 1], got 1.5"),
    ("Dropout('a')", TypeError, "Dropout: p must be a number in [0, 1], got str 'a'"),
    ("ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)", ValueError,
     "ConvTranspose2d: output_padding must be smaller than the stride or the dilation; along height output_padding=2 "
     "but stride=2 and dilation=1"),
    ("Conv1d(0, 2, 3)", ValueError, "Conv1d: in_channels must be >= 1, got 0"),
    ("Conv3d(2, 2, 0)", ValueError, "Conv3d: kernel_size must be >= 1 along every axis, got kernel_size=(0, 0, 0)"),
    ("SeparableConv2d(2, 3, 3, mode='x')", ValueError,
     "SeparableConv2d: mode must be one of ('depthwise', 'spatial'), got 'x'"),
    ("SqueezeExcitation(0, 2)", ValueError, "SqueezeExcitation: channels must be >= 1, got 0"),
    ("ChannelShuffle(0)", ValueError, "ChannelShuffle: groups must be >= 1, got 0"),
]


@pytest.mark.parametrize("call, kind, message", BAD_ARGUMENTS, ids=[c[0] for c in BAD_ARGUMENTS])
def test_a_wrong_hyper_parameter_gets_the_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of constructor calls)


WEIGHTED = [(make, shape) for make, shape, _, _ in LAYERS if next(make().parameters(), None) is not None]


@pytest.mark.parametrize("make, shape", WEIGHTED, ids=[type(make()).__name__ + str(i) for i, (make, _) in enumerate(WEIGHTED)])
def test_parameter_gradients_accumulate_over_backward_passes(make, shape):
    """Module docstring: gradients accumulate (grad += ...), so two identical passes give twice one pass's."""
    layer = make().to(dtype=np.float64)
    params = dict(layer.named_parameters())
    x = np.random.default_rng(1).standard_normal(shape)
    y = layer(x)
    dy = np.random.default_rng(2).standard_normal(y.shape)
    layer.backward(dy)
    once = {name: p.grad.copy() for name, p in params.items()}
    assert any(np.abs(g).max() > 0 for g in once.values())
    layer(x)
    layer.backward(dy)
    for name, p in params.items():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=4 * np.finfo(np.float64).eps, atol=0, err_msg=name)


def test_layer_scale_starts_at_one_millionth_and_names_its_weight():
    layer = nn.LayerScale(3)
    assert layer.weight.name == "weight" and layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, np.full(3, 1e-6, np.float32))
    assert [name for name, _ in nn.LayerNorm2d(2).named_parameters()] == ["weight", "bias"]
    assert {p.name for p in nn.LayerNorm2d(2).parameters()} == {"weight", "bias"}


#: (layer, shape, the whole message of output_shape): summary() refuses what forward would refuse.
BAD_SHAPES = [
    ("LayerScale(3)", (2, 3, 4), "LayerScale: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("LayerNorm2d(3)", (2, 3, 4), "LayerNorm2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("BatchNorm2d(3)", (2, 3, 4), "BatchNorm2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("BatchNorm2d(3)", (2, 4, 4, 4), "BatchNorm2d: expected 3 channels, got input shape (2, 4, 4, 4)"),
    ("LocalResponseNorm(3)", (2, 3), "LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got (2, 3)"),
    ("Conv2d(3, 4, 3)", (2, 3, 4), "Conv2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"),
    ("Conv2d(3, 4, 3)", (2, 4, 4, 4), "Conv2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("Linear(4, 3)", (2, 3, 4), "Linear: input must be 2-D (N, in_features), got shape (2, 3, 4)"),
    ("Linear(4, 3)", (2, 3), "Linear: expected 4 input features (in_features), got 3 in input of shape (2, 3)"),
    ("MaxPool2d(2)", (2, 3, 4), "MaxPool2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("AvgPool2d(2)", (2, 3, 4), "AvgPool2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("GlobalAvgPool2d()", (2, 3, 4), "GlobalAvgPool2d: input must be 4-D (N, C, H, W), got shape (2, 3, 4)"),
    ("ConvTranspose2d(3, 2, 2)", (2, 3, 4), "ConvTranspose2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"),
    ("ConvTranspose2d(3, 2, 2)", (2, 4, 4, 4),
     "ConvTranspose2d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 4, 4)"),
    ("Conv1d(3, 4, 3)", (2, 3), "Conv1d: input must be 3-D (N, C_in, L), got shape (2, 3)"),
    ("Conv1d(3, 4, 3)", (2, 4, 9), "Conv1d: expected 3 input channels (in_channels), got 4 in input of shape (2, 4, 9)"),
    ("Conv3d(2, 4, 3)", (2, 2, 4, 4), "Conv3d: input must be 5-D (N, C_in, D, H, W), got shape (2, 2, 4, 4)"),
    ("SqueezeExcitation(8, 2)", (1, 8, 4), "SqueezeExcitation: input must be 4-D (N, C, H, W), got shape (1, 8, 4)"),
    ("SqueezeExcitation(8, 2)", (1, 4, 4, 4),
     "SqueezeExcitation: expected 8 input channels (channels), got 4 in input of shape (1, 4, 4, 4)"),
    ("ChannelShuffle(2)", (1, 4, 3), "ChannelShuffle: input must be 4-D (N, C, H, W), got shape (1, 4, 3)"),
    ("ChannelShuffle(2)", (1, 3, 3, 3), "ChannelShuffle: channels C=3 must be divisible by groups=2 (C = groups * k)"),
]


@pytest.mark.parametrize("layer, shape, message", BAD_SHAPES, ids=[f"{c[0]}-{c[1]}" for c in BAD_SHAPES])
def test_output_shape_refuses_a_wrong_shape_with_the_whole_message(layer, shape, message):
    with _raises(ValueError, message):
        eval("nn." + layer).output_shape(shape)  # noqa: S307 (a table of constructor calls)


def test_macs_refuses_a_wrong_shape_as_output_shape_does():
    with _raises(ValueError, "ConvTranspose2d: input must be 4-D (N, C_in, H, W), got shape (2, 3, 4)"):
        nn.ConvTranspose2d(3, 2, 2).macs((2, 3, 4))


def test_parameter_counts_follow_the_bias_flag():
    assert nn.Linear(4, 3).num_parameters() == 4 * 3 + 3 and nn.Linear(4, 3, bias=False).num_parameters() == 4 * 3
    assert nn.Conv2d(4, 6, 3).num_parameters() == 6 * 4 * 9 + 6
    assert nn.Conv2d(4, 6, 3, groups=2, bias=False).num_parameters() == 6 * 2 * 9


SKIPS_DX = [(lambda: nn.Conv1d(3, 4, 3, rng=0), (2, 3, 9)), (lambda: nn.Conv2d(3, 4, 3, rng=0), (2, 3, 6, 6)),
            (lambda: nn.ConvTranspose2d(3, 2, 3, rng=0), (1, 3, 4, 4)), (lambda: nn.Linear(4, 3, rng=0), (2, 4)),
            (lambda: nn.SeparableConv2d(4, 6, 3, rng=0), (1, 4, 5, 5)),
            (lambda: nn.SeparableConv2d(4, 6, 3, mode="spatial", rng=0), (1, 4, 5, 5)),
            (lambda: nn.DepthwiseConv2d(4, 3, rng=0), (1, 4, 5, 5))]


@pytest.mark.parametrize("make, shape", SKIPS_DX, ids=[type(m()).__name__ + str(i) for i, (m, _) in enumerate(SKIPS_DX)])
def test_need_dx_false_skips_dx_but_not_the_weight_gradients(make, shape):
    """Module docstring: need_dx=False lets the first layer skip dx (these return None); its weights still learn."""
    x = np.random.default_rng(0).standard_normal(shape)
    full, first = make().to(dtype=np.float64), make().to(dtype=np.float64)
    dy = np.random.default_rng(1).standard_normal(full(x).shape)
    assert full.backward(dy) is not None
    first(x)
    assert first.backward(dy, need_dx=False) is None
    for (name, p), q in zip(full.named_parameters(), first.parameters()):
        # the same sums, maybe in another order (another kernel path): error <= terms * eps * magnitude, terms <= x.size
        bound = x.size * np.finfo(np.float64).eps * float(np.abs(p.grad).max())
        np.testing.assert_allclose(q.grad, p.grad, rtol=0, atol=bound, err_msg=name)


def test_loss_repr_and_lrn_message_for_a_list():
    assert repr(nn.SoftmaxCrossEntropy()) == "SoftmaxCrossEntropy()"
    with _raises(ValueError, "LocalResponseNorm: input must be (N, C, ...) with at least 3 axes, got [1.0, 2.0]"):
        nn.LocalResponseNorm(3)([1.0, 2.0])


def test_materialize_draws_seed_zero_by_default_with_each_layer_s_initializer():
    """Module.materialize: rng defaults to 0, a layer's ``initializers`` names its rule, others get He normal."""
    from minicnn.nn.init import get_initializer

    def lazy():
        net = Sequential(nn.Linear(4, 3, bias=False, init="shape_only"),
                         nn.Linear(3, 2, bias=False, init="shape_only", dtype=np.float64))
        net[1].initializers = {"weight": "glorot_uniform"}
        return net

    a, b = lazy().materialize(), lazy().materialize(0)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    rng = np.random.default_rng(0)
    want = [get_initializer("kaiming_normal")((3, 4), rng, np.float32), get_initializer("glorot_uniform")((2, 3), rng, np.float64)]
    for p, w in zip(a.parameters(), want):
        assert p.data.dtype == w.dtype and p.grad.dtype == w.dtype
        np.testing.assert_array_equal(p.data, w)


def test_parameter_materialize_keeps_a_c_ordered_copy_in_its_dtype():
    p = nn.Parameter(shape_only((2, 3)))
    values = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    p.materialize(values)
    values[0, 0] = 99.0
    assert p.data.dtype == np.float32 and p.grad.dtype == np.float32 and p.data.flags.c_contiguous
    assert p.data.tolist() == [[0, 1, 2], [3, 4, 5]] and not p.is_shape_only
    with _raises(ValueError, "Parameter.materialize: None has shape (2, 3), got values of shape (3, 2)"):
        nn.Parameter(shape_only((2, 3))).materialize(np.zeros((3, 2)))


def test_conv_output_shape_with_dilated_same_padding_and_a_kernel_taller_than_the_input():
    assert nn.Conv2d(3, 4, 3, padding="same", dilation=2).output_shape((1, 3, 7, 5)) == (1, 4, 7, 5)
    with _raises(ValueError, "Conv2d: input (1, 3, 3, 8) is too small for kernel (5, 1) (dilation (1, 1), padding (0, 0), "
                             "stride (1, 1)): output (H + 2P - D*(F-1) - 1)//S + 1 gives (-1, 8)"):
        nn.Conv2d(3, 4, (5, 1)).output_shape((1, 3, 3, 8))
    with _raises(ValueError, "MaxPool2d: output height (2 + 2*0 - 3)//3 + 1 = 0 < 1: the window (3) is larger than the "
                             "padded input height (2)"):
        nn.MaxPool2d(3).output_shape((1, 1, 2, 2))


def test_local_response_norm_defaults_and_alpha_check():
    assert repr(nn.LocalResponseNorm(3)) == "LocalResponseNorm(size=3, alpha=0.0001, beta=0.75, k=1.0)"
    with _raises(ValueError, "LocalResponseNorm: alpha must be a finite number >= 0, got -1"):
        nn.LocalResponseNorm(3, alpha=-1)


def test_conv_too_small_message_shows_the_padded_input():
    """Four F.pad numbers pad first: the message shows the padded (N, C, H, W) the kernel did not fit."""
    with _raises(ValueError, "Conv2d: input (1, 3, 2, 10) is too small for kernel (5, 5) (dilation (1, 1), padding "
                             "(1, 0, 0, 0), stride (1, 1)): output (H + 2P - D*(F-1) - 1)//S + 1 gives (-2, 6)"):
        nn.Conv2d(3, 4, 5, padding=(1, 0, 0, 0)).output_shape((1, 3, 2, 9))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_an_element_where_its_draw_in_the_input_dtype_is_at_least_p(dtype):
    """Dropout draws one uniform u in [0, 1) per element from its generator, in the input's dtype, and keeps the
    element where u >= p (so P(keep) = 1 - p exactly), times 1/(1-p); after reseed(g) the draws come from g."""
    u = np.random.default_rng(4).random((3, 5), dtype=dtype)
    p = float(np.sort(u.ravel())[7])  # the 8th smallest draw: 7 elements dropped, the one equal to p kept
    x = np.ones((3, 5), dtype)
    want = np.where(u >= p, dtype(1.0 / (1.0 - p)), dtype(0))
    assert (want == 0).sum() == 7
    y = nn.Dropout(p, rng=4)(x)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, want)
    layer = nn.Dropout(p, rng=0)
    layer.reseed(np.random.default_rng(4))
    np.testing.assert_array_equal(layer(x), want)


def test_dropout_refuses_a_non_float_input_in_training_and_in_eval_mode():
    with _raises(TypeError, "Dropout: input must be a float32/float64 array, got ndarray"):
        nn.Dropout(0.5)(np.zeros(3, np.int64))
    with _raises(TypeError, "Dropout: input must be a float32/float64 array, got ndarray"):
        nn.Dropout(0.5).eval()(np.zeros(3, np.int64))
    with _raises(TypeError, "Dropout: input must be a float32/float64 array, got list"):
        nn.Dropout(0.5)([1.0, 2.0])


def test_xavier_normal_scales_float64_draws_and_returns_the_requested_dtype():
    """Glorot normal: std = gain * sqrt(2 / (fan_in + fan_out)) times standard normal draws, cast to dtype."""
    from minicnn.nn.init import xavier_normal

    w = xavier_normal((3, 4), np.random.default_rng(0), np.float32, gain=2.0)
    draws = np.random.default_rng(0).standard_normal((3, 4), dtype=np.float64).astype(np.float32)
    assert w.dtype == np.float32
    np.testing.assert_array_equal(w, np.float32(2.0 * np.sqrt(2.0 / 7.0)) * draws)  # fan_in 4, fan_out 3


def test_identity_and_local_response_norm_output_shapes():
    """Identity's output_shape is its input's (as ints); LocalResponseNorm takes any (N, C, ...) with >= 3 axes."""
    shape = nn.Identity().output_shape((np.int64(2), 3))
    assert shape == (2, 3) and all(type(s) is int for s in shape)
    x = np.ones((2, 5, 4), np.float32)
    assert nn.LocalResponseNorm(3).output_shape((2, 5, 4)) == nn.LocalResponseNorm(3)(x).shape == (2, 5, 4)


def test_flatten_and_pad_reprs_show_what_is_not_the_default():
    assert repr(nn.Flatten(0, 2)) == "Flatten(start_dim=0, end_dim=2)"
    assert repr(nn.Flatten(1, 2)) == "Flatten(start_dim=1, end_dim=2)"
    assert repr(nn.ConstantPad2d(1, 0.0)) == "ConstantPad2d(pad=(1, 1, 1, 1), mode='constant')"
    assert repr(nn.ZeroPad2d(1)) == "ZeroPad2d(pad=(1, 1, 1, 1), mode='constant')"
    assert repr(nn.ConstantPad2d(1, 1.0)) == "ConstantPad2d(pad=(1, 1, 1, 1), mode='constant', value=1.0)"
    assert repr(nn.ReplicationPad2d((1, 0, 2, 1))) == "ReplicationPad2d(pad=(1, 0, 2, 1), mode='replicate')"


def test_replication_pad_repeats_the_edge_pixel():
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    y = nn.ReplicationPad2d((1, 0, 2, 1))(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), (2, 1), (1, 0)), mode="edge"))


def test_inplace_relu_overwrites_x_forward_and_dy_backward():
    """ReLU(inplace=True): forward writes max(0, x) into x, backward writes dy * (y > 0) into dy (a zero output,
    x <= 0, gets no gradient), returning those same arrays."""
    x = np.array([[-2.0, 0.0, 3.0, 0.5]])
    dy = np.array([[5.0, 7.0, 2.0, -3.0]])
    layer = nn.ReLU(inplace=True)
    y = layer(x)
    dx = layer.backward(dy)
    assert y is x and dx is dy
    np.testing.assert_array_equal(y, [[0.0, 0.0, 3.0, 0.5]])
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 2.0, -3.0]])
    layer(np.ones((2, 3)))
    with _raises(ValueError, "ReLU.backward: dy must have the shape of the forward output (2, 3), got (1, 3)"):
        layer.backward(np.ones((1, 3)))  # checked first: (1, 3) would broadcast against the (2, 3) mask
    with _raises(TypeError, "ReLU.backward: dy must have the dtype of the forward output (float64), got float32; "
                            "cast it with dy.astype(np.float64)"):
        layer.backward(np.ones((2, 3), np.float32))
    out_of_place = nn.ReLU()
    x, dy = np.array([[-2.0, 0.0, 3.0]]), np.array([[5.0, 7.0, 2.0]])
    y = out_of_place(x)
    dx = out_of_place.backward(dy)
    assert y is not x and dx is not dy and x.tolist() == [[-2.0, 0.0, 3.0]] and dy.tolist() == [[5.0, 7.0, 2.0]]
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 2.0]])


#: (join, its inputs, error, the whole message): Add and Concat name the input that is wrong and what they got.
BAD_JOINS = [
    ("Add()", [], TypeError, "Add: needs at least 1 inputs, got 0"),
    ("Concat()", [], TypeError, "Concat: needs at least 1 inputs, got 0"),
    ("Add()", [np.ones(2), [1.0, 2.0]], TypeError, "Add: input 1 must be an array, got list"),
    ("Concat()", [np.ones((1, 2)), [1.0]], TypeError, "Concat: input 1 must be an array, got list"),
    ("Add()", [np.ones(2), SimpleNamespace(shape=(2,))], TypeError, "Add: input 1 must be an array, got SimpleNamespace"),
    ("Add()", [np.ones(2), SimpleNamespace(dtype=np.dtype(np.float64))], TypeError,
     "Add: input 1 must be an array, got SimpleNamespace"),
    ("Add()", [np.ones(2, np.float32), np.ones(2)], TypeError, "Add: input 1 has dtype float64 but input 0 has float32"),
    ("Concat()", [np.ones((1, 2), np.float32)] * 2 + [np.ones((1, 2))], TypeError,
     "Concat: input 2 has dtype float64 but input 0 has float32"),
    ("Add()", [np.ones(2), np.ones(3)], ValueError, "Add: inputs must have equal shapes or shapes that broadcast (each axis "
                                                     "equal or 1, counted from the last), got (2,), (3,)"),
    ("Concat(2)", [np.ones((2, 3))], ValueError, "Concat: axis 2 does not exist in an input of shape (2, 3)"),
    ("Concat()", [np.ones((1, 2)), np.ones((1,))], ValueError,
     "Concat: inputs must agree on every axis except 1; input 0 has shape (1, 2), input 1 has shape (1,)"),
    ("Concat()", [np.ones((1, 2, 3)), np.ones((1, 1, 3)), np.ones((1, 2, 4))], ValueError,
     "Concat: inputs must agree on every axis except 1; input 0 has shape (1, 2, 3), input 2 has shape (1, 2, 4)"),
    ("Concat()", [np.ones((1, 2, 3)), np.ones((2, 2, 3))], ValueError,
     "Concat: inputs must agree on every axis except 1; input 0 has shape (1, 2, 3), input 1 has shape (2, 2, 3)"),
]


@pytest.mark.parametrize("join, xs, kind, message", BAD_JOINS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_JOINS)])
def test_a_wrong_join_input_gets_the_whole_message(join, xs, kind, message):
    with _raises(kind, message):
        eval("nn." + join)(*xs)  # noqa: S307 (a table of constructor calls)


@pytest.mark.parametrize("axis, text", [(0, "0"), (True, "True"), (1.0, "1.0"), ("a", "'a'"), (None, "None")])
def test_concat_axis_must_be_an_int_from_one(axis, text):
    with _raises(ValueError, f"Concat: axis must be an int >= 1 (axis 0 is the batch), got {text}"):
        nn.Concat(axis)


def test_add_sums_any_number_of_inputs_broadcasting_and_sends_dy_back_summed():
    """Add: y = sum of the inputs (broadcast); backward gives dy itself to an input of y's shape and dy summed over
    the broadcast axes to the others; a lone input comes back as a copy."""
    x = np.arange(6.0).reshape(1, 2, 3)
    y = nn.Add()(x)
    assert y is not x and y.tolist() == x.tolist()
    a, b, c = np.arange(6.0).reshape(1, 2, 3), np.array([10.0, 20.0, 30.0]), np.full((2, 2, 1), 100.0)
    add = nn.Add()
    y = add(a, b, c)  # a + b has shape (1, 2, 3), the output (2, 2, 3): the third term broadcasts it
    np.testing.assert_array_equal(y, a + b + c)
    assert a.tolist() == np.arange(6.0).reshape(1, 2, 3).tolist()  # the inputs are left alone
    y = nn.Add()(c, a, b, c)  # c + a already has the output's shape
    np.testing.assert_array_equal(y, c + a + b + c)
    y = nn.Add()(a, b)
    np.testing.assert_array_equal(y, a + b)
    dy = np.arange(12.0).reshape(2, 2, 3)
    add(a, b, c)
    da, db, dc = add.backward(dy)
    np.testing.assert_array_equal(da, dy.sum(axis=0, keepdims=True))
    np.testing.assert_array_equal(db, dy.sum(axis=(0, 1)))
    np.testing.assert_array_equal(dc, dy.sum(axis=2, keepdims=True))
    same = nn.Add()
    same(c, c + 1)
    dy = np.ones((2, 2, 1))
    assert all(g is dy for g in same.backward(dy))


def test_add_backward_sums_over_leading_and_unit_axes_whatever_their_size():
    """An input of shape (3, 1, 1) added to (1, 3, 2, 4): its gradient sums dy over the batch axis (missing from
    it) and the two unit axes, also where dy has size 1 or 2 there."""
    add = nn.Add()
    x, bias, scale = np.ones((1, 3, 2, 4)), np.ones((3, 1, 1)), np.ones((1, 1, 1, 4))
    add(x, bias, scale)
    dy = np.arange(24.0).reshape(1, 3, 2, 4)
    dx, dbias, dscale = add.backward(dy)
    assert dx is dy
    np.testing.assert_array_equal(dbias, dy.sum(axis=(0, 2, 3)).reshape(3, 1, 1))
    np.testing.assert_array_equal(dscale, dy.sum(axis=(0, 1, 2)).reshape(1, 1, 1, 4))
    add(x, bias, scale)
    with _raises(ValueError, "Add.backward: dy must have the shape of the forward output (1, 3, 2, 4), got (1, 3, 1, 4)"):
        add.backward(np.ones((1, 3, 1, 4)))


def test_concat_joins_along_its_axis_and_splits_dy_back():
    a, b, c = np.zeros((1, 2, 3)), np.ones((1, 1, 3)), np.full((1, 3, 3), 2.0)
    join = nn.Concat()
    y = join(a, b, c)
    assert repr(join) == "Concat(axis=1)" and join.output_shape(a.shape, b.shape, c.shape) == y.shape == (1, 6, 3)
    np.testing.assert_array_equal(y, np.concatenate([a, b, c], axis=1))
    dy = np.arange(18.0).reshape(1, 6, 3)
    parts = join.backward(dy)
    assert [p.shape for p in parts] == [(1, 2, 3), (1, 1, 3), (1, 3, 3)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), dy)
    pair = nn.Concat()
    pair(a, b)
    assert [p.shape for p in pair.backward(np.ones((1, 3, 3)))] == [(1, 2, 3), (1, 1, 3)]
    wide = nn.Concat(axis=2)
    y = wide(a, np.ones((1, 2, 1)))
    assert repr(wide) == "Concat(axis=2)" and y.shape == (1, 2, 4)
    np.testing.assert_array_equal(y[:, :, 3], np.ones((1, 2)))
    with _raises(ValueError, "Concat.backward: dy must have the shape of the forward output (1, 2, 4), got (1, 2, 5)"):
        wide.backward(np.ones((1, 2, 5)))


#: (constructor call, error, its whole message): the shared argument checks (minicnn/nn/checks.py) name the layer,
#: the argument, its type and its value.
BAD_SHARED_ARGUMENTS = [
    ("Linear(2.0, 3)", TypeError, "Linear: in_features must be an int, got float 2.0"),
    ("Conv2d(2, 3, 3, groups='1')", TypeError, "Conv2d: groups must be an int, got str '1'"),
    ("LocalResponseNorm(3, beta=float('inf'))", ValueError, "LocalResponseNorm: beta must be a finite number, got inf"),
    ("BatchNorm2d(2, eps=float('nan'))", ValueError, "BatchNorm2d: eps must be a finite number > 0, got nan"),
    ("Linear(2, 2, dtype='abc')", TypeError,
     "Linear: dtype must be a floating-point type such as np.float32 or np.float64, got str 'abc'"),
    ("Linear(2, 2, rng='x')", TypeError,
     "Linear: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got str 'x'"),
    ("Linear(2, 2, init='nope')", ValueError,
     "Linear: init must be one of ['glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform', 'kaiming_normal', "
     "'kaiming_uniform', 'shape_only', 'xavier_normal', 'xavier_uniform'] or a callable (shape, rng, dtype) -> array, "
     "got 'nope'"),
    ("Conv2d(2, 2, 2.5)", TypeError, "Conv2d: kernel_size must be an int or a pair (h, w) of ints, got float 2.5"),
    ("MaxPool2d(2, stride=True)", TypeError, "MaxPool2d: stride must be an int or a pair of ints, got bool True"),
    ("ConvTranspose2d(2, 2, True)", TypeError, "ConvTranspose2d: kernel_size must be an int or a tuple of 2 ints, got bool True"),
    ("Conv3d(2, 2, (1, 2))", TypeError, "Conv3d: kernel_size must be an int or a tuple of 3 ints, got (1, 2)"),
    ("ConvTranspose2d(2, 2, np.array([2, 2]))", TypeError,
     "ConvTranspose2d: kernel_size must be an int or a tuple of 2 ints, got array([2, 2])"),
    ("ConvTranspose2d(2, 2, (2, 2.0))", TypeError, "ConvTranspose2d: kernel_size must be an int or a tuple of 2 ints, got (2, 2.0)"),
    ("ConvTranspose2d(2, 2, (2, True))", TypeError,
     "ConvTranspose2d: kernel_size must be an int or a tuple of 2 ints, got (2, True)"),
    ("SqueezeExcitation(4, 0)", ValueError, "SqueezeExcitation: squeeze_channels must be >= 1, got 0"),
    ("SqueezeExcitation(4, 2.0)", TypeError, "SqueezeExcitation: squeeze_channels must be an int, got float 2.0"),
    ("SqueezeExcitation(4, 2, nn.ReLU())", TypeError, "SqueezeExcitation: activation must be a layer class such as nn.ReLU "
                                                       "or nn.SiLU (not an instance or a name), got ReLU ReLU()"),
    ("SqueezeExcitation(4, 2, 'relu')", TypeError, "SqueezeExcitation: activation must be a layer class such as nn.ReLU "
                                                    "or nn.SiLU (not an instance or a name), got str 'relu'"),
    ("SqueezeExcitation(4, 2, rng=1.5)", TypeError,
     "SqueezeExcitation: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got float 1.5"),
]


@pytest.mark.parametrize("call, kind, message", BAD_SHARED_ARGUMENTS, ids=[c[0] for c in BAD_SHARED_ARGUMENTS])
def test_a_wrong_argument_gets_the_shared_checks_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of constructor calls)


def test_an_input_with_a_shape_but_no_dtype_is_not_an_array():
    with _raises(TypeError, "Linear: input must be a numpy.ndarray (or cupy.ndarray), got SimpleNamespace"):
        nn.Linear(2, 2)(SimpleNamespace(shape=(1, 2), ndim=2))
    with _raises(TypeError, "Conv2d: input must be a numpy.ndarray (or cupy.ndarray), got list"):
        nn.Conv2d(1, 1, 1)([[[[1.0]]]])


def test_conv_transpose_and_conv1d_take_a_tuple_or_list_per_axis():
    layer = nn.ConvTranspose2d(3, 2, (3, 2), stride=(2, 1), padding=[1, 0], output_padding=(1, 0), dilation=(1, 2))
    assert repr(layer) == ("ConvTranspose2d(3, 2, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), output_padding=(1, 0), "
                           "dilation=(1, 2))")
    assert layer.weight.data.shape == (3, 2, 3, 2)
    assert layer.output_shape((1, 3, 4, 4)) == layer(np.ones((1, 3, 4, 4), np.float32)).shape == (1, 2, 8, 6)
    assert repr(nn.Conv1d(3, 4, [3], stride=(2,))) == "Conv1d(3, 4, kernel_size=(3,), stride=(2,))"


def test_conv1d_and_conv3d_output_sizes_down_to_one_and_the_too_small_message():
    """(H + 2P - D*(F-1) - 1)//S + 1 per axis: an output of 1 is fine, 0 gets the formula with the numbers."""
    assert nn.Conv1d(1, 1, 3).output_shape((1, 1, 3)) == (1, 1, 1)
    assert nn.Conv3d(1, 1, 3, stride=2).output_shape((1, 1, 3, 4, 5)) == (1, 1, 1, 1, 2)
    with _raises(ValueError, "Conv1d: output size (2 + 2*1 - 2*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 5 samples but "
                             "the padded input has 4"):
        nn.Conv1d(1, 1, 3, padding=1, dilation=2).output_shape((1, 1, 2))
    with _raises(ValueError, "Conv3d: output size (2 + 2*0 - 1*(3-1) - 1)//1 + 1 = 0 < 1: the kernel spans 3 samples but "
                             "the padded input has 2"):
        nn.Conv3d(1, 1, (1, 1, 3)).output_shape((1, 1, 1, 1, 2))


def test_concat_of_one_input_is_a_copy_of_it():
    x = np.arange(6.0).reshape(1, 2, 3)
    join = nn.Concat()
    y = join(x)
    assert y is not x and y.tolist() == x.tolist()
    (dx,) = join.backward(np.ones((1, 2, 3)))
    assert dx.shape == (1, 2, 3)


def test_constant_pad_fills_with_its_value_and_sends_back_the_inner_gradient():
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)
    layer = nn.ConstantPad2d((1, 0, 0, 2), 2.5)
    y = layer(x)
    np.testing.assert_array_equal(y, np.pad(x, ((0, 0), (0, 0), (0, 2), (1, 0)), constant_values=2.5))
    dy = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(layer.backward(dy), dy[:, :, :2, 1:])


#: (logits, labels, error, the whole message of SoftmaxCrossEntropy).
BAD_LOSS_INPUTS = [
    ([[1.0, 2.0]], [0], TypeError, "SoftmaxCrossEntropy: logits must be a float32/float64 array (N, K), got list"),
    (np.ones((2, 3), np.int32), [0, 1], TypeError, "SoftmaxCrossEntropy: logits must be a float32/float64 array (N, K), got int32"),
    (np.ones(3), [0], ValueError, "SoftmaxCrossEntropy: logits must be 2-D (N, K), got shape (3,)"),
    (np.ones((2, 3)), [0.0, 1.0], TypeError,
     "SoftmaxCrossEntropy: labels must be an integer array of class indices, got dtype float64"),
    (np.ones((2, 3)), [0], ValueError,
     "SoftmaxCrossEntropy: labels must have shape (N,) = (2,) to match logits (2, 3), got (1,)"),
    (np.ones((0, 3)), np.zeros(0, np.int64), ValueError,
     "SoftmaxCrossEntropy: the batch is empty (N = 0); the mean over the batch is undefined"),
    (np.ones((2, 3)), [0, 3], ValueError, "SoftmaxCrossEntropy: labels must lie in [0, K) = [0, 3), got values in [0, 3]"),
    (np.ones((2, 3)), np.array([-1, 2], np.int8), ValueError,
     "SoftmaxCrossEntropy: labels must lie in [0, K) = [0, 3), got values in [-1, 2]"),
]


@pytest.mark.parametrize("logits, labels, kind, message", BAD_LOSS_INPUTS, ids=[c[3].split(": ")[1][:30] for c in BAD_LOSS_INPUTS])
def test_softmax_cross_entropy_refuses_bad_inputs_with_the_whole_message(logits, labels, kind, message):
    with _raises(kind, message):
        nn.SoftmaxCrossEntropy()(logits, labels)


def test_softmax_cross_entropy_value_gradient_and_one_backward_per_loss():
    """J = -(1/N) sum_i log softmax(z_i)[y_i]; backward = (softmax - onehot) / N, once per call."""
    from minicnn.nn.module import NoForwardError

    logits = np.array([[0.0, np.log(3.0)], [np.log(2.0), np.log(2.0)], [1000.0, 0.0]])
    loss_fn = nn.SoftmaxCrossEntropy()
    assert loss_fn.probabilities is None  # until the first call
    loss = loss_fn(logits, np.array([1, 0, 0], np.uint8))
    assert type(loss) is float
    np.testing.assert_allclose(loss, -(np.log(0.75) + np.log(0.5) + 0.0) / 3, rtol=8 * np.finfo(np.float64).eps)
    p = np.array([[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(loss_fn.probabilities, p, rtol=8 * np.finfo(np.float64).eps, atol=0)
    np.testing.assert_allclose(loss_fn.backward(), (p - [[0, 1], [1, 0], [1, 0]]) / 3, rtol=8 * np.finfo(np.float64).eps,
                               atol=np.finfo(np.float64).eps)
    message = "SoftmaxCrossEntropy.backward() called before computing a loss: call loss_fn(logits, labels) first"
    with _raises(NoForwardError, message):
        loss_fn.backward()
    with _raises(NoForwardError, message):
        nn.SoftmaxCrossEntropy().backward()


def test_fans_of_linear_and_conv_weights_and_the_message_for_a_vector():
    from minicnn.nn.init import fans

    assert fans((3, 4)) == (4, 3) and fans((6, 2, 3, 5)) == (2 * 15, 6 * 15)
    with _raises(ValueError, "fans: a weight needs at least 2 dimensions (out, in, ...), got shape (3,)"):
        fans([3])


def test_is_shape_only_wants_read_only_zero_strides_one_axis_and_one_element():
    from minicnn.nn.init import is_shape_only

    zero = np.zeros((), np.float32)
    read_only = np.zeros(3)
    read_only.flags.writeable = False
    writeable_view = np.lib.stride_tricks.as_strided(np.zeros(1), (3,), (0,), writeable=True)
    assert is_shape_only(shape_only((2, 3))) and is_shape_only(np.broadcast_to(zero, (1,)))
    assert is_shape_only(np.broadcast_to(zero, (4,)))
    for array in (np.broadcast_to(zero, ()), np.broadcast_to(zero, (0, 3)), read_only, writeable_view, np.zeros(()),
                  np.zeros((2, 3)), [[0.0]]):
        assert not is_shape_only(array), array


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_he_and_glorot_initializers_scale_the_generator_s_draws_as_documented(dtype):
    """He: std = gain/sqrt(fan_in), a = gain*sqrt(3/fan_in) (gain sqrt(2)); Glorot: a = gain*sqrt(6/(fan_in + fan_out)).
    A (3, 2, 2, 2) weight has fan_in 2*4 = 8 and fan_out 3*4 = 12."""
    from minicnn.nn import init

    shape = (3, 2, 2, 2)

    def rng():
        return np.random.default_rng(5)

    he = init.kaiming_normal(shape, rng(), dtype)
    assert he.dtype == dtype
    np.testing.assert_array_equal(he, dtype(np.sqrt(2.0) / np.sqrt(8.0)) * rng().standard_normal(shape).astype(dtype))
    np.testing.assert_array_equal(init.kaiming_normal(shape, rng(), dtype, gain=3.0),
                                  dtype(3.0 / np.sqrt(8.0)) * rng().standard_normal(shape).astype(dtype))
    for fn, bound in ((init.kaiming_uniform, np.sqrt(2.0) * np.sqrt(3.0 / 8.0)), (init.xavier_uniform, np.sqrt(6.0 / 20.0))):
        w = fn(shape, rng(), dtype)
        assert w.dtype == dtype and -bound <= w.min() < 0 < w.max() <= bound, fn.__name__
        np.testing.assert_array_equal(w, rng().uniform(-bound, bound, size=shape).astype(dtype), err_msg=fn.__name__)


def test_squeeze_excitation_draws_both_convolutions_from_its_init_and_one_seeded_generator():
    """fc1 then fc2 take their weights from the one generator ``rng`` seeds, with the layer's ``init``."""
    from minicnn.nn.init import kaiming_uniform

    se = nn.SqueezeExcitation(4, 2, rng=3)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(se.fc1.weight.data, kaiming_uniform((2, 4, 1, 1), rng))
    np.testing.assert_array_equal(se.fc2.weight.data, kaiming_uniform((4, 2, 1, 1), rng))
    half = nn.SqueezeExcitation(4, 2, init=lambda shape, rng, dtype: np.full(shape, 0.5, dtype), dtype=np.float64)
    for conv in (half.fc1, half.fc2):
        assert conv.weight.data.dtype == np.float64 and (conv.weight.data == 0.5).all()


BAD_BATCH_NORM = [
    ("BatchNorm2d(2.0)", TypeError, "BatchNorm2d: num_features must be an int, got float 2.0"),
    ("BatchNorm2d(2, eps=0)", ValueError, "BatchNorm2d: eps must be a finite number > 0, got 0"),
    ("BatchNorm2d(2, eps='a')", TypeError, "BatchNorm2d: eps must be a number > 0, got str 'a'"),
    ("BatchNorm2d(2, momentum=-0.1)", ValueError, "BatchNorm2d: momentum must be a finite number in [0, 1], got -0.1"),
    ("BatchNorm2d(2, momentum=None)", TypeError, "BatchNorm2d: momentum must be a number in [0, 1], got NoneType None"),
    ("BatchNorm2d(2)(np.ones((1, 2, 1, 1), np.float32))", ValueError,
     "BatchNorm2d: training needs more than one value per channel, got input (1, 2, 1, 1)"),
    ("BatchNorm2d(2)(np.ones((1, 3, 4, 5), np.float32))", ValueError,
     "BatchNorm2d: expected 2 channels (num_features), got 3 in input of shape (1, 3, 4, 5)"),
]


@pytest.mark.parametrize("call, kind, message", BAD_BATCH_NORM, ids=[c[0] for c in BAD_BATCH_NORM])
def test_batch_norm_refuses_bad_arguments_with_the_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of constructor calls)


def test_batch_norm_starts_as_the_identity_with_unit_running_variance():
    bn = nn.BatchNorm2d(3)
    assert repr(bn) == "BatchNorm2d(3, eps=1e-05, momentum=0.1)"
    assert bn.num_features == 3 and bn.eps == 1e-5 and bn.momentum == 0.1
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    assert bn.weight.name == "weight" and bn.bias.name == "bias"  # the Parameter's own name (its repr)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var"]
    for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
        array = bn.state_dict()[name]
        assert array.dtype == np.float32 and array.shape == (3,) and (array == value).all(), name
    assert nn.BatchNorm2d(2, momentum=0).momentum == 0.0 and nn.BatchNorm2d(2, momentum=1).momentum == 1.0
    assert nn.BatchNorm2d(2, dtype=np.float64).running_var.dtype == np.float64
    assert nn.BatchNorm2d(2)(np.ones((2, 2, 1, 1), np.float32)).shape == (2, 2, 1, 1)  # two values per channel suffice
    assert nn.BatchNorm2d(2).eval()(np.ones((1, 2, 1, 1), np.float32)).shape == (1, 2, 1, 1)  # evaluation needs one


def _batch_norm(momentum=0.25, dtype=np.float64):
    bn = nn.BatchNorm2d(2, eps=0.5, momentum=momentum, dtype=dtype)
    bn.weight.data[:] = [2.0, -1.0]
    bn.bias.data[:] = [0.5, 3.0]
    return bn


def test_batch_norm_training_uses_the_batch_statistics_and_moves_the_running_ones():
    """y = γ (x - μ_B) / sqrt(σ²_B + ε) + β over N, H, W; running ← (1 - m) running + m batch (unbiased variance)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 1, 4)) * [[[[2.0]], [[0.5]]]] + [[[[1.0]], [[-3.0]]]]  # N*H*W = 12 values per channel
    dy = rng.standard_normal(x.shape)
    bn = _batch_norm()
    y = bn(x)
    mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    x_hat = (x - mean) / np.sqrt(var + 0.5)
    gamma = np.array([2.0, -1.0]).reshape(1, 2, 1, 1)
    tol = 64 * np.finfo(np.float64).eps
    np.testing.assert_allclose(y, gamma * x_hat + np.array([0.5, 3.0]).reshape(1, 2, 1, 1), rtol=tol, atol=tol)
    np.testing.assert_allclose(bn.running_mean, 0.25 * mean.ravel(), rtol=tol)
    np.testing.assert_allclose(bn.running_var, 0.75 + 0.25 * x.var(axis=(0, 2, 3), ddof=1), rtol=tol)
    dx = bn.backward(dy)
    dgamma, dbeta = (dy * x_hat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))
    want = gamma / np.sqrt(var + 0.5) * (dy - dbeta.reshape(1, 2, 1, 1) / 12 - x_hat * dgamma.reshape(1, 2, 1, 1) / 12)
    np.testing.assert_allclose(dx, want, rtol=tol * 16, atol=tol)
    np.testing.assert_allclose(bn.weight.grad, dgamma, rtol=tol, atol=tol)
    np.testing.assert_allclose(bn.bias.grad, dbeta, rtol=tol, atol=tol)


def test_batch_norm_evaluation_uses_the_running_statistics_and_keeps_them():
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((2, 2, 3, 1)), rng.standard_normal((2, 2, 3, 1))
    bn = _batch_norm().eval()
    bn.running_mean[:] = [0.5, -1.0]
    bn.running_var[:] = [2.0, 0.25]
    y = bn(x)
    scale = (np.array([2.0, -1.0]) / np.sqrt(np.array([2.0, 0.25]) + 0.5)).reshape(1, 2, 1, 1)
    tol = 16 * np.finfo(np.float64).eps
    np.testing.assert_allclose(y, (x - np.array([0.5, -1.0]).reshape(1, 2, 1, 1)) * scale + np.array([0.5, 3.0]).reshape(1, 2, 1, 1),
                               rtol=tol, atol=tol)
    assert bn.running_mean.tolist() == [0.5, -1.0] and bn.running_var.tolist() == [2.0, 0.25]
    with _raises(ValueError, "BatchNorm2d.backward: dy must have the shape of the forward output (2, 2, 3, 1), got (2, 2, 3, 2)"):
        bn.backward(np.ones((2, 2, 3, 2)))  # it would broadcast against the per-channel scale
    np.testing.assert_allclose(bn.backward(dy), dy * scale, rtol=tol, atol=tol)
    x_hat = (x - np.array([0.5, -1.0]).reshape(1, 2, 1, 1)) / np.sqrt(np.array([2.0, 0.25]) + 0.5).reshape(1, 2, 1, 1)
    np.testing.assert_allclose(bn.weight.grad, (dy * x_hat).sum(axis=(0, 2, 3)), rtol=tol, atol=tol)
    np.testing.assert_allclose(bn.bias.grad, dy.sum(axis=(0, 2, 3)), rtol=tol, atol=tol)


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_batch_norm_momentum_zero_keeps_and_one_replaces_the_running_statistics(momentum):
    x = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
    bn = _batch_norm(momentum, np.float32)
    bn(x)
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3), ddof=1)
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32
    np.testing.assert_allclose(bn.running_mean, mean if momentum else [0.0, 0.0], rtol=4 * np.finfo(np.float32).eps)
    np.testing.assert_allclose(bn.running_var, var if momentum else [1.0, 1.0], rtol=4 * np.finfo(np.float32).eps)


def test_dropout_defaults_to_one_half_and_takes_both_ends_of_zero_to_one():
    assert repr(nn.Dropout()) == "Dropout(p=0.5)" and nn.Dropout(0).p == 0.0 and nn.Dropout(1).p == 1.0
    with _raises(TypeError, "Dropout: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got str 'x'"):
        nn.Dropout(rng="x")


BAD_FLATTEN = [
    ("Flatten(1.0)", TypeError, "Flatten: start_dim must be an int, got float 1.0"),
    ("Flatten(0, True)", TypeError, "Flatten: end_dim must be an int, got bool True"),
    ("Flatten(3).output_shape((2, 3))", ValueError, "Flatten: start_dim=3 is not an axis of an input of shape (2, 3) (axes [-2, 2))"),
    ("Flatten(-3).output_shape((2, 3))", ValueError,
     "Flatten: start_dim=-3 is not an axis of an input of shape (2, 3) (axes [-2, 2))"),
    ("Flatten(0, 2).output_shape((2, 3))", ValueError, "Flatten: end_dim=2 is not an axis of an input of shape (2, 3) (axes [-2, 2))"),
    ("Flatten(0, -4).output_shape((2, 3))", ValueError,
     "Flatten: end_dim=-4 is not an axis of an input of shape (2, 3) (axes [-2, 2))"),
    ("Flatten(2, 1).output_shape((2, 3, 4))", ValueError, "Flatten: start_dim=2 comes after end_dim=1 for shape (2, 3, 4)"),
    ("Flatten(-1, 1).output_shape((2, 3, 4))", ValueError, "Flatten: start_dim=-1 comes after end_dim=1 for shape (2, 3, 4)"),
    ("Flatten().output_shape((2,))", ValueError, "Flatten: start_dim=1 is not an axis of an input of shape (2,) (axes [-1, 1))"),
    ("Flatten()(np.float32(1.0))", ValueError, "Flatten: input must have a batch axis and at least one more, got ()"),
    ("Flatten()(3)", ValueError, "Flatten: input must have a batch axis and at least one more, got 3"),
]


@pytest.mark.parametrize("call, kind, message", BAD_FLATTEN, ids=[c[0] for c in BAD_FLATTEN])
def test_flatten_refuses_bad_dims_with_the_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of calls)


@pytest.mark.parametrize("start, end, shape, out", [
    (1, -1, (2, 3, 4, 5), (2, 60)), (0, 1, (2, 3, 4), (6, 4)), (-2, -1, (2, 3, 4), (2, 12)), (1, 2, (2, 3, 4, 5), (2, 12, 5)),
    (0, 0, (5,), (5,)), (0, -1, (3,), (3,)), (2, 2, (2, 3, 4), (2, 3, 4)), (np.int64(1), np.int64(2), (2, 3, 4, 5), (2, 12, 5)),
])
def test_flatten_joins_start_dim_to_end_dim_and_backward_restores_the_shape(start, end, shape, out):
    layer = nn.Flatten(start, end)
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y = layer(x)
    assert layer.output_shape(shape) == y.shape == out and all(type(s) is int for s in layer.output_shape(shape))
    np.testing.assert_array_equal(y.ravel(), x.ravel())
    dx = layer.backward(y + 1)
    assert dx.shape == shape
    np.testing.assert_array_equal(dx, x + 1)


def test_linear_draws_he_uniform_weights_from_its_seed_and_zero_biases():
    from minicnn.nn.init import kaiming_uniform

    layer = nn.Linear(4, 3, rng=2)
    np.testing.assert_array_equal(layer.weight.data, kaiming_uniform((3, 4), np.random.default_rng(2)))
    assert layer.weight.name == "weight" and layer.bias.name == "bias" and layer.bias.data.dtype == np.float32
    assert layer.bias.data.tolist() == [0.0, 0.0, 0.0] and layer.weight.grad.tolist() == [[0.0] * 4] * 3
    wide = nn.Linear(2, 2, bias=False, init=lambda shape, rng, dtype: np.full(shape, 0.25, dtype), dtype=np.float64)
    assert wide.bias is None and wide.weight.data.dtype == np.float64 and (wide.weight.data == 0.25).all()
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(wide(x), [[0.75, 0.75]])
    assert wide.backward(np.ones((1, 2)), need_dx=False) is None
    np.testing.assert_array_equal(wide.weight.grad, [[1.0, 2.0], [1.0, 2.0]])


BAD_POOLS = [
    ("MaxPool2d(2, padding='x')", TypeError, "MaxPool2d: padding must be an int or a pair (h, w) of ints, got str 'x'"),
    ("AvgPool2d(2, padding=1.5)", TypeError, "AvgPool2d: padding must be an int or a pair (h, w) of ints, got float 1.5"),
    ("AvgPool2d(2, divisor_override=2.0)", TypeError, "AvgPool2d: divisor_override must be an int, got float 2.0"),
    ("MaxPool2d(2.0)", TypeError, "MaxPool2d: kernel_size must be an int or a pair (h, w) of ints, got float 2.0"),
    ("MaxPool2d(2, padding=(1, 0, 0, -1))", ValueError, "MaxPool2d: padding must be >= 0 along both axes, got padding=(1, 0, 0, -1)"),
    ("MaxPool2d(2, padding=(1, 2, 0, 0))", ValueError, "MaxPool2d: padding must be at most half the window, padding <= "
                                                       "kernel_size//2 = 2//2 = 1 along width, got padding=(1, 2, 0, 0)"),
]


@pytest.mark.parametrize("call, kind, message", BAD_POOLS, ids=[c[0] for c in BAD_POOLS])
def test_pools_refuse_bad_windows_with_the_whole_message(call, kind, message):
    with _raises(kind, message):
        eval("nn." + call)  # noqa: S307 (a table of constructor calls)


def test_max_pool_returns_the_winners_indices_on_request_and_routes_dy_to_them():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 7.0]]]])
    pool = nn.MaxPool2d(2, return_indices=True)
    assert repr(pool) == "MaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), return_indices=True)"
    y, indices = pool(x)
    np.testing.assert_array_equal(y, [[[[5.0, 8.0]]]])
    assert pool.output_shape(x.shape) == y.shape == indices.shape
    np.testing.assert_array_equal(pool.backward(np.array([[[[10.0, 20.0]]]])), [[[[0, 10.0, 0, 0], [0, 0, 20.0, 0]]]])
    plain = nn.MaxPool2d(2, stride=(1, 2))
    assert plain.stride == (1, 2) and plain(x).shape == (1, 1, 1, 2)


def test_average_pools_and_global_average_pool_values_and_gradients():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    avg = nn.AvgPool2d(2)
    np.testing.assert_array_equal(avg(x), [[[[2.5, 4.5], [10.5, 12.5]]]])
    np.testing.assert_array_equal(avg.backward(np.full((1, 1, 2, 2), 4.0)), np.ones((1, 1, 4, 4)))
    gap = nn.GlobalAvgPool2d()
    assert gap.output_shape((2, 3, 5, 4)) == (2, 3, 1, 1)
    np.testing.assert_array_equal(gap(x), [[[[7.5]]]])
    np.testing.assert_array_equal(gap.backward(np.full((1, 1, 1, 1), 32.0)), np.full((1, 1, 4, 4), 2.0))
    padded = nn.AvgPool2d(2, padding=(0, 1, 0, 1), count_include_pad=False)
    y = padded(np.ones((1, 1, 3, 3)))
    assert padded.output_shape((1, 1, 3, 3)) == y.shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(y, np.ones((1, 1, 2, 2)))  # the padded zeros are not counted
    halved = nn.AvgPool2d(2, divisor_override=2)
    np.testing.assert_array_equal(halved(np.ones((1, 1, 2, 2))), [[[[2.0]]]])


def test_module_to_checks_device_and_dtype_and_casts_parameters_gradients_and_buffers():
    with _raises(ValueError, "to: device must be 'cpu' or 'gpu', got 'tpu'"):
        nn.ReLU().to("tpu")
    with _raises(ValueError, "to: device must be 'cpu' or 'gpu', got 5"):
        nn.ReLU().to(5)
    with _raises(TypeError, "to: dtype must be a floating-point type such as float32, got int32"):
        nn.Linear(2, 2).to(dtype=np.int32)
    net = Sequential(nn.Linear(2, 2, rng=0), nn.BatchNorm2d(2), nn.Linear(2, 2, init="shape_only"))
    net[0](np.ones((1, 2), np.float32))
    assert net.to("CPU") is net and net.to(dtype="float64") is net
    for name, p in net.named_parameters():
        assert p.data.dtype == np.float64, name
    assert net[1].running_mean.dtype == np.float64 and net[1].running_var.dtype == np.float64
    assert net[0].weight.grad.dtype == np.float64 and net[2].weight.is_shape_only and net[2].weight.grad is None
    assert net[2].weight.data.shape == (2, 2)
    with _raises(NoForwardError, "Linear.backward() called before forward(): run forward(x) first (each backward uses what "
                                 "one forward saved)"):
        net[0].backward(np.ones((1, 2)))  # to() drops what the last forward saved
    net.to()
    assert net[1].running_var.dtype == np.float64 and net[2].weight.data.dtype == np.float64


def test_module_messages_for_a_lazy_model_a_missing_super_init_and_a_non_array_dy():
    with _raises(RuntimeError, "Sequential was built lazy (shape-only weights, for summary() and parameter counts: 0.weight); "
                               "call .materialize(seed) first, load weights with load_state_dict, or build it with lazy=False"):
        Sequential(nn.Linear(2, 2, init="shape_only", bias=False), nn.Linear(2, 2, rng=0)).refuse_lazy()
    Sequential(nn.Linear(2, 2, rng=0)).refuse_lazy()  # nothing lazy: no error

    class Forgetful(nn.Module):
        def __init__(self):
            self.x = 1

    with _raises(RuntimeError, "Forgetful.__init__ must call super().__init__() before setting attributes"):
        Forgetful()
    relu = nn.ReLU()
    relu(np.ones((2, 3)))
    with _raises(TypeError, "ReLU.backward: dy must be a numpy.ndarray of the forward output's shape (2, 3), got list"):
        relu.backward([1.0])
    net = Sequential(nn.Dropout(), Sequential(nn.Dropout()))
    assert net.train(0) is net and all(m.training is False for m in net.modules())
    assert net.train() is net and all(m.training is True for m in net.modules())


def test_elementwise_refuses_a_list_and_keeps_what_its_derivative_reads():
    with _raises(TypeError, "ReLU: input must be a float32/float64 array, got list"):
        nn.ReLU()([1.0, -1.0])
    with _raises(TypeError, "Tanh: input must be a float32/float64 array, got int64"):
        nn.Tanh()(np.zeros(2, np.int64))
    x = np.array([-1.0, 0.0, 2.0])
    for make, slope in ((nn.Sigmoid, lambda y: y * (1 - y)), (nn.Tanh, lambda y: 1 - y * y), (nn.ReLU, lambda y: y > 0)):
        layer = make()
        y = layer(x)
        np.testing.assert_array_equal(layer.backward(np.full(3, 2.0)), 2.0 * slope(y), err_msg=make.__name__)


class _CupyLike:
    """Stands in for a cupy.ndarray: minicnn tells a CuPy array by its type's module (minicnn.arrays.is_cupy)."""

    __module__ = "cupy"

    def __init__(self, shape):
        self.shape, self.dtype = shape, np.dtype(np.float64)



class Keep(nn.Module):
    """A layer that records its output for backward's dy checks and saves nothing else."""

    def forward(self, x):
        self.save(None)
        return self._keep_output(x)

    def backward(self, dy, *, need_dx=True):
        self.saved(dy)
        return dy


def test_backward_names_the_array_kind_dy_must_be_and_how_to_move_it():
    relu = nn.ReLU()
    relu(np.ones((2, 3)))
    with _raises(TypeError, "ReLU.backward: dy must be a numpy.ndarray like the forward output, got a cupy.ndarray; move "
                            "it with dy.get()"):
        relu.backward(_CupyLike((2, 3)))
    with _raises(TypeError, "ReLU.backward: dy must be a numpy.ndarray of the forward output's shape (2, 3), got "
                            "SimpleNamespace"):
        relu.backward(SimpleNamespace(shape=(2, 3)))

    keep = Keep()
    keep(_CupyLike((2, 3)))
    with _raises(TypeError, "Keep.backward: dy must be a cupy.ndarray like the forward output, got a numpy.ndarray; move "
                            "it with cupy.asarray(dy)"):
        keep.backward(np.ones((2, 3)))
    with _raises(TypeError, "Keep.backward: dy must be a cupy.ndarray of the forward output's shape (2, 3), got list"):
        keep.backward([1.0])
    dy = _CupyLike((2, 3))
    assert keep.backward(dy) is dy


def test_batch_norm_running_statistics_are_a_moving_average_of_the_previous_ones():
    x = np.random.default_rng(2).standard_normal((2, 2, 1, 3))
    bn = _batch_norm(0.25)
    bn.running_mean[:] = [1.0, -2.0]
    bn.running_var[:] = [4.0, 0.5]
    bn(x)
    tol = 16 * np.finfo(np.float64).eps
    np.testing.assert_allclose(bn.running_mean, 0.75 * np.array([1.0, -2.0]) + 0.25 * x.mean(axis=(0, 2, 3)), rtol=tol)
    np.testing.assert_allclose(bn.running_var, 0.75 * np.array([4.0, 0.5]) + 0.25 * x.var(axis=(0, 2, 3), ddof=1), rtol=tol)


def test_softmax_cross_entropy_names_an_array_of_another_library_instead_of_failing_on_its_dtype():
    """A tensor of another library has a dtype without NumPy's ``kind``: a TypeError that says what to pass."""
    class Tensor:
        __module__ = "otherlib"
        dtype, shape, ndim = "otherlib.int64", (2,), 1

    loss = nn.SoftmaxCrossEntropy()
    with pytest.raises(TypeError, match=r"^SoftmaxCrossEntropy: labels must be a NumPy or CuPy integer array \(or a list\) "
                                        r"of class indices, got otherlib\.Tensor with dtype otherlib\.int64$"):
        loss(np.zeros((2, 3)), Tensor())
    with pytest.raises(TypeError, match=r"^SoftmaxCrossEntropy: logits must be a float32/float64 array \(N, K\), got "
                                        r"otherlib\.int64$"):
        loss(Tensor(), np.zeros(2, np.int64))
    assert np.isclose(loss(np.zeros((2, 3)), [0, 2]), np.log(3))  # a list is still taken


def test_a_parameter_shared_by_two_layers_is_listed_and_counted_once():
    first, second = nn.Linear(2, 3, rng=0), nn.Linear(3, 3, rng=1)
    second.weight = nn.Linear(3, 3, rng=2).weight
    third = nn.Linear(3, 3, rng=3)
    third.weight = second.weight  # tied weights
    net = Sequential(first, second, third)
    assert [name for name, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias", "2.bias"]
    assert sum(p.data.size for p in net.parameters()) == 6 + 3 + 9 + 3 + 3
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "2.bias"]


@pytest.mark.parametrize("layers, listed", [(3, "0.weight, 1.weight, 2.weight"), (4, "0.weight, 1.weight, 2.weight, ...")])
def test_a_lazy_model_names_its_first_three_shape_only_weights(layers, listed):
    """The message lists three names, and "..." only when there are more."""
    lazy = Sequential(*[nn.Linear(2, 2, init="shape_only", bias=False) for _ in range(layers)])
    with _raises(RuntimeError, f"Sequential was built lazy (shape-only weights, for summary() and parameter counts: {listed}); "
                               "call .materialize(seed) first, load weights with load_state_dict, or build it with lazy=False"):
        lazy.refuse_lazy()


class _TwoHeads(nn.Module):
    """A layer with two outputs, as a graph with two heads: backward checks the gradient of output ``index``."""

    def forward(self, x):
        self.save(x)
        return self._keep_output((x, x.sum(axis=1)))

    def backward(self, dy, *, need_dx=True, index=0):
        self.saved(dy, index)
        return dy


def test_saved_checks_dy_against_the_output_it_is_the_gradient_of():
    heads = _TwoHeads()
    heads(np.ones((2, 3)))
    with _raises(ValueError, "_TwoHeads.backward: dy[1] must have the shape of the forward output (2,), got (2, 3)"):
        heads.backward(np.ones((2, 3)), index=1)
    with _raises(TypeError, "_TwoHeads.backward: dy[0] must have the dtype of the forward output (float64), got float32; "
                            "cast it with dy.astype(np.float64)"):
        heads.backward(np.ones((2, 3), np.float32), index=0)
    dy = np.ones(2)
    assert heads.backward(dy, index=1) is dy
    heads(np.ones((2, 3)))
    dy = np.ones((2, 3))
    assert heads.backward(dy, index=0) is dy


def test_a_forward_output_that_is_not_an_array_leaves_dy_unchecked():
    """Something without both a shape and a dtype is no array: nothing is recorded, so backward checks nothing."""
    keep = Keep()
    for output in (SimpleNamespace(shape=(2, 3)), SimpleNamespace(dtype=np.dtype(np.float64))):
        assert keep(output) is output
        dy = np.ones(5, np.float32)
        assert keep.backward(dy) is dy


@pytest.mark.parametrize("name", ["training", "_param_names", "_buffer_names", "_child_names", "_output_spec", "_saved"])
def test_a_layer_cannot_take_the_name_of_the_container_s_own_state(name):
    with _raises(ValueError, f"Sequential: the name {name!r} is already taken; choose another"):
        Sequential({name: nn.ReLU()})


def test_to_drops_the_record_of_the_last_output_so_dy_of_the_new_dtype_is_taken():
    identity = nn.Identity()
    identity(np.ones((2, 3), np.float32))
    with _raises(TypeError, "Identity.backward: dy must have the dtype of the forward output (float32), got float64; "
                            "cast it with dy.astype(np.float32)"):
        identity.backward(np.ones((2, 3)))
    identity.to(dtype=np.float64)
    dy = np.ones((2, 3))
    assert identity.backward(dy) is dy


def test_to_keeps_the_dtype_of_a_shape_only_weight_unless_told_another():
    layer = nn.Linear(2, 3, init="shape_only", bias=False)
    assert layer.to("cpu").weight.data.dtype == np.float32
    assert layer.weight.is_shape_only and layer.weight.data.shape == (3, 2)
    assert layer.to(dtype=np.float64).weight.data.dtype == np.float64
    assert layer.to(dtype=np.float32).weight.data.dtype == np.float32


def test_to_casts_floating_buffers_and_leaves_integer_buffers_alone():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("seen", np.array([3, 4], np.int64))
            self.register_buffer("mean", np.array([0.5, 1.5], np.float32))

    counter = Counter().to(dtype=np.float64)
    assert counter.seen.dtype == np.int64 and counter.seen.tolist() == [3, 4]
    assert counter.mean.dtype == np.float64 and counter.mean.tolist() == [0.5, 1.5]


def test_to_gpu_without_cupy_refuses_and_changes_nothing(monkeypatch):
    """Where CuPy cannot be imported (here made so, as on a machine without it), to('gpu') refuses before it
    touches any parameter or buffer."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError, CuPy installed or not
    gpu_message = r"^to\('gpu'\) needs CuPy and a CUDA GPU, but CuPy could not be imported "
    layer = nn.Linear(2, 3, rng=0)
    weight = layer.weight.data.copy()
    with pytest.raises(RuntimeError, match=gpu_message):
        layer.to("gpu", dtype=np.float64)
    assert layer.weight.data.dtype == np.float32 and layer.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, weight)

    class Buffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", np.zeros(2, np.float32))

    with pytest.raises(RuntimeError, match=gpu_message):
        Buffers().to("gpu")


def test_max_pool_backward_routes_dy_to_the_winners_of_its_own_forward():
    """The winners' indices are kept from forward: changing the input array afterwards does not move the gradient."""
    pool = nn.MaxPool2d(2)
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert pool(x).tolist() == [[[[4.0]]]]
    x[...] = [[5.0, 2.0], [3.0, 4.0]]  # the input is reused in place: a different pixel would now win
    assert pool.backward(np.array([[[[7.0]]]])).tolist() == [[[[0.0, 0.0], [0.0, 7.0]]]]


@pytest.mark.parametrize("layer", [nn.MaxPool2d, nn.AvgPool2d])
@pytest.mark.parametrize("padding, message", [
    ((2, 0, 0, 0), "padding must be at most half the window, padding <= kernel_size//2 = 2//2 = 1 along width, "
                   "got padding=(2, 0, 0, 0)"),
    ((0, 0, 3, 1), "padding must be at most half the window, padding <= kernel_size//2 = 2//2 = 1 along height, "
                   "got padding=(0, 0, 3, 1)"),
    ((-1, 0, 0, 0), "padding must be >= 0 along both axes, got padding=(-1, 0, 0, 0)"),
    ((0, 0, -1, 1), "padding must be >= 0 along both axes, got padding=(0, 0, -1, 1)"),
])
def test_pooling_checks_the_padding_before_each_axis_as_well_as_after(layer, padding, message):
    with _raises(ValueError, f"{layer.__name__}: {message}"):
        layer(2, padding=padding)


@pytest.mark.parametrize("flatten, shape, out", [
    (nn.Flatten(), (4, 3), (4, 3)),
    (nn.Flatten(), (4, 1), (4, 1)),
    (nn.Flatten(-1, -1), (4, 3), (4, 3)),
    (nn.Flatten(0, -1), (4, 3), (12,)),
    (nn.Flatten(0), (5,), (5,)),
])
def test_flatten_of_an_input_with_nothing_left_to_merge_keeps_its_shape(flatten, shape, out):
    assert flatten.output_shape(shape) == out
    x = np.arange(float(np.prod(shape))).reshape(shape)
    y = flatten(x)
    assert y.shape == out and y.ravel().tolist() == x.ravel().tolist()
    assert flatten.backward(np.ones(out)).shape == shape
