"""Bad input gives one clear error naming the argument, never garbage: layers' backward and constructors.

No crash, no silent wrong answer, no raw traceback.
"""

import os
import re
import site
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minicnn import graph, nn

# ---------------------------------------------------------------- backward checks dy

N4 = (4, 3, 5, 5)


def _sequential():
    return graph.Sequential(nn.Conv2d(3, 2, 3, rng=0), nn.ReLU())


def _graph():
    g = graph.Graph()
    x = g.input()
    a = g.add(nn.Conv2d(3, 3, 1, rng=0), x)
    g.output(g.add(nn.Add(), a, x))
    return g


# Every layer class minicnn.nn exports (and the two containers): how to build one and what to feed it.
LAYER_CASES = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, rng=0), [N4]),
    "Linear": (lambda: nn.Linear(5, 3, rng=0), [(4, 5)]),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), [(4, 3, 6, 6)]),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), [(4, 3, 6, 6)]),
    "GlobalAvgPool2d": (lambda: nn.GlobalAvgPool2d(), [N4]),
    "ReLU": (lambda: nn.ReLU(), [N4]),
    "Sigmoid": (lambda: nn.Sigmoid(), [N4]),
    "Tanh": (lambda: nn.Tanh(), [N4]),
    "Identity": (lambda: nn.Identity(), [N4]),
    "Flatten": (lambda: nn.Flatten(), [N4]),
    "Dropout": (lambda: nn.Dropout(0.5, rng=0), [N4]),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), [N4]),
    "Add": (lambda: nn.Add(), [N4, N4]),
    "Concat": (lambda: nn.Concat(), [N4, N4]),
    "DepthwiseConv2d": (lambda: nn.DepthwiseConv2d(3, 3, rng=0), [N4]),
    "PointwiseConv2d": (lambda: nn.PointwiseConv2d(3, 4, rng=0), [N4]),
    "SeparableConv2d": (lambda: nn.SeparableConv2d(3, 4, 3, rng=0), [N4]),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(3, 4, 3, rng=0), [N4]),
    "Conv1d": (lambda: nn.Conv1d(3, 4, 3, rng=0), [(4, 3, 8)]),
    "Conv3d": (lambda: nn.Conv3d(3, 4, 3, rng=0), [(2, 3, 4, 5, 5)]),
    "ChannelShuffle": (lambda: nn.ChannelShuffle(3), [N4]),
    "ReLU6": (lambda: nn.ReLU6(), [N4]),
    "SiLU": (lambda: nn.SiLU(), [N4]),
    "HardSwish": (lambda: nn.HardSwish(), [N4]),
    "GELU": (lambda: nn.GELU(), [N4]),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), [N4]),
    "HardSigmoid": (lambda: nn.HardSigmoid(), [N4]),
    "Swish": (lambda: nn.Swish(), [N4]),
    "Softmax": (lambda: nn.Softmax(1), [N4]),
    "LogSoftmax": (lambda: nn.LogSoftmax(-1), [N4]),
    "Pad": (lambda: nn.Pad((1, 0, 2, 1), "reflect"), [N4]),
    "ZeroPad2d": (lambda: nn.ZeroPad2d(1), [N4]),
    "ConstantPad2d": (lambda: nn.ConstantPad2d((0, 1, 1, 0), 2.0), [N4]),
    "ReflectionPad2d": (lambda: nn.ReflectionPad2d(2), [N4]),
    "ReplicationPad2d": (lambda: nn.ReplicationPad2d((3, 0, 0, 1)), [N4]),
    "LocalResponseNorm": (lambda: nn.LocalResponseNorm(3), [N4]),
    "SqueezeExcitation": (lambda: nn.SqueezeExcitation(3, 2, rng=0), [N4]),
    "LayerNorm2d": (lambda: nn.LayerNorm2d(3), [N4]),
    "LayerScale": (lambda: nn.LayerScale(3), [N4]),
    "Sequential": (_sequential, [N4]),
    "Graph": (_graph, [N4]),
}


def test_every_exported_layer_has_a_backward_case():
    exported = {
        name for name in nn.__all__
        if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module) and name != "Module"
    }  # fmt: skip
    assert exported <= set(LAYER_CASES), f"add a case for {sorted(exported - set(LAYER_CASES))}"


