"""The graded exercises (minicnn.exercises): the reference passes them, typical student bugs fail them helpfully."""

from __future__ import annotations

import inspect
import re
import textwrap

import numpy as np
import pytest

import minicnn as mc
from minicnn import exercises
from minicnn.cli import main
from minicnn.exercises import reference
from minicnn.exercises.catalogue import BY_NAME, EXERCISES
from minicnn.exercises.student_backend import OutsideExercise, StudentBackend
from minicnn.exercises.training import MIN_C1_CHANGE, PASS_ACCURACY, TrainingResult, train_on_student_kernels

GRADED = [e.name for e in EXERCISES if e.name != "train_lenet5"]


def workspace(tmp_path, body=""):
    """A student folder whose student.py is the reference, with ``body`` (buggy overrides) after it."""
    text = "import numpy as np\nfrom minicnn.exercises.reference import *\nfrom minicnn.exercises import reference as _ref\n"
    (tmp_path / "student.py").write_text(text + textwrap.dedent(body), encoding="utf-8")
    return tmp_path


def test_template_has_every_function_with_the_reference_signature(tmp_path):
    path = exercises.start(tmp_path)
    student = exercises.load_student(tmp_path)
    names = {name for e in EXERCISES for name in e.functions}
    assert names == {n for n, f in vars(student).items() if inspect.isfunction(f) and f.__module__ == student.__name__}
    for name in names:
        assert inspect.signature(getattr(student, name)) == inspect.signature(getattr(reference, name)), name
        assert re.search(r"[Dd]eck 00[0-4]", getattr(student, name).__doc__), f"{name}: the docstring cites no deck"
    assert "raise NotImplementedError" in path.read_text(encoding="utf-8")
    with pytest.raises(FileExistsError, match="your work is kept"):
        exercises.start(tmp_path)


def test_the_fresh_template_is_not_started(tmp_path):
    exercises.start(tmp_path)
    results = exercises.check(tmp_path)
    assert [r.name for r in results] == [e.name for e in EXERCISES]
    assert {r.status for r in results} == {"not started"}, [exercises.format_result(r) for r in results]
    assert "needs these exercises to pass first: conv2d" in results[-1].detail


@pytest.mark.parametrize("name", GRADED)
def test_the_reference_passes_every_exercise(tmp_path, name):
    result = exercises.check(workspace(tmp_path), name)[0]
    assert result.status == "passed", exercises.format_result(result)
    exercise = BY_NAME[name]
    if exercise.spec_checks or exercise.spec_ids:
        spec_count = int(re.search(r"(\d+) spec entr(y|ies)", result.detail).group(1))
        assert spec_count >= 1, f"{name}: no spec entry ran ({result.detail})"


