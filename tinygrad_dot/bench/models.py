"""td.models against scikit-learn on the CPU (issue 12's benchmark): fit time and
test score side by side, in one run, on the same data, with the same threads.

Problems
  * the five embedded datasets, ``td.data.load_dataset(name, standardize=True)``
    (seeded 75/25 split, float32): iris, wine, breast_cancer, digits with
    LogisticRegression (both libraries' defaults, the same C); diabetes with
    LinearRegression and Ridge(alpha=1.0);
  * synthetic dense float32 problems, 200,000 training rows x 500 features plus
    50,000 test rows (``--quick``: 20,000 x 100 plus 5,000), drawn from
    numpy.random.default_rng(seed) and standardized by the training rows' mean
    and standard deviation: a regression (LinearRegression, Ridge(alpha=1.0))
    and a binary classification (LogisticRegression) on the same X.

Protocol
  Both libraries get the very same arrays. BLAS and OpenMP pools are limited to
  ``--threads`` (default 1) for the whole run with threadpoolctl; the pools seen
  under that limit are recorded. Per row: one warm-up fit of each side, then
  ``repeats`` timed fits alternating which side goes first; the figure is the
  median. ``--runs N`` makes N such passes over all the rows (a noisy minute on
  a shared machine then spoils one run, not one row): the figure is the median
  of all N x repeats fits, and each run's own ratio is recorded. Scores are
  each estimator's own ``score`` on the test rows (accuracy, R^2). For
  logistic rows the objective scikit-learn and td both minimise, mean log-loss
  + ||coef||^2 / (2 C n), is evaluated in float64 on the training rows for
  both fitted models (equal optimum <=> equal objective).
  Issue 12's targets: at equal test score (|difference| <= 0.005), td's fit
  time at most 1.0x scikit-learn's on the 200,000 x 500 problems and at most
  1.5x on the embedded datasets. ``--profile`` adds a cProfile of one td fit
  (top 15 by cumulative time) for every row that misses its target.

    tinygrad-dot bench --only models [--quick] [-- --runs 3 ...]     # the installed command
    python -m tinygrad_dot.bench.models [--quick] [--threads 1] [--repeats-small 5] [--repeats-large 3]
                                        [--runs 1] [--profile] [--out tinygrad-dot-bench/cpu-models.json]
    python benchmarks/models.py [...]                               # the same, from a checkout

The results go to --out (./tinygrad-dot-bench/cpu-models.json by default, as
``tinygrad-dot bench`` writes; the committed figures are
benchmarks/results/cpu-models.json). Needs the models extra (scikit-learn). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
change which OpenBLAS kernels NumPy and SciPy use; the BLAS kernel
threadpoolctl reports is recorded with the figures.
"""
from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

import tinygrad_dot as td
from tinygrad_dot._files import atomic_write_json
from tinygrad_dot.bench import checkout_root
from tinygrad_dot.gemm.sources import kernels_sha256

CLASSIFICATION = ("iris", "wine", "breast_cancer", "digits")
REGRESSION = ("diabetes",)
FULL_SHAPE, QUICK_SHAPE = (200_000, 500, 50_000), (20_000, 100, 5_000)  # train rows, features, test rows
SCORE_TOLERANCE = 0.005
TARGET_SMALL, TARGET_LARGE = 1.5, 1.0
DEFAULT_OUT = os.path.join("tinygrad-dot-bench", "cpu-models.json")


# ----------------------------------------------------------------- data


def embedded(name):
    split = td.data.load_dataset(name, standardize=True)
    return split.X_train, split.X_test, split.y_train, split.y_test


