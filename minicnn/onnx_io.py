"""Networks in and out as ONNX files: ``export(net, path, input_shape)`` and ``load(path)`` (also ``mc.onnx``).

ONNX (https://onnx.ai) describes a network as a graph of standard
operators (``Conv``, ``MaxPool``, ``Gemm``, ``Relu``, ...), each with
attributes and weight tensors, so that another runtime (onnxruntime,
PyTorch, TensorRT) can run a model minicnn trained, and minicnn can run a
model trained elsewhere. Each minicnn layer maps to one operator or a few:

===============================  =============================================
minicnn                          ONNX (opset ``OPSET``)
===============================  =============================================
Conv2d (groups, dilation,        Conv (``pads`` [top, left, bottom, right])
"same", four-sided padding)
ConvTranspose2d                  ConvTranspose
MaxPool2d (dilation, ceil_mode)  MaxPool
AvgPool2d (count_include_pad,    AveragePool (``divisor_override`` has none)
ceil_mode)
GlobalAvgPool2d                  GlobalAveragePool
Linear                           Gemm (``transB=1``); imported also from MatMul (+ Add)
ReLU, Sigmoid, Tanh, LeakyReLU   Relu, Sigmoid, Tanh, LeakyRelu
ReLU6, HardSigmoid, HardSwish    Clip(0, 6), HardSigmoid(1/6, 1/2), HardSwish
SiLU, GELU (exact, tanh)         Sigmoid + Mul; Erf or Tanh with Mul and Add (tanh: export only)
Softmax, LogSoftmax (dim)        Softmax, LogSoftmax (axis)
BatchNorm2d (evaluation)         BatchNormalization
LocalResponseNorm                LRN (odd sizes: for even ones the windows differ)
Concat, Add (broadcasting)       Concat, Add (Sum for more than two terms)
Flatten(start_dim, end_dim)      Flatten(axis=1), else Reshape
Pad / ZeroPad2d / ...            Pad (constant, reflect, edge; ``circular`` has none)
Dropout, Identity                Dropout, Identity
ChannelShuffle                   Reshape, Transpose, Reshape
LayerNorm2d, LayerScale          Transpose, LayerNormalization, Transpose; Mul by (1, C, 1, 1)
SqueezeExcitation                GlobalAveragePool, Conv, ..., Sigmoid, Mul (export only)
===============================  =============================================

Where the two disagree there is no mapping: PyTorch and minicnn drop a last
``ceil_mode`` window that would start in the padding, ONNX keeps it, so such
a pooling is refused both ways (the sizes are compared).

The exporter and the importer are tables with one small function per layer
or operator (``EXPORTERS``, ``IMPORTERS``). A layer with no entry raises a
``ValueError`` naming it; an operator or attribute the importer does not
know raises one naming the node, the operator and the attribute. Both need
the optional ``onnx`` package (``pip install minicnn[onnx]``), imported only
when called; nothing else in minicnn imports it.
"""

from __future__ import annotations

import importlib
import math
import re

import numpy as np

from . import nn, shapes
from .arrays import to_host
from .graph import Graph, Sequential
from .nn import variants

__all__ = ["export", "load", "load_spec", "OPSET", "IR_VERSION", "EXPORTERS", "IMPORTERS", "require"]

#: The operator set the exporter writes: 17 (ONNX 1.12, 2022) is read by every onnxruntime since 1.12.
OPSET = 17
#: The file format version written with it: IR 8 is the one of opset 17 (onnxruntime refuses newer IRs than it knows).
IR_VERSION = 8
_EXTRA = "pip install minicnn[onnx]"


def require(package="onnx"):
    """Import an optional package (``onnx``, ``onnxruntime``), or raise ``ImportError`` naming the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(f"minicnn.onnx needs the {package!r} package, which is not installed here ({exc}); "
                          f"install it with `{_EXTRA}`") from None


# =========================================================================== export
class _Writer:
    """The ONNX graph under construction: nodes, weight tensors (initializers) and unique tensor names."""

    def __init__(self, onnx):
        self.onnx = onnx
        self.nodes, self.initializers, self.used = [], [], set()

    def name(self, hint):
        base = re.sub(r"[^A-Za-z0-9_./]", "_", hint) or "t"
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def constant(self, hint, array, dtype=np.float32):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(to_host(array), dtype, order="C"), name))
        return name

    def op(self, op_type, inputs, hint, **attrs):
        out = self.name(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


def _weights(layer, path):
    """The layer's parameters as host arrays, refusing shape-only (lazy) ones and dtypes other than float32."""
    arrays = {}
    for name, param in layer.named_parameters():
        if "." in name:
            continue
        if param.is_shape_only:
            raise ValueError(f"onnx export: layer {path!r} ({type(layer).__name__}) has shape-only weights; "
                             "call net.materialize(seed) or load weights first")
        if param.data.dtype != np.float32:
            raise ValueError(f"onnx export: layer {path!r} has {param.data.dtype} weights; ONNX files here are "
                             "float32: convert with net.to(dtype=numpy.float32)")
        arrays[name] = to_host(param.data)
    return arrays


def _pads(padding):
    """minicnn's ``(p_h, p_w)`` or F.pad's ``(left, right, top, bottom)`` as ONNX's ``[top, left, bottom, right]``."""
    (top, left), (bottom, right) = shapes.pad_pairs(padding)
    return [top, left, bottom, right]


def _conv_pads(layer):
    """A convolution's ``pads``: its ``(h, w)`` padding plus the extra F.pad amounts of ``"same"`` or four ints."""
    (ph, pw), extra = shapes.conv2d_padding(layer.padding, layer.kernel_size, layer.stride, layer.dilation)
    left, right, top, bottom = extra or (0, 0, 0, 0)
    return [ph + top, pw + left, ph + bottom, pw + right]


def _weighted_inputs(w, layer, x, path):
    """``[x, weight]`` (and the bias, where the layer has one) as the inputs of a Conv or ConvTranspose node."""
    p = _weights(layer, path)
    inputs = [x, w.constant(f"{path}.weight", p["weight"])]
    if "bias" in p:
        inputs.append(w.constant(f"{path}.bias", p["bias"]))
    return inputs


def _export_conv(w, layer, x, path):
    return w.op("Conv", _weighted_inputs(w, layer, x, path), path, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=_conv_pads(layer), dilations=list(layer.dilation), group=layer.groups)


def _export_conv_transpose(w, layer, x, path):
    return w.op("ConvTranspose", _weighted_inputs(w, layer, x, path), path, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                pads=_pads(layer.padding), dilations=list(layer.dilation), group=layer.groups,
                output_padding=list(layer.output_padding))


