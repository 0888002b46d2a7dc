"""``minicnn explore RUN_DIR``: one self-contained HTML page to look inside a trained model.

The page (no server, no network: the pictures are inline PNGs, the logic a
small script) steps through test images of the run's own data set and
shows, for each, the digit, every layer's output (feature maps as a grid of
grey images, one per channel; a fully connected layer's output as a strip),
the ten probabilities and the prediction, next to the first convolution's
filters and the misclassified digits (a click shows one). It is the "look
at the filters and the feature maps" part of deck 004_d4430ea77d2b90c2.txt
("Visualización de filtros") for the user's own model.
"""

from __future__ import annotations

import base64
import html
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np

from .arrays import to_host

__all__ = ["explore", "page_data", "add_parser", "run", "PAGE_FILE"]

PAGE_FILE = "explore.html"
_MAP_PIXELS = 56  # each feature map is drawn at least this many pixels wide


def _png(grey):
    """A uint8 2-D array as a ``data:`` URL of a PNG."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8), mode="L").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _unit(values, symmetric=False):
    """``values`` scaled to 0..255: min to max, or -|max| to |max| (grey = 0) when ``symmetric``."""
    values = np.asarray(values, dtype=np.float64)
    if symmetric:
        limit = float(np.abs(values).max()) or 1.0
        return np.round((values / limit + 1) * 127.5).astype(np.uint8)
    low, high = float(values.min()), float(values.max())
    return np.zeros(values.shape, np.uint8) if high == low else np.round((values - low) / (high - low) * 255).astype(np.uint8)


def _grid(maps, symmetric=False, columns=8, gap=2):
    """Maps (C, H, W) tiled ``columns`` to a row, each scaled on its own and enlarged to ``_MAP_PIXELS``."""
    c, h, w = maps.shape
    zoom = max(1, _MAP_PIXELS // max(h, w))
    columns = min(columns, c)
    rows = -(-c // columns)
    canvas = np.full((rows * (h * zoom + gap) - gap, columns * (w * zoom + gap) - gap), 255, np.uint8)
    for index, plane in enumerate(maps):
        tile = np.kron(_unit(plane, symmetric), np.ones((zoom, zoom), np.uint8))
        top, left = (index // columns) * (h * zoom + gap), (index % columns) * (w * zoom + gap)
        canvas[top : top + h * zoom, left : left + w * zoom] = tile
    return canvas


def _strip(vector, width=480, height=14):
    """A vector (a fully connected layer's output) as one row of grey cells."""
    cell = max(2, width // len(vector))
    return np.kron(_unit(vector)[None, :], np.ones((height, cell), np.uint8))


def _layer_outputs(net, x):
    """``[(name, kind, output)]`` of every layer of a ``Sequential`` run in order on ``x`` (eval mode)."""
    outputs = []
    for name, layer in net.named_children():
        x = layer(x)
        outputs.append((name, type(layer).__name__, to_host(x)))
    return outputs


def _layer_pictures(outputs, item):
    pictures = []
    for name, kind, out in outputs:
        value = out[item]
        # maps of one pixel (C5's 120x1x1) are a vector: one grey cell each, scaled together
        picture = _grid(value) if value.ndim == 3 and value.shape[1] * value.shape[2] > 1 else _strip(value.ravel())
        pictures.append({"name": name, "kind": kind, "shape": "x".join(map(str, value.shape)), "png": _png(picture)})
    return pictures


def _chosen(labels, predictions, images, misclassified):
    """Test indices on the page: ``images`` spread evenly over the test set (a split stored class by class
    still shows every class) and up to ``misclassified`` wrong ones, in order."""
    wrong = np.flatnonzero(predictions != labels)[:misclassified]
    spread = np.linspace(0, len(labels) - 1, min(images, len(labels))).round().astype(int) if images else []
    return sorted(set(int(i) for i in spread) | set(int(i) for i in wrong))


def _check_counts(flag="", **counts):
    """``images`` >= 1 (the page steps through at least one test image) and ``misclassified`` >= 0, as ints."""
    for name, value in counts.items():
        least = 1 if name == "images" else 0
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"explore: {flag}{name} must be an int, got {type(value).__name__} {value!r}")
        if value < least:
            raise ValueError(f"explore: {flag}{name} must be >= {least}, got {value}")


def page_data(run_dir, *, images=24, misclassified=24):
    """What the page shows, as JSON-ready data: model, accuracy, filters, and one record per chosen test image."""
    from .data import load_dataset, to_network_input
    from .graph import Sequential
    from .io import class_names, load_model
    from .plots import _conv_layers
    from .train import predict

    _check_counts(images=images, misclassified=misclassified)
    run_dir = Path(run_dir)
    net, config = load_model(run_dir), _run_config(run_dir)
    test_images, labels = load_dataset(config.get("dataset", "mnist-5k"), "test", root=config.get("data_root"),
                                       size=config.get("test_size"), seed=config.get("seed", 0))
    probabilities = predict(net, test_images)
    predictions = probabilities.argmax(axis=1)
    chosen = _chosen(labels, predictions, images, misclassified)
    outputs = _layer_outputs(net, to_network_input(test_images[chosen])) if isinstance(net, Sequential) else []
    records = [{"index": index, "label": int(labels[index]), "predicted": int(predictions[index]),
                "probabilities": [round(float(p), 4) for p in probabilities[index]],
                "digit": _png(np.kron(test_images[index], np.ones((4, 4), np.uint8))),
                "layers": _layer_pictures(outputs, item)} for item, index in enumerate(chosen)]
    convs = _conv_layers(net)
    filters = None
    if convs:
        name, conv = convs[0]
        weights = to_host(conv.weight.data)
        filters = {"name": name, "shape": "x".join(map(str, weights.shape)),
                   "png": _png(_grid(weights.reshape(-1, *weights.shape[2:]), symmetric=True))}
    return {"run": run_dir.name, "model": config.get("model", "?"), "dataset": config.get("dataset", "?"),
            "test_size": int(len(labels)), "accuracy": float(np.mean(predictions == labels)),
            "classes": class_names(config.get("dataset", "mnist-5k")), "filters": filters, "images": records,
            "misclassified": int(np.sum(predictions != labels)),
            "note": "" if outputs else "layer outputs are shown for Sequential models only"}


def _run_config(run_dir):
    from .io import METRICS_FILE

    path = run_dir / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"explore: no {METRICS_FILE} in {run_dir}: give the folder `minicnn train --out` wrote")
    return json.loads(path.read_text(encoding="utf-8")).get("config", {})