def synthetic(n, d, n_test, seed=0):
    """One float32 X (standardized by the training rows) and two targets: y_reg, a
    linear signal plus Gaussian noise (R^2 about 0.8), and y_clf, 0/1 labels drawn
    from a logistic model on another linear signal."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n + n_test, d), dtype=np.float32)
    X[:, : d // 10] *= np.float32(3.0)  # some spread in the column scales, removed again by standardization
    X += rng.standard_normal(d, dtype=np.float32)  # and offsets
    w_reg = (rng.standard_normal(d) / np.sqrt(d)).astype(np.float32)
    w_clf = (rng.standard_normal(d) * 2 / np.sqrt(d)).astype(np.float32)
    mean = X[:n].mean(axis=0, dtype=np.float64)
    std = X[:n].std(axis=0, dtype=np.float64)
    X -= mean.astype(np.float32)
    X /= std.astype(np.float32)
    signal = X @ w_reg
    y_reg = (signal + 0.5 * signal.std() * rng.standard_normal(n + n_test)).astype(np.float32)
    z = (X @ w_clf).astype(np.float64)
    y_clf = (rng.random(n + n_test) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return X[:n], X[n:], y_reg[:n], y_reg[n:], y_clf[:n], y_clf[n:]


def problems(quick, seed):
    """(dataset, kind, X_train, X_test, y_train, y_test) for every problem, small ones first."""
    for name in CLASSIFICATION:
        yield (name, "small", "classification", *embedded(name))
    for name in REGRESSION:
        yield (name, "small", "regression", *embedded(name))
    n, d, n_test = QUICK_SHAPE if quick else FULL_SHAPE
    X_train, X_test, yr_train, yr_test, yc_train, yc_test = synthetic(n, d, n_test, seed)
    yield (f"synthetic_regression_{n}x{d}", "large", "regression", X_train, X_test, yr_train, yr_test)
    yield (f"synthetic_binary_{n}x{d}", "large", "classification", X_train, X_test, yc_train, yc_test)


def estimators(task, C):
    """(name, make_td, make_sklearn) pairs for a task, default parameters on both sides."""
    from sklearn import linear_model as sk

    if task == "classification":
        return [("LogisticRegression", lambda: td.models.LogisticRegression(C=C),
                 lambda: sk.LogisticRegression(C=C))]
    return [("LinearRegression", td.models.LinearRegression, sk.LinearRegression),
            ("Ridge", lambda: td.models.Ridge(alpha=1.0), lambda: sk.Ridge(alpha=1.0))]


# ----------------------------------------------------------------- measuring


def logistic_objective(model, X, y, C):
    """mean log-loss + ||coef||^2 / (2 C n) in float64 over row blocks: the objective both
    libraries minimise (scikit-learn's C sum(loss) + ||coef||^2 / 2, divided by C n)."""
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=np.float64))
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=np.float64))
    index = np.searchsorted(model.classes_, y)
    total = 0.0
    for start in range(0, len(y), 1 << 15):
        Z = X[start:start + (1 << 15)].astype(np.float64) @ coef.T + intercept
        i = index[start:start + (1 << 15)]
        if Z.shape[1] == 1:
            z = Z[:, 0]
            total += float((np.logaddexp(0.0, z) - (i == 1) * z).sum())
        else:
            peak = Z.max(axis=1, keepdims=True)
            log_norm = peak[:, 0] + np.log(np.exp(Z - peak).sum(axis=1))
            total += float((log_norm - Z[np.arange(len(i)), i]).sum())
    return total / len(y) + float((coef * coef).sum()) / (2 * C * len(y))


def _fit(make, X, y):
    model = make()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(X, y)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return model, (seconds, cpu), sorted({f"{w.category.__name__}: {w.message}".split("\n")[0] for w in caught})


def _n_iter(model):
    n_iter = getattr(model, "n_iter_", None)
    return None if n_iter is None else int(np.max(n_iter))


def time_pair(make_td, make_sk, X, y, repeats, settle):
    """Warm-up fit of each side, then ``repeats`` timed fits alternating the order;
    returns the last fitted models, the times and the warnings seen."""
    sides = {"td": make_td, "sklearn": make_sk}
    models, seen = {}, {"td": set(), "sklearn": set()}
    times, cpu_times = {"td": [], "sklearn": []}, {"td": [], "sklearn": []}
    for side, make in sides.items():  # warm-up: imports, first-touch page faults, BLAS buffers
        models[side], _, caught = _fit(make, X, y)
        seen[side].update(caught)
    for repeat in range(repeats):
        for side in (("td", "sklearn") if repeat % 2 == 0 else ("sklearn", "td")):
            time.sleep(settle)
            models[side], (seconds, cpu), caught = _fit(sides[side], X, y)
            times[side].append(seconds)
            cpu_times[side].append(cpu)
            seen[side].update(caught)
    return models, times, cpu_times, {side: sorted(w) for side, w in seen.items()}


