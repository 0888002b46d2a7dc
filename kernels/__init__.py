"""Kernel sources shipped with minicnn (see kernels/README)."""
