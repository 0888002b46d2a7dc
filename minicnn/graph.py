"""Containers that run layers forward, then backward in reverse: ``Sequential`` and the DAG ``Graph``.

Backpropagation (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
Backpropagation") goes through the layers in the opposite order of the
forward pass, each ``δ^(l)`` computed from ``δ^(l+1)``. In a graph, a tensor
read by several layers (a fan-out, e.g. the input of a ResNet block, which
feeds both the block and the skip connection) receives the *sum* of the
gradients its consumers send back.

``Sequential``::

    net = Sequential(Conv2d(1, 6, 5), ReLU(), MaxPool2d(2), Flatten(), Linear(6 * 14 * 14, 10))
    print(net.summary((1, 32, 32)))

``Graph`` (a residual block)::

    g = Graph()
    x = g.input()
    h = g.add(Conv2d(8, 8, 3, padding=1), x, name="conv")
    h = g.add(ReLU(), h)
    y = g.add(Add(), h, x)            # x fans out: used by conv and by the sum
    g.output(y)
    out = g(batch); dx = g.backward(dout)
"""

from __future__ import annotations

from .nn.merge import Add, Concat
from .nn.module import Module

__all__ = ["Sequential", "Graph", "Node", "Add", "Concat", "format_table"]


def _check_child_name(container, name):
    if not isinstance(name, str) or not name or "." in name:
        raise ValueError(f"{type(container).__name__}: a layer name must be a non-empty str without '.', got {name!r}")
    if hasattr(type(container), name) or name in container.__dict__:
        raise ValueError(f"{type(container).__name__}: the name {name!r} is already taken; choose another")


def _check_module(container, module, used):
    if not isinstance(module, Module):
        raise TypeError(f"{type(container).__name__}: expected a minicnn.nn.Module, got {type(module).__name__} {module!r}")
    if module is container:
        raise ValueError(f"{type(container).__name__}: a container cannot contain itself")
    if id(module) in used:
        raise ValueError(
            f"{type(container).__name__}: this {type(module).__name__} instance is already in the container; a layer "
            "keeps the cache of one forward pass, so create a new layer (share weights by sharing its Parameter)"
        )
    used.add(id(module))


def _sample_shape(shape):
    """Batch axis dropped, as the slides write sizes: (1, 6, 28, 28) -> '6x28x28'."""
    return "x".join(str(s) for s in shape[1:])


def _with_batch(input_shape):
    return (1, *(int(s) for s in input_shape))


def format_table(headers, rows, total=None):
    """Plain-text table: columns padded to their widest entry, integer columns right-aligned with thousands separators."""
    body = [tuple(row) for row in rows] + ([tuple(total)] if total else [])

    def text(value):
        return f"{value:,}" if isinstance(value, int) else str(value)

    numeric = [any(isinstance(row[i], int) for row in body) for i in range(len(headers))]
    widths = [max(len(text(row[i])) for row in [tuple(headers), *body]) for i in range(len(headers))]

    def line(row):
        cells = (text(v).rjust(w) if num else text(v).ljust(w) for v, w, num in zip(row, widths, numeric))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    lines = [line(headers), rule] + [line(row) for row in rows]
    if total:
        lines += [rule, line(total)]
    return "\n".join(lines)


# --------------------------------------------------------------- Sequential
def _fused_order(layers):
    """The layers in an order with the same result and less work: a layer that ``commutes_with`` the next runs after it.

    ``ReLU.commutes_with(MaxPool2d)`` is the case that matters: the ReLU then
    works on the pooled map, 4x smaller for LeNet-5's 2x2 windows.
    """
    order = list(layers)
    i = 0
    while i + 1 < len(order):
        commutes = getattr(order[i], "commutes_with", None)
        if commutes is not None and commutes(order[i + 1]):
            order[i], order[i + 1] = order[i + 1], order[i]
            i += 2
        else:
            i += 1
    return order