def profile_fit(make, X, y, top=15):
    """cProfile of one fit: the top entries by cumulative time, as pstats prints them."""
    model = make()
    profiler = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        profiler.enable()
        model.fit(X, y)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    text = out.getvalue()
    return text[text.index("   ncalls"):] if "   ncalls" in text else text


def measure(acc, make_td, make_sk, data, repeats, settle):
    """One run of a row (warm-up, then ``repeats`` timed fits a side), pooled into ``acc``."""
    models, times, cpu_times, seen = time_pair(make_td, make_sk, data[0], data[2], repeats, settle)
    for side in ("td", "sklearn"):
        acc["times"][side] += times[side]
        acc["cpu_times"][side] += cpu_times[side]
        acc["seen"][side].update(seen[side])
    acc["models"] = models
    acc["ratio_per_run"].append(statistics.median(times["td"]) / statistics.median(times["sklearn"]))
    acc["cpu_ratio_per_run"].append(statistics.median(cpu_times["td"]) / statistics.median(cpu_times["sklearn"]))
    return acc


def new_accumulator():
    return {"times": {"td": [], "sklearn": []}, "cpu_times": {"td": [], "sklearn": []},
            "seen": {"td": set(), "sklearn": set()}, "ratio_per_run": [], "cpu_ratio_per_run": []}


def build_row(dataset, kind, task, name, data, acc, repeats, C):
    """The row of the results: medians over the timed fits of every run (runs pooled)."""
    X_train, X_test, y_train, y_test = data
    models, times, cpu_times = acc["models"], acc["times"], acc["cpu_times"]
    seen = {side: sorted(w) for side, w in acc["seen"].items()}
    ours, theirs = models["td"], models["sklearn"]
    td_s, sk_s = statistics.median(times["td"]), statistics.median(times["sklearn"])
    td_score, sk_score = ours.score(X_test, y_test), theirs.score(X_test, y_test)
    coef_ours, coef_theirs = np.asarray(ours.coef_, np.float64), np.asarray(theirs.coef_, np.float64)
    row = {"dataset": dataset, "kind": kind, "task": task, "estimator": name,
           "n": int(X_train.shape[0]), "d": int(X_train.shape[1]), "n_test": int(X_test.shape[0]),
           "X_dtype": str(X_train.dtype), "repeats": repeats, "runs": len(acc["ratio_per_run"]),
           "td_seconds": td_s, "sklearn_seconds": sk_s, "ratio_td_sklearn": td_s / sk_s,
           "td_seconds_all": times["td"], "sklearn_seconds_all": times["sklearn"],
           # process CPU time of the same fits: less sensitive to other processes on a shared machine
           "td_cpu_seconds": statistics.median(cpu_times["td"]),
           "sklearn_cpu_seconds": statistics.median(cpu_times["sklearn"]),
           "ratio_cpu_td_sklearn": statistics.median(cpu_times["td"]) / statistics.median(cpu_times["sklearn"]),
           "td_cpu_seconds_all": cpu_times["td"], "sklearn_cpu_seconds_all": cpu_times["sklearn"],
           "score": "accuracy" if task == "classification" else "r2",
           "td_score": td_score, "sklearn_score": sk_score, "score_difference": td_score - sk_score,
           "td_n_iter": _n_iter(ours), "sklearn_n_iter": _n_iter(theirs),
           "td_coef_dtype": str(np.asarray(ours.coef_).dtype),
           "sklearn_coef_dtype": str(np.asarray(theirs.coef_).dtype),
           "coef_relative_difference": float(np.linalg.norm(coef_ours - coef_theirs)
                                             / max(np.linalg.norm(coef_theirs), 1e-300)),
           "td_warnings": seen["td"], "sklearn_warnings": seen["sklearn"]}
    if hasattr(ours, "solver_"):
        row["td_solver"] = ours.solver_
    if hasattr(theirs, "solver_"):
        row["sklearn_solver"] = theirs.solver_
    if name == "LogisticRegression":
        row["C"] = C
        row["td_objective"] = logistic_objective(ours, X_train, y_train, C)
        row["sklearn_objective"] = logistic_objective(theirs, X_train, y_train, C)
        row["objective_relative_difference"] = ((row["td_objective"] - row["sklearn_objective"])
                                                / abs(row["sklearn_objective"]))
    row["target_ratio"] = TARGET_SMALL if kind == "small" else TARGET_LARGE
    row["equal_score"] = abs(row["score_difference"]) <= SCORE_TOLERANCE
    row["target_met"] = row["equal_score"] and row["ratio_td_sklearn"] <= row["target_ratio"]
    # each run's own ratio of medians (wall clock and CPU): how much the verdict depends on the run
    row["ratio_per_run"], row["cpu_ratio_per_run"] = acc["ratio_per_run"], acc["cpu_ratio_per_run"]
    row["runs_target_met"] = sum(row["equal_score"] and r <= row["target_ratio"] for r in acc["ratio_per_run"])
    return row


