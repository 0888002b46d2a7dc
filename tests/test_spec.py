"""The slides as tests: one test per entry of ``spec/*.toml``.

Every entry names a checker (its ``check`` field); the checker reads the
entry's values, computes the claim with ``minicnn.shapes``,
``minicnn.functional`` (on every backend, for checkers that run kernels),
``minicnn.optim`` or plain NumPy, and asserts the slide's number. Tests are
parametrized by entry id, so adding an entry to a spec file adds a test.

An erratum (``erratum = true``) is checked twice: its corrected values must
pass, and the same checker fed the slide's version (``slide_variant``) must
fail. Entries with ``status = "model-zoo"`` (claims about whole networks) are
only checked for form here; their values are tested with the model zoo.

Run only these tests with ``python -m pytest tests/test_spec.py -q``.
"""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import shapes
from gradcheck import numerical_gradient
from spec_loader import DECKS, MODEL_ZOO, SPEC_DIR, SpecError, is_numeric, load_spec, values

ENTRIES = load_spec()

#: checker name -> (function, runs kernels?)
CHECKERS = {}


def checker(name, *, kernels=False):
    """Register a checker under ``name``; ``kernels=True`` ones run kernels and take ``backend_name``."""

    def register(fn):
        CHECKERS[name] = (fn, kernels)
        return fn

    return register


# ------------------------------------------------------------------------ helpers
def arr(value):
    return np.asarray(value, dtype=np.float64)


def nchw(value):
    """A 2-D image, a (C, H, W) volume or an NCHW batch, as a float64 NCHW array."""
    a = arr(value)
    return a.reshape((1,) * (4 - a.ndim) + a.shape)


def kernel4(value):
    """A 2-D mask as a (1, 1, F_H, F_W) weight."""
    return nchw(value)


def host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


class Kernels:
    """``minicnn.functional`` on one backend, NumPy arrays in and out.

    ``Kernels("cupy").conv2d(x, w)`` copies the NumPy arguments to the
    backend's device, calls ``F.conv2d(..., backend="cupy")`` and brings the
    result back, so a checker reads the same on every backend.
    """

    def __init__(self, backend_name):
        self.name = backend_name
        self.xp = mc.get_backend(backend_name).xp

    def _to_device(self, a):
        return self.xp.asarray(a) if isinstance(a, np.ndarray) else a

    def __getattr__(self, function):
        fn = getattr(F, function)

        def call(*args, **kwargs):
            args = [self._to_device(a) for a in args]
            kwargs = {key: self._to_device(value) for key, value in kwargs.items()}
            out = fn(*args, backend=self.name, **kwargs)
            return tuple(host(o) for o in out) if isinstance(out, tuple) else host(out)

        return call


