"""td.models on sparse X: every estimator accepts SciPy's formats (CSR, CSC, COO; matrix and
array types) and td sparse tensors, fits without densifying X, and gives the model of the
dense copy (to solver tolerance) and scikit-learn's; scikit-learn's sparse estimator checks
run; the text-like data set td.data.make_sparse_text."""
import tracemalloc
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the 'models' extra)")
import scipy.sparse as sp  # noqa: E402
import sklearn.linear_model as sk  # noqa: E402
from sklearn.utils.estimator_checks import _yield_all_checks  # noqa: E402

import tinygrad_dot as td  # noqa: E402
from tinygrad_dot import models  # noqa: E402

from conftest import rel_error  # noqa: E402

FORMATS = [sp.csr_matrix, sp.csr_array, sp.csc_matrix, sp.coo_array]
ESTIMATORS = [models.LinearRegression, models.Ridge, models.LogisticRegression, models.SGDClassifier,
              models.SGDRegressor]


def sparse_problem(rng, n=300, d=40, density=0.1, offset=0.0):
    X = sp.random(n, d, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = 3 * X.data + offset  # unscaled, uncentred features
    w = rng.standard_normal(d)
    z = X @ w
    return X, z + 0.1 * rng.standard_normal(n) + 2.0, (z > np.median(z)).astype(np.int64)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("make, target, tol", [
    (lambda: models.LinearRegression(), "y", 1e-8),
    (lambda: models.Ridge(alpha=0.7), "y", 1e-8),
    (lambda: models.LogisticRegression(C=5.0, tol=1e-8, max_iter=500), "labels", 1e-6),
], ids=["linear", "ridge", "logistic"])
def test_sparse_fit_equals_the_dense_fit(rng, fmt, make, target, tol):
    X, y, labels = sparse_problem(rng)
    yy = y if target == "y" else labels
    weights = rng.uniform(0.2, 2.0, X.shape[0])
    sparse_model = make().fit(fmt(X), yy, sample_weight=weights)
    dense_model = make().fit(X.toarray(), yy, sample_weight=weights)
    assert rel_error(sparse_model.coef_, dense_model.coef_) < tol
    assert rel_error(sparse_model.intercept_, dense_model.intercept_) < tol
    assert sparse_model.solver_ == ("lsqr" if target == "y" else "lbfgs")
    np.testing.assert_allclose(sparse_model.predict(fmt(X)), dense_model.predict(X.toarray()), rtol=1e-6, atol=1e-6)


def test_sparse_least_squares_match_scikit_learn(rng):
    X, y, _ = sparse_problem(rng, n=400, d=60, offset=1.0)
    Y = np.c_[y, -2 * y + 1]  # two targets
    ours = models.Ridge(alpha=[0.3, 3.0]).fit(X, Y)
    theirs = sk.Ridge(alpha=[0.3, 3.0], solver="sparse_cg", tol=1e-12, max_iter=10_000).fit(X, Y)
    assert rel_error(ours.coef_, theirs.coef_) < 1e-7 and rel_error(ours.intercept_, theirs.intercept_) < 1e-7
    ours = models.LinearRegression().fit(X, y)
    theirs = sk.LinearRegression().fit(X.toarray(), y)
    assert rel_error(ours.coef_, theirs.coef_) < 1e-8 and ours.n_iter_[0] > 0


def test_logistic_on_sparse_matches_scikit_learn_multiclass(rng):
    X, y, _ = sparse_problem(rng, n=400, d=30)
    labels = np.digitize(y, np.quantile(y, [0.33, 0.66]))
    ours = models.LogisticRegression(C=2.0, tol=1e-9, max_iter=1000).fit(X, labels)
    theirs = sk.LogisticRegression(C=2.0, tol=1e-12, max_iter=10_000).fit(X, labels)
    assert rel_error(ours.coef_, theirs.coef_) < 1e-5
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)


@pytest.mark.parametrize("cls, target", [(models.SGDClassifier, "labels"), (models.SGDRegressor, "y")])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sgd_on_sparse_equals_dense_step_for_step(rng, cls, target):
    X, y, labels = sparse_problem(rng)
    yy = labels if target == "labels" else y
    params = dict(random_state=3, max_iter=15, tol=None, batch_size=16)
    sparse_model = cls(**params).fit(sp.csc_matrix(X), yy)
    dense_model = cls(**params).fit(X.toarray(), yy)
    assert rel_error(sparse_model.coef_, dense_model.coef_) < 1e-10
    assert rel_error(sparse_model.loss_curve_, dense_model.loss_curve_) < 1e-10
    # partial_fit and early stopping (validation rows picked by index arrays) on sparse chunks
    streamed = cls(random_state=3)
    for chunk in (slice(0, 150), slice(150, 300)):
        streamed.partial_fit(X[chunk], yy[chunk], **({"classes": np.unique(yy)} if target == "labels" else {}))
    assert streamed.coef_.shape == dense_model.coef_.shape
    early = cls(random_state=0, early_stopping=True, max_iter=30).fit(X, yy)
    assert early.n_iter_ <= 30 and np.all(np.isfinite(early.coef_))