# ----------------------------------------------------------------- provenance


def _git(git_dir, *args):
    try:
        result = subprocess.run(["git", "--git-dir", git_dir, *args], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.decode() if result.returncode == 0 else None


def source_state(git_dir=None):
    """The commit, and which files of the package and kernels/ that this run imported
    differ from it (compared blob by blob with git hash-object: nothing is written)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(td.__file__)))
    if git_dir is None:
        found = subprocess.run(["git", "-C", root, "rev-parse", "--absolute-git-dir"], capture_output=True,
                               text=True).stdout.strip() if checkout_root() else ""
        git_dir = found or None
    if git_dir is None:
        return {"commit": "", "source_root": root, "note": "not a git checkout"}
    commit = (_git(git_dir, "rev-parse", "HEAD") or "").strip()
    listing = _git(git_dir, "ls-tree", "-r", commit, "--", "tinygrad_dot", "kernels") or ""
    committed = {}
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        committed[path] = meta.split()[2]
    on_disk = []
    for top in ("tinygrad_dot", "kernels"):
        for folder, dirs, files in os.walk(os.path.join(root, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            on_disk += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
                        for f in sorted(files) if not f.endswith((".pyc", ".pyo"))]
    hashes = {}
    if on_disk:
        out = subprocess.run(["git", "hash-object", "--no-filters", "--", *on_disk], cwd=root, capture_output=True,
                             text=True).stdout.split()
        hashes = dict(zip(on_disk, out))
    differs = sorted(p for p in on_disk if committed.get(p) != hashes.get(p))
    missing = sorted(set(committed) - set(on_disk))
    return {"commit": commit[:7], "commit_full": commit, "source_root": root, "git_dir": git_dir,
            "code_differs_from_commit": differs + [f"{p} (missing)" for p in missing]}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threadpools, state):
    import scipy
    import sklearn
    import threadpoolctl

    state = dict(state)
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": state.pop("commit"),
            **state, "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "sklearn": sklearn.__version__, "threadpoolctl": threadpoolctl.__version__,
            "cpu": _cpu_model(), "cpus": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
            "blas": [{"library": p.get("filepath", "").split("site-packages/")[-1],
                      "internal_api": p.get("internal_api"),
                      "version": p.get("version"), "architecture": p.get("architecture"),
                      "threading_layer": p.get("threading_layer")} for p in threadpools if p["user_api"] == "blas"],
            # every results file names the kernel sources of its code (CPU runs use none)
            "kernels_sha256": kernels_sha256()}


# ----------------------------------------------------------------- main


def run(quick=False, threads=1, repeats_small=5, repeats_large=3, runs=1, seed=0, C=1.0, settle=0.1, profile=False,
        only=None, git_dir=None, log=print):
    from threadpoolctl import threadpool_info, threadpool_limits

    # Load every BLAS/LAPACK and OpenMP library either side uses before limiting: threadpoolctl
    # limits only the libraries loaded when the limit is set (SciPy's OpenBLAS and
    # scikit-learn's libgomp come with their imports).
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import tinygrad_dot.models  # noqa: F401

    gc.collect()
    gc.freeze()  # the modules' objects: the collection before each timed fit need not walk them
    rows, profiles = [], {}
    state = source_state(git_dir)  # before measuring: the commit the measured code is compared with
    load_before = os.getloadavg()
    with threadpool_limits(limits=threads):
        pools = threadpool_info()
        wrong = [p["filepath"] for p in pools if p["num_threads"] != threads]
        if wrong:
            raise RuntimeError(f"threadpoolctl could not limit {wrong} to {threads} thread(s)")
        cases = [(dataset, kind, task, data, name, make_td, make_sk)
                 for dataset, kind, task, *data in problems(quick, seed) if not only or any(o in dataset for o in only)
                 for name, make_td, make_sk in estimators(task, C)]
        accumulators = [new_accumulator() for _ in cases]
        for run_index in range(runs):  # whole passes over every row, so that a noisy minute hits one run only
            for (dataset, kind, task, data, name, make_td, make_sk), acc in zip(cases, accumulators):
                repeats = repeats_small if kind == "small" else repeats_large
                measure(acc, make_td, make_sk, data, repeats, settle)
                log(f"run {run_index + 1}/{runs} {dataset} {name}: td/sklearn {acc['ratio_per_run'][-1]:.3f} "
                    f"(cpu {acc['cpu_ratio_per_run'][-1]:.3f})")
        for (dataset, kind, task, data, name, make_td, make_sk), acc in zip(cases, accumulators):
            repeats = repeats_small if kind == "small" else repeats_large
            row = build_row(dataset, kind, task, name, data, acc, repeats, C)
            rows.append(row)
            if profile and not row["target_met"]:
                profiles[f"{dataset} {name}"] = profile_fit(make_td, data[0], data[2])
        pools_after = threadpool_info()
    load_after = os.getloadavg()
    if [p["filepath"] for p in pools_after] != [p["filepath"] for p in pools] or \
            any(p["num_threads"] != threads for p in pools_after):
        raise RuntimeError("a thread pool was loaded or changed during the run: the limit did not hold for it")
    used = [{"library": p.get("filepath", "").split("site-packages/")[-1], "user_api": p["user_api"],
             "num_threads": p["num_threads"]} for p in pools_after]
    report = {"benchmark": "td.models vs scikit-learn (CPU)", "mode": "quick" if quick else "full",
              "protocol": {"threads": threads, "repeats_small": repeats_small, "repeats_large": repeats_large,
                           "runs": runs,
                           "warmup_fits": 1, "statistic": "median", "seed": seed, "C": C,
                           "synthetic_shape": dict(zip(("n_train", "d", "n_test"),
                                                       QUICK_SHAPE if quick else FULL_SHAPE)),
                           "score_tolerance": SCORE_TOLERANCE,
                           "targets": {"small": TARGET_SMALL, "large": TARGET_LARGE},
                           "settle_seconds": settle},
              # one process, one limit: both sides run under the same pools; td calls NumPy's
              # BLAS (matmul) and SciPy/NumPy LAPACK for the d x d solve, scikit-learn calls
              # NumPy's and SciPy's BLAS/LAPACK and its OpenMP loss kernels.
              "threads": {"td": used, "sklearn": used, "limit": threads},
              "rows": rows,
              # other processes on the machine: 1, 5 and 15 minute load averages before and after
              "load_average": {"before": list(load_before), "after": list(load_after)}}
    if quick:
        report["targets_note"] = "quick mode: the large-problem target applies to 200,000 x 500, not measured here"
    if profiles:
        report["profiles_td_fit_top15_cumulative"] = profiles
    report["targets_missed"] = [f"{r['dataset']} {r['estimator']}" for r in rows if not r["target_met"]]
    report["machine"] = machine(pools, state)
    if state.get("commit_full"):
        head_after = (_git(state["git_dir"], "rev-parse", "HEAD") or "").strip()
        if head_after != state["commit_full"]:
            report["machine"]["head_moved_during_run_to"] = head_after[:7]
    return report


HEADER = (f"{'dataset':32s} {'estimator':18s} {'n':>7s} {'d':>4s} {'td s':>9s} {'sk s':>9s} {'td/sk':>6s} {'cpu':>5s} "
          f"{'td score':>9s} {'sk score':>9s} {'diff':>8s} {'td it':>5s} {'sk it':>5s} {'obj rel diff':>12s} target")


def format_row(r):
    it = lambda v: "-" if v is None else str(v)  # noqa: E731
    obj = f"{r['objective_relative_difference']:12.2e}" if "objective_relative_difference" in r else f"{'-':>12s}"
    verdict = ("met" if r["target_met"] else "MISSED") + f" (<= {r['target_ratio']}x)"
    if r["runs"] > 1:
        verdict += f", per run {'/'.join(f'{x:.2f}' for x in r['ratio_per_run'])}"
    return (f"{r['dataset']:32s} {r['estimator']:18s} {r['n']:7d} {r['d']:4d} {r['td_seconds']:9.5f} "
            f"{r['sklearn_seconds']:9.5f} {r['ratio_td_sklearn']:6.2f} "
            f"{r['ratio_cpu_td_sklearn']:5.2f} {r['td_score']:9.4f} {r['sklearn_score']:9.4f} "
            f"{r['score_difference']:8.4f} {it(r['td_n_iter']):>5s} {it(r['sklearn_n_iter']):>5s} {obj} {verdict}")


def print_report(report):
    m, p = report["machine"], report["protocol"]
    print(f"\ntd.models vs scikit-learn {m['sklearn']}, {report['mode']} mode, {p['threads']} thread(s), "
          f"median of {p['runs']} x {p['repeats_small']} (small) / {p['runs']} x {p['repeats_large']} (large) fits, "
          "each run after one warm-up")
    print(HEADER)
    for row in report["rows"]:
        print(format_row(row))
    print("BLAS: " + "; ".join(f"{b['library']} {b['internal_api']} {b['version']} {b['architecture']}"
                               for b in m["blas"]))
    print(f"OPENBLAS_CORETYPE={m['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE={m['OPENBLAS_L2_SIZE']}  "
          f"commit {m['commit']}" + (f", code differs from it: {m['code_differs_from_commit']}"
                                     if m.get("code_differs_from_commit") else ""))
    print(f"load average (1, 5, 15 min) before {report['load_average']['before']}, "
          f"after {report['load_average']['after']}; td/sk: wall-clock ratio of medians, cpu: process CPU time")
    for key, text in report.get("profiles_td_fit_top15_cumulative", {}).items():
        print(f"\ncProfile of one td fit, {key} (top 15, cumulative):\n{text}")
    missed = report["targets_missed"]
    print("targets: " + ("all met" if not missed else "missed by " + ", ".join(missed)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="synthetic problems of 20,000 x 100 (a smoke run)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and OpenMP threads for both sides (default 1)")
    parser.add_argument("--repeats-small", type=int, default=5, help="timed fits per embedded-dataset row")
    parser.add_argument("--repeats-large", type=int, default=3, help="timed fits per synthetic row")
    parser.add_argument("--runs", type=int, default=1,
                        help="passes over all rows (each with its warm-up); the medians pool every run's fits")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic problems")
    parser.add_argument("--C", type=float, default=1.0, help="inverse regularisation of both LogisticRegressions")
    parser.add_argument("--settle", type=float, default=0.1, help="idle seconds before each timed fit")
    parser.add_argument("--only", action="append", help="rows whose dataset name contains this (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one td fit (top 15 cumulative) for each row that misses its target")
    parser.add_argument("--git-dir", help="git directory to read the commit from (default: the checkout's)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results JSON (default ./{DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if min(args.threads, args.repeats_small, args.repeats_large, args.runs) < 1:
        parser.error("--threads, --runs and --repeats-* must be at least 1")
    report = run(quick=args.quick, threads=args.threads, repeats_small=args.repeats_small,
                 repeats_large=args.repeats_large, runs=args.runs, seed=args.seed, C=args.C, settle=args.settle,
                 profile=args.profile, only=args.only, git_dir=args.git_dir)
    print_report(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
