"""pytest-benchmark suites: every kernel case of ``minicnn bench`` for every implementation.

Run with ``pytest benchmarks --benchmark-enable`` (the project's pytest
options disable timing by default so that a plain ``pytest`` stays quick);
compare groups with ``--benchmark-group-by=param:case``. The cases and the
per-implementation set-up are shared with ``minicnn bench`` (minicnn/bench.py),
so both front ends time exactly the same work. GPU implementations
synchronise the device inside each timed call.
"""

import numpy as np
import pytest

from minicnn import bench

IMPLS = bench.implementations(include_reference=True)
KERNEL_CASES = [c for c in bench.CASES if c.kind in ("conv", "pool")]
TRAIN_CASES = [c for c in bench.CASES if c.kind == "train"]


def _timed(impl, step):
    sync = bench._sync_for(impl)

    def run():
        step()
        sync()

    return run


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", KERNEL_CASES, ids=[c.name for c in KERNEL_CASES])
def test_kernel(benchmark, case, impl):
    if impl == "numpy" and case.name in bench.BIG_CASES:
        pytest.skip("the NumPy reference is a textbook, not a contender, at this size")
    benchmark.group = case.name
    step = bench._FACTORIES[case.kind](impl, case.params, np.random.default_rng(0))
    benchmark.pedantic(_timed(impl, step), rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("impl", [i for i in IMPLS if i != "numpy"])
@pytest.mark.parametrize("case", TRAIN_CASES, ids=[c.name for c in TRAIN_CASES])
def test_lenet5_training_step(benchmark, case, impl):
    if case.name == "train_b1024" and bench._device_of(impl) == "cpu":
        pytest.skip("batch 1024 is timed on GPUs only")
    benchmark.group = case.name
    step = bench._FACTORIES[case.kind](impl, case.params, np.random.default_rng(0))
    benchmark.extra_info["images"] = case.images
    benchmark.pedantic(_timed(impl, step), rounds=10, warmup_rounds=2)
