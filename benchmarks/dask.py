"""td.models on a Dask cluster of this machine: 1 and 2 workers against the single-process fit.

    python benchmarks/dask.py            # 4,000,000 x 100 float32 in 16 chunks -> benchmarks/results/cpu-dask.json
    python benchmarks/dask.py --quick    # a small problem, 1 and 2 workers only: a smoke test (prints;
                                         # writes only with --out)

Per solver (exact least squares: LinearRegression; L-BFGS: LogisticRegression):
fit time in a single process (BLAS limited to one thread: the compute of one
worker), and on a LocalCluster of 1 and 2 worker processes (one thread each,
BLAS one thread: dask's default), the data generated on the workers from a
seed and persisted before the timed fits; the bytes the workers sent per
iteration (Dask's own counter, ``Worker.transfer_outgoing_bytes_total``: the
per-chunk results the client fetched plus any worker-to-worker transfer);
the coefficients' relative distance to the single-process fit; dask-ml's
``LogisticRegression`` (its lbfgs solver) on the same 2-worker cluster, with
both training accuracies. Then the out-of-core case: workers whose
``memory_limit`` is below the size of X (one worker must spill to disk, two
hold it in memory).

The single-process, 1-worker and 2-worker fits take turns (round robin, both
clusters up at once), so that a change in the machine's load hits every
configuration alike; times are the best of ``--repeats`` rounds (all are
recorded). The machine's own ceiling is measured too: one chunk's L-BFGS and
Gram work in 1 against 2 concurrent processes, without Dask. Nothing here is
estimated: every figure in the JSON is measured by this script in one run.
"""
from __future__ import annotations

import os
import sys

# This file is called dask.py: keep its directory off the import path, or `import dask` finds it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))  # the repository, for tinygrad_dot

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = os.path.join(_HERE, "results", "cpu-dask.json")


