"""The spec tests catch wrong code: deliberate mutants of minicnn, patched in, must fail the spec checks.

Each mutant replaces one public method with a plausible mistake (the kind a
student makes, or a mutation tool writes) and runs the spec entries that
cover it; the check must fail with the entry's own message, never pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

import minicnn as mc
from spec_loader import load_spec
from test_spec import CHECKERS

ENTRIES = {e["id"]: e for e in load_spec()}


def run_entry(entry_id):
    entry = ENTRIES[entry_id]
    fn, kernels = CHECKERS[entry["check"]]  # an erratum's own values are the corrected ones
    return fn(entry, "numpy") if kernels else fn(entry)


def _sigmoid_of_2x(self, x):
    self._check(x)
    self._y = y = expit(2 * x)
    return self._keep_output(y)


def _cross_entropy_gradient_without_1_over_m(self):
    labels, self._labels = self._labels, None
    dlogits = self.probabilities.copy()
    dlogits[np.arange(labels.shape[0]), labels] -= 1
    return dlogits


MUTANTS = [
    # (class, method, mutant, entries that must catch it, message the failure names)
    (mc.nn.Sigmoid, "forward", _sigmoid_of_2x, ["lenet5_c1_sigmoid", "fc_backprop_equations"], "nn.Sigmoid forward|nn backward"),
    (mc.nn.SoftmaxCrossEntropy, "backward", _cross_entropy_gradient_without_1_over_m,
     ["softmax_cross_entropy_gradient"], "SoftmaxCrossEntropy.backward against finite differences"),
]


@pytest.mark.parametrize("cls, method, mutant, entry_ids, message", MUTANTS,
                         ids=[f"{m[0].__name__}.{m[1]}:{m[2].__name__}" for m in MUTANTS])
def test_spec_catches_mutant(monkeypatch, cls, method, mutant, entry_ids, message):
    for entry_id in entry_ids:
        run_entry(entry_id)  # the real code passes
    monkeypatch.setattr(cls, method, mutant)
    for entry_id in entry_ids:
        with pytest.raises(AssertionError, match=message):
            run_entry(entry_id)
