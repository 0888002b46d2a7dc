"""``minicnn bench``: the table, the JSON record and the chart, and the GEMM yardstick."""

import json
import statistics

import numpy as np
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


def test_the_vgg_case_runs_the_same_network_in_both_libraries():
    """The model case times the same computation in minicnn and PyTorch: same weights, same output."""
    torch = pytest.importorskip("torch")
    params = dict(x=(1, 3, 32, 32), config="vgg11")
    got = bench._make_model("cython", params, np.random.default_rng(4))()
    want = bench._make_model("torch", params, np.random.default_rng(4))().numpy()
    assert got.shape == want.shape == (1, 512, 1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert torch.is_tensor(bench._make_model("torch", params, np.random.default_rng(4))())
    vgg16 = next(c for c in bench.CASES if c.name == "vgg16")
    # 2 * multiply-adds of the 13 convolutions of VGG-16 on 224x224: 15.35 GMAC (Simonyan and Zisserman's 15.5 G
    # counts the fully connected layers too)
    assert vgg16.flops == pytest.approx(2 * 15.346e9, rel=1e-3)