class Sequential(Module):
    """Layers applied one after the other; ``backward`` runs them in reverse.

    ``Sequential(layer1, layer2, ...)`` names the layers "0", "1", ...;
    ``Sequential({"C1": conv, "S2": pool, ...})`` keeps the given names (they
    prefix the ``state_dict`` keys: "C1.weight").

    It runs the layers as written. ``fuse()`` lets it run an equivalent,
    cheaper order instead: a ``ReLU`` directly followed by a ``MaxPool2d``
    then runs after the pooling, on the smaller map (the two commute, so the
    result, forward and backward, is the same bit for bit). Calling the
    layers one by one, or a slice of the container, still gives every
    intermediate map as written.
    """

    def __init__(self, *layers):
        super().__init__()
        object.__setattr__(self, "_layers", [])
        object.__setattr__(self, "_order", [])
        object.__setattr__(self, "_fused", False)
        object.__setattr__(self, "_used", set())
        if len(layers) == 1 and isinstance(layers[0], dict):
            for name, layer in layers[0].items():
                self.append(layer, name=name)
        else:
            for layer in layers:
                self.append(layer)

    def append(self, layer, name=None):
        """Add ``layer`` at the end (named by its position unless ``name`` is given); returns self."""
        name = str(len(self._layers)) if name is None else name
        _check_child_name(self, name)
        _check_module(self, layer, self._used)
        setattr(self, name, layer)
        self._layers.append((name, layer))
        self._set_order()
        return self

    def fuse(self):
        """Run commuting neighbours in the cheaper order from now on (see the class docstring); returns self."""
        object.__setattr__(self, "_fused", True)
        self._set_order()
        return super().fuse()

    @property
    def fused(self):
        """True once ``fuse()`` was called."""
        return self._fused

    @property
    def execution_order(self):
        """The layers in the order ``forward`` runs them: as written, or as ``fuse()`` reordered them."""
        return list(self._order)

    def _set_order(self):
        layers = [module for _, module in self._layers]
        object.__setattr__(self, "_order", _fused_order(layers) if self._fused else layers)

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return (layer for _, layer in self._layers)

    def __getitem__(self, key):
        """A layer by position or name; a slice gives a ``Sequential`` of those layers (the same objects)."""
        if isinstance(key, slice):
            return Sequential(dict(self._layers[key]))
        if isinstance(key, str):
            for name, layer in self._layers:
                if name == key:
                    return layer
            raise KeyError(f"Sequential has no layer named {key!r}; names: {[n for n, _ in self._layers]}")
        return self._layers[key][1]

    def forward(self, x):
        for layer in self._order:
            x = layer.forward(x)
        return self._keep_output(x)

    def backward(self, dy, *, need_dx=True):
        """Backpropagate ``dy`` through the layers in reverse; returns ``dx``.

        ``need_dx=False`` lets the first layer skip computing ``dx`` (a
        training step on data needs only the parameter gradients); the
        result is then None.
        """
        self._check_dy(dy)
        order = self._order
        for layer in reversed(order[1:]):
            dy = layer.backward(dy)
        if not order:
            return dy
        dx = order[0].backward(dy, need_dx=need_dx)
        return dx if need_dx else None

    # ------------------------------------------------------------ shapes
    def output_shape(self, input_shape):
        shape = tuple(int(s) for s in input_shape)
        for _, layer in self._layers:
            shape = layer.output_shape(shape)
        return shape

    def macs(self, input_shape):
        total, shape = 0, tuple(int(s) for s in input_shape)
        for _, layer in self._layers:
            total += layer.macs(shape)
            shape = layer.output_shape(shape)
        return total

    def output_shapes(self, input_shape):
        """Per-sample output shape of every layer for one sample of ``input_shape`` (no batch axis), e.g. (1, 32, 32)."""
        shape, out = _with_batch(input_shape), []
        for _, layer in self._layers:
            shape = layer.output_shape(shape)
            out.append(shape[1:])
        return out

    def summary(self, input_shape):
        """Table of layer, type, output shape, parameters and MACs for one sample of ``input_shape`` (e.g. (1, 32, 32)).

        Shapes, parameter counts and MACs come from ``minicnn.shapes`` through
        each layer's ``output_shape``, ``num_parameters`` and ``macs``;
        nothing is computed on data.
        """
        shape = _with_batch(input_shape)
        rows = [("input", "", _sample_shape(shape), "", "")]
        total_params = total_macs = 0
        for name, layer in self._layers:
            macs = layer.macs(shape)
            shape = layer.output_shape(shape)
            params = layer.num_parameters()
            total_params += params
            total_macs += macs
            rows.append((name, type(layer).__name__, _sample_shape(shape), params, macs))
        return format_table(
            ("layer", "type", "output shape", "params", "MACs"), rows, ("total", "", "", total_params, total_macs)
        )

    def extra_repr(self):
        return ""


# -------------------------------------------------------------------- Graph
class Node:
    """A tensor in a ``Graph``: a graph input, or the output of ``module`` applied to ``inputs``."""

    __slots__ = ("graph", "index", "name", "module", "inputs")

    def __init__(self, graph, index, name, module, inputs):
        self.graph = graph
        self.index = index
        self.name = name
        self.module = module
        self.inputs = inputs

    def __repr__(self):
        if self.module is None:
            return f"Node({self.name!r}, input)"
        return f"Node({self.name!r}, {type(self.module).__name__}, inputs={[n.name for n in self.inputs]})"


