"""A ``Graph`` written down as data: which layer each node is, with which arguments, reading which nodes.

``minicnn import model.onnx out.npz`` turns an ONNX file into such a
description (``minicnn.onnx_io``), and ``model.npz`` stores it beside the
weights, so ``minicnn.io.load_model`` rebuilds the network without the
``onnx`` package. The description is plain JSON::

    {"format": "minicnn-graph", "version": 1,
     "inputs": [{"name": "input", "shape": [1, 32, 32]}],          # one sample, no batch axis
     "nodes": [{"name": "C1", "layer": "Conv2d",
                "args": {"in_channels": 1, "out_channels": 6, "kernel_size": [5, 5]},
                "inputs": ["input"]}, ...],
     "outputs": ["output"]}

Only the layers of ``LAYER_KINDS`` can appear (a file names no arbitrary
class), and anything malformed is one ``ValueError`` naming the node.
"""

from __future__ import annotations

from . import nn
from .graph import Graph
from .nn import variants
from .nn.init import zeros

__all__ = ["LAYER_KINDS", "SPEC_FORMAT", "SPEC_VERSION", "build_graph", "check_spec"]

SPEC_FORMAT = "minicnn-graph"
SPEC_VERSION = 1

#: The layers a graph description may use, by the name it gives them.
LAYER_KINDS = {
    cls.__name__: cls
    for cls in (
        nn.Conv2d, variants.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.GlobalAvgPool2d, nn.Linear,
        nn.ReLU, variants.ReLU6, nn.Sigmoid, nn.Tanh, variants.SiLU, variants.HardSwish, variants.GELU,
        nn.BatchNorm2d, variants.LocalResponseNorm, nn.Concat, nn.Add, nn.Flatten, nn.Dropout, nn.Identity,
        variants.ChannelShuffle, variants.LeakyReLU, variants.HardSigmoid, variants.Softmax, variants.LogSoftmax,
        variants.Pad, variants.LayerNorm2d, variants.LayerScale,
    )
}
# Layers with weights start from zeros: the weights that follow in the file overwrite them anyway.
_ZERO_INIT = ("Conv2d", "ConvTranspose2d", "Linear")


def _damaged(message):
    return ValueError(f"graph description: {message}")


def check_spec(spec):
    """Raise ``ValueError`` naming the problem unless ``spec`` is a well-formed graph description; returns it."""
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise _damaged(f"expected a dict with format {SPEC_FORMAT!r}, got {type(spec).__name__}")
    if spec.get("version") != SPEC_VERSION:
        raise _damaged(f"version {spec.get('version')!r} is not {SPEC_VERSION} (written by another minicnn?)")
    for key in ("inputs", "nodes", "outputs"):
        if not isinstance(spec.get(key), list) or (key != "nodes" and not spec[key]):
            raise _damaged(f"entry {key!r} must be a non-empty list, it is {spec.get(key)!r}")
    for i, entry in enumerate(spec["inputs"]):
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not (
            isinstance(shape, list) and shape and all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                                      for s in shape)
        ):
            raise _damaged(f"input {i} must be {{'name': str, 'shape': [positive ints]}}, got {entry!r}")
    for i, node in enumerate(spec["nodes"]):
        if not (isinstance(node, dict) and isinstance(node.get("name"), str) and isinstance(node.get("args"), dict)
                and isinstance(node.get("inputs"), list) and node["inputs"]
                and all(isinstance(n, str) for n in node["inputs"])):
            raise _damaged(f"node {i} must be {{'name', 'layer', 'args': dict, 'inputs': [names]}}, got {node!r}")
        if node.get("layer") not in LAYER_KINDS:
            raise _damaged(f"node {node['name']!r}: unknown layer {node.get('layer')!r}; known: {', '.join(LAYER_KINDS)}")
    if not all(isinstance(n, str) for n in spec["outputs"]):
        raise _damaged(f"outputs must be node names, got {spec['outputs']!r}")
    return spec


def _make_layer(node):
    cls = LAYER_KINDS[node["layer"]]
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in node["args"].items()}
    if node["layer"] in _ZERO_INIT:
        args["init"] = zeros
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise _damaged(f"node {node['name']!r}: cannot build {node['layer']}({node['args']}): {exc}") from None


def build_graph(spec):
    """The ``Graph`` a description stands for, with zero weights (load the ``state_dict`` next).

    The graph gets ``input_shape`` (its first input's, one sample) so that
    ``summary()`` and ``minicnn export`` know the size it was made for.
    """
    check_spec(spec)
    graph = Graph()
    tensors = {}
    for entry in spec["inputs"]:
        try:
            tensors[entry["name"]] = graph.input(entry["name"])
        except ValueError as exc:
            raise _damaged(str(exc)) from None
    for node in spec["nodes"]:
        missing = [n for n in node["inputs"] if n not in tensors]
        if missing:
            raise _damaged(f"node {node['name']!r} reads {missing}, which no earlier node or input makes")
        try:
            tensors[node["name"]] = graph.add(_make_layer(node), *(tensors[n] for n in node["inputs"]),
                                              name=node["name"])
        except ValueError as exc:
            raise _damaged(str(exc)) from None
    unknown = [n for n in spec["outputs"] if n not in tensors]
    if unknown:
        raise _damaged(f"outputs {unknown} are not nodes of the graph")
    graph.output(*(tensors[n] for n in spec["outputs"]))
    object.__setattr__(graph, "input_shape", tuple(spec["inputs"][0]["shape"]))
    try:
        graph.output_shape(*((1, *entry["shape"]) for entry in spec["inputs"]))
    except (TypeError, ValueError) as exc:
        raise _damaged(f"its layers do not fit together: {exc}") from None
    return graph
