"""``minicnn bench``: the table, the JSON record and the chart, and the GEMM yardstick."""

import json
import statistics

import pytest

import minicnn as mc
from minicnn import bench
from minicnn.cli import main


def test_bench_command_writes_table_json_and_chart(tmp_path, capsys):
    impl = "cython" if "cython" in mc.available_backends() else "numpy"
    out = tmp_path / "run"
    assert main(["bench", "--cases", "conv_c3", "maxpool", "--repeats", "3", "--impls", impl, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| case | {impl} (ms) |" in printed
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert [row["case"] for row in report["results"]] == ["conv_c3", "maxpool"]
    for row in report["results"]:
        times = row["raw_s"][impl]
        assert len(times) >= 3 and all(t > 0 for t in times)
        assert row["median_s"][impl] == pytest.approx(statistics.median(times))
    conv = report["results"][0]
    assert conv["gflops"][impl] == pytest.approx(bench.CASES[1].flops / conv["median_s"][impl] / 1e9)
    assert report["machine"]["cpus_usable"] >= 1


def test_bench_ratio_is_torch_time_over_minicnn_time(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    assert main(["bench", "--cases", "avgpool", "--repeats", "3", "--impls", "cython", "torch", "--out", str(out)]) == 0
    row = json.loads(out.with_suffix(".json").read_text())["results"][0]
    assert row["ratio_torch_over_minicnn"]["cython"] == pytest.approx(row["median_s"]["torch"] / row["median_s"]["cython"])
    assert "torch/cython" in capsys.readouterr().out


def test_cpu_gemm_rate_is_a_plausible_rate():
    rate = bench.cpu_gemm_rate(size=256, repeats=3)
    assert 0.1 < rate < 1e5  # GFLOP/s: more than a tenth, less than a hundred TFLOP/s on one CPU


@pytest.mark.parametrize(
    "argv, fragment",
    [(["--repeats", "0"], "--repeats must be >= 1, got 0"), (["--impls", "nope"], "--impls: 'nope' is not available here")],
)
def test_bench_rejects_bad_arguments(capsys, argv, fragment):
    assert main(["bench", "--cases", "avgpool", *argv]) == 2
    assert fragment in capsys.readouterr().err
