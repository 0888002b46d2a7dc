"""A whole training step that stays on the device, allocated once and (on CuPy) replayed as a CUDA graph.

:func:`minicnn.train.step` is the readable step: forward, loss, backward,
update (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Stochastic Gradient
Descend"). Its loss is a Python float, so every step waits for the GPU, and
every layer launches its kernels from Python one by one. On a GPU that wait
and those launches cost more than LeNet-5's arithmetic (10.9 ms a step on an
H200 measured that way, where cuDNN takes 2 ms).

:class:`DeviceStep` runs the same step with no host work inside it:

* fixed input buffers (``x``, ``labels``) the loader copies each batch into,
  allocated once per (model, batch size);
* the loss, the count of correct predictions and the learning rate live in
  device arrays (a sum over the epoch, read once by :meth:`DeviceStep.metrics`);
  nothing in the step calls ``float()``, ``.item()`` or copies to the host;
* the SGD update with momentum written as in :mod:`minicnn.optim`, with ``η``
  read from a device array, so a schedule changes it without a new capture;
* on CuPy, after ``warmup`` plain steps on a non-default stream, the step is
  captured once into a CUDA graph and every later step is one graph launch.

The step is written against an array module ``xp`` (NumPy or CuPy) and a
:class:`GraphCapture` (``capture(body) -> graph``, ``graph.launch()``).
With NumPy the capturer is :class:`NoCapture` and the step is bit for bit
:func:`minicnn.train.step` (tests/test_captured.py checks it). Where capture
fails (a library call that synchronises, an allocation the graph cannot
hold), a ``RuntimeWarning`` says why and the step keeps running as plain
launches, with the same results.

What cannot be captured must not be in the step: a layer that draws random
numbers on the host (``Dropout``: its mask would be frozen into the graph)
makes :func:`capture_blockers` non-empty, and such a network runs uncaptured.
"""

from __future__ import annotations

import warnings

import numpy as np

from .nn.loss import log_softmax

__all__ = ["DeviceStep", "GraphCapture", "NoCapture", "CupyCapture", "capture_blockers",
           "softmax_cross_entropy", "sgd_update", "fused_stages", "ReluPool2x2", "ConvBiasRelu"]


# --------------------------------------------------------------------------- graph capture interface
class GraphCapture:
    """How a step becomes a replayable graph: ``capture(body)`` returns an object with ``launch()``.

    ``available`` is False where nothing can be captured (then the step always runs ``body`` directly).
    """

    available = False

    def prepare(self):
        """Work needed once before the first capture (e.g. cuBLAS's workspace); may raise."""

    def capture(self, body):
        raise NotImplementedError

    def run(self, body):
        """Run ``body`` as plain launches, on the stream the graph would use."""
        body()


class NoCapture(GraphCapture):
    """The NumPy capturer: nothing to capture, every step runs as written."""


class _StreamGraph:
    def __init__(self, graph, stream):
        self.graph, self.stream = graph, stream

    def launch(self):
        self.graph.launch(self.stream)


