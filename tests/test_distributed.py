"""td on Dask: estimators fit dask arrays on a real dask.distributed LocalCluster (two
worker processes, started here) and give the single-machine result; chunks are
checked before the solver moves; a worker killed mid-fit does not change the result;
td.distributed.DataParallel steps a td optimizer on the summed gradients."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the 'models' extra)")
da = pytest.importorskip("dask.array", reason="the Dask route needs the 'dask' extra")
distributed = pytest.importorskip("distributed", reason="the Dask route needs the 'dask' extra")
import dask  # noqa: E402

import tinygrad_dot as td  # noqa: E402
from tinygrad_dot.distributed import DataParallel  # noqa: E402
from tinygrad_dot.models import LinearRegression, LogisticRegression, Ridge  # noqa: E402

from conftest import rel_error  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=40)  # errors only: a test kills a worker on purpose
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def regression(rng, n=1200, d=6, targets=None):
    X = rng.standard_normal((n, d)) * np.arange(1, d + 1) + 3.0  # offsets and unequal scales
    coef = rng.standard_normal((d,) if targets is None else (d, targets))
    return X, X @ coef + 0.5 * rng.standard_normal((n,) if targets is None else (n, targets))


def chunked(a, rows=300):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


# ----------------------------------------------------------------- results equal the single-machine fit


@pytest.mark.parametrize("make", [LinearRegression, lambda: Ridge(alpha=5.0)], ids=["linear", "ridge"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_exact_least_squares_equals_single_machine(client, rng, make, weighted):
    X, y = regression(rng)
    w = rng.uniform(0, 3, len(y)) if weighted else None
    reference = make().fit(X, y, sample_weight=w)
    model = make().fit(chunked(X), chunked(y), sample_weight=None if w is None else chunked(w))
    assert model.solver_ == "cholesky" and model.n_features_in_ == X.shape[1]
    assert rel_error(model.coef_, reference.coef_) < 1e-6
    assert abs(model.intercept_ - reference.intercept_) <= 1e-6 * abs(reference.intercept_)


def test_multi_target_float32_and_numpy_y(client, rng):
    X, Y = regression(rng, targets=3)
    reference = Ridge(alpha=[1.0, 2.0, 3.0]).fit(X.astype(np.float32), Y)
    model = Ridge(alpha=[1.0, 2.0, 3.0]).fit(chunked(X.astype(np.float32)), Y)  # y as NumPy: cut like X
    assert model.coef_.dtype == np.float32 and model.coef_.shape == (3, 6)
    assert rel_error(model.coef_, reference.coef_) < 1e-4


def test_ill_conditioned_falls_back_to_svd_like_single_machine(client, rng):
    X, y = regression(rng, n=600)
    X = np.c_[X, X[:, 0] + X[:, 1]]  # exactly collinear
    with pytest.warns(td.models.IllConditionedWarning):
        reference = LinearRegression().fit(X, y)
    with pytest.warns(td.models.IllConditionedWarning):
        model = LinearRegression().fit(chunked(X, 150), chunked(y, 150))
    assert model.solver_ == "svd"
    assert rel_error(model.coef_, reference.coef_) < 1e-6


@pytest.mark.parametrize("classes", [2, 3])
def test_lbfgs_logistic_equals_single_machine(client, rng, classes):
    X, _ = regression(rng)
    labels = np.digitize(X[:, 0] - X[:, 2] + 2 * rng.standard_normal(len(X)),
                         np.quantile(X[:, 0] - X[:, 2], np.linspace(0, 1, classes + 1)[1:-1]))
    labels = np.array(["ant", "bee", "cat"])[labels]  # string labels travel too
    w = rng.uniform(0.5, 2, len(X))
    reference = LogisticRegression(C=0.5, class_weight="balanced").fit(X, labels, sample_weight=w)
    model = LogisticRegression(C=0.5, class_weight="balanced").fit(chunked(X), chunked(labels), chunked(w))
    assert list(model.classes_) == list(reference.classes_)
    assert model.n_iter_[0] == reference.n_iter_[0]  # the same iterates, up to the order of the sums
    assert rel_error(model.coef_, reference.coef_) < 1e-6
    assert rel_error(model.intercept_, reference.intercept_) < 1e-6


def test_fista_l1_logistic_equals_single_machine(client, rng):
    X, _ = regression(rng, n=600)
    labels = (X[:, 1] + rng.standard_normal(len(X)) > 3).astype(int)
    reference = LogisticRegression(penalty="l1", C=0.05).fit(X, labels)
    model = LogisticRegression(penalty="l1", C=0.05).fit(chunked(X, 300), chunked(labels, 300))
    assert np.array_equal(model.coef_ == 0, reference.coef_ == 0) and np.any(model.coef_ == 0)
    assert rel_error(model.coef_, reference.coef_) < 1e-6


def test_logistic_targets_are_built_once_per_worker_on_the_chunks_device(client, rng):
    """The targets and weights of the logistic fit are built by one task per worker, kept there,
    and every evaluation reads them as they are: no per-evaluation rebuild or host copy."""
    from tinygrad_dot.distributed._models import _targets

    X, _ = regression(rng, n=1200, d=4)
    labels = (X[:, 0] + rng.standard_normal(len(X)) > 3).astype(int)
    with distributed.get_task_stream(client) as stream:
        LogisticRegression().fit(chunked(X), chunked(labels))
    ran = [str(task["key"]).split("-")[1] for task in stream.data if str(task["key"]).startswith("td-")]
    workers = {task["worker"] for task in stream.data if str(task["key"]).startswith("td-_logistic_eval")}
    assert ran.count("_targets") == len(workers)  # one build per worker holding chunks
    assert ran.count("_logistic_eval") > 2 * ran.count("_targets")  # several evaluations, one build
    T, weights = _targets(X[:300].astype(np.float32), labels[:300], None, np.array([0, 1]), None, 1200.0, np.float32)
    assert type(T) is np.ndarray and T.dtype == weights.dtype == np.float32  # the chunk's array type and dtype


@pytest.mark.gpu
def test_logistic_targets_stay_on_the_chunks_gpu(rng):
    """On a CuPy chunk the targets are CuPy arrays on that chunk's GPU, and an evaluation with
    them gives the NumPy chunk's loss and gradient."""
    import cupy

    from tinygrad_dot.distributed._models import _logistic_eval, _targets

    X, _ = regression(rng, n=300, d=4)
    labels = np.digitize(X[:, 0], [2.0, 4.0])
    classes, coef, intercept = np.arange(3), rng.standard_normal((3, 4)) * 0.1, np.zeros(3)
    x_gpu = cupy.asarray(X)
    on_gpu = _targets(x_gpu, labels, None, classes, None, 300.0, np.float64)
    assert all(isinstance(a, cupy.ndarray) and a.device == x_gpu.device for a in on_gpu)
    gpu = _logistic_eval(x_gpu, on_gpu, coef, intercept, True)
    cpu = _logistic_eval(X, _targets(X, labels, None, classes, None, 300.0, np.float64), coef, intercept, True)
    assert gpu[0] == pytest.approx(cpu[0], rel=1e-12)
    np.testing.assert_allclose(gpu[1], cpu[1], rtol=1e-10)