def _wrong_shapes(shape):
    """Shapes a careless dy might have: broadcastable ones first (they used to give silent garbage)."""
    candidates = [
        (1,) * len(shape),
        (1, *shape[1:2], *(1,) * (len(shape) - 2)),
        (*shape[:-1], 1),
        (shape[0] + 1, *shape[1:]),
        shape[:-1],
        (*shape, 1),
    ]
    out = []
    for c in candidates:
        if tuple(c) != tuple(shape) and tuple(c) not in out and len(c) >= 1:
            out.append(tuple(c))
    return out


def _forward(name):
    make, input_shapes = LAYER_CASES[name]
    layer = make()
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in input_shapes]
    return layer, layer(*xs)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_refuses_a_dy_of_the_wrong_shape(name):
    layer, y = _forward(name)
    for shape in _wrong_shapes(y.shape):
        message = f"{type(layer).__name__}.backward: dy must have the shape of the forward output {tuple(y.shape)}, got {shape}"
        with pytest.raises(ValueError, match=re.escape(message)):
            layer.backward(np.ones(shape, dtype=np.float32))
    # A refused dy does not use up the forward's cache: the right one still works.
    dx = layer.backward(np.ones_like(y))
    dx = dx[0] if isinstance(dx, tuple) else dx
    assert dx.shape == LAYER_CASES[name][1][0]


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_refuses_a_dy_of_the_wrong_type_or_dtype(name):
    layer, y = _forward(name)
    with pytest.raises(TypeError, match=r"\.backward: dy must be a numpy.ndarray of the forward output's shape"):
        layer.backward(np.ones(y.shape).tolist())
    with pytest.raises(TypeError, match=r"\.backward: dy must have the dtype of the forward output \(float32\), got float64"):
        layer.backward(np.ones(y.shape))


def test_batchnorm_and_dropout_refuse_a_broadcasting_dy():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    for layer in (nn.BatchNorm2d(3), nn.Dropout(0.5, rng=0)):
        layer(x)
        for shape in ((1, 3, 1, 1), (4, 3, 5, 1)):
            with pytest.raises(ValueError, match=re.escape(f"dy must have the shape of the forward output (4, 3, 5, 5), got {shape}")):
                layer.backward(np.ones(shape, dtype=np.float32))


def test_graph_with_two_outputs_names_the_gradient():
    g = graph.Graph()
    x = g.input()
    a = g.add(nn.ReLU(), x)
    b = g.add(nn.Tanh(), x)
    g.output(a, b)
    g(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=re.escape("Graph.backward: dy[1] must have the shape of the forward output (2, 3), got (1, 3)")):
        g.backward(np.ones((2, 3), dtype=np.float32), np.ones((1, 3), dtype=np.float32))


# ---------------------------------------------------------------- constructor arguments

