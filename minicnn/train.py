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

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .arrays import is_array, to_host
from .backends import current_backend_name, use_backend
from .io import (
    CHECKPOINT_FILE,
    FORMAT_VERSION,
    METRICS_FILE,
    MODEL_FILE,
    build_model,
    class_names,
    load_checkpoint,
    load_model,
    model_info,
    model_names,
    write_json_atomic,
    write_model,
    write_npz_atomic,
)
from .runtime import single_threaded_blas

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "Evaluation",
    "train",
    "step",
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
        reseed = getattr(module, "reseed", None)
        if reseed is not None:
            reseed(generator)


def _modules(net):
    return net.modules() if hasattr(net, "modules") else [net]


# --------------------------------------------------------------------------- models
def _model_kwargs(config):
    return {"activation": config.activation, "pool": config.pool, "num_classes": 10}


def save_model(path, net, config, *, extra=None):
    """Write ``net``'s weights and how to rebuild it (model name and arguments) to ``path`` (npz, atomically)."""
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    write_model(path, net, model=config.model, model_kwargs=_model_kwargs(config), dataset=config.dataset,
                config=config.to_dict(), extra=extra)


# --------------------------------------------------------------------------- evaluation
class Evaluation(NamedTuple):
    """Mean softmax cross-entropy, accuracy in [0, 1] and the predicted class of every sample."""

    loss: float
    accuracy: float
    predictions: np.ndarray


def _device_xp(net):
    from .arrays import array_module

    for param in net.parameters():
        return array_module(param.data)
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
        predictions[start : start + len(labels)] = to_host(logits.argmax(axis=1))
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
    probabilities = np.concatenate([to_host(softmax(logits)) for _, logits in _logits_in_batches(net, x, batch_size)])
    return probabilities[0] if single else probabilities


# --------------------------------------------------------------------------- checkpoints
def _check_real_arrays(state, where):
    """Refuse complex, integer or non-numeric arrays where floating-point state belongs (they would be cast silently)."""
    for name, value in state.items():
        if is_array(value) and value.dtype.kind != "f" and value.ndim > 0:
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
def step(net, loss_fn, optimizer, x, y):
    """One training step on the batch ``(x, y)``; returns ``(loss, logits)``.

    Mini-batch SGD (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Stochastic
    Gradient Descend"): forward, loss, backpropagation, one update. The
    network's input is data, whose gradient nobody needs, so its first layer
    skips ``dx`` (``need_dx=False``). ``minicnn train``, ``minicnn bench``
    and the README all run this step.
    """
    optimizer.zero_grad()
    logits = net(x)
    loss = loss_fn(logits, y)
    net.backward(loss_fn.backward(), need_dx=False)
    optimizer.step()
    return loss, logits


@dataclass
class _Run:
    """What a training run carries from epoch to epoch."""

    config: TrainConfig
    backend: str
    net: object
    optimizer: object
    scheduler: object
    data: dict
    history: list
    time_s: float
    start_epoch: int
    generators: dict
    device_steps: dict = field(default_factory=dict)  # batch size -> captured.DeviceStep, on the GPU

    @property
    def checkpoint_path(self):
        return self.config.out / CHECKPOINT_FILE


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
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train: config must be a TrainConfig, got {type(config).__name__}")
    saved = _saved_run(config, resume, overwrite)
    backend = config.backend or current_backend_name()
    if saved is not None:
        _check_same_arithmetic(saved, backend)
    with use_backend(backend), single_threaded_blas():
        run = _start(config, backend, saved)
        config.out.mkdir(parents=True, exist_ok=True)
        test = None
        for epoch in range(run.start_epoch + 1, config.epochs + 1):
            test = _epoch(run, epoch, progress)
            if run.scheduler is not None:
                run.scheduler.step()
            run.generators = epoch_generators(config.seed, epoch + 1)
            _write_checkpoint(run, epoch)
        return _finish(run, test)


def _saved_run(config, resume, overwrite):
    """The checkpoint to resume from (None for a new run), after the checks that the run directory allows it."""
    out = config.out
    checkpoint_path = out / CHECKPOINT_FILE
    if resume:
        if not checkpoint_path.is_file():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {checkpoint_path}; train without resume to start this run")
        saved = load_checkpoint(checkpoint_path)
        _check_resumable(config, saved["config"])
        return saved
    if not overwrite and any((out / name).exists() for name in (CHECKPOINT_FILE, MODEL_FILE)):
        raise FileExistsError(
            f"{out} already holds a training run; resume it (--resume), overwrite it (--overwrite) or choose another --out"
        )
    return None


