"""Sequential's fused order, the containers' refusals and need_dx, found untested by tools/mutation.py.

``Sequential.fuse()`` runs a layer that ``commutes_with`` the next one after
it (a ReLU after the MaxPool2d that follows it), one swap per pair;
``execution_order`` is the order ``forward`` runs, the public view of it.
"""

import re

import numpy as np
import pytest

from minicnn import nn
from minicnn.graph import Graph, Sequential


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


# ------------------------------------------------------------- container errors

def _add_to(container, layer, name=None):
    """Put ``layer`` into a Sequential (``append``) or a Graph (``add`` on a fresh input)."""
    if isinstance(container, Sequential):
        return container.append(layer, name=name)
    return container.add(layer, container.input(name=f"in{len(container.nodes)}"), name=name)


@pytest.mark.parametrize("kind", [Sequential, Graph])
def test_a_layer_added_twice_is_refused_with_the_whole_message(kind):
    """A layer instance keeps one forward pass's cache, so a container refuses it a second time and says why."""
    container, relu = kind(), nn.ReLU()
    _add_to(container, relu)
    want = (f"{kind.__name__}: this ReLU instance is already in the container; a layer keeps the cache of one "
            "forward pass, so create a new layer (share weights by sharing its Parameter)")
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        _add_to(container, relu)


@pytest.mark.parametrize("kind", [Sequential, Graph])
def test_a_container_cannot_contain_itself(kind):
    container = kind()
    with pytest.raises(ValueError, match=f"^{kind.__name__}: a container cannot contain itself$"):
        _add_to(container, container)


@pytest.mark.parametrize("kind", [Sequential, Graph])
def test_a_layer_name_that_shadows_an_attribute_is_refused_with_the_whole_message(kind):
    """A layer becomes an attribute of its container, so a name the class already has (``backward``) is refused."""
    want = f"{kind.__name__}: the name 'backward' is already taken; choose another"
    with pytest.raises(ValueError, match=f"^{re.escape(want)}$"):
        _add_to(kind(), nn.ReLU(), name="backward")


class _ToldReLU(nn.ReLU):
    """A ReLU that writes down the ``need_dx`` each backward call is given (the Module protocol's flag)."""

    def __init__(self):
        super().__init__()
        self.told = []

    def backward(self, dy, *, need_dx=True):
        self.told.append(need_dx)
        return super().backward(dy, need_dx=need_dx)


@pytest.mark.parametrize("need_dx", [True, False])
def test_graph_backward_tells_only_the_layers_reading_graph_inputs_that_no_dx_is_needed(need_dx):
    """``need_dx=False`` reaches the layers that read only graph inputs (their dx would be dropped); a layer reading
    another layer's output must still hand its dx on, and with ``need_dx=True`` every layer computes it."""
    g = Graph()
    x = g.input()
    first, second = _ToldReLU(), _ToldReLU()
    g.output(g.add(second, g.add(first, x)))
    inputs = np.array([[-1.0, 2.0, -3.0, 4.0]])
    g(inputs)
    dx = g.backward(np.ones((1, 4)), need_dx=need_dx)
    assert first.told == [need_dx] and second.told == [True]
    if need_dx:
        np.testing.assert_array_equal(dx, [[0.0, 1.0, 0.0, 1.0]])
    else:
        assert dx is None


@pytest.mark.parametrize("need_dx", [True, False])
def test_sequential_backward_tells_its_first_layer_whether_a_dx_is_needed(need_dx):
    """``Sequential.backward(need_dx=False)`` (a training step on data) tells the first layer to skip its dx; the
    later layers always hand theirs on."""
    first, second = _ToldReLU(), _ToldReLU()
    net = Sequential(first, second)
    net(np.array([[-1.0, 2.0, -3.0, 4.0]]))
    dx = net.backward(np.ones((1, 4)), need_dx=need_dx)
    assert first.told == [need_dx] and second.told == [True]
    assert (dx is None) == (not need_dx)


def test_a_weight_shared_by_two_layers_is_counted_once_by_sequential_and_graph():
    """Tied weights (one Parameter in two layers) are one set of learnable scalars: ``num_parameters`` counts
    what ``parameters()`` lists, each Parameter once, in a Sequential and in a Graph alike."""
    a, b, c = nn.Linear(3, 4, rng=0), nn.Linear(4, 4, rng=0), nn.Linear(4, 4, rng=0)
    c.weight = b.weight  # 12 + 4, 16 + 4, and c's own bias 4: 40 scalars, not 56
    net = Sequential(a, b, c)
    g = Graph()
    g.output(g.add(c, g.add(b, g.add(a, g.input()))))
    for model in (net, g):
        assert model.num_parameters() == sum(p.data.size for p in model.parameters()) == 40
