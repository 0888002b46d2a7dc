"""Training LeNet-5: the loop, its metrics, checkpoints that resume exactly, and saved models.

The recipe is the one of deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
Stochastic Gradient Descend": mini-batch SGD on the softmax cross-entropy
(eq. 3), with momentum (``v := γ v + η ∇J``, ``θ := θ - v``) and a learning
rate η that "en general disminuye a lo largo del entrenamiento, a cada epoch"
(here a cosine or step schedule, one step per epoch). Light data
augmentation (small shifts and rotations, deck 004_d4430ea77d2b90c2.txt,
"Time to Code: Aumentado de datos") keeps 4,000 digits from being memorised.

>>> from minicnn.train import TrainConfig, train
>>> metrics = train(TrainConfig(out="runs/demo"))          # doctest: +SKIP
>>> metrics["test_accuracy"]                                # doctest: +SKIP
0.98

A run directory holds ``metrics.json``, ``model.npz`` (weights plus what is
needed to rebuild the network, see :func:`load_model`), ``checkpoint.npz``
(written atomically after every epoch; ``train(config, resume=True)``
continues from it and reaches bit-for-bit the weights of an uninterrupted
run) and the figures of :mod:`minicnn.plots`.

Reproducibility: every random draw of epoch ``e`` (shuffling, augmentation,
dropout masks) comes from generators derived from ``(seed, e)`` with
``numpy.random.SeedSequence``, so an epoch does not depend on how many
numbers an earlier one consumed, and the checkpoint stores the generator
states the next epoch starts from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .backends import current_backend_name, single_threaded_blas, use_backend

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "Evaluation",
    "train",
    "evaluate",
    "predict",
    "build_model",
    "load_model",
    "model_info",
    "save_model",
    "load_checkpoint",
    "epoch_generators",
    "default_run_dir",
    "SCHEDULES",
    "CHECKPOINT_FILE",
    "MODEL_FILE",
    "METRICS_FILE",
]

SCHEDULES = ("cosine", "step", "constant")
CHECKPOINT_FILE = "checkpoint.npz"
MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.json"
_FORMAT_VERSION = 1
_TREE_KEY = "__tree__"
# Order of the per-epoch generators spawned from SeedSequence(seed, spawn_key=(epoch,)).
_STREAMS = ("shuffle", "augment", "dropout")
# Fields that may differ between a checkpoint and the config that resumes it:
# where the run lives and whether figures are drawn. The backend may be named or left to the default,
# but must be the one that computed the checkpoint (``_check_same_arithmetic``).
_RESUME_FREE_FIELDS = ("out", "backend", "plots")
# Data sets trained without augmentation unless asked (see TrainConfig.augment).
_UNAUGMENTED_DATASETS = ("fashion-mnist",)


def default_run_dir(root="runs"):
    """``runs/<YYYYmmdd-HHMMSS>``: a fresh run directory named after the local time."""
    return Path(root) / time.strftime("%Y%m%d-%H%M%S")


class TrainingDiverged(FloatingPointError, ValueError):
    """The loss became NaN or infinite: the step size was too large for this network and data."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in ``metrics.json``, ``model.npz`` and checkpoints).

    The defaults train LeNet-5 (ReLU, max pooling) on the bundled mnist-5k
    digits to about 98% test accuracy (20 epochs, well under two minutes with the "cython" backend).
    """

    dataset: str = "mnist-5k"
    epochs: int = 20
    batch_size: int = 32
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # "cosine" (to 0 at the last epoch), "step" (x gamma every step_size epochs), "constant"
    step_size: int | None = None  # for "step"; None means a third of the epochs
    gamma: float = 0.1  # for "step"
    activation: str = "relu"
    pool: str = "max"
    model: str = "lenet5"
    backend: str | None = None  # None: the current default ("cython" when built)
    seed: int = 0
    augment: bool | None = None  # None: on for digits, off for fashion-mnist (see __post_init__)
    max_shift: int = 2  # pixels, for augmentation
    max_rotation: float = 10.0  # degrees, for augmentation
    data_root: Path | None = None
    size: int | None = None  # training images: "plates" generates this many, other sets keep a random subset
    test_size: int | None = None  # the same for the test split
    eval_batch_size: int = 500
    plots: bool = True
    out: Path = field(default_factory=default_run_dir)

    def __post_init__(self):
        self.out = Path(self.out)
        if self.augment is None:
            # Augmentation regularises: 4,000 digits need it, while LeNet-5 already underfits
            # Fashion-MNIST's 60,000 garments (measured: 89.4% with it, 90.7% without, 15 epochs).
            self.augment = self.dataset not in _UNAUGMENTED_DATASETS
        if not isinstance(self.augment, bool):
            raise TypeError(f"TrainConfig: augment must be True, False or None (automatic), got {self.augment!r}")
        if self.data_root is not None:
            self.data_root = Path(self.data_root)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("eval_batch_size", self.eval_batch_size, 1)
        _check_int("seed", self.seed, 0)
        _check_int("max_shift", self.max_shift, 0)
        for name in ("size", "test_size", "step_size"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        _check_number("lr", self.lr, lambda v: v > 0, "> 0")
        _check_number("momentum", self.momentum, lambda v: 0 <= v < 1, "in [0, 1)")
        _check_number("weight_decay", self.weight_decay, lambda v: v >= 0, ">= 0")
        _check_number("gamma", self.gamma, lambda v: 0 < v <= 1, "in (0, 1]")
        _check_number("max_rotation", self.max_rotation, lambda v: v >= 0, ">= 0")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("dataset", "activation", "pool", "model"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"TrainConfig: {name} must be a string, got {getattr(self, name)!r}")
        if self.backend is not None and not isinstance(self.backend, str):
            raise TypeError(f"TrainConfig: backend must be a backend name or None, got {self.backend!r}")

    def to_dict(self):
        """A JSON-ready dict (paths as strings)."""
        out = dataclasses.asdict(self)
        for name in ("out", "data_root"):
            if out[name] is not None:
                out[name] = str(out[name])
        return out

    @classmethod
    def from_dict(cls, values):
        """Rebuild a config from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"TrainConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**values)


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"TrainConfig: {name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"TrainConfig: {name} must be >= {minimum}, got {value}")