def onnx_pool_size(size, kernel, stride, begin, end, dilation, ceil_mode):
    """ONNX's pooling output size: ``floor`` or ``ceil((H + pads - D*(F-1) - 1)/S) + 1``.

    PyTorch (and minicnn) drop a last ``ceil_mode`` window that would start in
    the right padding; ONNX keeps it. Where the two differ, the pooling has
    no ONNX equivalent.
    """
    span = size + begin + end - dilation * (kernel - 1) - 1
    return (-(-span // stride) if ceil_mode else span // stride) + 1


def _check_pool_sizes(layer, shape, path, where="onnx export"):
    pads = _pads(layer.padding)
    dilation = getattr(layer, "dilation", (1, 1))
    theirs = [onnx_pool_size(n, k, s, pads[i], pads[i + 2], d, layer.ceil_mode)
              for i, (n, k, s, d) in enumerate(zip(shape[2:], layer.kernel_size, layer.stride, dilation))]
    ours = list(layer.output_shape(shape)[2:])
    if theirs != ours:
        raise ValueError(f"{where}: layer {path!r} ({type(layer).__name__}, ceil_mode) gives {ours} windows on a "
                         f"{list(shape[2:])} map, ONNX's ceil_mode {theirs} (PyTorch and minicnn drop a last window "
                         "that starts in the padding, ONNX keeps it)")


def _export_pool(w, layer, x, path, shape):
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.stride), "pads": _pads(layer.padding),
             "ceil_mode": int(layer.ceil_mode)}
    if layer.ceil_mode:
        _check_pool_sizes(layer, shape, path)
    if isinstance(layer, nn.MaxPool2d):
        return w.op("MaxPool", [x], path, dilations=list(layer.dilation), **attrs)
    if layer.divisor_override is not None:
        raise ValueError(f"onnx export: layer {path!r} (AvgPool2d) has divisor_override={layer.divisor_override}, "
                         "which ONNX's AveragePool cannot express")
    return w.op("AveragePool", [x], path, count_include_pad=int(layer.count_include_pad), **attrs)


def _export_linear(w, layer, x, path):
    p = _weights(layer, path)
    inputs = [x, w.constant(f"{path}.weight", p["weight"])]
    if "bias" in p:
        inputs.append(w.constant(f"{path}.bias", p["bias"]))
    return w.op("Gemm", inputs, path, transB=1)


def _export_batch_norm(w, layer, x, path):
    p = _weights(layer, path)
    stats = [w.constant(f"{path}.{k}", v) for k, v in
             (("weight", p["weight"]), ("bias", p["bias"]), ("running_mean", layer.running_mean),
              ("running_var", layer.running_var))]
    return w.op("BatchNormalization", [x, *stats], path, epsilon=float(layer.eps))


def _export_lrn(w, layer, x, path):
    if layer.size % 2 == 0:
        raise ValueError(
            f"onnx export: layer {path!r} (LocalResponseNorm) has an even size {layer.size}: minicnn (and PyTorch) sum "
            f"channels c-{layer.size // 2}..c+{(layer.size - 1) // 2}, ONNX's LRN c-{(layer.size - 1) // 2}.."
            f"c+{layer.size // 2}, so no ONNX LRN computes it"
        )
    return w.op("LRN", [x], path, size=layer.size, alpha=float(layer.alpha), beta=float(layer.beta),
                bias=float(layer.k))


def _export_relu6(w, layer, x, path):
    return w.op("Clip", [x, w.constant(f"{path}.min", 0.0), w.constant(f"{path}.max", 6.0)], path)


def _export_silu(w, layer, x, path):
    return w.op("Mul", [x, w.op("Sigmoid", [x], f"{path}.sigmoid")], path)


def _export_gelu(w, layer, x, path):
    """``x (1 + erf(x/√2)) / 2``, or ``x (1 + tanh(√(2/π)(x + 0.044715 x³))) / 2``: opset 17 has no Gelu (opset 20 has)."""
    if getattr(layer, "approximate", "none") == "tanh":
        cube = w.op("Mul", [w.op("Mul", [x, x], f"{path}.square"), x], f"{path}.cube")
        inner = w.op("Add", [x, w.op("Mul", [cube, w.constant(f"{path}.c", 0.044715)], f"{path}.cubic")], f"{path}.sum")
        scaled = w.op("Mul", [inner, w.constant(f"{path}.k", math.sqrt(2.0 / math.pi))], f"{path}.scaled")
        curve = w.op("Tanh", [scaled], f"{path}.tanh")
    else:
        scaled = w.op("Div", [x, w.constant(f"{path}.sqrt2", math.sqrt(2.0))], f"{path}.div")
        curve = w.op("Erf", [scaled], f"{path}.erf")
    one_plus = w.op("Add", [curve, w.constant(f"{path}.one", 1.0)], f"{path}.add")
    return w.op("Mul", [w.op("Mul", [x, one_plus], f"{path}.mul"), w.constant(f"{path}.half", 0.5)], path)


