"""Stochastic gradient descent with momentum, and per-epoch learning-rate schedules.

Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Stochastic Gradient Descend":

* plain SGD: ``θ := θ - η ∇θ J(θ; x_i, y_i)``;
* momentum: ``v := γ v + η ∇θ J``, ``θ := θ - v``, with ``v`` the velocity
  (same shape as ``θ``) and ``γ`` how much of the past gradients it keeps;
* "η ... en general disminuye a lo largo del entrenamiento, a cada epoch":
  the schedules ``StepLR`` and ``CosineLR`` set ``opt.lr`` once per epoch.

The update is written exactly as on the slide (``η`` inside the velocity), so
changing ``η`` mid-training scales new gradients only, not the velocity
already built up (PyTorch's SGD multiplies the whole velocity by ``η``).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .arrays import to_device
from .nn.module import Parameter

__all__ = ["SGD", "StepLR", "CosineLR"]


def _number(owner, name, value, minimum=0.0, below=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (below is not None and value >= below):
        bound = f"[{minimum}, {below})" if below is not None else f">= {minimum}"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value}")
    return value


def _scalar(state, key, owner):
    if key not in state:
        raise ValueError(f"{owner}.load_state_dict: missing {key!r}; keys given: {sorted(state)}")
    return float(np.asarray(state[key]))


class SGD:
    """SGD with momentum and weight decay, as deck 002 writes it.

    For every parameter ``θ`` with gradient ``g``: ``g ← g + λθ`` (weight
    decay ``λ``, an L2 penalty ``λ/2 ||θ||²`` added to ``J``), then
    ``v ← γv + ηg`` and ``θ ← θ - v``. With ``momentum=0`` this is
    ``θ ← θ - ηg``. Updates are in place; ``lr`` can be changed at any time.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        params = list(params)
        unique, seen = [], set()
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"SGD: params must be minicnn.nn.Parameter objects (model.parameters()), item {i} is {type(p).__name__}")
            if p.is_shape_only:
                raise ValueError(f"SGD: parameter {i} ({p.name!r}, shape {tuple(p.shape)}) is shape-only (its model was "
                                 "built lazy); call model.materialize(seed) or load weights first")
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        if not unique:
            raise ValueError("SGD: params is empty; pass model.parameters()")
        self.params = unique
        self.lr = lr
        self.momentum = _number("SGD", "momentum", momentum, 0.0, below=1.0)
        self.weight_decay = _number("SGD", "weight_decay", weight_decay)
        self.velocities = [None] * len(unique)
        self.steps = 0

    @property
    def lr(self):
        """The learning rate ``η`` (settable; the schedules set it)."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _number("SGD", "lr", value)

    def zero_grad(self):
        """Set every parameter's gradient to zero (in place)."""
        for p in self.params:
            p.grad.fill(0)

    def step(self):
        """One update of every parameter from its current ``.grad``."""
        lr, gamma, decay = self._lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            grad = p.grad
            if decay:
                grad = grad + decay * p.data
            if gamma:
                v = self.velocities[i]
                if v is None or type(v) is not type(p.data) or v.dtype != p.data.dtype:
                    v = self.velocities[i] = _move_like(v, p.data)
                v *= gamma
                v += lr * grad
                p.data -= v
            else:
                p.data -= lr * grad
        self.steps += 1

    def state_dict(self):
        """``{"lr", "momentum", "weight_decay", "steps", "velocity.<i>"}``: plain numbers and NumPy arrays (``np.savez`` can store it)."""
        state = {"lr": self._lr, "momentum": self.momentum, "weight_decay": self.weight_decay, "steps": self.steps}
        for i, v in enumerate(self.velocities):
            if v is not None:
                state[f"velocity.{i}"] = v.get() if not isinstance(v, np.ndarray) else v.copy()
        return state

    def load_state_dict(self, state):
        """Restore from ``state_dict()`` (velocities keep the parameters' device and dtype)."""
        lr = _scalar(state, "lr", "SGD")
        momentum = _scalar(state, "momentum", "SGD")
        weight_decay = _scalar(state, "weight_decay", "SGD")
        velocities = [None] * len(self.params)
        for key in state:
            if not key.startswith("velocity."):
                continue
            suffix = key.split(".", 1)[1]
            if not suffix.isdigit():
                raise ValueError(f"SGD.load_state_dict: {key!r} is not 'velocity.<parameter index>'")
            index = int(suffix)
            if not 0 <= index < len(self.params):
                raise ValueError(f"SGD.load_state_dict: {key!r} but the optimizer has {len(self.params)} parameters")
            value, data = state[key], self.params[index].data
            if not hasattr(value, "shape"):
                value = np.asarray(value)
            if tuple(value.shape) != tuple(data.shape):
                raise ValueError(
                    f"SGD.load_state_dict: {key!r} has shape {tuple(value.shape)} but parameter {index} "
                    f"({self.params[index].name}) has shape {tuple(data.shape)}"
                )
            velocities[index] = _move_like(value, data)
        self.lr = lr
        self.momentum = _number("SGD", "momentum", momentum, 0.0, below=1.0)
        self.weight_decay = _number("SGD", "weight_decay", weight_decay)
        self.velocities = velocities
        self.steps = int(_scalar(state, "steps", "SGD")) if "steps" in state else 0
        return self

    def __repr__(self):
        return f"SGD(lr={self._lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, params={len(self.params)})"