BAD_CONSTRUCTIONS = [
    # (constructor, exception, the message must contain)
    (lambda: nn.BatchNorm2d(3, eps="a"), TypeError, "BatchNorm2d: eps must be a number > 0, got str 'a'"),
    (lambda: nn.BatchNorm2d(3, eps=None), TypeError, "BatchNorm2d: eps must be a number > 0, got NoneType None"),
    (lambda: nn.BatchNorm2d(3, eps=0.0), ValueError, "BatchNorm2d: eps must be a finite number > 0, got 0.0"),
    (lambda: nn.BatchNorm2d(3, eps=float("inf")), ValueError, "BatchNorm2d: eps must be a finite number > 0, got inf"),
    (lambda: nn.BatchNorm2d(3, momentum="0.1"), TypeError, "BatchNorm2d: momentum must be a number in [0, 1], got str '0.1'"),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), ValueError, "BatchNorm2d: momentum must be a finite number in [0, 1], got 1.5"),
    (lambda: nn.BatchNorm2d(3, momentum=float("nan")), ValueError, "momentum must be a finite number in [0, 1], got nan"),
    (lambda: nn.BatchNorm2d(3, dtype=np.int32), TypeError, "BatchNorm2d: dtype must be a floating-point type"),
    (lambda: nn.BatchNorm2d(3.0), TypeError, "BatchNorm2d: num_features must be an int, got float 3.0"),
    (lambda: nn.LayerNorm2d(3, eps="a"), TypeError, "LayerNorm2d: eps must be a number > 0"),
    (lambda: nn.LayerNorm2d(3, eps=float("inf")), ValueError, "LayerNorm2d: eps must be a finite number > 0, got inf"),
    (lambda: nn.Dropout("a"), TypeError, "Dropout: p must be a number in [0, 1]"),
    (lambda: nn.Dropout(1.5), ValueError, "Dropout: p is a probability and must lie in [0, 1], got 1.5"),
    (lambda: nn.Dropout(rng="x"), TypeError, "Dropout: rng must be None, a seed (an int >= 0) or a numpy.random.Generator, got str 'x'"),
    (lambda: nn.Conv2d(3, 4, "a"), TypeError, "Conv2d: kernel_size must be an int or a pair (h, w) of ints, got str 'a'"),
    (lambda: nn.Conv2d(3, 4, 2.5), TypeError, "Conv2d: kernel_size must be an int or a pair"),
    (lambda: nn.Conv2d(3, 4, 0), ValueError, "Conv2d: kernel_size must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, stride=0), ValueError, "Conv2d: stride must be >= 1"),
    (lambda: nn.Conv2d(3, 4, 3, padding=-1), ValueError, "Conv2d: padding must be >= 0"),
    (lambda: nn.Conv2d("3", 4, 3), TypeError, "Conv2d: in_channels must be an int, got str '3'"),
    (lambda: nn.Conv2d(3, 0, 3), ValueError, "Conv2d: out_channels must be >= 1, got 0"),
    (lambda: nn.Conv2d(3, 4, 3, bias="yes"), TypeError, "Conv2d: bias must be True or False, got str 'yes'"),
    (lambda: nn.Conv2d(3, 4, 3, init="foo"), ValueError, "Conv2d: init must be one of"),
    (lambda: nn.Conv2d(3, 4, 3, dtype=np.int64), TypeError, "Conv2d: dtype must be a floating-point type such as np.float32 or np.float64, got int64"),
    (lambda: nn.Conv2d(3, 4, 3, dtype="foo"), TypeError, "Conv2d: dtype must be a floating-point type"),
    (lambda: nn.Conv2d(3, 4, 3, rng="x"), TypeError, "Conv2d: rng must be None, a seed"),
    (lambda: nn.Linear(3, 4, bias=2), TypeError, "Linear: bias must be True or False, got int 2"),
    (lambda: nn.Linear(3, 4.0), TypeError, "Linear: out_features must be an int, got float 4.0"),
    (lambda: nn.MaxPool2d(None), TypeError, "MaxPool2d: kernel_size must be an int or a pair (h, w) of ints, got NoneType None"),
    (lambda: nn.MaxPool2d("a"), TypeError, "MaxPool2d: kernel_size must be an int or a pair"),
    (lambda: nn.MaxPool2d(2, stride=0), ValueError, "MaxPool2d: stride must be >= 1"),
    (lambda: nn.MaxPool2d(2, padding=3), ValueError, "MaxPool2d: padding must be at most half the window, padding <= kernel_size//2 = 2//2 = 1"),
    (lambda: nn.AvgPool2d(2, padding=-1), ValueError, "AvgPool2d: padding must be >= 0"),
    (lambda: nn.DepthwiseConv2d(3, 0), ValueError, "DepthwiseConv2d: kernel_size must be >= 1"),
    (lambda: nn.PointwiseConv2d(3, 4, stride=0), ValueError, "PointwiseConv2d: stride must be >= 1"),
    (lambda: nn.SeparableConv2d(3, 4, 0), ValueError, "SeparableConv2d: kernel_size must be >= 1"),
    (lambda: nn.SeparableConv2d(3, 4, "a"), TypeError, "SeparableConv2d: kernel_size must be an int or a pair"),
    (lambda: nn.SeparableConv2d(3, 4, 3, padding=-1, mode="spatial"), ValueError, "SeparableConv2d: padding must be >= 0"),
    (lambda: nn.SeparableConv2d(3, 4, 3, bias=1), TypeError, "SeparableConv2d: bias must be True or False"),
    (lambda: nn.ConvTranspose2d(3, 4, 3, dtype=int), TypeError, "ConvTranspose2d: dtype must be a floating-point type"),
    (lambda: nn.Conv1d(3, 4, 3, bias=None), TypeError, "Conv1d: bias must be True or False, got NoneType None"),
    (lambda: nn.Conv3d(3, 4, (1, 2)), TypeError, "Conv3d: kernel_size must be an int or a tuple of 3 ints"),
    (lambda: nn.LocalResponseNorm(3, k=0), ValueError, "LocalResponseNorm: k must be a finite number > 0, got 0"),
    (lambda: nn.LocalResponseNorm(3, alpha=float("nan")), ValueError, "LocalResponseNorm: alpha must be a finite number >= 0"),
    (lambda: nn.LocalResponseNorm(3, beta="x"), TypeError, "LocalResponseNorm: beta must be a number, got str 'x'"),
    (lambda: nn.LayerScale(3, init_value="a"), TypeError, "LayerScale: init_value must be a number, got str 'a'"),
    (lambda: nn.LayerScale(3, init_value=float("nan")), ValueError, "LayerScale: init_value must be a finite number"),
    (lambda: nn.SqueezeExcitation(3, 2, activation="relu"), TypeError, "SqueezeExcitation: activation must be a layer class"),
    (lambda: nn.SqueezeExcitation(3, 2, activation=nn.ReLU()), TypeError, "SqueezeExcitation: activation must be a layer class"),
    (lambda: nn.ChannelShuffle(0), ValueError, "ChannelShuffle: groups must be >= 1"),
    (lambda: nn.ReLU(inplace=1), TypeError, "ReLU: inplace must be a bool"),
]


