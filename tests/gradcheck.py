"""Gradient checks by central finite differences, for layers, losses and whole graphs.

A module's analytic gradients (``backward``) are compared with

    dL/dθ_i ≈ (L(θ + ε e_i) - L(θ - ε e_i)) / (2ε)

for the scalar ``L = Σ_outputs Σ (y ∘ r)``, ``r`` a fixed random array per
output (so ``dL/dy = r``, and every output entry matters). Run it in float64:
the error of the central difference is ``O(ε²)`` plus round-off ``O(u/ε)``.
Works on NumPy and CuPy arrays alike.
"""

from __future__ import annotations

import numpy as np

from minicnn.nn.module import array_module

__all__ = ["numerical_gradient", "check_module_gradients", "check_function_gradient"]


def _sample_indices(shape, max_checks, rng):
    size = int(np.prod(shape))
    if max_checks is None or size <= max_checks:
        flat = np.arange(size)
    else:
        flat = rng.choice(size, size=max_checks, replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def numerical_gradient(f, a, eps=1e-6, indices=None):
    """Central-difference gradient of the scalar ``f()`` with respect to array ``a``, perturbed in place.

    Only the entries in ``indices`` (tuples) are computed when given; the
    others stay NaN. ``a`` is restored afterwards.
    """
    xp = array_module(a)
    grad = xp.full(a.shape, np.nan, dtype=np.float64)
    if indices is None:
        indices = _sample_indices(a.shape, None, None)
    for index in indices:
        old = float(a[index])
        a[index] = old + eps
        plus = f()
        a[index] = old - eps
        minus = f()
        a[index] = old
        grad[index] = (plus - minus) / (2.0 * eps)
    return grad


def _as_tuple(value):
    return value if isinstance(value, tuple) else (value,)


def _to_host(a):
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def _compare(name, analytic, numeric, indices, rtol, atol):
    analytic, numeric = _to_host(analytic), _to_host(numeric)
    rows = tuple(np.array(axis) for axis in zip(*indices)) if indices else ()
    got, want = analytic[rows], numeric[rows]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=f"gradient of {name}: backward vs finite differences")


def check_module_gradients(
    module, *inputs, seed=0, eps=1e-6, rtol=1e-5, atol=1e-7, max_checks=None, before_forward=None, check_inputs=True
):
    """Assert that ``module.backward`` gives the finite-difference gradients of every input and parameter.

    ``inputs`` are float64 arrays (they are perturbed in place and restored);
    ``max_checks`` limits the entries checked per tensor (chosen at random);
    ``before_forward()`` runs before every forward pass (e.g. to reseed a
    Dropout so that all passes draw the same mask). Returns the number of
    entries compared.
    """
    rng = np.random.default_rng(seed)

    def run():
        if before_forward is not None:
            before_forward()
        return _as_tuple(module.forward(*inputs))

    outputs = run()
    xp = array_module(outputs[0])
    projections = tuple(xp.asarray(rng.standard_normal(y.shape)) for y in outputs)

    def loss():
        return float(sum(float((y * r).sum()) for y, r in zip(run(), projections)))

    module.zero_grad()
    run()
    dxs = _as_tuple(module.backward(*projections))
    if check_inputs and len(dxs) != len(inputs):
        raise AssertionError(f"backward returned {len(dxs)} gradients for {len(inputs)} inputs")
    analytic_params = {name: p.grad.copy() for name, p in module.named_parameters()}

    compared = 0
    if check_inputs:
        for i, (x, dx) in enumerate(zip(inputs, dxs)):
            if tuple(dx.shape) != tuple(x.shape):
                raise AssertionError(f"d(input {i}) has shape {tuple(dx.shape)}, the input has {tuple(x.shape)}")
            indices = _sample_indices(x.shape, max_checks, rng)
            numeric = numerical_gradient(loss, x, eps, indices)
            _compare(f"input {i}", dx, numeric, indices, rtol, atol)
            compared += len(indices)
    for name, param in module.named_parameters():
        indices = _sample_indices(param.data.shape, max_checks, rng)
        numeric = numerical_gradient(loss, param.data, eps, indices)
        _compare(f"parameter {name}", analytic_params[name], numeric, indices, rtol, atol)
        compared += len(indices)
    return compared


def check_function_gradient(f, analytic, a, eps=1e-6, rtol=1e-5, atol=1e-7, name="a"):
    """Assert that ``analytic`` equals the finite-difference gradient of the scalar ``f()`` w.r.t. ``a``."""
    indices = _sample_indices(a.shape, None, None)
    numeric = numerical_gradient(f, a, eps, indices)
    _compare(name, analytic, numeric, indices, rtol, atol)
