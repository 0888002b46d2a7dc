"""The exercises' Hypothesis properties: a student's function against the reference, in a student's words.

Each property draws a small case (shapes, stride, padding, a seed for the
values), computes the student's answer and the reference's
(``minicnn.exercises.reference``) and raises ``Failure`` with a sentence
that says what was computed and what the slide's formula gives, e.g.
"for x of shape (1, 1, 5, 5), w of shape (1, 1, 3, 3), stride 2, padding 1,
your output is 2x2; the slide's formula gives 3x3". Hypothesis shrinks the
case, so the sentence is about the smallest input that shows the bug. Where
the answer matches a typical mistake (no kernel flip, the error sent to a
whole pooling window, no 1/m), the sentence names it.

Values are small integers (float64), so the sums are exact and any
difference is a bug, not rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st


class Failure(AssertionError):
    """A student's function disagrees with the slide; the message says where and how."""


class NotStarted(Exception):
    """The student's function still raises ``NotImplementedError``."""


@dataclass
class Case:
    """One drawn input: its values and the words that describe it to a student."""

    words: str
    values: dict = field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def shape_words(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def call(module, name, case, *args):
    """``module.name(*args)``; a student's exception becomes a ``Failure`` about this case."""
    try:
        return getattr(module, name)(*args)
    except NotImplementedError:
        raise NotStarted(name) from None
    except Exception as exc:  # any bug in the student's code is reported, with the case that shows it
        raise Failure(f"{case.words}, your {name} raised {type(exc).__name__}: {exc}") from None


def _size_words(shape):
    """``2x2`` for the spatial part of a map, the whole shape otherwise."""
    return "x".join(str(s) for s in shape[-2:]) if len(shape) == 4 else shape_words(shape)


def _values(case, show):
    """``x = [[...]], w = [[...]]`` for the inputs named in ``show`` that are small enough to read."""
    def words(a):
        a = np.asarray(a)
        return (a.astype(np.int64) if np.array_equal(a, np.round(a)) else a).tolist()

    parts = [f"{key} = {words(case.values[key])}" for key in show
             if case.values.get(key) is not None and np.size(case.values[key]) <= 16]
    return f" (with {', '.join(parts)})" if parts else ""


def compare(name, case, yours, slide, what="output", hints=(), show=()):
    """Raise ``Failure`` unless ``yours`` equals ``slide``; ``hints`` are ``(alternative, words)`` pairs.

    ``show`` names the case's inputs to print with a wrong value, where they are small.
    """
    if yours is None:
        raise Failure(f"{case.words}, your {name} returned None: return the {what}")
    yours, slide = np.asarray(yours, dtype=np.float64), np.asarray(slide, dtype=np.float64)
    if yours.shape != slide.shape:
        if yours.ndim == slide.ndim == 4 and yours.shape[:2] == slide.shape[:2]:
            raise Failure(f"{case.words}, your {what} is {_size_words(yours.shape)}; the slide's formula gives "
                          f"{_size_words(slide.shape)}")
        raise Failure(f"{case.words}, your {what} has shape {shape_words(yours.shape)}; the slide's formula gives "
                      f"{shape_words(slide.shape)}")
    scale = max(1.0, float(np.abs(slide).max(initial=0.0)))
    # float64 on small integers: exact up to a few roundings of each sum (1e3 ulps of the largest value).
    wrong = ~np.isclose(yours, slide, rtol=0.0, atol=1e3 * np.finfo(np.float64).eps * scale)
    if not wrong.any():
        return
    at = tuple(int(i) for i in np.argwhere(wrong)[0])
    message = (f"{case.words}{_values(case, show)}, your {what} differs from the slide's at {list(at)}: yours is "
               f"{yours[at]:g}, the slide's formula gives {slide[at]:g}")
    raise Failure(message + _hint(yours, slide, hints, scale))


def _hint(yours, slide, hints, scale):
    tol = 1e3 * np.finfo(np.float64).eps * scale
    for alternative, words in hints:
        alternative = np.asarray(alternative, dtype=np.float64)
        if alternative.shape == yours.shape and np.allclose(yours, alternative, rtol=0.0, atol=tol):
            return f". {words}"
    nonzero = np.abs(slide) > tol
    if nonzero.any():
        ratio = yours[nonzero] / slide[nonzero]
        if np.allclose(ratio, ratio[0]) and np.allclose(yours[~nonzero], 0, atol=tol):
            return f". Yours is {ratio[0]:g} times the slide's everywhere: a missing or extra factor"
    return ""


# ------------------------------------------------------------------ strategies
def _ints(rng, shape, low=-3, high=3):
    return rng.integers(low, high + 1, size=shape).astype(np.float64)


@st.composite
def output_size_cases(draw):
    f, s, p = draw(st.integers(1, 7)), draw(st.integers(1, 4)), draw(st.integers(0, 3))
    n = draw(st.integers(max(1, f - 2 * p), 40))
    words = f"for an input of {n} pixel{'s' if n > 1 else ''}, a filter of {f}, stride {s}, padding {p}"
    return Case(words, {"n": n, "f": f, "stride": s, "padding": p})


@st.composite
def conv_cases(draw, with_bias=True):
    f, s, p = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    h, w = (draw(st.integers(max(1, f - 2 * p), f + 5)) for _ in range(2))
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x, wt = _ints(rng, (n, c, h, w)), _ints(rng, (o, c, f, f))
    b = _ints(rng, (o,)) if with_bias and draw(st.booleans()) else None
    oh, ow = (h + 2 * p - f) // s + 1, (w + 2 * p - f) // s + 1
    words = (f"for x of shape {shape_words(x.shape)}, w of shape {shape_words(wt.shape)}"
             f"{', a bias' if b is not None else ''}, stride {s}, padding {p}")
    return Case(words, {"x": x, "w": wt, "b": b, "stride": s, "padding": p, "dy": _ints(rng, (n, o, oh, ow))})


@st.composite
def pool_cases(draw, overlapping=True, distinct=False):
    size = draw(st.integers(1, 3))
    stride = draw(st.one_of(st.none(), st.integers(1, 3))) if overlapping else None
    h, w = (draw(st.integers(size, size + 5)) for _ in range(2))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    count = n * c * h * w
    x = (rng.permutation(count) - count // 2).astype(np.float64).reshape(n, c, h, w) if distinct else _ints(rng, (n, c, h, w))
    step = size if stride is None else stride
    oh, ow = (h - size) // step + 1, (w - size) // step + 1
    words = f"for x of shape {shape_words(x.shape)}, a {size}x{size} window" + (f", stride {stride}" if stride else "")
    return Case(words, {"x": x, "size": size, "stride": stride, "dy": _ints(rng, (n, c, oh, ow))})


@st.composite
def softmax_cases(draw):
    m, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
    offset = draw(st.sampled_from([0.0, 800.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scores = np.round(rng.normal(size=(m, k)) * 3, 2) + offset
    labels = rng.integers(0, k, size=m)
    words = f"for scores of shape {shape_words(scores.shape)}" + (" near 800" if offset else "") + f", labels {labels.tolist()}"
    return Case(words, {"scores": scores, "labels": labels, "m": m})


@st.composite
def momentum_cases(draw):
    size = draw(st.integers(1, 4))
    lr, momentum = draw(st.sampled_from([0.1, 0.5, 1.0])), draw(st.sampled_from([0.0, 0.5, 0.9]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    theta, v, grad = (_ints(rng, (size,)) for _ in range(3))
    words = f"for theta = {theta.tolist()}, v = {v.tolist()}, grad = {grad.tolist()}, lr {lr}, momentum {momentum}"
    return Case(words, {"theta": theta, "v": v, "grad": grad, "lr": lr, "momentum": momentum})


@st.composite
def residual_cases(draw):
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x, w1, w2 = _ints(rng, (1, c, h, w)), _ints(rng, (c, c, 3, 3), -1, 1), _ints(rng, (c, c, 3, 3), -1, 1)
    b1, b2 = _ints(rng, (c,)), _ints(rng, (c,))
    words = f"for x of shape {shape_words(x.shape)} and 3x3 filters of shape {shape_words(w1.shape)}"
    return Case(words, {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2})
