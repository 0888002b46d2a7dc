"""Files: npz trees written atomically, saved models and training checkpoints.

A model file (``model.npz``) holds the weights and what is needed to rebuild
the network (model name and arguments, or for an imported network the graph
itself, as ``minicnn.graph_spec`` describes it); a checkpoint (``checkpoint.npz``)
holds everything a training run needs to continue exactly (model, optimizer,
scheduler, generator states, history). Both are npz files of one "tree": a
JSON skeleton of dicts, lists and numbers whose arrays are stored as npz
entries. Every write goes through a temporary file and ``os.replace``, so a
crash mid-write leaves the previous file as it was; any damage to a file read
back is one ``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .arrays import is_array, to_host

__all__ = [
    "write_npz_atomic",
    "read_npz_tree",
    "write_json_atomic",
    "atomic_file",
    "build_model",
    "model_names",
    "write_model",
    "model_info",
    "load_model",
    "load_checkpoint",
    "class_names",
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "METRICS_FILE",
    "FORMAT_VERSION",
    "GRAPH_MODEL",
]

CHECKPOINT_FILE = "checkpoint.npz"
MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.json"
FORMAT_VERSION = 1
#: The ``model`` entry of a file whose network is not a zoo builder but a stored graph description
#: (``meta["graph"]``, see ``minicnn.graph_spec``): what ``minicnn import`` writes.
GRAPH_MODEL = "graph"
_TREE_KEY = "__tree__"


def _pack(obj, path, arrays):
    """Split ``obj`` into a JSON skeleton and the arrays it holds (stored as npz entries named by their path)."""
    if is_array(obj):
        key = path or "array"
        while key in arrays or key == _TREE_KEY:
            key += "_"
        arrays[key] = to_host(obj)
        return {"__array__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _pack(v, f"{path}/{k}" if path else k, arrays) for k, v in obj.items()}
        return {"__items__": [[_pack(k, path, {}), _pack(v, f"{path}/{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in an npz file: {obj!r}")


def _unpack(skeleton, arrays):
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            key = skeleton["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise _DamagedTree(f"its metadata refers to an array {key!r} that the file does not hold")
            return arrays[key]
        if set(skeleton) == {"__items__"}:
            items = skeleton["__items__"]
            if not isinstance(items, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
                raise _DamagedTree("its metadata has a malformed '__items__' entry")
            return {_hashable(_unpack(k, arrays)): _unpack(v, arrays) for k, v in items}
        return {k: _unpack(v, arrays) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_unpack(v, arrays) for v in skeleton]
    return skeleton


class _DamagedTree(ValueError):
    """The JSON skeleton of an npz tree does not fit its arrays (a hand-edited or damaged file)."""


def _hashable(key):
    if isinstance(key, (dict, list)) or is_array(key):
        raise _DamagedTree(f"its metadata has a dictionary key that is not a number or a string: {key!r}")
    return key


def write_npz_atomic(path, tree):
    """Write ``tree`` to ``path`` as npz through a temporary file and ``os.replace``.

    A crash (or a full disk) mid-write leaves the previous file untouched, and
    no temporary file behind.
    """
    path = Path(path)
    arrays = {}
    skeleton = _pack(tree, "", arrays)
    arrays[_TREE_KEY] = np.array(json.dumps(skeleton))
    with atomic_file(path, "wb") as f:
        np.savez(f, **arrays)


def read_npz_tree(path, what, kind="model"):
    """The tree stored by :func:`write_npz_atomic`; any damage is one ``ValueError`` naming ``path`` and ``kind``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no such file {path}")
    not_ours = f"{what}: {path} is not a minicnn {kind} file"
    if path.stat().st_size == 0:
        raise ValueError(f"{not_ours} (it is empty: 0 bytes)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{not_ours} (not a readable .npz file: truncated or corrupt zip, no end-of-archive record)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError) as exc:
        raise ValueError(f"{not_ours} (not a readable .npz file: truncated or corrupt zip: {type(exc).__name__}: {exc})") from None
    if _TREE_KEY not in arrays:
        raise ValueError(f"{not_ours}: it is an .npz file but not one written by minicnn (no {_TREE_KEY!r} entry)")
    text = arrays.pop(_TREE_KEY)
    if text.shape != () or text.dtype.kind != "U":
        raise ValueError(f"{not_ours} (damaged: its {_TREE_KEY!r} entry is a {text.dtype} array of shape {text.shape}, not text)")
    try:
        return _unpack(json.loads(str(text)), arrays)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{not_ours} (damaged: its metadata is not valid JSON: {exc})") from None
    except _DamagedTree as exc:
        raise ValueError(f"{not_ours} (damaged: {exc})") from None
    except RecursionError:
        raise ValueError(f"{not_ours} (damaged: its metadata is nested too deeply)") from None




# --------------------------------------------------------------------------- models
def build_model(name="lenet5", *, seed=0, **kwargs):
    """``minicnn.models.<name>(seed=seed, **kwargs)``, with a clear error for an unknown name."""
    from . import models

    factory = getattr(models, name, None) if isinstance(name, str) and not name.startswith("_") else None
    if not callable(factory):
        raise ValueError(f"unknown model {name!r}; minicnn.models has: {', '.join(model_names())}")
    return factory(seed=seed, **kwargs)


def model_names():
    """Names of the model builders in :mod:`minicnn.models` (their ``__all__``)."""
    from . import models

    names = getattr(models, "__all__", None) or [n for n in dir(models) if not n.startswith("_")]
    return [n for n in names if callable(getattr(models, n, None)) and not isinstance(getattr(models, n), type)]


def write_model(path, net, *, model, model_kwargs, dataset, config=None, extra=None):
    """Write ``net``'s weights and how to rebuild it (``models.<model>(**model_kwargs)``) to ``path`` (npz, atomically)."""
    meta = {
        "format": "minicnn-model",
        "version": FORMAT_VERSION,
        "model": model,
        "model_kwargs": model_kwargs,
        "dataset": dataset,
        "class_names": class_names(dataset),
        "config": config if config is not None else {},
        **(extra or {}),
    }
    write_npz_atomic(path, {"meta": meta, "state_dict": net.state_dict()})


# Metadata a model file must carry, with the type each entry must have.
_META_FIELDS = {"model": str, "model_kwargs": dict, "dataset": str}


def _read_model(path):
    """``(meta, tree)`` of a ``model.npz``, with the metadata and ``state_dict`` checked for shape and type."""
    path = _model_path(path)
    tree = read_npz_tree(path, "load_model", "model")
    meta = tree.get("meta") if isinstance(tree, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "minicnn-model":
        raise ValueError(f"load_model: {path} is not a minicnn model file (a checkpoint? use the run's {MODEL_FILE})")
    damaged = f"load_model: {path} is a damaged minicnn model file"
    for name, kind in _META_FIELDS.items():
        if not isinstance(meta.get(name), kind):
            got = "missing" if name not in meta else f"a {type(meta[name]).__name__}: {meta[name]!r}"
            raise ValueError(f"{damaged}: metadata entry {name!r} must be a {kind.__name__}, it is {got}")
    names = meta.get("class_names")
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError(f"{damaged}: metadata entry 'class_names' must be a list of strings, it is {names!r}")
    if "config" in meta and not isinstance(meta["config"], dict):
        raise ValueError(f"{damaged}: metadata entry 'config' must be a dict, it is {meta['config']!r}")
    if not isinstance(tree.get("state_dict"), dict):
        got = "missing" if "state_dict" not in tree else f"a {type(tree['state_dict']).__name__}"
        raise ValueError(f"{damaged}: its 'state_dict' (the weights) must be a dict of arrays, it is {got}")
    return meta, tree


def model_info(path):
    """The metadata stored beside the weights in a ``model.npz`` (model name, arguments, data set, accuracy)."""
    return _read_model(path)[0]


def load_model(path):
    """Rebuild the network saved in ``path`` (a ``model.npz`` or a run directory holding one), in eval mode.

    A truncated, corrupt or hand-edited file, and weights of the wrong name,
    shape or dtype (complex, integer), raise one ``ValueError`` naming the file.
    """
    path = _model_path(path)
    meta, tree = _read_model(path)
    net = _rebuild(path, meta)
    try:
        net.load_state_dict(tree["state_dict"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model: {path} does not hold usable weights: {exc}") from None
    for name, value in tree["state_dict"].items():
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:  # a trained model never holds these (training stops when the loss does): a damaged file
            raise ValueError(f"load_model: {path} does not hold usable weights: {name} has {bad} NaN or infinite values")
    return net.eval()


def _rebuild(path, meta):
    """The network a model file describes: ``models.<model>(**model_kwargs)``, or its stored graph (``GRAPH_MODEL``)."""
    if meta["model"] == GRAPH_MODEL:
        from .graph_spec import build_graph

        try:
            return build_graph(meta.get("graph"))
        except ValueError as exc:
            raise ValueError(f"load_model: {path} is a damaged minicnn model file: {exc}") from None
    try:
        return build_model(meta["model"], **meta["model_kwargs"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"load_model: {path} is a damaged minicnn model file: cannot rebuild model {meta['model']!r} with "
            f"model_kwargs {meta['model_kwargs']!r} ({exc})"
        ) from None


def _model_path(path):
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def class_names(dataset):
    if dataset == "fashion-mnist":
        from .data import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    return [str(d) for d in range(10)]



# --------------------------------------------------------------------------- checkpoints
def load_checkpoint(path):
    """The contents of a ``checkpoint.npz`` (or a run directory's): model, optimizer, scheduler, RNG states, history."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    tree = read_npz_tree(path, "load_checkpoint", "checkpoint")
    if not isinstance(tree, dict) or tree.get("format") != "minicnn-checkpoint":
        raise ValueError(f"load_checkpoint: {path} is not a minicnn checkpoint")
    for name, kinds in _CHECKPOINT_FIELDS.items():
        value = tree.get(name)
        if name not in tree or isinstance(value, bool) or not isinstance(value, kinds):
            got = "missing" if name not in tree else f"a {type(value).__name__}: {_short(value)}"
            wanted = " or ".join("None" if k is type(None) else k.__name__ for k in kinds)
            raise ValueError(f"load_checkpoint: {path} is a damaged minicnn checkpoint: entry {name!r} must be {wanted}, it is {got}")
    if tree["epoch"] < 0:
        raise ValueError(f"load_checkpoint: {path} is a damaged minicnn checkpoint: epoch {tree['epoch']} < 0")
    return tree


# Entries a checkpoint must hold, with their types.
_CHECKPOINT_FIELDS = {
    "epoch": (int,),
    "config": (dict,),
    "model": (dict,),
    "optimizer": (dict,),
    "scheduler": (dict, type(None)),
    "rng": (dict,),
    "history": (list,),
    "time_s": (int, float),
}


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."



# --------------------------------------------------------------------------- atomic files
def write_json_atomic(path, obj):
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


@contextlib.contextmanager
def atomic_file(path, mode):
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step (``os.replace``).

    A crash or a full disk mid-write leaves the previous file untouched and
    removes the temporary one; the temporaries a killed process could not
    remove (``.<name>.<pid>.<hex>.tmp`` of a process that has ended) are
    removed by the next write of the same file
    (:func:`minicnn.data._tempfiles.remove_stale_temporaries`). (The name is
    made here rather than with ``tempfile.mkstemp`` so the file gets the usual
    permissions, not 0600.)
    """
    from .data._tempfiles import remove_stale_temporaries, temporary_path

    path = Path(path)
    remove_stale_temporaries(path, "tmp")
    tmp = temporary_path(path, "tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