def _check_number(name, value, ok, rule):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"TrainConfig: {name} must be a number, got {type(value).__name__} {value!r}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"TrainConfig: {name} must be finite and {rule}, got {value}")


# --------------------------------------------------------------------------- random streams
def epoch_generators(seed, epoch):
    """The generators of epoch ``epoch`` (1-based): ``{"shuffle", "augment", "dropout"}``.

    Derived from ``SeedSequence(seed, spawn_key=(epoch,))``, so each epoch's
    draws depend only on ``(seed, epoch)``: resuming after epoch ``e`` replays
    epoch ``e + 1`` exactly as an uninterrupted run would.
    """
    sequence = np.random.SeedSequence(seed, spawn_key=(epoch,))
    return {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(_STREAMS, sequence.spawn(len(_STREAMS)))}


def _generators_state(generators):
    return {name: gen.bit_generator.state for name, gen in generators.items()}


def _generators_from_state(states):
    missing = [name for name in _STREAMS if not isinstance(states.get(name), dict)]
    if missing:
        raise ValueError(f"no generator state for {', '.join(missing)}")
    generators = {}
    for name in _STREAMS:
        bit_generator = np.random.PCG64()
        bit_generator.state = states[name]
        generators[name] = np.random.Generator(bit_generator)
    return generators


def _seed_dropout(net, generator):
    """Make every layer that draws random masks (``Dropout``: a ``.rng`` Generator) draw from ``generator``.

    The layers share it and draw in forward order, which is the same in every run.
    """
    for module in _modules(net):
        if isinstance(getattr(module, "rng", None), np.random.Generator):
            module.rng = generator
            if hasattr(module, "_gpu_rng"):
                module._gpu_rng = None  # re-seeded from module.rng at its next GPU forward


def _modules(net):
    return net.modules() if hasattr(net, "modules") else [net]


# --------------------------------------------------------------------------- npz trees
def _is_array(a):
    return isinstance(a, np.ndarray) or type(a).__module__.startswith("cupy")


