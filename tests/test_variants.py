"""Convolution variants and the small layers of modern architectures (minicnn.nn.variants).

Finite-difference gradient checks on every backend, agreement with PyTorch
(when installed), and the properties deck 000_5f24bd8423292174.txt claims:
separable kernels are products, a transposed convolution is the adjoint of a
convolution, grouped and dilated convolutions are ordinary convolutions with
block-diagonal or holed kernels, channel shuffle is a permutation.
"""

import numpy as np
import pytest
from conftest import to_numpy
from gradcheck import check_module_gradients
from hypothesis import assume, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn, shapes
from minicnn.nn import variants as V


def _xp(backend_name):
    return mc.get_backend(backend_name).xp


def _on(backend_name, module):
    """``module`` in float64 on the backend's device."""
    return module.to("cpu" if _xp(backend_name) is np else "gpu", dtype=np.float64)


def _checks(backend_name):
    """Entries checked per tensor: all on the reference backend, a random sample on the others."""
    return None if backend_name == "numpy" else 12


# ----------------------------------------------------------- gradient checks
CASES = {
    "depthwise_multiplier_stride": (
        lambda: V.DepthwiseConv2d(3, 3, stride=2, padding=1, depth_multiplier=2, rng=1), (2, 3, 5, 6)
    ),
    "depthwise_dilated_nobias": (lambda: V.DepthwiseConv2d(2, 3, dilation=2, bias=False, rng=2), (1, 2, 7, 7)),
    "pointwise": (lambda: V.PointwiseConv2d(3, 4, rng=3), (2, 3, 3, 4)),
    "pointwise_grouped_stride": (lambda: V.PointwiseConv2d(4, 6, stride=2, groups=2, rng=4), (2, 4, 5, 5)),
    "separable_depthwise": (lambda: V.SeparableConv2d(3, 4, 3, padding=1, rng=5), (2, 3, 5, 5)),
    "separable_spatial": (lambda: V.SeparableConv2d(2, 3, 3, stride=2, padding=1, mode="spatial", rng=6), (2, 2, 6, 7)),
    "conv_grouped_dilated": (lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2, groups=2, rng=7), (2, 4, 6, 5)),
    "conv_transpose_stride2": (lambda: V.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, rng=8), (2, 3, 4, 3)),
    "conv_transpose_groups_dilation": (
        lambda: V.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), padding=(0, 1), dilation=(2, 1), groups=2, rng=9),
        (1, 4, 3, 4),
    ),
    "conv_transpose_output_padding_below_dilation": (
        lambda: V.ConvTranspose2d(2, 3, 3, stride=1, output_padding=1, dilation=2, bias=False, rng=10),
        (2, 2, 3, 3),
    ),
    "conv1d": (lambda: V.Conv1d(3, 4, 3, stride=2, padding=1, dilation=2, rng=11), (2, 3, 9)),
    "conv1d_grouped": (lambda: V.Conv1d(4, 2, 2, groups=2, bias=False, rng=12), (2, 4, 5)),
    "conv3d": (lambda: V.Conv3d(2, 3, (2, 3, 3), stride=(1, 2, 1), padding=(1, 1, 0), rng=13), (2, 2, 3, 5, 4)),
    "conv3d_depth_stride_dilation": (
        lambda: V.Conv3d(2, 2, (2, 1, 2), stride=(2, 1, 1), dilation=(2, 1, 1), groups=2, rng=14),
        (1, 2, 6, 3, 3),
    ),
    "channel_shuffle": (lambda: V.ChannelShuffle(3), (2, 6, 2, 3)),
    "relu6": (lambda: V.ReLU6(), (2, 3, 4, 4)),
    "silu": (lambda: V.SiLU(), (2, 3, 4)),
    "hardswish": (lambda: V.HardSwish(), (2, 3, 4, 4)),
    "gelu": (lambda: V.GELU(), (3, 5)),
    "local_response_norm": (lambda: V.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0), (2, 5, 3, 3)),
    "local_response_norm_even": (lambda: V.LocalResponseNorm(4, alpha=0.3, beta=0.6, k=2.0), (2, 6, 2, 2)),
    "layer_norm_2d": (lambda: V.LayerNorm2d(4), (2, 4, 3, 3)),
    "layer_scale": (lambda: V.LayerScale(3, 0.5), (2, 3, 2, 2)),
    "squeeze_excitation": (lambda: V.SqueezeExcitation(4, 2, rng=15), (2, 4, 3, 3)),
    "squeeze_excitation_silu": (lambda: V.SqueezeExcitation(3, 2, V.SiLU, rng=16), (2, 3, 2, 3)),
}