class CupyCapture(GraphCapture):
    """CUDA graph capture on a non-default stream (``cupy.cuda.Stream(non_blocking=True)``).

    ``capture(body)``: ``stream.begin_capture()``, ``body()`` (recorded, not
    executed), ``stream.end_capture()``. Capture is refused on the default
    (legacy) stream, hence a stream of its own. cuBLAS may allocate its
    workspace on first use, which a capture cannot record. :meth:`prepare`
    gives the handle a fixed workspace where CuPy exposes
    ``cublasSetWorkspace`` (CuPy 14.2 does not: its cuBLAS module has
    ``setStream`` and ``setMathMode`` but no workspace call, and cuBLAS
    resets the workspace at every ``cublasSetStream``, which CuPy calls before
    each product). What the capture then relies on is the warm-up: steps run
    on the same stream before it, so cuBLAS has allocated its workspace for
    that stream already. If a capture still fails, the step falls back to
    plain launches with a warning (:class:`DeviceStep`).

    Every allocation of the step (warm-up, capture, plain launches) comes
    from a memory pool of its own. A captured graph writes, at every replay,
    into the blocks its intermediates had during the capture; in CuPy's
    shared pool those blocks would be handed to other arrays once the
    capture freed them. In a private pool only this step's next capture or
    plain run reuses them, so the intermediates are allocated once per
    (model, batch size) and nothing else is overwritten.
    """

    available = True
    workspace_bytes = 32 << 20

    def __init__(self, stream=None):
        if stream is None:
            import cupy

            stream = cupy.cuda.Stream(non_blocking=True)
        self.stream = stream
        self._workspace = None
        self.pool = None

    def _scope(self):
        """``with``: the step's stream and its private memory pool."""
        import contextlib

        scope = contextlib.ExitStack()
        scope.enter_context(self._memory_scope())
        scope.enter_context(self.stream)
        return scope

    def _memory_scope(self):
        import cupy

        if self.pool is None:
            self.pool = cupy.cuda.MemoryPool()
        return cupy.cuda.using_allocator(self.pool.malloc)

    def prepare(self):
        with self._scope():
            self._set_cublas_workspace()

    def _set_cublas_workspace(self):
        import cupy
        from cupy_backends.cuda.libs import cublas

        set_workspace = getattr(cublas, "setWorkspace", None)
        if set_workspace is None or self._workspace is not None:
            return
        handle = cupy.cuda.device.get_cublas_handle()
        self._workspace = cupy.empty(self.workspace_bytes, dtype=cupy.uint8)
        set_workspace(handle, self._workspace.data.ptr, self.workspace_bytes)

    def run(self, body):
        with self._scope():
            body()

    def capture(self, body):
        with self._scope():
            self.stream.begin_capture()
            try:
                body()
            except BaseException:
                _end_quietly(self.stream)
                raise
            graph = self.stream.end_capture()
        return _StreamGraph(graph, self.stream)

    def synchronize(self):
        self.stream.synchronize()

    def fence(self):
        """Wait for all work on the device, the default stream's included.

        The step's stream is non-blocking: it does not wait for the legacy
        default stream, where the parameters were created and the evaluation
        runs. A fence before a run of steps orders that work before them.
        """
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def _end_quietly(stream):
    """Leave capture mode after a failed body (the invalidated graph is discarded)."""
    try:
        stream.end_capture()
    except Exception:
        pass


def capture_blockers(net):
    """Names of the layers whose work cannot be frozen into a graph (host random numbers); empty if none."""
    modules = net.modules() if hasattr(net, "modules") else [net]
    return [type(m).__name__ for m in modules if getattr(m, "reseed", None) is not None]


# --------------------------------------------------------------------------- the step's arithmetic
def softmax_cross_entropy(logits, labels):
    """``(sum of -log P(y_i | x_i), dJ/dlogits)`` of a batch, on the device, no host read.

    Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation", eq. 3 and
    4: ``J = -(1/m) Σ_i log P(y_i | x_i)`` and ``dJ/dz = (P - onehot(y))/m``.
    The same operations, in the same order, as ``SoftmaxCrossEntropy``
    (whose ``forward`` returns ``-float(sum)/m``), so the bits agree. The sum
    is returned as a 0-d array; labels are checked at the loader, not here.
    """
    xp = _xp(logits)
    n = logits.shape[0]
    log_p = log_softmax(logits)
    rows = xp.arange(n)
    log_likelihood = log_p[rows, labels].sum()
    dlogits = xp.exp(log_p)
    dlogits[rows, labels] -= 1
    dlogits /= n
    return log_likelihood, dlogits


def sgd_update(params, velocities, lr, momentum, weight_decay):
    """``g ← g + λθ``, ``v ← γv + ηg``, ``θ ← θ - v`` for every parameter, ``η`` a 0-d device array.

    :class:`minicnn.optim.SGD` with its learning rate in device memory (deck
    002, "Aprendizaje: Stochastic Gradient Descend"). ``η`` has the
    parameters' dtype, so ``η * g`` rounds as ``SGD.step``'s Python float
    does (NumPy casts a Python scalar to the array's dtype).
    """
    for p, v in zip(params, velocities):
        grad = p.grad
        if weight_decay:
            grad = grad + weight_decay * p.data
        if momentum:
            v *= momentum
            v += lr * grad
            p.data -= v
        else:
            p.data -= lr * grad


def _xp(a):
    from .arrays import array_module

    return array_module(a)


