"""Parameters and the ``Module`` base class: the state half of "layers own state, kernels own arithmetic".

A module computes ``y = forward(x)``, keeps what its backward pass needs with
``self.save(...)``, and ``backward(dy, *, need_dx=True)`` takes it back with
``self.saved(dy)`` (as MiniTorch's ``ctx.save_for_backward``/``saved_values``),
returns ``dx = dLoss/dx`` and adds ``dLoss/dθ`` into the ``.grad`` of each of
its parameters. ``need_dx=False`` lets a module skip ``dx`` (it may then return
None): the first layer of a network sees data, whose gradient nobody needs. This is the error propagation of deck
002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation": ``δ^(l)`` is computed
from ``δ^(l+1)`` layer by layer, from the output back to the input.

Gradients *accumulate* (``grad += ...``), so one tensor used by two consumers
and a batch split into several backward passes both add up correctly; call
``zero_grad()`` (or the optimizer's) before each step.

Arrays are NumPy or CuPy; a module works on whichever its input is
(``array_module``), and ``to("gpu")`` moves its parameters and buffers.
"""

from __future__ import annotations

import numpy as np

from ..arrays import array_module, host_copy, is_array, is_cupy, to_device
from .init import get_initializer, is_shape_only, shape_only

__all__ = ["Parameter", "Module", "array_module", "NoForwardError"]

_DEVICES = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}


class NoForwardError(RuntimeError, ValueError):
    """``backward`` was called without a ``forward`` whose cache it could use."""


class Parameter:
    """A learnable array ``θ``: ``.data`` (the values), ``.grad`` (``dJ/dθ``, same shape, starts at zero) and ``.name``."""

    __slots__ = ("data", "grad", "name")

    def __init__(self, data, name=None):
        if not is_array(data):
            raise TypeError(f"Parameter: data must be a numpy.ndarray (or cupy.ndarray), got {type(data).__name__}")
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: data must be a floating-point array, got dtype {data.dtype}")
        self.data = data
        # a fresh zeroed array (calloc): its pages cost memory only once a backward pass writes them;
        # a shape-only weight (init.shape_only) has no values yet, so no gradient either
        self.grad = None if is_shape_only(data) else array_module(data).zeros(data.shape, dtype=data.dtype)
        self.name = name

    @property
    def is_shape_only(self):
        """True until the parameter has values: made by ``init.shape_only`` (a lazy model), for shapes and counts only."""
        return self.grad is None

    def materialize(self, values):
        """Give the parameter ``values`` (an array of its shape; a copy is kept) and a zero gradient."""
        values = array_module(values).array(values, dtype=self.data.dtype, copy=True, order="C")
        if values.shape != self.data.shape:
            raise ValueError(f"Parameter.materialize: {self.name!r} has shape {self.data.shape}, got values of shape "
                             f"{values.shape}")
        self.data = values
        self.grad = array_module(values).zeros(values.shape, dtype=values.dtype)

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        if self.grad is not None:
            self.grad.fill(0)

    def __repr__(self):
        lazy = ", shape-only" if self.is_shape_only else ""
        return f"Parameter(name={self.name!r}, shape={tuple(self.data.shape)}, dtype={self.data.dtype}{lazy})"