# Inputs spread wide enough to cross ReLU6's cap and HardSwish's corners (but never within 1e-6 of them).
SCALE = {"relu6": 5.0, "hardswish": 3.0}


@pytest.mark.parametrize("case", sorted(CASES))
def test_variant_gradients_match_finite_differences(case, backend_name, rng):
    make, shape = CASES[case]
    layer = _on(backend_name, make())
    x = _xp(backend_name).asarray(SCALE.get(case, 1.0) * rng.standard_normal(shape))
    with mc.use_backend(backend_name):
        compared = check_module_gradients(layer, x, seed=1, max_checks=_checks(backend_name))
    assert compared >= min(x.size, 12)


# --------------------------------------------------------- against PyTorch
def _torch():
    return pytest.importorskip("torch")


def _t(a, grad=True):
    torch = _torch()
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def _compare_with_torch(layer, x, torch_forward, params):
    """Forward and backward of ``layer`` against ``torch_forward(tx, *tparams)``; ``params`` are layer Parameters."""
    torch = _torch()
    y = layer(x)
    tx, tparams = _t(x), [_t(p.data) for p in params]
    ty = torch_forward(tx, *tparams)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = np.random.default_rng(0).standard_normal(y.shape)
    layer.zero_grad()
    dx = layer.backward(dy)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-11, err_msg=p.name)


@pytest.mark.parametrize(
    "stride, padding, output_padding, dilation, groups",
    [(1, 0, 0, 1, 1), (2, 1, 1, 1, 2), (3, 2, 2, 1, 1), (1, 0, 1, 2, 1), ((2, 1), (0, 1), (1, 0), (1, 2), 2)],
)
def test_conv_transpose_matches_torch(stride, padding, output_padding, dilation, groups, rng):
    torch = _torch()
    layer = V.ConvTranspose2d(4, 6, 3, stride, padding, output_padding, dilation, groups, rng=1, dtype=np.float64)
    x = rng.standard_normal((2, 4, 5, 4))

    def forward(tx, w, b):
        return torch.nn.functional.conv_transpose2d(tx, w, b, stride, padding, output_padding, groups, dilation)

    _compare_with_torch(layer, x, forward, [layer.weight, layer.bias])
    assert layer(x).shape == layer.output_shape(x.shape)


def test_conv1d_matches_torch(rng):
    torch = _torch()
    layer = V.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 4, 11))
    _compare_with_torch(
        layer, x, lambda tx, w, b: torch.nn.functional.conv1d(tx, w, b, 2, 1, 2, 2), [layer.weight, layer.bias]
    )


def test_conv3d_matches_torch(rng):
    torch = _torch()
    layer = V.Conv3d(4, 6, (3, 2, 3), stride=(2, 1, 2), padding=(1, 0, 1), dilation=(2, 1, 1), groups=2, rng=0,
                     dtype=np.float64)
    x = rng.standard_normal((2, 4, 7, 5, 6))

    def forward(tx, w, b):
        return torch.nn.functional.conv3d(tx, w, b, (2, 1, 2), (1, 0, 1), (2, 1, 1), 2)

    _compare_with_torch(layer, x, forward, [layer.weight, layer.bias])


