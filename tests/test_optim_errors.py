"""``minicnn.optim``'s checks, message by message: what a wrong argument or a damaged checkpoint is told.

Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Stochastic Gradient Descend"
gives the updates (tests/test_optim.py); these tests pin the errors around
them, each naming the class, the argument, the rule and the value.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from minicnn import nn
from minicnn.optim import SGD, CosineLR, StepLR


def _sgd(**kwargs):
    params = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros((2, 2)))]
    return SGD(params, lr=0.1, **kwargs)


@pytest.mark.parametrize("missing", ["lr", "momentum", "weight_decay"])
def test_sgd_checkpoint_without_a_field_is_refused_by_name(missing):
    state = _sgd(momentum=0.5).state_dict()
    del state[missing]
    keys = sorted(state)
    with pytest.raises(ValueError, match=re.escape(f"SGD.load_state_dict: missing {missing!r}; keys given: {keys}")):
        _sgd().load_state_dict(state)


@pytest.mark.parametrize("index", [2, 5])
def test_sgd_checkpoint_velocity_of_a_parameter_that_does_not_exist(index):
    state = {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0, f"velocity.{index}": np.zeros(3)}
    with pytest.raises(ValueError, match=re.escape(f"SGD.load_state_dict: 'velocity.{index}' but the optimizer has 2 "
                                                   "parameters")):
        _sgd().load_state_dict(state)


def test_sgd_checkpoint_velocities_as_lists_are_read_and_shapes_checked():
    opt = _sgd(momentum=0.5)
    opt.load_state_dict({"lr": 0.2, "momentum": 0.5, "weight_decay": 0.0, "velocity.1": [[1.0, 2.0], [3.0, 4.0]]})
    assert opt.velocities[0] is None
    np.testing.assert_array_equal(opt.velocities[1], [[1.0, 2.0], [3.0, 4.0]])
    assert opt.velocities[1].dtype == np.float64 and opt.lr == 0.2
    with pytest.raises(ValueError, match=re.escape("SGD.load_state_dict: 'velocity.0' has shape (2,) but parameter 0 "
                                                   "(None) has shape (3,)")):
        opt.load_state_dict({"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0, "velocity.0": [1.0, 2.0]})


@pytest.mark.parametrize("momentum, message", [
    (1.0, "SGD: momentum must be [0.0, 1.0), got 1.0"),
    (-0.5, "SGD: momentum must be [0.0, 1.0), got -0.5"),
])
def test_sgd_checkpoint_momentum_is_checked_as_the_constructor_checks_it(momentum, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _sgd().load_state_dict({"lr": 0.1, "momentum": momentum, "weight_decay": 0.0})
    with pytest.raises(ValueError, match=re.escape(message)):
        _sgd(momentum=momentum)


def test_sgd_checkpoint_restores_the_step_count():
    opt = _sgd()
    opt.load_state_dict({"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "steps": 7})
    assert opt.steps == 7
    opt.load_state_dict({"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0})
    assert opt.steps == 0


@pytest.mark.parametrize("schedule", [lambda o: StepLR(o, step_size=2, gamma=0.5), lambda o: CosineLR(o, epochs=4)])
@pytest.mark.parametrize("missing", ["base_lr", "epoch"])
def test_schedule_checkpoint_without_a_field_is_refused_by_name(schedule, missing):
    made = schedule(_sgd())
    state = made.state_dict()
    del state[missing]
    name = type(made).__name__
    with pytest.raises(ValueError, match=re.escape(f"{name}.load_state_dict: missing {missing!r}; keys given: "
                                                   f"{sorted(state)}")):
        made.load_state_dict(state)


@pytest.mark.parametrize("step_size", [0, -1, 2.0, True, "2"])
def test_step_lr_step_size_is_a_whole_number_of_epochs(step_size):
    with pytest.raises(ValueError, match=re.escape(f"StepLR: step_size must be an int >= 1 (epochs), got {step_size!r}")):
        StepLR(_sgd(), step_size=step_size, gamma=0.5)
    assert StepLR(_sgd(), step_size=np.int64(3), gamma=0.5).step_size == 3


@pytest.mark.parametrize("gamma, error, message", [
    ("0.5", TypeError, "StepLR: gamma must be a real number, got str '0.5'"),
    (-0.5, ValueError, "StepLR: gamma must be >= 0.0, got -0.5"),
    (float("nan"), ValueError, "StepLR: gamma must be >= 0.0, got nan"),
])
def test_step_lr_gamma_is_a_real_number_at_least_zero(gamma, error, message):
    with pytest.raises(error, match=re.escape(message)):
        StepLR(_sgd(), step_size=1, gamma=gamma)


def test_sgd_checkpoint_weight_decay_and_momentum_bounds():
    with pytest.raises(ValueError, match=re.escape("SGD: weight_decay must be >= 0.0, got -1.0")):
        _sgd().load_state_dict({"lr": 0.1, "momentum": 0.0, "weight_decay": -1.0})
    with pytest.raises(ValueError, match=re.escape("SGD: momentum must be [0.0, 1.0), got 1.5")):
        _sgd().load_state_dict({"lr": 0.1, "momentum": 1.5, "weight_decay": 0.0})
    opt = _sgd()
    opt.load_state_dict({"lr": 0.3, "momentum": 0.25, "weight_decay": 0.5})
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.3, 0.25, 0.5)


def test_sgd_checkpoint_velocity_takes_the_parameters_dtype():
    opt = _sgd(momentum=0.5)
    opt.load_state_dict({"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0,
                         "velocity.0": np.array([1.0, 2.0, 3.0], dtype=np.float32)})
    assert opt.velocities[0].dtype == np.float64 and isinstance(opt.velocities[0], np.ndarray)
    np.testing.assert_array_equal(opt.velocities[0], [1.0, 2.0, 3.0])


def test_schedules_need_an_optimizer_with_a_rate():
    with pytest.raises(TypeError, match=re.escape("StepLR: optimizer must have an lr attribute, got object")):
        StepLR(object(), step_size=1, gamma=0.5)
    with pytest.raises(TypeError, match=re.escape("CosineLR: optimizer must have an lr attribute, got list")):
        CosineLR([], epochs=3)


@pytest.mark.parametrize("epochs", [0, -2, 3.0, True, "3"])
def test_cosine_lr_epochs_is_a_whole_number(epochs):
    with pytest.raises(ValueError, match=re.escape(f"CosineLR: epochs must be an int >= 1, got {epochs!r}")):
        CosineLR(_sgd(), epochs=epochs)
    assert CosineLR(_sgd(), epochs=np.int64(3)).epochs == 3


def test_cosine_lr_floor_is_a_real_number_not_above_the_rate():
    with pytest.raises(TypeError, match=re.escape("CosineLR: min_lr must be a real number, got str '0.01'")):
        CosineLR(_sgd(), epochs=3, min_lr="0.01")
    with pytest.raises(ValueError, match=re.escape("CosineLR: min_lr=0.2 is above the optimizer's lr=0.1")):
        CosineLR(_sgd(), epochs=3, min_lr=0.2)
    flat = CosineLR(_sgd(), epochs=3, min_lr=0.1)  # a floor equal to the rate: a constant schedule
    assert [flat.step() for _ in range(4)] == [0.1, 0.1, 0.1, 0.1]


def test_sgd_params_must_be_parameters_and_not_empty():
    with pytest.raises(TypeError, match=re.escape("SGD: params must be minicnn.nn.Parameter objects (model.parameters()), "
                                                  "item 1 is ndarray")):
        SGD([nn.Parameter(np.zeros(2)), np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="^" + re.escape("SGD: params is empty; pass model.parameters()") + "$"):
        SGD([], lr=0.1)


@pytest.mark.parametrize("weight_decay, error, message", [
    (-1, ValueError, "SGD: weight_decay must be >= 0.0, got -1.0"),
    ("0.1", TypeError, "SGD: weight_decay must be a real number, got str '0.1'"),
])
def test_sgd_weight_decay_is_a_real_number_at_least_zero(weight_decay, error, message):
    with pytest.raises(error, match=re.escape(message)):
        _sgd(weight_decay=weight_decay)


def test_momentum_survives_a_change_of_the_parameters_dtype():
    """v := γ v + η g keeps its velocity when the parameter goes from float64 to float32 (cast, not reset)."""
    p = nn.Parameter(np.array([1.0, 2.0]))
    opt = SGD([p], lr=0.1, momentum=0.5)
    p.grad[:] = [1.0, -1.0]
    opt.step()  # v = (0.1, -0.1)
    p.data, p.grad = p.data.astype(np.float32), np.array([2.0, 0.0], dtype=np.float32)
    opt.step()  # v = 0.5 (0.1, -0.1) + 0.1 (2, 0) = (0.25, -0.05)
    assert opt.velocities[0].dtype == np.float32 and p.data.dtype == np.float32
    np.testing.assert_allclose(opt.velocities[0], [0.25, -0.05], rtol=1e-6)
    np.testing.assert_allclose(p.data, [1.0 - 0.1 - 0.25, 2.0 + 0.1 + 0.05], rtol=1e-6)


@pytest.mark.parametrize("key", ["velocity.0.5", "velocity.1.x", "velocity.", "velocity.-1", "velocity.one"])
def test_sgd_checkpoint_velocity_key_must_end_in_a_parameter_index(key):
    # state_dict writes "velocity.<i>"; any other suffix is a damaged checkpoint, refused by name (before this
    # check int() refused most of them with its own message, "invalid literal for int()", and took "velocity.-1"
    # as parameter -1 until the range check).
    state = {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0, key: np.zeros(3)}
    with pytest.raises(ValueError, match=re.escape(f"SGD.load_state_dict: {key!r} is not 'velocity.<parameter index>'")):
        _sgd().load_state_dict(state)


def test_sgd_refuses_a_shape_only_parameter_by_index_name_and_shape():
    """A lazy model's parameters have a shape but no values: SGD says which one and how to give it values."""
    from minicnn.nn.init import shape_only

    params = [nn.Parameter(np.zeros(3), "fc.b"), nn.Parameter(shape_only((4, 2)), "fc.w")]
    message = ("SGD: parameter 1 ('fc.w', shape (4, 2)) is shape-only (its model was built lazy); "
               "call model.materialize(seed) or load weights first")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SGD(params, lr=0.1)
