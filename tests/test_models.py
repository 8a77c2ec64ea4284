"""td.models estimators: closed-form and well-known results on real data,
scikit-learn conventions, every bad-input case, divergence, save/load."""
import warnings

import numpy as np
import pytest

import tinygrad_dot.io as tio
from tinygrad_dot import models
from tinygrad_dot.data import load_dataset
from tinygrad_dot.models import LinearRegression, LogisticRegression, NotFittedError

# Full-batch gradient descent in float64 converges to the exact optimum; used where a
# closed form is the reference. lr 0.4 < 2 / L (the Hessian's eigenvalues lie in [0.009, 4.2] on
# diabetes), so 6000 steps shrink the error by (1 - 0.4 * 0.009) ** 6000, about 3e-10.
EXACT = dict(optimizer="sgd", lr=0.4, batch_size=None, max_epochs=6000, dtype="float64", tol=None)


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes", standardize=True)


@pytest.fixture(scope="module")
def iris():
    return load_dataset("iris", standardize=True)


@pytest.fixture(scope="module")
def cancer():
    return load_dataset("breast_cancer", standardize=True)


def with_intercept(X):
    return np.c_[X, np.ones(len(X))]


# ----------------------------------------------------------------- regression against closed forms


def test_linear_regression_matches_lstsq(diabetes):
    X, y = diabetes.X_train, diabetes.y_train
    reference = np.linalg.lstsq(with_intercept(X), y, rcond=None)[0]
    model = LinearRegression(**EXACT).fit(X, y)
    assert model.coef_.shape == (10,) and isinstance(model.intercept_, float)
    assert np.linalg.norm(model.coef_ - reference[:-1]) < 1e-4 * np.linalg.norm(reference[:-1])
    assert abs(model.intercept_ - reference[-1]) < 1e-6 * abs(reference[-1])
    np.testing.assert_allclose(model.predict(X), with_intercept(X) @ reference, rtol=1e-5)


def _lstsq_r2(X, y):
    residual = y - with_intercept(X) @ np.linalg.lstsq(with_intercept(X), y, rcond=None)[0]
    return 1 - (residual ** 2).sum() / ((y - y.mean()) ** 2).sum()


def test_default_linear_regression_reaches_the_least_squares_fit(diabetes):
    X, y = diabetes.X_train, diabetes.y_train
    with warnings.catch_warnings():
        warnings.simplefilter("error", models.ConvergenceWarning)
        model = LinearRegression(random_state=0).fit(X, y)
    assert model.n_iter_ < model.max_epochs  # stopped on tol
    assert len(model.loss_curve_) == model.n_iter_ and model.loss_curve_[-1] < model.loss_curve_[0]
    assert _lstsq_r2(X, y) - 0.005 < model.score(X, y) <= _lstsq_r2(X, y) + 1e-9


def test_default_linear_regression_fits_raw_features():
    # Raw diabetes: uncentred features with means up to ~190; once stopped at R^2 0.46 (lstsq: 0.518).
    split = load_dataset("diabetes")
    X, y = np.r_[split.X_train, split.X_test], np.r_[split.y_train, split.y_test]
    model = LinearRegression(random_state=0).fit(X, y)
    assert _lstsq_r2(X, y) - 0.01 < model.score(X, y)


def test_linear_regression_warns_when_max_epochs_run_out(diabetes):
    with pytest.warns(models.ConvergenceWarning, match="max_epochs=2"):
        LinearRegression(max_epochs=2, random_state=0).fit(diabetes.X_train, diabetes.y_train)


def test_ridge_matches_its_closed_form(diabetes):
    X, y, alpha = diabetes.X_train, diabetes.y_train, 0.3
    n = len(X)
    Xc, yc = X - X.mean(axis=0), y - y.mean()  # the intercept is not penalised
    coef = np.linalg.solve(Xc.T @ Xc + n * alpha * np.eye(X.shape[1]), Xc.T @ yc)
    # The penalty lifts the smallest Hessian eigenvalue to 0.3: 500 steps are plenty.
    model = LinearRegression(penalty="l2", alpha=alpha, **{**EXACT, "max_epochs": 500}).fit(X, y)
    np.testing.assert_allclose(model.coef_, coef, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.intercept_, y.mean() - X.mean(axis=0) @ coef, rtol=1e-6)