# Each typical bug: the exercise it breaks, the student's code, and what the message must say.
BUGS = {
    "output size off by one": ("output_size", """
        def output_size(n, f, stride=1, padding=0):
            return (n + 2 * padding - f) // stride
        """, r"your output_size is 0; the slide's formula floor\(\(1 \+ 2\*0 - 1\)/1\) \+ 1 gives 1"),
    "conv2d output one row and column short": ("conv2d", """
        def conv2d(x, w, b=None, stride=1, padding=0):
            return _ref.conv2d(x, w, b, stride, padding)[:, :, :-1, :-1]
        """, r"for x of shape \(1, 1, \d+, \d+\), w of shape \(1, 1, \d+, \d+\), stride \d+, padding \d+, your output is "
             r"0x0; the slide's formula gives 1x1"),
    "conv2d flips the kernel (true convolution)": ("conv2d", """
        def conv2d(x, w, b=None, stride=1, padding=0):
            return _ref.conv2d(x, w[:, :, ::-1, ::-1], b, stride, padding)
        """, r"your output differs .* Your output is the true convolution \(the kernel flipped"),
    "no kernel flip in dX": ("conv2d_input_grad", """
        def conv2d_input_grad(w, dy, x_shape, stride=1, padding=0):
            # the full correlation of the error with the filter as it is: the slide flips it
            return _ref.conv2d_input_grad(w[:, :, ::-1, ::-1], dy, x_shape, stride, padding)
        """, r"your dX differs .* the unflipped kernel .* flip the kernel"),
    "dW rotated": ("conv2d_weight_grad", """
        def conv2d_weight_grad(x, dy, w_shape, stride=1, padding=0):
            return _ref.conv2d_weight_grad(x, dy, w_shape, stride, padding)[:, :, ::-1, ::-1]
        """, r"your dW differs .* rotated by 180 degrees"),
    "db averaged": ("conv2d_bias_grad", """
        def conv2d_bias_grad(dy):
            return dy.mean(axis=(0, 2, 3))
        """, r"your db differs .* You averaged"),
    "pooling gradient to every pixel of the window": ("max_pool2d_grad", """
        def max_pool2d_grad(x, dy, size, stride=None):
            up = np.kron(dy, np.ones((size, size)))
            dx = np.zeros(x.shape)
            dx[:, :, :up.shape[2], :up.shape[3]] = up
            return dx
        """, r"for x of shape \(1, 1, 2, \d\), a 2x2 window \(with x = \[\[\[\[.*\), your dX differs .* You sent each window's error to every "
             r"pixel of the window; only the winner"),
    "average pooling gradient without 1/F^2": ("avg_pool2d_grad", """
        def avg_pool2d_grad(x, dy, size):
            up = np.kron(dy, np.ones((size, size)))
            dx = np.zeros(x.shape)
            dx[:, :, :up.shape[2], :up.shape[3]] = up
            return dx
        """, r"You left out the division by the pool area size\*\*2 = 4"),
    "softmax gradient without 1/m": ("softmax_cross_entropy_grad", """
        def softmax_cross_entropy_grad(scores, labels):
            return _ref.softmax_cross_entropy_grad(scores, labels) * len(labels)
        """, r"for scores of shape \(2, \d\).*Your gradient is m = 2 times the slide's: divide by the batch size m"),
    "softmax overflows": ("softmax_cross_entropy", """
        def softmax_cross_entropy(scores, labels):
            e = np.exp(scores)
            return float(-np.mean(np.log(e[np.arange(len(labels)), labels] / e.sum(axis=1))))
        """, r"near 800.*your loss differs"),
    "momentum without eta": ("sgd_momentum_step", """
        def sgd_momentum_step(theta, v, grad, lr, momentum):
            v = momentum * v + grad
            return theta - lr * v, v
        """, r"your new v differs .* Your v leaves out eta"),
    "LeNet-5 without F6": ("lenet5_layers", """
        def lenet5_layers():
            layers = _ref.lenet5_layers()
            return [layer for layer in layers if not (isinstance(layer, mc.nn.Linear) and layer.out_features == 84)]
        """, r"cannot take the|the table says"),
    "residual block without the skip": ("residual_block", """
        def residual_block(x, w1, b1, w2, b2):
            return np.maximum(_ref.conv2d(np.maximum(_ref.conv2d(x, w1, b1, 1, 1), 0), w2, b2, 1, 1), 0)
        """, r"You left out the skip connection"),
    "a crash": ("max_pool2d", """
        def max_pool2d(x, size, stride=None):
            return x[:, :, ::size, ::size][99]
        """, r"your max_pool2d raised IndexError"),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_a_typical_bug_fails_with_a_helpful_message(tmp_path, bug):
    name, body, message = BUGS[bug]
    body = "import minicnn as mc\n" + textwrap.dedent(body)
    result = exercises.check(workspace(tmp_path, body), name)[0]
    assert result.status == "failed", exercises.format_result(result)
    assert re.search(message, result.detail), result.detail


def test_spec_entries_catch_a_bug_the_property_cannot_see(tmp_path):
    """A conv2d that is right on the drawn sizes but wrong on larger pixel values is caught by the spec entries."""
    body = """
        def conv2d(x, w, b=None, stride=1, padding=0):
            y = _ref.conv2d(x, w, b, stride, padding)
            return -y if np.abs(x).max() > 3 else y  # the drawn values lie in [-3, 3]
        """
    result = exercises.check(workspace(tmp_path, body), "conv2d", max_examples=5)[0]
    assert result.status == "failed"
    assert result.detail.startswith("spec entry "), result.detail


def test_check_from_the_command_line(tmp_path, capsys):
    body = BUGS["no kernel flip in dX"][1]
    folder = workspace(tmp_path, body)
    assert main(["exercises", "check", str(folder), "conv2d_input_grad"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  conv2d_input_grad: failed\n      for x of shape (") and "0/1 passed" in out
    assert main(["exercises", "check", str(folder), "conv2d"]) == 0
    assert "PASS  conv2d: passed" in capsys.readouterr().out
    assert main(["exercises", "check", str(folder), "conv3d"]) == 2
    assert "unknown exercise 'conv3d'" in capsys.readouterr().err
    assert main(["exercises", "check", str(tmp_path / "nowhere")]) == 2
    assert "run `minicnn exercises start" in capsys.readouterr().err
    assert main(["exercises", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(e.name in listing for e in EXERCISES)


def test_a_file_given_for_the_folder_is_one_line_error(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("mine\n", encoding="utf-8")
    for action in ("start", "check"):
        assert main(["exercises", action, str(afile)]) == 2
        assert f"exercises: error: {afile} is a file, not a folder" in capsys.readouterr().err
    assert afile.read_text(encoding="utf-8") == "mine\n"


def test_a_student_file_that_does_not_import_is_one_line_error(tmp_path, capsys):
    (tmp_path / "student.py").write_text("def conv2d(:\n", encoding="utf-8")
    assert main(["exercises", "check", str(tmp_path)]) == 2
    assert "does not import: SyntaxError" in capsys.readouterr().err


def test_student_backend_refuses_what_the_template_cannot_say():
    backend = StudentBackend(reference, ("conv2d",))
    mc.backends.register_backend("student_test", backend)
    try:
        assert "student_test" in mc.available_backends()
        x, w = np.ones((1, 1, 6, 6)), np.ones((1, 1, 3, 3))
        np.testing.assert_array_equal(mc.functional.conv2d(x, w, backend="student_test"), mc.functional.conv2d(x, w, backend="numpy"))
        with pytest.raises(OutsideExercise, match="dilation"):
            mc.functional.conv2d(x, w, dilation=2, backend="student_test")
    finally:
        mc.backends.unregister_backend("student_test")
    assert "student_test" not in mc.available_backends()
    with pytest.raises(ValueError, match="built-in"):
        mc.backends.register_backend("numpy", backend)
    with pytest.raises(ValueError, match="not kernel functions"):
        StudentBackend(reference, ("lenet5_layers",))


def test_training_verdict_needs_accuracy_and_moved_filters():
    assert TrainingResult(PASS_ACCURACY, MIN_C1_CHANGE, 1.0).passed
    assert not TrainingResult(0.99, 0.0, 1.0).passed  # a linear head on random filters
    assert not TrainingResult(PASS_ACCURACY - 0.001, 1.0, 1.0).passed


def test_a_slow_conv2d_is_told_to_vectorise_before_training(tmp_path):
    student = workspace(tmp_path, """
        import time

        def conv2d(x, w, b=None, stride=1, padding=0):
            if len(x) >= 32:   # as slow as four loops in Python, on a LeNet batch only (the other checks stay quick)
                time.sleep(0.5)
            return _ref.conv2d(x, w, b, stride, padding)
        """)
    result = exercises.check_one(BY_NAME["train_lenet5"], exercises.load_student(student), workdir=tmp_path)
    assert result.status == "failed" and "loop only over the kernel offsets" in result.detail, result.detail
    assert not (tmp_path / "lenet5-run").exists()


def test_frozen_c1_filters_fail_the_training_exercise(tmp_path):
    """A student whose dW is zero trains only the head: C1 moves only by the weight decay's shrinking."""
    student = workspace(tmp_path, """
        def conv2d_weight_grad(x, dy, w_shape, stride=1, padding=0):
            return np.zeros(w_shape)
        """)
    result = train_on_student_kernels(exercises.load_student(student), tmp_path / "run", epochs=1, size=300)
    assert result.c1_change < MIN_C1_CHANGE / 10 and not result.passed


def test_the_reference_trains_lenet5_on_student_kernels(tmp_path):
    """The last exercise, as a student runs it: LeNet-5 on the reference passed as the student's kernels."""
    result = exercises.check(workspace(tmp_path), "train_lenet5")[0]
    assert result.status == "passed", result.detail
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", result.detail).group(1)) / 100
    assert accuracy >= PASS_ACCURACY
