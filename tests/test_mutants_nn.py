"""Behaviour of minicnn.nn that mutation testing (tools/mutation.py run nn) found no test asserting.

Each test asserts documented behaviour through the public API (the docstrings of minicnn/nn/*.py), so it
stands on its own whatever mutmut later changes."""

import numpy as np
import pytest

from minicnn import nn


def test_parameter_refuses_non_float_data_and_names_the_dtype():
    with pytest.raises(TypeError, match=r"^Parameter: data must be a floating-point array, got dtype int64$"):
        nn.Parameter(np.zeros(3, dtype=np.int64))
    with pytest.raises(TypeError, match=r"^Parameter: data must be a numpy.ndarray \(or cupy.ndarray\), got list$"):
        nn.Parameter([1.0, 2.0])