def _export_pad(w, layer, x, path, shape):
    """F.pad's ``(before, after)`` pairs, last axis first, as ONNX's ``[begin of every axis..., end of every axis...]``."""
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}
    if layer.mode not in modes:
        raise ValueError(f"onnx export: layer {path!r} (Pad) has mode {layer.mode!r}, which opset {OPSET}'s Pad "
                         f"does not have (it has {', '.join(modes)})")
    begin, end = [0] * len(shape), [0] * len(shape)
    for k in range(len(layer.pad) // 2):
        begin[-1 - k], end[-1 - k] = layer.pad[2 * k], layer.pad[2 * k + 1]
    inputs = [x, w.constant(f"{path}.pads", begin + end, np.int64)]
    if layer.mode == "constant":
        inputs.append(w.constant(f"{path}.value", layer.value))
    return w.op("Pad", inputs, path, mode=modes[layer.mode])


def _export_flatten(w, layer, x, path, shape):
    """``Flatten(axis=1)`` for torch's default; any other span of axes is a Reshape (ONNX's Flatten always gives 2-D)."""
    start, end = layer.start_dim % len(shape), layer.end_dim % len(shape)
    if (start, end) == (1, len(shape) - 1):
        return w.op("Flatten", [x], path, axis=1)
    out = layer.output_shape(shape)
    target = ([0] if start > 0 else [-1]) + list(out[1:])  # 0 keeps the batch size, -1 absorbs it
    return w.op("Reshape", [x, w.constant(f"{path}.shape", target, np.int64)], path)


def _export_layer_norm(w, layer, x, path):
    """LayerNorm2d normalises over the channels of each pixel: channels last, LayerNormalization on the last axis, back."""
    p = _weights(layer, path)
    last = w.op("Transpose", [x], f"{path}.channels_last", perm=[0, 2, 3, 1])
    norm = w.op("LayerNormalization", [last, w.constant(f"{path}.weight", p["weight"]),
                                       w.constant(f"{path}.bias", p["bias"])], f"{path}.norm", axis=-1,
                epsilon=float(layer.eps))
    return w.op("Transpose", [norm], path, perm=[0, 3, 1, 2])


def _export_layer_scale(w, layer, x, path):
    return w.op("Mul", [x, w.constant(f"{path}.weight", _weights(layer, path)["weight"].reshape(1, -1, 1, 1))], path)


def _export_dropout(w, layer, x, path):
    return w.op("Dropout", [x, w.constant(f"{path}.ratio", layer.p)], path)  # the identity at inference


def _export_channel_shuffle(w, layer, x, path, shape):
    _, c, h, wd = shape
    g = layer.groups
    split = w.op("Reshape", [x, w.constant(f"{path}.split", [-1, g, c // g, h, wd], np.int64)], f"{path}.split")
    swapped = w.op("Transpose", [split], f"{path}.transpose", perm=[0, 2, 1, 3, 4])
    return w.op("Reshape", [swapped, w.constant(f"{path}.join", [-1, c, h, wd], np.int64)], path)


def _export_squeeze_excitation(w, layer, x, path, shape):
    s = w.op("GlobalAveragePool", [x], f"{path}.pool")
    s = _export_conv(w, layer.fc1, s, f"{path}.fc1")
    s = _export_module(w, layer.activation, [s], [(shape[0], layer.squeeze_channels, 1, 1)], f"{path}.activation")
    s = w.op("Sigmoid", [_export_conv(w, layer.fc2, s, f"{path}.fc2")], f"{path}.gate")
    return w.op("Mul", [x, s], path)


def _simple(op_type, **attrs):
    def export(w, layer, x, path):
        return w.op(op_type, [x], path, **attrs)

    return export


#: minicnn layer class -> ``f(writer, layer, input_name, path[, input_shape]) -> output_name``.
EXPORTERS = {
    nn.Conv2d: _export_conv,
    variants.ConvTranspose2d: _export_conv_transpose,
    nn.GlobalAvgPool2d: _simple("GlobalAveragePool"),
    nn.Linear: _export_linear,
    nn.ReLU: _simple("Relu"),
    nn.Sigmoid: _simple("Sigmoid"),
    nn.Tanh: _simple("Tanh"),
    variants.ReLU6: _export_relu6,
    variants.SiLU: _export_silu,
    variants.GELU: _export_gelu,
    variants.HardSwish: _simple("HardSwish"),
    nn.BatchNorm2d: _export_batch_norm,
    variants.LocalResponseNorm: _export_lrn,
    nn.Dropout: _export_dropout,
    nn.Identity: _simple("Identity"),
    variants.LayerNorm2d: _export_layer_norm,
    variants.LayerScale: _export_layer_scale,
    variants.LeakyReLU: lambda w, layer, x, path: w.op("LeakyRelu", [x], path, alpha=layer.negative_slope),
    variants.HardSigmoid: _simple("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    variants.Softmax: lambda w, layer, x, path: w.op("Softmax", [x], path, axis=layer.dim),
    variants.LogSoftmax: lambda w, layer, x, path: w.op("LogSoftmax", [x], path, axis=layer.dim),
}
#: Exporters that also need the input's shape (batch 1).
SHAPED_EXPORTERS = {
    nn.MaxPool2d: _export_pool,
    nn.AvgPool2d: _export_pool,
    nn.Flatten: _export_flatten,
    variants.Pad: _export_pad,
    variants.ChannelShuffle: _export_channel_shuffle,
    variants.SqueezeExcitation: _export_squeeze_excitation,
}


def _lookup(table, layer):
    return next((table[cls] for cls in type(layer).__mro__ if cls in table), None)


def _export_module(w, module, inputs, shapes, path):
    """Append ``module`` applied to the tensors ``inputs`` (of per-batch-1 ``shapes``); returns its output name(s)."""
    if isinstance(module, Graph):
        return _export_graph(w, module, inputs, shapes, path)
    if isinstance(module, Sequential):
        x, shape = inputs[0], shapes[0]
        for name, layer in module._layers:
            x = _export_module(w, layer, [x], [shape], f"{path}.{name}" if path else name)
            shape = layer.output_shape(shape)
        return x
    if isinstance(module, variants.SeparableConv2d):
        x, shape = inputs[0], shapes[0]
        for layer, name in zip(module._passes, ("first", "second")):
            x, shape = _export_conv(w, layer, x, f"{path}.{name}"), layer.output_shape(shape)
        return x
    if isinstance(module, nn.Add):
        return w.op("Add" if len(inputs) == 2 else "Sum", inputs, path)
    if isinstance(module, nn.Concat):
        return w.op("Concat", inputs, path, axis=module.axis)
    shaped = _lookup(SHAPED_EXPORTERS, module)
    if shaped is not None:
        return shaped(w, module, inputs[0], path, shapes[0])
    export = _lookup(EXPORTERS, module)
    if export is None:
        raise ValueError(
            f"onnx export: layer {path!r} is a {type(module).__name__}, which has no ONNX equivalent in "
            f"minicnn.onnx_io (layers it exports: {', '.join(sorted(c.__name__ for c in {**EXPORTERS, **SHAPED_EXPORTERS}))}, "
            "Add, Concat, SeparableConv2d, Sequential and Graph)"
        )
    return export(w, module, inputs[0], path)


def _export_graph(w, graph, inputs, shapes, path):
    names, shape_of = {}, {}
    for node, x, shape in zip(graph._inputs, inputs, shapes):
        names[node.index], shape_of[node.index] = x, shape
    for node in graph._plan():
        ins = [names[i.index] for i in node.inputs]
        in_shapes = [shape_of[i.index] for i in node.inputs]
        names[node.index] = _export_module(w, node.module, ins, in_shapes, f"{path}.{node.name}" if path else node.name)
        shape_of[node.index] = node.module.output_shape(*in_shapes)
    outs = [names[node.index] for node in graph._outputs]
    return outs[0] if len(outs) == 1 else outs


def _sample_shape(net, input_shape):
    shape = input_shape if input_shape is not None else getattr(net, "input_shape", None)
    if shape is None:
        raise ValueError("onnx export: give input_shape, one sample without the batch axis, e.g. (1, 32, 32); "
                         f"this {type(net).__name__} does not know its own")
    if not (isinstance(shape, (tuple, list)) and shape and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in shape)):
        raise ValueError(f"onnx export: input_shape must be a tuple of positive ints such as (1, 32, 32), got {shape!r}")
    return tuple(int(s) for s in shape)


def export(net, path, input_shape=None, *, input_name="input", output_name="logits"):
    """Write ``net`` as an ONNX model (opset ``OPSET``, IR version ``IR_VERSION``) to ``path``; returns the ``ModelProto``.

    ``input_shape`` is one sample without the batch axis, e.g. ``(1, 32, 32)``
    (default: ``net.input_shape``, which every zoo model has); the batch axis
    of the file is symbolic (``"N"``), so any batch size runs. The network is
    written as it computes in evaluation mode: BatchNorm with its running
    statistics, Dropout as the identity. The model passes
    ``onnx.checker.check_model(..., full_check=True)`` before it is written
    (atomically).
    """
    onnx = require("onnx")
    from . import __version__
    from .io import atomic_file

    if not isinstance(net, nn.Module):
        raise TypeError(f"onnx export: net must be a minicnn.nn.Module, got {type(net).__name__}")
    if isinstance(net, Graph) and len(net._inputs) != 1:
        raise ValueError(f"onnx export: the graph has {len(net._inputs)} inputs; export writes networks of one input")
    shape = _sample_shape(net, input_shape)
    out_shapes = net.output_shape((1, *shape))
    out_shapes = [out_shapes] if isinstance(out_shapes[0], int) else list(out_shapes)
    w = _Writer(onnx)
    x = w.name(input_name)
    outs = _export_module(w, net, [x], [(1, *shape)], "")
    outs = [outs] if isinstance(outs, str) else list(outs)
    names = [output_name] if len(outs) == 1 else [f"{output_name}{i}" for i in range(len(outs))]
    outputs = []
    for out, name, out_shape in zip(outs, names, out_shapes):
        final = w.op("Identity", [out], name)
        outputs.append(onnx.helper.make_tensor_value_info(final, onnx.TensorProto.FLOAT, ["N", *out_shape[1:]]))
    graph = onnx.helper.make_graph(
        w.nodes, getattr(net, "name", type(net).__name__),
        [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["N", *shape])], outputs, w.initializers,
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                   producer_name="minicnn", producer_version=__version__)
    onnx.checker.check_model(model, full_check=True)
    with atomic_file(path, "wb") as f:
        f.write(model.SerializeToString())
    return model


# =========================================================================== import
#: Names a layer of an imported Graph cannot take: the Graph's own attributes (and the ``input_shape`` it is given).
_RESERVED = frozenset(dir(Graph())) | {"input_shape"}


class _Reader:
    """Walks an ONNX graph in its (topological) node order, writing a graph description and its weights."""

    def __init__(self, onnx, model):
        self.onnx = onnx
        graph = model.graph
        self.consts = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        self.tensors = {}  # ONNX tensor name -> (node name in the description, shape with batch 1)
        self.entries, self.weights, self.names = [], {}, set()
        self.consumers = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        for out in graph.output:
            self.consumers.setdefault(out.name, []).append(None)
        for node in graph.node:  # Constant nodes first: a pattern may look ahead at a constant defined further on
            if node.op_type == "Constant":
                _import_constant(self, node)
        self.absorbed = set()  # ids of nodes an earlier importer folded into its layer (MatMul's Add)
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)

    # ---------------------------------------------------------------- helpers
    def fail(self, node, message):
        return ValueError(f"onnx import: node {node.name or node.output[0]!r} ({node.op_type}): {message}")

    def attrs(self, node, **defaults):
        """The node's attributes, each one named in ``defaults`` (which gives its default); any other is an error."""
        values = dict(defaults)
        for attr in node.attribute:
            if attr.name not in defaults:
                raise self.fail(node, f"attribute {attr.name!r} is not supported (supported: {', '.join(defaults) or 'none'})")
            value = self.onnx.helper.get_attribute_value(attr)
            values[attr.name] = value.decode() if isinstance(value, bytes) else value
        return values

    def unsupported(self, node, attribute, value, supported):
        return self.fail(node, f"attribute {attribute}={value!r} is not supported ({supported})")

    def tensor(self, node, index=0):
        name = node.input[index] if index < len(node.input) else ""
        if name in self.consts:
            raise self.fail(node, f"input {index} ({name!r}) is a constant; minicnn layers take a computed tensor there")
        if name not in self.tensors:
            raise self.fail(node, f"input {index} ({name!r}) is made by no earlier node")
        return self.tensors[name]

    def const(self, node, index, what, optional=False, kinds="f"):
        """A constant input (initializer or Constant node) of a dtype kind in ``kinds`` (NumPy's: f, iu, b)."""
        name = node.input[index] if index < len(node.input) else ""
        if not name:
            if optional:
                return None
            raise self.fail(node, f"input {index} ({what}) is missing")
        if name not in self.consts:
            raise self.fail(node, f"input {index} ({what}, {name!r}) must be a constant (an initializer)")
        value = self.consts[name]
        if value.dtype.kind not in kinds:
            expected = {"f": "float32", "iu": "integers", "b": "a bool"}.get(kinds, kinds)
            raise self.fail(node, f"input {index} ({what}) has dtype {value.dtype}; expected {expected}")
        return value

    def check_shape(self, node, what, array, shape):
        if tuple(array.shape) != tuple(shape):
            raise self.fail(node, f"{what} has shape {tuple(array.shape)}, expected {tuple(shape)}")

    def only_first_output(self, node):
        for extra in node.output[1:]:
            if extra and self.consumers.get(extra):
                raise self.fail(node, f"its output {extra!r} is used; minicnn computes only the first output")

    def node_name(self, node):
        base = re.sub(r"[^0-9A-Za-z_]", "_", node.name or node.output[0]).strip("_") or node.op_type.lower()
        name, k = base, 1
        while name in self.names or name in _RESERVED:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def add(self, node, layer, args, inputs, weights=None, output=None):
        """Record a node of the description (``layer(**args)`` reading ``inputs``) and its output's shape."""
        from .graph_spec import _make_layer

        entry = {"name": self.node_name(node), "layer": layer, "args": args, "inputs": [n for n, _ in inputs]}
        try:
            shape = _make_layer(entry).output_shape(*(s for _, s in inputs))
        except ValueError as exc:
            raise self.fail(node, str(exc)) from None
        self.entries.append(entry)
        for key, value in (weights or {}).items():
            if value is not None:
                self.weights[f"{entry['name']}.{key}"] = np.ascontiguousarray(value, dtype=np.float32)
        self.tensors[output or node.output[0]] = (entry["name"], shape)


def _same_pads(size, kernel, stride, dilation, lower):
    """``auto_pad=SAME_*``: total padding so that the output is ``ceil(size / stride)``, split before/after."""
    total = max((-(-size // stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    small, large = total // 2, total - total // 2
    return (large, small) if lower else (small, large)


def _padding(r, node, a, shape, kernel, strides, dilations):
    """The symmetric ``(p_h, p_w)`` of the node's ``pads``/``auto_pad``; asymmetric padding is an error."""
    auto = a.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return [0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pairs = [_same_pads(n, k, s, d, auto == "SAME_LOWER")
                 for n, k, s, d in zip(shape[2:], kernel, strides, dilations)]
        pads = [pairs[0][0], pairs[1][0], pairs[0][1], pairs[1][1]]
    elif auto == "NOTSET":
        pads = list(a.get("pads") or [0, 0, 0, 0])
    else:
        raise r.unsupported(node, "auto_pad", auto, "NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    if len(pads) != 4 or min(pads) < 0:
        raise r.unsupported(node, "pads", pads, "four amounts >= 0: [top, left, bottom, right]")
    top, left, bottom, right = (int(p) for p in pads)
    return [top, left] if (top, left) == (bottom, right) else [left, right, top, bottom]  # F.pad's order


def _pair(r, node, a, name, default):
    value = list(a.get(name) or default)
    if len(value) != 2:
        raise r.unsupported(node, name, value, "two values (height, width): 2-D inputs only")
    return value


def _conv_geometry(r, node, a, shape, weight):
    if len(shape) != 4:
        raise r.fail(node, f"input has shape {shape}; minicnn's Conv is 2-D, (N, C, H, W)")
    if weight.ndim != 4:
        raise r.fail(node, f"weight W has shape {weight.shape}; expected 4 axes (2-D convolution)")
    kernel = list(weight.shape[2:])
    if a.get("kernel_shape") is not None and list(a["kernel_shape"]) != kernel:
        raise r.fail(node, f"attribute kernel_shape={list(a['kernel_shape'])} disagrees with W's {kernel}")
    strides, dilations = _pair(r, node, a, "strides", [1, 1]), _pair(r, node, a, "dilations", [1, 1])
    return kernel, strides, dilations, _padding(r, node, a, shape, kernel, strides, dilations)


_CONV_ATTRS = {"kernel_shape": None, "strides": None, "pads": None, "dilations": None, "group": 1, "auto_pad": "NOTSET"}


def _import_conv(r, node):
    a = r.attrs(node, **_CONV_ATTRS)
    x, shape = r.tensor(node, 0)
    weight, bias = r.const(node, 1, "W"), r.const(node, 2, "B", optional=True)
    kernel, strides, dilations, padding = _conv_geometry(r, node, a, shape, weight)
    c_out, per_group = weight.shape[:2]
    if per_group * a["group"] != shape[1]:
        raise r.fail(node, f"W has {per_group} input channels per group x group {a['group']} = "
                           f"{per_group * a['group']}, but the input has {shape[1]} channels")
    if bias is not None:
        r.check_shape(node, "bias B", bias, (c_out,))
    args = {"in_channels": shape[1], "out_channels": int(c_out), "kernel_size": kernel, "stride": strides,
            "padding": padding, "dilation": dilations, "groups": a["group"], "bias": bias is not None}
    r.add(node, "Conv2d", args, [(x, shape)], {"weight": weight, "bias": bias})


def _import_conv_transpose(r, node):
    a = r.attrs(node, output_padding=None, output_shape=None, **_CONV_ATTRS)
    if a["output_shape"] is not None:
        raise r.unsupported(node, "output_shape", a["output_shape"], "give pads and output_padding instead")
    if a["auto_pad"] not in ("NOTSET", "VALID"):
        raise r.unsupported(node, "auto_pad", a["auto_pad"], "NOTSET or VALID")
    x, shape = r.tensor(node, 0)
    weight, bias = r.const(node, 1, "W"), r.const(node, 2, "B", optional=True)
    kernel, strides, dilations, padding = _conv_geometry(r, node, a, shape, weight)
    if len(padding) == 4:
        raise r.unsupported(node, "pads", a["pads"], "a transposed convolution crops both sides of an axis alike")
    c_in, per_group = weight.shape[:2]
    if c_in != shape[1]:
        raise r.fail(node, f"W has {c_in} input channels (its first axis), but the input has {shape[1]}")
    if bias is not None:
        r.check_shape(node, "bias B", bias, (per_group * a["group"],))
    args = {"in_channels": int(c_in), "out_channels": int(per_group * a["group"]), "kernel_size": kernel,
            "stride": strides, "padding": padding, "output_padding": _pair(r, node, a, "output_padding", [0, 0]),
            "dilation": dilations, "groups": a["group"], "bias": bias is not None}
    r.add(node, "ConvTranspose2d", args, [(x, shape)], {"weight": weight, "bias": bias})


def _pool_geometry(r, node, a, shape):
    if len(shape) != 4:
        raise r.fail(node, f"input has shape {shape}; minicnn pools 2-D maps, (N, C, H, W)")
    kernel = list(a["kernel_shape"] or [])
    if len(kernel) != 2:
        raise r.unsupported(node, "kernel_shape", a["kernel_shape"], "two values (height, width)")
    strides = _pair(r, node, a, "strides", [1, 1])  # ONNX's default stride is 1, not the window
    dilations = _pair(r, node, a, "dilations", [1, 1])
    padding = _padding(r, node, a, shape, kernel, strides, dilations)
    return {"kernel_size": kernel, "stride": strides, "padding": padding, "ceil_mode": bool(a["ceil_mode"])}


def _check_ceil_mode(r, node, args, shape, dilations):
    """ONNX keeps a last ``ceil_mode`` window that starts in the padding, minicnn (as PyTorch) drops it."""
    out = r.tensors[node.output[0]][1]
    (top, left), (bottom, right) = shapes.pad_pairs(args["padding"])
    theirs = [onnx_pool_size(n, k, s, b, e, d, True) for n, k, s, b, e, d in
              zip(shape[2:], args["kernel_size"], args["stride"], (top, left), (bottom, right), dilations)]
    if list(out[2:]) != theirs:
        raise r.unsupported(node, "ceil_mode", 1, f"here ONNX gives {theirs} windows, minicnn {list(out[2:])}: ONNX "
                                                  "keeps a last window that starts in the padding")


def _import_max_pool(r, node):
    a = r.attrs(node, kernel_shape=None, strides=None, pads=None, dilations=None, auto_pad="NOTSET", ceil_mode=0,
                storage_order=0)
    r.only_first_output(node)
    x, shape = r.tensor(node, 0)
    args = _pool_geometry(r, node, a, shape)
    args["dilation"] = _pair(r, node, a, "dilations", [1, 1])
    r.add(node, "MaxPool2d", args, [(x, shape)])
    if args["ceil_mode"]:
        _check_ceil_mode(r, node, args, shape, args["dilation"])


def _import_average_pool(r, node):
    a = r.attrs(node, kernel_shape=None, strides=None, pads=None, dilations=None, auto_pad="NOTSET", ceil_mode=0,
                count_include_pad=0)
    if list(a.get("dilations") or [1, 1]) != [1, 1]:
        raise r.unsupported(node, "dilations", a["dilations"], "average pooling without dilation")
    x, shape = r.tensor(node, 0)
    args = _pool_geometry(r, node, a, shape)
    args["count_include_pad"] = bool(a["count_include_pad"])
    r.add(node, "AvgPool2d", args, [(x, shape)])
    if args["ceil_mode"]:
        _check_ceil_mode(r, node, args, shape, [1, 1])


def _import_gemm(r, node):
    a = r.attrs(node, alpha=1.0, beta=1.0, transA=0, transB=0)
    if a["transA"]:
        raise r.unsupported(node, "transA", a["transA"], "the input must be (N, in_features)")
    x, shape = r.tensor(node, 0)
    b = r.const(node, 1, "B")
    if len(shape) != 2 or b.ndim != 2:
        raise r.fail(node, f"input {shape} and B {b.shape} must both have 2 axes")
    weight = (b if a["transB"] else b.T) * np.float32(a["alpha"])
    bias = r.const(node, 2, "C", optional=True)
    if bias is not None:
        if bias.size not in (1, weight.shape[0]) or bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1):
            raise r.fail(node, f"bias C has shape {bias.shape}; expected ({weight.shape[0]},) or (1, {weight.shape[0]})")
        bias = np.broadcast_to(bias.reshape(-1), (weight.shape[0],)) * np.float32(a["beta"])
    _linear(r, node, x, shape, weight, bias)


def _linear(r, node, x, shape, weight, bias, output=None):
    if weight.shape[1] != shape[1]:
        raise r.fail(node, f"the weight takes {weight.shape[1]} input features, but the input has {shape[1]}")
    args = {"in_features": int(weight.shape[1]), "out_features": int(weight.shape[0]), "bias": bias is not None}
    r.add(node, "Linear", args, [(x, shape)], {"weight": weight, "bias": bias}, output)


def _import_matmul(r, node):
    """``x B`` with a constant ``B`` (K, M) is a ``Linear`` without bias; a following ``Add`` of a constant becomes its bias."""
    r.attrs(node)
    x, shape = r.tensor(node, 0)
    b = r.const(node, 1, "B")
    if len(shape) != 2 or b.ndim != 2:
        raise r.fail(node, f"input {shape} and B {b.shape} must both have 2 axes")
    users = r.consumers.get(node.output[0], [])
    add = users[0] if len(users) == 1 and users[0] is not None and users[0].op_type == "Add" else None
    other = None if add is None else [n for n in add.input if n != node.output[0]]
    if other and len(other) == 1 and other[0] in r.consts and r.consts[other[0]].size == b.shape[1]:
        r.absorbed.add(id(add))
        _linear(r, node, x, shape, b.T, r.consts[other[0]].reshape(-1), output=add.output[0])
    else:
        _linear(r, node, x, shape, b.T, None)


def _import_batch_norm(r, node):
    a = r.attrs(node, epsilon=1e-5, momentum=0.9, training_mode=0, spatial=1)
    if a["training_mode"] or not a["spatial"]:
        bad = "training_mode" if a["training_mode"] else "spatial"
        raise r.unsupported(node, bad, a[bad], "inference with per-channel statistics only")
    r.only_first_output(node)
    x, shape = r.tensor(node, 0)
    if len(shape) != 4:
        raise r.fail(node, f"input has shape {shape}; minicnn's BatchNorm2d takes (N, C, H, W)")
    stats = {}
    for index, key in enumerate(("weight", "bias", "running_mean", "running_var"), start=1):
        stats[key] = r.const(node, index, key)
        r.check_shape(node, key, stats[key], (shape[1],))
    if (stats["running_var"] + a["epsilon"] <= 0).any():
        raise r.fail(node, "running_var + epsilon must be > 0 (its square root divides)")
    r.add(node, "BatchNorm2d", {"num_features": shape[1], "eps": float(a["epsilon"])}, [(x, shape)], stats)


def _import_lrn(r, node):
    a = r.attrs(node, size=None, alpha=1e-4, beta=0.75, bias=1.0)
    if not isinstance(a["size"], int) or a["size"] % 2 == 0:
        raise r.unsupported(node, "size", a["size"], "an odd size: for even ones ONNX's channel window is not minicnn's")
    x, shape = r.tensor(node, 0)
    args = {"size": a["size"], "alpha": float(a["alpha"]), "beta": float(a["beta"]), "k": float(a["bias"])}
    r.add(node, "LocalResponseNorm", args, [(x, shape)])


def _import_concat(r, node):
    a = r.attrs(node, axis=None)
    inputs = [r.tensor(node, i) for i in range(len(node.input))]
    rank = len(inputs[0][1])
    axis = a["axis"] + rank if a["axis"] is not None and a["axis"] < 0 else a["axis"]
    if axis is None or not 1 <= axis < rank:
        raise r.unsupported(node, "axis", a["axis"], "an axis after the batch axis")
    r.add(node, "Concat", {"axis": axis}, inputs)


def _import_add(r, node):
    r.attrs(node)
    if id(node) in r.absorbed:
        return
    inputs = [r.tensor(node, i) for i in range(len(node.input))]
    if len(inputs) < 2:
        raise r.fail(node, "needs at least two inputs")
    r.add(node, "Add", {}, inputs)


def _import_flatten(r, node):
    a = r.attrs(node, axis=1)
    if a["axis"] != 1:
        raise r.unsupported(node, "axis", a["axis"], "minicnn's Flatten keeps the batch axis: axis=1")
    x, shape = r.tensor(node, 0)
    r.add(node, "Flatten", {}, [(x, shape)])


def _sole_user(r, name, op_type):
    users = r.consumers.get(name, [])
    return users[0] if len(users) == 1 and users[0] is not None and users[0].op_type == op_type else None


def _channel_shuffle(r, node, shape, target):
    """``Reshape (N, g, C/g, H, W)``, ``Transpose [0, 2, 1, 3, 4]``, ``Reshape (N, C, H, W)``: ShuffleNet's shuffle."""
    if len(shape) != 4 or len(target) != 5 or target[0] not in (0, -1):
        return False
    n, c, h, w = shape
    groups = target[1]
    if groups < 1 or c % groups or target[2:] != [c // groups, h, w]:
        return False
    transpose = _sole_user(r, node.output[0], "Transpose")
    back = transpose and _sole_user(r, transpose.output[0], "Reshape")
    perm = transpose and next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
    if not back or perm != [0, 2, 1, 3, 4] or back.input[1] not in r.consts:
        return False
    if [int(v) for v in r.consts[back.input[1]].reshape(-1)] not in ([-1, c, h, w], [0, c, h, w]):
        return False
    r.absorbed.update((id(transpose), id(back)))
    r.add(node, "ChannelShuffle", {"groups": int(groups)}, [r.tensor(node, 0)], output=back.output[0])
    return True


def _perm(node):
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def _import_transpose(r, node):
    """Only inside a channel shuffle, or as ``Transpose, LayerNormalization (last axis), Transpose``: LayerNorm2d."""
    if id(node) in r.absorbed:
        return
    x, shape = r.tensor(node, 0)
    norm = _sole_user(r, node.output[0], "LayerNormalization")
    back = norm and _sole_user(r, norm.output[0], "Transpose")
    if not (back and len(shape) == 4 and _perm(node) == [0, 2, 3, 1] and _perm(back) == [0, 3, 1, 2]):
        raise r.fail(node, "Transpose is imported only inside a channel shuffle (Reshape, Transpose, Reshape) or "
                           "around a LayerNormalization of the channels (LayerNorm2d)")
    a = r.attrs(norm, axis=-1, epsilon=1e-5, stash_type=1)
    if a["axis"] not in (-1, 3):
        raise r.unsupported(norm, "axis", a["axis"], "the channels, last after the Transpose: -1")
    r.only_first_output(norm)
    weight, bias = r.const(norm, 1, "scale"), r.const(norm, 2, "B", optional=True)
    r.check_shape(norm, "scale", weight, (shape[1],))
    bias = np.zeros(shape[1], np.float32) if bias is None else bias
    r.check_shape(norm, "B", bias, (shape[1],))
    r.absorbed.update((id(norm), id(back)))
    r.add(node, "LayerNorm2d", {"num_channels": shape[1], "eps": float(a["epsilon"])}, [(x, shape)],
          {"weight": weight, "bias": bias}, output=back.output[0])


def _import_layer_norm(r, node):
    if id(node) not in r.absorbed:
        raise r.fail(node, "LayerNormalization is imported only over the channels, between two Transposes")


def _import_reshape(r, node):
    """A reshape that keeps the batch axis and merges neighbouring axes: ``Flatten(start_dim, end_dim)``;
    or the first of the three operators of a channel shuffle."""
    if id(node) in r.absorbed:
        return None
    a = r.attrs(node, allowzero=0)
    x, shape = r.tensor(node, 0)
    target = [int(v) for v in r.const(node, 1, "shape", kinds="iu").reshape(-1)]
    if target.count(-1) > 1 or min(target, default=0) < -1:
        raise r.fail(node, f"target shape {target} has more than one -1 or a negative size")
    if _channel_shuffle(r, node, shape, target):
        return None
    rest = [shape[i] if v == 0 and not a["allowzero"] and i < len(shape) else v for i, v in enumerate(target[1:], 1)]
    if -1 in rest and rest.count(-1) == 1 and all(v > 0 for v in rest if v != -1):
        known = int(np.prod([v for v in rest if v != -1]))
        rest[rest.index(-1)] = int(np.prod(shape[1:])) // known if known else -1
    keeps_batch = target and (target[0] == 0 or (target[0] == -1 and int(np.prod(rest)) == int(np.prod(shape[1:]))))
    for start in range(1, len(shape)):
        for end in range(start, len(shape)):
            if keeps_batch and list(shape[1:start]) + [int(np.prod(shape[start:end + 1]))] + list(shape[end + 1:]) == rest:
                return r.add(node, "Flatten", {"start_dim": start, "end_dim": end - len(shape)}, [(x, shape)])
    raise r.fail(node, f"target shape {target} of an input {list(shape)} (batch 1) is not a flatten of neighbouring "
                       "axes after the batch axis, the only reshape minicnn has (Flatten(start_dim, end_dim))")


def _import_pad(r, node):
    """ONNX's ``[begin of every axis..., end of every axis...]`` as F.pad's ``(before, after)`` pairs, last axis first."""
    a = r.attrs(node, mode="constant", pads=None, value=0.0)
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if a["mode"] not in modes:
        raise r.unsupported(node, "mode", a["mode"], ", ".join(modes))
    if len(node.input) > 3 and node.input[3]:
        raise r.fail(node, "input 3 (axes) is not supported: give pads for every axis")
    x, shape = r.tensor(node, 0)
    pads = a["pads"] if a["pads"] is not None else [int(v) for v in r.const(node, 1, "pads", kinds="iu").reshape(-1)]
    if len(pads) != 2 * len(shape) or pads[0] or pads[len(shape)]:
        raise r.fail(node, f"pads {list(pads)} must have 2 x {len(shape)} amounts and leave the batch axis alone")
    if a["mode"] != "constant" and min(pads) < 0:
        raise r.unsupported(node, "pads", list(pads), f"cropping (a negative amount) only in constant mode, not {a['mode']}")
    value = r.const(node, 2, "constant_value", optional=True)
    value = float(value) if value is not None else float(a["value"])
    pairs = [amount for axis in reversed(range(1, len(shape))) for amount in (pads[axis], pads[axis + len(shape)])]
    r.add(node, "Pad", {"pad": pairs, "mode": modes[a["mode"]], "value": value}, [(x, shape)])


def _import_softmax(r, node):
    """Softmax / LogSoftmax along ``axis``; before opset 13 they flatten to 2-D at ``axis``, which is that only for the last axis."""
    x, shape = r.tensor(node, 0)
    a = r.attrs(node, axis=-1 if r.opset >= 13 else 1)
    axis = a["axis"] % len(shape)
    if r.opset < 13 and axis != len(shape) - 1:
        raise r.unsupported(node, "axis", a["axis"], f"before opset 13 {node.op_type} normalises the axes from axis "
                                                     "on together; minicnn's only along the last axis")
    r.add(node, "Softmax" if node.op_type == "Softmax" else "LogSoftmax", {"dim": axis}, [(x, shape)])


def _import_leaky_relu(r, node):
    a = r.attrs(node, alpha=0.01)
    x, shape = r.tensor(node, 0)
    r.add(node, "LeakyReLU", {"negative_slope": float(a["alpha"])}, [(x, shape)])


def _import_hard_sigmoid(r, node):
    a = r.attrs(node, alpha=0.2, beta=0.5)
    if not (math.isclose(a["alpha"], 1 / 6, rel_tol=1e-6) and a["beta"] == 0.5):
        raise r.unsupported(node, "alpha, beta", (a["alpha"], a["beta"]), "minicnn's HardSigmoid is "
                                                                          "max(0, min(1, x/6 + 1/2)): alpha 1/6, beta 0.5")
    x, shape = r.tensor(node, 0)
    r.add(node, "HardSigmoid", {}, [(x, shape)])


def _import_dropout(r, node):
    a = r.attrs(node, ratio=0.5, seed=0, is_test=1)
    r.only_first_output(node)
    ratio = r.const(node, 1, "ratio", optional=True)
    training = r.const(node, 2, "training_mode", optional=True, kinds="b")
    if training is not None and bool(training):
        raise r.fail(node, "training_mode is true; minicnn imports networks for inference")
    x, shape = r.tensor(node, 0)
    p = float(ratio) if ratio is not None else float(a["ratio"])
    r.add(node, "Dropout", {"p": p}, [(x, shape)])


def _import_clip(r, node):
    a = r.attrs(node, min=None, max=None)
    low = r.const(node, 1, "min", optional=True)
    high = r.const(node, 2, "max", optional=True)
    low = float(low) if low is not None else a["min"]
    high = float(high) if high is not None else a["max"]
    x, shape = r.tensor(node, 0)
    if low == 0 and high == 6:
        r.add(node, "ReLU6", {}, [(x, shape)])
    elif low == 0 and (high is None or high == math.inf):
        r.add(node, "ReLU", {}, [(x, shape)])
    else:
        raise r.fail(node, f"Clip({low}, {high}) has no minicnn layer (Clip(0, 6) is ReLU6, Clip(0, inf) is ReLU)")


def _import_sigmoid(r, node):
    """``Sigmoid``; with a ``Mul`` of its input by it right after, the pair is ``SiLU`` (how it is exported)."""
    r.attrs(node)
    x, shape = r.tensor(node, 0)
    users = r.consumers.get(node.output[0], [])
    mul = users[0] if len(users) == 1 and users[0] is not None and users[0].op_type == "Mul" else None
    if mul is not None and sorted(mul.input) == sorted([node.input[0], node.output[0]]):
        r.absorbed.add(id(mul))
        r.add(node, "SiLU", {}, [(x, shape)], output=mul.output[0])
    else:
        r.add(node, "Sigmoid", {}, [(x, shape)])


def _import_mul(r, node):
    """Inside SiLU or GELU, or ``x`` times a constant ``(1, C, 1, 1)``: a per-channel scale (LayerScale)."""
    if id(node) in r.absorbed:
        return
    r.attrs(node)
    constant = [i for i, name in enumerate(node.input) if name in r.consts]
    if len(constant) == 1 and len(node.input) == 2:
        x, shape = r.tensor(node, 1 - constant[0])
        scale = r.const(node, constant[0], "scale")
        if len(shape) == 4 and scale.shape in ((1, shape[1], 1, 1), (shape[1], 1, 1)):
            r.add(node, "LayerScale", {"channels": shape[1]}, [(x, shape)], {"weight": scale.reshape(-1)})
            return
    raise r.fail(node, "Mul is imported only as x * Sigmoid(x) (SiLU), inside GELU, or as x times a constant "
                       "of shape (1, C, 1, 1) (LayerScale)")


def _is_scalar(r, name, value):
    array = r.consts.get(name)
    return array is not None and array.size == 1 and math.isclose(float(array.reshape(-1)[0]), value, rel_tol=1e-6)


def _other(node, name):
    rest = [n for n in node.input if n != name]
    return rest[0] if len(rest) == 1 else None


def _gelu_steps(r, div):
    """The nodes after ``x / √2`` of ``x (1 + erf(x/√2)) / 2`` (Erf, Add 1, Mul x, Mul 0.5), or None."""
    if not _is_scalar(r, div.input[1], math.sqrt(2.0)):
        return None
    erf = _sole_user(r, div.output[0], "Erf")
    add = erf and _sole_user(r, erf.output[0], "Add")
    mul = add and _sole_user(r, add.output[0], "Mul")
    half = mul and _sole_user(r, mul.output[0], "Mul")
    if not (half and _is_scalar(r, _other(add, erf.output[0]), 1.0) and _other(mul, add.output[0]) == div.input[0]
            and _is_scalar(r, _other(half, mul.output[0]), 0.5)):
        return None
    return [erf, add, mul, half]


def _import_div(r, node):
    """Div is the first step of the exact GELU as PyTorch's exporter and minicnn's write it (opset 17 has no Gelu)."""
    r.attrs(node)
    steps = _gelu_steps(r, node)
    if steps is None:
        raise r.fail(node, "Div is imported only as the first step of GELU: x/√2, Erf, +1, times x, times 0.5")
    r.absorbed.update(id(step) for step in steps)
    r.add(node, "GELU", {}, [r.tensor(node, 0)], output=steps[-1].output[0])


def _import_erf(r, node):
    if id(node) not in r.absorbed:
        raise r.fail(node, "Erf is imported only inside GELU")


def _import_constant(r, node):
    a = r.attrs(node, value=None, value_float=None, value_floats=None, value_int=None, value_ints=None)
    if a["value"] is not None:
        r.consts[node.output[0]] = r.onnx.numpy_helper.to_array(a["value"])
    else:
        value = next((v for v in a.values() if v is not None), None)
        if value is None:
            raise r.fail(node, "has no value")
        r.consts[node.output[0]] = np.asarray(value)


def _slice(data, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else [int(a) % data.ndim for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for axis, start, end, step in zip(axes, starts, ends, steps):
        index[axis] = slice(int(start), int(end), int(step))
    return data[tuple(index)]


def _reshape_constant(data, shape):
    shape = [data.shape[i] if v == 0 else int(v) for i, v in enumerate(shape)]
    return data.reshape(shape)


#: Operators computed on constants only (the index arithmetic exporters write, e.g. PyTorch's for F.pad):
#: ``f(onnx, attributes, *inputs) -> array``.
CONSTANT_FOLDERS = {
    "ConstantOfShape": lambda onnx, a, shape: np.full(
        [int(v) for v in shape], onnx.numpy_helper.to_array(a["value"]).reshape(-1)[0] if a.get("value") else 0.0),
    "Concat": lambda onnx, a, *xs: np.concatenate(xs, axis=a["axis"]),
    "Reshape": lambda onnx, a, x, shape: _reshape_constant(x, shape),
    "Slice": lambda onnx, a, x, *args: _slice(x, *args),
    "Transpose": lambda onnx, a, x: np.transpose(x, a.get("perm")),
    "Cast": lambda onnx, a, x: x.astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"])),
    "Unsqueeze": lambda onnx, a, x, axes: np.expand_dims(x, tuple(int(v) for v in axes)),
    "Squeeze": lambda onnx, a, x, axes=None: np.squeeze(x, None if axes is None else tuple(int(v) for v in axes)),
    "Gather": lambda onnx, a, x, index: np.take(x, index, axis=a.get("axis", 0)),
}


def _fold_constant(r, node):
    """Compute ``node`` now when every input is a constant and its operator is in ``CONSTANT_FOLDERS``; True if so."""
    fold = CONSTANT_FOLDERS.get(node.op_type)
    if fold is None or not node.input or not all(name in r.consts for name in node.input if name):
        return False
    attributes = {a.name: r.onnx.helper.get_attribute_value(a) for a in node.attribute}
    try:
        value = fold(r.onnx, attributes, *(r.consts[name] for name in node.input if name))
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise r.fail(node, f"cannot compute it on its constant inputs: {exc}") from None
    r.consts[node.output[0]] = np.asarray(value)
    return True


def _plain(layer):
    def read(r, node):
        r.attrs(node)
        x, shape = r.tensor(node, 0)
        r.add(node, layer, {}, [(x, shape)])

    return read


def _import_identity(r, node):
    """No layer: the output is another name of the input (as the exporter's final ``logits``)."""
    r.attrs(node)
    r.tensors[node.output[0]] = r.tensor(node, 0)


def _import_global_average_pool(r, node):
    r.attrs(node)
    x, shape = r.tensor(node, 0)
    if len(shape) != 4:
        raise r.fail(node, f"input has shape {shape}; minicnn's GlobalAvgPool2d takes (N, C, H, W)")
    r.add(node, "GlobalAvgPool2d", {}, [(x, shape)])


#: ONNX operator -> ``f(reader, node)``, which adds the node's layer to the description.
IMPORTERS = {
    "Conv": _import_conv,
    "ConvTranspose": _import_conv_transpose,
    "MaxPool": _import_max_pool,
    "AveragePool": _import_average_pool,
    "GlobalAveragePool": _import_global_average_pool,
    "Gemm": _import_gemm,
    "MatMul": _import_matmul,
    "Relu": _plain("ReLU"),
    "Sigmoid": _import_sigmoid,
    "Mul": _import_mul,
    "Div": _import_div,
    "Erf": _import_erf,
    "Tanh": _plain("Tanh"),
    "Clip": _import_clip,
    "HardSwish": _plain("HardSwish"),
    "BatchNormalization": _import_batch_norm,
    "LRN": _import_lrn,
    "Concat": _import_concat,
    "Add": _import_add,
    "Sum": _import_add,
    "Flatten": _import_flatten,
    "Reshape": _import_reshape,
    "Transpose": _import_transpose,
    "LayerNormalization": _import_layer_norm,
    "Pad": _import_pad,
    "Softmax": _import_softmax,
    "LogSoftmax": _import_softmax,
    "LeakyRelu": _import_leaky_relu,
    "HardSigmoid": _import_hard_sigmoid,
    "Dropout": _import_dropout,
    "Identity": _import_identity,
    "Constant": _import_constant,
}


def _read_model(onnx, path):
    """The ``ModelProto`` in ``path``, checked by ``onnx.checker``; any damage is one ``ValueError`` naming the file."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"onnx import: no such file {path}")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ValueError(f"onnx import: {path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node:
        raise ValueError(f"onnx import: {path} holds no ONNX graph (no nodes)")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError
        raise ValueError(f"onnx import: {path} is not a valid ONNX model: {' '.join(str(exc).split())}") from None
    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            raise ValueError(f"onnx import: {path} uses the operator domain {opset.domain!r}; minicnn reads only "
                             "the standard ONNX operators")
    return model


def _graph_inputs(r, model, input_shape):
    entries = []
    inputs = [i for i in model.graph.input if i.name not in r.consts]
    if input_shape is not None and len(inputs) != 1:
        raise ValueError(f"onnx import: input_shape is given, but the model has {len(inputs)} inputs")
    for i in inputs:
        kind = i.type.tensor_type
        if kind.elem_type != r.onnx.TensorProto.FLOAT:
            name = r.onnx.TensorProto.DataType.Name(kind.elem_type)
            raise ValueError(f"onnx import: input {i.name!r} is {name}; minicnn reads float32 networks")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim]
        shape = tuple(input_shape) if input_shape is not None else tuple(dims[1:])
        if len(dims) < 2 or any(not isinstance(s, int) or s < 1 for s in shape) or len(shape) != len(dims) - 1:
            raise ValueError(f"onnx import: input {i.name!r} has shape {dims}; give input_shape, one sample without "
                             "the batch axis such as (3, 224, 224)")
        name = re.sub(r"[^0-9A-Za-z_]", "_", i.name).strip("_") or "input"
        name = name if name not in r.names else f"{name}_input"
        r.names.add(name)
        r.tensors[i.name] = (name, (1, *shape))
        entries.append({"name": name, "shape": [int(s) for s in shape]})
    return entries


def load_spec(path, input_shape=None):
    """``(description, weights)`` of the ONNX model in ``path``: a ``minicnn.graph_spec`` description and its state_dict.

    ``input_shape`` (one sample, e.g. ``(3, 224, 224)``) is needed only when
    the file leaves the input's sizes symbolic.
    """
    from .graph_spec import SPEC_FORMAT, SPEC_VERSION

    onnx = require("onnx")
    model = _read_model(onnx, path)
    r = _Reader(onnx, model)
    inputs = _graph_inputs(r, model, input_shape)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise r.fail(node, f"operator domain {node.domain!r} is not the standard one")
        if node.op_type == "Constant" or _fold_constant(r, node):
            continue
        read = IMPORTERS.get(node.op_type)
        if read is None:
            raise r.fail(node, f"operator {node.op_type} is not supported (minicnn reads: {', '.join(IMPORTERS)})")
        read(r, node)
    outputs = []
    for out in model.graph.output:
        if out.name not in r.tensors or out.name in r.consts:
            raise ValueError(f"onnx import: output {out.name!r} is not computed by a layer (a constant or an input)")
        outputs.append(r.tensors[out.name][0])
    spec = {"format": SPEC_FORMAT, "version": SPEC_VERSION, "inputs": inputs, "nodes": r.entries, "outputs": outputs}
    return spec, r.weights


def load(path, input_shape=None):
    """The ONNX model in ``path`` as a minicnn ``Graph`` in evaluation mode, with its weights.

    Reads graphs of the operators in ``IMPORTERS`` (LeNet-, VGG-, ResNet-,
    Inception- and MobileNet-style networks); anything else is a
    ``ValueError`` naming the node, its operator and the attribute. Weight
    shapes are checked against the layers before anything runs.
    """
    from .graph_spec import build_graph

    spec, weights = load_spec(path, input_shape)
    graph = build_graph(spec)
    graph.load_state_dict(weights)
    return graph.eval()
