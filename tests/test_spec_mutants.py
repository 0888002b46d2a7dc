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
from spec_loader import load_spec, values
from test_spec import CHECKERS
from test_spec_architectures import CHECKS as ZOO_CHECKS

ENTRIES = {e["id"]: e for e in load_spec()}


def run_entry(entry_id):
    entry = ENTRIES[entry_id]
    fn, kernels = CHECKERS[entry["check"]]  # an erratum's own values are the corrected ones
    return fn(entry, "numpy") if kernels else fn(entry)


def _sigmoid_of_2x(self, x):
    return expit(2 * x)


def _cross_entropy_gradient_without_1_over_m(self):
    labels, self._labels = self._labels, None
    dlogits = self.probabilities.copy()
    dlogits[np.arange(labels.shape[0]), labels] -= 1
    return dlogits


def _add_without_shortcut(self, *xs):
    return self._keep_output(xs[0] + 0)


def _concat_reversed(self, *xs):
    return self._keep_output(np.concatenate(xs[::-1], axis=self.axis))


def _shuffle_is_identity(self, x):
    self._check(x.shape)
    return self._keep_output(x)


def _dropout_gradient_everywhere(self, dy):
    self._ran, self._mask = False, None
    return dy


def _step_lr_never_decays(self, epoch):
    return self.base_lr


MUTANTS = [
    # (class, method, mutant, entries that must catch it, message the failure names)
    (mc.nn.Sigmoid, "f", _sigmoid_of_2x, ["lenet5_c1_sigmoid", "fc_backprop_equations"], "nn.Sigmoid forward|nn backward"),
    (mc.nn.SoftmaxCrossEntropy, "backward", _cross_entropy_gradient_without_1_over_m,
     ["softmax_cross_entropy_gradient"], "SoftmaxCrossEntropy.backward against finite differences"),
    (mc.nn.Add, "forward", _add_without_shortcut,
     ["resnet_learns_the_residual", "inverted_residual_shortcut", "convnext_block_inverted_bottleneck"], r"F\(x\)"),
    (mc.nn.Concat, "forward", _concat_reversed,
     ["inception_parallel_branches_concatenated", "densenet_concatenation_growth"], r"branch_1|x_0 passes through"),
    (mc.nn.ChannelShuffle, "forward", _shuffle_is_identity, ["shufflenet_channel_shuffle"], "channel order"),
    (mc.nn.Dropout, "backward", _dropout_gradient_everywhere, ["alexnet_dropout_half"], "received a gradient"),
    (mc.optim.StepLR, "lr_at", _step_lr_never_decays, ["learning_rate_decreases_each_epoch"], "do not decrease"),
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


def _aux_loss_unweighted(self, outputs, labels, loss=mc.nn.SoftmaxCrossEntropy):
    if not isinstance(outputs, tuple):
        loss_fn = loss()
        return loss_fn(outputs, labels), loss_fn.backward()
    total, grads = 0.0, []
    for out in outputs:
        loss_fn = loss()
        total += loss_fn(out, labels)
        grads.append(loss_fn.backward())
    return total, tuple(grads)


def _heads_also_in_eval(self, x):
    training = self.training
    self.training = True
    try:
        return ORIGINAL_GOOGLENET_FORWARD(self, x)
    finally:
        self.training = training


ORIGINAL_GOOGLENET_FORWARD = mc.models.GoogLeNet.forward


@pytest.mark.parametrize("mutant, message", [
    (("training_loss", _aux_loss_unweighted), "L\\(logits\\) \\+ 0.3 L\\(aux\\)"),
    (("forward", _heads_also_in_eval), "evaluation: the head is skipped"),
], ids=["aux loss without its 0.3", "aux heads run in eval"])
def test_model_zoo_check_catches_googlenet_mutant(monkeypatch, mutant, message):
    entry = values(ENTRIES["googlenet_auxiliary_classifiers"])
    ZOO_CHECKS["googlenet_auxiliary_classifiers"](entry)
    monkeypatch.setattr(mc.models.GoogLeNet, *mutant)
    with pytest.raises(AssertionError, match=message):
        ZOO_CHECKS["googlenet_auxiliary_classifiers"](entry)