def test_lasso_reaches_scikit_learns_optimum(diabetes):
    sklearn_linear = pytest.importorskip("sklearn.linear_model", reason="scikit-learn (a test extra) is missing")
    X, y, alpha = diabetes.X_train, diabetes.y_train, 1.0
    reference = sklearn_linear.Lasso(alpha=alpha).fit(X, y)
    model = LinearRegression(penalty="l1", alpha=alpha, optimizer="sgd", lr=0.1, batch_size=None,
                             max_epochs=3000, dtype="float64", tol=None).fit(X, y)

    def objective(coef, intercept):  # Lasso's: (1/2n) ||y - Xw - b||^2 + alpha ||w||_1
        return 0.5 * np.mean((y - X @ coef - intercept) ** 2) + alpha * np.abs(coef).sum()

    assert objective(model.coef_, model.intercept_) < objective(reference.coef_, reference.intercept_) * (1 + 1e-4)
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=0.2)
    assert (np.abs(model.coef_[reference.coef_ == 0]) < 0.05).all()


def test_multi_output_regression_matches_lstsq(rng):
    X = rng.standard_normal((200, 4))
    Y = X @ rng.standard_normal((4, 2)) * [1.0, 50.0] + [3.0, -200.0] + rng.standard_normal((200, 2))
    reference = np.linalg.lstsq(with_intercept(X), Y, rcond=None)[0]
    model = LinearRegression(**{**EXACT, "max_epochs": 500}).fit(X, Y)  # well conditioned
    assert model.coef_.shape == (2, 4) and model.intercept_.shape == (2,) and model.predict(X).shape == (200, 2)
    np.testing.assert_allclose(model.coef_, reference[:-1].T, rtol=1e-6)
    np.testing.assert_allclose(model.intercept_, reference[-1], rtol=1e-6)


# ----------------------------------------------------------------- classification on real data


def test_multinomial_logistic_regression_on_iris(iris):
    model = LogisticRegression(random_state=0).fit(iris.X_train, iris.y_train)
    assert model.coef_.shape == (3, 4) and model.intercept_.shape == (3,)
    assert list(model.classes_) == [0, 1, 2]
    assert model.score(iris.X_test, iris.y_test) >= 0.89
    proba = model.predict_proba(iris.X_test)
    assert proba.shape == (len(iris.X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(iris.X_test), proba.argmax(axis=1))
    np.testing.assert_array_equal(model.decision_function(iris.X_test).argmax(axis=1), proba.argmax(axis=1))


def test_binary_logistic_regression_on_breast_cancer(cancer):
    model = LogisticRegression(random_state=0).fit(cancer.X_train, cancer.y_train)
    assert model.coef_.shape == (1, 30) and model.intercept_.shape == (1,)
    assert model.score(cancer.X_test, cancer.y_test) >= 0.95
    scores = model.decision_function(cancer.X_test)
    proba = model.predict_proba(cancer.X_test)
    assert scores.shape == (len(cancer.X_test),) and proba.shape == (len(cancer.X_test), 2)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-scores.astype(np.float64))), rtol=1e-6)
    np.testing.assert_array_equal(model.predict(cancer.X_test), (scores > 0).astype(int))


def test_string_labels(iris):
    names = np.array(["setosa", "versicolor", "virginica"])
    model = LogisticRegression(random_state=0).fit(iris.X_train, names[iris.y_train].tolist())
    assert list(model.classes_) == list(names)
    predicted = model.predict(iris.X_test)
    assert predicted.dtype.kind == "U" and model.score(iris.X_test, names[iris.y_test]) >= 0.89
    binary = LogisticRegression(random_state=0).fit(iris.X_train, np.where(iris.y_train == 0, "yes", "no"))
    assert set(binary.predict(iris.X_test)) <= {"yes", "no"}


def test_partial_fit_continues_training(iris):
    model = LogisticRegression(random_state=0)
    model.partial_fit(iris.X_train[:20], iris.y_train[:20], classes=[0, 1, 2])
    first = model.loss_curve_[-1]
    for _ in range(30):
        model.partial_fit(iris.X_train, iris.y_train)
    assert model.n_iter_ == 31 and model.loss_curve_[-1] < first
    with pytest.raises(ValueError, match="not seen"):
        model.partial_fit(iris.X_train[:2], [0, 7])


def test_regression_partial_fit_and_refit(diabetes):
    model = LinearRegression(random_state=0)
    for _ in range(5):
        model.partial_fit(diabetes.X_train, diabetes.y_train)
    assert model.n_iter_ == 5 and model.loss_curve_[-1] < model.loss_curve_[0]
    with pytest.raises(ValueError, match="X has 3 features, but this model was fitted with 10"):
        model.partial_fit(diabetes.X_train[:, :3], diabetes.y_train)
    model.set_params(max_epochs=2, tol=None).fit(diabetes.X_train, diabetes.y_train)
    assert model.n_iter_ == 2  # fit starts over