def _move_like(value, like):
    """A copy of ``value`` (zeros if None) on ``like``'s device, with its dtype."""
    device = "cpu" if isinstance(like, np.ndarray) else "gpu"
    if value is None:
        return (np if device == "cpu" else _gpu()).zeros_like(like)
    return to_device(value, device, like.dtype).copy()


def _gpu():
    import cupy

    return cupy


class _EpochSchedule:
    """Sets ``optimizer.lr`` from the epoch count; call ``step()`` once at the end of every epoch."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: optimizer must have an lr attribute, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.epoch = 0

    def lr_at(self, epoch):
        raise NotImplementedError

    @property
    def lr(self):
        return self.lr_at(self.epoch)

    def step(self):
        """Advance one epoch and set the optimizer's learning rate; returns the new rate."""
        self.epoch += 1
        self.optimizer.lr = self.lr_at(self.epoch)
        return self.optimizer.lr

    def state_dict(self):
        return {"base_lr": self.base_lr, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.base_lr = _scalar(state, "base_lr", type(self).__name__)
        self.epoch = int(_scalar(state, "epoch", type(self).__name__))
        self.optimizer.lr = self.lr_at(self.epoch)
        return self


class StepLR(_EpochSchedule):
    """``η_e = η_0 γ^floor(e / step_size)``: the rate drops by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma):
        super().__init__(optimizer)
        if isinstance(step_size, bool) or not isinstance(step_size, (int, np.integer)) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be an int >= 1 (epochs), got {step_size!r}")
        self.step_size = int(step_size)
        self.gamma = _number("StepLR", "gamma", gamma)

    def lr_at(self, epoch):
        return self.base_lr * self.gamma ** (epoch // self.step_size)


class CosineLR(_EpochSchedule):
    """``η_e = η_min + (η_0 - η_min)(1 + cos(π e / E)) / 2`` for ``e ≤ E`` epochs, then ``η_min``."""

    def __init__(self, optimizer, epochs, min_lr=0.0):
        super().__init__(optimizer)
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"CosineLR: epochs must be an int >= 1, got {epochs!r}")
        self.epochs = int(epochs)
        self.min_lr = _number("CosineLR", "min_lr", min_lr)
        if self.min_lr > self.base_lr:
            raise ValueError(f"CosineLR: min_lr={self.min_lr} is above the optimizer's lr={self.base_lr}")

    def lr_at(self, epoch):
        e = min(epoch, self.epochs)
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * e / self.epochs)) / 2.0
