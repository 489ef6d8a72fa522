"""The benchmark command runs end to end at its smallest size (no timing asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_a_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "speed-up" in result.stdout
    report = json.loads(out.read_text())
    names = [case["name"] for case in report["cases"]]
    assert names[:6] == [
        "full d=16 K=8 float64", "full d=16 K=8 float32",
        "full d=16 K=8 float32, float32_products=True", "diag d=16 K=8 float64",
        "full d=64 K=16 float64", "tied d=16 K=8 float64",
    ]
    assert any("Zarr on disk" in name for name in names)
    for case in report["cases"]:
        assert case["seconds"]["streamgmm"] > 0
    assert report["matmul_gflops"]["float64"] > 0
    assert report["machine"]["nproc"] >= 1 and report["machine"]["blas"]
    assert "float32_products vs float64 (streamgmm)" in report["targets"]
    zarr_checks = [name for name in report["targets"] if name.startswith("Zarr / in-memory")]
    assert len(zarr_checks) == 3 and any("Blosc-LZ4" in name for name in zarr_checks)


def test_kernel_parts_runs_at_a_tiny_size():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "kernel_parts.py"), "--rows", "4096",
         "--features", "3", "--components", "2"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "chunk_statistics: float64" in result.stdout
    assert result.stdout.count("ms per 10^6 rows") == 3


def test_online_pass_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "online.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "online_pass.py"), "--rows", "60000",
         "--batch-sizes", "4096", "--passes", "3", "--repeats", "1", "--calls", "30",
         "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "Zarr / in memory" in result.stdout and "partial_fit of 512 rows" in result.stdout
    report = json.loads(out.read_text())
    (case,) = report["online_passes"]
    assert case["batch_size"] == 4096
    # passes timed inside the fits: 2 of each 3-pass fit, median and fastest
    assert report["timed_passes"] == 2
    assert 0 < case["in_memory_fastest_seconds"] <= case["in_memory_seconds"]
    assert 0 < case["zarr_fastest_seconds"] <= case["zarr_seconds"]
    assert 0 < report["batch_iteration_fastest_seconds"] <= report["batch_iteration_seconds"]
    assert report["partial_fit_ms"]["calls"] == 30 and report["partial_fit_ms"]["median"] > 0


def test_save_outputs_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "save.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "save_outputs.py"), "--rows", "20000",
         "--repeats", "1", "--folder", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert result.stdout.count("ratio") == 3
    results = json.loads(out.read_text())
    assert all(seconds > 0 for case in results.values() for seconds in case.values())
    assert [name for name in os.listdir(tmp_path) if name != "save.json"] == []


def test_init_recovery_runs_at_a_tiny_size():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "init_recovery.py"), "--components", "2",
         "--features", "2", "--rows-per-component", "60", "--seeds", "1", "--elongation", "4",
         "--methods", "hierarchical"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "hierarchical+k-means||" in result.stdout and "best optimum" in result.stdout


def test_select_reference_runs_on_mclusts_data():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "select_reference.py"), "--seeds", "1",
         "--max-iter", "5", "--setups", "hierarchical", "k-means||x2"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "faithful" in result.stdout and "diabetes" in result.stdout
    assert "k-means||x2" in result.stdout


def test_online_kernel_benchmark_runs_at_a_tiny_size():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "online_kernel.py"), "--rows", "20000",
         "--repeats", "1"],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "E-step of all rows" in result.stdout
    assert result.stdout.count("x the E-step") == 2


def test_time_to_converge_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "converge.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_converge.py"), "--rows", "3000",
         "--max-passes", "40", "--max-incremental", "10", "--chunk-rows", "1000",
         "--warm-passes", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )
    assert "plain batch EM" in result.stdout and "incremental EM" in result.stdout
    report = json.loads(out.read_text())
    for case in ("overlapping", "separated"):
        rows = report["cases"][case]["rows"]
        assert {"plain batch EM", "daarem", "squarem", "scikit-learn"} <= set(rows)
        assert rows["plain batch EM"]["1e-06"] is not None


def test_peers_benchmark_runs_without_the_peers_at_a_tiny_size(tmp_path):
    out = tmp_path / "peers.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--rows", "4000", "--extra",
         "1", "--peers", "", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    assert "to conv. s" in result.stdout
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["streamgmm", "scikit-learn"]
    ours, theirs = results["streamgmm"], results["scikit-learn"]
    assert ours["seconds_per_iteration"] > 0 and ours["converged_seconds"] > 0
    # Same start and the same stopping rule: the same iterations and likelihood.
    assert ours["n_iter"] == theirs["n_iter"] >= 1
    assert abs(ours["mean_log_likelihood"] - theirs["mean_log_likelihood"]) < 1e-8


def test_missing_values_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "missing.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]))
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "missing_values.py"), "--rows", "3000",
         "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )
    report = json.loads(out.read_text())
    assert set(report["iteration"]) == {"diag", "full"}
    for cov in ("diag", "full"):
        assert report["iteration"][cov]["cpu_ratio"] > 0
        assert [case["patterns"] for case in report[f"patterns_{cov}"]][-1] == 2516
        assert report[f"organisations_{cov}"]["split_ratio"] > 0
