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
import scipy.sparse as sp  # noqa: E402  (SciPy comes with scikit-learn)

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


# ----------------------------------------------------------------- SciPy-sparse chunks


def sparse_problem(rng, n=3000, d=120, density=0.05):
    """CSR X (uncentred, unscaled stored values), a regression target and its noiseless part."""
    X = sp.random(n, d, density=density, format="csr", random_state=rng)
    X.data = 3 * X.data + 1.0
    z = X @ rng.standard_normal(d)
    return X, z + 0.1 * rng.standard_normal(n) + 2.0, z


def sparse_chunked(X, rows=1000):
    return da.from_array(X, chunks=(rows, -1), asarray=False)  # chunks stay SciPy matrices


@pytest.mark.parametrize("case", ["binary", "multinomial", "l1"])
def test_sparse_chunks_logistic_equals_single_machine_sparse_fit(client, rng, case):
    """L-BFGS and FISTA over SciPy-sparse chunks (each a td CSR on its worker): the single-machine
    fit of the SciPy matrix, iteration for iteration."""
    X, _, z = sparse_problem(rng)
    w = rng.uniform(0.5, 2, X.shape[0])
    if case == "binary":  # CSR chunks, sample weights
        labels, make, Xd = (z + rng.standard_normal(len(z)) > np.median(z)).astype(int), \
            lambda: LogisticRegression(C=0.5), sparse_chunked(X)
    elif case == "multinomial":  # dense chunks made sparse on the workers, string labels, balanced classes
        labels = np.array(["ant", "bee", "cat"])[np.digitize(z + rng.standard_normal(len(z)),
                                                             np.quantile(z, [0.3, 0.7]))]
        make, Xd = lambda: LogisticRegression(C=0.5, class_weight="balanced"), chunked(X.toarray(), 1000).map_blocks(
            sp.csr_matrix)
    else:  # CSC chunks (made CSR once on the workers), FISTA's exact zeros
        labels, make, Xd = (z > np.median(z)).astype(int), lambda: LogisticRegression(penalty="l1", C=0.05), \
            sparse_chunked(X.tocsc())
    reference = make().fit(X, labels, sample_weight=w)
    model = make().fit(Xd, chunked(labels, 1000), chunked(w, 1000))
    assert model.solver_ == reference.solver_ and list(model.classes_) == list(reference.classes_)
    assert model.n_iter_[0] == reference.n_iter_[0]
    assert rel_error(model.coef_, reference.coef_) < 1e-6
    assert rel_error(model.intercept_, reference.intercept_) < 1e-6
    if case == "l1":
        assert np.array_equal(model.coef_ == 0, reference.coef_ == 0) and np.any(model.coef_ == 0)


@pytest.mark.parametrize("case", ["ridge", "linear", "one-hot"])
def test_sparse_chunks_least_squares_equal_single_machine_lsqr(client, rng, case):
    """The Gram route on sparse chunks (each X_i^T W_i X_i a SciPy product, centred afterwards):
    the single-machine sparse fit (LSQR) to 1e-6. Exactly collinear one-hot columns (they sum to
    the intercept's) fall back, with the Gram route's warning, to the minimum-norm solve, as
    LSQR's solution is."""
    X, y, _ = sparse_problem(rng)
    w = rng.uniform(0, 3, len(y))
    if case == "ridge":  # weighted, float32 chunks: products and solve in float64, as LSQR's
        X, make = X.astype(np.float32), lambda: Ridge(alpha=5.0)
    elif case == "linear":
        w, make = None, LinearRegression
    else:
        n, codes = len(y), rng.integers(0, 8, size=(len(y), 3))
        X = sp.hstack([sp.csr_matrix((np.ones(n), (np.arange(n), codes[:, j])), shape=(n, 8)) for j in range(3)],
                      format="csr")
        y, make = X @ rng.standard_normal(24) + 0.1 * rng.standard_normal(n), LinearRegression
    reference = make().fit(X, y, sample_weight=w)
    if case == "one-hot":
        with pytest.warns(td.models.IllConditionedWarning):
            model = make().fit(sparse_chunked(X), chunked(y, 1000), sample_weight=w)
    else:
        model = make().fit(sparse_chunked(X), chunked(y, 1000), sample_weight=w)
    assert reference.solver_ == "lsqr" and model.solver_ == ("svd" if case == "one-hot" else "cholesky")
    assert model.coef_.dtype == reference.coef_.dtype and not hasattr(model, "n_iter_")
    assert rel_error(model.coef_, reference.coef_) < 1e-6
    assert abs(model.intercept_ - reference.intercept_) <= 1e-6 * abs(reference.intercept_)