def test_early_stopping_and_convergence_warning(iris):
    stopped = LogisticRegression(tol=1e-2, random_state=0).fit(iris.X_train, iris.y_train)
    assert stopped.n_iter_ < stopped.max_epochs
    with pytest.warns(models.ConvergenceWarning, match="max_epochs=3"):
        LogisticRegression(max_epochs=3, random_state=0).fit(iris.X_train, iris.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        full = LogisticRegression(max_epochs=7, tol=None, random_state=0).fit(iris.X_train, iris.y_train)
    assert full.n_iter_ == 7


def test_same_random_state_same_model(iris):
    a = LogisticRegression(random_state=3, max_epochs=5, tol=None).fit(iris.X_train, iris.y_train)
    b = LogisticRegression(random_state=3, max_epochs=5, tol=None).fit(iris.X_train, iris.y_train)
    np.testing.assert_array_equal(a.coef_, b.coef_)


# ----------------------------------------------------------------- scikit-learn conventions


def test_get_params_set_params_round_trip():
    model = LogisticRegression(lr=0.05, penalty=None)
    params = model.get_params()
    assert params["lr"] == 0.05 and params["penalty"] is None and params["optimizer"] == "adam"
    assert LogisticRegression(**params).get_params() == params
    assert model.set_params(lr=0.2, max_epochs=5) is model and model.lr == 0.2
    with pytest.raises(ValueError, match="invalid parameter 'learning_rate'"):
        model.set_params(learning_rate=0.1)


def test_scikit_learn_clone_pipeline_and_cross_val_score(iris, diabetes):
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn (a test extra) is missing")
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    assert sklearn.__version__
    model = LogisticRegression(lr=0.02, random_state=0)
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert is_classifier(model) and is_regressor(LinearRegression())
    X = np.r_[iris.X_train, iris.X_test]
    y = np.r_[iris.y_train, iris.y_test]
    scores = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(random_state=0)), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    r2 = cross_val_score(LinearRegression(random_state=0), diabetes.X_train, diabetes.y_train, cv=3)
    assert r2.min() > 0.2


# ----------------------------------------------------------------- bad input, raised before training


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started although the input is invalid")
    monkeypatch.setattr(models.base.LinearEstimatorBase, "_train", refuse)


X_OK = np.random.default_rng(0).standard_normal((6, 2))
Y_OK = np.array([0, 1, 0, 1, 1, 0])
BAD_FITS = [
    ("NaN in X", np.where(np.eye(6, 2) > 0, np.nan, X_OK), Y_OK, ValueError, r"X contains NaN or infinity"),
    ("inf in X", np.where(np.eye(6, 2) > 0, np.inf, X_OK), Y_OK, ValueError, r"X contains NaN or infinity"),
    ("lengths differ", X_OK, Y_OK[:5], ValueError, r"X has 6, y has 5"),
    ("empty", np.zeros((0, 2)), np.zeros(0), ValueError, r"0 samples"),
    ("no features", np.zeros((6, 0)), Y_OK, ValueError, r"0 features"),
    ("1-D X", X_OK[:, 0], Y_OK, ValueError, r"2-D array.*reshape"),
    ("text X", np.array([["a", "b"]] * 6), Y_OK, TypeError, r"X must be numeric"),
    ("objects in X", np.array([[1, "b"]] * 6, dtype=object), Y_OK, TypeError, r"X must be numeric"),
    ("None X", None, Y_OK, TypeError, r"X must be array-like"),
]


@pytest.mark.parametrize("estimator", [LinearRegression, LogisticRegression])
@pytest.mark.parametrize("case,X,y,error,message", BAD_FITS, ids=[c[0] for c in BAD_FITS])
def test_bad_input_raises_before_training(monkeypatch, estimator, case, X, y, error, message):
    _no_training(monkeypatch)
    with pytest.raises(error, match=message):
        estimator().fit(X, y)


@pytest.mark.parametrize("estimator,y,error,message", [
    (LogisticRegression, np.zeros(6), ValueError, r"^y has a single class \(0\.0\); classification needs at least 2$"),
    (LogisticRegression, np.array([0.5, 1.5, 2.5, 0.5, 1.5, 2.5]), ValueError, r"^Unknown label type: continuous"),
    (LogisticRegression, np.array([0, 1, np.nan, 1, 0, 1]), ValueError, r"y contains NaN"),
    (LinearRegression, np.array([0, 1, np.nan, 1, 0, 1]), ValueError, r"y contains NaN"),
    (LinearRegression, np.array(list("abcdef")), TypeError, r"y must be numeric"),
    (LogisticRegression, np.array([1, "a", 2, "b", 1, 2], dtype=object), TypeError, r"cannot be sorted"),
], ids=["single class", "continuous labels", "NaN label", "NaN target", "text target", "mixed labels"])
def test_bad_targets_raise_before_training(monkeypatch, estimator, y, error, message):
    _no_training(monkeypatch)
    with pytest.raises(error, match=message):
        estimator().fit(X_OK, y)


