"""Tests that need a working GPU and CuPy (the "cupy" backend)."""