class Module:
    """Base class of every layer and container.

    Subclasses define ``forward(*inputs)`` and ``backward(dy, *, need_dx=True)``;
    forward keeps what backward needs with ``save``, backward takes it with
    ``saved`` (which raises the one ``NoForwardError`` when forward did not
    run, and refuses a ``dy`` that is not shaped like forward's output). Assigning a
    ``Parameter`` or a ``Module`` to an attribute registers it (so
    ``parameters()``, ``state_dict()``, ``train()``, ``to()`` find it);
    ``register_buffer(name, array)`` registers state that is saved but not
    learned (e.g. running statistics).
    """

    training: bool

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_param_names", {})
        object.__setattr__(self, "_buffer_names", {})
        object.__setattr__(self, "_child_names", {})
        object.__setattr__(self, "_output_spec", None)
        object.__setattr__(self, "_saved", None)

    # ------------------------------------------------------------ registration
    def __setattr__(self, name, value):
        registry = self.__dict__.get("_param_names")
        if registry is None:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting attributes")
        if isinstance(value, Parameter):
            if value.name is None:
                value.name = name
            self._param_names[name] = None
            self._child_names.pop(name, None)
        elif isinstance(value, Module):
            self._child_names[name] = None
            self._param_names.pop(name, None)
        elif name in self._param_names:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}.{name} is a Parameter; assign a Parameter (or None), or set "
                    f"{name}.data, instead of a {type(value).__name__}"
                )
            del self._param_names[name]
        elif name in self._child_names:
            del self._child_names[name]
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """Keep ``array`` as ``self.<name>``: part of ``state_dict()`` and moved by ``to()``, but not learned."""
        self._buffer_names[name] = None
        object.__setattr__(self, name, array)

    def named_children(self):
        for name in self._child_names:
            yield name, self.__dict__[name]

    def children(self):
        for _, child in self.named_children():
            yield child

    def modules(self):
        """This module and every module inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self, prefix=""):
        """``(dotted name, Parameter)`` for every parameter, each shared one once."""
        seen = set()
        for name, param in self._named_parameters(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _named_parameters(self, prefix):
        for name in self._param_names:
            yield prefix + name, self.__dict__[name]
        for name, child in self.named_children():
            yield from child._named_parameters(f"{prefix}{name}.")

    def parameters(self):
        """Every learnable ``Parameter`` (a generator)."""
        for _, param in self.named_parameters():
            yield param

    def named_buffers(self, prefix=""):
        for name in self._buffer_names:
            yield prefix + name, self.__dict__[name]
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def num_parameters(self):
        """Number of learnable scalars."""
        return sum(int(p.data.size) for p in self.parameters())

    # ------------------------------------------------------ shape-only weights
    @property
    def is_lazy(self):
        """True while some parameter is shape-only (``init.shape_only``): the module can be summarised, not run."""
        # every call of a module asks this: walk the parameters without building their dotted names
        return any(module.__dict__[name] is not None and module.__dict__[name].is_shape_only
                   for module in self.modules() for name in module._param_names)

    def materialize(self, rng=0):
        """Give every shape-only parameter real initial values, in place; returns ``self``.

        A layer may name its initializer per parameter in ``layer.initializers``
        (``models.blocks.conv`` says He normal for convolutions, as the ResNet
        paper does); others get He normal. ``rng`` (a seed or a NumPy
        ``Generator``) makes the weights reproducible: they are drawn in the
        order of ``parameters()``.
        """
        rng = np.random.default_rng(rng)
        for layer in self.modules():
            rules = layer.__dict__.get("initializers", {})
            for name in layer._param_names:
                param = layer.__dict__[name]
                if param is not None and param.is_shape_only:
                    init = get_initializer(rules.get(name, "kaiming_normal"))
                    param.materialize(init(param.shape, rng, param.data.dtype))
        return self

    def refuse_lazy(self):
        """Raise if some weights are still shape-only (running, training or saving would use zeros)."""
        if not self.is_lazy:
            return
        lazy = [name for name, p in self.named_parameters() if p.is_shape_only]
        if lazy:
            raise RuntimeError(
                f"{type(self).__name__} was built lazy (shape-only weights, for summary() and parameter counts: "
                f"{', '.join(lazy[:3])}{', ...' if len(lazy) > 3 else ''}); call .materialize(seed) first, load "
                "weights with load_state_dict, or build it with lazy=False"
            )

    # ----------------------------------------------------------- computation
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def backward(self, dy, *, need_dx=True):
        raise NotImplementedError(f"{type(self).__name__} must define backward()")

    def __call__(self, *inputs):
        self.refuse_lazy()
        return self.forward(*inputs)

    def save(self, *values):
        """Keep ``values`` (arrays, shapes, flags) for the next ``backward``; forward calls it."""
        object.__setattr__(self, "_saved", values)

    def saved(self, dy=None, index=None):
        """The tuple ``save`` kept, handed over once: the next backward without a forward raises ``NoForwardError``.

        ``dy`` (if given) is checked first against forward's output
        (``_check_dy``), so a refused ``dy`` leaves the saved values for the
        right one.
        """
        values = self.__dict__.get("_saved")
        if values is None:
            raise NoForwardError(
                f"{type(self).__name__}.backward() called before forward(): run forward(x) first "
                "(each backward uses what one forward saved)"
            )
        if dy is not None:
            self._check_dy(dy, index)
        object.__setattr__(self, "_saved", None)
        return values

    def add_grads(self, **grads):
        """``self.<name>.grad += value`` for each ``name=value`` (a bias of None is skipped): the parameter half of backward."""
        for name, grad in grads.items():
            param = self.__dict__[name]
            if param is not None:
                param.grad += grad

    def fuse(self):
        """Let containers run equivalent, cheaper orders of their layers (see ``Sequential.fuse``); returns self.

        The result, forward and backward, is the same; a module without
        children has nothing to fuse.
        """
        for child in self.children():
            child.fuse()
        return self

    def _keep_output(self, y):
        """Remember the shape, dtype and array type of forward's output ``y`` for ``_check_dy``; returns ``y``.

        A tuple of outputs (a graph with several heads) keeps one record per output.
        """
        spec = tuple(_array_spec(a) for a in y) if isinstance(y, tuple) else _array_spec(y)
        object.__setattr__(self, "_output_spec", spec)
        return y

    def _check_dy(self, dy, index=None):
        """Refuse a ``dy`` that is not the gradient of the last forward output: ``dLoss/dy`` has ``y``'s shape and dtype.

        A wrong-shaped ``dy`` often *broadcasts* (``(1, C, 1, 1)`` against
        ``(N, C, H, W)``) and would give a wrong gradient of the right shape, so
        every layer calls this at the top of ``backward``. ``index`` picks one
        output of a multi-output forward. Returns ``dy``.
        """
        spec = self.__dict__.get("_output_spec")
        if spec is None:
            return dy
        name = "dy"
        if index is not None:
            spec = spec[index]
            name = f"dy[{index}]"
        _check_like(f"{type(self).__name__}.backward", name, dy, spec)
        return dy

    # ------------------------------------------------------------ shape rules
    def output_shape(self, *input_shapes):
        """Shape of the output for inputs of these shapes (batch axis included), without computing anything."""
        raise NotImplementedError(
            f"{type(self).__name__} does not define output_shape(); define it to use it in summary()"
        )

    def macs(self, *input_shapes):
        """Multiply-accumulates of one forward pass on inputs of these shapes (0 for layers without weights)."""
        return 0

    # ---------------------------------------------------------------- modes
    def train(self, mode=True):
        """Training mode (Dropout drops, BatchNorm uses batch statistics), recursively; returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode, recursively; returns self."""
        return self.train(False)

    def zero_grad(self):
        """Set every parameter's ``.grad`` to zero, in place."""
        for param in self.parameters():
            param.zero_grad()

    # ----------------------------------------------------------- state_dict
    def state_dict(self):
        """``{dotted name: numpy array}`` of parameters and buffers: host copies, safe to keep while training goes on."""
        self.refuse_lazy()
        state = {}
        for name, param in self.named_parameters():
            state[name] = host_copy(param.data)
        for name, buf in self.named_buffers():
            state[name] = host_copy(buf)
        return state

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into the parameters and buffers (keeping their device and dtype).

        Names and shapes must match exactly (``strict=False`` ignores missing
        and unexpected names, never a shape mismatch).
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"load_state_dict: state must be a mapping name -> array, got {type(state).__name__}")
        params = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = set(params) | set(buffers)
        given = set(state.keys())
        if strict and expected != given:
            missing = sorted(expected - given)
            unexpected = sorted(given - expected)
            raise ValueError(
                f"load_state_dict: names do not match {type(self).__name__}'s: missing {missing}, unexpected {unexpected}"
            )
        for name in sorted(expected & given):
            value = state[name]
            current = params[name].data if name in params else buffers[name]
            what = "parameter" if name in params else "buffer"
            if not is_array(value):
                try:
                    value = np.asarray(value)
                except (TypeError, ValueError):  # a ragged list
                    raise TypeError(f"load_state_dict: {what} {name} must be an array, got {type(state[name]).__name__}") from None
            if current.dtype.kind == "f" and value.dtype.kind != "f":
                # Copying would cast silently: complex drops its imaginary part, integers and strings make no weights.
                raise TypeError(
                    f"load_state_dict: {what} {name} has dtype {value.dtype}; expected float32 or float64 "
                    f"(the model's is {current.dtype})"
                )
            value_shape = tuple(value.shape)
            if value_shape != tuple(current.shape):
                raise ValueError(
                    f"load_state_dict: {name!r} has shape {value_shape} in the state but {tuple(current.shape)} in the model"
                )
        for name in sorted(expected & given):
            value = state[name]
            if name in params and params[name].is_shape_only:  # loading gives a lazy model its weights
                params[name].materialize(_as_array(value))
            elif name in params:
                data = params[name].data
                data[...] = to_device(_as_array(value), _device_of(data), data.dtype)
            else:
                owner, attr = self._owner_of(name)
                current = getattr(owner, attr)
                object.__setattr__(owner, attr, to_device(_as_array(value), _device_of(current), current.dtype).copy())
        return self

    def _owner_of(self, dotted):
        *path, attr = dotted.split(".")
        owner = self
        for part in path:
            owner = owner.__dict__[part]
        return owner, attr

    # ---------------------------------------------------------------- device
    def to(self, device=None, *, dtype=None):
        """Move parameters and buffers to ``device`` ("cpu" or "gpu") and/or cast them to ``dtype``; returns self.

        "gpu" needs CuPy. Gradients move with their parameters; caches of an
        earlier forward pass are dropped, so run forward again before backward.
        """
        if device is not None:
            if not isinstance(device, str) or device.lower() not in _DEVICES:
                raise ValueError(f"to: device must be 'cpu' or 'gpu', got {device!r}")
            device = _DEVICES[device.lower()]
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind != "f":
                raise TypeError(f"to: dtype must be a floating-point type such as float32, got {dtype}")
        for module in self.modules():
            for name in module._param_names:
                param = module.__dict__[name]
                if param.is_shape_only:  # no values to move: only the dtype it will have
                    param.data = shape_only(param.shape, dtype=dtype or param.data.dtype)
                    continue
                param.data = to_device(param.data, device, dtype)
                param.grad = to_device(param.grad, device, dtype)
            for name in module._buffer_names:
                buf = module.__dict__[name]
                if buf is not None:
                    object.__setattr__(module, name, to_device(buf, device, dtype if buf.dtype.kind == "f" else None))
            object.__setattr__(module, "_saved", None)
            object.__setattr__(module, "_output_spec", None)
        return self

    # ---------------------------------------------------------------- display
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            lines.append("  (" + name + "): " + repr(child).replace("\n", "\n  "))
        return "\n".join(lines) + "\n)"