def test_sparse_chunks_sgd_fit_equals_partial_fit_loop(client, rng):
    """SGD's chain over sparse chunks: bitwise the partial_fit loop over the same SciPy chunks."""
    from tinygrad_dot.models import SGDClassifier

    X, _, z = sparse_problem(rng, n=2000)
    labels = np.digitize(z, np.quantile(z, [0.3, 0.7]))
    w = rng.uniform(0.5, 2, len(labels))
    params = dict(loss="log_loss", penalty="elasticnet", alpha=1e-3, random_state=5, max_iter=3, tol=None)
    model = SGDClassifier(**params).fit(sparse_chunked(X, 500), chunked(labels, 500), sample_weight=w)
    reference = _partial_fit_loop(SGDClassifier(**params), X, labels, w, 3, rows=500, classes=[0, 1, 2])
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    np.testing.assert_array_equal(model.intercept_, reference.intercept_)
    assert model.t_ == reference.t_


def test_sparse_chunks_predictions_equal_in_memory(client, rng):
    X, y, z = sparse_problem(rng, n=1200)
    labels = np.digitize(z, np.quantile(z, [0.3, 0.7]))
    model = LogisticRegression().fit(X, labels)
    Xd = sparse_chunked(X, 400)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(model, method)(Xd)
        assert isinstance(lazy, da.Array) and type(lazy._meta) is np.ndarray, method
        np.testing.assert_allclose(lazy.compute(), getattr(model, method)(X), rtol=1e-12, err_msg=method)
    assert model.score(Xd, chunked(labels, 400)) == model.score(X, labels)
    ridge = Ridge().fit(X, y)
    np.testing.assert_allclose(ridge.predict(Xd).compute(), ridge.predict(X), rtol=1e-12)
    assert ridge.score(Xd, chunked(y, 400)) == pytest.approx(ridge.score(X, y), rel=1e-12)


def test_sparse_chunk_errors_name_the_chunk_before_any_pass(client, rng):
    """Sparse chunks mixed with dense ones, of another width, or with NaN among their values, and
    least squares past the Gram route's width: errors naming the chunk (or d), before any pass."""
    X, y, _ = sparse_problem(rng, n=300, d=20, density=0.2)
    labels = chunked(np.arange(300) % 2, 100)

    def chunk(i, dense=False, width=20, nan=False):
        block = X[100 * i:100 * (i + 1), :width].copy()
        if nan:
            block.data[0] = np.nan
        return block.toarray() if dense else block

    def declared(**bad_chunk_2):
        blocks = [dask.delayed(chunk)(i, **(bad_chunk_2 if i == 2 else {})) for i in range(3)]
        return da.concatenate([da.from_delayed(b, shape=(100, 20), dtype=np.float64, meta=X[:0]) for b in blocks])

    with distributed.get_task_stream(client) as stream:
        with pytest.raises(ValueError, match=r"X's chunks mix sparse and dense: chunk 2 \(rows 200-299\) is dense, "
                                             r"chunk 0 is a sparse matrix \(csr_matrix\)"):
            LogisticRegression().fit(declared(dense=True), labels)
    passes = {str(task["key"]).split("-")[1] for task in stream.data if str(task["key"]).startswith("td-")}
    assert passes == {"_summary"}  # the check, and nothing after it
    with pytest.raises(ValueError, match=r"disagree in width: chunk 2 \(rows 200-299\) has 19 columns"):
        Ridge().fit(declared(width=19), chunked(y, 100))
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity in chunk 2 \(rows 200-299\)"):
        LogisticRegression().fit(declared(nan=True), labels)
    wide = sp.random(300, 5000, density=0.001, format="csr", random_state=0)
    with pytest.raises(ValueError, match=r"sparse with d = 5000 features.*at most 4096.*SciPy matrix in memory"):
        Ridge().fit(sparse_chunked(wide, 100), chunked(y, 100))


