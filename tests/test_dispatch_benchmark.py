"""benchmarks/dispatch.py runs on a machine without a GPU and writes its JSON: the
host cost per call of the GPU path (device "emu" with launches skipped), of the
CPU path and of NumPy, with the issue's targets read in the same run. (Speed is
judged by the benchmark's figures, not here: this checks it works.)"""
import importlib
import json

import numpy as np

from tinygrad_dot import gemm
from tinygrad_dot.runtime.emulated import DryRunRuntime


def test_the_dry_run_plans_and_packs_but_launches_nothing():
    dispatch = gemm.GemmDispatch(DryRunRuntime())
    a, b = np.ones((8, 8), np.float32), np.ones((8, 8), np.float32)
    for kernel in ("auto", "warp_tiled"):
        out = dispatch.matmul(a, b, kernel)
        assert out.shape == (8, 8) and not out.any()  # zeroed, never computed
    assert len(dispatch.planned) == 2


def test_the_benchmark_writes_its_figures(tmp_path):
    bench = importlib.import_module("benchmarks.dispatch")
    out = tmp_path / "dispatch.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["kernels_sha256"] and (report["gpu"] is None) == (not gemm.available())
    host = report["host"]
    for label in bench.SHAPES:
        for case in ("gpu-path td.matmul auto", "gpu-path td.matmul warp_tiled", "cpu td.matmul", "numpy.matmul"):
            assert host[f"{case} {label}"] > 0
    targets = report["targets"]
    assert targets["ratio_gpu_path_to_cpu_path_8x8x8"] == targets["gpu_path_auto_8x8x8_us"] / targets[
        "cpu_path_8x8x8_us"]