def _array_spec(a):
    """``(shape, dtype, on GPU)`` of an array; ``None`` for something that is not one."""
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        return None
    return tuple(int(s) for s in a.shape), a.dtype, is_cupy(a)


def _check_like(where, name, dy, spec):
    """Raise unless ``dy`` is an array of ``spec``'s shape, dtype and kind (NumPy or CuPy)."""
    if spec is None:
        return
    shape, dtype, on_gpu = spec
    kind = "cupy.ndarray" if on_gpu else "numpy.ndarray"
    if not hasattr(dy, "shape") or not hasattr(dy, "dtype"):
        raise TypeError(f"{where}: {name} must be a {kind} of the forward output's shape {shape}, got {type(dy).__name__}")
    if is_cupy(dy) != on_gpu:
        other = "cupy.ndarray" if is_cupy(dy) else "numpy.ndarray"
        move = "cupy.asarray(dy)" if on_gpu else "dy.get()"
        raise TypeError(f"{where}: {name} must be a {kind} like the forward output, got a {other}; move it with {move}")
    got = tuple(int(s) for s in dy.shape)
    if got != shape:
        raise ValueError(f"{where}: {name} must have the shape of the forward output {shape}, got {got}")
    if dy.dtype != dtype:
        raise TypeError(
            f"{where}: {name} must have the dtype of the forward output ({dtype}), got {dy.dtype}; "
            f"cast it with dy.astype(np.{dtype})"
        )


def _device_of(a):
    return "gpu" if is_cupy(a) else "cpu"


def _as_array(value):
    return value if is_array(value) else np.asarray(value)