def _start(config, backend, saved):
    """The network (with its commuting layers fused), data, optimizer and schedule of a run, restored from ``saved``."""
    from . import optim
    from .data import load_dataset, to_network_input

    net = build_model(config.model, seed=config.seed, **_model_kwargs(config)).fuse()
    if backend == "cupy":
        net.to("gpu")
    data_kwargs = {"root": config.data_root, "seed": config.seed}
    train_images, train_labels = load_dataset(config.dataset, "train", size=config.size, **data_kwargs)
    test_images, test_labels = load_dataset(config.dataset, "test", size=config.test_size, **data_kwargs)
    for split, labels in (("training", train_labels), ("test", test_labels)):
        if len(labels) == 0:  # checked before the first epoch, not after it
            raise ValueError(f"train: the {split} split of {config.dataset} is empty; nothing to train or score on")
    data = {"train_images": train_images, "train_labels": train_labels, "test_images": test_images,
            "test_labels": test_labels, "x_test": to_network_input(test_images)}
    optimizer = optim.SGD(net.parameters(), config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    run = _Run(config, backend, net, optimizer, _make_scheduler(config, optimizer), data, [], 0.0, 0,
               epoch_generators(config.seed, 1))
    if saved is not None:
        _restore(run, saved)
    return run


def _restore(run, saved):
    """Load the model, optimizer, schedule and generators of checkpoint ``saved`` into ``run``."""
    section = "model"
    try:
        run.net.load_state_dict(saved["model"])
        section = "optimizer"
        _check_real_arrays(saved["optimizer"], "optimizer")
        run.optimizer.load_state_dict(saved["optimizer"])
        section = "scheduler"
        if run.scheduler is not None:
            if saved["scheduler"] is None:
                raise ValueError(f"there is none for the {run.config.schedule!r} schedule")
            run.scheduler.load_state_dict(saved["scheduler"])
        section = "rng"
        run.generators = _generators_from_state(saved["rng"])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        detail = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(
            f"cannot resume from {run.checkpoint_path}: the checkpoint is damaged (its {section!r} entry: {detail})"
        ) from None
    run.history, run.time_s, run.start_epoch = saved["history"], saved["time_s"], saved["epoch"]


def _epoch(run, epoch, progress):
    """Train one epoch and score it on the test split; appends the epoch's record to the history, returns the test ``Evaluation``."""
    from tqdm.auto import tqdm

    config = run.config
    started = time.perf_counter()
    lr = float(run.optimizer.lr)
    _seed_dropout(run.net, run.generators["dropout"])
    run.net.train()
    n_batches = math.ceil(len(run.data["train_labels"]) / config.batch_size)
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress, leave=True)
    try:
        loss_sum, correct, seen = _train_batches(run, epoch, lr, bar, started)
        train_seconds = time.perf_counter() - started
        test = evaluate(run.net, run.data["x_test"], run.data["test_labels"], config.eval_batch_size)
        if not math.isfinite(test.loss):
            raise TrainingDiverged(
                f"training diverged: the test loss is {test.loss} after epoch {epoch}/{config.epochs} "
                f"(lr = {lr:g}); try a lower learning rate, e.g. --lr {lr / 10:g}. "
                + _last_good(run.checkpoint_path, run.start_epoch, epoch)
            )
        bar.set_postfix({"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.2%}",
                         "img/s": f"{seen / train_seconds:.0f}", "test_acc": f"{test.accuracy:.2%}"})
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    run.time_s += seconds
    run.history.append({"epoch": epoch, "lr": lr, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "test_loss": test.loss, "test_accuracy": test.accuracy, "seconds": seconds,
                        "images_per_s": seen / train_seconds})
    return test


def _train_batches(run, epoch, lr, bar, started):
    """One pass over the shuffled (and augmented) training split, one ``step`` per batch; ``(loss sum, correct, seen)``."""
    from .data import augment, batches, to_network_input
    from .nn import SoftmaxCrossEntropy

    config, net, generators = run.config, run.net, run.generators
    if _uses_device_step(run.backend):
        return _train_batches_on_device(run, epoch, lr, bar)
    xp = _device_xp(net)
    loss_fn = SoftmaxCrossEntropy()
    n_batches = math.ceil(len(run.data["train_labels"]) / config.batch_size)
    loss_sum, correct, seen = 0.0, 0, 0
    batch_stream = batches(run.data["train_images"], run.data["train_labels"], config.batch_size, shuffle=True,
                           seed=generators["shuffle"])
    for index, (images, labels) in enumerate(batch_stream, start=1):
        if config.augment:
            images = augment(images, generators["augment"], max_shift=config.max_shift, max_rotation=config.max_rotation)
        loss, logits = step(net, loss_fn, run.optimizer, xp.asarray(to_network_input(images)), labels)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: the loss is {loss} at epoch {epoch}/{config.epochs}, batch "
                f"{index}/{n_batches} (lr = {lr:g}); try a lower learning rate, e.g. --lr {lr / 10:g}. "
                + _last_good(run.checkpoint_path, run.start_epoch, epoch)
            )
        loss_sum += loss * len(labels)
        correct += int(to_host((logits.argmax(axis=1) == xp.asarray(labels)).sum()))
        seen += len(labels)
        bar.update(1)
        rate = seen / (time.perf_counter() - started)
        bar.set_postfix({"loss": f"{loss_sum / seen:.4f}", "acc": f"{correct / seen:.2%}", "img/s": f"{rate:.0f}"}, refresh=False)
    return loss_sum, correct, seen


