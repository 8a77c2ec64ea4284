"""td.models: exact optima against NumPy's lstsq and scikit-learn's solvers, sample and
class weights, scikit-learn's own estimator checks, robustness to badly scaled or
extreme data, device and dtype rules, save/load."""
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the 'models' extra)")
import sklearn.linear_model as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import tinygrad_dot as td  # noqa: E402
import tinygrad_dot.io as tio  # noqa: E402
from tinygrad_dot import models  # noqa: E402
from tinygrad_dot._extras import install_hint  # noqa: E402
from tinygrad_dot.data import load_dataset  # noqa: E402
from tinygrad_dot.models import LinearRegression, LogisticRegression, NotFittedError, Ridge  # noqa: E402

from conftest import rel_error  # noqa: E402


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes", dtype=np.float64)  # raw: uncentred features, target in the hundreds


def with_intercept(X):
    return np.c_[X, np.ones(len(X))]


def lstsq(X, y, weights=None):
    """float64 reference: weighted least squares with an intercept, as (coef, intercept)."""
    root = np.sqrt(np.ones(len(X)) if weights is None else weights)
    solution = np.linalg.lstsq(with_intercept(X) * root[:, None], y * (root if y.ndim == 1 else root[:, None]),
                               rcond=None)[0]
    return solution[:-1], solution[-1]


# ----------------------------------------------------------------- scikit-learn's own checks


@parametrize_with_checks([LinearRegression(), Ridge(), LogisticRegression(),
                          LogisticRegression(penalty="elasticnet", l1_ratio=0.5)])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.IllConditionedWarning)  # the checks fit 15 samples x 30 features
        check(estimator)


# ----------------------------------------------------------------- least squares, exactly


@pytest.mark.parametrize("dtype, tolerance", [("float64", 1e-6), ("float32", 1e-4)])
def test_linear_regression_equals_lstsq_on_raw_diabetes(diabetes, dtype, tolerance):
    X, y = diabetes.X_train.astype(dtype), diabetes.y_train.astype(dtype)
    coef, intercept = lstsq(X.astype(np.float64), y.astype(np.float64))
    model = LinearRegression().fit(X, y)
    assert model.coef_.dtype == np.dtype(dtype) and model.coef_.shape == (10,) and np.ndim(model.intercept_) == 0
    assert rel_error(model.coef_, coef) < tolerance
    assert abs(model.intercept_ - intercept) < tolerance * abs(intercept)
    assert model.solver_ == "cholesky"


def test_float32_least_squares_is_refined_to_float64_accuracy(rng):
    # cond(X) ~ 1e3: the float32 normal equations alone carry ~1e-1 of error (cond^2 * eps32).
    n, d = 4000, 20
    X = rng.standard_normal((n, d)) @ np.diag(np.logspace(0, -3, d)) + 5.0
    y = X @ rng.standard_normal(d) + 0.01 * rng.standard_normal(n)
    X32, y32 = X.astype(np.float32), y.astype(np.float32)
    coef, _ = lstsq(X32.astype(np.float64), y32.astype(np.float64))
    assert rel_error(LinearRegression().fit(X32, y32).coef_, coef) < 1e-4


def test_multi_target_and_sample_weights_match_lstsq(rng):
    X = rng.standard_normal((200, 6))
    Y = X @ rng.standard_normal((6, 3)) + rng.standard_normal((200, 3))
    weights = rng.uniform(0.1, 3.0, 200)
    coef, intercept = lstsq(X, Y, weights)
    model = LinearRegression().fit(X, Y, sample_weight=weights)
    assert model.coef_.shape == (3, 6) and model.intercept_.shape == (3,)
    assert rel_error(model.coef_, coef.T) < 1e-10 and rel_error(model.intercept_, intercept) < 1e-10


