"""The ``minicnn`` command line: help that teaches, each command end to end, one-line errors with exit code 2."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
from minicnn.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("train", "eval", "predict", "summary", "backends")
TINY = ["--size", "128", "--test-size", "32", "--epochs", "1", "--quiet", "--no-plots"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(err, *fragments):
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got: {err!r}"
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


# ------------------------------------------------------------------ help
def test_top_level_help_lists_every_command_with_examples(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s+\S", out, re.MULTILINE), f"{command} missing from --help"
    assert "examples:" in out and "minicnn train --out" in out


def all_commands():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return sorted(subparsers.choices)


@pytest.mark.parametrize("command", all_commands())
def test_each_command_help_says_what_it_does_and_gives_an_example(capsys, command):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: minicnn {command}")
    description = out.split("\n\n")[1]
    assert len(description.split()) >= 5, f"{command} --help has no description"
    assert re.search(rf"example.*minicnn\s+{command}\b", out, re.DOTALL | re.IGNORECASE), f"{command} --help has no example"


def test_train_help_shows_the_defaults(capsys):
    _, out, _ = run_cli(capsys, "train", "--help")
    flat = " ".join(out.split())
    defaults = mc.train.TrainConfig()
    assert f"(default: {defaults.lr})" in flat
    assert f"(default: {defaults.epochs})" in flat
    for flag in ("--dataset", "--data-root", "--epochs", "--batch-size", "--lr", "--momentum", "--activation", "--pool",
                 "--backend", "--seed", "--out", "--resume", "--no-plots", "--no-augment", "--size"):  # fmt: skip
        assert flag in out


def test_python_dash_m_minicnn_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "minicnn", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "usage: minicnn" in result.stdout and "train" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "minicnn", "nonsense"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert "invalid choice: 'nonsense'" in bad.stderr


# ------------------------------------------------------------------ summary and backends
def test_summary_lenet5_prints_the_table_with_61706_parameters(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5")
    assert code == 0
    assert re.search(r"^total\s.*61,706", out, re.MULTILINE)
    for layer in ("C1", "S2", "C3", "S4", "C5", "F6", "output"):
        assert re.search(rf"^{layer}\s", out, re.MULTILINE)
    assert "6x28x28" in out and "16x5x5" in out


def test_summary_finds_other_models_by_name_with_their_own_input_size(capsys):
    code, out, _ = run_cli(capsys, "summary", "vgg16")
    assert code == 0
    assert out.startswith("vgg16, input 3x224x224")
    assert re.search(r"^total\s.*138,357,544", out, re.MULTILINE)


def test_summary_with_an_input_too_large_for_the_network_is_a_one_line_error(capsys):
    code, _, err = run_cli(capsys, "summary", "lenet5", "--input-shape", "1", "36", "36")
    assert code == 2
    assert_one_line_error(err, "minicnn summary: error:", "in_features")


def test_summary_of_a_saved_model(capsys, run_dir):
    code, out, _ = run_cli(capsys, "summary", str(run_dir / "model.npz"))
    assert code == 0
    assert re.search(r"^total\s.*61,706", out, re.MULTILINE)


def test_summary_of_an_unknown_model_names_the_known_ones(capsys):
    code, _, err = run_cli(capsys, "summary", "alexnet9000")
    assert code == 2
    assert_one_line_error(err, "unknown model 'alexnet9000'", "lenet5")


def test_backends_lists_each_backend_and_why_one_is_missing(capsys):
    code, out, _ = run_cli(capsys, "backends")
    assert code == 0
    lines = {line.split()[0]: line for line in out.strip().splitlines()}
    assert set(lines) == set(mc.backends.BACKEND_NAMES)
    for name in mc.backends.BACKEND_NAMES:
        if name in mc.available_backends():
            assert "available" in lines[name] and "unavailable" not in lines[name]
        else:
            assert re.search(r"unavailable: \S", lines[name])
    assert "(default)" in lines[mc.current_backend_name()]


# ------------------------------------------------------------------ train, eval, predict
def test_train_writes_a_run_and_reports_its_accuracy(run_dir):
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dataset"]["train_size"] == 128 and len(metrics["epochs"]) == 1
    assert (run_dir / "model.npz").is_file() and (run_dir / "checkpoint.npz").is_file()
    assert not list(run_dir.glob("*.png"))  # --no-plots


def test_eval_prints_the_accuracy_of_the_saved_model(capsys, run_dir):
    code, out, _ = run_cli(capsys, "eval", str(run_dir / "model.npz"), "--size", "32")
    assert code == 0
    match = re.search(r"mnist-5k test \(32 images\): accuracy (\d+\.\d\d)%, loss (\d+\.\d+)", out)
    assert match, out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # --size 32 with the run's seed draws the same 32 test images the run was scored on
    assert float(match.group(1)) == pytest.approx(100 * metrics["test_accuracy"], abs=0.006)


def test_predict_prints_a_digit_and_ten_probabilities(capsys, tmp_path, run_dir):
    from PIL import Image

    images, labels = mc.data.load_dataset("mnist-5k", "test", size=1, seed=1)
    png = tmp_path / "digit.png"
    Image.fromarray(255 - images[0]).save(png)  # dark ink on white paper, as a scan would be
    code, out, _ = run_cli(capsys, "predict", str(png), "--model", str(run_dir))
    assert code == 0
    first, second = out.strip().splitlines()
    match = re.fullmatch(rf"{re.escape(str(png))}: (\d) \(probability (0\.\d+|1\.0+)\)", first)
    assert match, first
    probabilities = [float(p) for p in re.findall(r"(\d): (\d\.\d{4})", second) for p in [p[1]]]
    assert [int(d) for d, _ in re.findall(r"(\d): (\d\.\d{4})", second)] == list(range(10))
    assert sum(probabilities) == pytest.approx(1.0, abs=6e-4)
    assert int(np.argmax(probabilities)) == int(match.group(1))


def test_train_resume_of_a_finished_run_succeeds(capsys, run_dir):
    code, out, _ = run_cli(capsys, "train", "--out", str(run_dir), "--resume", "--quiet", "--no-plots")
    assert code == 0
    assert "resuming" in out and "after epoch 1 of 1" in out


# ------------------------------------------------------------------ errors: one line, exit code 2
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
        (["train", "--lr", "fast"], "argument --lr: expected a number, got 'fast'"),
        (["train", "--activation", "swish"], "argument --activation: invalid choice: 'swish'"),
        (["predict", "x.png"], "the following arguments are required: --model"),
        (["eval"], "the following arguments are required: MODEL"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(capsys, argv, fragment):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err


def test_a_missing_model_file_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "eval", str(tmp_path / "missing.npz"))
    assert code == 2
    assert_one_line_error(err, "minicnn eval: error:", "missing.npz")
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "nope.png"), "--model", str(tmp_path / "missing.npz"))
    assert code == 2
    assert_one_line_error(err, "minicnn predict: error:", "missing.npz")


def test_training_into_a_used_directory_is_refused(capsys, run_dir):
    code, _, err = run_cli(capsys, "train", *TINY, "--out", str(run_dir))
    assert code == 2
    assert_one_line_error(err, "already holds a training run", "--resume")


def test_resume_with_other_settings_is_refused(capsys, run_dir):
    code, _, err = run_cli(capsys, "train", "--out", str(run_dir), "--resume", "--lr", "0.5", "--quiet")
    assert code == 2
    assert_one_line_error(err, "cannot resume", "lr: checkpoint 0.02, now 0.5")


def test_an_unknown_dataset_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", *TINY, "--dataset", "cifar", "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line_error(err, "unknown data set 'cifar'")


def test_a_diverging_run_is_a_one_line_error_suggesting_a_lower_lr(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", *TINY, "--lr", "1e6", "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line_error(err, "training diverged", "--lr 100000")


# ------------------------------------------------------------------ bad inputs through the commands
def test_predict_reads_a_16_bit_png_like_its_8_bit_copy(capsys, tmp_path, run_dir):
    from PIL import Image

    images, _ = mc.data.load_dataset("mnist-5k", "test", size=1, seed=1)
    page = 255 - images[0]
    Image.fromarray(page).save(tmp_path / "d8.png")
    Image.fromarray(page.astype(np.uint16) * 257).save(tmp_path / "d16.png")  # Pillow mode I;16
    Image.fromarray(page.astype(np.float32) / 255).save(tmp_path / "dF.tif")  # mode F
    outputs = []
    for name in ("d8.png", "d16.png", "dF.tif"):
        code, out, _ = run_cli(capsys, "predict", str(tmp_path / name), "--model", str(run_dir))
        assert code == 0
        outputs.append(out.replace(str(tmp_path / name), "IMAGE"))
    assert outputs[0] == outputs[1] == outputs[2]  # the same class and the same ten probabilities


def test_predict_on_a_decompression_bomb_is_a_one_line_error(capsys, tmp_path, run_dir):
    from PIL import Image

    Image.new("1", (14000, 14000)).save(tmp_path / "bomb.png")
    code, _, err = run_cli(capsys, "predict", str(tmp_path / "bomb.png"), "--model", str(run_dir))
    assert code == 2
    assert_one_line_error(err, "minicnn predict: error:", "bomb.png is too large for a digit crop", "196000000 pixels")


def test_plates_of_an_impossible_size_is_a_one_line_error(capsys, tmp_path):
    argv = ["train", "--dataset", "plates", "--size", "10000000000", "--epochs", "1", "--quiet", "--no-plots"]
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2
    assert_one_line_error(err, "minicnn train: error: plates: size = 10,000,000,000 digits would need", "ask for at most")


def test_a_folder_without_enough_images_for_a_test_split_fails_before_training(capsys, tmp_path):
    from PIL import Image

    images, labels = mc.data.load_dataset("mnist-5k", "test", size=20, seed=0)
    for digit in (0, 1):
        (tmp_path / "crops" / str(digit)).mkdir(parents=True)
        Image.fromarray(images[labels == digit][0]).save(tmp_path / "crops" / str(digit) / "a.png")
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--dataset", f"folder:{tmp_path / 'crops'}", "--epochs", "1", "--quiet",
                           "--no-plots", "--out", str(out))  # fmt: skip
    assert code == 2
    assert_one_line_error(err, "has no test images", "needs 3 or more images", "images per class here: 0: 1, 1: 1")
    assert not (out / "checkpoint.npz").exists()  # refused before the first epoch


@pytest.mark.parametrize("error, code, fragments", [
    (MemoryError("Unable to allocate 75.0 GiB for an array with shape (10000000000, 28, 28) and data type uint8"), 2,
     ("minicnn train: error: out of memory (Unable to allocate 75.0 GiB", "smaller --size")),
    (ZeroDivisionError("division by zero"), 1,
     ("minicnn train: internal error: ZeroDivisionError: division by zero", "MINICNN_DEBUG=1")),
], ids=["out-of-memory", "unexpected"])
def test_out_of_memory_and_unexpected_exceptions_are_one_line(capsys, tmp_path, monkeypatch, error, code, fragments):
    import minicnn.train

    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(minicnn.train, "train", failing)
    got, _, err = run_cli(capsys, "train", *TINY, "--out", str(tmp_path / "run"))
    assert got == code
    assert_one_line_error(err, *fragments)


def _hand_edited(source, target, edit):
    from minicnn.io import read_npz_tree, write_npz_atomic

    tree = read_npz_tree(source, "test")
    edit(tree)
    write_npz_atomic(target, tree)
    return target


@pytest.fixture
def damaged_models(tmp_path, run_dir):
    raw = (run_dir / "model.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[:30000])  # head -c 30000 model.npz > t.npz
    (tmp_path / "empty.npz").write_bytes(b"")

    def complex_weights(tree):
        tree["state_dict"]["C1.weight"] = tree["state_dict"]["C1.weight"].astype(np.complex128)

    return {
        tmp_path / "t.npz": "t.npz is not a minicnn model file (not a readable .npz file: truncated or corrupt zip",
        tmp_path / "empty.npz": "empty.npz is not a minicnn model file (it is empty: 0 bytes)",
        _hand_edited(run_dir / "model.npz", tmp_path / "nosd.npz", lambda tree: tree.pop("state_dict")):
            "nosd.npz is a damaged minicnn model file: its 'state_dict'",
        _hand_edited(run_dir / "model.npz", tmp_path / "complex.npz", complex_weights):
            "parameter C1.weight has dtype complex128; expected float32 or float64",
    }  # fmt: skip


def test_eval_and_predict_of_a_damaged_model_are_one_line_errors(capsys, tmp_path, damaged_models):
    from PIL import Image

    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "digit.png")
    for path, fragment in damaged_models.items():
        code, _, err = run_cli(capsys, "eval", str(path), "--size", "8")
        assert code == 2, err
        assert_one_line_error(err, "minicnn eval: error:", fragment)
        code, _, err = run_cli(capsys, "predict", str(tmp_path / "digit.png"), "--model", str(path))
        assert code == 2, err
        assert_one_line_error(err, "minicnn predict: error:", fragment)


def test_resume_from_a_truncated_or_empty_checkpoint_is_a_one_line_error(capsys, tmp_path, run_dir):
    import shutil

    raw = (run_dir / "checkpoint.npz").read_bytes()
    for name, payload, fragment in (("trunc", raw[:30000], "truncated or corrupt zip"), ("empty", b"", "it is empty: 0 bytes")):
        out = tmp_path / name
        shutil.copytree(run_dir, out)
        (out / "checkpoint.npz").write_bytes(payload)
        code, _, err = run_cli(capsys, "train", "--out", str(out), "--resume", "--quiet", "--no-plots")
        assert code == 2
        assert_one_line_error(err, "minicnn train: error: load_checkpoint:", "is not a minicnn checkpoint file", fragment)
