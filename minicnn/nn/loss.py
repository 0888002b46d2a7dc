"""Softmax cross-entropy: the cost the slides train LeNet-5 with."""

from __future__ import annotations

from .module import NoForwardError, array_module

__all__ = ["SoftmaxCrossEntropy", "log_softmax", "softmax"]


def log_softmax(logits):
    """Row-wise ``log P(y = k | z) = z_k - log Σ_j e^{z_j}``, computed with the log-sum-exp shift (no overflow)."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise softmax ``e^{z_k} / Σ_j e^{z_j}`` (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red", eq. 1)."""
    return array_module(logits).exp(log_softmax(logits))


class SoftmaxCrossEntropy:
    """Mean cross-entropy of the softmax of ``logits`` (N, K) against integer ``labels`` (N,).

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 3:
    ``J = -(1/m) Σ_i Σ_k 1{y_i = k} log P(y_i = k | x_i)`` with ``P`` the
    softmax of eq. 1; its derivative (eq. 4) with respect to the logits is
    ``(P(y_i = k | x_i) - 1{y_i = k}) / m``, which ``backward()`` returns.

    ``loss = loss_fn(logits, labels)`` gives a Python float;
    ``loss_fn.backward()`` gives ``dJ/dlogits`` for that call. The logits are
    shifted by their row maximum before exponentiating (log-sum-exp), so large
    logits neither overflow nor lose the answer. After a call,
    ``loss_fn.probabilities`` holds the softmax (N, K).
    """

    def __init__(self):
        self.probabilities = None
        self._labels = None

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels):
        if getattr(getattr(logits, "dtype", None), "kind", None) != "f":  # a tensor of another library has no dtype.kind
            raise TypeError(
                f"SoftmaxCrossEntropy: logits must be a float32/float64 array (N, K), got "
                f"{getattr(logits, 'dtype', type(logits).__name__)}"
            )
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: logits must be 2-D (N, K), got shape {tuple(logits.shape)}")
        xp = array_module(logits)
        if not hasattr(labels, "dtype"):
            labels = xp.asarray(labels)
        if not hasattr(labels.dtype, "kind"):
            raise TypeError(
                f"SoftmaxCrossEntropy: labels must be a NumPy or CuPy integer array (or a list) of class indices, got "
                f"{type(labels).__module__}.{type(labels).__name__} with dtype {labels.dtype}"
            )
        if labels.dtype.kind not in "iu":
            raise TypeError(f"SoftmaxCrossEntropy: labels must be an integer array of class indices, got dtype {labels.dtype}")
        n, k = logits.shape
        if labels.shape != (n,):
            raise ValueError(
                f"SoftmaxCrossEntropy: labels must have shape (N,) = ({n},) to match logits {tuple(logits.shape)}, "
                f"got {tuple(labels.shape)}"
            )
        if n == 0:
            raise ValueError("SoftmaxCrossEntropy: the batch is empty (N = 0); the mean over the batch is undefined")
        # Checked where the labels live (host labels are checked before the copy, with no GPU round trip).
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"SoftmaxCrossEntropy: labels must lie in [0, K) = [0, {k}), got values in [{lo}, {hi}]")
        labels = xp.asarray(labels)
        log_p = log_softmax(logits)
        rows = xp.arange(n)
        loss = -float(log_p[rows, labels].sum()) / n
        self.probabilities = xp.exp(log_p)
        self._labels = labels
        return loss

    def backward(self):
        """``dJ/dlogits = (softmax(logits) - onehot(labels)) / N`` for the last call (deck 002, eq. 4)."""
        if self._labels is None:
            raise NoForwardError("SoftmaxCrossEntropy.backward() called before computing a loss: call loss_fn(logits, labels) first")
        labels, self._labels = self._labels, None
        n = labels.shape[0]
        xp = array_module(self.probabilities)
        dlogits = self.probabilities.copy()
        dlogits[xp.arange(n), labels] -= 1
        dlogits /= n
        return dlogits

    def __repr__(self):
        return "SoftmaxCrossEntropy()"
