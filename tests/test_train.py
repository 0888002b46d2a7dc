"""The training loop: metrics, saved models, exact resume, divergence, atomic checkpoints, figures.

Runs are tiny (256 training and 64 test digits of mnist-5k, 2 epochs) so the
file stays fast on any backend; what is checked does not depend on size.
"""

import json
import math
import shutil

import numpy as np
import pytest

import minicnn as mc
import minicnn.data
from minicnn.plots import CONFUSION_FILE, CURVES_FILE, FEATURE_MAPS_FILE, FILTERS_FILE, confusion_matrix
from minicnn.train import (
    CHECKPOINT_FILE,
    METRICS_FILE,
    MODEL_FILE,
    TrainConfig,
    TrainingDiverged,
    epoch_generators,
    evaluate,
    load_checkpoint,
    load_model,
    model_info,
    predict,
    train,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIMING_KEYS = ("seconds", "images_per_s")


def tiny_config(out, **overrides):
    settings = {"size": 256, "test_size": 64, "epochs": 2, "batch_size": 32, "plots": False, "out": out}
    settings.update(overrides)
    return TrainConfig(**settings)


def without_times(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def state_of(path):
    return load_checkpoint(path)["model"]


def assert_same_weights(a, b):
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), f"{name} differs"


def temp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted 2-epoch run with figures; several tests read it."""
    out = tmp_path_factory.mktemp("full") / "run"
    metrics = train(tiny_config(out, plots=True), progress=False)
    return out, metrics


# ------------------------------------------------------------------ metrics and saved files
def test_metrics_json_records_every_epoch_and_the_run(full_run):
    out, returned = full_run
    metrics = json.loads((out / METRICS_FILE).read_text())
    assert metrics == json.loads(json.dumps(returned))
    assert metrics["backend"] == mc.current_backend_name()
    assert metrics["dataset"] == {"name": "mnist-5k", "train_size": 256, "test_size": 64}
    assert metrics["config"] == tiny_config(out, plots=True).to_dict()
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    for row in metrics["epochs"]:
        for key in ("train_loss", "test_loss", "seconds", "images_per_s"):
            assert math.isfinite(row[key]) and row[key] > 0, key
        for key, n in (("train_accuracy", 256), ("test_accuracy", 64)):
            assert 0.0 <= row[key] <= 1.0
            assert row[key] * n == pytest.approx(round(row[key] * n)), "an accuracy is a count of images / n"
    # cosine schedule over 2 epochs: eta, then eta * (1 + cos(pi/2)) / 2 = eta / 2
    assert [row["lr"] for row in metrics["epochs"]] == pytest.approx([0.02, 0.01])
    assert metrics["test_accuracy"] == metrics["epochs"][-1]["test_accuracy"]
    assert metrics["time_s"] == pytest.approx(sum(row["seconds"] for row in metrics["epochs"]))
    assert temp_files(out) == []


def test_training_lowers_the_loss(full_run):
    _, metrics = full_run
    first, last = metrics["epochs"]
    assert last["train_loss"] < first["train_loss"]


def test_saved_model_rebuilds_the_trained_network(full_run):
    out, metrics = full_run
    info = model_info(out / MODEL_FILE)
    assert info["model"] == "lenet5"
    assert info["model_kwargs"] == {"activation": "relu", "pool": "max", "num_classes": 10}
    net = load_model(out)  # a run directory works as well as its model.npz
    assert not net.training
    assert_same_weights(net.state_dict(), state_of(out / CHECKPOINT_FILE))
    images, labels = mc.data.load_dataset("mnist-5k", "test", size=64, seed=0)
    result = evaluate(net, mc.data.to_network_input(images), labels, batch_size=25)
    assert result.accuracy == metrics["test_accuracy"]
    assert result.loss == pytest.approx(metrics["test_loss"], rel=1e-5)


def test_predict_gives_probabilities_that_agree_with_evaluate(full_run):
    out, _ = full_run
    net = load_model(out / MODEL_FILE)
    images, labels = mc.data.load_dataset("mnist-5k", "test", size=40, seed=3)
    probabilities = predict(net, images, batch_size=16)
    assert probabilities.shape == (40, 10)
    assert np.all(probabilities >= 0)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    result = evaluate(net, mc.data.to_network_input(images), labels)
    assert np.array_equal(probabilities.argmax(axis=1), result.predictions)
    one = predict(net, images[7])
    assert one.shape == (10,)
    assert np.allclose(one, probabilities[7], atol=1e-6)


def test_load_model_rejects_files_that_are_not_models(tmp_path, full_run):
    out, _ = full_run
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.npz")
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="not one written by minicnn"):
        load_model(tmp_path / "plain.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable"):
        load_model(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="not a minicnn model"):
        load_model(out / CHECKPOINT_FILE)


def test_checkpoint_holds_what_resuming_needs(full_run):
    out, metrics = full_run
    checkpoint = load_checkpoint(out)
    assert checkpoint["epoch"] == 2
    assert checkpoint["history"] == json.loads(json.dumps(metrics["epochs"]))
    assert any(key.startswith("velocity.") for key in checkpoint["optimizer"])
    assert checkpoint["scheduler"]["epoch"] == 2
    # the generator states the next epoch would start from
    expected = {name: gen.bit_generator.state for name, gen in epoch_generators(0, 3).items()}
    assert checkpoint["rng"] == json.loads(json.dumps(expected))


# ------------------------------------------------------------------ figures
def test_plots_are_written_as_png(full_run):
    import matplotlib.image

    out, metrics = full_run
    names = (CURVES_FILE, FILTERS_FILE, FEATURE_MAPS_FILE, CONFUSION_FILE)
    assert metrics["plots"] == list(names)
    for name in names:
        path = out / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        pixels = matplotlib.image.imread(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        assert pixels.std() > 0, f"{name} is blank"


def test_no_plots_option_writes_no_figures(tmp_path):
    train(tiny_config(tmp_path / "run", epochs=1), progress=False)
    assert not list((tmp_path / "run").glob("*.png"))


def test_confusion_matrix_counts_true_against_predicted():
    counts = confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 2, 1], num_classes=3)
    assert counts.tolist() == [[1, 0, 0], [1, 1, 0], [0, 1, 2]]
    with pytest.raises(ValueError, match="labels must lie in"):
        confusion_matrix([0, 3], [0, 0], num_classes=3)


# ------------------------------------------------------------------ exact resume
@pytest.fixture
def stop_in_epoch(monkeypatch):
    """Make the run stop (as Ctrl-C would) when epoch ``n`` starts drawing batches."""

    def arm(n, exception=KeyboardInterrupt):
        real = minicnn.data.batches
        calls = []

        def batches(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise exception("stopped by the test")
            return real(*args, **kwargs)

        monkeypatch.setattr(minicnn.data, "batches", batches)
        return lambda: monkeypatch.setattr(minicnn.data, "batches", real)

    return arm


def test_resume_after_epoch_1_equals_an_uninterrupted_run(tmp_path, full_run, stop_in_epoch):
    full_out, full_metrics = full_run
    out = tmp_path / "run"
    config = tiny_config(out, plots=True)
    disarm = stop_in_epoch(2)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert load_checkpoint(out)["epoch"] == 1
    assert not (out / MODEL_FILE).exists()
    disarm()
    resumed = train(config, resume=True, progress=False)
    assert_same_weights(state_of(out / CHECKPOINT_FILE), state_of(full_out / CHECKPOINT_FILE))
    assert_same_weights(load_model(out).state_dict(), load_model(full_out).state_dict())
    assert without_times(resumed["epochs"]) == without_times(full_metrics["epochs"])
    assert resumed["test_accuracy"] == full_metrics["test_accuracy"]
    assert resumed["test_loss"] == full_metrics["test_loss"]
    full_optimizer = load_checkpoint(full_out)["optimizer"]
    for key, value in load_checkpoint(out)["optimizer"].items():
        assert np.array_equal(value, full_optimizer[key]), key


def test_epoch_generators_depend_only_on_seed_and_epoch():
    draws = {name: gen.random(4) for name, gen in epoch_generators(5, 3).items()}
    again = {name: gen.random(4) for name, gen in epoch_generators(5, 3).items()}
    assert all(np.array_equal(draws[name], again[name]) for name in draws)
    other_epoch = epoch_generators(5, 4)["shuffle"].random(4)
    other_seed = epoch_generators(6, 3)["shuffle"].random(4)
    assert not np.array_equal(draws["shuffle"], other_epoch)
    assert not np.array_equal(draws["shuffle"], other_seed)
    assert not np.array_equal(draws["shuffle"], draws["augment"])


def test_resume_needs_a_checkpoint_and_the_same_settings(tmp_path, full_run):
    full_out, _ = full_run
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config(tmp_path / "empty"), resume=True, progress=False)
    copy = tmp_path / "copy"
    shutil.copytree(full_out, copy)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0.02, now 0.5"):
        train(tiny_config(copy, lr=0.5), resume=True, progress=False)
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(tiny_config(copy), progress=False)


def test_resume_refuses_another_backend_whose_arithmetic_differs(tmp_path, full_run):
    full_out, _ = full_run
    copy = tmp_path / "copy"
    shutil.copytree(full_out, copy)
    other = "numpy" if mc.current_backend_name() != "numpy" else "cython"
    if other not in mc.available_backends():
        pytest.fail(f"the {other} backend must be available for this test")
    with pytest.raises(ValueError, match=rf"computed with the '{mc.current_backend_name()}' backend and this run "
                                         rf"would use '{other}'.*Resume with --backend {mc.current_backend_name()}"):
        train(tiny_config(copy, backend=other), resume=True, progress=False)


def test_resuming_a_finished_run_changes_nothing(tmp_path, full_run):
    full_out, full_metrics = full_run
    copy = tmp_path / "copy"
    shutil.copytree(full_out, copy)
    before = (copy / CHECKPOINT_FILE).read_bytes()
    metrics = train(tiny_config(copy), resume=True, progress=False)
    assert (copy / CHECKPOINT_FILE).read_bytes() == before
    assert metrics["test_accuracy"] == full_metrics["test_accuracy"]
    assert metrics["epochs"] == json.loads(json.dumps(full_metrics["epochs"]))


# ------------------------------------------------------------------ divergence and atomic writes
def test_a_huge_learning_rate_stops_with_a_clear_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"epoch 1/2, batch \d+/8 \(lr = 1e\+06\).*lower learning rate") as info:
        train(tiny_config(out, lr=1e6), progress=False)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)
    assert "no checkpoint" in str(info.value)
    assert not (out / CHECKPOINT_FILE).exists()
    assert temp_files(out) == []


def test_a_nan_loss_leaves_the_last_good_checkpoint_intact(tmp_path, full_run, monkeypatch):
    full_out, _ = full_run
    out = tmp_path / "run"
    real_batches, real_input = minicnn.data.batches, minicnn.data.to_network_input
    state = {"epoch": 0, "checkpoint": None}

    def batches(*args, **kwargs):
        state["epoch"] += 1
        if state["epoch"] == 2:
            state["checkpoint"] = (out / CHECKPOINT_FILE).read_bytes()
        return real_batches(*args, **kwargs)

    def poisoned_input(images, **kwargs):
        x = real_input(images, **kwargs)
        if state["epoch"] == 2:
            x[0] = np.nan
        return x

    monkeypatch.setattr(minicnn.data, "batches", batches)
    monkeypatch.setattr(minicnn.data, "to_network_input", poisoned_input)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 2/2, batch 1/8") as info:
        train(tiny_config(out), progress=False)
    assert f"checkpoint of epoch 1 in {out / CHECKPOINT_FILE} is intact" in str(info.value)
    assert (out / CHECKPOINT_FILE).read_bytes() == state["checkpoint"]
    checkpoint = load_checkpoint(out)
    assert checkpoint["epoch"] == 1
    assert all(np.all(np.isfinite(w)) for w in checkpoint["model"].values())
    assert temp_files(out) == []
    # the intact checkpoint resumes to the uninterrupted result
    monkeypatch.setattr(minicnn.data, "batches", real_batches)
    monkeypatch.setattr(minicnn.data, "to_network_input", real_input)
    train(tiny_config(out), resume=True, progress=False)
    assert_same_weights(state_of(out / CHECKPOINT_FILE), state_of(full_out / CHECKPOINT_FILE))


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_savez = np.savez
    writes = []

    def failing_savez(file, *args, **kwargs):
        writes.append(1)
        if len(writes) == 2:
            file.write(b"PK\x03\x04 half a zip")
            raise OSError(28, "No space left on device")
        return real_savez(file, *args, **kwargs)

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_config(out), progress=False)
    assert temp_files(out) == []
    assert load_checkpoint(out)["epoch"] == 1


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("lr", 0.0, ValueError, "lr must be finite and > 0"),
        ("lr", float("nan"), ValueError, "lr must be finite"),
        ("momentum", 1.0, ValueError, r"momentum must be finite and in \[0, 1\)"),
        ("epochs", 0, ValueError, "epochs must be >= 1"),
        ("batch_size", 2.5, TypeError, "batch_size must be an integer"),
        ("schedule", "linear", ValueError, "schedule must be one of"),
        ("size", 0, ValueError, "size must be >= 1"),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path, field, value, error, message):
    with pytest.raises(error, match=message):
        TrainConfig(out=tmp_path, **{field: value})


def test_config_round_trips_through_a_dict(tmp_path):
    config = TrainConfig(out=tmp_path / "x", data_root=tmp_path, lr=0.1, schedule="step", step_size=2)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_step_schedule_and_other_architectures_train(tmp_path):
    config = tiny_config(tmp_path / "run", epochs=3, activation="tanh", pool="avg", schedule="step", step_size=1, gamma=0.5)
    metrics = train(config, progress=False)
    assert [row["lr"] for row in metrics["epochs"]] == pytest.approx([0.02, 0.01, 0.005])
    assert model_info(tmp_path / "run")["model_kwargs"]["activation"] == "tanh"


def test_the_backend_setting_picks_the_kernels(tmp_path):
    metrics = train(tiny_config(tmp_path / "run", epochs=1, backend="numpy"), progress=False)
    assert metrics["backend"] == "numpy"
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        train(tiny_config(tmp_path / "other", epochs=1, backend="fortran"), progress=False)


def test_augmentation_defaults_to_on_for_digits_and_off_for_fashion(tmp_path):
    assert TrainConfig(out=tmp_path).augment is True
    assert TrainConfig(out=tmp_path, dataset="plates").augment is True
    assert TrainConfig(out=tmp_path, dataset="fashion-mnist").augment is False
    assert TrainConfig(out=tmp_path, dataset="fashion-mnist", augment=True).augment is True
    with pytest.raises(TypeError, match="augment must be True, False or None"):
        TrainConfig(out=tmp_path, augment="yes")


def test_resume_replays_dropout_masks_exactly(tmp_path, monkeypatch, stop_in_epoch):
    real_lenet5 = mc.models.lenet5

    def lenet5_with_dropout(**kwargs):
        layers = {}
        for name, layer in real_lenet5(**kwargs).named_children():
            if name == "output":
                layers["dropout"] = mc.nn.Dropout(0.5, rng=123)
            layers[name] = layer
        return mc.graph.Sequential(layers)

    monkeypatch.setattr(mc.models, "lenet5", lenet5_with_dropout)
    whole = train(tiny_config(tmp_path / "whole"), progress=False)
    disarm = stop_in_epoch(2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path / "split"), progress=False)
    disarm()
    resumed = train(tiny_config(tmp_path / "split"), resume=True, progress=False)
    assert_same_weights(state_of(tmp_path / "split" / CHECKPOINT_FILE), state_of(tmp_path / "whole" / CHECKPOINT_FILE))
    assert without_times(resumed["epochs"]) == without_times(whole["epochs"])


# ------------------------------------------------------------------ damaged model and checkpoint files
def _edited_copy(source, target, edit):
    """Rewrite an npz tree through ``edit(tree)`` with minicnn's own writer (a hand edit of the metadata or weights)."""
    from minicnn.io import read_npz_tree, write_npz_atomic

    tree = read_npz_tree(source, "test")
    edit(tree)
    write_npz_atomic(target, tree)
    return target


def _raw_tree_copy(source, target, edit_text):
    """Copy an npz file, replacing its JSON skeleton by ``edit_text(text)`` (a hand edit of the JSON itself)."""
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["__tree__"] = np.array(edit_text(str(arrays["__tree__"])))
    np.savez(target, **arrays)
    return target


def _damaged_models(folder, model_path):
    raw = model_path.read_bytes()
    (folder / "truncated.npz").write_bytes(raw[:30000])
    (folder / "empty.npz").write_bytes(b"")
    flipped = bytearray(raw)
    flipped[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    (folder / "crc.npz").write_bytes(bytes(flipped))

    def weights(change):
        return lambda tree: tree["state_dict"].update({"C1.weight": change(tree["state_dict"]["C1.weight"])})

    return {
        "truncated": (folder / "truncated.npz", r"truncated.npz is not a minicnn model file \(not a readable .npz file: truncated or corrupt zip"),
        "empty": (folder / "empty.npz", r"empty.npz is not a minicnn model file \(it is empty: 0 bytes\)"),
        "bad CRC": (folder / "crc.npz", r"crc.npz is not a minicnn model file \(not a readable .npz file: truncated or corrupt zip: BadZipFile"),
        "no state_dict": (
            _edited_copy(model_path, folder / "nosd.npz", lambda tree: tree.pop("state_dict")),
            r"nosd.npz is a damaged minicnn model file: its 'state_dict' \(the weights\) must be a dict of arrays, it is missing",
        ),
        "renamed state_dict": (
            _raw_tree_copy(model_path, folder / "renamed.npz", lambda t: t.replace('"state_dict":', '"state_dikt":', 1)),
            r"renamed.npz is a damaged minicnn model file: its 'state_dict'",
        ),
        "dangling array": (
            _raw_tree_copy(model_path, folder / "dangling.npz", lambda t: t.replace('"state_dict/C1.weight"', '"no/such/array"')),
            r"dangling.npz is not a minicnn model file \(damaged: its metadata refers to an array 'no/such/array' that the file does not hold\)",
        ),
        "bad JSON": (
            _raw_tree_copy(model_path, folder / "json.npz", lambda t: t[:-5]),
            r"json.npz is not a minicnn model file \(damaged: its metadata is not valid JSON: ",
        ),
        "no model_kwargs": (
            _edited_copy(model_path, folder / "nokw.npz", lambda tree: tree["meta"].pop("model_kwargs")),
            r"nokw.npz is a damaged minicnn model file: metadata entry 'model_kwargs' must be a dict, it is missing",
        ),
        "unknown model": (
            _edited_copy(model_path, folder / "nomodel.npz", lambda tree: tree["meta"].update(model="lenet6")),
            r"nomodel.npz is a damaged minicnn model file: cannot rebuild model 'lenet6'",
        ),
        "complex weights": (
            _edited_copy(model_path, folder / "complex.npz", weights(lambda w: w.astype(np.complex128))),
            r"complex.npz does not hold usable weights: load_state_dict: parameter C1.weight has dtype complex128; expected float32 or float64",
        ),
        "int64 weights": (
            _edited_copy(model_path, folder / "int.npz", weights(lambda w: w.astype(np.int64))),
            r"int.npz does not hold usable weights: load_state_dict: parameter C1.weight has dtype int64; expected float32 or float64",
        ),
        "NaN weights": (
            _edited_copy(model_path, folder / "nan.npz", weights(lambda w: w * np.nan)),
            r"nan.npz does not hold usable weights: C1.weight has 150 NaN or infinite values",
        ),
    }


def test_damaged_model_files_are_one_clear_value_error(tmp_path, full_run):
    out, _ = full_run
    for case, (path, message) in _damaged_models(tmp_path, out / MODEL_FILE).items():
        with pytest.raises(ValueError, match=message):
            load_model(path)
        if case not in ("complex weights", "int64 weights", "NaN weights", "unknown model"):
            with pytest.raises(ValueError, match=message):
                model_info(path)


def test_load_state_dict_refuses_complex_and_integer_arrays_instead_of_casting():
    layer = mc.nn.Linear(2, 2, rng=0)
    state = layer.state_dict()
    with pytest.raises(TypeError, match=r"parameter weight has dtype complex128; expected float32 or float64"):
        layer.load_state_dict({**state, "weight": state["weight"].astype(np.complex128)})
    with pytest.raises(TypeError, match=r"parameter bias has dtype int64"):
        layer.load_state_dict({**state, "bias": np.array([1, 2])})
    with pytest.raises(TypeError, match=r"parameter bias has dtype <U1"):
        layer.load_state_dict({**state, "bias": np.array(["a", "b"])})
    layer.load_state_dict({**state, "bias": [1.0, 2.0]})  # a list of floats is still fine
    np.testing.assert_array_equal(layer.bias.data, [1.0, 2.0])


def _damaged_checkpoints(folder, run):
    def copy_run(name, write):
        target = folder / name
        shutil.copytree(run, target)
        write(target / CHECKPOINT_FILE)
        return target

    raw = (run / CHECKPOINT_FILE).read_bytes()
    source = run / CHECKPOINT_FILE

    def edited(edit):
        return lambda path: _edited_copy(source, path, edit)

    def complex_model(tree):
        tree["model"]["C1.weight"] = tree["model"]["C1.weight"].astype(np.complex128)

    def complex_velocity(tree):
        tree["optimizer"]["velocity.0"] = tree["optimizer"]["velocity.0"].astype(np.complex128)

    return {
        "truncated": (copy_run("trunc", lambda p: p.write_bytes(raw[:30000])), r"checkpoint.npz is not a minicnn checkpoint file \(not a readable .npz file: truncated or corrupt zip"),
        "empty": (copy_run("empty", lambda p: p.write_bytes(b"")), r"is not a minicnn checkpoint file \(it is empty: 0 bytes\)"),
        "epoch text": (copy_run("epoch", edited(lambda t: t.update(epoch="one"))), r"damaged minicnn checkpoint: entry 'epoch' must be int, it is a str: 'one'"),
        "no model": (copy_run("nomodel", edited(lambda t: t.pop("model"))), r"damaged minicnn checkpoint: entry 'model' must be dict, it is missing"),
        "complex weights": (copy_run("cplx", edited(complex_model)), r"the checkpoint is damaged \(its 'model' entry: load_state_dict: parameter C1.weight has dtype complex128"),
        "complex velocity": (copy_run("vel", edited(complex_velocity)), r"its 'optimizer' entry: optimizer entry velocity.0 has dtype complex128"),
        "rng": (copy_run("rng", edited(lambda t: t.update(rng={"shuffle": 3}))), r"its 'rng' entry: no generator state for shuffle, augment, dropout"),
    }


def test_damaged_checkpoints_are_one_clear_value_error_on_resume(tmp_path, full_run):
    out, _ = full_run
    config = TrainConfig.from_dict(load_checkpoint(out)["config"])
    for case, (run, message) in _damaged_checkpoints(tmp_path, out).items():
        with pytest.raises(ValueError, match=message):
            train(dataclasses_replace(config, out=run), resume=True, progress=False)


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


# ------------------------------------------------------------------ stale temporaries of killed writes
def _dead_pid():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _aged(path, seconds):
    import os
    import time

    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_a_write_killed_by_sigkill_leaves_a_temporary_that_the_next_write_removes(tmp_path):
    import subprocess
    import sys

    target = tmp_path / CHECKPOINT_FILE
    killed = (
        "import os, signal, numpy as np\n"
        "from minicnn.io import atomic_file\n"
        f"with atomic_file({str(target)!r}, 'wb') as f:\n"
        "    f.write(b'half a checkpoint')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", killed], capture_output=True, timeout=120)
    assert result.returncode == -9
    leftovers = temp_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".checkpoint.npz.") and not target.exists()
    _aged(tmp_path / leftovers[0], 60)
    from minicnn.io import write_npz_atomic

    write_npz_atomic(target, {"format": "minicnn-checkpoint"})
    assert temp_files(tmp_path) == []
    assert target.is_file()