def test_data_parallel_gives_sparse_chunks_as_sparse_tensors(client, rng):
    """A sparse chunk reaches loss_fn as td's CSR tensor; the step is the full-batch one."""
    X, y, _ = sparse_problem(rng, n=600, d=10, density=0.3)
    model = td.nn.Linear(10, 1, dtype="float64")
    gradients = DataParallel(sparse_chunked(X, 200), chunked(y, 200)).loss_and_grad(model, _sparse_mse)[1]
    _sparse_mse(model, td.tensor(X), td.tensor(y)).backward()
    np.testing.assert_allclose(gradients[0], model.weight.grad.numpy(), rtol=1e-10)


def _sparse_mse(model, X, y):
    assert X.layout == td.sparse_csr
    return td.nn.functional.mse_loss((X @ model.weight.T + model.bias)[:, 0], y)


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
    for model in (Ridge(), LogisticRegression()):
        with pytest.raises(ValueError, match=f"{type(model).__name__} requires y to be passed"):
            model.fit(chunked(X, 100), None)


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


# ----------------------------------------------------------------- stochastic solvers: their own fit


def _partial_fit_loop(model, X, y, w, epochs, rows=300, **classes):
    """The single-machine reference: partial_fit over the chunks of (X, y, w), each epoch in the
    order the Dask fit draws for the same random_state (``chunk_orders``)."""
    from tinygrad_dot.distributed._models import chunk_orders

    orders = chunk_orders(model.random_state, -(-X.shape[0] // rows), model.shuffle)
    for _ in range(epochs):
        for i in next(orders):
            part = slice(i * rows, (i + 1) * rows)
            model.partial_fit(X[part], y[part], sample_weight=None if w is None else w[part], **classes)
    return model


@pytest.mark.parametrize("case", ["classifier", "regressor"])
def test_sgd_fit_equals_partial_fit_over_the_same_chunk_order(client, rng, case):
    """Each epoch of fit on a Dask array is partial_fit's pass over every chunk, in a seeded
    order: bitwise the iterates of that partial_fit loop on one machine."""
    from sklearn.utils.class_weight import compute_class_weight

    from tinygrad_dot.models import SGDClassifier, SGDRegressor

    X, y = regression(rng, n=900, d=4)
    X = (X - X.mean(0)) / X.std(0)
    w = rng.uniform(0.5, 2, len(X))
    if case == "classifier":  # one-vs-rest over string labels, balanced from the whole y, elastic net
        labels = np.array(["ant", "bee", "cat"])[np.digitize(X[:, 0] - X[:, 1], [-0.5, 0.5])]
        params = dict(loss="log_loss", penalty="elasticnet", alpha=1e-3, random_state=4, max_iter=4, tol=None)
        model = SGDClassifier(class_weight="balanced", **params)
        model.fit(chunked(X), chunked(labels), sample_weight=chunked(w))
        classes = np.unique(labels)
        balanced = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=labels)))
        reference = _partial_fit_loop(SGDClassifier(class_weight=balanced, **params), X, labels, w, 4, classes=classes)
        assert list(model.classes_) == list(classes)
    else:  # float32, Adam, l1, and fit's own stopping rule on the training loss
        X, y = X.astype(np.float32), y.astype(np.float32)
        params = dict(loss="huber", penalty="l1", optimizer="adam", learning_rate="constant", eta0=0.05,
                      random_state=2, max_iter=200, n_iter_no_change=2)
        model = SGDRegressor(**params).fit(chunked(X), chunked(y), sample_weight=w)  # NumPy weights: cut like X
        assert model.n_iter_ < 200 and model.coef_.dtype == np.float32
        reference = _partial_fit_loop(SGDRegressor(**params), X, y, w, model.n_iter_)
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    np.testing.assert_array_equal(model.intercept_, reference.intercept_)
    assert model.t_ == reference.t_ and len(model.loss_curve_) == model.n_iter_


