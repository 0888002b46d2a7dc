"""Weights trained with PyTorch, loaded into the zoo's models: ``load_state_dict(net, state_dict)``.

torchvision saves a network's weights as a ``state_dict``, ``{name: tensor}``
with its module names (``layer1.0.conv1.weight``, ``features.3.conv.1.0.weight``);
minicnn's models name the same layers after the papers (``conv2_1.conv1.weight``,
``block3.depthwise.weight``). The tables below map one to the other, module by
module, for the zoo models whose layers are torchvision's:

===============================  ==================================================
minicnn model                    torchvision model
===============================  ==================================================
``resnet18``, ``resnet34``       ``resnet18``, ``resnet34``
``resnet50/101/152``             the same, built with ``stride_on="3x3"`` (torchvision's v1.5)
``mobilenet_v2``                 ``mobilenet_v2``
``googlenet(variant=             ``googlenet`` (``aux_logits`` either way); its pretrained
"torchvision")``                 weights expect torchvision's ``transform_input=True``, a
                                 rescaling of the ImageNet-normalised input done before conv1
``densenet121/169/201/161``      ``densenet121/169/201/161``
``vgg11`` ... ``vgg19``          ``vgg11`` ... ``vgg19`` (not ``vgg*_bn``: torchvision's keep the
                                 convolutions' biases before BatchNorm, minicnn's drop them)
===============================  ==================================================

Shapes are checked (a ``ValueError`` names the key and both shapes), and
keys of the model missing from the state_dict, or keys of the state_dict
the model does not have, are reported together. BatchNorm's
``num_batches_tracked`` counter has no use in minicnn and is skipped. A
path is read with ``torch.load(path, weights_only=True)``, which unpickles
tensors and plain containers only, never arbitrary objects; torch is
imported only then (``pip install torch``).
"""

from __future__ import annotations

import importlib
import pickle

import numpy as np

__all__ = ["load_state_dict", "torchvision_names", "IGNORED_SUFFIXES"]

#: torchvision keys with no minicnn counterpart.
IGNORED_SUFFIXES = (".num_batches_tracked",)

# ------------------------------------------------------------------ the tables: minicnn module -> torchvision module
RESNET_STEM = {"conv1": "conv1", "bn1": "bn1", "fc": "fc"}
#: Inside a BasicBlock / Bottleneck.
RESNET_BLOCK = {"conv1": "conv1", "conv1_bn": "bn1", "conv2": "conv2", "conv2_bn": "bn2", "conv3": "conv3",
                "conv3_bn": "bn3", "shortcut": "downsample.0", "shortcut_bn": "downsample.1"}

MOBILENET_V2_ENDS = {"conv0.conv": "features.0.0", "conv0.bn": "features.0.1", "conv_last.conv": "features.18.0",
                     "conv_last.bn": "features.18.1", "classifier": "classifier.1"}
#: Inside an InvertedResidual with expansion (torchvision's ``conv`` Sequential: ConvBNReLU x2, conv, bn).
MOBILENET_V2_BLOCK = {"expand": "conv.0.0", "expand_bn": "conv.0.1", "depthwise": "conv.1.0",
                      "depthwise_bn": "conv.1.1", "project": "conv.2", "project_bn": "conv.3"}
#: ... and without (expand_ratio = 1, the first block).
MOBILENET_V2_BLOCK_NO_EXPANSION = {"depthwise": "conv.0.0", "depthwise_bn": "conv.0.1", "project": "conv.1",
                                   "project_bn": "conv.2"}

GOOGLENET_STEM = {"conv1.conv": "conv1.conv", "conv1.conv_bn": "conv1.bn", "conv2.reduce": "conv2.conv",
                  "conv2.reduce_bn": "conv2.bn", "conv2.conv": "conv3.conv", "conv2.conv_bn": "conv3.bn",
                  "linear": "fc"}