def test_depthwise_matches_torch(rng):
    torch = _torch()
    layer = V.DepthwiseConv2d(3, 3, stride=2, padding=1, depth_multiplier=2, rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 3, 7, 6))
    _compare_with_torch(
        layer, x, lambda tx, w, b: torch.nn.functional.conv2d(tx, w, b, 2, 1, 1, 3), [layer.weight, layer.bias]
    )


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (4, 0.1, 0.6, 1.0), (1, 0.5, 1.0, 1.0)])
def test_local_response_norm_matches_torch(size, alpha, beta, k, rng):
    torch = _torch()
    layer = V.LocalResponseNorm(size, alpha, beta, k)
    x = 3 * rng.standard_normal((2, 7, 3, 3))
    _compare_with_torch(layer, x, lambda tx: torch.nn.functional.local_response_norm(tx, size, alpha, beta, k), [])


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_matches_torch(training, rng):
    torch = _torch()
    layer = nn.BatchNorm2d(3, dtype=np.float64)
    layer.weight.data[:] = [1.5, -0.5, 2.0]
    layer.bias.data[:] = [0.1, 0.2, -0.3]
    layer.running_mean[:] = [0.5, -1.0, 2.0]
    layer.running_var[:] = [2.0, 0.5, 1.5]
    mean, var = _t(layer.running_mean, False).clone(), _t(layer.running_var, False).clone()
    layer.train(training)
    x = rng.standard_normal((4, 3, 3, 2))

    def forward(tx, w, b):
        return torch.nn.functional.batch_norm(tx, mean, var, w, b, training, 0.1, 1e-5)

    _compare_with_torch(layer, x, forward, [layer.weight, layer.bias])
    np.testing.assert_allclose(layer.running_mean, mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, var.numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "make, torch_name",
    [(V.ReLU6, "relu6"), (V.SiLU, "silu"), (V.HardSwish, "hardswish"), (V.GELU, "gelu")],
)
def test_activations_match_torch(make, torch_name, rng):
    torch = _torch()
    x = 4 * rng.standard_normal((3, 50))
    _compare_with_torch(make(), x, getattr(torch.nn.functional, torch_name), [])


def test_layer_norm_2d_matches_torch_layer_norm_over_channels(rng):
    torch = _torch()
    layer = V.LayerNorm2d(4, dtype=np.float64)
    layer.weight.data[:] = [1.0, 2.0, -1.0, 0.5]
    layer.bias.data[:] = [0.0, 0.1, 0.2, -0.3]
    x = rng.standard_normal((2, 4, 3, 2))

    def forward(tx, w, b):
        channels_last = tx.permute(0, 2, 3, 1)
        return torch.nn.functional.layer_norm(channels_last, (4,), w, b, 1e-6).permute(0, 3, 1, 2)

    _compare_with_torch(layer, x, forward, [layer.weight, layer.bias])


# ------------------------------------------------------------ adjointness
@given(
    n=st.integers(1, 2), c_in=st.integers(1, 3), c_out=st.integers(1, 3), groups=st.sampled_from([1, 2]),
    size=st.integers(3, 9), kernel=st.integers(1, 3), stride=st.integers(1, 3), padding=st.integers(0, 2),
    dilation=st.integers(1, 2), seed=st.integers(0, 2**16),
)
def test_conv_transpose_is_the_adjoint_of_conv(n, c_in, c_out, groups, size, kernel, stride, padding, dilation, seed):
    """<conv(x), y> = <x, conv_transpose(y)> with the same weight (deck 000, "Convolución transpuesta")."""
    c_in, c_out = c_in * groups, c_out * groups
    extent = shapes.dilated_extent(kernel, dilation)
    assume(size + 2 * padding >= extent)
    rng = np.random.default_rng(seed)
    out_size = shapes.conv_output_size(size, kernel, stride, padding, dilation)
    output_padding = (size + 2 * padding - extent) % stride  # picks the size of x among those mapping to out_size
    transpose = V.ConvTranspose2d(c_out, c_in, kernel, stride, padding, output_padding, dilation, groups, bias=False,
                                  dtype=np.float64)
    transpose.weight.data[...] = rng.standard_normal(transpose.weight.shape)
    x = rng.standard_normal((n, c_in, size, size))
    y = rng.standard_normal((n, c_out, out_size, out_size))
    conv_x = F.conv2d(x, transpose.weight.data, stride=stride, padding=padding, dilation=dilation, groups=groups)
    transpose_y = transpose(y)
    assert transpose_y.shape == x.shape
    np.testing.assert_allclose(np.vdot(conv_x, y), np.vdot(x, transpose_y), rtol=1e-10, atol=1e-10)


@given(size=st.integers(1, 8), kernel=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
       dilation=st.integers(1, 2), output_padding=st.integers(0, 2))