# --------------------------------------------------------------------------- fused stages
class ReluPool2x2:
    """A ``MaxPool2d(2)`` and the ``ReLU`` next to it (either order: they commute) as one kernel each way.

    ``max(0, max_window(x)) = max_window(max(0, x))`` (``ReLU.commutes_with``),
    so the pair is one pass over the map (``relu_max_pool2x2`` of the backend,
    ``kernels/gpu/fused.cu``) that keeps each window's winner, and one gather back.
    """

    def __init__(self, backend, layers):
        self.backend, self.layers = backend, layers
        self._winner = self._shape = None

    def forward(self, x):
        y, self._winner = self.backend.relu_max_pool2x2(x)
        self._shape = x.shape
        return y

    def backward(self, dy, *, need_dx=True):
        return self.backend.relu_max_pool2x2_grad(dy, self._winner, self._shape)


class ConvBiasRelu:
    """A ``Conv2d`` and the ``ReLU`` after it as one kernel forward: ``max(0, X (*) W + b)``.

    The backend's ``conv2d_bias_relu`` (the implicit-GEMM forward with bias
    and ReLU in its epilogue). Backward is the layers' own arithmetic: the
    ReLU's mask ``dy * (y > 0)``, then the convolution's gradients into the
    layer's ``.grad``.
    """

    def __init__(self, backend, conv):
        self.backend, self.conv = backend, conv
        self._saved = None

    def _geometry(self, x_shape):
        from . import shapes

        c = self.conv
        return shapes.conv2d_geometry(tuple(x_shape), tuple(c.weight.shape), c.stride, c.padding, c.dilation, c.groups)

    def forward(self, x):
        c = self.conv
        y = self.backend.conv2d_bias_relu(x, c.weight.data, None if c.bias is None else c.bias.data, self._geometry(x.shape))
        self._saved = (x, y)
        return y

    def backward(self, dy, *, need_dx=True):
        from . import functional as F

        (x, y), self._saved = self._saved, None
        c = self.conv
        dy = dy * (y > 0)
        dx, dw, db = F.conv2d_grad(x, c.weight.data, dy, stride=c.stride, padding=c.padding, dilation=c.dilation,
                                   groups=c.groups, input_grad=need_dx)
        c.add_grads(weight=dw, bias=db)
        return dx


def _is_pool2x2(module):
    from .nn import MaxPool2d

    # the fused kernel knows plain windows only: no dilation, ceil_mode or returned indices
    return (type(module) is MaxPool2d and tuple(module.kernel_size) == (2, 2) and tuple(module.stride) == (2, 2)
            and tuple(module.padding) == (0, 0)
            and all(getattr(module, name) == default for name, default in module._options.items()))


def fused_stages(net, backend):
    """``net``'s layers in execution order with every 2x2 max pooling + ReLU pair as one :class:`ReluPool2x2`
    and, where the backend says ``fuses_conv_bias_relu``, every ``Conv2d`` + ``ReLU`` pair as one :class:`ConvBiasRelu`.

    None when nothing fuses (no such pair, no ``execution_order``, or a
    backend without ``relu_max_pool2x2``): the step then runs ``net`` itself.
    """
    from .nn import ReLU

    order = getattr(net, "execution_order", None)
    if order is None or not hasattr(backend, "relu_max_pool2x2"):
        return None
    from .nn import Conv2d

    conv_relu = bool(getattr(backend, "fuses_conv_bias_relu", False))
    stages, i = [], 0
    while i < len(order):
        pair = order[i : i + 2]
        relu = len(pair) == 2 and any(type(m) is ReLU for m in pair)
        if relu and {_is_pool2x2(pair[0]), _is_pool2x2(pair[1])} == {True, False}:
            stages.append(ReluPool2x2(backend, pair))
        elif relu and conv_relu and type(pair[0]) is Conv2d and type(pair[1]) is ReLU:
            stages.append(ConvBiasRelu(backend, pair[0]))
        else:
            stages.append(order[i])
            i += 1
            continue
        i += 2
    return stages if any(isinstance(stage, (ReluPool2x2, ConvBiasRelu)) for stage in stages) else None


