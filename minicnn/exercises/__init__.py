"""Graded exercises: a student writes the reference functions, the spec suite and Hypothesis grade them.

* ``minicnn exercises list``: the exercises (``catalogue.EXERCISES``), one per
  reference function, with the slide each comes from;
* ``minicnn exercises start DIR``: writes ``DIR/student.py`` from
  ``templates/student.py``: signatures, docstrings citing the slides, and
  ``raise NotImplementedError`` bodies;
* ``minicnn exercises check DIR [NAME]``: for each exercise, the Hypothesis
  property (the student's function against ``reference.py`` on drawn inputs;
  the first counterexample, shrunk, in words) and the exercise's spec
  entries (``spec_entries.py``: the spec suite's own checkers on a backend
  built from the student's module, and the entries' values); the last
  exercise trains LeNet-5 on the student's kernels (``training.py``).

Hypothesis runs with its own settings (``hypothesis_settings``): no deadline,
at most ``MAX_EXAMPLES`` examples, derandomized (the same verdict on every
run), no example database written into the student's folder.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .catalogue import BY_NAME, EXERCISES
from .properties import Failure, NotStarted

__all__ = ["EXERCISES", "Result", "start", "load_student", "check", "iter_check", "check_one", "format_result", "MAX_EXAMPLES"]

STUDENT_FILE = "student.py"
MAX_EXAMPLES = 60


@dataclass
class Result:
    name: str
    status: str        # "passed", "failed" or "not started"
    detail: str


def template_text():
    return resources.files(__package__).joinpath("templates", STUDENT_FILE).read_text(encoding="utf-8")


def start(directory, *, overwrite=False):
    """Write the student workspace ``directory/student.py``; returns its path (refuses to overwrite work)."""
    directory = Path(directory)
    target = directory / STUDENT_FILE
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file, not a folder: give the folder to write {STUDENT_FILE} in")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists: your work is kept; choose another folder or delete it first")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(template_text(), encoding="utf-8")
    return target


def load_student(directory):
    """Import ``directory/student.py`` afresh as a module."""
    path = Path(directory) / STUDENT_FILE
    if Path(directory).is_file():
        raise NotADirectoryError(f"{directory} is a file, not a folder: give the folder `minicnn exercises start` wrote")
    if not path.is_file():
        raise FileNotFoundError(f"no {STUDENT_FILE} in {directory}: run `minicnn exercises start {directory}` first")
    spec = importlib.util.spec_from_file_location("minicnn_student", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a syntax error or a failing import in the student's file
        raise ValueError(f"{path} does not import: {type(exc).__name__}: {exc}") from None
    return module


def hypothesis_settings(max_examples=MAX_EXAMPLES):
    from hypothesis import HealthCheck, Phase, Verbosity, settings

    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                    verbosity=Verbosity.quiet, report_multiple_bugs=False, suppress_health_check=list(HealthCheck),
                    phases=(Phase.explicit, Phase.generate, Phase.shrink), print_blob=False)


def falsify(exercise, module, max_examples=MAX_EXAMPLES):
    """The shrunk counterexample's sentence for ``exercise``'s property, or None when none was found."""
    from hypothesis import given

    @hypothesis_settings(max_examples)
    @given(exercise.cases)
    def run(case):
        exercise.prop(module, case)

    try:
        run()
    except Failure as failure:
        return str(failure)
    return None


def check_one(exercise, module, *, workdir=None, max_examples=MAX_EXAMPLES):
    """Grade one exercise; a ``Result``."""
    if exercise.name == "train_lenet5":
        return _check_training(exercise, module, workdir)
    from .spec_entries import run_spec_checks, run_spec_values

    try:
        for name in exercise.functions:
            if not callable(getattr(module, name, None)):
                return Result(exercise.name, "failed", f"student.py has no function {name}(...)")
        failure = falsify(exercise, module, max_examples) if exercise.prop is not None else None
        if failure:
            return Result(exercise.name, "failed", failure)
        counts = []
        for runner in (run_spec_values, run_spec_checks):
            passed, skipped, failure = runner(exercise, module)
            if failure:
                return Result(exercise.name, "failed", failure)
            counts.append(passed)
    except NotStarted:
        return Result(exercise.name, "not started", "still raises NotImplementedError")
    examples = f"{max_examples} Hypothesis examples" if exercise.prop is not None else "no random examples"
    entries = f"{sum(counts)} spec entr{'y' if sum(counts) == 1 else 'ies'}"
    return Result(exercise.name, "passed", f"{examples}, {entries}{_spec_note(exercise)}")


def _spec_note(exercise):
    from .spec_entries import spec_available, suite_available

    if exercise.spec_checks and not suite_available():
        return " (the spec suite's checkers need a minicnn checkout: only the properties ran)"
    if exercise.spec_ids and not spec_available():
        return " (spec/ not found: only the properties ran)"
    return ""


def _check_training(exercise, module, workdir):
    from .training import MAX_MINUTES, estimated_minutes, train_on_student_kernels

    missing = [name for name in exercise.needs if check_one(BY_NAME[name], module).status != "passed"]
    if missing:
        return Result(exercise.name, "not started", f"needs these exercises to pass first: {', '.join(missing)}")
    minutes = estimated_minutes(module)
    if minutes > MAX_MINUTES:
        return Result(exercise.name, "failed",
                      f"your conv2d would make this run take about {minutes:.0f} minutes (limit {MAX_MINUTES}): loop only "
                      "over the kernel offsets (p, q) and let NumPy do the images, channels and positions at once")
    out = Path(workdir) / "lenet5-run"
    result = train_on_student_kernels(module, out)
    return Result(exercise.name, "passed" if result.passed else "failed", f"{result.words()} (run in {out})")


def iter_check(directory, name=None, *, max_examples=MAX_EXAMPLES):
    """Grade ``directory/student.py`` on every exercise (or the one called ``name``), one ``Result`` at a time."""
    if name is not None and name not in BY_NAME:
        raise ValueError(f"unknown exercise {name!r}; the exercises are: {', '.join(BY_NAME)}")
    module = load_student(directory)
    for exercise in [BY_NAME[name]] if name else EXERCISES:
        yield check_one(exercise, module, workdir=directory, max_examples=max_examples)


def check(directory, name=None, *, max_examples=MAX_EXAMPLES):
    """``iter_check`` as a list."""
    return list(iter_check(directory, name, max_examples=max_examples))


def format_result(result):
    mark = {"passed": "PASS", "failed": "FAIL", "not started": "TODO"}[result.status]
    return f"{mark}  {result.name}: {result.status}\n      {result.detail}"
