"""The spec entries of an exercise, run against the student's functions.

Two kinds (``catalogue.Exercise``):

* ``spec_checks``: checkers of the spec suite, ``tests/test_spec.py``, the same
  functions that check minicnn's own backends, run here on a
  ``StudentBackend`` where only the exercise's function is the student's.
  They need a checkout of minicnn (its ``tests/`` folder); installed from a
  wheel, only the properties and the entries below run, and the report says so.
* ``spec_ids``: entries (by id or by checker name) whose values say what a
  template function must return; they are checked here, against the
  student's function itself (output sizes, softmax, momentum, LeNet-5's table).

Each runner returns ``(passed, skipped, failure)``: counts, and the first
failure's message (None when all passed).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import tomllib

import numpy as np

from .. import shapes
from ..spec_map import ROOT, SPEC_DIR
from .properties import NotStarted
from .student_backend import OutsideExercise, StudentBackend

TESTS_DIR = ROOT / "tests"


def spec_available():
    return SPEC_DIR.is_dir()


def suite_available():
    """The spec suite's checkers can run: a checkout's ``tests/test_spec.py``, and pytest (it imports it)."""
    return (TESTS_DIR / "test_spec.py").is_file() and spec_available() and importlib.util.find_spec("pytest") is not None


def load_entries():
    entries = []
    for path in sorted(SPEC_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            entries += tomllib.load(handle).get("entry", [])
    return entries


def _cite(entry):
    return f"spec entry {entry['id']} ({entry['deck'][:3]}, '{entry['slide']}')"


def _spec_suite():
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    return importlib.import_module("test_spec")


def run_spec_checks(exercise, module):
    """The spec suite's checkers named by ``exercise.spec_checks``, on a backend with the student's function."""
    from ..backends import register_backend, unregister_backend

    if not exercise.spec_checks or not suite_available():
        return 0, 0, None
    suite = _spec_suite()
    entries = [e for e in suite.ENTRIES if e["check"] in exercise.spec_checks and e.get("status") != suite.MODEL_ZOO]
    name = f"student_{exercise.name}"
    register_backend(name, StudentBackend(module, exercise.functions, name))
    passed = skipped = 0
    try:
        for entry in entries:
            checker, _ = suite.CHECKERS[entry["check"]]
            try:
                checker(entry, name)
            except OutsideExercise:
                skipped += 1
                continue
            except NotImplementedError:
                raise NotStarted(exercise.name) from None
            except Exception as exc:  # AssertionError from the checker, or the student's code failing
                return passed, skipped, f"{_cite(entry)}: {entry['claim']} With your {exercise.name}: {exc}"
            passed += 1
    finally:
        unregister_backend(name)
    return passed, skipped, None


def run_spec_values(exercise, module):
    """The entries named by ``exercise.spec_ids``, their values checked against the student's function."""
    if not exercise.spec_ids or not spec_available():
        return 0, 0, None
    passed = 0
    for entry in load_entries():
        if entry["id"] not in exercise.spec_ids and entry["check"] not in exercise.spec_ids:
            continue
        if entry.get("status"):  # claims about whole networks are the model zoo's
            continue
        try:
            problem = _EVALUATORS[entry["check"]](exercise.name, module, entry)
        except NotImplementedError:
            raise NotStarted(exercise.name) from None
        except Exception as exc:  # the student's code failing on the slide's example
            problem = f"your function raised {type(exc).__name__}: {exc}"
        if problem:
            return passed, 0, f"{_cite(entry)}: {entry['claim']} {problem[0].upper()}{problem[1:]}"
        passed += 1
    return passed, 0, None


def _output_size(_, module, entry):
    c, h, w = entry["input"]
    pool = entry["check"] == "pool_output_size"
    kernel = shapes.pair(entry["kernel"], "kernel")
    stride = shapes.pair(entry.get("stride") or (entry["kernel"] if pool else 1), "stride")
    padding = shapes.pair(entry.get("padding", 0), "padding")
    if shapes.pair(entry.get("dilation", 1), "dilation") != (1, 1):
        return None
    got = [module.output_size(n, f, s, p) for n, f, s, p in zip((h, w), kernel, stride, padding)]
    if got != list(entry["expected"][1:]):
        return f"your output_size gives {got[0]}x{got[1]}; the slide's is {entry['expected'][1]}x{entry['expected'][2]}"
    return None


def _softmax(_, module, entry):
    scores, expected = np.asarray([entry["scores"]]), entry["expected"]
    for k, probability in enumerate(expected):
        loss = float(module.softmax_cross_entropy(scores, np.array([k])))
        if not math.isclose(loss, -math.log(probability), rel_tol=1e-6):
            return f"for label {k} your loss is {loss:.6g}; -log P = -log {probability} = {-math.log(probability):.6g}"
    return None


def _softmax_cross_entropy(name, module, entry):
    from . import reference as ref

    theta, x, y = np.asarray(entry["theta"]), np.asarray(entry["x"]), np.asarray(entry["y"])
    scores = x @ theta.T
    if name == "softmax_cross_entropy":
        loss, want = float(module.softmax_cross_entropy(scores, y)), float(ref.softmax_cross_entropy(scores, y))
        return None if math.isclose(loss, want, rel_tol=1e-9) else f"your cost (3) is {loss:.6g}; it is {want:.6g}"
    grad = np.asarray(module.softmax_cross_entropy_grad(scores, y)).T @ x
    want = ref.softmax_cross_entropy_grad(scores, y).T @ x
    if grad.shape != want.shape or not np.allclose(grad, want, rtol=1e-9, atol=1e-12):
        ratio = np.linalg.norm(grad) / np.linalg.norm(want)
        return f"chained to theta, your gradient is {ratio:.6g} times the gradient of the cost (3) (m = {len(y)})"
    return None


def _momentum(_, module, entry):
    theta, v = np.asarray(entry["theta0"], dtype=float), np.zeros(len(entry["theta0"]))
    for step, (grad, want) in enumerate(zip(entry["grads"], entry["expected"]), 1):
        theta, v = module.sgd_momentum_step(theta, v, np.asarray(grad, dtype=float), entry["lr"], entry["momentum"])
        if not np.allclose(theta, want, atol=1e-12):
            return f"after step {step} your theta is {np.round(theta, 6).tolist()}; the slide's is {want}"
    return None


def _layer_chain(_, module, entry):
    from .checks_lenet import lenet_problem

    return lenet_problem(module.lenet5_layers(), entry)


_EVALUATORS = {"output_size": _output_size, "pool_output_size": _output_size, "softmax": _softmax,
               "softmax_cross_entropy": _softmax_cross_entropy, "momentum_update": _momentum,
               "layer_chain": _layer_chain}