def _host(a):
    return a.get() if type(a).__module__.startswith("cupy") else np.asarray(a)


def _pack(obj, path, arrays):
    """Split ``obj`` into a JSON skeleton and the arrays it holds (stored as npz entries named by their path)."""
    if _is_array(obj):
        key = path or "array"
        while key in arrays or key == _TREE_KEY:
            key += "_"
        arrays[key] = _host(obj)
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
    if isinstance(key, (dict, list)) or _is_array(key):
        raise _DamagedTree(f"its metadata has a dictionary key that is not a number or a string: {key!r}")
    return key


def _write_npz_atomic(path, tree):
    """Write ``tree`` to ``path`` as npz through a temporary file and ``os.replace``.

    A crash (or a full disk) mid-write leaves the previous file untouched, and
    no temporary file behind.
    """
    path = Path(path)
    arrays = {}
    skeleton = _pack(tree, "", arrays)
    arrays[_TREE_KEY] = np.array(json.dumps(skeleton))
    with _atomic_file(path, "wb") as f:
        np.savez(f, **arrays)


def _read_npz_tree(path, what, kind="model"):
    """The tree stored by :func:`_write_npz_atomic`; any damage is one ``ValueError`` naming ``path`` and ``kind``."""
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
def _model_kwargs(config):
    return {"activation": config.activation, "pool": config.pool, "num_classes": 10}


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