def test_only_stale_temporaries_of_the_same_file_are_removed(tmp_path):
    import os

    from minicnn.io import write_npz_atomic

    dead, alive = _dead_pid(), os.getpid()
    files = {
        f".checkpoint.npz.{dead}.0123abcd.tmp": (60, False),  # its process ended: removed
        f".checkpoint.npz.{dead}.1123abcd.tmp": (1, True),  # ended, but written a second ago: kept for now
        f".checkpoint.npz.{alive}.2123abcd.tmp": (60, True),  # a live process (this one) may still write it
        f".checkpoint.npz.{alive}.3123abcd.tmp": (2 * 24 * 3600, False),  # two days old: abandoned (pid reused)
        f".model.npz.{dead}.4123abcd.tmp": (60, True),  # another file's: not this write's business
        "checkpoint.npz.tmp": (60, True),  # not the pattern
        f".checkpoint.npz.{dead}.notmine.tmp": (60, True),
    }
    for name, (age, _) in files.items():
        (tmp_path / name).write_bytes(b"x")
        _aged(tmp_path / name, age)
    write_npz_atomic(tmp_path / CHECKPOINT_FILE, {"format": "minicnn-checkpoint"})
    kept = {p.name for p in tmp_path.iterdir()} - {CHECKPOINT_FILE}
    assert kept == {name for name, (_, keep) in files.items() if keep}


def test_step_is_one_sgd_update_and_skips_only_the_first_layers_input_gradient(rng):
    from minicnn.train import step

    x = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    nets = [mc.models.lenet5(seed=0).fuse() for _ in range(2)]
    optimizers = [mc.optim.SGD(net.parameters(), lr=0.05, momentum=0.9) for net in nets]
    loss_fn = mc.nn.SoftmaxCrossEntropy()
    loss, logits = step(nets[0], loss_fn, optimizers[0], x, y)
    # by hand: the whole backward pass, the network's input gradient included
    want_logits = nets[1](x)
    want_loss = loss_fn(want_logits, y)
    optimizers[1].zero_grad()
    assert nets[1].backward(loss_fn.backward()).shape == x.shape
    optimizers[1].step()
    assert loss == want_loss
    np.testing.assert_array_equal(logits, want_logits)
    for (name, got), want in zip(nets[0].named_parameters(), nets[1].parameters()):
        np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-7, err_msg=name)
        assert not np.array_equal(got.data, mc.models.lenet5(seed=0).state_dict()[name]), f"{name} was not updated"
