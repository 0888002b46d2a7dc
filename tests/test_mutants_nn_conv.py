"""Behaviour of minicnn/nn/conv.py (the convolution layers) that mutation testing (tools/mutation.py run nn) found
no test asserting; tests/test_mutants_nn.py holds the rest of nn/.

Each test asserts documented behaviour through the public API (the docstrings of minicnn/nn/conv.py), so it
stands on its own whatever mutmut later changes."""
