"""td.models.SGDClassifier / SGDRegressor: scikit-learn's estimator checks, scores against
scikit-learn's SGD and the exact solvers, streaming with partial_fit, reproducibility,
divergence, probabilities, sample weights, save/load."""
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="td.models needs scikit-learn (the 'models' extra)")
import sklearn.linear_model as sk  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from tinygrad_dot import models  # noqa: E402
from tinygrad_dot.data import load_dataset  # noqa: E402
from tinygrad_dot.models import LogisticRegression, Ridge, SGDClassifier, SGDRegressor  # noqa: E402

SEEDS = range(3)


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("diabetes", standardize=True, dtype=np.float64)  # target in the hundreds


def mean_score(estimator, split, **fit):
    """Test score averaged over seeds: one stochastic fit says little."""
    return np.mean([clone(estimator).set_params(random_state=seed).fit(split.X_train, split.y_train, **fit)
                    .score(split.X_test, split.y_test) for seed in SEEDS])


# ----------------------------------------------------------------- scikit-learn's own checks


@parametrize_with_checks([SGDClassifier(), SGDRegressor(), SGDClassifier(loss="log_loss", penalty="elasticnet"),
                          SGDRegressor(loss="huber", optimizer="adam", learning_rate="adaptive")])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.ConvergenceWarning)  # the checks cap max_iter at times
        check(estimator)


# ----------------------------------------------------------------- scores


@pytest.mark.parametrize("loss", ["hinge", "log_loss", "modified_huber"])
def test_classifier_scores_like_scikit_learn_and_the_exact_solver(cancer, iris, loss):
    exact = LogisticRegression().fit(cancer.X_train, cancer.y_train).score(cancer.X_test, cancer.y_test)
    ours, theirs = mean_score(SGDClassifier(loss=loss), cancer), mean_score(sk.SGDClassifier(loss=loss), cancer)
    assert ours >= theirs - 0.02 and ours >= exact - 0.03, (ours, theirs, exact)
    # Iris (one-vs-rest, a class not linearly separable) is noisy at the defaults; run to the end.
    ours = mean_score(SGDClassifier(loss=loss, tol=None, max_iter=200), iris)
    theirs = mean_score(sk.SGDClassifier(loss=loss), iris)
    assert ours >= theirs - 0.05 and ours >= 0.85, (ours, theirs)


@pytest.mark.parametrize("kind", [{}, {"loss": "huber", "epsilon": 100.0}, {"learning_rate": "adaptive"},
                                  {"early_stopping": True}, {"optimizer": "adam", "learning_rate": "constant",
                                                             "eta0": 0.1}])
def test_regressor_scores_like_scikit_learn_and_ridge(diabetes, kind):
    exact = Ridge(alpha=1e-3).fit(diabetes.X_train, diabetes.y_train).score(diabetes.X_test, diabetes.y_test)
    ours = mean_score(SGDRegressor(**kind), diabetes)
    theirs = mean_score(sk.SGDRegressor(**{k: v for k, v in kind.items() if k != "optimizer"}), diabetes)
    assert abs(ours - exact) < 0.02 and ours > theirs - 0.02, (ours, theirs, exact)


def test_binary_and_multiclass_shapes_and_decision(iris, cancer):
    binary = SGDClassifier(random_state=0).fit(cancer.X_train, cancer.y_train)
    assert binary.coef_.shape == (1, 30) and binary.intercept_.shape == (1,)
    scores = binary.decision_function(cancer.X_test)
    assert scores.shape == (len(cancer.X_test),)
    np.testing.assert_array_equal(binary.predict(cancer.X_test), binary.classes_[(scores > 0).astype(int)])
    multi = SGDClassifier(random_state=0).fit(iris.X_train, iris.y_train)
    assert multi.coef_.shape == (3, 4) and multi.decision_function(iris.X_test).shape == (len(iris.X_test), 3)
    assert multi.n_iter_ >= 1 and multi.t_ > multi.n_iter_ and len(multi.loss_curve_) == multi.n_iter_
    regressor = SGDRegressor(random_state=0).fit(iris.X_train, iris.X_train[:, 0])
    assert regressor.coef_.shape == (4,) and regressor.intercept_.shape == (1,)


