"""Kernel plans: which path computes a convolution's forward pass, dX and dW, chosen by measurement.

A backend with several kernels for one primitive (the "cython" backend: im2col
+ GEMM, direct, rows, batch-in-lanes, dense, batched) keeps them in an ordered
table of *paths*. Each path says which geometries it ``takes`` for each of
the three operations, ``OPS``. For one geometry and dtype the backend picks a
``ConvPlan``: one path name per operation.

How the pick is made (``MINICNN_AUTOTUNE``):

* measured (the default): the first time a (geometry, dtype, threads,
  instruction set) is seen, every path that takes it is timed a few times
  (``Autotuner``), the fastest is kept, in memory and in a cache file under
  the user's cache directory (``plan_cache_path``), so the next run on this
  machine makes the same choice without measuring: training stays
  reproducible here. Small layers, whose every path takes microseconds, are
  not measured. This is the idea of cuDNN's benchmark mode and of FFTW's
  plans: a threshold measured on one CPU is a prior, not a law;
* ``MINICNN_AUTOTUNE=0``: the static order of the table, the first path that
  takes the geometry (its thresholds were measured on the development
  machine and are written next to each path).

``ConvPlan`` objects are what a layer keeps from its forward pass for its
backward pass, and what tests pass to force a path (``plan="direct"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "OPS",
    "ConvPlan",
    "Autotuner",
    "PlanCache",
    "autotune_enabled",
    "plan_cache_path",
    "cache_dir",
    "cpu_model",
]

#: The three operations of a convolution layer a path may implement.
OPS = ("forward", "input_grad", "weight_grad")

def autotune_enabled():
    """``MINICNN_AUTOTUNE`` unset or true: measure; ``0``/``false``/``no``/``off``: use the static table."""
    from . import env_flag

    return env_flag("MINICNN_AUTOTUNE", True)


def cache_dir():
    """Where minicnn keeps what it measured: ``$MINICNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/minicnn``,
    else ``~/.cache/minicnn``."""
    explicit = os.environ.get("MINICNN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "minicnn"


def cpu_model():
    """The CPU's model name with its family and model numbers ("AMD EPYC (family 26, model 2)"), from
    /proc/cpuinfo where there is one: virtual machines often report only a brand name, and two
    generations of one brand differ in what is fast."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "CPU implementer", "CPU part") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        pass
    name = fields.get("model name")
    if name:
        if "cpu family" in fields:
            name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
        return name
    if "CPU part" in fields:
        return f"implementer {fields.get('CPU implementer')} part {fields['CPU part']}"
    import platform

    return platform.processor() or platform.machine() or "unknown"


def plan_cache_path(cpu, isa, version, directory=None):
    """The plan cache file for this CPU model, instruction set and minicnn version (one file each)."""
    digest = hashlib.sha256(f"{cpu}\0{isa}\0{version}".encode()).hexdigest()[:16]
    return Path(directory or cache_dir()) / f"kernel-plans-{digest}.json"


@dataclass(frozen=True)
class ConvPlan:
    """The path of each operation for one geometry and dtype, and how it was chosen.

    ``source`` is "static" (the first path of the table that takes the
    geometry), "measured" (timed just now), "cache" (timed on an earlier run
    of this machine) or "forced" (asked for by name). ``times`` holds the
    measured seconds per path and operation (the fastest of its runs), when
    there are any.
    """

    forward: str
    input_grad: str
    weight_grad: str
    source: str = "static"
    backend: str = "cython"
    times: dict = field(default_factory=dict, compare=False, hash=False)
    fused: str = ""  # a path that computes dX and dW in one pass, when that measured faster
    #: a path that computes Y and dW from one column matrix (conv2d_and_weight_grad: a transposed convolution's
    #: backward), when the plan runs both on it or that pass measured faster than the two apart
    paired: str = ""

    def path(self, op):
        return getattr(self, op)

    def as_dict(self):
        return {"forward": self.forward, "input_grad": self.input_grad, "weight_grad": self.weight_grad,
                "fused": self.fused, "paired": self.paired, "times": self.times}


