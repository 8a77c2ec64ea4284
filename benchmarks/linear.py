#!/usr/bin/env python3
"""A linear model's products at memory speed: ours against cuBLAS and the copy bandwidth.

    python benchmarks/linear.py [--quick] [--device cuda|emu] [--out FILE.json]

Bandwidth: X[n, 256] float32 (n = 2**22; 2**13 with --quick), k in (1, 10, 64):
the forward Y = X W^T and the weight gradient dW = G^T X, through td's GEMM dispatch
(kernel="auto": the skinny kernels of kernels/linear_skinny.cu for k <= 16, the
ladder otherwise) and through the vendor library (cuBLAS via CuPy), each timed on
the device's clock (CUDA events around groups of launches, median of 5 after a
warm-up); bytes moved = X + the narrow operand + the output; GB/s against the
device's copy bandwidth measured in the same run (X copied into a preallocated
array). Training: full-batch linear regression on X[n, 256] (100 steps of
gradient descent on the mean squared error; 10 with --quick): td on the device
through the tape, fused (F.linear_mse_loss) and fused + CUDA graph (one step
captured, replayed for the others), PyTorch eager on the same GPU when
installed, td on the CPU; seconds per step after the first (which plans,
compiles and captures, and is reported apart), the final loss of each (they
must agree), and PyTorch's time over each td variant's (issue 15's target:
1.3x or more for fused + graph).

On "emu" (no GPU) the script runs end to end on the emulated kernels: the figures
are the emulator's and mean nothing about a GPU; the point is that the script
works. JSON (with kernels_sha256) to --out.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout's package

import numpy as np  # noqa: E402

import tinygrad_dot as td  # noqa: E402
import tinygrad_dot.nn.functional as F  # noqa: E402
from tinygrad_dot import gemm  # noqa: E402
from tinygrad_dot._files import atomic_write_json  # noqa: E402
from tinygrad_dot.bench.train import CapturedStep  # noqa: E402
from tinygrad_dot.gemm.autotune import launches_per_group  # noqa: E402
from tinygrad_dot.gemm.skinny import SkinnyCall  # noqa: E402
from tinygrad_dot.gemm.sources import kernels_sha256  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "linear.json")


def device_ms(runtime, fn, groups: int = 5) -> float:
    """Median ms per call over `groups` groups of back-to-back calls, after a warm-up."""
    fn()
    n = launches_per_group(runtime.time_ms(fn, 1))
    return statistics.median(runtime.time_ms(fn, n) for _ in range(groups))


def bandwidth(device: str, n: int, d: int = 256, outputs=(1, 10, 64), groups: int = 5) -> dict:
    runtime = gemm.dispatcher(device).runtime
    xp = runtime.xp
    rng = np.random.default_rng(0)
    X = xp.asarray(rng.standard_normal((n, d)).astype(np.float32))
    copy = xp.empty_like(X)
    copy_ms = device_ms(runtime, lambda: copy.__setitem__(Ellipsis, X), groups)
    item = X.itemsize
    rows = {"copy_GBps": 2 * X.nbytes / copy_ms / 1e6, "cases": []}
    vendor = runtime.reference_matmul
    for k in outputs:
        W = xp.asarray(rng.standard_normal((k, d)).astype(np.float32))
        G = xp.asarray(rng.standard_normal((n, k)).astype(np.float32))
        for name, ours, theirs, nbytes, ref in (
                ("forward X W^T", lambda W=W: gemm.matmul(X, W.T), lambda W=W: vendor(X, W.T),
                 (n * d + k * d + n * k) * item, lambda W=W: X.astype(np.float64) @ W.T.astype(np.float64)),
                ("gradient G^T X", lambda G=G: gemm.matmul(G.T, X), lambda G=G: vendor(G.T, X),
                 (n * d + n * k + k * d) * item, lambda G=G: G.T.astype(np.float64) @ X.astype(np.float64))):
            out, expect = ours(), ref()
            err = float(xp.max(xp.abs(out - expect)) / xp.max(xp.abs(expect)))
            ours_ms, theirs_ms = device_ms(runtime, ours, groups), device_ms(runtime, theirs, groups)
            a, b = (X, W.T) if name.startswith("forward") else (G.T, X)
            call = gemm.dispatcher(device).plan(a, b)
            rows["cases"].append({
                "product": name, "n": n, "d": d, "k": k, "max_rel_err": err,
                "ours_kernel": f"skinny_{call.kind}" if isinstance(call, SkinnyCall) else call.config.label(),
                "ours_GBps": nbytes / ours_ms / 1e6, "vendor_GBps": nbytes / theirs_ms / 1e6,
                "ours_fraction_of_copy": nbytes / ours_ms / 1e6 / rows["copy_GBps"],
                "ours_over_vendor": theirs_ms / ours_ms})
    return rows


def linear_regression_steps(device: str, n: int, steps: int, d: int = 256) -> dict:
    """Seconds per full-batch gradient step of least squares: td on `device` three ways
    (the tape's ((X @ w - y) ** 2).mean(); "fused", F.linear_mse_loss with a (1, d)
    weight: one launch forward with the loss as epilogue, one dW pass backward;
    "fused+graph", that step captured in a CUDA graph and replayed), td's tape on the
    CPU, PyTorch eager on the GPU when there is one. Every variant takes the same
    `steps` steps from w = 0, so the final losses must agree."""
    if steps < 2:
        raise ValueError(f"steps={steps}: at least 2 (the first step is timed apart, see _timed_steps)")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)).astype(np.float32)[:, None]
    lr = 0.1
    out = {}
    for where in dict.fromkeys((device, "cpu")):
        Xt, yt = td.tensor(X, device=where), td.tensor(y, device=where)
        out[f"td {where}"] = _timed_steps(_td_step(Xt, yt, False, lr), steps)
        if where != "cpu":  # the fused step's kernels run on GPUs and emu; "cpu" has no graph to capture
            out[f"td {where} fused"] = _timed_steps(_td_step(Xt, yt, True, lr), steps)
            out[f"td {where} fused+graph"] = _timed_steps(CapturedStep(_td_step(Xt, yt, True, lr), where), steps)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available() and device.startswith("cuda"):
        Xg, yg = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
        w = torch.zeros(d, 1, device="cuda", requires_grad=True)

        def torch_step():
            loss = ((Xg @ w - yg) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w.sub_(lr * w.grad)
            w.grad = None
            return loss
        out["torch eager cuda"] = _timed_steps(torch_step, steps)
    return out


def _td_step(X, y, fused: bool, lr: float):
    """One gradient step from a weight of zeros, returning its loss (computed before the update)."""
    w = td.zeros(*((1, X.shape[1]) if fused else (X.shape[1], 1)), device=X.device, requires_grad=True)

    def step():
        loss = F.linear_mse_loss(X, w, y) if fused else ((X @ w - y) ** 2).mean()
        loss.backward()
        with td.no_grad():
            w.sub_(lr * w.grad)  # (w -= ... would make w local to step)
        w.grad = None
        return loss
    return step


def _timed_steps(step, steps: int) -> dict:
    """Run `step` (returning the loss) `steps` times. The first step is timed apart: it
    plans, compiles and autotunes (and for a graph, captures; on PyTorch it creates the
    cuBLAS handle), one-off costs a per-step figure should not spread. Reading a loss
    waits for the device, so both times are complete."""
    start = time.perf_counter()
    float(step())
    first = time.perf_counter()
    for _ in range(steps - 1):
        loss = step()
    final = float(loss)
    return {"seconds_per_step": (time.perf_counter() - first) / (steps - 1), "first_step_seconds": first - start,
            "final_loss": final}


def speedups(rows: dict) -> dict:
    """PyTorch eager's seconds per step over each td variant on the GPU (above 1: td is
    faster); issue 15's target is 1.3 or more for "td cuda... fused+graph"."""
    theirs = rows.get("torch eager cuda")
    if theirs is None:
        return {}
    return {f"torch eager cuda / {name}": theirs["seconds_per_step"] / row["seconds_per_step"]
            for name, row in rows.items() if name.startswith("td cuda")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--device", default=None, help="cuda (default when a GPU is present) or emu")
    parser.add_argument("--rows", type=int, default=None, help="rows of X (default 2**22; 2**13 with --quick)")
    parser.add_argument("--features", type=int, default=256, help="columns of X (default 256)")
    parser.add_argument("--steps", type=int, default=None, help="gradient steps (default 100; 10 with --quick)")
    parser.add_argument("--outputs", default="1,10,64", help="the k of the products (comma-separated)")
    parser.add_argument("--groups", type=int, default=5, help="timed groups per figure (median)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    device = args.device or ("cuda:0" if gemm.available() else None)
    if device is None:
        print("no GPU: nothing to measure (run with --device emu to check the script on the emulator)")
        return 0
    n = args.rows or (2**13 if args.quick else 2**22)
    steps = args.steps or (10 if args.quick else 100)
    report = {"benchmark": "linear", "device": gemm.dispatcher(device).runtime.facts.name,
              "bandwidth": bandwidth(device, n, args.features, [int(k) for k in args.outputs.split(",")], args.groups),
              "linear_regression": linear_regression_steps(device, n, steps, args.features),
              "kernels_sha256": kernels_sha256(),
              "measured_on_gpu": device.startswith("cuda"),
              "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    bw = report["bandwidth"]
    print(f"copy bandwidth {bw['copy_GBps']:.1f} GB/s")
    for row in bw["cases"]:
        print(f"{row['product']:15s} k={row['k']:3d}  ours {row['ours_GBps']:8.1f} GB/s "
              f"({row['ours_fraction_of_copy']:.0%} of copy)  vendor {row['vendor_GBps']:8.1f} GB/s  "
              f"ours/vendor {row['ours_over_vendor']:.2f}x  err {row['max_rel_err']:.1e}")
    report["linear_regression_speedups"] = speedups(report["linear_regression"])
    for name, row in report["linear_regression"].items():
        print(f"linear regression, {name:24s} {row['seconds_per_step'] * 1e3:9.3f} ms/step  "
              f"(first step {row['first_step_seconds']:.3f} s)  final loss {row['final_loss']:.6f}")
    for name, ratio in report["linear_regression_speedups"].items():
        target = "  (issue 15's target: 1.3x or more)" if name.endswith("fused+graph") else ""
        print(f"  {name}: {ratio:.2f}x{target}")
    if not report["measured_on_gpu"]:
        print("(emulator figures: they say nothing about a GPU)")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