def test_conv_transpose_output_size_formula(size, kernel, stride, padding, dilation, output_padding):
    """(H - 1)*S - 2P + D*(F - 1) + output_padding + 1, via shapes.conv_transpose_output_size."""
    if output_padding >= max(stride, dilation):
        with pytest.raises(ValueError, match="output_padding"):
            V.ConvTranspose2d(1, 1, kernel, stride, padding, output_padding, dilation)
        return
    layer = V.ConvTranspose2d(1, 2, kernel, stride, padding, output_padding, dilation, dtype=np.float64)
    expected = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if expected < 1:
        with pytest.raises(ValueError, match="output size"):
            layer.output_shape((1, 1, size, size))
        return
    assert layer.output_shape((1, 1, size, size)) == (1, 2, expected, expected)
    assert layer(np.ones((1, 1, size, size))).shape == (1, 2, expected, expected)


def test_conv_transpose_spreads_the_kernel_over_the_output():
    """Deck 000, "Convolución transpuesta (1)": a 2x2 input and a 2x2 kernel give a 3x3 output of overlapping copies."""
    layer = V.ConvTranspose2d(1, 1, 2, bias=False, dtype=np.float64)
    layer.weight.data[0, 0] = [[0, 1], [2, 3]]
    y = layer(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]))
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 1], [0, 4, 6], [4, 12, 9]])


# ---------------------------------------------------------- separability
def test_sobel_is_a_spatially_separable_product(rng):
    """Deck 000, "Convolución espacial separable": Sobel = [1, 2, 1]^T [-1, 0, 1], two 1-D passes."""
    layer = V.SeparableConv2d(1, 1, 3, padding=1, mode="spatial", bias=False, dtype=np.float64)
    layer.column.weight.data[0, 0, :, 0] = [1, 2, 1]
    layer.row.weight.data[0, 0, 0, :] = [-1, 0, 1]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    np.testing.assert_array_equal(layer.equivalent_kernel()[0, 0], sobel)
    image = rng.standard_normal((1, 1, 8, 9))
    np.testing.assert_allclose(layer(image), F.conv2d(image, sobel[None, None], padding=1), atol=1e-12)
    assert shapes.separable_spatial_flops_per_output(3) == (9, 6)
    assert layer.macs((1, 1, 8, 9)) == 2 * 3 * 8 * 9


@pytest.mark.parametrize("mode", ["spatial", "depthwise"])
@pytest.mark.parametrize("stride, padding, dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 1), (2, 1))])
def test_separable_equals_one_conv_with_the_product_kernel(mode, stride, padding, dilation, backend_name, rng):
    layer = _on(backend_name, V.SeparableConv2d(3, 4, 3, stride, padding, dilation, bias=False, mode=mode, rng=3))
    xp = _xp(backend_name)
    x = xp.asarray(rng.standard_normal((2, 3, 9, 8)))
    with mc.use_backend(backend_name):
        expected = F.conv2d(x, layer.equivalent_kernel(), stride=stride, padding=padding, dilation=dilation)
        np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(expected), rtol=1e-10, atol=1e-12)


def test_depthwise_separable_parameter_count():
    """Deck 000, "Convolución separable en profundidad": C_in*k*k + C_in*C_out against C_in*C_out*k*k."""
    layer = V.SeparableConv2d(32, 64, 3, bias=False)
    assert layer.num_parameters() == shapes.depthwise_separable_params(32, 64, 3) == 32 * 9 + 32 * 64
    assert layer.num_parameters() < shapes.conv2d_params(32, 64, 3, bias=False) == 32 * 64 * 9
    assert layer.macs((1, 32, 10, 10)) == 8 * 8 * (32 * 9) + 8 * 8 * 32 * 64


def test_depthwise_is_a_grouped_conv_one_filter_per_channel(rng):
    """Deck 000, "Convolución en profundidad": channel c of the output sees only channel c of the input."""
    layer = V.DepthwiseConv2d(3, 3, padding=1, bias=False, dtype=np.float64, rng=0)
    assert layer.weight.shape == (3, 1, 3, 3) and layer.groups == 3
    x = rng.standard_normal((1, 3, 5, 5))
    y = layer(x)
    for c in range(3):
        alone = F.conv2d(x[:, c : c + 1], layer.weight.data[c : c + 1], padding=1)
        np.testing.assert_allclose(y[:, c : c + 1], alone, atol=1e-12)