class PlanCache:
    """Measured plans on disk: one JSON file per (CPU model, instruction set, minicnn version).

    Reading: a missing file is an empty cache; a corrupt one, or one written
    for another CPU, instruction set or version (a "foreign" file), is ignored
    with a warning and replaced at the next write. Writing is atomic: a
    temporary file beside the cache, then ``os.replace``, so a reader never
    sees half a file. Entries measured by other processes meanwhile are kept
    (read, merge, write).
    """

    FORMAT = 1

    def __init__(self, path, header):
        self.path = Path(path)
        self.header = dict(header)
        self._lock = threading.Lock()

    def load(self):
        """``{key: entry}`` from the file ({} when there is none or it cannot be used)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            warnings.warn(f"minicnn: cannot read the kernel plan cache {self.path} ({exc}); measuring anew",
                          RuntimeWarning, stacklevel=3)
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("plans"), dict):
                raise ValueError("no 'plans' table")
        except ValueError as exc:
            warnings.warn(f"minicnn: ignoring a corrupt kernel plan cache {self.path} ({exc}); it will be rewritten",
                          RuntimeWarning, stacklevel=3)
            return {}
        theirs = {key: data.get(key) for key in self.header}
        if data.get("format") != self.FORMAT or theirs != self.header:
            warnings.warn(
                f"minicnn: ignoring the kernel plan cache {self.path}: it was written for {theirs}, "
                f"this is {self.header}; it will be rewritten", RuntimeWarning, stacklevel=3)
            return {}
        return {key: entry for key, entry in data["plans"].items() if _valid_entry(entry)}

    def store(self, key, entry):
        """Add ``entry`` under ``key`` and rewrite the file atomically. Returns False if it could not be written."""
        with self._lock:
            plans = self.load()
            plans[key] = entry
            data = {"format": self.FORMAT, **self.header, "plans": plans}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(data, f, indent=1, sort_keys=True)
                    os.replace(temp, self.path)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temp)
                    raise
            except OSError as exc:
                warnings.warn(f"minicnn: cannot write the kernel plan cache {self.path} ({exc}); "
                              "the plan is kept for this process only", RuntimeWarning, stacklevel=3)
                return False
        return True


def _valid_entry(entry):
    return isinstance(entry, dict) and all(isinstance(entry.get(op), str) for op in OPS)


class Autotuner:
    """Times candidate callables and returns the fastest, within a budget.

    ``choose(candidates)`` takes ``{name: run}`` in the static order (the
    prior: the first is the static choice) and returns ``(name, {name:
    seconds})``, each candidate's fastest run: on a shared machine other
    work only ever adds time, so the fastest of a few runs is the steadiest
    estimate of what a kernel costs. Each candidate runs once untimed (caches, workspaces,
    page faults), then up to ``repeats`` timed runs; a candidate whose first
    timed run is more than ``give_up`` times the best so far is not
    repeated (it cannot win), and once ``budget_s`` seconds are spent the
    remaining candidates get one timed run each. Candidates within ``close``
    (15%) of the best then take ``rounds`` more turns, one run each,
    alternating, as ``minicnn bench`` times libraries. Ties within ``tie``
    (2%) go to the earlier candidate, so noise does not flip a choice the
    static table already makes. ``clock`` is injectable for tests.
    """

    def __init__(self, repeats=3, budget_s=1.0, give_up=2.0, tie=0.02, close=0.15, rounds=6,
                 clock=time.perf_counter):
        self.repeats = repeats
        self.budget_s = budget_s
        self.give_up = give_up
        self.tie = tie
        self.close = close
        self.rounds = rounds
        self.clock = clock

    def choose(self, candidates, time_alone=False):
        """``(fastest name, {name: seconds of its fastest run})``; a lone candidate is timed only with ``time_alone``."""
        if not candidates:
            raise ValueError("Autotuner.choose: no candidates to time")
        names = list(candidates)
        if len(names) == 1 and not time_alone:
            return names[0], {}
        clock = self.clock
        started = clock()
        fastest, all_samples = {}, {}
        for name in names:
            run = candidates[name]
            run()  # warm-up, untimed
            samples = []
            for _ in range(self.repeats):
                t0 = clock()
                run()
                samples.append(clock() - t0)
                best = min(fastest.values(), default=None)
                if best is not None and samples[0] > self.give_up * best:
                    break
                if clock() - started > self.budget_s:
                    break
            fastest[name] = min(samples)
            all_samples[name] = samples
        # Candidates within `close` (15%) of the best are timed again, taking turns, so that a slow
        # moment of the machine does not decide between two paths that are nearly as fast.
        best = min(fastest.values())
        contenders = [name for name in names if fastest[name] <= best * (1 + self.close)]
        for _ in range(self.rounds if len(contenders) > 1 else 0):
            if clock() - started > self.budget_s:
                break
            for name in contenders:
                t0 = clock()
                candidates[name]()
                all_samples[name].append(clock() - t0)
        for name in contenders:
            fastest[name] = min(all_samples[name])
        best_name = names[0]
        for name in names[1:]:
            if fastest[name] < fastest[best_name] * (1 - self.tie):
                best_name = name
        return best_name, fastest