def test_ridge_equals_scikit_learn_and_its_closed_form(diabetes, rng):
    X, y = diabetes.X_train, diabetes.y_train
    for alpha in (1e-3, 1.0, 300.0):
        ours, theirs = Ridge(alpha=alpha).fit(X, y), sk.Ridge(alpha=alpha).fit(X, y)
        assert rel_error(ours.coef_, theirs.coef_) < 1e-8 and abs(ours.intercept_ - theirs.intercept_) < 1e-6
    # Closed form without intercept, per-target alphas.
    Y = np.c_[y, 2 * y + rng.standard_normal(len(y))]
    alphas = np.array([0.5, 50.0])
    model = Ridge(alpha=alphas, fit_intercept=False).fit(X, Y)
    for j in range(2):
        reference = np.linalg.solve(X.T @ X + alphas[j] * np.eye(10), X.T @ Y[:, j])
        assert rel_error(model.coef_[j], reference) < 1e-8
    assert np.all(model.intercept_ == 0)


def test_integer_weights_equal_repeated_rows(rng, diabetes, iris):
    counts = rng.integers(0, 4, len(diabetes.y_train))
    for estimator in (LinearRegression(), Ridge(alpha=2.0)):
        weighted = clone(estimator).fit(diabetes.X_train, diabetes.y_train, sample_weight=counts)
        repeated = clone(estimator).fit(np.repeat(diabetes.X_train, counts, axis=0),
                                        np.repeat(diabetes.y_train, counts))
        assert rel_error(weighted.coef_, repeated.coef_) < 1e-9
    counts = rng.integers(0, 4, len(iris.y_train))
    weighted = LogisticRegression(tol=1e-10).fit(iris.X_train, iris.y_train, sample_weight=counts)
    repeated = LogisticRegression(tol=1e-10).fit(np.repeat(iris.X_train, counts, axis=0),
                                                 np.repeat(iris.y_train, counts))
    assert rel_error(weighted.coef_, repeated.coef_) < 1e-6


def test_collinear_features_fall_back_to_svd_with_a_warning(rng):
    X = rng.standard_normal((100, 3))
    X = np.c_[X, X[:, 0] + X[:, 1]]  # rank 3
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.1 * rng.standard_normal(100)
    with pytest.warns(models.IllConditionedWarning, match="SVD"):
        model = LinearRegression().fit(X, y)
    assert model.solver_ == "svd"
    np.testing.assert_allclose(model.predict(X), with_intercept(X) @ np.linalg.lstsq(with_intercept(X), y,
                                                                                      rcond=None)[0], rtol=1e-8)
    # Minimum norm, as numpy.linalg.lstsq: the null-space direction (1, 1, 0, -1) carries nothing.
    assert abs(model.coef_ @ np.array([1, 1, 0, -1])) < 1e-8
    assert LinearRegression(solver="svd").fit(X[:, :3], y).solver_ == "svd"


# ----------------------------------------------------------------- logistic regression


def _objective(model, X, y, C, weights=None):
    """scikit-learn's lbfgs objective, 0.5 ||W||^2 + C sum_i w_i loss_i, in float64."""
    weights = np.ones(len(y)) if weights is None else weights
    scores = X @ model.coef_.T.astype(np.float64) + model.intercept_
    if scores.shape[1] == 1:
        z = scores[:, 0]
        loss = np.logaddexp(0, z) - (y == model.classes_[1]) * z
    else:
        index = np.searchsorted(model.classes_, y)
        loss = np.logaddexp.reduce(scores, axis=1) - scores[np.arange(len(y)), index]
    return 0.5 * float((model.coef_.astype(np.float64) ** 2).sum()) + C * float(weights @ loss)


@pytest.mark.parametrize("dataset, C", [("breast_cancer", 1.0), ("breast_cancer", 0.05), ("iris", 10.0),
                                        ("digits", 0.1)])