def test_pointwise_mixes_channels_at_each_pixel(rng):
    """Deck 000, "Convolución puntual (de 1x1)": y[:, o, i, j] = Σ_c W[o, c] x[:, c, i, j] + b[o]."""
    layer = V.PointwiseConv2d(3, 2, dtype=np.float64, rng=0)
    layer.bias.data[:] = [0.5, -1.0]
    x = rng.standard_normal((2, 3, 4, 5))
    expected = np.einsum("oc,nchw->nohw", layer.weight.data[:, :, 0, 0], x) + layer.bias.data[None, :, None, None]
    np.testing.assert_allclose(layer(x), expected, atol=1e-12)


# ------------------------------------------------------- grouped, dilated
def test_grouped_conv_is_one_conv_per_group(backend_name, rng):
    """Grouped convolution (ShuffleNet): group g's filters see only group g's channels."""
    xp = _xp(backend_name)
    x = xp.asarray(rng.standard_normal((2, 6, 5, 5)))
    w = xp.asarray(rng.standard_normal((4, 3, 3, 3)))
    with mc.use_backend(backend_name):
        grouped = F.conv2d(x, w, groups=2, padding=1)
        parts = [F.conv2d(x[:, 3 * g : 3 * g + 3], w[2 * g : 2 * g + 2], padding=1) for g in range(2)]
    np.testing.assert_allclose(to_numpy(grouped), np.concatenate([to_numpy(p) for p in parts], axis=1), atol=1e-12)
    assert shapes.conv2d_params(6, 4, 3, groups=2, bias=False) == 4 * 3 * 9


def test_dilated_conv_is_a_conv_with_a_holed_kernel(backend_name, rng):
    """Deck 000/004, "Convolución dilatada": a 3x3 kernel at rate 2 is a 5x5 kernel with zeros between its taps."""
    xp = _xp(backend_name)
    x = xp.asarray(rng.standard_normal((1, 2, 9, 9)))
    w = rng.standard_normal((3, 2, 3, 3))
    holed = np.zeros((3, 2, 5, 5))
    holed[:, :, ::2, ::2] = w
    with mc.use_backend(backend_name):
        dilated = F.conv2d(x, xp.asarray(w), dilation=2)
        plain = F.conv2d(x, xp.asarray(holed))
    np.testing.assert_allclose(to_numpy(dilated), to_numpy(plain), atol=1e-12)
    assert shapes.dilated_extent(3, 2) == 5 and dilated.shape == (1, 3, 5, 5)


# ------------------------------------------------------------ 1-D and 3-D
def test_conv1d_is_conv2d_on_one_pixel_tall_images(rng):
    layer = V.Conv1d(2, 3, 4, stride=2, padding=1, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 2, 10))
    expected = F.conv2d(x[:, :, None], layer.weight.data[:, :, None], layer.bias.data, stride=(1, 2), padding=(0, 1))
    np.testing.assert_allclose(layer(x), expected[:, :, 0], atol=1e-12)
    assert layer.output_shape((2, 2, 10)) == (2, 3, shapes.conv_output_size(10, 4, 2, 1)) == (2, 3, 5)


def test_conv3d_with_one_depth_tap_is_conv2d_per_frame(rng):
    layer = V.Conv3d(2, 3, (1, 3, 3), padding=(0, 1, 1), dtype=np.float64, rng=0)
    clip = rng.standard_normal((2, 2, 4, 5, 5))
    y = layer(clip)
    for t in range(4):
        frame = F.conv2d(clip[:, :, t], layer.weight.data[:, :, 0], layer.bias.data, padding=1)
        np.testing.assert_allclose(y[:, :, t], frame, atol=1e-12)


def test_conv3d_sees_motion_a_frame_by_frame_conv_cannot(rng):
    """Deck 000, "Redes convolucionales 3D": a temporal filter [-1, +1] responds to change between frames only."""
    layer = V.Conv3d(1, 1, (2, 1, 1), bias=False, dtype=np.float64)
    layer.weight.data[0, 0, :, 0, 0] = [-1.0, 1.0]
    still = np.repeat(rng.standard_normal((1, 1, 1, 4, 4)), 3, axis=2)
    assert np.abs(layer(still)).max() == 0.0
    moving = still.copy()
    moving[:, :, 2] += 1.0
    np.testing.assert_allclose(layer(moving)[0, 0, 1], np.ones((4, 4)))
    assert layer.macs((1, 1, 3, 4, 4)) == 2 * 4 * 4 * 2


