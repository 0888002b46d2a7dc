"""``minicnn bench --device gpu``: the crossover batch, the CPU-vs-GPU table and plot, and the CPU half of the sweep.

The GPU half needs a GPU (benchmarks/gpu_run.sh runs it there); here it must
be skipped with the reason, and everything else must work.
"""

import json
import math

import pytest

from minicnn import bench_sweep
from minicnn.bench_sweep import crossover, format_sweep, plot_sweep
from minicnn.cli import main


# --------------------------------------------------------------------------- crossover
def test_crossover_is_the_first_batch_from_which_the_gpu_stays_ahead():
    cpu = {1: 1000, 4: 1100, 16: 1200, 64: 1200, 256: 1200}
    gpu = {1: 100, 4: 400, 16: 1600, 64: 6000, 256: 20000}
    found = crossover(cpu, gpu)
    assert found["batch"] == 16
    # ratio 400/1100 at 4 and 1600/1200 at 16: log-linear interpolation in log(batch)
    r_lo, r_hi = math.log(400 / 1100), math.log(1600 / 1200)
    expected = math.exp(math.log(4) + (-r_lo) / (r_hi - r_lo) * (math.log(16) - math.log(4)))
    assert found["estimate"] == pytest.approx(expected)
    assert 4 < found["estimate"] < 16
    assert found["ratio"][256] == pytest.approx(20000 / 1200)


def test_a_gpu_that_falls_behind_again_has_its_crossover_after_the_last_loss():
    cpu = {1: 100, 2: 100, 4: 100, 8: 100}
    gpu = {1: 50, 2: 150, 4: 90, 8: 300}
    assert crossover(cpu, gpu)["batch"] == 8


def test_no_crossover_and_a_gpu_that_always_wins():
    assert crossover({1: 10, 8: 10}, {1: 5, 8: 9})["batch"] is None
    assert crossover({1: 10, 8: 10}, {1: 5, 8: 9})["estimate"] is None
    always = crossover({2: 10, 8: 10}, {2: 11, 8: 90})
    assert always["batch"] == 2 and always["estimate"] == 2.0
    tie = crossover({2: 10, 8: 10}, {2: 10, 8: 10})  # equal is not a win
    assert tie["batch"] is None


def test_crossover_uses_only_batches_both_measured_and_refuses_bad_input():
    found = crossover({1: 10, 4: 10, 1024: 10}, {4: 20, 16: 50, 1024: 500})
    assert sorted(found["ratio"]) == [4, 1024] and found["batch"] == 4
    with pytest.raises(ValueError, match="positive integer batches"):
        crossover({0: 10}, {0: 20})
    with pytest.raises(ValueError, match="gpu needs"):
        crossover({4: 10}, {4: -1})


# --------------------------------------------------------------------------- table and plot
def _report():
    cpu = {1: 1000.0, 16: 1200.0, 256: 1250.0}
    gpu = {1: 200.0, 16: 2400.0, 256: 90000.0}
    return {"batches": [1, 16, 256], "images_per_s": {"cpu": cpu, "gpu": gpu}, "skipped": {"torch-cuda": "no GPU here"},
            "crossover": crossover(cpu, gpu)}


def test_the_table_puts_cpu_and_gpu_side_by_side_with_the_crossover():
    text = format_sweep(_report())
    lines = text.splitlines()
    assert lines[0] == "| batch | cpu img/s | gpu img/s | gpu/cpu |"
    assert "| 256 | 1,250 | 90,000 | 72.00 |" in lines
    assert "| 1 | 1,000 | 200 | 0.20 |" in lines
    assert "The GPU wins from batch 16 on" in text
    assert "torch-cuda: skipped (no GPU here)" in text


def test_the_plot_is_a_png(tmp_path):
    path = tmp_path / "sweep.png"
    plot_sweep(_report(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- the sweep, CPU half
def test_the_sweep_times_the_cpu_and_skips_the_gpu_with_the_reason(monkeypatch):
    monkeypatch.setattr(bench_sweep, "gpu_unavailable", lambda: "CuPy does not import (test)")
    messages = []
    report = bench_sweep.sweep(batches=(2,), impls=["cpu", "gpu"], repeats=1, steps=1, log=messages.append)
    assert report["skipped"] == {"gpu": "no GPU here: CuPy does not import (test)"}
    assert list(report["images_per_s"]) == ["cpu"]
    seconds = report["seconds_per_step"]["cpu"][2]
    assert seconds > 0 and report["images_per_s"]["cpu"][2] == pytest.approx(2 / seconds)
    assert "crossover" not in report
    assert any("GPU half is skipped" in m for m in messages)


def test_bench_device_gpu_writes_json_and_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_sweep, "gpu_unavailable", lambda: "no GPU (test)")
    out = tmp_path / "run"
    assert main(["bench", "--device", "gpu", "--batches", "2", "--repeats", "1", "--impls", "cpu", "gpu",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| batch | cpu img/s |" in printed and "gpu: skipped (no GPU here: no GPU (test))" in printed
    report = json.loads((tmp_path / "run-sweep.json").read_text())
    assert report["images_per_s"]["cpu"]["2"] > 0
    assert (tmp_path / "run-sweep.png").stat().st_size > 0


@pytest.mark.parametrize("argv,fragment", [
    (["--batches", "0"], "--batches must be positive integers, got [0]"),
    (["--impls", "tpu"], "'tpu' is not one of"),
    (["--cpu-max-batch", "0"], "--cpu-max-batch must be >= 1, got 0"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
])
def test_bench_device_gpu_rejects_bad_arguments(capsys, argv, fragment):
    assert main(["bench", "--device", "gpu", *argv]) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.parametrize("argv,fragment", [
    (["--device", "gpu", "--cases", "conv_c1"], "--cases: not options of --device gpu"),
    (["--device", "gpu", "--reference", "--calibrate"], "--reference, --calibrate: not options of --device gpu"),
    (["--batches", "4"], "--batches: options of the --device gpu sweep only"),
    (["--device", "cpu", "--cpu-max-batch", "8"], "--cpu-max-batch: options of the --device gpu sweep only"),
])
def test_bench_refuses_options_the_chosen_mode_would_ignore(capsys, argv, fragment):
    assert main(["bench", *argv]) == 2
    assert fragment in capsys.readouterr().err