class Graph(Module):
    """A network as a directed acyclic graph of layers, with joins (``Add``, ``Concat``) and fan-outs.

    Build it with ``x = g.input()``, ``h = g.add(module, *input_nodes, name=None)``
    and ``g.output(*nodes)``. A node can only take nodes that already exist,
    so the order of ``add`` calls is a topological order: ``forward`` runs the
    layers in it, ``backward`` in reverse, adding up the gradients of a node
    read by several layers. Layers that no output depends on are skipped.

    ``forward(*inputs)`` takes one array per ``input()`` and returns one array
    (one output) or a tuple (several outputs); ``backward(*dys)`` takes one
    gradient per output (``None`` for an output that does not reach the loss)
    and returns the gradient of each input (a tuple if several), or None with
    ``need_dx=False``, which also lets the layers reading only graph inputs
    skip computing it.
    Layers are registered under their node names (``name`` or "0", "1", ...),
    which prefix the ``state_dict`` keys.
    """

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "_nodes", [])
        object.__setattr__(self, "_inputs", [])
        object.__setattr__(self, "_outputs", [])
        object.__setattr__(self, "_used", set())
        object.__setattr__(self, "_names", set())
        object.__setattr__(self, "_order", None)
        object.__setattr__(self, "_layer_count", 0)

    # ------------------------------------------------------------ building
    def input(self, name=None):
        """A new graph input; ``forward`` takes the inputs in the order they were created."""
        if name is None:
            name = "input" if not self._inputs else f"input{len(self._inputs)}"
        self._check_node_name(name, attribute=False)
        self._names.add(name)
        node = Node(self, len(self._nodes), name, None, ())
        self._nodes.append(node)
        self._inputs.append(node)
        object.__setattr__(self, "_order", None)
        return node

    def add(self, module, *inputs, name=None):
        """Apply ``module`` to the tensors of ``inputs`` (nodes of this graph); returns the new node."""
        if not inputs:
            raise TypeError("Graph.add: give at least one input node, e.g. g.add(layer, x)")
        for i, node in enumerate(inputs):
            if not isinstance(node, Node):
                raise TypeError(f"Graph.add: input {i} must be a Node from g.input() or g.add(), got {type(node).__name__}")
            if node.graph is not self:
                raise ValueError(f"Graph.add: input {i} ({node.name!r}) belongs to another graph")
        if name is None:
            name = str(self._layer_count)
        self._check_node_name(name)
        _check_module(self, module, self._used)
        self._names.add(name)
        setattr(self, name, module)
        object.__setattr__(self, "_layer_count", self._layer_count + 1)
        node = Node(self, len(self._nodes), name, module, tuple(inputs))
        self._nodes.append(node)
        object.__setattr__(self, "_order", None)
        return node

    def output(self, *nodes):
        """Declare the graph's outputs (replacing earlier ones); returns self."""
        if not nodes:
            raise TypeError("Graph.output: give at least one node")
        for i, node in enumerate(nodes):
            if not isinstance(node, Node) or node.graph is not self:
                raise ValueError(f"Graph.output: output {i} must be a Node of this graph, got {node!r}")
        object.__setattr__(self, "_outputs", list(nodes))
        object.__setattr__(self, "_order", None)
        return self

    def _check_node_name(self, name, attribute=True):
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Graph: a node name must be a non-empty str without '.', got {name!r}")
        if name in self._names:
            raise ValueError(f"Graph: the node name {name!r} is already used")
        if attribute:  # layer nodes become attributes (g.conv1), inputs do not
            _check_child_name(self, name)

    @property
    def nodes(self):
        """All nodes, inputs included, in the order they were created."""
        return list(self._nodes)

    def _plan(self):
        """Layer nodes the outputs depend on, in creation (= topological) order."""
        if self._order is None:
            if not self._outputs:
                raise RuntimeError("Graph: no output declared; call g.output(node) before running the graph")
            needed = set()
            stack = list(self._outputs)
            while stack:
                node = stack.pop()
                if node.index not in needed:
                    needed.add(node.index)
                    stack.extend(node.inputs)
            for node in self._inputs:
                if node.index not in needed:
                    raise ValueError(f"Graph: input {node.name!r} does not reach any output")
            order = [node for node in self._nodes if node.module is not None and node.index in needed]
            object.__setattr__(self, "_order", order)
        return self._order

    # --------------------------------------------------------- computation
    def forward(self, *xs):
        order = self._plan()
        if len(xs) != len(self._inputs):
            raise TypeError(f"Graph.forward: the graph has {len(self._inputs)} input(s), got {len(xs)} array(s)")
        values = [None] * len(self._nodes)
        for node, x in zip(self._inputs, xs):
            values[node.index] = x
        for node in order:
            module = node.module
            if len(node.inputs) == 1:
                values[node.index] = module.forward(values[node.inputs[0].index])
            else:
                values[node.index] = module.forward(*[values[i.index] for i in node.inputs])
        outputs = [values[node.index] for node in self._outputs]
        return self._keep_output(outputs[0] if len(outputs) == 1 else tuple(outputs))

    def backward(self, *dys, need_dx=True):
        order = self._plan()
        if len(dys) == 1 and len(self._outputs) > 1 and isinstance(dys[0], (tuple, list)):
            dys = tuple(dys[0])
        if len(dys) != len(self._outputs):
            raise TypeError(f"Graph.backward: the graph has {len(self._outputs)} output(s), got {len(dys)} gradient(s)")
        grads = [None] * len(self._nodes)

        def accumulate(index, grad):
            # Out of place: the same array may be handed to several inputs (Add returns dy once per term).
            grads[index] = grad if grads[index] is None else grads[index] + grad

        for i, (node, dy) in enumerate(zip(self._outputs, dys)):
            if dy is not None:
                self._check_dy(dy, i if len(self._outputs) > 1 else None)
                accumulate(node.index, dy)
        if all(g is None for g in grads):
            raise ValueError("Graph.backward: every output gradient is None")
        for node in reversed(order):
            dy = grads[node.index]
            if dy is None:
                continue
            grads[node.index] = None
            # A layer reading only graph inputs need not compute dx when need_dx is False.
            wanted = need_dx or any(inp.module is not None for inp in node.inputs)
            dx = node.module.backward(dy, need_dx=wanted)
            if len(node.inputs) == 1:
                if dx is not None:
                    accumulate(node.inputs[0].index, dx)
                continue
            if not isinstance(dx, tuple) or len(dx) != len(node.inputs):
                raise TypeError(
                    f"Graph.backward: {type(node.module).__name__} at node {node.name!r} has {len(node.inputs)} "
                    "inputs, so its backward must return a tuple with one gradient per input"
                )
            for inp, d in zip(node.inputs, dx):
                if d is not None:
                    accumulate(inp.index, d)
        if not need_dx:
            return None
        dxs = [grads[node.index] for node in self._inputs]
        return dxs[0] if len(dxs) == 1 else tuple(dxs)

    # -------------------------------------------------------------- shapes
    def _propagate(self, input_shapes):
        if len(input_shapes) != len(self._inputs):
            raise TypeError(f"Graph: the graph has {len(self._inputs)} input(s), got {len(input_shapes)} shape(s)")
        order = self._plan()
        shapes_ = {}
        for node, shape in zip(self._inputs, input_shapes):
            shapes_[node.index] = tuple(int(s) for s in shape)
        rows = []
        for node in order:
            in_shapes = [shapes_[i.index] for i in node.inputs]
            macs = node.module.macs(*in_shapes)
            shapes_[node.index] = node.module.output_shape(*in_shapes)
            rows.append((node, shapes_[node.index], macs))
        return shapes_, rows

    def output_shape(self, *input_shapes):
        shapes_, _ = self._propagate(input_shapes)
        outs = [shapes_[node.index] for node in self._outputs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def macs(self, *input_shapes):
        return sum(macs for _, _, macs in self._propagate(input_shapes)[1])

    def output_shapes(self, *input_shapes):
        """``{node name: per-sample output shape}`` for one sample per input (shapes without the batch axis)."""
        _, rows = self._propagate([_with_batch(s) for s in input_shapes])
        return {node.name: shape[1:] for node, shape, _ in rows}

    def summary(self, *input_shapes):
        """Table of node, type, inputs, output shape, parameters and MACs for one sample per input (e.g. (3, 32, 32))."""
        batched = [_with_batch(s) for s in input_shapes]
        _, rows = self._propagate(batched)
        table = [(node.name, "", "", _sample_shape(shape), "", "") for node, shape in zip(self._inputs, batched)]
        total_params = total_macs = 0
        for node, shape, macs in rows:
            params = node.module.num_parameters()
            total_params += params
            total_macs += macs
            inputs = ", ".join(i.name for i in node.inputs)
            table.append((node.name, type(node.module).__name__, inputs, _sample_shape(shape), params, macs))
        return format_table(
            ("node", "type", "inputs", "output shape", "params", "MACs"),
            table,
            ("total", "", "", "", total_params, total_macs),
        )