def assert_array(actual, expected, what, atol=1e-9):
    actual, expected = np.asarray(actual), arr(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, slide says {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=atol, err_msg=what)


def tolerance(entry, quantity):
    """``(rel, abs)`` tolerance for ``quantity``: entry fields ``rel_tol``/``abs_tol``, a number or a table."""
    out = []
    for field in ("rel_tol", "abs_tol"):
        tol = entry.get(field, 0.0)
        out.append(float(tol.get(quantity, 0.0)) if isinstance(tol, dict) else float(tol))
    return tuple(out)


def assert_number(entry, quantity, computed, stated):
    """``computed`` equals the slide's ``stated`` number, within the entry's tolerance for ``quantity``."""
    rel, absolute = tolerance(entry, quantity)
    allowed = max(rel * abs(stated), absolute)
    assert abs(computed - stated) <= allowed, (
        f"{entry['id']}: {quantity} computed {computed:,} but the slide states {stated:,} "
        f"(|difference| {abs(computed - stated):,.6g} > allowed {allowed:,.6g})"
    )


def rng_for(entry):
    """A generator seeded by the entry id, so random inputs are the same on every run."""
    return np.random.default_rng(sum(entry["id"].encode()))


def with_variant(entry, variant):
    """A copy of ``entry`` with the fields of ``variant`` replaced.

    A key ``"layers.conv4.out"`` sets field ``out`` of the element named
    ``conv4`` in the list ``layers``; a plain key replaces a top-level field.
    """
    changed = copy.deepcopy(entry)
    for key, value in variant.items():
        if "." in key:
            list_name, element, field = key.split(".")
            matches = [item for item in changed[list_name] if item.get("name") == element]
            assert len(matches) == 1, f"{entry['id']}: slide_variant key {key!r} matches {len(matches)} elements"
            matches[0][field] = value
        else:
            assert key in changed, f"{entry['id']}: slide_variant sets {key!r}, which the entry does not have"
            changed[key] = value
    return changed


# ============================================================ shapes and counts
@checker("output_size", kernels=True)
def check_output_size(entry, backend_name):
    """Conv output volume ``N_filters x H_out x W_out`` (deck 003, "CAPA CONVOLUCIONAL: HIPERPARÁMETROS").

    ``H_out = (H + 2P - F_H)/S + 1`` and ``W_out = (W + 2P - F_W)/S + 1`` (floor), each computed
    on its own axis: ``kernel``, ``stride``, ``padding`` and ``dilation`` take an int or an
    ``[h, w]`` pair.
    """
    run = Kernels(backend_name)
    c, h, w = entry["input"]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
        shapes.pair(entry.get(key, default), key)
        for key, default in (("kernel", None), ("stride", 1), ("padding", 0), ("dilation", 1))
    )
    _, *out = shapes.conv2d_output_shape((1, c, h, w), (entry["filters"], c, kh, kw), (sh, sw), (ph, pw), (dh, dw))
    assert out == entry["expected"], f"{entry['id']}: shapes.conv2d_output_shape gives {out}"
    height, width = shapes.conv_output_size(h, kh, sh, ph, dh), shapes.conv_output_size(w, kw, sw, pw, dw)
    assert height == entry["expected"][1], f"{entry['id']}: H formula gives {height}"
    assert width == entry["expected"][2], f"{entry['id']}: W formula gives {width}"
    # The spatial size does not depend on the channels: run one channel, one filter.
    y = run.conv2d(np.ones((1, 1, h, w)), np.ones((1, 1, kh, kw)), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    assert tuple(y.shape[2:]) == tuple(entry["expected"][1:]), f"conv2d on {backend_name} gives {y.shape}"
    layer = mc.nn.Conv2d(c, entry["filters"], (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw))
    assert list(layer.output_shape((1, c, h, w))[1:]) == entry["expected"], f"{entry['id']}: nn.Conv2d.output_shape"


@checker("pool_output_size", kernels=True)
def check_pool_output_size(entry, backend_name):
    """Pooling output ``H_out = (H + 2P - F_H)/S + 1``, ``W_out = (W + 2P - F_W)/S + 1`` (deck 003), depth kept."""
    run = Kernels(backend_name)
    c, h, w = entry["input"]
    k, s, p = entry["kernel"], entry.get("stride"), entry.get("padding", 0)
    (kh, kw), (sh, sw), (ph, pw) = shapes.pair(k, "kernel"), shapes.pair(k if s is None else s, "stride"), shapes.pair(p, "padding")
    out = list(shapes.pool2d_output_shape((1, c, h, w), k, s, p)[1:])
    assert out == entry["expected"], f"{entry['id']}: shapes.pool2d_output_shape gives {out}"
    height, width = shapes.pool_output_size(h, kh, sh, ph), shapes.pool_output_size(w, kw, sw, pw)
    assert [c, height, width] == entry["expected"], f"{entry['id']}: H and W formulas give {height} x {width}"
    x = np.ones((1, 1, h, w))
    for pool in ("max_pool2d", "avg_pool2d"):
        y = getattr(run, pool)(x, k, stride=s, padding=p)
        assert tuple(y.shape[2:]) == tuple(entry["expected"][1:]), f"{pool} on {backend_name} gives {y.shape}"
    layer = mc.nn.MaxPool2d(k, stride=s, padding=p)
    assert list(layer.output_shape((1, c, h, w))[1:]) == entry["expected"], f"{entry['id']}: nn.MaxPool2d.output_shape"


def _walk(entry):
    """Run the layers of a ``layer_chain`` entry through the shapes formulas."""
    shape = list(entry["input"])
    bias = entry.get("bias", True)
    params = macs = weight_layers = 0
    seen = []
    for layer in entry["layers"]:
        kind = layer["kind"]
        for _ in range(layer.get("repeat", 1)):
            if kind == "conv":
                c, h, w = shape
                k, s, p, g = layer["kernel"], layer.get("stride", 1), layer.get("padding", 0), layer.get("groups", 1)
                out = layer["out"]
                shape = [out, shapes.conv_output_size(h, k, s, p), shapes.conv_output_size(w, k, s, p)]
                params += shapes.conv2d_params(c, out, k, groups=g, bias=bias)
                macs += shapes.conv2d_macs(c, out, k, shape[1:], groups=g)
                weight_layers += 1
            elif kind in ("maxpool", "avgpool"):
                c, h, w = shape
                k, s, p = layer["kernel"], layer.get("stride", layer["kernel"]), layer.get("padding", 0)
                shape = [c, shapes.pool_output_size(h, k, s, p), shapes.pool_output_size(w, k, s, p)]
            elif kind == "global_avgpool":
                shape = [shape[0], 1, 1]
            elif kind == "norm":
                pass  # a normalisation layer keeps the shape and learns nothing in this count
            elif kind == "fc":
                features = shapes.numel(shape)
                params += shapes.linear_params(features, layer["out"], bias=bias)
                macs += shapes.linear_macs(features, layer["out"])
                shape = [layer["out"]]
                weight_layers += 1
            else:
                raise AssertionError(f"{entry['id']}: unknown layer kind {kind!r}")
        seen.append(shape)
    return seen, params, macs, weight_layers


@checker("layer_chain")
def check_layer_chain(entry):
    """Shapes after each layer, parameters, multiply-adds and weight layers of a plain chain."""
    seen, params, macs, weight_layers = _walk(entry)
    assert any(key in entry for key in ("expected_shapes", "expected_params", "expected_macs", "expected_layers"))
    if "expected_shapes" in entry:
        names = [layer.get("name", layer["kind"]) for layer in entry["layers"]]
        for name, got, want in zip(names, seen, entry["expected_shapes"], strict=True):
            assert got == want, f"{entry['id']}: after {name} the shape is {got}, the slide lists {want}"
    if "expected_params" in entry:
        assert_number(entry, "params", params, entry["expected_params"])
    if "expected_macs" in entry:
        assert_number(entry, "macs", macs, entry["expected_macs"])
    if "expected_layers" in entry:
        assert weight_layers == entry["expected_layers"], f"{entry['id']}: {weight_layers} weight layers"


@checker("spatial_chain")
def check_spatial_chain(entry):
    """Output side after each conv/pool step, by the output-size formula (decks 001, 004)."""
    size = entry["input_size"]
    for step, want in zip(entry["steps"], entry["expected"], strict=True):
        k, s, p = step["kernel"], step.get("stride", 1), step.get("padding", 0)
        if step["kind"] == "conv":
            size = shapes.conv_output_size(size, k, s, p)
        else:
            size = shapes.pool_output_size(size, k, s, p)
        assert size == want, f"{entry['id']}: after {step.get('name', step['kind'])} the side is {size}, not {want}"


_PARAM_FORMULAS = {
    "conv2d": shapes.conv2d_params,
    "linear": shapes.linear_params,
    "depthwise_separable": shapes.depthwise_separable_params,
}


def _sum_params(terms):
    return sum(_PARAM_FORMULAS[term["layer"]](**{k: v for k, v in term.items() if k != "layer"}) for term in terms)


@checker("param_count")
def check_param_count(entry):
    """Learnable parameters of a layer (or a sum of layers) by the shapes formulas."""
    total = _sum_params(entry["terms"])
    assert_number(entry, "params", total, entry["expected"])
    if "baseline_terms" in entry:
        baseline = _sum_params(entry["baseline_terms"])
        assert baseline == entry["baseline_expected"], f"{entry['id']}: baseline has {baseline} parameters"
        assert total < baseline, f"{entry['id']}: {total} parameters is not fewer than the baseline's {baseline}"


@checker("flatten_size")
def check_flatten_size(entry):
    """Neurons of a flattened volume: ``C * H * W``."""
    assert shapes.numel(entry["volume"]) == entry["expected"]


@checker("inception_row")
def check_inception_row(entry):
    """A row of the GoogLeNet table: params (K = 1024), ops (multiply-adds, M = 10^6), output depth."""
    hw = entry["output_hw"]
    if "branches" in entry:
        c, b = entry["in_channels"], entry["branches"]
        convs = [
            (c, b["n1x1"], 1),
            (c, b["n3x3_reduce"], 1),
            (b["n3x3_reduce"], b["n3x3"], 3),
            (c, b["n5x5_reduce"], 1),
            (b["n5x5_reduce"], b["n5x5"], 5),
            (c, b["pool_proj"], 1),
        ]
        depth = b["n1x1"] + b["n3x3"] + b["n5x5"] + b["pool_proj"]  # the branches are concatenated
    else:
        convs = [(conv["in"], conv["out"], conv["kernel"]) for conv in entry["convs"]]
        depth = convs[-1][1]
    params = sum(shapes.conv2d_params(i, o, k, bias=False) for i, o, k in convs)
    ops = sum(shapes.conv2d_macs(i, o, k, hw) for i, o, k in convs)
    assert any(key in entry for key in ("params_k", "ops_m", "depth"))
    if "row" in entry:  # the zoo's GoogLeNet has the same row: same weights, same multiply-adds
        model = mc.models.googlenet()
        layer = model[entry["row"]]
        weights = sum(p.data.size for p in layer.parameters() if p.data.ndim > 1)  # no biases, as the table
        assert weights == params, f"{entry['id']}: googlenet().{entry['row']} has {weights:,} weights, the row's layers {params:,}"
        layer_macs = layer.macs(layer_input_shape(model, entry["row"]))
        assert layer_macs == ops, f"{entry['id']}: googlenet().{entry['row']} does {layer_macs:,} multiply-adds"
        if "depth" in entry:
            assert model.named_output_shapes()[entry["row"]][0] == depth
    if "params_k" in entry:
        assert_number(entry, "params", params / 1024, entry["params_k"])
    if "ops_m" in entry:
        assert_number(entry, "ops", ops / 1e6, entry["ops_m"])
    if "depth" in entry:
        assert depth == entry["depth"], f"{entry['id']}: concatenated depth {depth}"


def zoo_model(entry, **kwargs):
    """The network named by the entry's ``model`` field, built by ``minicnn.models`` (shape-only: no weights drawn)."""
    build = getattr(mc.models, entry["model"], None)
    assert callable(build), f"{entry['id']}: minicnn.models has no network {entry['model']!r}"
    return build(**kwargs)


def layer_input_shape(model, name):
    """The batch-of-one shape that enters layer ``name`` of a zoo network."""
    shape = (1, *model.input_shape)
    for layer_name, out in model.named_output_shapes().items():
        if layer_name == name:
            return shape
        shape = (1, *out)
    raise AssertionError(f"{model.name} has no layer {name!r}")


def stage_members(model, stage):
    """The top-level layers of ``model`` named ``stage`` or ``stage_<anything>`` (``conv2`` -> ``conv2_1``, ``conv2_2``)."""
    return [name for name in model.named_output_shapes() if name == stage or name.startswith(stage + "_")]


@checker("layer_count")
def check_layer_count(entry):
    """Weight layers of a zoo network: ``sum(blocks) * layers_per_block + extra``, stage by stage.

    Each stage's weight layers are counted on the built network (``mc.models.blocks.layer_depth``:
    layers with weights on the longest path, as the papers count them) and must equal its
    ``blocks * layers_per_block``; the network's whole depth must be the slide's number.
    ``unit = "table_rows"`` counts the rows of a network's stage table (``model.stages``) instead.
    """
    model = zoo_model(entry)
    blocks, per_block, stages = entry["blocks"], entry["layers_per_block"], entry["stages"]
    if entry.get("unit") == "table_rows":
        counted = {s["stage"]: len(s["layers"]) for s in model.stages}
        found = [counted[stage] for stage in stages]
        total = sum(counted.values())
    else:
        found = [sum(mc.models.blocks.layer_depth(model[name]) for name in stage_members(model, stage)) for stage in stages]
        total = model.depth()
    for stage, got, n in zip(stages, found, blocks, strict=True):
        assert got == n * per_block, f"{entry['id']}: stage {stage!r} of {entry['model']} has {got} layers, not {n} x {per_block}"
    assert total - sum(found) == entry.get("extra", 0), f"{entry['id']}: {total - sum(found)} layers outside the stages"
    assert total == entry["expected"], f"{entry['id']}: {entry['model']} has {total} layers"


@checker("stage_resolutions")
def check_stage_resolutions(entry):
    """Each stage's input side is the previous stage's output: its kernel at its stride with 'same' padding."""
    sides, kernels, strides = entry["resolutions"], entry["kernels"], entry["strides"]
    assert len(sides) == len(kernels) == len(strides) + 1
    assert sides[0] == entry["input_size"]
    for i, stride in enumerate(strides):
        got = shapes.conv_output_size(sides[i], kernels[i], stride, kernels[i] // 2)
        assert got == sides[i + 1], f"{entry['id']}: stage {i + 1} ({kernels[i]}x{kernels[i]}/{stride}) gives {got}"


@checker("stage_table_rows")
def check_stage_table_rows(entry):
    """A per-layer table has one row per layer of the zoo network: each row's channels are that layer's output channels."""
    model = zoo_model(entry)
    rows = [model.named_output_shapes()[name][0] for stage in model.stages for name in stage["layers"]]
    assert [s["channels"] for s in model.stages] == entry["stage_channels"], f"{entry['id']}: stage widths"
    assert [len(s["layers"]) for s in model.stages] == entry["stage_layers"], f"{entry['id']}: stage depths"
    assert len(entry["row_channels"]) == len(rows), (
        f"{entry['id']}: the table has {len(entry['row_channels'])} rows, {entry['model']} has {len(rows)} layers"
    )
    assert entry["row_channels"] == rows, f"{entry['id']}: row channels {entry['row_channels']}, layers give {rows}"
    assert len(rows) == entry["expected_layers"], f"{entry['id']}: {len(rows)} rows"


@checker("compound_scaling")
def check_compound_scaling(entry):
    """EfficientNet: ``alpha * beta^2 * gamma^2 ~ 2``, all >= 1; FLOPs grow as ``d * w^2 * r^2``.

    The coefficients are the zoo's (``efficientnet(phi).coefficients``); the multiply-adds ratio is
    that of ``nn.Conv2d`` layers widened by ``width_factor`` on inputs grown by ``resolution_factor``.
    """
    a, b, g = entry["alpha"], entry["beta"], entry["gamma"]
    scaled = mc.models.efficientnet(1).coefficients
    assert (scaled["depth"], scaled["width"], scaled["resolution"]) == (a, b, g), f"{entry['id']}: the zoo scales by {scaled}"
    assert min(scaled.values()) >= 1
    phi2 = mc.models.efficientnet(2).coefficients
    assert math.isclose(phi2["depth"], a**2) and math.isclose(phi2["width"], b**2) and math.isclose(phi2["resolution"], g**2)
    factor = scaled["depth"] * scaled["width"] ** 2 * scaled["resolution"] ** 2
    assert_number(entry, "flops_factor", factor, entry["flops_factor"])
    # Width multiplies both channel counts of a convolution, resolution both sides of its input.
    c, k, side = 8, 3, 7
    wf, rf = entry["width_factor"], entry["resolution_factor"]
    base = mc.nn.Conv2d(c, c, k, padding=1).macs((1, c, side, side))
    wide = mc.nn.Conv2d(c * wf, c * wf, k, padding=1).macs((1, c * wf, side * rf, side * rf))
    assert wide / base == entry["macs_ratio"], f"{entry['id']}: multiply-adds grow {wide / base}x"


@checker("dense_channels", kernels=True)
def check_dense_channels(entry, backend_name):
    """DenseNet: ``x_l = H_l([x_0, ..., x_{l-1}])`` makes a block end with ``k_0 + l*k`` channels.

    Runs ``mc.models.DenseBlock`` on the backend; its output is ``[x_0, x_1, ..., x_L]``, and layer
    ``l`` applied to the first ``k_0 + (l-1)k`` channels of it gives back exactly ``x_l``.
    """
    k0, k, layers, side = entry["k0"], entry["growth_rate"], entry["layers"], entry["side"]
    block = on_backend(mc.models.DenseBlock(layers, k0, k, lazy=False, rng=0, dtype=np.float64).eval(), backend_name)
    x = rng_for(entry).standard_normal((2, k0, side, side))
    with mc.use_backend(backend_name):
        out = host(block(Kernels(backend_name)._to_device(x)))
        assert out.shape == (2, entry["expected"], side, side), f"{entry['id']}: block output {out.shape}"
        assert block.out_channels == entry["expected"]
        assert_array(out[:, :k0], x, f"{entry['id']}: x_0 passes through")
        for l in range(1, layers + 1):
            earlier = out[:, : k0 + (l - 1) * k]
            x_l = host(getattr(block, f"denselayer{l}")(Kernels(backend_name)._to_device(earlier)))
            assert_array(x_l, out[:, k0 + (l - 1) * k : k0 + l * k], f"{entry['id']}: x_{l} = H_{l}([x_0..x_{l - 1}])", atol=1e-9)


# ============================================================= masks and filters
def _filter(image, mask, op, backend_name):
    """``conv2d`` (cross-correlation) or ``true_conv2d`` (flipped kernel) of a 2-D image with a 2-D mask."""
    return getattr(Kernels(backend_name), op)(nchw(image), kernel4(mask))[0, 0]


@checker("mask_response", kernels=True)
def check_mask_response(entry, backend_name):
    """A mask applied to a small image gives the slide's response (zero away from the edge/line)."""
    got = _filter(entry["image"], entry["mask"], entry["op"], backend_name)
    assert_array(got, entry["expected"], f"{entry['id']} on {backend_name}")


@checker("line_detector", kernels=True)
def check_line_detector(entry, backend_name):
    """Each line mask answers most strongly to the line it was designed for."""
    masks, images = entry["masks"], entry["images"]
    for image_name, image in images.items():
        peaks = {name: _filter(image, mask, "conv2d", backend_name).max() for name, mask in masks.items()}
        best = max(peaks, key=peaks.get)
        assert best == image_name, f"{entry['id']}: on the {image_name} line the {best} mask wins: {peaks}"
        assert peaks[best] == entry["peak"], f"{entry['id']}: peak {peaks[best]}"
        assert all(v < peaks[best] for name, v in peaks.items() if name != best)


@checker("separable_kernel", kernels=True)
def check_separable_kernel(entry, backend_name):
    """A rank-1 kernel is the outer product column x row and filters as two 1-D passes."""
    run = Kernels(backend_name)
    kernel, column, row = arr(entry["kernel"]), arr(entry["column"]), arr(entry["row"])
    assert_array(np.outer(column, row), kernel, f"{entry['id']}: column x row")
    image = rng_for(entry).standard_normal((1, 1, 7, 8))
    direct = run.conv2d(image, kernel4(kernel))
    two_pass = run.conv2d(run.conv2d(image, column.reshape(1, 1, -1, 1)), row.reshape(1, 1, 1, -1))
    assert_array(two_pass, direct, f"{entry['id']}: two 1-D passes on {backend_name}")
    assert list(shapes.separable_spatial_flops_per_output(len(column))) == entry["flops_per_output"]


@checker("flip_equals_rot90", kernels=True)
def check_flip_equals_rot90(entry, backend_name):
    """Flipping rows and columns is ``rot90(W, 2)``; true convolution is correlation with it (deck 002)."""
    run = Kernels(backend_name)
    w, flipped = arr(entry["kernel"]), arr(entry["flipped"])
    assert_array(np.rot90(w, 2), flipped, "rot90(W, 2)")
    assert_array(w[::-1, ::-1], flipped, "W flipped up-down and left-right")
    image = nchw(entry["image"])
    true = run.true_conv2d(image, kernel4(w))
    assert_array(true, run.conv2d(image, kernel4(flipped)), "true_conv2d vs conv2d(rot90)")


def _slide_convolution(image, w):
    """``I'[u, v] = sum_q sum_p w[q, p] I[u - q, v - p]`` over the indices where every term exists (deck 002)."""
    a, b = w.shape[0] - 1, w.shape[1] - 1
    out = np.zeros((image.shape[0] - a, image.shape[1] - b))
    for u in range(a, image.shape[0]):
        for v in range(b, image.shape[1]):
            out[u - a, v - b] = sum(w[q, p] * image[u - q, v - p] for q in range(a + 1) for p in range(b + 1))
    return out


@checker("convolution_sum", kernels=True)
def check_convolution_sum(entry, backend_name):
    """The slide's convolution sum, ``true_conv2d`` and the slide's numbers agree."""
    image, w = arr(entry["image"]), arr(entry["kernel"])
    assert_array(_slide_convolution(image, w), entry["expected"], f"{entry['id']}: the slide's sum")
    assert_array(_filter(image, w, "true_conv2d", backend_name), entry["expected"], f"true_conv2d on {backend_name}")


@checker("cross_correlation", kernels=True)
def check_cross_correlation(entry, backend_name):
    """``S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)`` is what ``conv2d`` computes (deck 003)."""
    image, k = arr(entry["image"]), arr(entry["kernel"])
    fh, fw = k.shape
    direct = np.zeros((image.shape[0] - fh + 1, image.shape[1] - fw + 1))
    for i, j in np.ndindex(direct.shape):
        direct[i, j] = sum(image[i + m, j + n] * k[m, n] for m in range(fh) for n in range(fw))
    assert_array(direct, entry["expected"], f"{entry['id']}: the slide's sum")
    assert_array(_filter(image, k, "conv2d", backend_name), entry["expected"], f"conv2d on {backend_name}")


@checker("conv_commutes", kernels=True)
def check_conv_commutes(entry, backend_name):
    """``I * K = K * I`` for the full discrete convolution (decks 003, 004)."""
    run = Kernels(backend_name)
    a, b = arr(entry["a"]), arr(entry["b"])

    def full(x, k):
        pad = (k.shape[0] - 1, k.shape[1] - 1)
        return run.true_conv2d(nchw(x), kernel4(k), padding=pad)[0, 0]

    assert_array(full(a, b), entry["expected"], f"{entry['id']}: a * b on {backend_name}")
    assert_array(full(b, a), entry["expected"], f"{entry['id']}: b * a on {backend_name}")


@checker("conv1d", kernels=True)
def check_conv1d(entry, backend_name):
    """``s[i] = sum_m x[m] k[i - m]`` (valid part) as a 1-row true convolution and as ``numpy.convolve``."""
    run = Kernels(backend_name)
    x, k = arr(entry["signal"]), arr(entry["kernel"])
    assert_array(np.convolve(x, k, mode="valid"), entry["expected"], "numpy.convolve")
    got = run.true_conv2d(x.reshape(1, 1, 1, -1), k.reshape(1, 1, 1, -1))
    assert_array(got.ravel(), entry["expected"], f"1-row true_conv2d on {backend_name}")


@checker("translation_equivariance", kernels=True)
def check_translation_equivariance(entry, backend_name):
    """Shifting the input shifts the feature map by the same amount."""
    run = Kernels(backend_name)
    image, shift = nchw(entry["image"]), tuple(entry["shift"])
    k = kernel4(entry["kernel"])
    moved = np.roll(image, shift, axis=(2, 3))
    before = run.conv2d(image, k)
    after = run.conv2d(moved, k)
    assert_array(after, np.roll(before, shift, axis=(2, 3)), f"{entry['id']}: conv(shift(x)) vs shift(conv(x))")
    assert np.abs(before).sum() > 0, "the example must have a non-zero response"


@checker("local_connectivity", kernels=True)
def check_local_connectivity(entry, backend_name):
    """One output of a conv layer depends only on the ``F x F`` inputs under the filter."""
    run = Kernels(backend_name)
    h, w = entry["input_hw"]
    k = entry["kernel"]
    i, j = entry["output_pixel"]
    weight = np.ones((1, 1, k, k))
    dy = np.zeros((1, 1, h - k + 1, w - k + 1))
    dy[0, 0, i, j] = 1.0
    dx, _, _ = run.conv2d_grad(np.zeros((1, 1, h, w)), weight, dy)
    touched = np.argwhere(dx[0, 0] != 0)
    assert len(touched) == entry["expected_inputs"], f"{entry['id']}: {len(touched)} inputs reach output {i, j}"
    assert touched.min(axis=0).tolist() == [i, j] and touched.max(axis=0).tolist() == [i + k - 1, j + k - 1]
    dense = shapes.linear_params(h * w, 1, bias=False)
    assert dense == entry["dense_inputs"], f"{entry['id']}: a dense neuron sees {dense} inputs"


# ======================================================================= pooling
@checker("pool_values", kernels=True)
def check_pool_values(entry, backend_name):
    """Max pooling keeps each window's maximum, average pooling its mean."""
    run = Kernels(backend_name)
    x = nchw(entry["image"])
    k, s = entry["kernel"], entry.get("stride")
    assert_array(run.max_pool2d(x, k, stride=s)[0, 0], entry["expected_max"], "max")
    assert_array(run.avg_pool2d(x, k, stride=s)[0, 0], entry["expected_avg"], "average")


@checker("avg_pool_as_conv", kernels=True)
def check_avg_pool_as_conv(entry, backend_name):
    """Average pooling is a per-channel convolution with ``ones(F)/F^2`` at stride F (deck 002, S2)."""
    run = Kernels(backend_name)
    x = nchw(entry["image"])
    f, c = entry["kernel"], x.shape[1]
    ones = np.full((c, 1, f, f), 1.0 / (f * f))
    by_conv = run.conv2d(x, ones, stride=f, groups=c)
    pooled = run.avg_pool2d(x, f)
    assert_array(pooled, by_conv, f"{entry['id']}: avg_pool2d vs conv2d with ones/F^2")
    assert_array(pooled[0], entry["expected"], f"{entry['id']}: pooled values")


@checker("global_avg_pool", kernels=True)
def check_global_avg_pool(entry, backend_name):
    """Global average pooling keeps one number per map: its mean (deck 003)."""
    run = Kernels(backend_name)
    x = nchw(entry["maps"])
    pooled = run.avg_pool2d(x, x.shape[2:])
    assert pooled.shape == (1, x.shape[1], 1, 1)
    assert_array(pooled.ravel(), entry["expected"], f"{entry['id']}: pooled")
    assert_array(x.mean(axis=(2, 3)).ravel(), entry["expected"], "mean of each map")


@checker("overlapping_pool", kernels=True)
def check_overlapping_pool(entry, backend_name):
    """Overlapping pooling (window > stride): neighbouring windows share pixels."""
    run = Kernels(backend_name)
    side, k, s = entry["input_size"], entry["kernel"], entry["stride"]
    assert shapes.pool_output_size(side, k, s) == entry["output_size"]
    x = np.zeros((1, 1, side, side))
    dy = np.ones((1, 1, entry["output_size"], entry["output_size"]))
    # Average-pool backward sends 1/F^2 of each window's error to each of its pixels: times F^2 it counts windows.
    windows = run.avg_pool2d_grad(x, dy, k, stride=s) * k * k
    assert round(windows.max()) == entry["max_windows_per_pixel"], f"{entry['id']}: {windows.max()} windows"


# ================================================================= backpropagation
@checker("kron_upsample", kernels=True)
def check_kron_upsample(entry, backend_name):
    """``kron(delta, ones)`` upsamples the error; divided by the pool area it is the average-pool backward."""
    run = Kernels(backend_name)
    delta, f = arr(entry["delta"]), entry["pool"]
    upsampled = np.kron(delta, np.ones(entry["ones_shape"]))
    assert_array(upsampled, entry["expected"], f"{entry['id']}: kron")
    x = np.zeros((1, 1) + upsampled.shape)
    grad = run.avg_pool2d_grad(x, nchw(delta), f)
    assert_array(grad[0, 0], upsampled / (f * f), f"{entry['id']}: avg_pool2d_grad on {backend_name}")


@checker("max_pool_routing", kernels=True)
def check_max_pool_routing(entry, backend_name):
    """Max-pool backward: only each window's winner receives the error (deck 003)."""
    run = Kernels(backend_name)
    x, dy = nchw(entry["image"]), nchw(entry["delta"])
    k, s = entry["kernel"], entry.get("stride")
    dx = run.max_pool2d_grad(x, dy, k, stride=s)
    assert_array(dx[0, 0], entry["expected"], f"{entry['id']}: dx on {backend_name}")
    _, indices = run.max_pool2d_with_indices(x, k, stride=s)
    again = run.max_pool2d_grad(x, dy, k, stride=s, indices=indices)
    assert_array(again[0, 0], entry["expected"], f"{entry['id']}: dx through the saved indices")


@checker("weight_grad_rot90", kernels=True)
def check_weight_grad_rot90(entry, backend_name):
    """``grad W = sum_i a_i * rot90(delta, 2)``: true convolution with the rotated error = conv2d_grad's dW."""
    run = Kernels(backend_name)
    a, delta = arr(entry["activations"]), arr(entry["delta"])  # (m, H, W) and (m, h, w)
    m = a.shape[0]
    by_formula = sum(run.true_conv2d(nchw(a[i]), kernel4(np.rot90(delta[i], 2)))[0, 0] for i in range(m))
    assert_array(by_formula, entry["expected"], f"{entry['id']}: the slide's sum")
    fh, fw = a.shape[1] - delta.shape[1] + 1, a.shape[2] - delta.shape[2] + 1
    _, dw, _ = run.conv2d_grad(a[:, None], np.zeros((1, 1, fh, fw)), delta[:, None])
    assert_array(dw[0, 0], entry["expected"], f"{entry['id']}: conv2d_grad dW on {backend_name}")


@checker("bias_grad_sum", kernels=True)
def check_bias_grad_sum(entry, backend_name):
    """``grad b_k = sum_{a,b} delta_k``: one sum per filter over positions (and examples)."""
    run = Kernels(backend_name)
    delta = arr(entry["delta"])  # (m, K, h, w)
    m, k, h, w = delta.shape
    x = np.zeros((m, 1, h + 1, w + 1))
    _, _, db = run.conv2d_grad(x, np.zeros((k, 1, 2, 2)), delta)
    assert_array(db, entry["expected"], f"{entry['id']}: conv2d_grad db on {backend_name}")
    assert_array(delta.sum(axis=(0, 2, 3)), entry["expected"], "sum of delta")


@checker("conv_input_grad", kernels=True)
def check_conv_input_grad(entry, backend_name):
    """The error reaching the input is the full convolution of delta with the filter."""
    run = Kernels(backend_name)
    w, delta = arr(entry["kernel"]), arr(entry["delta"])
    fh, fw = w.shape
    full = run.true_conv2d(nchw(delta), kernel4(w), padding=(fh - 1, fw - 1))
    assert_array(full[0, 0], entry["expected"], f"{entry['id']}: full convolution")
    x = np.zeros((1, 1) + arr(entry["expected"]).shape)
    dx, _, _ = run.conv2d_grad(x, kernel4(w), nchw(delta))
    assert_array(dx[0, 0], entry["expected"], f"{entry['id']}: conv2d_grad dx on {backend_name}")


@checker("shared_weight_grad", kernels=True)
def check_shared_weight_grad(entry, backend_name):
    """Each position's gradient ``delta[i, j] * patch(i, j)`` summed gives the shared weight's gradient."""
    run = Kernels(backend_name)
    image, delta = arr(entry["image"]), arr(entry["delta"])
    f = entry["kernel_size"]
    per_position = [
        delta[i, j] * image[i : i + f, j : j + f] for i in range(delta.shape[0]) for j in range(delta.shape[1])
    ]
    assert_array(np.sum(per_position, axis=0), entry["expected"], f"{entry['id']}: sum of per-position gradients")
    _, dw, _ = run.conv2d_grad(nchw(image), np.zeros((1, 1, f, f)), nchw(delta))
    assert_array(dw[0, 0], entry["expected"], f"{entry['id']}: conv2d_grad dW on {backend_name}")


@checker("sigmoid")
def check_sigmoid(entry):
    """``C = 1 / (1 + e^{-A})`` and its derivative ``C (1 - C)``, by ``mc.nn.Sigmoid``'s forward and backward."""
    z = arr(entry["z"])
    layer = mc.nn.Sigmoid()
    c = layer(z)
    np.testing.assert_allclose(c, entry["expected"], atol=1e-7, err_msg=f"{entry['id']}: nn.Sigmoid forward")
    derivative = layer.backward(np.ones_like(z))
    np.testing.assert_allclose(derivative, entry["expected_derivative"], atol=1e-7, err_msg=f"{entry['id']}: nn.Sigmoid backward")
    np.testing.assert_allclose(derivative, c * (1 - c), rtol=1e-12, err_msg=f"{entry['id']}: f' = C (1 - C)")


def _fc_network(entry):
    """The slide's two fully connected sigmoid layers as ``mc.nn`` layers, with the entry's weights."""
    fc1, fc2 = mc.nn.Linear(2, 3, dtype=np.float64), mc.nn.Linear(3, 2, dtype=np.float64)
    for layer, w, b in ((fc1, "W1", "b1"), (fc2, "W2", "b2")):
        layer.weight.data[...] = arr(entry[w])
        layer.bias.data[...] = arr(entry[b])
    return mc.graph.Sequential(fc1, mc.nn.Sigmoid(), fc2, mc.nn.Sigmoid()), fc1, fc2


@checker("fc_backprop")
def check_fc_backprop(entry):
    """``delta_l = (W_l^T delta_{l+1}) . f'(z_l)``, ``grad W_l = delta_{l+1} a_l^T``, ``grad b_l = delta_{l+1}``.

    The network is ``mc.nn.Linear`` and ``mc.nn.Sigmoid`` layers; the gradients its ``backward``
    leaves in ``.grad`` must equal the slide's equations (evaluated on the layers' own activations)
    and the finite differences of its forward pass under the squared error.
    """
    x, y = arr(entry["x"])[None], arr(entry["y"])[None]
    net, fc1, fc2 = _fc_network(entry)

    def loss():
        return 0.5 * float(np.sum((net(x) - y) ** 2))

    a2 = net(x)
    for p in net.parameters():
        p.grad[...] = 0
    dx = net.backward(a2 - y)
    z1 = x @ arr(entry["W1"]).T + arr(entry["b1"])
    a1 = 1.0 / (1.0 + np.exp(-z1))  # the slide's f
    delta2 = (a2 - y) * a2 * (1 - a2)
    delta1 = (delta2 @ arr(entry["W2"])) * a1 * (1 - a1)
    for name, analytic, param in (
        ("grad W2 = delta2 a1^T", delta2.T @ a1, fc2.weight),
        ("grad b2 = delta2", delta2[0], fc2.bias),
        ("grad W1 = delta1 x^T", delta1.T @ x, fc1.weight),
        ("grad b1 = delta1", delta1[0], fc1.bias),
    ):
        np.testing.assert_allclose(param.grad, analytic, rtol=1e-9, atol=1e-12, err_msg=f"{entry['id']}: {name} (nn backward)")
        np.testing.assert_allclose(param.grad, numerical_gradient(loss, param.data), rtol=1e-5, atol=1e-8,
                                   err_msg=f"{entry['id']}: {name} against finite differences")
    np.testing.assert_allclose(dx, delta1 @ arr(entry["W1"]), rtol=1e-9, err_msg=f"{entry['id']}: delta_0 = W1^T delta1")


@checker("softmax")
def check_softmax(entry):
    """``P(y = k | z) = e^{s_k} / sum_j e^{s_j}`` by ``mc.nn.softmax``: probabilities summing to 1, order kept."""
    s = arr(entry["scores"])[None]
    p = mc.nn.softmax(s)
    np.testing.assert_allclose(p[0], entry["expected"], atol=1e-7, err_msg=f"{entry['id']}: nn.softmax")
    assert abs(p.sum() - 1) < 1e-12 and np.argmax(p) == np.argmax(s)
    np.testing.assert_allclose(mc.nn.softmax(s + 100.0), p, rtol=1e-12, err_msg="softmax is shift invariant")
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss_fn(s, np.array([0]))
    np.testing.assert_allclose(loss_fn.probabilities[0], entry["expected"], atol=1e-7, err_msg="SoftmaxCrossEntropy.probabilities")


@checker("softmax_cross_entropy")
def check_softmax_cross_entropy(entry):
    """Gradient (4) of the cost (3): ``-(1/m) sum_i x_i (1{y_i = k} - P(y_i = k | x_i))``.

    Cost and gradient come from ``mc.nn.SoftmaxCrossEntropy`` on the scores ``x theta^T`` (its
    ``backward`` is ``dJ/dscores``; chained through the scores, ``dJ/dtheta = dscores^T x``).
    That gradient must match the finite differences of the cost, and the slide's equation
    (with or without ``1/m``, as ``divide_by_m`` says) must match it.
    """
    theta, x, y = arr(entry["theta"]), arr(entry["x"]), np.asarray(entry["y"])
    m, k = x.shape[0], theta.shape[0]
    loss_fn = mc.nn.SoftmaxCrossEntropy()

    def cost():  # equation (3)
        return loss_fn(x @ theta.T, y)

    cost()
    gradient = loss_fn.backward().T @ x
    np.testing.assert_allclose(gradient, numerical_gradient(cost, theta), rtol=1e-5, atol=1e-8,
                               err_msg=f"{entry['id']}: SoftmaxCrossEntropy.backward against finite differences of its cost")
    cost()
    error = np.eye(k)[y] - loss_fn.probabilities  # E(theta; x_i, y_i)
    slide = -(error.T @ x)  # equation (4) as printed
    if entry["divide_by_m"]:
        slide = slide / m
    ratio = np.linalg.norm(slide) / np.linalg.norm(gradient)
    assert np.allclose(slide, gradient, rtol=1e-9, atol=1e-12), (
        f"{entry['id']}: equation (4) gives {ratio:.6g} times the gradient of cost (3)"
    )


@checker("momentum_update")
def check_momentum_update(entry):
    """``v := gamma v + eta grad``, ``theta := theta - v`` (deck 002), by hand and with ``minicnn.optim.SGD``."""
    eta, gamma = entry["lr"], entry["momentum"]
    grads = [arr(g) for g in entry["grads"]]
    theta, v = arr(entry["theta0"]), np.zeros(len(entry["theta0"]))
    for step, (g, want) in enumerate(zip(grads, entry["expected"], strict=True), 1):
        v = gamma * v + eta * g
        theta = theta - v
        np.testing.assert_allclose(theta, want, atol=1e-12, err_msg=f"step {step} by the slide's equations")

    param = mc.nn.Parameter(arr(entry["theta0"]))
    optimizer = mc.optim.SGD([param], lr=eta, momentum=gamma)
    for step, (g, want) in enumerate(zip(grads, entry["expected"]), 1):
        param.grad = g.copy()
        optimizer.step()
        np.testing.assert_allclose(param.data, want, rtol=1e-6, atol=1e-9, err_msg=f"SGD step {step}")


# ======================================================== variants of convolution
@checker("pointwise_matmul", kernels=True)
def check_pointwise_matmul(entry, backend_name):
    """A 1x1 convolution multiplies every pixel's channel vector by the same matrix."""
    run = Kernels(backend_name)
    x, w = arr(entry["x"]), arr(entry["w"])  # (C_in, H, W), (C_out, C_in)
    got = run.conv2d(x[None], w[:, :, None, None])[0]
    assert_array(np.einsum("oc,chw->ohw", w, x), entry["expected"], f"{entry['id']}: per-pixel matrix product")
    assert_array(got, entry["expected"], f"{entry['id']}: 1x1 conv2d on {backend_name}")


@checker("depthwise_conv", kernels=True)
def check_depthwise_conv(entry, backend_name):
    """Depthwise: each channel filtered by its own ``F x F`` kernel (``groups = C``)."""
    run = Kernels(backend_name)
    c, h, w = entry["input"]
    k = entry["kernel"]
    rng = rng_for(entry)
    x, weight = rng.standard_normal((1, c, h, w)), rng.standard_normal((c, 1, k, k))
    y = run.conv2d(x, weight, groups=c)
    for ch in range(c):
        alone = run.conv2d(x[:, ch : ch + 1], weight[ch : ch + 1])
        assert_array(y[:, ch : ch + 1], alone, f"{entry['id']}: channel {ch}")
    assert list(y.shape[1:]) == entry["expected"]
    assert shapes.conv2d_macs(c, c, k, entry["expected"][1:], groups=c) == entry["expected_macs"]


@checker("depthwise_separable", kernels=True)
def check_depthwise_separable(entry, backend_name):
    """Depthwise then pointwise: fewer parameters and multiply-adds, same as a conv with kernel P[o,c] D[c]."""
    run = Kernels(backend_name)
    c_in, h, w = entry["input"]
    c_out, k = entry["filters"], entry["kernel"]
    out_hw = (shapes.conv_output_size(h, k), shapes.conv_output_size(w, k))
    assert shapes.depthwise_separable_params(c_in, c_out, k) == entry["expected_params"]
    assert shapes.conv2d_params(c_in, c_out, k, bias=False) == entry["standard_params"]
    macs = shapes.conv2d_macs(c_in, c_in, k, out_hw, groups=c_in) + shapes.conv2d_macs(c_in, c_out, 1, out_hw)
    assert macs == entry["expected_macs"], f"{entry['id']}: {macs} multiply-adds"
    assert shapes.conv2d_macs(c_in, c_out, k, out_hw) == entry["standard_macs"]
    rng = rng_for(entry)
    x = rng.standard_normal((1, c_in, h, w))
    depthwise, pointwise = rng.standard_normal((c_in, 1, k, k)), rng.standard_normal((c_out, c_in, 1, 1))
    y = run.conv2d(run.conv2d(x, depthwise, groups=c_in), pointwise)
    combined = pointwise[:, :, 0, 0][:, :, None, None] * depthwise[None, :, 0]
    assert_array(y, run.conv2d(x, combined), f"{entry['id']}: composition", atol=1e-8)
    assert list(y.shape[1:]) == [c_out, *out_hw]


@checker("grouped_conv", kernels=True)
def check_grouped_conv(entry, backend_name):
    """A grouped convolution is ``groups`` independent convolutions side by side: params / groups."""
    run = Kernels(backend_name)
    c_in, c_out, k, g = entry["in_channels"], entry["out_channels"], entry["kernel"], entry["groups"]
    params = shapes.conv2d_params(c_in, c_out, k, groups=g, bias=False)
    assert params == entry["expected_params"] == shapes.conv2d_params(c_in, c_out, k, bias=False) // g
    rng = rng_for(entry)
    x, w = rng.standard_normal((1, c_in, 6, 6)), rng.standard_normal((c_out, c_in // g, k, k))
    y = run.conv2d(x, w, groups=g)
    ci, co = c_in // g, c_out // g
    for i in range(g):
        alone = run.conv2d(x[:, i * ci : (i + 1) * ci], w[i * co : (i + 1) * co])
        assert_array(y[:, i * co : (i + 1) * co], alone, f"{entry['id']}: group {i}")


@checker("inverted_residual", kernels=True)
def check_inverted_residual(entry, backend_name):
    """MobileNetV2 block: 1x1 expand to tk, 3x3 depthwise stride s, linear 1x1 to k' (deck 000 table)."""
    run = Kernels(backend_name)
    k, h, w = entry["input"]
    t, s, k_out = entry["expansion"], entry["stride"], entry["out_channels"]
    rng = rng_for(entry)
    x = rng.standard_normal((1, k, h, w))
    expand = run.conv2d(x, rng.standard_normal((t * k, k, 1, 1)))
    depthwise = run.conv2d(expand, rng.standard_normal((t * k, 1, 3, 3)), stride=s, padding=1, groups=t * k)
    project = run.conv2d(depthwise, rng.standard_normal((k_out, t * k, 1, 1)))
    got = [list(a.shape[1:]) for a in (expand, depthwise, project)]
    assert got == entry["expected"], f"{entry['id']}: block shapes {got}"
    assert list(shapes.conv2d_output_shape((1, t * k, h, w), (t * k, 1, 3, 3), s, 1)[1:]) == entry["expected"][1]


@checker("dilated_conv", kernels=True)
def check_dilated_conv(entry, backend_name):
    """A 3x3 kernel with rate 2 spans 5x5 with 9 parameters: a 5x5 kernel with every second row/column removed."""
    run = Kernels(backend_name)
    w = arr(entry["kernel"])
    d, k = entry["dilation"], w.shape[0]
    extent = shapes.dilated_extent(k, d)
    assert extent == entry["expected_extent"], f"{entry['id']}: extent {extent}"
    layer = mc.nn.Conv2d(1, 1, k, dilation=d, bias=False)
    params = sum(p.data.size for p in layer.parameters())
    assert params == entry["expected_params"], f"{entry['id']}: nn.Conv2d with dilation {d} has {params} parameters"
    wide = mc.nn.Conv2d(1, 1, extent, bias=False)
    assert sum(p.data.size for p in wide.parameters()) > params, f"{entry['id']}: the {extent}x{extent} kernel is no bigger"
    side = 32  # any input: both layers see the same field, the dilated one at the 3x3's cost
    same = (1, 1, side, side)
    assert layer.output_shape(same) == wide.output_shape(same), f"{entry['id']}: same field of view, same output"
    if "expected_macs" in entry:
        macs = layer.macs(same)
        assert macs == entry["expected_macs"] == mc.nn.Conv2d(1, 1, k, bias=False).macs(
            (1, 1, side - extent + k, side - extent + k)
        ), f"{entry['id']}: {macs} multiply-adds"
        assert wide.macs(same) > macs, f"{entry['id']}: the {extent}x{extent} kernel costs no more"
    spread = np.zeros((extent, extent))
    spread[::d, ::d] = w
    image = nchw(entry["image"])
    dilated = run.conv2d(image, kernel4(w), dilation=d)
    assert_array(dilated, run.conv2d(image, kernel4(spread)), f"{entry['id']}: vs 5x5")
    assert list(dilated.shape[2:]) == entry["expected_output"]


@checker("transposed_conv", kernels=True)
def check_transposed_conv(entry, backend_name):
    """Transposed convolution: each input pixel scatters ``x[i, j] * K`` at stride S; size ``(H-1)S + F``."""
    run = Kernels(backend_name)
    x, k, s = arr(entry["input"]), arr(entry["kernel"]), entry.get("stride", 1)
    side = shapes.conv_transpose_output_size(x.shape[0], k.shape[0], s)
    assert [side, side] == list(arr(entry["expected"]).shape), f"{entry['id']}: size {side}"
    # It is the adjoint of the convolution: the input gradient of conv2d with the same kernel and stride.
    dx, _, _ = run.conv2d_grad(np.zeros((1, 1, side, side)), kernel4(k), nchw(x), stride=s)
    assert_array(dx[0, 0], entry["expected"], f"{entry['id']}: on {backend_name}")


@checker("frames_as_channels", kernels=True)
def check_frames_as_channels(entry, backend_name):
    """2-D convolution over several frames stacked as channels gives one image: time is gone."""
    run = Kernels(backend_name)
    frames, (h, w), k = entry["frames"], entry["hw"], entry["kernel"]
    rng = rng_for(entry)
    y = run.conv2d(rng.standard_normal((1, frames, h, w)), rng.standard_normal((1, frames, k, k)))
    assert list(y.shape[1:]) == entry["expected"]


@checker("conv3d_by_frames", kernels=True)
def check_conv3d_by_frames(entry, backend_name):
    """3-D convolution keeps a time axis: ``y[t] = sum_tau conv2d(x[t + tau], w[tau])``, ``L - d + 1`` frames."""
    run = Kernels(backend_name)
    frames, (h, w) = entry["frames"], entry["hw"]
    d, k, _ = entry["kernel"]
    rng = rng_for(entry)
    x, weight = rng.standard_normal((frames, h, w)), rng.standard_normal((d, k, k))
    out_frames = shapes.conv_output_size(frames, d)
    y = np.stack(
        [
            sum(run.conv2d(nchw(x[t + tau]), kernel4(weight[tau]))[0, 0] for tau in range(d))
            for t in range(out_frames)
        ]
    )
    windows = np.lib.stride_tricks.sliding_window_view(x, (d, k, k))
    assert_array(y, np.einsum("thwabc,abc->thw", windows, weight), f"{entry['id']}: direct 3-D sum", atol=1e-8)
    assert list(y.shape) == entry["expected"]


# ============================================================= blocks of the zoo
def on_backend(module, backend_name):
    """``module`` with its weights where ``backend_name`` computes (the GPU for "cupy")."""
    return module.to("gpu" if backend_name == "cupy" else "cpu")


def zoo_block(entry, backend_name="numpy"):
    """The block named by ``block`` (a class of ``minicnn.models``), built with ``args``, float64 weights drawn."""
    cls = getattr(mc.models, entry["block"], None)
    assert isinstance(cls, type), f"{entry['id']}: minicnn.models has no block {entry['block']!r}"
    return on_backend(cls(**entry.get("args", {}), lazy=False, rng=0, dtype=np.float64).eval(), backend_name)


def run_nodes(block, names, x):
    """Apply the block's layers ``names`` one after the other to ``x``: a branch of the block, run by hand."""
    for name in names:
        x = getattr(block, name)(x)
    return x


@checker("residual_block", kernels=True)
def check_residual_block(entry, backend_name):
    """A residual block adds its input to its branch: ``y = F(x) + x`` (then a ReLU, if ``final = "relu"``).

    The branch ``F`` is the block's own layers named in ``branch``, run one after the other on
    ``x``; the block's output minus its input must equal it (where the final ReLU lets it through).
    ``hidden`` checks the branch's width against the block's: wider inside for an inverted
    bottleneck, narrower for a classic one.
    """
    block = zoo_block(entry, backend_name)
    x = rng_for(entry).standard_normal((2, *entry["input"]))
    with mc.use_backend(backend_name):
        dev = Kernels(backend_name)._to_device
        y = host(block(dev(x)))
        residual = host(run_nodes(block, entry["branch"], dev(x)))
    assert y.shape == x.shape, f"{entry['id']}: the block changes the shape {x.shape} -> {y.shape}"
    if entry.get("final") == "relu":
        assert_array(y, np.maximum(residual + x, 0), f"{entry['id']}: y = ReLU(F(x) + x)", atol=1e-9)
        passed = y > 0
        assert passed.mean() > 0.25, f"{entry['id']}: the example lets too little through the ReLU"
        np.testing.assert_allclose((y - x)[passed], residual[passed], rtol=1e-9, atol=1e-9,
                                   err_msg=f"{entry['id']}: y - x = F(x) where the ReLU passes")
    else:
        assert_array(y - x, residual, f"{entry['id']}: y - x = F(x)", atol=1e-9)
    assert np.abs(residual).max() > 1e-3, f"{entry['id']}: the branch is zero, the check would be empty"
    if "hidden" in entry:
        widest = max(getattr(block, name).out_channels for name in entry["branch"] if isinstance(getattr(block, name), mc.nn.Conv2d))
        narrowest = min(getattr(block, name).out_channels for name in entry["branch"] if isinstance(getattr(block, name), mc.nn.Conv2d))
        inside = widest if entry["hidden"] > entry["input"][0] else narrowest
        assert inside == entry["hidden"], f"{entry['id']}: the branch's inner width is {inside}"


@checker("plain_recurrence", kernels=True)
def check_plain_recurrence(entry, backend_name):
    """A traditional network: ``x_l = H_l(x_{l-1})``, each layer sees only the one before (deck 002, DenseNet).

    ``H_l`` is ``nn.Conv2d`` + ``nn.ReLU``; a ``Sequential`` of ``layers`` of them gives the same as
    feeding each unit the previous unit's output, and unit ``l`` depends on no earlier ``x``.
    """
    c, side = entry["channels"], entry["side"]
    rng = rng_for(entry)
    units = [mc.graph.Sequential(mc.nn.Conv2d(c, c, 3, padding=1, rng=i, dtype=np.float64), mc.nn.ReLU())
             for i in range(entry["layers"])]
    net = on_backend(mc.graph.Sequential(*units), backend_name)
    x = rng.standard_normal((2, c, side, side))
    with mc.use_backend(backend_name):
        dev = Kernels(backend_name)._to_device
        xs = [dev(x)]
        for unit in units:
            xs.append(unit(xs[-1]))
        assert_array(host(net(dev(x))), host(xs[-1]), f"{entry['id']}: Sequential = H_L(... H_1(x_0))")
    assert len(xs) == entry["layers"] + 1 and host(xs[-1]).shape[1] == entry["expected_channels"]


@checker("block_composition", kernels=True)
def check_block_composition(entry, backend_name):
    """A block is the slide's layers in the slide's order: its nodes by type, and running it = running them."""
    block = zoo_block(entry, backend_name)
    layers = [(node.name, type(node.module).__name__) for node in block.nodes if node.module is not None]
    assert [kind for _, kind in layers] == entry["expected_types"], f"{entry['id']}: {entry['block']} is {layers}"
    x = rng_for(entry).standard_normal((2, *entry["input"]))
    with mc.use_backend(backend_name):
        dev = Kernels(backend_name)._to_device
        assert_array(host(block(dev(x))), host(run_nodes(block, [name for name, _ in layers], dev(x))),
                     f"{entry['id']}: the block = its layers in order", atol=1e-9)
    for name, size in entry.get("kernels", {}).items():
        assert getattr(block, name).kernel_size == (size, size), f"{entry['id']}: {name} is {getattr(block, name).kernel_size}"
    if "expected_output" in entry:
        assert list(block.output_shape((1, *entry["input"]))[1:]) == entry["expected_output"], f"{entry['id']}: output shape"


@checker("branch_concat", kernels=True)
def check_branch_concat(entry, backend_name):
    """Parallel branches whose outputs are concatenated: the block's output = concat of each branch run alone."""
    block = zoo_block(entry, backend_name)
    x = rng_for(entry).standard_normal((2, *entry["input"]))
    with mc.use_backend(backend_name):
        dev = Kernels(backend_name)._to_device
        y = host(block(dev(x)))
        parts = [host(run_nodes(block, branch, dev(x))) for branch in entry["branches"]]
    assert_array(y, np.concatenate(parts, axis=1), f"{entry['id']}: output = [branch_1, ..., branch_n]", atol=1e-9)
    assert [p.shape[1] for p in parts] == entry["branch_channels"], f"{entry['id']}: branch widths"
    sizes = {getattr(block, name).kernel_size[0] for branch in entry["branches"] for name in branch
             if isinstance(getattr(block, name), mc.nn.Conv2d)}
    assert sorted(sizes) == entry["kernel_sizes"], f"{entry['id']}: filter sizes {sorted(sizes)}"


@checker("channel_shuffle", kernels=True)
def check_channel_shuffle(entry, backend_name):
    """ShuffleNet's shuffle: reshape the channels to (g, n), transpose, flatten; backward undoes it."""
    g, order = entry["groups"], entry["expected_order"]
    c = len(order)
    x = np.broadcast_to(np.arange(c, dtype=np.float64)[None, :, None, None], (1, c, 2, 3)).copy()
    shuffle = mc.nn.ChannelShuffle(g)
    y = shuffle(x)
    assert y[0, :, 0, 0].astype(int).tolist() == order, f"{entry['id']}: channel order {y[0, :, 0, 0].tolist()}"
    assert_array(shuffle.backward(y), x, f"{entry['id']}: backward is the inverse permutation")
    # Each group of the next grouped convolution now sees one channel of every earlier group.
    per_group = c // g
    for i in range(g):
        seen = {int(ch) // per_group for ch in y[0, i * per_group : (i + 1) * per_group, 0, 0]}
        assert seen == set(range(g)), f"{entry['id']}: group {i} sees only groups {sorted(seen)}"


@checker("layer_sequence")
def check_layer_sequence(entry):
    """Layer types of a zoo network, in order: what follows each layer of a kind, named layers, feature part then classifier."""
    model = zoo_model(entry, **entry.get("model_args", {}))
    names = [name for name, _ in model.named_children()]
    kinds = [type(model[name]).__name__ for name in names]
    for kind, nxt in entry.get("follow", {}).items():
        positions = [i for i, k in enumerate(kinds) if k == kind]
        assert positions, f"{entry['id']}: {entry['model']} has no {kind}"
        after = [kinds[i + 1] if i + 1 < len(kinds) else None for i in positions]
        assert all(a == nxt for a in after), f"{entry['id']}: after each {kind} of {entry['model']}: {after}"
    for name, kind in entry.get("named", {}).items():
        assert name in names and kinds[names.index(name)] == kind, f"{entry['id']}: {name} is not a {kind}"
    if entry.get("features_then_classifier"):
        first_fc = kinds.index("Linear")
        assert first_fc > 0 and "Conv2d" in kinds[:first_fc], f"{entry['id']}: no feature extractor before the classifier"
        late = [k for k in kinds[first_fc:] if k in ("Conv2d", "MaxPool2d", "AvgPool2d")]
        assert not late, f"{entry['id']}: {late} after the first fully connected layer"
        assert kinds[-1] == "Linear", f"{entry['id']}: the output layer is a {kinds[-1]}"
    if "input" in entry:
        assert list(model.input_shape) == entry["input"], f"{entry['id']}: input {model.input_shape}"
        if "classes" in entry:
            assert model.output_shapes()[-1] == (entry["classes"],), f"{entry['id']}: {model.output_shapes()[-1]} outputs"


@checker("dropout")
def check_dropout(entry):
    """Dropout zeroes each activation with probability ``p`` in training; the dropped ones get no gradient; eval keeps all."""
    p = entry["p"]
    layer = mc.nn.Dropout(p, rng=0)
    x = np.ones((200, 500))
    y = layer(x)
    dropped = y == 0
    assert abs(dropped.mean() - p) < entry["abs_tol"], f"{entry['id']}: {dropped.mean():.4f} of the units dropped"
    dy = np.ones_like(x)
    dx = layer.backward(dy)
    assert not dx[dropped].any(), f"{entry['id']}: a dropped unit received a gradient"
    assert (dx[~dropped] > 0).all() and (y[~dropped] > 0).all()
    layer.eval()
    assert_array(layer(x), x, f"{entry['id']}: evaluation keeps every unit")


@checker("lr_schedule")
def check_lr_schedule(entry):
    """The learning rate decreases each epoch: ``mc.optim`` schedules set ``optimizer.lr`` epoch by epoch."""
    param = mc.nn.Parameter(np.zeros(3))
    opt = mc.optim.SGD([param], lr=entry["lr"])
    kind = entry["schedule"]
    if kind == "step":
        schedule = mc.optim.StepLR(opt, step_size=1, gamma=entry["gamma"])
    else:
        schedule = mc.optim.CosineLR(opt, epochs=len(entry["expected"]))
    rates = []
    for _ in entry["expected"]:
        param.grad = np.ones(3)
        before = param.data.copy()
        opt.step()
        np.testing.assert_allclose(before - param.data, opt.lr * np.ones(3), rtol=1e-12, err_msg="theta := theta - eta grad")
        rates.append(schedule.step())
    assert all(b < a for a, b in zip([entry["lr"], *rates], rates)), f"{entry['id']}: rates {rates} do not decrease"
    np.testing.assert_allclose(rates, entry["expected"], rtol=1e-12, atol=1e-15, err_msg=f"{entry['id']}: rates")


@checker("model_scaling")
def check_model_scaling(entry):
    """EfficientNet B0..B7 by ``efficientnet(phi)``: input ``round(224 r)``, ``r = gamma^phi``, cost growing with phi."""
    gamma = entry["gamma"]
    macs, sides = [], []
    for phi in entry["phis"]:
        model = mc.models.efficientnet(phi)
        sides.append(model.input_shape[1])
        macs.append(model.multiply_adds())
    assert sides == [round(entry["base_resolution"] * gamma**phi) for phi in entry["phis"]] == entry["expected_resolutions"]
    assert all(b > a for a, b in zip(macs, macs[1:])), f"{entry['id']}: multiply-adds {macs} do not grow"
    base = mc.models.efficientnet_b0()
    assert base.num_parameters() == mc.models.efficientnet(0).num_parameters(), "B0 is phi = 0"
    assert base.input_shape[1] == entry["expected_resolutions"][0]


# ==================================================================== whole networks
def _shortcut_macs(model):
    """Multiply-adds of the projection shortcuts (1x1 conv beside a residual block), each on its block's input."""
    names = list(model.named_output_shapes())
    shape, total, count = (1, *model.input_shape), 0, 0
    for name in names:
        layer = model[name]
        shortcut = getattr(layer, "shortcut", None)
        if isinstance(shortcut, mc.nn.Conv2d):
            total += shortcut.macs(shape)
            count += 1
        shape = layer.output_shape(shape)
    return total, count


@checker("model_macs")
def check_model_macs(entry):
    """Multiply-adds ("FLOPs") of a zoo network on one image, every layer counted, projection shortcuts included."""
    model = zoo_model(entry)
    macs = model.multiply_adds()
    if "projection_shortcuts" in entry:
        projections, count = _shortcut_macs(model)
        assert count == entry["projection_shortcuts"], f"{entry['id']}: {count} projection shortcuts"
        assert projections == entry["expected_projection_macs"], f"{entry['id']}: the projections do {projections:,}"
    if "expected_layers" in entry:
        assert model.depth() == entry["expected_layers"], f"{entry['id']}: {model.depth()} weight layers"
    assert_number(entry, "macs", macs, entry["expected_macs"])


# ================================================================== architectures
@checker("architecture")
def check_architecture(entry):
    """Whole-network claims are tested with the model zoo; here only their form is checked."""
    raise AssertionError("architecture entries are not value-checked in this file")


# ========================================================================= tests
VALUE_ENTRIES = [e for e in ENTRIES if e.get("status") != MODEL_ZOO]
PLAIN = [e for e in VALUE_ENTRIES if e["check"] in CHECKERS and not CHECKERS[e["check"]][1]]
KERNEL = [e for e in VALUE_ENTRIES if e["check"] in CHECKERS and CHECKERS[e["check"]][1]]
ERRATA = [e for e in ENTRIES if e.get("erratum")]
MODELS = [e for e in ENTRIES if e.get("status") == MODEL_ZOO]


def ids(entries):
    return [e["id"] for e in entries]


@pytest.mark.parametrize("entry", PLAIN, ids=ids(PLAIN))
def test_claim(entry):
    CHECKERS[entry["check"]][0](entry)


@pytest.mark.parametrize("entry", KERNEL, ids=ids(KERNEL))
def test_claim_on_backend(entry, backend_name):
    CHECKERS[entry["check"]][0](entry, backend_name)


@pytest.mark.parametrize("entry", ERRATA, ids=ids(ERRATA))
def test_erratum_slide_version_fails(entry):
    """The corrected entry passes (above); fed the slide's version, the same checker must fail."""
    fn, kernels = CHECKERS[entry["check"]]
    slide_version = with_variant(entry, entry["slide_variant"])
    with pytest.raises(AssertionError, match=entry["fails_with"]):
        fn(slide_version, "numpy") if kernels else fn(slide_version)


@pytest.mark.parametrize("entry", MODELS, ids=ids(MODELS))
def test_model_zoo_entry_is_well_formed(entry):
    numbers = values(entry)
    assert numbers, f"{entry['id']}: no values"
    for key, value in numbers.items():
        assert is_numeric(value), f"{entry['id']}: value {key!r} = {value!r} is not numeric"


def test_every_check_has_a_checker():
    missing = sorted({e["check"] for e in ENTRIES} - set(CHECKERS))
    assert not missing, f"entries name checkers that do not exist: {missing}"


def test_every_checker_is_used():
    unused = sorted(set(CHECKERS) - {e["check"] for e in ENTRIES})
    assert not unused, f"checkers no entry uses: {unused}"


def test_ids_are_unique():
    seen = ids(ENTRIES)
    assert len(seen) == len(set(seen)), sorted({i for i in seen if seen.count(i) > 1})


def test_enough_entries():
    assert len(ENTRIES) >= 50, f"only {len(ENTRIES)} entries"


def test_every_deck_is_cited():
    cited = {e["deck"] for e in ENTRIES}
    assert cited == set(DECKS), f"decks without entries: {sorted(set(DECKS) - cited)}"
    assert sorted(p.name for p in SPEC_DIR.glob("*.toml")) == sorted(DECKS.values())


def test_readme_lists_every_erratum():
    readme = (SPEC_DIR / "README.md").read_text(encoding="utf-8")
    errata_section = readme.split("\n## Errata\n", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\|\s*`([a-z0-9_]+)`\s*\|", errata_section, flags=re.MULTILINE))
    assert table == set(ids(ERRATA)), (
        f"errata table of spec/README.md: missing {sorted(set(ids(ERRATA)) - table)}, "
        f"extra {sorted(table - set(ids(ERRATA)))}"
    )


def test_readme_names_every_checker():
    readme = (SPEC_DIR / "README.md").read_text(encoding="utf-8")
    missing = [name for name in CHECKERS if f"`{name}`" not in readme]
    assert not missing, f"spec/README.md does not describe checkers {missing}"


def test_errata_numbers_differ():
    for entry in ERRATA:
        slide, correct = entry["slide_value"], entry["correct_value"]
        if isinstance(slide, (int, float)) and isinstance(correct, (int, float)):
            assert not math.isclose(slide, correct), entry["id"]
        else:
            assert slide != correct, entry["id"]


# ------------------------------------------------------------- the loader itself
_GOOD_FILE = """deck = "003_7c437a475fa69432.txt"
title = "Capas convolucionales"

[[entry]]
id = "one_claim"
deck = "003_7c437a475fa69432.txt"
slide = "CAPA CONVOLUCIONAL"
claim = "A claim."
check = "param_count"
code = ["minicnn.shapes.conv2d_params"]
expected = 1
"""


@pytest.mark.parametrize(
    "old, new, message",
    [
        ('claim = "A claim."\n', "", "missing required field 'claim'"),
        ('id = "one_claim"', 'id = "OneClaim"', "snake_case"),
        ('expected = 1\n', 'expected = 1\nkernel = 3\n', None),  # any further value field is fine
        ('expected = 1\n', 'expected = 1\nstatus = "model-zoo"\n', "go together"),
        ('expected = 1\n', 'expected = 1\nerratum = true\nslide_value = 2\ncorrect_value = 1\nwhy = "w"\n', "slide_variant"),
        ('expected = 1\n', 'expected = 1\nslide_value = 2\n', "belongs to errata only"),
        ('deck = "003_7c437a475fa69432.txt"\nslide', 'deck = "002_35ce60e4ae78ad9e.txt"\nslide', "differs from the file's deck"),
        ('check = "param_count"\ncode = ["minicnn.shapes.conv2d_params"]\nexpected = 1\n',
         'check = "param_count"\ncode = ["minicnn.shapes.conv2d_params"]\n', "no values to check"),
        ('code = ["minicnn.shapes.conv2d_params"]\n', '', "code must be a non-empty list"),
    ],
)
def test_loader_rejects_malformed_entries(tmp_path, old, new, message):
    assert old in _GOOD_FILE
    (tmp_path / "capas_convolucionales.toml").write_text(_GOOD_FILE.replace(old, new, 1), encoding="utf-8")
    if message is None:
        assert [e["id"] for e in load_spec(tmp_path)] == ["one_claim"]
    else:
        with pytest.raises(SpecError, match=re.escape(message)):
            load_spec(tmp_path)


def test_loader_rejects_duplicate_ids_and_misplaced_decks(tmp_path):
    (tmp_path / "capas_convolucionales.toml").write_text(_GOOD_FILE, encoding="utf-8")
    (tmp_path / "variantes.toml").write_text(_GOOD_FILE.replace("003_7c437a475fa69432", "000_5f24bd8423292174"), encoding="utf-8")
    with pytest.raises(SpecError, match="already used"):
        load_spec(tmp_path)
    wrong_name = tmp_path / "elsewhere"
    wrong_name.mkdir()
    (wrong_name / "variantes.toml").write_text(_GOOD_FILE, encoding="utf-8")
    with pytest.raises(SpecError, match="belongs in spec/capas_convolucionales.toml"):
        load_spec(wrong_name)