def test_sgd_fit_keeps_the_chunks_on_the_workers(client, rng):
    """A chunk's targets are built once per fit, by one task per worker; an epoch is one task
    per chunk (run where the chunk is), and predictions and score stay on the workers."""
    from tinygrad_dot.models import SGDClassifier

    X, _ = regression(rng, n=900, d=4)
    X = (X - X.mean(0)) / X.std(0)
    labels = (X[:, 0] + X[:, 2] > 0).astype(int)
    with distributed.get_task_stream(client) as stream:
        model = SGDClassifier(random_state=0, max_iter=3, tol=None).fit(chunked(X), chunked(labels))
    ran = [str(task["key"]).split("-")[1] for task in stream.data if str(task["key"]).startswith("td-")]
    workers = {task["worker"] for task in stream.data if str(task["key"]).startswith("td-_sgd_chunk")}
    assert ran.count("_sgd_rows") == len(workers) and ran.count("_sgd_chunk") == 3 * 3
    assert model.score(chunked(X), chunked(labels)) > 0.9
    reference = _partial_fit_loop(SGDClassifier(random_state=0), X, labels, None, 3, classes=[0, 1])
    np.testing.assert_array_equal(model.coef_, reference.coef_)


def test_sgd_chunk_task_is_pure(rng):
    """A chunk's task copies the state it gets (which may be another task's result in the
    worker's memory), so that Dask can rerun it after a lost worker and get the same."""
    from tinygrad_dot.distributed._models import _sgd_chunk, _sgd_rows
    from tinygrad_dot.models import SGDRegressor

    X, y = regression(rng, n=300, d=3)
    model = SGDRegressor(random_state=0, optimizer="adam", penalty="l1").partial_fit(X[:10], y[:10])
    state = (model, np.zeros(1))
    rows = _sgd_rows(X, y, None, model)
    first, second = _sgd_chunk(X, rows, state, 1.0), _sgd_chunk(X, rows, state, 1.0)
    np.testing.assert_array_equal(first[0].coef_, second[0].coef_)
    assert first[0].t_ == second[0].t_ == model.t_ + 300 and first[1][0] == second[1][0]


@pytest.mark.gpu
def test_sgd_chunk_task_on_a_gpu_chunk_matches_the_cpu(rng):
    """A CuPy chunk's pass runs on its GPU (targets built there once) and hands the state back
    on the host: the same step as on the NumPy chunk."""
    import cupy

    from tinygrad_dot.distributed._models import _sgd_chunk, _sgd_rows
    from tinygrad_dot.models import SGDClassifier

    X, _ = regression(rng, n=300, d=3)
    labels = np.digitize(X[:, 0], [2.0, 4.0])
    model = SGDClassifier(loss="log_loss", optimizer="adam", random_state=0).partial_fit(X[:10], labels[:10],
                                                                                        classes=[0, 1, 2])
    x_gpu = cupy.asarray(X)
    rows = _sgd_rows(x_gpu, labels, None, model)
    assert isinstance(rows.Y, cupy.ndarray) and rows.Y.device == x_gpu.device
    on_gpu, total_gpu = _sgd_chunk(x_gpu, rows, (model, np.zeros(3)), 1.0)
    on_cpu, total_cpu = _sgd_chunk(X, _sgd_rows(X, labels, None, model), (model, np.zeros(3)), 1.0)
    assert type(on_gpu.coef_) is np.ndarray and all(type(a) is np.ndarray for a in on_gpu._adam[1:])
    np.testing.assert_allclose(on_gpu.coef_, on_cpu.coef_, rtol=1e-10)
    np.testing.assert_allclose(total_gpu, total_cpu, rtol=1e-10)


def test_sgd_predictions_on_dask_arrays(client, rng):
    from tinygrad_dot.models import SGDClassifier, SGDRegressor

    X, y = regression(rng, n=600, d=4)
    X = (X - X.mean(0)) / X.std(0)
    labels = np.digitize(X[:, 0], [-0.5, 0.5])
    Xd = chunked(X)
    classifier = SGDClassifier(loss="log_loss", random_state=0).fit(X, labels)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        lazy = getattr(classifier, method)(Xd)
        assert isinstance(lazy, da.Array), method
        np.testing.assert_allclose(lazy.compute(), getattr(classifier, method)(X), rtol=1e-12, err_msg=method)
    assert classifier.score(Xd, chunked(labels)) == classifier.score(X, labels)
    regressor = SGDRegressor(random_state=0).fit(Xd, chunked(y))
    assert isinstance(regressor.predict(Xd), da.Array)
    assert regressor.score(Xd, chunked(y)) == pytest.approx(regressor.score(X, y), rel=1e-12)