#: Inside an Inception block (torchvision's BasicConv2d = conv + bn).
GOOGLENET_INCEPTION = {"branch1": "branch1.conv", "branch1_bn": "branch1.bn",
                       "branch2_reduce": "branch2.0.conv", "branch2_reduce_bn": "branch2.0.bn",
                       "branch2": "branch2.1.conv", "branch2_bn": "branch2.1.bn",
                       "branch3_reduce": "branch3.0.conv", "branch3_reduce_bn": "branch3.0.bn",
                       "branch3": "branch3.1.conv", "branch3_bn": "branch3.1.bn",
                       "branch4": "branch4.1.conv", "branch4_bn": "branch4.1.bn"}
#: Inside an auxiliary classifier.
GOOGLENET_AUX = {"conv": "conv.conv", "bn": "conv.bn", "fc1": "fc1", "fc2": "fc2"}

DENSENET_ENDS = {"conv0": "features.conv0", "norm0": "features.norm0", "norm5": "features.norm5",
                 "classifier": "classifier"}
#: Inside a DenseLayer, and a Transition.
DENSENET_LAYER = {"bn1": "norm1", "conv1": "conv1", "bn2": "norm2", "conv2": "conv2"}
DENSENET_TRANSITION = {"bn": "norm", "conv": "conv"}


def _inner(prefix, outer, table):
    return {f"{prefix}.{ours}": f"{outer}.{theirs}" for ours, theirs in table.items()}


def _resnet(net):
    names = dict(RESNET_STEM)
    for layer, block in net.named_children():
        if layer.startswith("conv") and "_" in layer:
            stage, index = (int(n) for n in layer[4:].split("_"))
            names.update(_inner(layer, f"layer{stage - 1}.{index - 1}", RESNET_BLOCK))
            if getattr(block, "stride_on", "3x3") != "3x3" and block.stride != 1:
                raise ValueError(
                    f"torch_weights: torchvision's {net.name} puts a block's stride on its 3x3 convolution (ResNet "
                    f"v1.5) but this model strides the 1x1 ({layer}); build mc.models.{net.name}(stride_on='3x3')"
                )
    return names


def _mobilenet_v2(net):
    names = dict(MOBILENET_V2_ENDS)
    for layer, block in net.named_children():
        if layer.startswith("block"):
            table = MOBILENET_V2_BLOCK if block.expand_ratio != 1 else MOBILENET_V2_BLOCK_NO_EXPANSION
            names.update(_inner(layer, f"features.{int(layer[5:])}", table))
    return names


def _googlenet(net):
    names = dict(GOOGLENET_STEM)
    for layer, _ in net.named_children():
        if layer.startswith("inception"):
            names.update(_inner(layer, layer, GOOGLENET_INCEPTION))
        elif layer.startswith("aux"):
            names.update(_inner(layer, layer, GOOGLENET_AUX))
    return names


def _densenet(net):
    names = dict(DENSENET_ENDS)
    for layer, block in net.named_children():
        if layer.startswith("denseblock"):
            for inner, _ in block.named_children():
                names.update(_inner(f"{layer}.{inner}", f"features.{layer}.{inner}", DENSENET_LAYER))
        elif layer.startswith("transition"):
            names.update(_inner(layer, f"features.{layer}", DENSENET_TRANSITION))
    return names


def _vgg(net):
    """torchvision numbers the layers of ``features`` (convolutions, BatchNorms, ReLUs, pools) and of ``classifier``."""
    names, index = {"fc6": "classifier.0", "fc7": "classifier.3", "fc8": "classifier.6"}, 0
    for layer, _ in net.named_children():
        if layer.startswith(("conv", "bn")):
            names[layer] = f"features.{index}"
        if layer.startswith(("conv", "bn", "relu", "pool")) and not layer.startswith(("relu6", "relu7")):
            index += 1
    return names


#: Model name (``net.name``) -> the function that lists its modules' torchvision names.
ARCHITECTURES = {
    **{f"resnet{depth}": _resnet for depth in (18, 34, 50, 101, 152)},
    "mobilenet_v2": _mobilenet_v2,
    "googlenet_torchvision": _googlenet,
    **{f"densenet{depth}": _densenet for depth in (121, 169, 201, 161)},
    **{f"vgg{depth}": _vgg for depth in (11, 13, 16, 19)},
}


