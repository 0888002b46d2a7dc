"""The pytest-benchmark suites run in the same process conditions as ``minicnn bench``."""

from minicnn.backends import keep_freed_memory

keep_freed_memory()