def make_data(n, d, chunks, seed=0):
    """X (n, d) float32 standard normal with column offsets, a regression target and 0/1 labels
    of a noisy linear model: lazy dask arrays, deterministic given the seed (any worker can
    recompute any chunk)."""
    import dask.array as da

    rng = da.random.default_rng(seed)
    rows = -(-n // chunks)
    X = rng.standard_normal((n, d), chunks=(rows, d), dtype=np.float32) + np.linspace(-1, 1, d, dtype=np.float32)
    true = np.random.default_rng(seed + 1).standard_normal(d).astype(np.float32) / np.sqrt(d)
    noise = rng.standard_normal(n, chunks=rows, dtype=np.float32)
    y = X @ true + 0.5 * noise
    labels = (X @ true + noise > 0).astype(np.int8)
    return X, y, labels


def _timed(fit, repeats):
    times, model = [], None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        model = fit()
        times.append(time.perf_counter() - start)
    return model, times


def _solvers(C):
    from tinygrad_dot.models import LinearRegression, LogisticRegression

    return {"exact": (LinearRegression, {}, "y"), "lbfgs": (LogisticRegression, {"C": C, "verbose": 1}, "labels")}


def _fit(cls, params, X, target, counts):
    """One fit; LogisticRegression's verbose line gives its number of loss evaluations."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        model = cls(**params).fit(X, target)
    found = re.search(r"(\d+) loss evaluations", text.getvalue())
    if found:
        counts.append(int(found.group(1)))
    return model


def single_process(X, y, labels, repeats, C, log):
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(limits=1):
        for name, (cls, params, target) in _solvers(C).items():
            evaluations = []
            model, times = _timed(lambda: _fit(cls, params, X, y if target == "y" else labels, evaluations), repeats)
            out[name] = {"seconds": min(times), "all_seconds": times, "coef": model.coef_,
                         "loss_evaluations": evaluations[-1] if evaluations else None,
                         "n_iter": int(model.n_iter_[0]) if hasattr(model, "n_iter_") else None,
                         "score": model.score(X, y if target == "y" else labels)}
            log(f"  single process, {name}: {min(times):.2f} s")
    return out


def _chunks_held(name, dask_worker):
    return sum(1 for key in dask_worker.data if isinstance(key, tuple) and key[0] == name)


def _spilled(dask_worker):
    slow = getattr(dask_worker.data, "slow", None)
    return len(slow) if slow is not None else 0


def _worker_bytes(client):
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


def on_cluster(workers, data, repeats, C, reference, log, memory_limit="auto", dask_ml=False):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        return measure(client, data, repeats, C, reference, log, dask_ml)


def measure(client, data, repeats, C, reference, log, dask_ml=False):
    """The timed fits on ``client``'s cluster: the data persisted first, then each solver."""
    import dask
    from distributed import wait

    workers = len(client.scheduler_info()["workers"])
    out = {}
    # Workers import td, scikit-learn and Dask's array code once, before any timed fit.
    client.run(importlib.import_module, "tinygrad_dot.distributed._models")
    X, y, labels = dask.persist(*data)
    wait([X, y, labels])
    out["X_chunks_per_worker"] = sorted(client.run(_chunks_held, X.name).values())
    out["keys_spilled_to_disk_after_persist"] = sum(client.run(_spilled).values())
    for name, (cls, params, target) in _solvers(C).items():
        before = _worker_bytes(client)
        evaluations = []
        model, times = _timed(lambda: _fit(cls, params, X, y if target == "y" else labels, evaluations), repeats)
        sent = (_worker_bytes(client) - before) / repeats
        iterations = int(model.n_iter_[0]) if hasattr(model, "n_iter_") else 1
        row = {"seconds": min(times), "all_seconds": times, "n_iter": iterations,
               "loss_evaluations": evaluations[-1] if evaluations else None,
               "worker_bytes_sent_per_fit": sent, "worker_bytes_sent_per_iteration": sent / iterations}
        if reference is not None:
            ref = reference[name]["coef"]
            row["coef_rel_error_vs_single_process"] = float(np.linalg.norm(model.coef_.astype(np.float64) - ref)
                                                            / np.linalg.norm(ref))
        out[name] = row
        log(f"  {workers} worker(s), {name}: {min(times):.2f} s, {iterations} iteration(s), "
            f"{sent / iterations:.0f} bytes sent by the workers per iteration")
        if name == "lbfgs":
            out[name]["score"] = model.score(X, labels)
    if dask_ml:
        out["dask_ml_lbfgs"] = _dask_ml(X, labels, C, 1, log)  # minutes per fit: one
    return out


def _dask_ml(X, labels, C, repeats, log):
    try:
        from dask_ml.linear_model import LogisticRegression
    except ImportError as exc:
        log(f"  dask-ml not installed ({exc}): skipped")
        return {"skipped": f"dask-ml not importable: {exc}"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, times = _timed(lambda: LogisticRegression(solver="lbfgs", C=C, max_iter=100).fit(X, labels), repeats)
        accuracy = float((model.predict(X) == labels).mean().compute())
    log(f"  dask-ml LogisticRegression(solver='lbfgs'): {min(times):.2f} s, accuracy {accuracy:.5f}")
    return {"seconds": min(times), "all_seconds": times, "score": accuracy, "solver": "lbfgs", "max_iter": 100}


def _kernel_loop(rows, d, repeats, start, results):
    """In a separate process: ``repeats`` times the per-chunk work of each solver on one chunk
    (L-BFGS: logistic_block, two passes over the chunk; exact: the Gram product), once the
    shared start time is reached; returns the seconds each took."""
    from threadpoolctl import threadpool_limits

    from tinygrad_dot.backends import get_backend
    from tinygrad_dot.models.solvers import logistic_block

    backend = get_backend("cpu")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, d), dtype=np.float32)
    Y = (rng.random((rows, 1)) < 0.5).astype(np.float32)
    w = np.full(rows, 1.0 / rows, dtype=np.float32)
    coef, intercept = rng.standard_normal((1, d)) * 0.1, np.zeros(1)
    with threadpool_limits(limits=1):
        logistic_block(backend, X, Y, w, coef, intercept)
        while time.time() < start:
            time.sleep(0.001)
        t0 = time.perf_counter()
        for _ in range(repeats):
            logistic_block(backend, X, Y, w, coef, intercept)
        t1 = time.perf_counter()
        for _ in range(max(1, repeats // 4)):
            X.T @ X
        t2 = time.perf_counter()
    results.put({"lbfgs": (t1 - t0) / repeats, "exact": (t2 - t1) / max(1, repeats // 4)})


def machine_ceiling(rows, d, repeats=40):
    """How much two processes get out of this machine against one, on the same per-chunk work
    with no Dask at all: each process works on its own chunk; the ratio of throughputs
    (2 x one process's time / two processes' time) bounds what 2 workers can reach."""
    import multiprocessing as mp

    context = mp.get_context("spawn")
    out = {}
    for processes in (1, 2):
        queue = context.Queue()
        start = time.time() + 8.0  # after the children have started and built their chunks
        children = [context.Process(target=_kernel_loop, args=(rows, d, repeats, start, queue))
                    for _ in range(processes)]
        for child in children:
            child.start()
        times = [queue.get(timeout=600) for _ in children]
        for child in children:
            child.join()
        out[processes] = {name: max(t[name] for t in times) for name in ("lbfgs", "exact")}
    return {name: {"seconds_per_chunk_1_process": out[1][name], "seconds_per_chunk_2_processes": out[2][name],
                   "throughput_2_vs_1": 2 * out[1][name] / out[2][name]} for name in ("lbfgs", "exact")}


def machine():
    import dask
    import distributed
    import psutil

    info = {"python": platform.python_version(), "numpy": np.__version__, "dask": dask.__version__,
            "distributed": distributed.__version__, "cpus": os.cpu_count(),
            "memory_bytes": psutil.virtual_memory().total, "platform": platform.platform()}
    try:
        import dask_ml

        info["dask_ml"] = dask_ml.__version__
    except ImportError:
        info["dask_ml"] = None
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    return info


def source_state():
    root = os.path.dirname(_HERE)

    def git(*args):
        return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True).stdout.strip()

    paths = ["tinygrad_dot/distributed", "tinygrad_dot/models", "benchmarks/dask.py"]
    return {"commit": git("rev-parse", "HEAD"), "measured_code_dirty": bool(git("status", "--porcelain", "--", *paths))}


def interleaved(data, arrays, repeats, C, log):
    """Single process, 1 worker and 2 workers, fit after fit in turn (round robin), so that a
    change in the machine's load hits every configuration alike; the best time of each."""
    from threadpoolctl import threadpool_limits
    from distributed import Client, LocalCluster, wait

    X_np, y_np, labels_np = arrays
    with contextlib.ExitStack() as stack:
        clients, persisted = {}, {}
        for workers in (1, 2):
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=40))
            client = stack.enter_context(Client(cluster, set_as_default=False))
            client.run(importlib.import_module, "tinygrad_dot.distributed._models")
            persisted[workers] = client.persist(list(data))
            with client.as_current():
                wait(persisted[workers])
            clients[workers] = client
        rows = {"single_process": {}, "1_workers": {}, "2_workers": {}}
        for workers in (1, 2):
            rows[f"{workers}_workers"]["X_chunks_per_worker"] = sorted(
                clients[workers].run(_chunks_held, persisted[workers][0].name).values())
        for _ in range(repeats):
            for config in ("single_process", "1_workers", "2_workers"):
                for name, (cls, params, target) in _solvers(C).items():
                    evaluations = []
                    if config == "single_process":
                        with threadpool_limits(limits=1):
                            gc.collect()
                            start = time.perf_counter()
                            model = _fit(cls, params, X_np, y_np if target == "y" else labels_np, evaluations)
                            seconds = time.perf_counter() - start
                        sent = None
                        if name == "lbfgs":
                            rows[config].setdefault(name, {"all_seconds": []})["score"] = model.score(X_np, labels_np)
                    else:
                        client = clients[int(config[0])]
                        X, y, labels = persisted[int(config[0])]
                        before = _worker_bytes(client)
                        with client.as_current():
                            gc.collect()
                            start = time.perf_counter()
                            model = _fit(cls, params, X, y if target == "y" else labels, evaluations)
                            seconds = time.perf_counter() - start
                        sent = _worker_bytes(client) - before
                    row = rows[config].setdefault(name, {"all_seconds": []})
                    row["all_seconds"].append(seconds)
                    row["seconds"] = min(row["all_seconds"])
                    row["n_iter"] = int(model.n_iter_[0]) if hasattr(model, "n_iter_") else 1
                    row["loss_evaluations"] = evaluations[-1] if evaluations else None
                    row["coef"] = model.coef_.astype(np.float64)
                    if sent is not None:
                        row["worker_bytes_sent_per_fit"] = sent
                        row["worker_bytes_sent_per_iteration"] = sent / row["n_iter"]
                    log(f"  {config}, {name}: {seconds:.2f} s")
        for config in ("1_workers", "2_workers"):
            X, y, labels = persisted[int(config[0])]
            with clients[int(config[0])].as_current():
                model = _solvers(C)["lbfgs"][0](C=C).fit(X, labels)
                rows[config]["lbfgs"]["score"] = model.score(X, labels)
        with clients[2].as_current():
            rows["2_workers"]["dask_ml_lbfgs"] = _dask_ml(persisted[2][0], persisted[2][2], C, 1, log)
    for config in ("1_workers", "2_workers"):
        for name in ("exact", "lbfgs"):
            ref, coef = rows["single_process"][name]["coef"], rows[config][name]["coef"]
            rows[config][name]["coef_rel_error_vs_single_process"] = float(np.linalg.norm(coef - ref) /
                                                                           np.linalg.norm(ref))
    for config in rows.values():
        for name in ("exact", "lbfgs"):
            config[name].pop("coef")
    return rows


def run(quick=False, repeats=3, C=1.0, out_path=None, log=print):
    import dask

    from tinygrad_dot.gemm.sources import kernels_sha256

    n, d, chunks = (40_000, 20, 4) if quick else (4_000_000, 100, 16)
    state = source_state()
    load_before = os.getloadavg()[0]  # other processes on this machine: recorded, not controlled
    data = make_data(n, d, chunks)
    x_bytes = n * d * 4
    log(f"problem: {n} x {d} float32 in {chunks} chunks ({x_bytes / 1e9:.2f} GB)")
    arrays = dask.compute(*data, scheduler="threads")
    rows = interleaved(data, arrays, repeats, C, log)
    del arrays
    gc.collect()
    single = rows.pop("single_process")
    clusters = rows
    # Out of core: each worker's memory_limit is 0.6 x the size of X + 0.8 GB (a worker process with
    # td, scikit-learn and Dask loaded takes about 0.3 GB before any data), so one worker cannot hold X
    # and spills chunks to disk, and two hold it in memory (under dask's spill thresholds). Quick mode's
    # X is too small for this to hold; it only runs the code.
    limit = int(0.6 * x_bytes + 0.8e9)
    out_of_core = {}
    for workers in (1, 2) if not quick else ():
        log(f"out of core: {workers} worker(s), memory_limit {limit / 1e9:.2f} GB each")
        out_of_core[f"{workers}_workers"] = on_cluster(workers, data, 1, C, None, log, memory_limit=limit)
    ceiling = machine_ceiling(-(-n // chunks), d, repeats=40 if not quick else 2)
    for name, row in ceiling.items():
        log(f"machine ceiling, {name}: 2 processes give {row['throughput_2_vs_1']:.2f}x one process's throughput")
    summary = {}
    for name in ("exact", "lbfgs"):
        one, two = clusters["1_workers"][name]["seconds"], clusters["2_workers"][name]["seconds"]
        summary[name] = {"speedup_2_vs_1_worker": one / two, "slowdown_1_worker_vs_single_process":
                         one / single[name]["seconds"],
                         "machine_ceiling_2_vs_1_process": ceiling[name]["throughput_2_vs_1"]}
    ml = clusters["2_workers"].get("dask_ml_lbfgs", {})
    if "seconds" in ml:
        summary["lbfgs"]["dask_ml_seconds_over_ours_2_workers"] = ml["seconds"] / clusters["2_workers"]["lbfgs"]["seconds"]
        summary["lbfgs"]["score_ours_minus_dask_ml"] = clusters["2_workers"]["lbfgs"]["score"] - ml["score"]
    targets = {"speedup_2_vs_1_worker": ">= 1.7 (exact and lbfgs)",
               "slowdown_1_worker_vs_single_process": "<= 1.3",
               "dask_ml_seconds_over_ours_2_workers": "> 1 at equal score"}
    record = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **state,
              "load_average_1min_before_after": [load_before, os.getloadavg()[0]],
              "kernels_sha256": kernels_sha256(), "machine": machine(), "quick": quick,
              "problem": {"n": n, "d": d, "chunks": chunks, "dtype": "float32", "C": C, "repeats": repeats,
                          "X_bytes": x_bytes},
              "threads": {"single_process_blas": 1, "worker_threads": 1, "worker_blas": 1},
              "order": "round robin: single process, 1 worker, 2 workers, each solver, repeated; best time",
              "single_process": single, "cluster": clusters, "machine_ceiling_no_dask": ceiling,
              "out_of_core": {"memory_limit_bytes_per_worker": limit, **out_of_core},
              "summary": summary, "targets": targets}
    for name, row in summary.items():
        log(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()))
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as f:
            json.dump(record, f, indent=1, default=float)
            f.write("\n")
        log(f"wrote {out_path}")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small problem (smoke test); writes only with --out")
    parser.add_argument("--repeats", type=int, default=None, help="timed fits per case (default 3, quick 1)")
    parser.add_argument("--out", default=None, help=f"results file (default {os.path.relpath(RESULTS)})")
    parser.add_argument("--ceiling", action="store_true",
                        help="only measure the machine's 2-vs-1-process ceiling on one chunk's work, no Dask")
    args = parser.parse_args(argv)
    if args.ceiling:
        print(json.dumps(machine_ceiling(250_000, 100), indent=1))
        return
    out = args.out if args.out or args.quick else RESULTS
    run(quick=args.quick, repeats=args.repeats or (1 if args.quick else 3), out_path=out)


if __name__ == "__main__":
    main()