def save_model(path, net, config, *, extra=None):
    """Write ``net``'s weights and how to rebuild it (model name and arguments) to ``path`` (npz, atomically)."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    meta = {
        "format": "minicnn-model",
        "version": _FORMAT_VERSION,
        "model": config.model,
        "model_kwargs": _model_kwargs(config),
        "dataset": config.dataset,
        "class_names": _class_names(config.dataset),
        "config": config.to_dict(),
        **(extra or {}),
    }
    _write_npz_atomic(path, {"meta": meta, "state_dict": net.state_dict()})


# Metadata a model file must carry, with the type each entry must have.
_META_FIELDS = {"model": str, "model_kwargs": dict, "dataset": str}


def _read_model(path):
    """``(meta, tree)`` of a ``model.npz``, with the metadata and ``state_dict`` checked for shape and type."""
    path = _model_path(path)
    tree = _read_npz_tree(path, "load_model", "model")
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
    try:
        net = build_model(meta["model"], **meta["model_kwargs"])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"load_model: {path} is a damaged minicnn model file: cannot rebuild model {meta['model']!r} with "
            f"model_kwargs {meta['model_kwargs']!r} ({exc})"
        ) from None
    try:
        net.load_state_dict(tree["state_dict"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"load_model: {path} does not hold usable weights: {exc}") from None
    for name, value in tree["state_dict"].items():
        bad = int(np.count_nonzero(~np.isfinite(value)))
        if bad:  # a trained model never holds these (training stops when the loss does): a damaged file
            raise ValueError(f"load_model: {path} does not hold usable weights: {name} has {bad} NaN or infinite values")
    return net.eval()


def _model_path(path):
    path = Path(path)
    return path / MODEL_FILE if path.is_dir() else path


def _class_names(dataset):
    if dataset == "fashion-mnist":
        from .data import FASHION_MNIST_CLASSES

        return list(FASHION_MNIST_CLASSES)
    return [str(d) for d in range(10)]


# --------------------------------------------------------------------------- evaluation
class Evaluation(NamedTuple):
    """Mean softmax cross-entropy, accuracy in [0, 1] and the predicted class of every sample."""

    loss: float
    accuracy: float
    predictions: np.ndarray


def _device_xp(net):
    for param in net.parameters():
        if type(param.data).__module__.startswith("cupy"):
            import cupy

            return cupy
        break
    return np


def _logits_in_batches(net, x, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    xp = _device_xp(net)
    was_training = getattr(net, "training", False)
    net.eval()
    try:
        for start in range(0, len(x), batch_size):
            yield start, net(xp.asarray(x[start : start + batch_size]))
    finally:
        net.train(was_training)


def evaluate(net, x, y, batch_size=500):
    """Loss, accuracy and predictions of ``net`` on network input ``x`` (N, 1, 32, 32) with labels ``y``.

    Runs in eval mode (no dropout) batch by batch and restores the previous
    mode. The loss is the softmax cross-entropy averaged over all N samples.
    """
    from .nn import SoftmaxCrossEntropy

    y = np.asarray(y)
    if len(x) != len(y) or len(y) == 0:
        raise ValueError(f"evaluate: x and y must have the same, non-zero length, got {len(x)} and {len(y)}")
    loss_fn = SoftmaxCrossEntropy()
    total_loss = 0.0
    predictions = np.empty(len(y), dtype=np.int64)
    for start, logits in _logits_in_batches(net, x, batch_size):
        labels = y[start : start + len(logits)]
        total_loss += loss_fn(logits, labels) * len(labels)
        predictions[start : start + len(labels)] = _host(logits.argmax(axis=1))
    return Evaluation(total_loss / len(y), float(np.mean(predictions == y)), predictions)


def predict(net, images, batch_size=500):
    """Class probabilities (softmax of the logits) for ``images``.

    ``images``: uint8 digits as loaded, (28, 28) or (N, 28, 28), which are
    padded and normalised here; or network input, float (N, 1, 32, 32).
    Returns float (N, 10), or (10,) for one 2-D image.
    """
    from .data import to_network_input
    from .nn import softmax

    images = np.asarray(images)
    single = images.ndim == 2
    x = images if images.dtype.kind == "f" else to_network_input(images)
    if x.ndim != 4:
        raise ValueError(f"predict: images must be (H, W), (N, H, W) uint8 or (N, 1, H, W) float, got shape {images.shape}")
    probabilities = np.concatenate([_host(softmax(logits)) for _, logits in _logits_in_batches(net, x, batch_size)])
    return probabilities[0] if single else probabilities


# --------------------------------------------------------------------------- checkpoints
def load_checkpoint(path):
    """The contents of a ``checkpoint.npz`` (or a run directory's): model, optimizer, scheduler, RNG states, history."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    tree = _read_npz_tree(path, "load_checkpoint", "checkpoint")
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


def _check_real_arrays(state, where):
    """Refuse complex, integer or non-numeric arrays where floating-point state belongs (they would be cast silently)."""
    for name, value in state.items():
        if _is_array(value) and value.dtype.kind != "f" and value.ndim > 0:
            raise ValueError(f"{where} entry {name} has dtype {value.dtype}; expected float32 or float64")


def _make_scheduler(config, optimizer):
    from . import optim

    if config.schedule == "cosine":
        return optim.CosineLR(optimizer, config.epochs, min_lr=0.0)
    if config.schedule == "step":
        step_size = config.step_size or max(1, config.epochs // 3)
        return optim.StepLR(optimizer, step_size, config.gamma)
    return None


def _check_resumable(config, saved):
    differences = [
        f"{name}: checkpoint {saved.get(name)!r}, now {value!r}"
        for name, value in config.to_dict().items()
        if name not in _RESUME_FREE_FIELDS and saved.get(name) != value
    ]
    if differences:
        raise ValueError(
            "cannot resume: the checkpoint was made with other settings ("
            + "; ".join(differences)
            + "); resume with the same settings or start a new run in another --out"
        )


def _kernel_isa(backend):
    """The instruction set the CPU kernels run with ("" for backends without CPU kernels)."""
    from .backends import get_backend

    return getattr(get_backend(backend), "kernel_isa", "") if backend == "cython" else ""


def _check_same_arithmetic(saved, backend):
    """A resumed run ends with the same bits as an uninterrupted one only if the same kernels compute it:
    another backend sums in another order (the last bits differ), so a change of backend is refused; the
    cython kernels' instruction set may differ on another machine, which is allowed with a warning."""
    before = saved.get("backend")
    if before and before != backend:
        raise ValueError(
            f"cannot resume: the checkpoint was computed with the {before!r} backend and this run would use "
            f"{backend!r}; they round sums differently, so the result would not be the one an uninterrupted run "
            f"gives. Resume with --backend {before} (or start a new run in another --out)"
        )
    isa_before, isa_now = saved.get("kernel_isa", ""), _kernel_isa(backend)
    if isa_before and isa_now and isa_before != isa_now:
        import warnings

        warnings.warn(
            f"resuming a run whose kernels ran for {isa_before} with kernels for {isa_now} (another machine or "
            f"build): the result will differ from an uninterrupted run in the last bits", RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------- the loop
def train(config=None, *, resume=False, progress=True, overwrite=False):
    """Train ``config.model`` as ``config`` says; return the metrics dict also written to ``metrics.json``.

    ``resume=True`` continues from ``config.out/checkpoint.npz`` (made with
    the same settings) and ends with the same weights and metrics, times
    aside, as a run that was never interrupted. Without ``resume`` a run
    directory that already holds a run is refused unless ``overwrite``.
    ``progress`` shows a tqdm bar per epoch (loss, accuracy, images/s).

    Raises :class:`TrainingDiverged` when the loss turns NaN or infinite; the
    checkpoint of the last finished epoch is left as it was.
    """
    from tqdm.auto import tqdm

    from . import optim
    from .data import augment, batches, load_dataset, to_network_input
    from .nn import SoftmaxCrossEntropy

    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    out = config.out
    checkpoint_path = out / CHECKPOINT_FILE
    saved = None
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}; train without resume to start this run")
        saved = load_checkpoint(checkpoint_path)
        _check_resumable(config, saved["config"])
    elif not overwrite and any((out / name).exists() for name in (CHECKPOINT_FILE, MODEL_FILE)):
        raise FileExistsError(
            f"{out} already holds a training run; resume it (--resume), overwrite it (--overwrite) or choose another --out"
        )

    backend = config.backend or current_backend_name()
    if saved is not None:
        _check_same_arithmetic(saved, backend)
    with use_backend(backend), single_threaded_blas():
        net = build_model(config.model, seed=config.seed, **_model_kwargs(config))
        if backend == "cupy":
            net.to("gpu")
        data_kwargs = {"root": config.data_root, "seed": config.seed}
        train_images, train_labels = load_dataset(config.dataset, "train", size=config.size, **data_kwargs)
        test_images, test_labels = load_dataset(config.dataset, "test", size=config.test_size, **data_kwargs)
        for split, labels in (("training", train_labels), ("test", test_labels)):
            if len(labels) == 0:  # checked before the first epoch, not after it
                raise ValueError(f"train: the {split} split of {config.dataset} is empty; nothing to train or score on")
        x_test = to_network_input(test_images)
        xp = _device_xp(net)

        loss_fn = SoftmaxCrossEntropy()
        optimizer = optim.SGD(net.parameters(), config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        scheduler = _make_scheduler(config, optimizer)
        history, time_s, start_epoch = [], 0.0, 0
        generators = epoch_generators(config.seed, 1)
        if saved is not None:
            section = "model"
            try:
                net.load_state_dict(saved["model"])
                section = "optimizer"
                _check_real_arrays(saved["optimizer"], "optimizer")
                optimizer.load_state_dict(saved["optimizer"])
                section = "scheduler"
                if scheduler is not None:
                    if saved["scheduler"] is None:
                        raise ValueError(f"there is none for the {config.schedule!r} schedule")
                    scheduler.load_state_dict(saved["scheduler"])
                section = "rng"
                generators = _generators_from_state(saved["rng"])
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                detail = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ValueError(
                    f"cannot resume from {checkpoint_path}: the checkpoint is damaged (its {section!r} entry: {detail})"
                ) from None
            history, time_s, start_epoch = saved["history"], saved["time_s"], saved["epoch"]

        out.mkdir(parents=True, exist_ok=True)
        n_train = len(train_labels)
        n_batches = math.ceil(n_train / config.batch_size)
        for epoch in range(start_epoch + 1, config.epochs + 1):
            started = time.perf_counter()
            lr = float(optimizer.lr)
            _seed_dropout(net, generators["dropout"])
            net.train()
            loss_sum, correct, seen = 0.0, 0, 0
            bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress, leave=True)
            try:
                batch_stream = batches(train_images, train_labels, config.batch_size, shuffle=True, seed=generators["shuffle"])
                for index, (images, labels) in enumerate(batch_stream, start=1):
                    if config.augment:
                        images = augment(images, generators["augment"], max_shift=config.max_shift, max_rotation=config.max_rotation)
                    logits = net(xp.asarray(to_network_input(images)))
                    loss = loss_fn(logits, labels)
                    if not math.isfinite(loss):
                        raise TrainingDiverged(
                            f"training diverged: the loss is {loss} at epoch {epoch}/{config.epochs}, batch "
                            f"{index}/{n_batches} (lr = {lr:g}); try a lower learning rate, e.g. --lr {lr / 10:g}. "
                            + _last_good(checkpoint_path, start_epoch, epoch)
                        )
                    optimizer.zero_grad()
                    net.backward(loss_fn.backward())
                    optimizer.step()
                    loss_sum += loss * len(labels)
                    correct += int(_host((logits.argmax(axis=1) == xp.asarray(labels)).sum()))
                    seen += len(labels)
                    bar.update(1)
                    rate = seen / (time.perf_counter() - started)
                    bar.set_postfix({"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.2%}", "img/s": f"{rate:.0f}"}, refresh=False)
                train_seconds = time.perf_counter() - started
                test = evaluate(net, x_test, test_labels, config.eval_batch_size)
                if not math.isfinite(test.loss):
                    raise TrainingDiverged(
                        f"training diverged: the test loss is {test.loss} after epoch {epoch}/{config.epochs} "
                        f"(lr = {lr:g}); try a lower learning rate, e.g. --lr {lr / 10:g}. "
                        + _last_good(checkpoint_path, start_epoch, epoch)
                    )
                bar.set_postfix(
                    {
                        "loss": f"{loss_sum / seen:.4f}",
                        "acc": f"{correct / seen:.2%}",
                        "img/s": f"{seen / train_seconds:.0f}",
                        "test_acc": f"{test.accuracy:.2%}",
                    }
                )
            finally:
                bar.close()
            seconds = time.perf_counter() - started
            time_s += seconds
            history.append(
                {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": loss_sum / seen,
                    "train_accuracy": correct / seen,
                    "test_loss": test.loss,
                    "test_accuracy": test.accuracy,
                    "seconds": seconds,
                    "images_per_s": seen / train_seconds,
                }
            )
            if scheduler is not None:
                scheduler.step()
            generators = epoch_generators(config.seed, epoch + 1)
            _write_npz_atomic(
                checkpoint_path,
                {
                    "format": "minicnn-checkpoint",
                    "version": _FORMAT_VERSION,
                    "epoch": epoch,
                    "config": config.to_dict(),
                    "backend": backend,
                    "kernel_isa": _kernel_isa(backend),
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "rng": _generators_state(generators),
                    "history": history,
                    "time_s": time_s,
                },
            )

        # The last epoch's evaluation is the final one; a resumed run that had already finished evaluates anew.
        final = test if start_epoch < config.epochs else evaluate(net, x_test, test_labels, config.eval_batch_size)
        metrics = {
            "model": config.model,
            "backend": backend,
            "dataset": {"name": config.dataset, "train_size": int(n_train), "test_size": int(len(test_labels))},
            "config": config.to_dict(),
            "epochs": history,
            "test_accuracy": final.accuracy,
            "test_loss": final.loss,
            "time_s": time_s,
        }
        save_model(out / MODEL_FILE, net, config, extra={"test_accuracy": final.accuracy})
        _write_json_atomic(out / METRICS_FILE, metrics)
        if config.plots:
            from .plots import save_training_plots

            figures = save_training_plots(
                out, net, history, test_images, test_labels, final.predictions, class_names=_class_names(config.dataset)
            )
            metrics["plots"] = [path.name for path in figures]
            _write_json_atomic(out / METRICS_FILE, metrics)
    return metrics


def _last_good(checkpoint_path, start_epoch, epoch):
    if epoch > 1 and (checkpoint_path.is_file() or start_epoch > 0):
        return f"The checkpoint of epoch {epoch - 1} in {checkpoint_path} is intact."
    return "No epoch finished, so there is no checkpoint to resume from."


def _write_json_atomic(path, obj):
    with _atomic_file(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


@contextlib.contextmanager
def _atomic_file(path, mode):
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