def test_wide_sparse_fits_never_densify(rng):
    """50,000 columns: the dense copy (n x d float64) would take 80 MB; every fit stays far below."""
    n, d = 200, 50_000
    X = sp.random(n, d, density=0.002, format="csr", random_state=rng)
    y = X @ rng.standard_normal(d) + rng.standard_normal(n)
    labels = (y > np.median(y)).astype(int)
    dense_bytes = n * d * 8
    for model, target in ((models.Ridge(alpha=1.0), y), (models.LinearRegression(), y),
                          (models.LogisticRegression(max_iter=50), labels), (models.SGDClassifier(max_iter=3), labels)):
        tracemalloc.start()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", models.ConvergenceWarning)
            model.fit(X, target)
            model.predict(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < dense_bytes / 8, f"{type(model).__name__} peaked at {peak / 1e6:.1f} MB"


def test_sparse_inputs_of_every_kind_and_device(rng):
    X, y, _ = sparse_problem(rng)
    reference = models.Ridge().fit(X, y).coef_
    assert rel_error(models.Ridge().fit(td.tensor(X), y).coef_, reference) < 1e-10  # a td sparse tensor
    assert rel_error(models.Ridge(device="emu").fit(X, y).coef_, reference) < 1e-10
    emu = models.LogisticRegression(device="emu").fit(X, (y > 2).astype(int))
    cpu = models.LogisticRegression().fit(X, (y > 2).astype(int))
    assert rel_error(emu.coef_, cpu.coef_) < 1e-8
    assert models.Ridge().fit(X.astype(np.float32), y).coef_.dtype == np.float32
    with pytest.raises(ValueError, match="sparse X"):
        models.Ridge(solver="cholesky").fit(X, y)
    # solver="lsqr" on dense X is the same LSQR
    assert rel_error(models.Ridge(solver="lsqr").fit(X.toarray(), y).coef_, reference) < 1e-8
    with pytest.raises(ValueError, match="NaN|infinity"):
        bad = X.copy()
        bad.data[0] = np.nan
        models.Ridge().fit(bad, y)


def test_sparse_logistic_fit_captured_in_a_cuda_graph_on_emu(rng):
    """cuda_graph=True replays the evaluation, sparse products (our SpMM kernels on emu) included."""
    X, _, labels = sparse_problem(rng, n=200, d=50)
    graphed = models.LogisticRegression(device="emu", cuda_graph=True).fit(X, labels)
    eager = models.LogisticRegression(device="emu").fit(X, labels)
    assert rel_error(graphed.coef_, eager.coef_) < 1e-12 and graphed.n_iter_ == eager.n_iter_


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_estimators_declare_sparse_input_so_the_sparse_checks_run(cls):
    estimator = cls()
    assert estimator.__sklearn_tags__().input_tags.sparse
    names = {getattr(check, "func", check).__name__ for check in _yield_all_checks(estimator, legacy=True)}
    assert {"check_estimator_sparse_array", "check_estimator_sparse_matrix"} <= names


# ----------------------------------------------------------------- the text-like data


def test_make_sparse_text_is_deterministic_zipfian_and_learnable():
    X, y, coef, intercept = td.data.make_sparse_text(1500, 50_000, 0.004, random_state=7, return_coef=True)
    again, y_again = td.data.make_sparse_text(1500, 50_000, 0.004, random_state=7)
    assert (X != again).nnz == 0 and np.array_equal(y, y_again)
    assert X.shape == (1500, 50_000) and sp.issparse(X) and X.format == "csr"
    assert 0.001 <= X.nnz / (X.shape[0] * X.shape[1]) <= 0.01
    np.testing.assert_allclose(sp.linalg.norm(X, axis=1), 1.0, rtol=1e-12)  # unit-length TF-IDF rows
    # Zipf: document frequencies by rank fall off as a power law (slope near -1 on log-log axes)
    df = np.sort(np.bincount(X.indices, minlength=X.shape[1]))[::-1]
    ranks = np.arange(30, 3000)
    slope = np.polyfit(np.log(ranks), np.log(df[ranks]), 1)[0]
    assert -1.6 < slope < -0.5
    assert np.count_nonzero(coef) == 300 and 0.35 < y.mean() < 0.65
    # learnable: a fitted model beats chance clearly on held-out rows
    model = models.LogisticRegression(C=10.0).fit(X[:1200], y[:1200])
    assert model.score(X[1200:], y[1200:]) > 0.6
    regression = td.data.make_sparse_text(400, 50_000, 0.004, task="regression", random_state=1)[1]
    assert regression.dtype == np.float64 and regression.std() > 1.0


@pytest.mark.gpu
def test_cupyx_sparse_X_fits_on_the_gpu(rng):
    import cupyx.scipy.sparse as csp

    X, y, labels = sparse_problem(rng)
    for cls, target in ((models.Ridge, y), (models.LogisticRegression, labels), (models.SGDRegressor, y)):
        kwargs = {"random_state": 0, "max_iter": 5, "tol": None} if cls is models.SGDRegressor else {}
        gpu = cls(**kwargs).fit(csp.csr_matrix(X), target)
        cpu = cls(**kwargs).fit(X, target)
        assert rel_error(gpu.coef_, cpu.coef_) < 1e-6


def test_sparse_benchmark_rows_run_small():
    """benchmarks/sparse.py's two parts on a small problem: every row has its ratios and scores."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sparse.py"
    spec = importlib.util.spec_from_file_location("sparse_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.estimator_rows(300, 100, repeats=1, seed=0, settle=0.0, log=lambda *a: None)
    assert [r["estimator"] for r in rows] == ["LogisticRegression", "LogisticRegression", "Ridge",
                                             "LinearRegression", "SGDClassifier"]
    assert all(r["ratio_td_sklearn"] > 0 and r["d"] == 50_000 for r in rows)
    assert rows[0]["td_solver"] == "lbfgs" and rows[2]["td_solver"] == "lsqr" and "target_met" in rows[0]
    assert abs(rows[0]["objective_relative_difference"]) < 1e-3
    spmm = bench.spmm_rows(200, 1000, (0.01,), (1, 4), repeats=1, seed=0, log=lambda *a: None)
    assert len(spmm) == 2 and all(r["ratio_td_scipy"] > 0 and r["ratio_transposed_td_scipy"] > 0 for r in spmm)
