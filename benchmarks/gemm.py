#!/usr/bin/env python3
"""GEMM benchmark: the project's kernels against cuBLAS on the same GPU, same run.

    python benchmarks/gemm.py [--quick] [--out-dir DIR] [--runs N]
    python benchmarks/gemm.py --render FILE.json   (re-render table and plot)

Method: CUDA events around groups of back-to-back launches (at least 20 launches
in all, a group spanning ~1 ms; ms per launch = group time / count; planning and
autotuning done once outside the timed loop, cuBLAS timed the same way into a
preallocated output), warm-up first (which also autotunes and compiles), the
median of 5 groups, inputs rotated over enough
copies to exceed twice the L2 cache (so small sizes are not flattered), random
normal data. cuBLAS is cupy.matmul with CUPY_TF32 unset (true FP32). Errors are
max |C - C_ref| / max |C_ref| against a float64 product. NumPy on the CPU is
timed where it takes under a few seconds.

Writes <out-dir>/<gpu-name>.json (GPU, CuPy/CUDA versions, git commit,
kernels_sha256, per case: dtype, shape, layout, kernel, config, TFLOP/s of ours
and cuBLAS, ratio, error), <gpu-name>.md (Markdown table) and <gpu-name>.png
(TFLOP/s against size with the peak line; needs matplotlib). Without a GPU it
says so and exits 0.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.pop("CUPY_TF32", None)  # keep cuBLAS in true FP32 (must precede the CuPy import)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tinygrad_dot import gemm  # noqa: E402
from tinygrad_dot.gemm import sources  # noqa: E402

# Datasheet peaks (TFLOP/s, CUDA cores, no tensor cores) by GPU name fragment.
PEAKS = {"H100": {"float32": 67.0, "float64": 34.0}, "H200": {"float32": 67.0, "float64": 34.0}}
NUMPY_MAX_FLOP = 2e11  # time NumPy only where it takes ~1 s or less


def cases(quick: bool):
    """(group, dtype, (batch, M, N, K), layout)."""
    out = []
    square = (1024, 4096) if quick else (512, 1024, 2048, 4096, 8192)
    rect = [(1024, 8192, 1024)] if quick else [(8192, 1024, 8192), (1024, 8192, 1024)]
    layout_size = 2048 if quick else 4096
    batched = (16, 512, 512, 512) if quick else (64, 512, 512, 512)
    for dtype in ("float32", "float64"):
        out += [("square", dtype, (1, n, n, n), "NN") for n in square]
        out += [("rectangular", dtype, (1, *mnk), "NN") for mnk in rect]
        out += [("layouts", dtype, (1, layout_size, layout_size, layout_size), lay) for lay in ("NT", "TN", "TT")]
        out += [("batched", dtype, batched, "NN")]
    return out


def ladder_cases(quick: bool):
    n = 2048 if quick else 4096
    return [("ladder", dtype, (1, n, n, n), "NN") for dtype in ("float32", "float64")]


def make_operands(cp, rng_seed, dtype, shape, layout, copies):
    batch, M, N, K = shape
    rng = cp.random.default_rng(rng_seed)
    sets = []
    for _ in range(copies):
        def one(rows, cols, trans):
            dims = (cols, rows) if trans else (rows, cols)
            full = (batch, *dims) if batch > 1 else dims
            x = rng.standard_normal(full, dtype=dtype)
            return cp.swapaxes(x, -1, -2) if trans else x
        sets.append((one(M, K, layout[0] == "T"), one(K, N, layout[1] == "T")))
    return sets


def rotation_copies(cp, shape, itemsize):
    batch, M, N, K = shape
    set_bytes = batch * (M * K + K * N) * itemsize
    l2 = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id).get("l2CacheSize", 50 << 20)
    free = cp.cuda.runtime.memGetInfo()[0]
    want = math.ceil(2 * l2 / set_bytes)
    return max(1, min(want, 16, int(0.25 * free // set_bytes)))


def time_gpu(runtime, runs_per_set, runs):
    """Seconds per call. runs_per_set: one zero-argument callable per rotated operand
    set. After a warm-up (which also autotunes / compiles), each of 5 groups times
    at least runs/5 calls (more for short calls, so a group spans ~1 ms) cycling
    over the sets on the runtime's clock (ONE pair of CUDA events per group) and
    divides by the count; the median group is reported. Host overhead per call
    thus overlaps GPU work instead of being added to every short launch."""
    from tinygrad_dot.gemm.autotune import launches_per_group

    for fn in runs_per_set[:2]:
        fn()
    state = {"i": 0}

    def one():
        runs_per_set[state["i"] % len(runs_per_set)]()
        state["i"] += 1

    def group_ms(n):
        return runtime.time_ms(one, n)

    n = launches_per_group(group_ms(1), at_least=-(-runs // 5))
    return statistics.median(group_ms(n) for _ in range(5)) / 1e3


def rel_err(cp, c, ref):
    return float(cp.max(cp.abs(c.astype(cp.float64) - ref)) / max(float(cp.max(cp.abs(ref))), 1e-300))


def numpy_seconds(a, b):
    ah, bh = a.get(), b.get()
    t = time.perf_counter()
    np.matmul(ah, bh)
    first = time.perf_counter() - t
    if first > 0.2:
        return first
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        np.matmul(ah, bh)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run_case(cp, group, dtype, shape, layout, kernel, runs, with_numpy):
    batch, M, N, K = shape
    flop = 2.0 * batch * M * N * K
    sets = make_operands(cp, 0, dtype, shape, layout, rotation_copies(cp, shape, np.dtype(dtype).itemsize))
    a, b = sets[0]
    # Ours: plan, config choice (autotuning) and output allocation once per operand
    # set, then only the launch is timed. cuBLAS: cupy.matmul into a preallocated
    # output, the same N-calls-per-event-pair way.
    ours_runs = [gemm.prepare(x, y, kernel=kernel) for x, y in sets]
    config = ours_runs[0].config.label()
    cublas_out = [cp.empty((*((batch,) if batch > 1 else ()), M, N), x.dtype) for x, _ in sets]
    cublas_runs = [lambda x=x, y=y, o=o: cp.matmul(x, y, out=o) for (x, y), o in zip(sets, cublas_out)]
    runtime = ours_runs[0].runtime
    ours = time_gpu(runtime, ours_runs, runs)
    cublas = time_gpu(runtime, cublas_runs, runs)
    del ours_runs, cublas_runs, cublas_out
    ref = cp.matmul(a.astype(cp.float64), b.astype(cp.float64))
    err = rel_err(cp, gemm.matmul(a, b, kernel=kernel), ref)
    cublas_err = rel_err(cp, cp.matmul(a, b), ref)
    row = dict(group=group, dtype=dtype, batch=batch, M=M, N=N, K=K, layout=layout, kernel=kernel,
               config=config,
               ours_tflops=flop / ours / 1e12, cublas_tflops=flop / cublas / 1e12, ratio=cublas / ours,
               ours_ms=ours * 1e3, cublas_ms=cublas * 1e3, max_rel_err=err, cublas_max_rel_err=cublas_err,
               numpy_cpu_tflops=None, runs=runs, rotated_copies=len(sets))
    if with_numpy and flop <= NUMPY_MAX_FLOP:
        row["numpy_cpu_tflops"] = flop / numpy_seconds(a, b) / 1e12
    del sets, a, b, ref
    cp.get_default_memory_pool().free_all_blocks()
    return row


def environment(cp):
    facts = gemm.dispatcher(f"cuda:{cp.cuda.Device().id}").runtime.facts
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "kernels", "tinygrad_dot/gemm"],
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", None
    return dict(gpu_name=facts.name, compute_capability=facts.cc, sm_count=facts.sm_count,
                cupy_version=cp.__version__, cuda_runtime_version=cp.cuda.runtime.runtimeGetVersion(),
                cuda_driver_version=cp.cuda.runtime.driverGetVersion(), git_commit=commit,
                kernels_or_gemm_dirty=dirty, kernels_sha256=sources.kernels_sha256(),
                date_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                host=platform.node(), numpy_version=np.__version__,
                autotune=os.environ.get("TINYGRAD_DOT_AUTOTUNE", "1"))


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def markdown(doc) -> str:
    env = doc["environment"]
    lines = [f"GEMM benchmark on {env['gpu_name']} (sm_{env['compute_capability']}), {env['date_utc']}, "
             f"commit {env['git_commit'][:12]}, kernels sha256 {env['kernels_sha256'][:12]}, "
             f"CuPy {env['cupy_version']}. Median of 5 groups of >= "
             f"{(doc['cases'][0]['runs'] + 4) // 5 if doc['cases'] else '?'} "
             "back-to-back launches between one pair of CUDA events, rotated inputs.", "",
             "| group | dtype | batch x M x N x K | layout | kernel | config | ours TFLOP/s | cuBLAS TFLOP/s | "
             "ours/cuBLAS | max rel err | NumPy CPU TFLOP/s |",
             "|---|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in doc["cases"]:
        shape = f"{r['batch']}x{r['M']}x{r['N']}x{r['K']}" if r["batch"] > 1 else f"{r['M']}x{r['N']}x{r['K']}"
        npc = f"{r['numpy_cpu_tflops']:.3f}" if r.get("numpy_cpu_tflops") else "-"
        lines.append(f"| {r['group']} | {r['dtype']} | {shape} | {r['layout']} | {r['kernel']} | `{r['config']}` | "
                     f"{r['ours_tflops']:.2f} | {r['cublas_tflops']:.2f} | {r['ratio']:.3f} | "
                     f"{r['max_rel_err']:.1e} | {npc} |")
    return "\n".join(lines) + "\n"


def plot(doc, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return False
    env = doc["environment"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    peaks = next((v for k, v in PEAKS.items() if k in env["gpu_name"]), {})
    for dtype, color in (("float32", "tab:blue"), ("float64", "tab:red")):
        rows = sorted((r for r in doc["cases"] if r["group"] == "square" and r["dtype"] == dtype),
                      key=lambda r: r["M"])
        if not rows:
            continue
        xs = [r["M"] for r in rows]
        ax.plot(xs, [r["ours_tflops"] for r in rows], "o-", color=color, label=f"tinygrad_dot {dtype}")
        ax.plot(xs, [r["cublas_tflops"] for r in rows], "s--", color=color, alpha=0.6, label=f"cuBLAS {dtype}")
        if dtype in peaks:
            ax.axhline(peaks[dtype], color=color, linestyle=":", label=f"{dtype} peak {peaks[dtype]:g}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("M = N = K")
    ax.set_ylabel("TFLOP/s")
    ax.set_title(f"GEMM on {env['gpu_name']} ({env['date_utc'][:10]}, {env['git_commit'][:8]})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_outputs(doc, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / slug(doc["environment"]["gpu_name"])
    base.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    table = markdown(doc)
    base.with_suffix(".md").write_text(table)
    plot(doc, base.with_suffix(".png"))
    print(table)
    print(f"wrote {base}.json, .md" + (", .png" if base.with_suffix(".png").exists() else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer, smaller cases (a few minutes with compiling)")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per case (at least 20)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--no-numpy", action="store_true", help="skip the NumPy CPU column")
    ap.add_argument("--render", type=Path, help="re-render table and plot from a results JSON and exit")
    args = ap.parse_args(argv)
    if args.render:
        write_outputs(json.loads(args.render.read_text()), args.render.parent)
        return 0
    if args.runs < 20:
        ap.error("--runs must be at least 20")
    if not gemm.available():
        print("gemm benchmark: no CUDA GPU with CuPy available here; nothing measured (exit 0).")
        return 0
    import cupy as cp

    doc = dict(environment=environment(cp), quick=args.quick, cases=[])
    print(f"GEMM benchmark on {doc['environment']['gpu_name']}; {'quick' if args.quick else 'full'} mode", flush=True)
    todo = [(c, "auto") for c in cases(args.quick)]
    todo += [(c, k) for c in ladder_cases(args.quick) for k in gemm.kernel_names(c[1])]
    for (group, dtype, shape, layout), kernel in todo:
        t = time.perf_counter()
        row = run_case(cp, group, dtype, shape, layout, kernel, args.runs, not args.no_numpy)
        doc["cases"].append(row)
        print(f"  {group:11s} {dtype} {shape} {layout} {kernel:16s} ours {row['ours_tflops']:6.2f} "
              f"cuBLAS {row['cublas_tflops']:6.2f} TFLOP/s ratio {row['ratio']:.3f} err {row['max_rel_err']:.1e} "
              f"[{row['config']}] ({time.perf_counter() - t:.1f} s)", flush=True)
    write_outputs(doc, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
