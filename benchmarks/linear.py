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
gradient descent on the mean squared error; 10 with --quick): td on the device,
PyTorch eager on the same GPU when installed, td on the CPU; seconds per step
and the final loss of each (they must agree).

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
from tinygrad_dot import gemm  # noqa: E402
from tinygrad_dot._files import atomic_write_json  # noqa: E402
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
    """Seconds per full-batch gradient step of least squares, td on `device` (and on the
    CPU), PyTorch eager on the GPU when there is one; the final losses must agree."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)).astype(np.float32)[:, None]
    lr = 0.1
    out = {}
    for where in dict.fromkeys((device, "cpu")):
        Xt, yt = td.tensor(X, device=where), td.tensor(y, device=where)
        w = td.zeros(d, 1, device=where, requires_grad=True)
        start = time.perf_counter()
        for _ in range(steps):
            loss = ((Xt @ w - yt) ** 2).mean()
            loss.backward()
            with td.no_grad():
                w -= lr * w.grad
            w.grad = None
        final = float(loss)  # the read-back waits for the device
        out[f"td {where}"] = {"seconds_per_step": (time.perf_counter() - start) / steps, "final_loss": final}
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available() and device.startswith("cuda"):
        Xg, yg = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
        w = torch.zeros(d, 1, device="cuda", requires_grad=True)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            loss = ((Xg @ w - yg) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                w -= lr * w.grad
            w.grad = None
        final = float(loss)
        out["torch eager cuda"] = {"seconds_per_step": (time.perf_counter() - start) / steps, "final_loss": final}
    return out


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
    for name, row in report["linear_regression"].items():
        print(f"linear regression, {name:17s} {row['seconds_per_step'] * 1e3:9.3f} ms/step  "
              f"final loss {row['final_loss']:.6f}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
