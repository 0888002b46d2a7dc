"""Sequential's fused order and need_dx, where mutation testing (tools/mutation.py) found them untested.

``Sequential.fuse()`` runs a layer that ``commutes_with`` the next one after
it (a ReLU after the MaxPool2d that follows it), one swap per pair;
``execution_order`` is the order ``forward`` runs, the public view of it.
"""

import numpy as np

from minicnn import nn
from minicnn.graph import Sequential


def _names(net):
    return [type(layer).__name__ for layer in net.execution_order]


def test_fuse_swaps_every_relu_max_pool_pair_once_from_the_first_layer_to_the_last():
    net = Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Tanh(), nn.ReLU(), nn.MaxPool2d(2))
    assert _names(net) == ["ReLU", "MaxPool2d", "ReLU", "MaxPool2d", "Tanh", "ReLU", "MaxPool2d"]
    assert _names(net.fuse()) == ["MaxPool2d", "ReLU", "MaxPool2d", "ReLU", "Tanh", "MaxPool2d", "ReLU"]


def test_fuse_moves_a_relu_past_one_max_pool_only():
    net = Sequential(nn.ReLU(), nn.MaxPool2d(2), nn.MaxPool2d(2)).fuse()
    assert _names(net) == ["MaxPool2d", "ReLU", "MaxPool2d"]
    assert _names(Sequential(nn.Tanh(), nn.ReLU(), nn.MaxPool2d(2)).fuse()) == ["Tanh", "MaxPool2d", "ReLU"]


def test_an_unfused_sequential_runs_as_written_and_says_so():
    net = Sequential(nn.ReLU(), nn.MaxPool2d(2))
    assert net.fused is False and _names(net) == ["ReLU", "MaxPool2d"]
    assert net.fuse().fused is True


def test_backward_without_need_dx_returns_none_even_when_the_first_layer_has_no_parameters():
    net = Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=0, dtype=np.float64))
    x = np.random.default_rng(0).standard_normal((2, 2, 2, 2))
    y = net(x)
    assert net.backward(np.ones_like(y), need_dx=False) is None
    net(x)
    assert net.backward(np.ones_like(y)).shape == x.shape


def test_fuse_does_not_look_back_after_a_swap():
    """After a swap the scan goes on past the pair: a ReLU left before another ReLU stays where it is."""
    net = Sequential(nn.Tanh(), nn.Tanh(), nn.ReLU(), nn.ReLU(), nn.MaxPool2d(2)).fuse()
    assert _names(net) == ["Tanh", "Tanh", "ReLU", "MaxPool2d", "ReLU"]
