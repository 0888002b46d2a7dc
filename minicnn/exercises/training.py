"""The last exercise: LeNet-5 trained on the student's kernels, the way ``minicnn train`` trains it.

Every convolution (forward, dX, dW, db) and max pooling (forward and
backward) of the run is the student's code: ``minicnn.train.train`` runs on a
``StudentBackend`` with all of them swapped in. It passes when the test
accuracy on the 1,000 held-out digits of mnist-5k reaches ``PASS_ACCURACY``
*and* C1's filters moved from their initial values by at least
``MIN_C1_CHANGE`` (relative, Frobenius norm): a network whose convolution
gradients are zero trains only its fully connected head on random filters,
and that is not a trained CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .student_backend import KERNEL_FUNCTIONS, StudentBackend

PASS_ACCURACY = 0.95
#: A run estimated longer than this is not started: the student is told to vectorise instead.
MAX_MINUTES = 15
#: Measured with the reference on this machine: C1 moves by 73% (3 epochs) to 77% (5) of its initial norm; with a
#: zero dW it moves by 0.04% (the weight decay alone).
MIN_C1_CHANGE = 0.05
EPOCHS = 5
TRAINED_FUNCTIONS = tuple(f for f in KERNEL_FUNCTIONS if not f.startswith("avg"))


@dataclass
class TrainingResult:
    accuracy: float
    c1_change: float
    seconds: float

    @property
    def passed(self):
        return self.accuracy >= PASS_ACCURACY and self.c1_change >= MIN_C1_CHANGE

    def words(self):
        reached = f"test accuracy {self.accuracy:.1%} (needs {PASS_ACCURACY:.0%})"
        moved = f"C1 filters moved by {self.c1_change:.1%} of their initial norm (needs {MIN_C1_CHANGE:.0%})"
        return f"{reached}; {moved}; {self.seconds:.0f} s"


def train_on_student_kernels(module, out, *, epochs=EPOCHS, size=None, progress=False):
    """Train LeNet-5 on mnist-5k with the student's kernels into run directory ``out``; a ``TrainingResult``.

    ``size`` keeps that many training digits (all 4,000 by default; smaller for tests of the verdict).
    """
    from ..backends import register_backend, unregister_backend
    from ..io import build_model, load_model
    from ..train import TrainConfig, train

    config = TrainConfig(epochs=epochs, backend="student_training", out=out, plots=False, size=size)
    register_backend("student_training", StudentBackend(module, TRAINED_FUNCTIONS, "student_training"))
    try:
        metrics = train(config, progress=progress, overwrite=True)
    finally:
        unregister_backend("student_training")
    initial = build_model(config.model, seed=config.seed, activation=config.activation, pool=config.pool)
    before = np.asarray(initial["C1"].weight.data, dtype=np.float64)
    after = np.asarray(load_model(out)["C1"].weight.data, dtype=np.float64)
    change = float(np.linalg.norm(after - before) / np.linalg.norm(before))
    return TrainingResult(metrics["test_accuracy"], change, metrics["time_s"])


def estimated_minutes(module, epochs=EPOCHS, train_size=4000, batch_size=32):
    """Minutes the run would take, from one batch of the student's C1 and C3 forward passes.

    Each convolution runs about three times per step (forward, dX, dW); the
    rest of the network costs little next to it.
    """
    import time

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    module.conv2d(rng.standard_normal((batch_size, 1, 32, 32)), rng.standard_normal((6, 1, 5, 5)), None, 1, 0)
    module.conv2d(rng.standard_normal((batch_size, 6, 14, 14)), rng.standard_normal((16, 6, 5, 5)), None, 1, 0)
    per_step = 3 * (time.perf_counter() - started)
    return per_step * epochs * -(-train_size // batch_size) / 60