def test_logistic_regression_reaches_scikit_learns_optimum(dataset, C):
    split = load_dataset(dataset, standardize=True, dtype=np.float64)
    X, y = split.X_train, split.y_train
    ours = LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X, y)
    theirs = sk.LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X, y)
    ours_f, theirs_f = _objective(ours, X, y, C), _objective(theirs, X, y, C)
    assert ours_f <= theirs_f * (1 + 1e-6)
    assert rel_error(ours.coef_, theirs.coef_) < 1e-4
    assert ours.coef_.shape == theirs.coef_.shape and ours.n_iter_.shape == (1,)
    np.testing.assert_array_equal(ours.predict(split.X_test), theirs.predict(split.X_test))
    np.testing.assert_allclose(ours.predict_proba(split.X_test), theirs.predict_proba(split.X_test), atol=1e-4)


def test_logistic_regression_default_tolerance_and_float32(cancer):
    X, y = cancer.X_train, cancer.y_train
    theirs = sk.LogisticRegression().fit(X, y)
    for dtype in ("float64", "float32"):
        ours = LogisticRegression(dtype=dtype).fit(X, y)
        assert ours.coef_.dtype == np.dtype(dtype)
        assert _objective(ours, X, y, 1.0) <= _objective(theirs, X, y, 1.0) * (1 + 1e-5)
        assert ours.score(cancer.X_test, cancer.y_test) >= theirs.score(cancer.X_test, cancer.y_test) - 0.005


def test_class_weights_match_scikit_learn(cancer):
    X, y = cancer.X_train, cancer.y_train
    for class_weight in ("balanced", {0: 3.0, 1: 0.5}):
        ours = LogisticRegression(class_weight=class_weight, tol=1e-8).fit(X, y)
        theirs = sk.LogisticRegression(class_weight=class_weight, tol=1e-8, max_iter=1000).fit(X, y)
        assert rel_error(ours.coef_, theirs.coef_) < 1e-4


def test_l1_and_elastic_net_give_exact_zeros_on_the_saga_support(rng):
    n, d = 400, 30
    X = rng.standard_normal((n, d))
    truth = np.zeros(d)
    truth[:5] = rng.choice([-2.0, 2.0], 5)
    y = (X @ truth + 0.5 * rng.standard_normal(n) > 0).astype(int)
    for penalty, l1_ratio in (("l1", None), ("elasticnet", 0.7)):
        ours = LogisticRegression(penalty=penalty, l1_ratio=l1_ratio, C=0.05, tol=1e-8, max_iter=20000).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's penalty/l1_ratio deprecation and saga convergence
            theirs = sk.LogisticRegression(l1_ratio=1.0 if penalty == "l1" else l1_ratio, C=0.05, solver="saga",
                                           tol=1e-10, max_iter=100000).fit(X, y)
        support = ours.coef_ != 0
        assert 0 < support.sum() < d and np.array_equal(support, theirs.coef_ != 0)
        assert rel_error(ours.coef_, theirs.coef_) < 1e-3


def test_lbfgs_refuses_l1_and_max_iter_warns(cancer):
    with pytest.raises(ValueError, match="solver='lbfgs' supports penalty 'l2' or None"):
        LogisticRegression(penalty="l1", solver="lbfgs").fit(cancer.X_train, cancer.y_train)
    with pytest.warns(models.ConvergenceWarning, match="reached max_iter=2"):
        model = LogisticRegression(max_iter=2).fit(cancer.X_train, cancer.y_train)
    assert model.n_iter_[0] == 2


def test_warm_start_continues_from_the_previous_solution(cancer):
    X, y = cancer.X_train, cancer.y_train
    cold = LogisticRegression(tol=1e-8).fit(X, y)
    warm = LogisticRegression(tol=1e-8, warm_start=True).fit(X, y)
    assert warm.fit(X, y).n_iter_[0] <= 2 < cold.n_iter_[0]
    assert rel_error(warm.coef_, cold.coef_) < 1e-5


def test_string_labels_and_probabilities(iris):
    names = np.array(["setosa", "versicolor", "virginica"])[iris.y_train]
    model = LogisticRegression().fit(iris.X_train, names)
    assert model.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    proba = model.predict_proba(iris.X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(model.predict_log_proba(iris.X_test)), proba, rtol=1e-10)
    assert set(model.predict(iris.X_test)) <= set(names)