# --------------------------------------------------------------------------- the step
class DeviceStep:
    """One training step of ``net`` with ``optimizer`` (an ``SGD``) on batches of ``batch_size``, device-resident.

    ``load(images, labels)`` copies a batch into the fixed buffers (labels
    checked on the host, where they are); ``run()`` does one step;
    ``metrics()`` reads the sums of the loss and of the correct predictions
    since the last ``reset_metrics()`` (the one host read). ``fused`` (a
    backend, e.g. "cupy") replaces what it has kernels for: the loss
    (``softmax_cross_entropy_fused``), the update (``sgd_momentum_update``)
    and each 2x2 max pooling + ReLU pair (``relu_max_pool2x2``, see
    :func:`fused_stages`); the rest runs the network's own layers.
    """

    def __init__(self, net, optimizer, batch_size, input_shape, *, xp=np, capturer=None, warmup=2, fused=None):
        params = list(optimizer.params)
        if not params:
            raise ValueError("DeviceStep: the optimizer has no parameters")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DeviceStep: batch_size must be a positive integer, got {batch_size!r}")
        self.net, self.optimizer, self.xp = net, optimizer, xp
        self.batch_size, self.input_shape = int(batch_size), tuple(int(s) for s in input_shape)
        self.capturer = capturer if capturer is not None else NoCapture()
        self.warmup, self.fused = int(warmup), fused
        dtype = params[0].data.dtype
        self.x = xp.zeros((self.batch_size, *self.input_shape), dtype=dtype)
        self.labels = xp.zeros((self.batch_size,), dtype=np.int64)
        self.lr = xp.full((), optimizer.lr, dtype=dtype)
        self.loss_sum = xp.zeros((), dtype=np.float64)
        self.correct = xp.zeros((), dtype=np.int64)
        self.logits = None
        self._lr_value = float(optimizer.lr)
        self.graph, self.steps_run, self.capture_error = None, 0, None
        self._staging, self._uploads = None, 0
        self.blockers = capture_blockers(net)
        self.velocities = self._velocities(params)
        self.stages = fused_stages(net, fused)
        self._fence()

    def _velocities(self, params):
        """The optimizer's velocities (created as zeros where missing), shared with it for its checkpoints."""
        opt = self.optimizer
        if not opt.momentum:
            return [None] * len(params)
        for i, p in enumerate(params):
            v = opt.velocities[i]
            if v is None or type(v) is not type(p.data) or v.dtype != p.data.dtype:
                opt.velocities[i] = self.xp.zeros_like(p.data) if v is None else self.xp.asarray(v, dtype=p.data.dtype)
        return list(opt.velocities)

    # ----------------------------------------------------------------- loader
    def load(self, images, labels):
        """Copy a batch (network input ``(batch_size, *input_shape)`` and int labels) into the step's buffers."""
        labels = np.asarray(labels)
        if images.shape != self.x.shape:
            raise ValueError(f"DeviceStep.load: images must have shape {self.x.shape} (batch_size, *input_shape), "
                             f"got {tuple(images.shape)}")
        if labels.shape != (self.batch_size,) or labels.dtype.kind not in "iu":
            raise ValueError(f"DeviceStep.load: labels must be {self.batch_size} integers, got {labels.dtype} {labels.shape}")
        classes = self._classes()
        if labels.min() < 0 or labels.max() >= classes:
            raise ValueError(f"DeviceStep.load: labels must lie in [0, K) = [0, {classes}), got values in "
                             f"[{labels.min()}, {labels.max()}]")
        if self.xp is np:
            np.copyto(self.x, images, casting="same_kind")
            np.copyto(self.labels, labels, casting="unsafe")
        else:
            self.capturer.run(lambda: self._upload(images, labels))

    def _upload(self, images, labels):
        """Host to device through two pinned staging buffers, taken in turn, so the copy is asynchronous.

        From pageable memory a copy would wait for the step before it; from
        pinned memory it is queued behind that step on the same stream and
        the host goes on to the next batch. A buffer is refilled only after
        the copy that last read it has finished (its event).
        """
        import cupy
        import cupyx

        if self._staging is None:
            self._staging = [[cupyx.empty_pinned(self.x.shape, self.x.dtype),
                              cupyx.empty_pinned(self.labels.shape, np.int64), None] for _ in range(2)]
        slot = self._staging[self._uploads % 2]
        if slot[2] is not None:
            slot[2].synchronize()
        np.copyto(slot[0], images, casting="same_kind")
        np.copyto(slot[1], labels, casting="unsafe")
        self.x.set(slot[0])
        self.labels.set(slot[1])
        slot[2] = cupy.cuda.Event(disable_timing=True)
        slot[2].record()
        self._uploads += 1

    def _classes(self):
        if self.logits is not None:
            return self.logits.shape[1]
        return self.net.output_shape((1, *self.input_shape))[1]

    # ----------------------------------------------------------------- step
    def _body(self):
        """Forward, loss, backward, update: only device work, the same every call (so it can be captured)."""
        opt = self.optimizer
        for p in opt.params:
            p.grad.fill(0)
        logits = self._forward(self.x)
        if hasattr(self.fused, "softmax_cross_entropy_fused"):
            dlogits = self.fused.softmax_cross_entropy_fused(logits, self.labels, self.loss_sum, self.correct)
        else:
            log_likelihood, dlogits = softmax_cross_entropy(logits, self.labels)
            n = logits.shape[0]
            # SoftmaxCrossEntropy returns -float(sum)/n and train() adds loss * n: the same float64 operations.
            self.loss_sum += (-(log_likelihood.astype(np.float64)) / n) * n
            self.correct += (logits.argmax(axis=1) == self.labels).sum()
        self._backward(dlogits)
        if hasattr(self.fused, "sgd_momentum_update"):
            self.fused.sgd_momentum_update(opt.params, self.velocities, self.lr, opt.momentum, opt.weight_decay)
        else:
            sgd_update(opt.params, self.velocities, self.lr, opt.momentum, opt.weight_decay)
        self.logits = logits

    def _forward(self, x):
        if self.stages is None:
            return self.net(x)
        for stage in self.stages:
            x = stage.forward(x)
        return x

    def _backward(self, dy):
        """Backpropagation through the stages in reverse; the first skips ``dx`` (the data's gradient)."""
        if self.stages is None:
            self.net.backward(dy, need_dx=False)
            return
        for stage in reversed(self.stages[1:]):
            dy = stage.backward(dy)
        self.stages[0].backward(dy, need_dx=False)

    def run(self):
        """One step on the loaded batch: plain launches during warm-up, then one capture, then graph replays."""
        if float(self.optimizer.lr) != self._lr_value:
            self._lr_value = float(self.optimizer.lr)
            self.capturer.run(lambda: self.lr.fill(self._lr_value))
        if self.graph is not None:
            self.graph.launch()
        elif self._should_capture():
            self._capture()
        else:
            self.capturer.run(self._body)
        self.steps_run += 1
        self.optimizer.steps += 1

    def _should_capture(self):
        return (self.capturer.available and self.capture_error is None and not self.blockers
                and self.steps_run >= self.warmup)

    def _capture(self):
        """Capture the step once; on failure warn, remember why, and run this step (and the next) as plain launches."""
        try:
            self.capturer.prepare()
            graph = self.capturer.capture(self._body)
        except Exception as exc:  # CUDARuntimeError, CUBLASError, or a sync the capture refused
            self.capture_error = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"DeviceStep: CUDA graph capture failed ({self.capture_error}); the step runs as "
                          "plain kernel launches from now on (same results, slower)", RuntimeWarning, stacklevel=3)
            self.capturer.run(self._body)
            return
        self.graph = graph
        graph.launch()  # capture records without executing: this step still has to run

    @property
    def captured(self):
        """True once the step replays a CUDA graph."""
        return self.graph is not None

    # ----------------------------------------------------------------- metrics
    def metrics(self):
        """``(loss sum, correct predictions)`` since ``reset_metrics``: the one read from the device."""
        sync = getattr(self.capturer, "synchronize", None)
        if sync is not None:
            sync()
        return float(self.loss_sum), int(self.correct)

    def reset_metrics(self):
        """Zero the sums (at the start of an epoch), after the work queued elsewhere before it (``fence``)."""
        self._fence()
        self.capturer.run(lambda: (self.loss_sum.fill(0), self.correct.fill(0)))

    def _fence(self):
        fence = getattr(self.capturer, "fence", None)
        if fence is not None:
            fence()

    def state_arrays(self):
        """Every array a step writes (parameters, gradients, velocities, sums): what a fake capture must restore."""
        arrays = [self.loss_sum, self.correct, self.lr]
        for p, v in zip(self.optimizer.params, self.velocities):
            arrays += [p.data, p.grad] + ([v] if v is not None else [])
        return arrays
