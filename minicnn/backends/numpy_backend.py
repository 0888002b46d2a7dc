"""The reference backend: the slide formulas written as NumPy code.

This is the textbook and the test oracle. Each primitive loops over the few
kernel offsets ``(p, q)`` and lets NumPy do the rest with strided slices and
``einsum``, so one line of code is one term of the slide's sum. It is written
against ``self.xp`` (NumPy here) so that the CuPy backend can inherit every
primitive it does not override, following thinc's ``Ops`` pattern.

Every method takes arguments that ``minicnn.functional`` has already checked:
C-contiguous float32/float64 arrays of matching shapes, and the call's
geometry (``shapes.ConvGeometry`` or ``shapes.PoolGeometry``), which holds the
hyper-parameters and the output size. The methods never validate and never
recompute an output size.
"""

from __future__ import annotations

import numpy


class NumpyBackend:
    """Reference implementation of the backend primitives (the "numpy" backend)."""

    name = "numpy"
    xp = numpy

    # ------------------------------------------------------------------ helpers
    def _pad(self, x, padding, value=0.0):
        """Surround the two spatial axes of an NCHW array with ``padding`` rows/columns of ``value``."""
        ph, pw = padding
        if ph == 0 and pw == 0:
            return x
        return self.xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant", constant_values=value)

    @staticmethod
    def _window(p, q, out_hw, stride, dilation=(1, 1)):
        """Slices picking, for kernel tap ``(p, q)``, the input pixel under that tap of every output.

        Output ``(i, j)`` reads padded input ``(i*S_h + p*D_h, j*S_w + q*D_w)``.
        """
        (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
        rows = slice(p * dh, p * dh + sh * (oh - 1) + 1, sh)
        cols = slice(q * dw, q * dw + sw * (ow - 1) + 1, sw)
        return rows, cols

    # -------------------------------------------------------------- convolution
    def plan_conv2d(self, geometry, dtype, plan=None):
        """The reference has one path per operation: no plan to choose (``plan`` must be None)."""
        if plan is not None and not hasattr(plan, "forward"):
            raise ValueError(
                f"plan: the {self.name} backend has no kernel paths to choose from (only the cython backend "
                f"does), got plan={plan!r}"
            )
        return None

    def conv2d(self, x, w, b, geometry, plan=None):
        """Cross-correlation of an NCHW batch with OIHW filters.

        ``Y[n, o, i, j] = b[o] + sum_{c, p, q} X[n, c, i*S + p*D - P, j*S + q*D - P] W[o, c, p, q]``

        Deck 003_7c437a475fa69432.txt, slide "PESOS COMPARTIDOS": the
        "Correlación cruzada" ``S(i, j) = sum_m sum_n I(i + m, j + n) K(m, n)``,
        computed for every filter ``o`` and summed over the input channels ``c``
        of its group. True convolution flips the kernel first (``rot90(W, 2)``,
        deck 002_35ce60e4ae78ad9e.txt, "Convolución"); see
        ``minicnn.functional.true_conv2d``.
        """
        xp = self.xp
        stride, padding, dilation, groups = geometry.hyper
        n, c, o, cg, kh, kw = geometry.n, geometry.c, geometry.o, geometry.c_per_group, geometry.kh, geometry.kw
        oh, ow = geometry.oh, geometry.ow
        g, og = groups, o // groups
        x_pad = self._pad(x, padding)
        xg = x_pad.reshape(n, g, cg, *x_pad.shape[2:])
        wg = w.reshape(g, og, cg, kh, kw)
        y = xp.zeros((n, g, og, oh, ow), dtype=x.dtype)
        for p in range(kh):
            for q in range(kw):
                rows, cols = self._window(p, q, (oh, ow), stride, dilation)
                y += xp.einsum("ngchw,goc->ngohw", xg[..., rows, cols], wg[..., p, q], optimize=True)
        y = y.reshape(n, o, oh, ow)
        if b is not None:
            y += b.reshape(1, o, 1, 1)
        return y

    def conv2d_grad(self, x, w, dy, geometry, input_grad=True, plan=None):
        """Gradients ``(dX, dW, db)`` of ``conv2d`` given ``dY = dLoss/dY`` (``dX`` is None when not ``input_grad``).

        Deck 002_35ce60e4ae78ad9e.txt, slides "Aprendizaje: Backpropagation":
        the two halves are ``conv2d_input_grad`` and ``conv2d_weight_grad``.
        Deck 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN EN CAPAS
        CONVOLUCIONALES": each position contributes its own gradient and the
        shared weight's gradient is their sum.
        """
        dx = self.conv2d_input_grad(w, dy, geometry, plan) if input_grad else None
        dw, db = self.conv2d_weight_grad(x, dy, geometry, plan)
        return dx, dw, db

    def conv2d_input_grad(self, w, dy, geometry, plan=None):
        """``dX`` alone: ``delta^(l) = upsample(W^T delta^(l+1))``.

        Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation": each
        output's error flows back to the inputs under the filter, weighted by
        the filter (a "full" convolution with the flipped kernel), written
        here as the scatter of every tap. It reads the filters, never ``X``.
        """
        xp = self.xp
        stride, padding, dilation, groups = geometry.hyper
        n, c, h, wd = geometry.x_shape
        o, cg, kh, kw = geometry.w_shape
        g, og = groups, o // groups
        oh, ow = geometry.oh, geometry.ow
        ph, pw = padding
        wg = w.reshape(g, og, cg, kh, kw)
        dyg = dy.reshape(n, g, og, oh, ow)
        dx_pad = xp.zeros((n, g, cg, h + 2 * ph, wd + 2 * pw), dtype=dy.dtype)
        for p in range(kh):
            for q in range(kw):
                rows, cols = self._window(p, q, (oh, ow), stride, dilation)
                dx_pad[..., rows, cols] += xp.einsum("ngohw,goc->ngchw", dyg, wg[..., p, q], optimize=True)
        dx = dx_pad.reshape(n, c, h + 2 * ph, wd + 2 * pw)[:, :, ph : ph + h, pw : pw + wd]
        return xp.ascontiguousarray(dx)

    def conv2d_and_weight_grad(self, x, w, dy, geometry, plan=None):
        """``(Y, dW, db)``: ``Y = conv2d(x, w)`` (no bias) and the weight gradient of that same convolution given ``dy``.

        The pair a transposed convolution's backward pass needs (deck
        000_5f24bd8423292174.txt, "Convolución transpuesta"): its ``dX`` is the
        convolution of its ``dY``, and its ``dW`` is this convolution's weight
        gradient with its own input as the upstream gradient. Both read the
        same receptive fields of ``x``; here they are simply the two primitives.
        """
        return (self.conv2d(x, w, None, geometry, plan), *self.conv2d_weight_grad(x, dy, geometry, plan))

    def conv2d_weight_grad(self, x, dy, geometry, plan=None):
        """``(dW, db)`` alone: ``dW_k = sum_i a_i * rot90(delta_k, 2)``, ``db_k = sum_{a,b} delta_k``.

        Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation": the true
        convolution of the input with the rotated error is the
        cross-correlation of the input with the error, i.e.
        ``dW[o, c, p, q] = sum_{n,i,j} dY[n,o,i,j] X[n, c, i*S + p*D, j*S + q*D]``.
        It reads the input, never ``W``.
        """
        xp = self.xp
        stride, padding, dilation, groups = geometry.hyper
        n = geometry.n
        o, cg, kh, kw = geometry.w_shape
        g, og = groups, o // groups
        oh, ow = geometry.oh, geometry.ow
        x_pad = self._pad(x, padding)
        xg = x_pad.reshape(n, g, cg, *x_pad.shape[2:])
        dyg = dy.reshape(n, g, og, oh, ow)
        dw = xp.zeros((g, og, cg, kh, kw), dtype=x.dtype)
        for p in range(kh):
            for q in range(kw):
                rows, cols = self._window(p, q, (oh, ow), stride, dilation)
                dw[..., p, q] = xp.einsum("ngohw,ngchw->goc", dyg, xg[..., rows, cols], optimize=True)
        return dw.reshape(geometry.w_shape), dy.sum(axis=(0, 2, 3))

    # --------------------------------------------------------- fully connected
    def linear(self, x, w, b):
        """``y = x W^T + b`` on the rows of ``x`` (deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje:
        Backpropagation", capa FC: ``z = W a + b`` for every sample)."""
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def linear_grad(self, x, w, dy, input_grad=True):
        """``(dx, dw, db)`` of ``linear``: ``δ^(l) = W^T δ^(l+1)`` (as rows: ``dy W``), ``∇W = δ aᵀ``
        summed over the batch (``dyᵀ x``), ``∇b = Σ δ`` (deck 002, "Aprendizaje: Backpropagation")."""
        dx = dy @ w if input_grad else None
        return dx, dy.T @ x, dy.sum(axis=0)

    # ------------------------------------------------------------------ pooling
    def _pad_to_windows(self, x, geometry, value):
        """Pad an NCHW batch by the leading padding and, after it, as far as the last window reaches.

        The last window ends at ``(H_out - 1)*S + D*(F - 1) + 1`` in padded
        coordinates; with ``ceil_mode`` that may be past ``H + P_0 + P_1``, and
        the pixels there are padding too (they never win a maximum and add
        nothing to a sum). Returns x itself when no padding is needed.
        """
        xp = self.xp
        after = []
        for out, s, k, d, p, size in zip((geometry.oh, geometry.ow), geometry.stride, geometry.kernel,
                                         geometry.dilation, geometry.padding, (geometry.h, geometry.w)):
            after.append(max((out - 1) * s + d * (k - 1) + 1 - p - size, 0))
        (ph, pw), (eh, ew) = geometry.padding, after
        if ph == pw == eh == ew == 0:
            return x
        return xp.pad(x, ((0, 0), (0, 0), (ph, eh), (pw, ew)), mode="constant", constant_values=value)

    def _first_taps(self, geometry):
        """Per axis, the first tap of each window that lies on the image (``i*S - P`` raised by steps of ``D``)."""
        xp = self.xp
        firsts = []
        for out, s, p, d in zip((geometry.oh, geometry.ow), geometry.stride, geometry.padding, geometry.dilation):
            start = xp.arange(out) * s - p
            firsts.append(xp.where(start >= 0, start, start + (-start + d - 1) // d * d))
        return firsts

    def max_pool2d(self, x, geometry):
        """Max pooling; returns ``(Y, argmax)``.

        Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN":
        each output is the largest activation of its ``F_H x F_W`` window.
        Padding counts as -inf, so it never wins. ``argmax`` holds, for every
        output, the flat index ``h*W + w`` of the winner in its input plane
        (ties go to the first maximum in row-major order; a NaN wins, as in
        PyTorch). Backward routes the gradient through it. With ``dilation``
        the window's taps lie ``D`` pixels apart (as ``torch.nn.functional.max_pool2d``).
        """
        xp = self.xp
        n, c, h, w = geometry.x_shape
        kernel, stride, padding = geometry.hyper
        dilation = geometry.dilation
        oh, ow = geometry.oh, geometry.ow
        x_pad = self._pad_to_windows(x, geometry, -xp.inf)
        # Start from -inf at the first real pixel of each window: a window of
        # only -inf then reports that pixel, as PyTorch does.
        first_row, first_col = self._first_taps(geometry)
        best = xp.full((n, c, oh, ow), -xp.inf, dtype=x.dtype)
        argmax = xp.broadcast_to(first_row[:, None] * w + first_col[None, :], best.shape).astype(xp.int64)
        for p in range(kernel[0]):
            for q in range(kernel[1]):
                rows, cols = self._window(p, q, (oh, ow), stride, dilation)
                candidate = x_pad[..., rows, cols]
                wins = (candidate > best) | xp.isnan(candidate)
                best = xp.where(wins, candidate, best)
                row = xp.arange(oh) * stride[0] + p * dilation[0] - padding[0]
                col = xp.arange(ow) * stride[1] + q * dilation[1] - padding[1]
                argmax = xp.where(wins, (row[:, None] * w + col[None, :]), argmax)
        return best, argmax

    def max_pool2d_grad(self, geometry, dy, argmax):
        """Gradient of max pooling: only the winner of each window gets the error.

        Deck 003_7c437a475fa69432.txt, "RETRO-PROPAGACIÓN": "En la decimación se
        actualiza sólo la neurona ganadora (max-pooling)". Overlapping windows
        that share a winner add their errors.
        """
        xp = self.xp
        n, c, h, w = geometry.x_shape
        dx = xp.zeros((n * c, h * w), dtype=dy.dtype)
        planes = xp.arange(n * c)[:, None]
        self._scatter_add(dx, (planes, argmax.reshape(n * c, -1)), dy.reshape(n * c, -1))
        return dx.reshape(geometry.x_shape)

    def _scatter_add(self, target, index, values):
        """``target[index] += values``, adding repeated indices (``numpy.add.at``)."""
        numpy.add.at(target, index, values)

    def _divisors(self, geometry, dtype):
        """Average pooling's divisor: the Python scalar ``F_H*F_W``, or an ``(H_out, W_out)`` array of
        each window's own (``PoolGeometry.divisor_factors``: ceil_mode, count_include_pad, divisor_override)."""
        if geometry.plain_divisor:
            return dtype.type(geometry.window)
        rows, cols = geometry.divisor_factors()
        return self.xp.asarray(rows, dtype=dtype)[:, None] * self.xp.asarray(cols, dtype=dtype)[None, :]

    def avg_pool2d(self, x, geometry):
        """Average pooling; padded zeros count in the average (divisor ``F_H*F_W``).

        Deck 003_7c437a475fa69432.txt, "CAPA DE SUBMUESTREO O DECIMACIÓN". It is
        a convolution with the kernel ``ones(F)/F^2`` applied to each channel
        (deck 002_35ce60e4ae78ad9e.txt, "Arquitectura de la Red : POOL:S2").
        Beyond the deck (``torch.nn.functional.avg_pool2d``): windows that
        ``ceil_mode`` adds divide by their part inside the padded input,
        ``count_include_pad=False`` by their real pixels only, and
        ``divisor_override`` by that number.
        """
        xp = self.xp
        kernel, stride, padding = geometry.hyper
        oh, ow = geometry.oh, geometry.ow
        x_pad = self._pad_to_windows(x, geometry, 0.0)
        total = xp.zeros(geometry.y_shape, dtype=x.dtype)
        for p in range(kernel[0]):
            for q in range(kernel[1]):
                rows, cols = self._window(p, q, (oh, ow), stride)
                total += x_pad[..., rows, cols]
        return total / self._divisors(geometry, x.dtype)

    def avg_pool2d_grad(self, geometry, dy):
        """Gradient of average pooling: ``kron(delta, ones(F)) / F^2``.

        Deck 002_35ce60e4ae78ad9e.txt, "Aprendizaje: Backpropagation" (tips for
        the upsampling): every input of a window receives the window's error
        divided by the pool area (the window's own divisor, see ``avg_pool2d``).
        For non-overlapping windows this is exactly ``np.kron``; overlapping
        windows add their shares.
        """
        xp = self.xp
        n, c, h, w = geometry.x_shape
        kernel, stride, padding = geometry.hyper
        ph, pw = padding
        oh, ow = geometry.oh, geometry.ow
        reach = [(out - 1) * s + k for out, s, k in zip((oh, ow), stride, kernel)]
        dx_pad = xp.zeros((n, c, max(h + ph, reach[0]), max(w + pw, reach[1])), dtype=dy.dtype)
        share = dy / self._divisors(geometry, dy.dtype)
        for p in range(kernel[0]):
            for q in range(kernel[1]):
                rows, cols = self._window(p, q, (oh, ow), stride)
                dx_pad[..., rows, cols] += share
        return xp.ascontiguousarray(dx_pad[:, :, ph : ph + h, pw : pw + w])

    # ------------------------------------------------------------------ padding
    def _pad_sources(self, size, before, after, mode):
        """For one axis padded by ``(before, after)``: the source index of every output position
        (``None`` entries aside, for constant mode: ``(start, stop)`` of the copied range instead)."""
        xp = self.xp
        source = xp.arange(-before, size + after)
        if mode == "reflect":
            source = xp.abs(source)
            return xp.where(source >= size, 2 * (size - 1) - source, source)
        if mode == "replicate":
            return xp.clip(source, 0, size - 1)
        return source % size  # circular

    def pad(self, x, pad, mode, value):
        """``F.pad``: constant (``value``), reflect (mirror without repeating the edge), replicate (repeat
        the edge) or circular (wrap around) padding of the last ``len(pad)//2`` axes, last axis first,
        as ``torch.nn.functional.pad``; negative constant amounts crop."""
        xp = self.xp
        axes = [(x.ndim - 1 - k, pad[2 * k], pad[2 * k + 1]) for k in range(len(pad) // 2)]
        if mode == "constant":
            from ..shapes import pad_output_shape

            y = xp.full(pad_output_shape(x.shape, pad), value, dtype=x.dtype)
            src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
            for axis, before, after in axes:
                size = x.shape[axis]
                src[axis] = slice(max(-before, 0), size - max(-after, 0))
                dst[axis] = slice(max(before, 0), max(before, 0) + max(src[axis].stop - src[axis].start, 0))
            y[tuple(dst)] = x[tuple(src)]
            return y
        for axis, before, after in axes:
            x = xp.take(x, self._pad_sources(x.shape[axis], before, after, mode), axis=axis)
        return xp.ascontiguousarray(x)

    def pad_grad(self, dy, x_shape, pad, mode):
        """Gradient of ``pad``: each input element gathers the errors of the outputs copied from it
        (constant mode: the slice it was copied to; the others add the mirrored or repeated copies)."""
        xp = self.xp
        axes = [(len(x_shape) - 1 - k, pad[2 * k], pad[2 * k + 1]) for k in range(len(pad) // 2)]
        if mode == "constant":
            dx = xp.zeros(x_shape, dtype=dy.dtype)
            src, dst = [slice(None)] * len(x_shape), [slice(None)] * len(x_shape)
            for axis, before, after in axes:
                size = x_shape[axis]
                src[axis] = slice(max(-before, 0), size - max(-after, 0))
                dst[axis] = slice(max(before, 0), max(before, 0) + max(src[axis].stop - src[axis].start, 0))
            dx[tuple(src)] = dy[tuple(dst)]
            return dx
        for axis, before, after in reversed(axes):
            size = x_shape[axis]
            moved = xp.moveaxis(dy, axis, 0)
            gathered = xp.zeros((size,) + moved.shape[1:], dtype=dy.dtype)
            self._scatter_add(gathered, (self._pad_sources(size, before, after, mode),), moved)
            dy = xp.moveaxis(gathered, 0, axis)
        return xp.ascontiguousarray(dy)