def test_sgd_fit_refuses_bad_chunks_and_parameters(client, rng):
    from tinygrad_dot.models import SGDClassifier, SGDRegressor
    from tinygrad_dot.models.base import DivergenceError

    X, y = regression(rng, n=300)
    with pytest.raises(ValueError, match=r"y's chunks do not line up with X's rows: X chunk 1 holds rows 100-199"):
        SGDRegressor().fit(chunked(X, 100), da.from_array(y, chunks=(100, 150, 50)))
    X_nan = _declared([((100, 4),), ((100, 4), np.float64, np.nan), ((100, 4),)], (100, 4), np.float64)
    with pytest.raises(ValueError, match=r"Input X contains NaN or infinity in chunk 1 \(rows 100-199\)"):
        SGDClassifier().fit(X_nan, da.from_array(np.arange(300) % 2, chunks=100))
    with pytest.raises(ValueError, match="only one class"):
        SGDClassifier().fit(chunked(X, 100), chunked(np.zeros(300), 100))
    with pytest.raises(ValueError, match="the sample weights sum to zero"):
        SGDRegressor().fit(chunked(X, 100), chunked(y, 100), sample_weight=np.zeros(300))
    with pytest.raises(ValueError, match="early_stopping=True"):
        SGDRegressor(early_stopping=True).fit(chunked(X, 100), chunked(y, 100))
    with pytest.raises(ValueError, match="SGDClassifier requires y to be passed"):
        SGDClassifier().fit(chunked(X, 100), None)
    d = X.shape[1]
    with pytest.raises(ValueError, match=rf"coef_init does not match dataset: expected \(3, {d}\)"):
        SGDClassifier().fit(chunked(X, 100), chunked(np.arange(300) % 3, 100), coef_init=np.zeros((2, d)))
    model = SGDRegressor(learning_rate="constant", eta0=10.0, tol=None, random_state=0, dtype="float32")
    with pytest.raises(DivergenceError, match=r"epoch \d+.*smaller eta0"):  # float32 overflows within a few epochs
        model.fit(chunked(X * 100, 100), chunked(y, 100))
    assert np.all(np.isfinite(model.coef_)) and all(np.isfinite(model.loss_curve_))  # the last finite epoch's


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


@pytest.mark.parametrize("solver", ["lbfgs", "sgd"])
def test_fit_survives_a_killed_worker(client, rng, solver):
    from tinygrad_dot.models import SGDClassifier

    scheduler = client.cluster.scheduler
    X = da.random.default_rng(7).standard_normal((6000, 8), chunks=(1000, 8))  # recomputable from its seed
    X_np = X.compute()
    labels = np.digitize(X_np @ np.arange(8.0) + rng.standard_normal(6000), [-5.0, 5.0])
    y = da.from_array(labels, chunks=1000)
    if solver == "lbfgs":
        def make():
            return LogisticRegression(C=10.0, tol=1e-8, max_iter=300)
        reference = make().fit(X_np, labels)
        task, started = "td-_logistic_eval", 3 * 2  # three evaluations have started (a task per worker)
    else:
        def make():
            return SGDClassifier(loss="log_loss", random_state=0, max_iter=6, tol=None)
        reference = _partial_fit_loop(make(), X_np, labels, None, 6, rows=1000, classes=np.unique(labels))
        task, started = "td-_sgd_chunk", 2 * 6 + 2  # in the third epoch (a task per chunk)
    pids = client.run(os.getpid)
    killed = {}

    def kill_once_started():
        deadline, seen = time.monotonic() + 60, set()
        while time.monotonic() < deadline and "pid" not in killed and not done.is_set():
            seen |= {k for k in list(scheduler.tasks) if str(k).startswith(task)}
            if len(seen) >= started:
                address, pid = next(iter(pids.items()))
                killed.update(pid=pid, address=address, seen=len(seen))
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.005)

    done = threading.Event()
    watcher = threading.Thread(target=kill_once_started)
    watcher.start()
    try:
        model = make().fit(X, y)
    finally:
        done.set()
        watcher.join()
    assert "pid" in killed, "the fit finished before a worker could be killed"
    assert killed["address"] not in client.scheduler_info()["workers"] or client.run(os.getpid).get(
        killed["address"]) != killed["pid"]
    if solver == "lbfgs":
        assert model.n_iter_[0] == reference.n_iter_[0]
        assert rel_error(model.coef_, reference.coef_) < 1e-6
    else:  # the rerun links start from the same state: the same iterates, bit for bit
        np.testing.assert_array_equal(model.coef_, reference.coef_)
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