# ----------------------------------------------------------------- prediction


def test_predictions_are_lazy_and_equal(client, rng):
    X, _ = regression(rng)
    labels = np.digitize(X[:, 0] + rng.standard_normal(len(X)), [2.0, 4.0])
    model = LogisticRegression().fit(X, labels)
    Xd = chunked(X)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(model, method)(Xd)
        assert isinstance(lazy, da.Array), method
        computed = lazy.compute()
        assert computed.shape == lazy.shape
        np.testing.assert_allclose(computed, getattr(model, method)(X), rtol=1e-12, err_msg=method)
    assert model.score(Xd, chunked(labels)) == model.score(X, labels)
    X2, y2 = regression(rng)
    linear = LinearRegression().fit(chunked(X2), chunked(y2))
    assert isinstance(linear.predict(chunked(X2)), da.Array)
    assert linear.score(chunked(X2), chunked(y2)) == pytest.approx(linear.score(X2, y2), rel=1e-12)


def test_dask_dataframe_records_feature_names(client, rng):
    dd = pytest.importorskip("dask.dataframe", reason="dask.dataframe needs pandas")
    pd = pytest.importorskip("pandas")
    X, y = regression(rng, n=400, d=3)
    frame = dd.from_pandas(pd.DataFrame(X, columns=["a", "b", "c"]), npartitions=3)
    target = dd.from_pandas(pd.Series(y, name="t"), npartitions=3)
    model = LinearRegression().fit(frame, target)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert rel_error(model.coef_, LinearRegression().fit(X, y).coef_) < 1e-6
    np.testing.assert_allclose(model.predict(frame).compute(), model.predict(frame.compute()), rtol=1e-10)