@pytest.mark.parametrize("make, error, message", BAD_CONSTRUCTIONS, ids=[m for _, _, m in BAD_CONSTRUCTIONS])
def test_layer_constructors_name_the_bad_argument(make, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make()


def test_valid_constructor_arguments_still_work():
    assert nn.BatchNorm2d(3, eps=1e-3, momentum=0).momentum == 0.0
    assert nn.BatchNorm2d(3, eps=np.float32(1e-3), momentum=np.float64(1.0)).eps == pytest.approx(1e-3)
    assert nn.Conv2d(3, 4, np.int64(3), bias=np.bool_(False), rng=np.random.default_rng(0)).bias is None
    assert nn.MaxPool2d(3, stride=2, padding=1).padding == (1, 1)
    assert nn.LocalResponseNorm(5, alpha=0, beta=-0.5, k=2).beta == -0.5
    assert nn.Dropout(0.2, rng=np.random.SeedSequence(1)).p == 0.2


# ---------------------------------------------------------------- kernels not built: say so on import

REPO = Path(__file__).resolve().parents[1]


def _run_without_the_build(code):
    """Run ``code`` from the source checkout with site-packages on the path but no .pth files processed.

    ``python -S`` skips the editable install's finder, so ``minicnn`` is the
    checkout's folder and ``minicnn.kernels`` does not exist, as for a user
    who clones the repository and runs it without ``pip install -e .``.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(site.getsitepackages()))
    env.pop("PYTHONWARNINGS", None)
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_import_from_an_unbuilt_checkout_warns_once_with_the_fix():
    result = _run_without_the_build("import minicnn; import minicnn.nn; print(minicnn.current_backend_name())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"
    warning_lines = [line for line in result.stderr.splitlines() if "KernelsNotBuiltWarning" in line]
    assert len(warning_lines) == 1, result.stderr
    assert "not built" in warning_lines[0] and "pip install -e ." in warning_lines[0]
    assert "No module named 'minicnn.kernels'" in warning_lines[0]


def test_backends_command_from_an_unbuilt_checkout_prints_the_reason_and_the_fix():
    result = _run_without_the_build("import sys; from minicnn.cli import main; sys.exit(main(['backends']))")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    cython = next(i for i, line in enumerate(lines) if line.startswith("cython"))
    assert "unavailable: ModuleNotFoundError: No module named 'minicnn.kernels'" in lines[cython]
    assert lines[cython + 1].split()[0] == "fix:" and "pip install -e ." in lines[cython + 1]


def test_a_built_install_imports_without_the_warning():
    import minicnn

    if "cython" not in minicnn.available_backends():
        pytest.skip("the kernels are not built here")
    result = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", "import minicnn"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0 and "KernelsNotBuiltWarning" not in result.stderr, result.stderr


def test_kernels_hint_only_for_a_kernel_import_failure():
    from minicnn import kernels_not_built_hint

    assert "pip install -e ." in kernels_not_built_hint("ModuleNotFoundError: No module named 'minicnn.kernels'")
    assert kernels_not_built_hint("ImportError: /x/minicnn/kernels/cpu/conv2d.so: undefined symbol: foo") is not None
    assert kernels_not_built_hint("ValueError: MINICNN_NUM_THREADS must be a positive int, got 'x'") is None
    assert kernels_not_built_hint(None) is None
