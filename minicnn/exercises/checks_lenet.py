"""The LeNet-5 exercise: the student's list of layers against the table of deck 002 ("Arquitectura de la Red")."""

from __future__ import annotations

import numpy as np


def _is_shape_layer(layer):
    """Layers whose output the table lists (convolutions, poolings, fully connected ones)."""
    from .. import nn

    return not isinstance(layer, (nn.activation.Elementwise, nn.Flatten))


def lenet_problem(layers, entry):
    """None if ``layers`` compute the entry's table (shapes, and the parameters of minicnn's LeNet-5); else why not."""
    from .. import backends, nn
    from ..models import lenet5

    if not isinstance(layers, (list, tuple)) or not layers or not all(isinstance(l, nn.Module) for l in layers):
        return f"lenet5_layers must return a list of minicnn layers (mc.nn.Conv2d, ...), got {type(layers).__name__}"
    x = np.zeros((1, *entry["input"]), dtype=np.float32)
    shapes_seen = []
    with backends.use_backend("numpy"):
        for position, layer in enumerate(layers, 1):
            try:
                x = layer(x)
            except Exception as exc:  # a layer that does not fit the previous one's output
                return (f"layer {position} ({type(layer).__name__}) cannot take the {_words(x.shape[1:])} output of the "
                        f"layer before it: {exc}")
            if _is_shape_layer(layer):
                shape = list(x.shape[1:])
                # A 5x5 convolution of a 5x5 map (C5) is the table's fully connected 120: 120x1x1 is 120.
                shapes_seen.append(shape[:1] if shape[1:] == [1, 1] else shape)
    want = entry["expected_shapes"]
    for index, (got, expected) in enumerate(zip(shapes_seen, want)):
        if got != expected:
            name = entry["layers"][index]["name"]
            return f"your {name} outputs {_words(got)}; the table says {_words(expected)}"
    if len(shapes_seen) != len(want):
        return f"your network has {len(shapes_seen)} conv/pool/fc layers; the table has {len(want)}"
    params = sum(p.data.size for layer in layers for p in layer.parameters())
    reference = sum(p.data.size for p in lenet5().parameters())
    if params != reference:
        return f"your network has {params:,} parameters; LeNet-5 of the table has {reference:,}"
    return None


def _words(shape):
    return "x".join(str(s) for s in shape)