def test_unknown_chunk_sizes_are_read_from_the_chunks(client, rng):
    dd = pytest.importorskip("dask.dataframe", reason="dask.dataframe needs pandas")
    pd = pytest.importorskip("pandas")
    X, y = regression(rng, n=500, d=3)
    frame = dd.from_pandas(pd.DataFrame(X), npartitions=3)
    target = dd.from_pandas(pd.Series(y), npartitions=3)
    Xd, yd = frame.to_dask_array(), target.to_dask_array()  # no lengths: row chunks of unknown size
    assert np.isnan(Xd.chunks[0][0])
    model = Ridge(alpha=2.0).fit(Xd, yd)
    assert rel_error(model.coef_, Ridge(alpha=2.0).fit(X, y).coef_) < 1e-6
    with pytest.raises(ValueError, match="chunk sizes are unknown"):
        Ridge().fit(Xd, y)


# ----------------------------------------------------------------- bad input: clear errors before the solver moves


def _block(shape, dtype=np.float64, fill=1.0):
    return np.full(shape, fill, dtype=dtype)


def _declared(blocks, shape, dtype):
    """A dask array whose chunks may disagree with what it declares (as data read from files can)."""
    parts = [da.from_delayed(dask.delayed(_block)(*b), shape=shape, dtype=dtype) for b in blocks]
    return da.concatenate(parts)


def test_chunk_width_dtype_and_nan_errors_name_the_chunk(client, rng):
    y = da.ones(300, chunks=100)
    X = _declared([((100, 4),), ((100, 4),), ((100, 3),)], (100, 4), np.float64)
    with pytest.raises(ValueError, match=r"disagree in width: chunk 2 \(rows 200-299\) has 3 columns"):
        LinearRegression().fit(X, y)
    X = _declared([((100, 4),), ((100, 4), np.float32), ((100, 4),)], (100, 4), np.float64)
    with pytest.raises(ValueError, match=r"disagree in dtype: chunk 1 \(rows 100-199\) holds float32"):
        LinearRegression().fit(X, y)
    X = _declared([((100, 4),), ((100, 4),), ((100, 4), np.float64, np.nan)], (100, 4), np.float64)
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity in chunk 2 \(rows 200-299\)"):
        LogisticRegression().fit(X, da.from_array(np.arange(300) % 2, chunks=100))