# -------------------------------------------------------- channel shuffle
def test_channel_shuffle_interleaves_the_groups():
    """ShuffleNet's shuffle: channels of 3 groups of 2, [a0 a1 | b0 b1 | c0 c1] -> [a0 b0 c0 a1 b1 c1]."""
    x = np.arange(6, dtype=np.float64).reshape(1, 6, 1, 1)
    layer = V.ChannelShuffle(3)
    np.testing.assert_array_equal(layer(x).ravel(), [0, 2, 4, 1, 3, 5])
    np.testing.assert_array_equal(layer.backward(layer(x)).ravel(), np.arange(6))
    # Shuffling with k groups undoes shuffling with g (C = g*k).
    np.testing.assert_array_equal(V.ChannelShuffle(2)(layer(x)).ravel(), np.arange(6))


@given(groups=st.integers(1, 5), per_group=st.integers(1, 5))
def test_channel_shuffle_is_a_permutation(groups, per_group):
    c = groups * per_group
    x = np.arange(c, dtype=np.float64).reshape(1, c, 1, 1) + np.zeros((2, 1, 2, 2))
    y = V.ChannelShuffle(groups)(x)
    assert sorted(y[0, :, 0, 0]) == list(range(c))
    for i in range(groups):
        for j in range(per_group):
            assert y[0, j * groups + i, 0, 0] == i * per_group + j


# -------------------------------------------------------------- activations
def test_relu6_caps_at_six():
    """Deck 000, "Cuellos de botella residuales inversos": "1x1 conv2d, ReLU6"."""
    y = V.ReLU6()(np.array([-3.0, 0.0, 2.5, 6.0, 9.0]))
    np.testing.assert_array_equal(y, [0.0, 0.0, 2.5, 6.0, 6.0])


def test_local_response_norm_divides_by_the_neighbours_energy():
    """b_c = a_c / (k + α/n Σ a²)^β over channels c-2..c+2 (n = 5)."""
    x = np.zeros((1, 7, 1, 1))
    x[0, 3] = 2.0
    y = V.LocalResponseNorm(5, alpha=0.5, beta=1.0, k=1.0)(x)
    np.testing.assert_allclose(y[0, 3, 0, 0], 2.0 / (1 + 0.5 / 5 * 4.0))
    assert np.count_nonzero(y) == 1


def test_squeeze_excitation_rescales_each_channel_by_a_gate_in_0_1(rng):
    layer = V.SqueezeExcitation(4, 2, dtype=np.float64, rng=0)
    x = rng.standard_normal((2, 4, 3, 3))
    y = layer(x)
    gate = y / x
    assert np.allclose(gate, gate[:, :, :1, :1])  # one factor per (sample, channel)
    assert ((gate > 0) & (gate < 1)).all()
    assert layer.num_parameters() == 4 * 2 + 2 + 2 * 4 + 4
    assert layer.macs((2, 4, 3, 3)) == 2 * (4 * 2 + 2 * 4)


# ----------------------------------------------------------------- errors
def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="output_padding must be smaller than the stride or the dilation"):
        V.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="divisible by groups"):
        V.ConvTranspose2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        V.SeparableConv2d(2, 2, 3, mode="diagonal")
    with pytest.raises(ValueError, match=r"C=5 must be divisible by groups=2"):
        V.ChannelShuffle(2)(np.zeros((1, 5, 2, 2)))
    with pytest.raises(ValueError, match=r"\(3 \+ 2\*0 - 1\*\(4-1\) - 1\)//1 \+ 1 = 0 < 1"):
        V.Conv3d(1, 1, 4)(np.zeros((1, 1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"3-D \(N, C_in, L\)"):
        V.Conv1d(1, 1, 3)(np.zeros((1, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 3 input channels"):
        V.Conv1d(3, 1, 3)(np.zeros((1, 2, 8), dtype=np.float32))
    with pytest.raises(TypeError, match="kernel_size must be an int or a tuple of 3 ints"):
        V.Conv3d(1, 1, (3, 3))
    with pytest.raises(mc.nn.NoForwardError):
        V.ConvTranspose2d(1, 1, 2).backward(np.zeros((1, 1, 3, 3), dtype=np.float32))