def test_l1_gives_exact_zeros_on_a_sparse_problem(rng):
    X = rng.standard_normal((400, 20))
    y = X[:, :3] @ np.array([2.0, -1.5, 1.0]) + 0.1 * rng.standard_normal(400)
    model = SGDRegressor(penalty="l1", alpha=0.05, batch_size=4, random_state=0).fit(X, y)
    assert np.all(model.coef_[:3] != 0) and np.sum(model.coef_[3:] == 0) >= 12, model.coef_
    assert model.score(X, y) > 0.95


# ----------------------------------------------------------------- streaming


def test_partial_fit_streams_chunks_to_a_good_score(cancer, diabetes):
    classifier = SGDClassifier(loss="log_loss", random_state=0)
    regressor = SGDRegressor(random_state=0)
    for epoch in range(5):
        for rows in np.array_split(np.arange(len(cancer.y_train)), 8):
            classifier.partial_fit(cancer.X_train[rows], cancer.y_train[rows], classes=np.array([0, 1]))
        for rows in np.array_split(np.arange(len(diabetes.y_train)), 8):
            regressor.partial_fit(diabetes.X_train[rows], diabetes.y_train[rows])
    assert classifier.score(cancer.X_test, cancer.y_test) > 0.95
    assert regressor.score(diabetes.X_test, diabetes.y_test) > 0.45
    assert len(classifier.loss_curve_) == 40 and classifier.n_iter_ == 1
    assert classifier.t_ == 5 * len(cancer.y_train) + 1  # updates count samples, as scikit-learn's t_


def test_partial_fit_rules(iris):
    model = SGDClassifier()
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        model.partial_fit(iris.X_train, iris.y_train)
    model.partial_fit(iris.X_train[:10], iris.y_train[:10], classes=[0, 1, 2])  # a chunk may miss classes
    assert model.coef_.shape == (3, 4)
    with pytest.raises(ValueError, match="is not the same as on last call"):
        model.partial_fit(iris.X_train, iris.y_train, classes=[0, 1])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        model.partial_fit(iris.X_train[:2], [7, 0])
    with pytest.raises(ValueError, match="balanced"):
        SGDClassifier(class_weight="balanced").partial_fit(iris.X_train, iris.y_train, classes=[0, 1, 2])


def test_dask_ml_incremental(cancer):
    dask_ml = pytest.importorskip("dask_ml.wrappers", reason="dask_ml is not installed")
    import dask.array as da

    X = da.from_array(cancer.X_train, chunks=100)
    y = da.from_array(cancer.y_train, chunks=100)
    model = dask_ml.Incremental(SGDClassifier(loss="log_loss", random_state=0), scoring="accuracy")
    for _ in range(3):
        model.partial_fit(X, y, classes=np.array([0, 1]))
    assert model.score(da.from_array(cancer.X_test), da.from_array(cancer.y_test)) > 0.9


# ----------------------------------------------------------------- reproducibility, divergence, warnings


def test_same_seed_same_model_bit_for_bit(iris):
    for estimator in (SGDClassifier(loss="log_loss", penalty="elasticnet"), SGDRegressor(optimizer="adam")):
        y = iris.y_train if isinstance(estimator, SGDClassifier) else iris.X_train[:, 0]
        a, b, c = (clone(estimator).set_params(random_state=s).fit(iris.X_train, y) for s in (3, 3, 4))
        np.testing.assert_array_equal(a.coef_, b.coef_)
        np.testing.assert_array_equal(a.intercept_, b.intercept_)
        assert a.loss_curve_ == b.loss_curve_ and not np.array_equal(a.coef_, c.coef_)