def _uses_device_step(backend):
    """The GPU trains with the device-resident, graph-captured step of :mod:`minicnn.captured`."""
    return backend == "cupy"


def _train_batches_on_device(run, epoch, lr, bar):
    """``_train_batches`` with :class:`minicnn.captured.DeviceStep`: the same updates, no host read inside an epoch.

    One ``DeviceStep`` per batch size (the last batch may be smaller), kept
    for the whole run; the loss and accuracy sums are read once, at the end
    of the epoch, so divergence is noticed there rather than at its batch.
    """
    from .captured import CupyCapture, DeviceStep
    from .data import augment, batches, to_network_input

    config, net, generators = run.config, run.net, run.generators
    xp = _device_xp(net)
    steps = run.device_steps
    for device_step in steps.values():
        device_step.reset_metrics()
    seen = 0
    batch_stream = batches(run.data["train_images"], run.data["train_labels"], config.batch_size, shuffle=True,
                           seed=generators["shuffle"])
    for images, labels in batch_stream:
        if config.augment:
            images = augment(images, generators["augment"], max_shift=config.max_shift, max_rotation=config.max_rotation)
        x = to_network_input(images)
        device_step = steps.get(len(labels))
        if device_step is None:
            # one stream for all batch sizes, so their steps run in order; a memory pool each
            capturer = None if xp is np else CupyCapture(stream=_shared_stream(steps))
            fused = _fused_kernels(xp)
            device_step = steps[len(labels)] = DeviceStep(net, run.optimizer, len(labels), x.shape[1:], xp=xp,
                                                          capturer=capturer, fused=fused)
        device_step.load(x, labels)
        device_step.run()
        seen += len(labels)
        bar.update(1)
    totals = [device_step.metrics() for device_step in steps.values()]
    loss_sum, correct = sum(t[0] for t in totals), sum(t[1] for t in totals)
    if not math.isfinite(loss_sum):
        raise TrainingDiverged(
            f"training diverged: the training loss of epoch {epoch}/{config.epochs} is {loss_sum / seen} "
            f"(lr = {lr:g}); try a lower learning rate, e.g. --lr {lr / 10:g}. "
            + _last_good(run.checkpoint_path, run.start_epoch, epoch)
        )
    return loss_sum, correct, seen


def _shared_stream(steps):
    """The CUDA stream of the run's device steps (a new non-blocking one for the first)."""
    for device_step in steps.values():
        return device_step.capturer.stream
    import cupy

    return cupy.cuda.Stream(non_blocking=True)


def _fused_kernels(xp):
    """The backend whose fused loss and update kernels the device step uses (CuPy), or None for the plain ones."""
    if xp is np:
        return None
    from .backends import get_backend

    return get_backend("cupy")


def _write_checkpoint(run, epoch):
    """Everything the next epoch needs, written atomically after epoch ``epoch``."""
    write_npz_atomic(run.checkpoint_path, {
        "format": "minicnn-checkpoint",
        "version": FORMAT_VERSION,
        "epoch": epoch,
        "config": run.config.to_dict(),
        "backend": run.backend,
        "kernel_isa": _kernel_isa(run.backend),
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict() if run.scheduler is not None else None,
        "rng": _generators_state(run.generators),
        "history": run.history,
        "time_s": run.time_s,
    })


def _finish(run, test):
    """Metrics, the saved model and (if asked) the figures of a finished run; returns the metrics."""
    config, data, out = run.config, run.data, run.config.out
    # The last epoch's evaluation is the final one; a resumed run that had already finished evaluates anew.
    final = test if test is not None else evaluate(run.net, data["x_test"], data["test_labels"], config.eval_batch_size)
    metrics = {
        "model": config.model,
        "backend": run.backend,
        "dataset": {"name": config.dataset, "train_size": int(len(data["train_labels"])),
                    "test_size": int(len(data["test_labels"]))},
        "config": config.to_dict(),
        "epochs": run.history,
        "test_accuracy": final.accuracy,
        "test_loss": final.loss,
        "time_s": run.time_s,
    }
    save_model(out / MODEL_FILE, run.net, config, extra={"test_accuracy": final.accuracy})
    write_json_atomic(out / METRICS_FILE, metrics)
    if config.plots:
        from .plots import save_training_plots

        figures = save_training_plots(out, run.net, run.history, data["test_images"], data["test_labels"],
                                      final.predictions, class_names=class_names(config.dataset))
        metrics["plots"] = [path.name for path in figures]
        write_json_atomic(out / METRICS_FILE, metrics)
    return metrics


def _last_good(checkpoint_path, start_epoch, epoch):
    if epoch > 1 and (checkpoint_path.is_file() or start_epoch > 0):
        return f"The checkpoint of epoch {epoch - 1} in {checkpoint_path} is intact."
    return "No epoch finished, so there is no checkpoint to resume from."