# ----------------------------------------------------------------- robustness (extreme and badly scaled data)


def test_badly_scaled_and_constant_features(rng):
    n = 500
    base = rng.standard_normal((n, 4))
    X = np.c_[base * np.array([1e6, 1e9, 1e12, 1.0]), np.full(n, 7.0)]  # scales 1e0..1e12 and a constant
    y = base @ np.array([1.0, -1.0, 2.0, 0.5]) + 0.1 * rng.standard_normal(n)
    model = LinearRegression().fit(X, y)
    assert model.score(X, y) > 0.99
    np.testing.assert_allclose(model.coef_[:4] * np.array([1e6, 1e9, 1e12, 1.0]), [1.0, -1.0, 2.0, 0.5], atol=0.05)
    labels = (base[:, 0] - base[:, 2] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("error", models.ConvergenceWarning)
        classifier = LogisticRegression(C=100.0).fit(X, labels)
    assert classifier.score(X, labels) > 0.97


def test_huge_and_non_finite_targets(rng):
    X = rng.standard_normal((100, 3))
    y = 1e20 * (X @ np.array([1.0, 2.0, 3.0]) + 5.0)
    for dtype in ("float64", "float32"):
        model = LinearRegression(dtype=dtype).fit(X, y)
        assert model.score(X, y) > 1 - 1e-6 and abs(model.intercept_ / 5e20 - 1) < 1e-5
    for bad in (np.nan, np.inf):
        y_bad = y.copy()
        y_bad[3] = bad
        with pytest.raises(ValueError, match="Input y contains (NaN|infinity)"):
            LinearRegression().fit(X, y_bad)
    labels = np.where(X[:, 0] > 0, 1e20, 0.0)  # integral float labels: classes, never wrapped to negative ints
    model = LogisticRegression().fit(X, labels)
    assert model.classes_.tolist() == [0.0, 1e20] and set(model.predict(X)) <= {0.0, 1e20}
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LogisticRegression().fit(X, X[:, 0])


def test_pandas_feature_names_are_recorded_and_checked(iris):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(iris.X_train, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    model = LogisticRegression().fit(frame, pd.Series(iris.y_train))
    assert model.feature_names_in_.tolist() == ["sepal_l", "sepal_w", "petal_l", "petal_w"]
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        model.predict(frame[["sepal_w", "sepal_l", "petal_l", "petal_w"]])


def test_inputs_of_every_kind_give_the_same_model(diabetes):
    X, y = diabetes.X_train[:100], diabetes.y_train[:100]
    reference = LinearRegression().fit(X, y).coef_
    for X_in, y_in in ((X.tolist(), y.tolist()), (td.tensor(X), td.tensor(y))):
        np.testing.assert_allclose(LinearRegression().fit(X_in, y_in).coef_, reference, rtol=1e-12)
    # Integer input computes in float64 (scikit-learn's rule); float32 stays float32.
    assert LinearRegression().fit(np.arange(20).reshape(10, 2) ** 2, np.arange(10)).coef_.dtype == np.float64
    assert LinearRegression().fit(X.astype(np.float32), y).coef_.dtype == np.float32
    with pytest.raises(ValueError, match="dtype must be None, 'float32' or 'float64'"):
        LinearRegression(dtype="int32").fit(X, y)


def test_drop_in_with_scikit_learn_tools(iris, diabetes):
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    assert cross_val_score(pipe, iris.X_train, iris.y_train, cv=3).mean() > 0.85
    search = GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, cv=3).fit(diabetes.X_train, diabetes.y_train)
    assert search.best_params_["alpha"] in (0.1, 10.0)
    assert repr(Ridge(alpha=2.0)) == "Ridge(alpha=2.0)"


# ----------------------------------------------------------------- persistence


def test_save_and_load_round_trip(tmp_path, iris, diabetes):
    names = np.array(["setosa", "versicolor", "virginica"])
    classifier = LogisticRegression(C=0.5).fit(iris.X_train, names[iris.y_train])
    regressor = Ridge(alpha=0.3, dtype="float32").fit(diabetes.X_train, diabetes.y_train)
    for model, X in ((classifier, iris.X_test), (regressor, diabetes.X_test)):
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = models.load(path)
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert models.load(tmp_path / "LogisticRegression.npz").classes_.tolist() == names.tolist()


def test_loading_damaged_or_foreign_model_files(tmp_path, iris):
    with pytest.raises(NotFittedError):
        LogisticRegression().save(tmp_path / "unfitted.npz")
    LogisticRegression().fit(iris.X_train, iris.y_train).save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        models.load(tmp_path / "cut.npz")
    tio.save({"model": "os.system", "params": {}, "fitted": {}}, tmp_path / "odd.npz", kind="model")
    with pytest.raises(ValueError, match="unknown model type 'os.system'"):
        models.load(tmp_path / "odd.npz")
    tio.save({"model": "Ridge", "params": {}, "fitted": {"coef_": np.ones(3)}}, tmp_path / "part.npz", kind="model")
    with pytest.raises(ValueError, match="fitted state is incomplete"):
        models.load(tmp_path / "part.npz")


def test_import_without_scikit_learn_keeps_the_core_working():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import tinygrad_dot as td\n"
            "assert float((td.tensor([1.0, 2.0]) * 2).sum()) == 6.0\n"
            "try:\n    td.models\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert install_hint("models") in out  # the extra's own requirements, not an index lookup of our name


# ----------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_fitting_on_the_gpu_matches_the_cpu(iris, diabetes):
    cp = pytest.importorskip("cupy")
    for estimator, split in ((LogisticRegression(tol=1e-8), iris), (Ridge(alpha=1.0), diabetes)):
        cpu = clone(estimator).fit(split.X_train, split.y_train)
        gpu = clone(estimator).set_params(device="cuda").fit(split.X_train, split.y_train)
        np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
        on_device = clone(estimator).fit(cp.asarray(split.X_train), cp.asarray(split.y_train))
        np.testing.assert_allclose(on_device.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
        predicted = on_device.predict(cp.asarray(split.X_test))
        # Class labels come back on the host (classes_ lives there); regression values stay on the GPU.
        assert isinstance(predicted, np.ndarray if isinstance(estimator, LogisticRegression) else cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(predicted) if isinstance(predicted, cp.ndarray) else predicted,
                                   cpu.predict(split.X_test), rtol=1e-5, atol=1e-6)


def test_a_constant_column_as_the_users_own_bias(rng):
    # A column of 3.0 with fit_intercept=False is the intercept in disguise; its rounding-level
    # deviation once preconditioned it by 1e-15, and the fit returned coefficients of 1e8.
    x = rng.standard_normal(200)
    X = np.c_[np.full(200, 3.0), x]
    y = (x + rng.standard_normal(200) > 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's saga convergence and l1_ratio notices
        saga = sk.LogisticRegression(l1_ratio=1.0, solver="saga", fit_intercept=False, tol=1e-10,
                                     max_iter=100000).fit(X, y)
    ours = LogisticRegression("l1", fit_intercept=False, tol=1e-8, max_iter=5000).fit(X, y)
    assert rel_error(ours.coef_, saga.coef_) < 1e-4
    unpenalised = sk.LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-8).fit(X, y)
    assert rel_error(LogisticRegression(None, fit_intercept=False, tol=1e-8).fit(X, y).coef_,
                     unpenalised.coef_) < 1e-4
    with_intercept = LogisticRegression(None).fit(X, y)  # the column is collinear with the intercept
    assert np.all(np.abs(with_intercept.coef_) < 10) and with_intercept.score(X, y) == unpenalised.score(X, y)


def test_multinomial_intercepts_equal_scikit_learns(iris):
    ours = LogisticRegression(tol=1e-8).fit(iris.X_train, iris.y_train)
    theirs = sk.LogisticRegression(tol=1e-8).fit(iris.X_train, iris.y_train)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-5)
