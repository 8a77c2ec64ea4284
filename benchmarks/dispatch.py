#!/usr/bin/env python3
"""Host cost per call of td.matmul: what Python spends before a kernel runs.

    python benchmarks/dispatch.py [--quick] [--out benchmarks/results/cpu-dispatch.json]

On any machine:
  - td.matmul on the GPU path with launches skipped: device "emu" on a
    DryRunRuntime (benchmark-only: planning, the plan cache, output allocation and
    argument packing run as for a GPU; the kernels return at once), for kernel="auto"
    and a named rung, at 8x8x8, 64x64x64 and 256x784x10 (a minibatch times the
    weights of a 784-pixel, 10-class model);
  - td.matmul on the CPU (NumPy) at the same shapes, and NumPy's own matmul;
  - the GEMM dispatch alone (gemm.GemmDispatch.matmul on raw arrays).
On a GPU, in the same run: td.matmul on "cuda", cupy.matmul and torch.matmul at
64x64x64 and 256x784x10, each by wall clock per call (the host's share: calls
issued back to back, one synchronize at the end) and by CUDA events (device time).

Method: per case, a warm-up (which plans and tunes), then 7 rounds of N calls
timed with perf_counter, the rounds of all cases interleaved (ABCABC...) so a
noisy neighbour hits every case alike; the median round is reported, in µs per
call. The targets (issue 14) are read in the same run: the GPU path's host cost
at most 15 µs and at most 2x the CPU path at 8x8.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's package

import numpy as np  # noqa: E402

import tinygrad_dot as td  # noqa: E402
from tinygrad_dot import gemm  # noqa: E402
from tinygrad_dot._files import atomic_write_json  # noqa: E402
from tinygrad_dot.backends.emulated_backend import EmulatedBackend  # noqa: E402
from tinygrad_dot.gemm.sources import kernels_sha256  # noqa: E402
from tinygrad_dot.runtime.emulated import DryRunRuntime  # noqa: E402

SHAPES = {"8x8x8": (8, 8, 8), "64x64x64": (64, 64, 64), "256x784x10": (256, 784, 10)}
GPU_SHAPES = ("64x64x64", "256x784x10")
TARGET_US, TARGET_RATIO = 15.0, 2.0
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "cpu-dispatch.json")


def interleaved_us(cases: dict, calls: int, rounds: int = 7) -> dict:
    """{name: median µs per call}, rounds of every case interleaved."""
    for fn in cases.values():
        for _ in range(max(10, calls // 20)):  # warm-up: plans, tunes, fills the caches
            fn()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(t) for name, t in times.items()}


def host_cases(calls: int) -> dict:
    dry = EmulatedBackend(runtime=DryRunRuntime())  # "emu" whose launches do nothing
    rng = np.random.default_rng(0)
    cases = {}
    for label, (m, k, n) in SHAPES.items():
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        ta, tb = td.tensor(a, device=dry), td.tensor(b, device=dry)
        ca, cb = td.tensor(a), td.tensor(b)
        dispatch = dry.gemm
        cases[f"gpu-path td.matmul auto {label}"] = lambda ta=ta, tb=tb: td.matmul(ta, tb)
        cases[f"gpu-path td.matmul warp_tiled {label}"] = lambda ta=ta, tb=tb: td.matmul(ta, tb, kernel="warp_tiled")
        cases[f"gemm dispatch alone auto {label}"] = lambda a=a, b=b, d=dispatch: d.matmul(a, b, "auto")
        cases[f"cpu td.matmul {label}"] = lambda ca=ca, cb=cb: td.matmul(ca, cb)
        cases[f"numpy.matmul {label}"] = lambda a=a, b=b: np.matmul(a, b)
    return interleaved_us(cases, calls)


def gpu_cases(calls: int) -> dict | None:
    """Ours vs CuPy vs PyTorch on the GPU (None without one)."""
    if not gemm.available():
        return None
    import cupy as cp

    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(1)
    runtime = gemm.dispatcher("cuda:0").runtime
    out = {}
    for label in GPU_SHAPES:
        m, k, n = SHAPES[label]
        a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
        ta, tb = td.tensor(a, device="cuda"), td.tensor(b, device="cuda")
        ca, cb = cp.asarray(a), cp.asarray(b)
        fns = {"td.matmul": lambda: td.matmul(ta, tb), "cupy.matmul": lambda: cp.matmul(ca, cb)}
        if torch is not None and torch.cuda.is_available():
            xa, xb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            fns["torch.matmul"] = lambda: torch.matmul(xa, xb)
        for name, fn in fns.items():
            for _ in range(50):
                fn()
            cp.cuda.Device().synchronize()
            walls = []
            for _ in range(7):
                start = time.perf_counter()
                for _ in range(calls):
                    fn()
                walls.append((time.perf_counter() - start) / calls * 1e6)  # issue rate: the host's share
                cp.cuda.Device().synchronize()
            events = [runtime.time_ms(fn, calls) * 1e3 for _ in range(7)]  # µs per call on the GPU's clock
            out[f"{name} {label}"] = {"wall_us": statistics.median(walls), "events_us": statistics.median(events)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls per round (noisier)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file to write (atomically)")
    args = parser.parse_args(argv)
    calls = 500 if args.quick else 5000
    host = host_cases(calls)
    width = max(map(len, host))
    print(f"{'case':{width}s}  µs/call")
    for name, us in host.items():
        print(f"{name:{width}s}  {us:7.2f}")
    gpu_path, cpu_path = host["gpu-path td.matmul auto 8x8x8"], host["cpu td.matmul 8x8x8"]
    worst = max(us for name, us in host.items() if name.startswith("gpu-path"))
    verdict = {"gpu_path_auto_8x8x8_us": gpu_path, "cpu_path_8x8x8_us": cpu_path,
               "ratio_gpu_path_to_cpu_path_8x8x8": gpu_path / cpu_path,
               "worst_gpu_path_us": worst,
               "meets_15us": worst <= TARGET_US, "meets_2x_cpu": gpu_path <= TARGET_RATIO * cpu_path}
    print(f"\nGPU path (launches skipped) / CPU path at 8x8x8: {verdict['ratio_gpu_path_to_cpu_path_8x8x8']:.2f} "
          f"(target <= {TARGET_RATIO}); worst GPU-path case {worst:.1f} µs (target <= {TARGET_US})")
    gpu = gpu_cases(calls)
    if gpu is None:
        print("no GPU: the GPU comparison (ours vs cupy.matmul vs torch.matmul) was not run")
    else:
        for name, row in gpu.items():
            print(f"{name:30s} wall {row['wall_us']:7.2f} µs/call   events {row['events_us']:7.2f} µs/call")
    report = {
        "benchmark": "dispatch", "unit": "microseconds per call (median of 7 interleaved rounds)",
        "calls_per_round": calls, "host": host, "targets": verdict, "gpu": gpu,
        "kernels_sha256": kernels_sha256(), "python": platform.python_version(), "numpy": np.__version__,
        "machine": platform.machine(), "cpu_count": os.cpu_count(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