def test_divergence_names_the_epoch_and_keeps_finite_coefficients(diabetes):
    # float32 overflows within a few epochs (scikit-learn's gradient clip keeps float64 finite longer).
    model = SGDRegressor(learning_rate="constant", eta0=10.0, tol=None, random_state=0, dtype="float32")
    with pytest.raises(models.DivergenceError, match=r"epoch \d+.*smaller eta0"):
        model.fit(diabetes.X_train * 100, diabetes.y_train)
    assert np.all(np.isfinite(model.coef_)) and np.all(np.isfinite(model.intercept_))
    assert all(np.isfinite(model.loss_curve_))


def test_convergence_warning_when_max_iter_runs_out(cancer):
    with pytest.warns(models.ConvergenceWarning, match="max_iter=2"):
        SGDClassifier(max_iter=2, random_state=0).fit(cancer.X_train, cancer.y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error", models.ConvergenceWarning)
        SGDClassifier(max_iter=2, tol=None, random_state=0).fit(cancer.X_train, cancer.y_train)


def test_parameter_errors(iris):
    for bad in ({"loss": "nope"}, {"penalty": "l3"}, {"alpha": -1.0}, {"learning_rate": "fast"}, {"batch_size": 0},
                {"optimizer": "lbfgs"}, {"learning_rate": "constant", "eta0": 0.0}, {"l1_ratio": 2.0},
                {"alpha": 0.0}, {"validation_fraction": 1.0}):
        with pytest.raises(ValueError):
            SGDClassifier(**bad).fit(iris.X_train, iris.y_train)
    with pytest.raises(ValueError, match="loss"):
        SGDRegressor(loss="hinge").fit(iris.X_train, iris.y_train)


# ----------------------------------------------------------------- probabilities


def test_probabilities_only_for_log_loss_and_modified_huber(iris, cancer):
    assert not hasattr(SGDClassifier(), "predict_proba") and not hasattr(SGDClassifier(), "predict_log_proba")
    with pytest.raises(AttributeError) as error:
        SGDClassifier().predict_proba
    assert "probability estimates are not available for loss='hinge'" in str(error.value.__cause__)
    for loss in ("log_loss", "modified_huber"):
        for split in (iris, cancer):
            model = SGDClassifier(loss=loss, random_state=0).fit(split.X_train, split.y_train)
            prob = model.predict_proba(split.X_test)
            assert prob.shape == (len(split.X_test), len(model.classes_)) and np.all((prob >= 0) & (prob <= 1))
            np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-12)
            # Where no two classes tie (saturated sigmoids, clipped modified_huber scores), the most
            # probable class is the predicted one.
            clear = (prob == prob.max(axis=1, keepdims=True)).sum(axis=1) == 1
            predicted = model.predict(split.X_test)
            np.testing.assert_array_equal(model.classes_[prob.argmax(axis=1)][clear], predicted[clear])
            with np.errstate(divide="ignore"):
                np.testing.assert_allclose(model.predict_log_proba(split.X_test), np.log(prob))


# ----------------------------------------------------------------- weights


def test_integer_weights_equal_repeated_rows(diabetes, cancer, rng):
    counts = rng.integers(0, 4, len(diabetes.y_train))
    X_rep, y_rep = np.repeat(diabetes.X_train, counts, axis=0), np.repeat(diabetes.y_train, counts)
    # Full batch, no shuffling: the same steps up to summation order.
    full = SGDRegressor(batch_size=None, shuffle=False, learning_rate="constant", eta0=1e-4, tol=None, max_iter=50)
    weighted = clone(full).fit(diabetes.X_train, diabetes.y_train, sample_weight=counts)
    repeated = clone(full).fit(X_rep, y_rep)
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-9)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, rtol=1e-9)
    assert weighted.t_ == repeated.t_ and np.allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)
    # Stochastic: the same model in distribution, so compare test scores.
    weighted = mean_score(SGDRegressor(), diabetes, sample_weight=counts)
    repeated = np.mean([SGDRegressor(random_state=s).fit(X_rep, y_rep).score(diabetes.X_test, diabetes.y_test)
                        for s in SEEDS])
    assert abs(weighted - repeated) < 0.01
    counts = rng.integers(0, 4, len(cancer.y_train))
    weighted = mean_score(SGDClassifier(loss="log_loss"), cancer, sample_weight=counts)
    X_rep, y_rep = np.repeat(cancer.X_train, counts, axis=0), np.repeat(cancer.y_train, counts)
    repeated = np.mean([SGDClassifier(loss="log_loss", random_state=s).fit(X_rep, y_rep)
                        .score(cancer.X_test, cancer.y_test) for s in SEEDS])
    assert abs(weighted - repeated) < 0.03