@pytest.mark.parametrize("params,message", [
    (dict(lr=-1), "lr must be a positive number"), (dict(optimizer="lbfgs"), "optimizer must be one of"),
    (dict(penalty="l3"), "penalty must be one of"), (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(dtype="int32"), "floating-point dtype"), (dict(max_epochs=2.5), "max_epochs"),
    (dict(alpha=-0.1), "alpha must be"), (dict(device="tpu"), "unknown device"),
])
def test_bad_hyperparameters_raise_at_fit(monkeypatch, params, message):
    _no_training(monkeypatch)
    with pytest.raises(ValueError, match=message):
        LogisticRegression(**params).fit(X_OK, Y_OK)


def test_predict_before_fit_and_wrong_feature_count(iris):
    model = LogisticRegression()
    for method in (model.predict, model.predict_proba, model.decision_function):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(iris.X_test)
    with pytest.raises(AttributeError):
        model.coef_
    model.fit(iris.X_train, iris.y_train)
    with pytest.raises(ValueError, match="X has 3 features, but this model was fitted with 4"):
        model.predict(iris.X_test[:, :3])


def test_divergence_names_the_epoch_and_keeps_finite_parameters(diabetes):
    model = LinearRegression(optimizer="sgd", lr=1e4, random_state=0)
    with pytest.raises(models.DivergenceError, match=r"diverged in epoch 1 .*smaller learning rate than lr=10000"):
        model.fit(diabetes.X_train, diabetes.y_train)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.predict(diabetes.X_test)).all()


# ----------------------------------------------------------------- persistence


def test_save_and_load_round_trip(tmp_path, iris, diabetes):
    names = np.array(["setosa", "versicolor", "virginica"])
    classifier = LogisticRegression(lr=0.02, random_state=1).fit(iris.X_train, names[iris.y_train])
    regressor = LinearRegression(penalty="l2", dtype="float64", random_state=1).fit(diabetes.X_train,
                                                                                   diabetes.y_train)
    for model, X in ((classifier, iris.X_test), (regressor, diabetes.X_test)):
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = models.load(path)
        assert type(loaded) is type(model) and loaded.get_params() == {**model.get_params(),
                                                                       "dtype": np.dtype(model.dtype).name}
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        assert loaded.n_iter_ == model.n_iter_ and loaded.loss_curve_ == model.loss_curve_
    assert models.load(tmp_path / "LogisticRegression.npz").classes_.tolist() == names.tolist()


def test_loading_damaged_or_foreign_model_files(tmp_path, iris):
    with pytest.raises(NotFittedError):
        LogisticRegression().save(tmp_path / "unfitted.npz")
    LogisticRegression(max_epochs=2, tol=None).fit(iris.X_train, iris.y_train).save(tmp_path / "m.npz")
    data = (tmp_path / "m.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupted"):
        models.load(tmp_path / "cut.npz")
    tio.save({"model": "os.system", "params": {}, "fitted": {}}, tmp_path / "odd.npz", kind="model")
    with pytest.raises(ValueError, match="unknown model type 'os.system'"):
        models.load(tmp_path / "odd.npz")
    tio.save({"w": 1}, tmp_path / "state.npz")
    with pytest.raises(ValueError, match="holds a saved state dict .*not a model; read it with td.load"):
        models.load(tmp_path / "state.npz")
    (tmp_path / "data.csv").write_text("1,2,0\n3,4,1\n")
    with pytest.raises(ValueError, match="not a tinygrad_dot file .it is a text file"):
        models.load(tmp_path / "data.csv")


# ----------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_training_on_the_gpu_matches_the_cpu(iris):
    cpu = LogisticRegression(random_state=0, max_epochs=20, tol=None, dtype="float64").fit(iris.X_train,
                                                                                          iris.y_train)
    gpu = LogisticRegression(random_state=0, max_epochs=20, tol=None, dtype="float64",
                             device="cuda").fit(iris.X_train, iris.y_train)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(gpu.predict(iris.X_test), cpu.predict(iris.X_test))
