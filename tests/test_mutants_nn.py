"""Behaviour of minicnn.nn that mutation testing (tools/mutation.py run nn) found no test asserting.

Each test asserts documented behaviour through the public API (the docstrings of minicnn/nn/*.py), so it
stands on its own whatever mutmut later changes."""

import re

import numpy as np
import pytest

from minicnn import nn
from minicnn.graph import Sequential
from minicnn.nn.init import shape_only


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
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=4 * np.finfo(np.float64).eps)
    np.testing.assert_array_equal(p[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(p, np.exp(nn.log_softmax(logits)), rtol=4 * np.finfo(np.float64).eps)


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
    np.testing.assert_allclose(nn.Softmax()(x).sum(axis=1), np.ones((2, 4)), rtol=8 * np.finfo(np.float64).eps)
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