def torchvision_names(net):
    """``{minicnn state_dict key: torchvision state_dict key}`` for every weight and buffer of ``net``."""
    name = getattr(net, "name", None)
    if name not in ARCHITECTURES:
        hint = " (the torchvision variant: mc.models.googlenet(variant='torchvision'))" if name == "googlenet" else ""
        raise ValueError(f"torch_weights: no torchvision names for model {name!r}{hint}; "
                         f"known: {', '.join(ARCHITECTURES)}")
    modules = ARCHITECTURES[name](net)
    keys = {}
    for key in _shapes(net):
        module, _, leaf = key.rpartition(".")
        if module not in modules:
            raise ValueError(f"torch_weights: the {name} table has no torchvision name for minicnn's {module!r} "
                             f"(key {key!r})")
        keys[key] = f"{modules[module]}.{leaf}"
    return keys


def _shapes(net):
    """``{state_dict key: shape}`` of ``net``'s weights and buffers, without copying them (a lazy model has no values)."""
    shapes = {name: tuple(param.shape) for name, param in net.named_parameters()}
    shapes.update((name, tuple(buffer.shape)) for name, buffer in net.named_buffers())
    return shapes


def _as_numpy(key, value):
    if hasattr(value, "detach"):  # a torch.Tensor: no torch import needed to read it
        value = value.detach().cpu()
        value = (value.float() if str(value.dtype) == "torch.bfloat16" else value).numpy()  # NumPy has no bfloat16
    value = np.asarray(value)
    if value.dtype.kind != "f":
        raise TypeError(f"torch_weights: {key!r} has dtype {value.dtype}; expected floating-point weights")
    return value


def _read(state_dict):
    if isinstance(state_dict, (str, bytes)) or hasattr(state_dict, "__fspath__"):
        try:
            torch = importlib.import_module("torch")
        except ImportError:
            raise ImportError("torch_weights: reading a .pt/.pth file needs PyTorch (pip install torch)") from None
        path = state_dict
        try:
            state_dict = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:  # not only tensors, or not a torch file
            reason = " ".join(str(exc).split())[:300]
            raise ValueError(f"torch_weights: {path} cannot be read as tensors only (torch.load with "
                             f"weights_only=True): {reason}") from None
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"torch_weights: expected a state_dict (a mapping name -> tensor) or a path, got "
                        f"{type(state_dict).__name__}")
    return state_dict


def load_state_dict(net, state_dict):
    """Copy a torchvision-named ``state_dict`` (a mapping, or a path to a ``.pth`` file) into ``net``; returns ``net``.

    ``net`` is a zoo model (its ``name`` picks the table). Every weight and
    buffer of ``net`` must be in the state_dict with the same shape, and every
    key of the state_dict must be used (``num_batches_tracked`` aside).
    """
    state = _read(state_dict)
    ours = _shapes(net)
    mapped, missing = {}, []
    for key, theirs in torchvision_names(net).items():
        if theirs not in state:
            missing.append(theirs)
            continue
        value = _as_numpy(theirs, state[theirs])
        if tuple(value.shape) != ours[key]:
            raise ValueError(f"torch_weights: {theirs!r} (minicnn {key!r}) has shape {tuple(value.shape)} in the "
                             f"state_dict but {ours[key]} in the model")
        mapped[key] = value
    used = set(torchvision_names(net).values())
    unexpected = [k for k in state if k not in used and not k.endswith(IGNORED_SUFFIXES)]
    if missing or unexpected:
        raise ValueError(f"torch_weights: the state_dict does not fit {net.name}: missing {len(missing)} key(s) "
                         f"{_some(missing)}, unexpected {len(unexpected)} key(s) {_some(unexpected)}")
    return net.load_state_dict(mapped)  # a lazy model's shape-only weights get their values here


def _some(keys, limit=6):
    return str(keys) if len(keys) <= limit else f"{keys[:limit]} and {len(keys) - limit} more"