def test_class_weight_shifts_the_decision(cancer):
    plain = SGDClassifier(random_state=0).fit(cancer.X_train, cancer.y_train)
    heavy = SGDClassifier(class_weight={0: 20.0, 1: 1.0}, random_state=0).fit(cancer.X_train, cancer.y_train)
    assert np.mean(heavy.predict(cancer.X_test) == 0) > np.mean(plain.predict(cancer.X_test) == 0)


# ----------------------------------------------------------------- warm start, dtype, save/load


def test_warm_start_coef_init_dtype_and_save_load(tmp_path, iris):
    model = SGDClassifier(loss="log_loss", random_state=0, dtype="float32").fit(iris.X_train, iris.y_train)
    assert model.coef_.dtype == np.float32 and model.predict_proba(iris.X_test).dtype == np.float32
    start = SGDClassifier(loss="log_loss", max_iter=1, tol=None, learning_rate="constant", eta0=1e-6).fit(
        iris.X_train, iris.y_train, coef_init=model.coef_, intercept_init=model.intercept_)
    np.testing.assert_allclose(start.coef_, model.coef_, atol=1e-3)
    with pytest.raises(ValueError, match="coef_init does not match"):
        SGDClassifier().fit(iris.X_train, iris.y_train, coef_init=np.zeros((2, 4)))
    warm = SGDClassifier(loss="log_loss", warm_start=True, max_iter=1, tol=None, random_state=0)
    warm.fit(iris.X_train, iris.y_train)
    first = warm.coef_.copy()
    warm.fit(iris.X_train, iris.y_train)
    assert not np.array_equal(first, warm.coef_) and warm.t_ == len(iris.y_train) + 1  # t_ restarts, coef_ not
    model.save(tmp_path / "sgd.npz")
    loaded = models.load(tmp_path / "sgd.npz")
    assert isinstance(loaded, SGDClassifier) and loaded.loss_curve_ == model.loss_curve_ and loaded.t_ == model.t_
    np.testing.assert_array_equal(loaded.predict_proba(iris.X_test), model.predict_proba(iris.X_test))
    loaded.partial_fit(iris.X_train, iris.y_train)  # continues after loading
    assert len(loaded.loss_curve_) == len(model.loss_curve_) + 1


# ----------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_fitting_on_the_gpu_matches_the_cpu(cancer, diabetes):
    cp = pytest.importorskip("cupy")
    full = SGDRegressor(batch_size=None, learning_rate="constant", eta0=1e-4, tol=None, max_iter=30)
    cpu = clone(full).fit(diabetes.X_train, diabetes.y_train)
    gpu = clone(full).set_params(device="cuda").fit(diabetes.X_train, diabetes.y_train)
    np.testing.assert_allclose(gpu.coef_, cpu.coef_, rtol=1e-9)
    stochastic = SGDClassifier(loss="log_loss", random_state=0)
    cpu = clone(stochastic).fit(cancer.X_train, cancer.y_train)
    on_device = clone(stochastic).fit(cp.asarray(cancer.X_train), cp.asarray(cancer.y_train))
    assert abs(on_device.score(cp.asarray(cancer.X_test), cancer.y_test) - cpu.score(cancer.X_test, cancer.y_test)) \
        < 0.03
    assert isinstance(on_device.predict_proba(cp.asarray(cancer.X_test)), cp.ndarray)