def test_misaligned_y_and_bad_weights_are_refused(client, rng):
    X, y = regression(rng, n=300)
    with pytest.raises(ValueError, match=r"y's chunks do not line up with X's rows: X chunk 1 holds rows 100-199, "
                                         r"y chunk 1 rows 100-249"):
        LinearRegression().fit(chunked(X, 100), da.from_array(y, chunks=(100, 150, 50)))
    with pytest.raises(ValueError, match="y's chunks do not line up with X's rows: X has 3 row chunks"):
        LinearRegression().fit(chunked(X, 100), da.from_array(y, chunks=150))
    with pytest.raises(ValueError, match=r"Input y contains NaN or infinity in chunk 2"):
        LinearRegression().fit(chunked(X, 100), chunked(np.r_[y[:250], np.nan, y[251:]], 100))
    with pytest.raises(ValueError, match=r"sample_weight must be finite and non-negative; chunk 0"):
        Ridge().fit(chunked(X, 100), chunked(y, 100), sample_weight=-np.ones(300))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        Ridge().fit(chunked(X, 100), y[:-1])


def test_a_closed_client_is_a_clear_error(client):
    from tinygrad_dot.distributed._blocks import get_client

    other = distributed.Client(client.scheduler.address, set_as_default=False)
    other.close()
    with pytest.raises(RuntimeError, match="client has gone away"):
        get_client(other)


def test_import_needs_no_dask_and_no_client_is_a_clear_error():
    script = ("import sys, tinygrad_dot, tinygrad_dot.models, tinygrad_dot.distributed\n"
              "import numpy as np\nfrom tinygrad_dot.models import Ridge\n"
              "Ridge().fit(np.eye(3), np.arange(3.0))\nassert 'dask' not in sys.modules, 'dask imported'\n"
              "import dask.array as da\n"
              "try:\n    Ridge().fit(da.ones((10, 2), chunks=5), da.ones(10, chunks=5))\n"
              "except RuntimeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "no Client is active" in out.stdout, out.stderr


# ----------------------------------------------------------------- td.distributed.DataParallel


def _mse(model, X, y):
    return td.nn.functional.mse_loss(model(X)[:, 0], y)


def test_data_parallel_steps_like_full_batch(client, rng):
    X, y = regression(rng, n=900, d=4)
    X = (X - X.mean(0)) / X.std(0)
    model = td.nn.Linear(4, 1, dtype="float64")
    reference = td.nn.Linear(4, 1, dtype="float64")
    reference.load_state_dict(model.state_dict())
    optimizer = td.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    ref_optimizer = td.optim.SGD(reference.parameters(), lr=0.1, momentum=0.5)
    Xt, yt = td.tensor(X), td.tensor(y)
    with DataParallel(chunked(X), chunked(y)) as data:
        assert data.n_samples == 900 and data.chunk_rows == [300, 300, 300]
        for _ in range(5):
            loss = data.step(model, _mse, optimizer)
            ref_optimizer.zero_grad()
            ref_loss = _mse(reference, Xt, yt)
            ref_loss.backward()
            ref_optimizer.step()
            assert loss == pytest.approx(ref_loss.item(), rel=1e-10)
        for p, q in zip(model.parameters(), reference.parameters()):
            np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-10)
        assert data.sum(_column_sums)[0] == pytest.approx(X.sum(axis=0)[0], rel=1e-12)
        assert [len(r) for r in data.map(_rows)] == [300, 300, 300]


def _column_sums(X, y):
    return X.sum(axis=0)


def _rows(X, y):
    return np.arange(len(X))


# ----------------------------------------------------------------- stochastic solvers in dask-ml's Incremental


def test_sgd_in_dask_ml_incremental(client, rng):
    wrappers = pytest.importorskip("dask_ml.wrappers", reason="dask-ml is optional (the 'dask' extra)")
    from tinygrad_dot.models import SGDClassifier

    X, _ = regression(rng, n=900, d=4)
    X = (X - X.mean(0)) / X.std(0)
    labels = (X[:, 0] - X[:, 1] > 0).astype(int)
    params = dict(loss="log_loss", alpha=1e-3, random_state=0, learning_rate="constant", eta0=0.05)
    incremental = wrappers.Incremental(SGDClassifier(**params), shuffle_blocks=False)
    incremental.fit(chunked(X), chunked(labels), classes=[0, 1])
    reference = SGDClassifier(**params)
    for start in range(0, 900, 300):  # the same chunks in the same order: the same iterates
        reference.partial_fit(X[start:start + 300], labels[start:start + 300], classes=[0, 1])
    np.testing.assert_allclose(incremental.estimator_.coef_, reference.coef_, rtol=1e-6)
    assert incremental.score(chunked(X), chunked(labels)) > 0.9


