"""Figures of a training run: learning curves, C1 filters, feature maps, confusion matrix.

Each function writes one PNG and returns its path. They draw on
``matplotlib.figure.Figure`` with the Agg canvas directly (no ``pyplot``), so
they work without a display and leave the caller's matplotlib state alone.

The filter and feature-map figures are the "Visualización de filtros"
exercise of deck 004_d4430ea77d2b90c2.txt ("Time to Code"): the 6 learned
5x5 kernels of C1 and what C1 and C3 compute on one digit (deck
002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red": 6x28x28 and 16x10x10
maps).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .arrays import array_module, to_host

__all__ = [
    "plot_curves",
    "plot_filters",
    "plot_feature_maps",
    "plot_confusion",
    "confusion_matrix",
    "save_training_plots",
    "CURVES_FILE",
    "FILTERS_FILE",
    "FEATURE_MAPS_FILE",
    "CONFUSION_FILE",
]

CURVES_FILE = "curves.png"
FILTERS_FILE = "filters_c1.png"
FEATURE_MAPS_FILE = "feature_maps.png"
CONFUSION_FILE = "confusion.png"
_ACTIVATION_TYPES = ("ReLU", "Tanh", "Sigmoid")


def _figure(width, height):
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def plot_curves(history, path):
    """Train and test loss (left) and accuracy (right) per epoch, from ``metrics["epochs"]``."""
    if not history:
        raise ValueError("plot_curves: history is empty; train at least one epoch first")
    epochs = [row["epoch"] for row in history]
    figure = _figure(10, 4)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for split, style in (("train", "o-"), ("test", "s--")):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        acc_ax.plot(epochs, [100 * row[f"{split}_accuracy"] for row in history], style, label=split)
    loss_ax.set(title="Softmax cross-entropy", xlabel="epoch", ylabel="loss")
    loss_ax.set_yscale("log")
    acc_ax.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    best = max(history, key=lambda row: row["test_accuracy"])
    acc_ax.annotate(
        f"best test {100 * best['test_accuracy']:.2f}% (epoch {best['epoch']})",
        xy=(best["epoch"], 100 * best["test_accuracy"]), xytext=(0.3, 0.45), textcoords="axes fraction",
        arrowprops={"arrowstyle": "->"},
    )
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(figure, path)


def _conv_layers(net):
    from .nn import Conv2d

    return [(name, layer) for name, layer in net.named_children() if isinstance(layer, Conv2d)]


def plot_filters(net, path, layer=None):
    """The kernels of the first convolution (C1), one grey image per (output, input) channel pair.

    Each kernel has its own symmetric colour scale (grey = 0), so the
    pattern it detects (edges, strokes) shows whatever its norm.
    """
    convs = _conv_layers(net)
    if not convs:
        raise ValueError("plot_filters: the network has no Conv2d layer")
    name, conv = convs[0] if layer is None else next(((n, c) for n, c in convs if n == layer), (None, None))
    if conv is None:
        raise ValueError(f"plot_filters: no Conv2d named {layer!r}; convolutions: {[n for n, _ in convs]}")
    weights = to_host(conv.weight.data)
    c_out, c_in = weights.shape[:2]
    kernels = weights.reshape(c_out * c_in, *weights.shape[2:])
    columns = min(len(kernels), 8)
    rows = math.ceil(len(kernels) / columns)
    figure = _figure(1.5 * columns, 1.6 * rows + 0.4)
    figure.suptitle(f"{name}: {c_out} learned {weights.shape[2]}x{weights.shape[3]} filters")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < len(kernels):
            limit = float(np.abs(kernels[index]).max()) or 1.0
            ax.imshow(kernels[index], cmap="gray", vmin=-limit, vmax=limit, interpolation="nearest")
            ax.set_title(f"{index // c_in}" if c_in == 1 else f"{index // c_in}/{index % c_in}", fontsize=9)
    return _save(figure, path)


def _feature_maps(net, x):
    """Run ``net`` layer by layer on ``x``; return ``[(title, maps)]`` after the first two convolutions.

    A convolution followed by an activation is shown after the activation,
    which is what the next layer sees.
    """
    from .nn import Conv2d

    layers = list(net.named_children())
    was_training = net.training
    net.eval()
    captured = []
    try:
        for position, (name, layer) in enumerate(layers):
            x = layer(x)
            previous = layers[position - 1] if position else (None, None)
            if isinstance(layer, Conv2d):
                following = layers[position + 1][1] if position + 1 < len(layers) else None
                if type(following).__name__ not in _ACTIVATION_TYPES:
                    captured.append((name, to_host(x)[0]))
            elif isinstance(previous[1], Conv2d) and type(layer).__name__ in _ACTIVATION_TYPES:
                captured.append((f"{previous[0]} + {type(layer).__name__}", to_host(x)[0]))
            if len(captured) == 2:
                break
    finally:
        net.train(was_training)
    return captured


def plot_feature_maps(net, image, path, label=None):
    """The input digit and the feature maps it produces after C1 (6x28x28) and C3 (16x10x10).

    ``image``: one uint8 digit (28, 28) as loaded (padded and normalised
    here), or network input float (1, 32, 32) / (1, 1, 32, 32).
    """
    from .data import to_network_input

    image = np.asarray(image)
    x = image.reshape(1, 1, *image.shape[-2:]) if image.dtype.kind == "f" else to_network_input(image)
    x = x.astype(np.float32)
    param = next(iter(net.parameters()), None)
    if param is not None:
        x = array_module(param.data).asarray(x)
    stages = _feature_maps(net, x)
    if not stages:
        raise ValueError("plot_feature_maps: the network has no Conv2d layer")
    columns = 8
    rows = [math.ceil(maps.shape[0] / columns) for _, maps in stages]
    figure = _figure(1.3 * columns, 1.45 * (1 + sum(rows)) + 0.5 * (1 + len(stages)))
    panels = figure.subfigures(1 + len(stages), 1, height_ratios=[1, *rows])
    ax = panels[0].subplots(1, columns)[0]
    for blank in panels[0].axes[1:]:
        blank.set_axis_off()
    ax.imshow(to_host(x)[0, 0], cmap="gray")
    ax.set_axis_off()
    panels[0].suptitle("input digit" if label is None else f"input digit (label {label})", x=0.02, ha="left")
    for panel, (title, maps), n_rows in zip(panels[1:], stages, rows):
        panel.suptitle(f"{title}: {maps.shape[0]} maps of {maps.shape[1]}x{maps.shape[2]}", x=0.02, ha="left")
        axes = np.atleast_1d(panel.subplots(n_rows, columns)).ravel()
        for index, ax in enumerate(axes):
            ax.set_axis_off()
            if index < maps.shape[0]:
                ax.imshow(maps[index], cmap="viridis")
                ax.set_title(str(index), fontsize=8)
    return _save(figure, path)


def confusion_matrix(labels, predictions, num_classes=10):
    """``counts[i, j]`` = how many samples of true class i were predicted as class j."""
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"confusion_matrix: labels {labels.shape} and predictions {predictions.shape} must have the same shape")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes}), got [{values.min()}, {values.max()}]")
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion(labels, predictions, path, class_names=None):
    """Confusion matrix of the test set: rows the true class, columns the predicted one, counts in each cell."""
    num_classes = len(class_names) if class_names is not None else 10
    names = list(class_names) if class_names is not None else [str(k) for k in range(num_classes)]
    counts = confusion_matrix(labels, predictions, num_classes)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    figure = _figure(7, 6)
    ax = figure.subplots()
    image = ax.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=ax, shrink=0.8)
    threshold = counts.max() / 2
    for i in range(num_classes):
        for j in range(num_classes):
            if counts[i, j]:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if counts[i, j] > threshold else "black")  # fmt: skip
    long_names = max(map(len, names)) > 2
    ax.set_xticks(range(num_classes), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(num_classes), names)
    ax.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix ({counts.sum():,} test images, accuracy {100 * accuracy:.2f}%)")
    return _save(figure, path)


def save_training_plots(run_dir, net, history, test_images, test_labels, predictions, *, class_names=None):
    """Write the four figures of a run into ``run_dir``; return their paths.

    The feature maps use the first test image.
    """
    run_dir = Path(run_dir)
    return [
        plot_curves(history, run_dir / CURVES_FILE),
        plot_filters(net, run_dir / FILTERS_FILE),
        plot_feature_maps(net, test_images[0], run_dir / FEATURE_MAPS_FILE, label=int(test_labels[0])),
        plot_confusion(test_labels, predictions, run_dir / CONFUSION_FILE, class_names=class_names),
    ]
