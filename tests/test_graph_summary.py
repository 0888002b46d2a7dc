"""What ``summary()`` prints and what the graph classes report, exactly.

A summary is the table a student compares with the slides' (LeNet-5's
"Tipo / Dimension" rows of deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de
la Red"): every row's output shape, parameters (``C_out*C_in*F*F + C_out``)
and multiply-adds (``H_out*W_out*C_out*C_in*F*F``), worked out by hand in the
comments below.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import minicnn as mc
from minicnn.graph import Graph, Node, Sequential, format_table


def _small_network():
    return Sequential(mc.nn.Conv2d(1, 2, 3, rng=0), mc.nn.ReLU(), mc.nn.Flatten(), mc.nn.Linear(18, 4, rng=0))


def test_sequential_summary_rows_and_totals():
    # conv: 2*1*3*3 + 2 = 20 parameters, 3*3 positions * 2*1*3*3 = 162 MACs; linear: 18*4 + 4 = 76, 72 MACs
    assert _small_network().summary((1, 5, 5)) == (
        "layer  type     output shape  params  MACs\n"
        "-----  -------  ------------  ------  ----\n"
        "input           1x5x5\n"
        "0      Conv2d   2x3x3             20   162\n"
        "1      ReLU     2x3x3              0     0\n"
        "2      Flatten  18                 0     0\n"
        "3      Linear   4                 76    72\n"
        "-----  -------  ------------  ------  ----\n"
        "total                             96   234"
    )


def test_graph_summary_rows_inputs_and_totals():
    g = Graph()
    x = g.input()
    conv = g.add(mc.nn.Conv2d(1, 2, 3, padding=1, rng=0), x, name="conv")
    g.output(g.add(mc.nn.Add(), conv, conv, name="twice"))
    # conv with padding 1 keeps 4x4: 16 positions * 2*1*3*3 = 288 MACs, 20 parameters
    assert g.summary((1, 4, 4)) == (
        "node   type    inputs      output shape  params  MACs\n"
        "-----  ------  ----------  ------------  ------  ----\n"
        "input                      1x4x4\n"
        "conv   Conv2d  input       2x4x4             20   288\n"
        "twice  Add     conv, conv  2x4x4              0     0\n"
        "-----  ------  ----------  ------------  ------  ----\n"
        "total                                        20   288"
    )


def test_format_table_separates_thousands_and_aligns_numbers_right():
    assert format_table(("name", "count"), [("a", 1234567), ("bb", 5)]) == (
        "name      count\n"
        "----  ---------\n"
        "a     1,234,567\n"
        "bb            5"
    )
    assert format_table(("x", "n"), [("a", 1)], ("all", 12)) == "x     n\n---  --\na     1\n---  --\nall  12"


def test_graph_output_shapes_one_or_several():
    g = Graph()
    x = g.input()
    relu = g.add(mc.nn.ReLU(), x, name="relu")
    g.output(relu)
    assert g.output_shape((2, 3, 4, 4)) == (2, 3, 4, 4)
    g.output(relu, x)
    assert g.output_shape((2, 3, 4, 4)) == ((2, 3, 4, 4), (2, 3, 4, 4))
    with pytest.raises(TypeError, match=re.escape("Graph: the graph has 1 input(s), got 2 shape(s)")):
        g.output_shape((2, 3, 4, 4), (2, 3, 4, 4))


def test_nodes_and_layers_are_named_in_their_reprs_and_errors():
    g = Graph()
    x = g.input()
    relu = g.add(mc.nn.ReLU(), x, name="r")
    assert repr(x) == "Node('input', input)" and repr(relu) == "Node('r', ReLU, inputs=['input'])"
    assert isinstance(relu, Node)
    net = _small_network()
    with pytest.raises(KeyError, match=re.escape("Sequential has no layer named 'fc'; names: ['0', '1', '2', '3']")):
        net["fc"]
    assert repr(Sequential(mc.nn.ReLU())) == "Sequential(\n  (0): ReLU()\n)"


def test_sequential_of_nothing_passes_the_gradient_through():
    empty = Sequential()
    dy = np.ones((2, 3))
    assert empty.backward(dy) is dy


def _two_outputs():
    g = Graph()
    x = g.input()
    g.output(g.add(mc.nn.ReLU(), x, name="relu"), g.add(mc.nn.Identity(), x, name="same"))
    return g


def test_graph_backward_takes_the_output_gradients_apart_or_as_one_tuple():
    x = np.array([[-1.0, 2.0]])
    dy1, dy2 = np.array([[10.0, 20.0]]), np.array([[1.0, 3.0]])
    g = _two_outputs()
    g(x)
    apart = g.backward(dy1, dy2)
    g(x)
    together = g.backward((dy1, dy2))
    np.testing.assert_array_equal(apart, [[1.0, 23.0]])  # ReLU passes 20 only where x > 0; Identity passes both
    np.testing.assert_array_equal(together, apart)
    g(x)
    np.testing.assert_array_equal(g.backward(None, dy2), dy2)
    with pytest.raises(TypeError, match=re.escape("Graph.backward: the graph has 2 output(s), got 3 gradient(s)")):
        g.backward(dy1, dy2, dy2)
    g(x)
    with pytest.raises(ValueError, match="^" + re.escape("Graph.backward: every output gradient is None") + "$"):
        g.backward(None, None)


class _ListMerge(mc.nn.Module):
    """A merge whose backward returns a list: the graph needs a tuple, one gradient per input."""

    def forward(self, a, b):
        return a + b

    def backward(self, dy, *, need_dx=True):
        return [dy, dy]

    def output_shape(self, a, b):
        return a


def test_graph_backward_needs_a_tuple_from_a_merge():
    g = Graph()
    x = g.input()
    g.output(g.add(_ListMerge(), x, x, name="merge"))
    g(np.ones((1, 2)))
    with pytest.raises(TypeError, match=re.escape("Graph.backward: _ListMerge at node 'merge' has 2 inputs, so its "
                                                  "backward must return a tuple with one gradient per input")):
        g.backward(np.ones((1, 2)))


def test_containers_name_themselves_in_their_errors():
    with pytest.raises(TypeError, match=re.escape("Sequential: expected a minicnn.nn.Module, got str 'relu'")):
        Sequential(mc.nn.ReLU(), "relu")
    g = Graph()
    x = g.input()
    with pytest.raises(TypeError, match="^" + re.escape("Graph.add: give at least one input node, e.g. g.add(layer, x)") + "$"):
        g.add(mc.nn.ReLU())
    with pytest.raises(TypeError, match="^" + re.escape("Graph.output: give at least one node") + "$"):
        g.output()
    other = Graph().input()
    with pytest.raises(ValueError, match=re.escape("Graph.output: output 0 must be a Node of this graph, got "
                                                   "Node('input', input)")):
        g.output(other)
    with pytest.raises(RuntimeError, match="^" + re.escape("Graph: no output declared; call g.output(node) before running "
                                                     "the graph") + "$"):
        g(np.ones((1, 2)))
    g.output(g.add(mc.nn.ReLU(), x, name="relu"))
    with pytest.raises(TypeError, match=re.escape("Graph.forward: the graph has 1 input(s), got 2 array(s)")):
        g(np.ones((1, 2)), np.ones((1, 2)))


def test_graph_inputs_are_numbered_and_changes_replan_the_graph():
    g = Graph()
    x = g.input()
    relu = g.add(mc.nn.ReLU(), x, name="relu")
    negate = g.add(mc.nn.Tanh(), x, name="tanh")
    g.output(relu)
    data = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(g(data), [[0.0, 2.0]])
    g.output(negate)  # a new output: the plan is made again
    np.testing.assert_allclose(g(data), np.tanh(data))
    second = g.input()
    assert (x.name, second.name) == ("input", "input1")
    with pytest.raises(ValueError, match=re.escape("Graph: input 'input1' does not reach any output")):
        g(data, data)


@pytest.mark.parametrize("name", ["a.b", ""])
def test_layer_and_node_names_are_non_empty_and_without_dots(name):
    with pytest.raises(ValueError, match=re.escape(f"Sequential: a layer name must be a non-empty str without '.', "
                                                   f"got {name!r}")):
        Sequential({name: mc.nn.ReLU()})
    g = Graph()
    with pytest.raises(ValueError, match=re.escape(f"Graph: a node name must be a non-empty str without '.', "
                                                   f"got {name!r}")):
        g.add(mc.nn.ReLU(), g.input(), name=name)


def test_graph_names_nodes_by_count_and_refuses_a_name_twice():
    g = Graph()
    x = g.input()
    first, second = g.add(mc.nn.ReLU(), x), g.add(mc.nn.ReLU(), x)
    assert (first.name, second.name) == ("0", "1")
    g.add(mc.nn.ReLU(), x, name="a")
    with pytest.raises(ValueError, match="^" + re.escape("Graph: the node name 'a' is already used") + "$"):
        g.add(mc.nn.ReLU(), x, name="a")
    with pytest.raises(TypeError, match=re.escape("Graph.add: input 0 must be a Node from g.input() or g.add(), "
                                                  "got str")):
        g.add(mc.nn.ReLU(), "x")
    with pytest.raises(TypeError, match=re.escape("Graph: expected a minicnn.nn.Module, got str 'relu'")):
        g.add("relu", x)