def explore(run_dir, out=None, *, images=24, misclassified=24):
    """Write the explorer page of run ``run_dir`` to ``out`` (default ``RUN_DIR/explore.html``); its path."""
    data = page_data(run_dir, images=images, misclassified=misclassified)
    out = Path(run_dir) / PAGE_FILE if out is None else Path(out)
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"minicnn explorer: {data['model']} of {data['run']}")
    template = resources.files(__package__).joinpath("explore_page.html").read_text(encoding="utf-8")
    out.write_text(template.replace("__TITLE__", title).replace("__DATA__", payload), encoding="utf-8")
    return out


def add_parser(subparsers):
    p = subparsers.add_parser(
        "explore",
        help="write a self-contained HTML page to step through a trained model's feature maps and predictions",
        description=("Write RUN_DIR/explore.html: test images to step through (buttons or arrow keys), every layer's "
                     "feature maps, the C1 filters, the ten probabilities and the misclassified digits of your model. "
                     "Open it in any browser; it needs no server and no network.\n\nexample: minicnn explore runs/lenet5"),
    )
    p.add_argument("run_dir", help="a run directory written by `minicnn train` (model.npz, metrics.json)")
    p.add_argument("--out", help=f"where to write the page (default RUN_DIR/{PAGE_FILE})")
    p.add_argument("--images", type=int, default=24, help="test images to include, spread over the test set (default 24)")
    p.add_argument("--misclassified", type=int, default=24, help="misclassified images to include (default 24)")
    return p


def run(args):
    _check_counts("--", images=args.images, misclassified=args.misclassified)
    path = explore(args.run_dir, args.out, images=args.images, misclassified=args.misclassified)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): open it in a browser")
    return 0


