"""pytest-benchmark suites for composed layers: ConvTranspose2d, built from the gradient-alone primitives.

Its forward pass is ``conv2d_input_grad`` (dX alone) and its backward pass
``conv2d_and_weight_grad`` (the convolution of dY and that convolution's dW
in one pass: one column matrix on im2col, one transform of dY's stride-2
phases on winograd_phases, which the autotuner picks for this k4 s2 p1 layer
where it measures it faster). ``full-gradients`` is the composition it replaced,
kept as the baseline: the forward pass as ``conv2d_grad`` on zeros (dX kept,
dW thrown away) and the backward pass as ``conv2d`` plus a whole ``conv2d_grad``
(dW kept, dX thrown away), on the im2col path it ran then. Run with
``pytest benchmarks/test_bench_layers.py --benchmark-enable``.
"""

import numpy as np
import pytest

import minicnn as mc

# A DCGAN-style upsampling layer: 64 -> 32 channels, 16x16 -> 32x32, batch 32.
SHAPE = (32, 64, 16, 16)
LAYER = dict(in_channels=64, out_channels=32, kernel_size=4, stride=2, padding=1)
IMPLS = [name for name in mc.available_backends() if name not in ("numpy", "cupy")] + ["full-gradients", "torch"]


def _minicnn_step(impl, x, dy):
    layer = mc.nn.ConvTranspose2d(**LAYER, rng=0)

    def step():
        with mc.use_backend(impl):
            layer(x)
            layer.backward(dy)

    return step


def _full_gradients_step(x, dy):
    if "cython" not in mc.available_backends():
        pytest.skip("the composition it replaced ran on the cython backend's im2col path, not built here")
    layer = mc.nn.ConvTranspose2d(**LAYER, rng=0)
    args = layer._conv_args()
    w = layer.weight.data

    def step():  # the layer's work as it was, on the path it ran (im2col), bias included
        y, _, _ = mc.functional.conv2d_grad(np.zeros(dy.shape, x.dtype), w, x, plan="im2col", **args)
        y += layer.bias.data.reshape(1, -1, 1, 1)
        dx = mc.functional.conv2d(dy, w, plan="im2col", **args)
        _, dw, _ = mc.functional.conv2d_grad(dy, w, x, plan="im2col", **args)
        layer.bias.grad += dy.sum(axis=(0, 2, 3))

    return step


def _torch_step(x, dy):
    torch = pytest.importorskip("torch")
    layer = torch.nn.ConvTranspose2d(**LAYER)
    xt = torch.tensor(x, requires_grad=True)
    dyt = torch.tensor(dy)

    def step():
        layer.zero_grad()
        layer(xt).backward(dyt)

    return step


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_transpose_forward_and_backward(benchmark, impl):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SHAPE).astype(np.float32)
    dy = rng.standard_normal((SHAPE[0], LAYER["out_channels"], 2 * SHAPE[2], 2 * SHAPE[3])).astype(np.float32)
    makers = {"torch": _torch_step, "full-gradients": _full_gradients_step}
    step = makers[impl](x, dy) if impl in makers else _minicnn_step(impl, x, dy)
    benchmark.group = "conv_transpose_fwd_bwd"
    benchmark.pedantic(step, rounds=10, warmup_rounds=2)