# ----------------------------------------------------------------- a worker killed in the middle of a fit


def test_fit_survives_a_killed_worker(client, rng):
    scheduler = client.cluster.scheduler
    X = da.random.default_rng(7).standard_normal((6000, 8), chunks=(1000, 8))  # recomputable from its seed
    X_np = X.compute()
    labels = np.digitize(X_np @ np.arange(8.0) + rng.standard_normal(6000), [-5.0, 5.0])
    y = da.from_array(labels, chunks=1000)
    reference = LogisticRegression(C=10.0, tol=1e-8, max_iter=300).fit(X_np, labels)
    pids = client.run(os.getpid)
    killed = {}

    def kill_after_three_evaluations():
        deadline, evaluations = time.monotonic() + 60, set()
        while time.monotonic() < deadline and "pid" not in killed and not done.is_set():
            evaluations |= {k for k in list(scheduler.tasks) if str(k).startswith("td-_logistic_eval")}
            if len(evaluations) >= 3 * 2:  # three evaluations have started (a task per worker)
                address, pid = next(iter(pids.items()))
                killed.update(pid=pid, address=address, seen=len(evaluations))
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    done = threading.Event()
    watcher = threading.Thread(target=kill_after_three_evaluations)
    watcher.start()
    try:
        model = LogisticRegression(C=10.0, tol=1e-8, max_iter=300).fit(X, y)
    finally:
        done.set()
        watcher.join()
    assert "pid" in killed, "the fit finished before a worker could be killed"
    assert killed["address"] not in client.scheduler_info()["workers"] or client.run(os.getpid).get(
        killed["address"]) != killed["pid"]
    assert model.n_iter_[0] == reference.n_iter_[0]
    assert rel_error(model.coef_, reference.coef_) < 1e-6
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


# ----------------------------------------------------------------- the benchmark's measuring code


def test_benchmark_measures_on_a_small_problem(client):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "dask.py"
    spec = importlib.util.spec_from_file_location("bench_dask", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = bench.make_data(40_000, 8, 4)  # past 16,384 rows: the subset-of-rows column scales
    X, y, labels = dask.compute(*data, scheduler="sync")
    single = bench.single_process(X, y, labels, 1, 1.0, log=lambda *a: None)
    out = bench.measure(client, data, 1, 1.0, single, log=lambda *a: None)
    assert sum(out["X_chunks_per_worker"]) >= 4  # replicas count twice
    for name in ("exact", "lbfgs"):
        assert out[name]["coef_rel_error_vs_single_process"] < 1e-4  # float32 data
        assert out[name]["worker_bytes_sent_per_iteration"] > 0
    assert out["lbfgs"]["n_iter"] == single["lbfgs"]["n_iter"]


def test_docs_data_parallel_example_runs(client):
    """docs/distributed.md's DataParallel example, on this module's cluster and with 10 steps."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "distributed.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "DataParallel(" in block)
    assert "client = Client(LocalCluster(" in code and "range(100)" in code
    code = re.sub(r"client = Client\(LocalCluster\(.*\)\)", "client = test_client", code)
    code = code.replace("range(100)", "range(10)")
    namespace = {"test_client": client}
    exec(compile(code, "docs/distributed.md", "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["loss"] < 0.05 * float(np.arange(20.0) @ np.arange(20.0))  # from about sum(coef^2) + 1
