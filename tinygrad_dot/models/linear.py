"""scikit-learn-style linear estimators trained by gradient descent on td's tape."""
from __future__ import annotations

import numpy as np

from ..nn import functional as F
from .base import LinearEstimatorBase, _numeric


def _no_sample_weight(sample_weight) -> None:
    # The parameter exists for scikit-learn's signature; ignoring weights silently would mislead.
    if sample_weight is not None:
        raise NotImplementedError("sample_weight is not supported by td.models estimators")


class LinearRegression(LinearEstimatorBase):
    """Least squares, with optional ridge (``penalty="l2"``) or lasso (``penalty="l1"``) penalties.

    Minimises (1/2n) ||y - X W^T - b||^2 + alpha R(W) by mini-batch gradient
    descent (scikit-learn's SGDRegressor convention: ``penalty="l1"`` is exactly
    Lasso's objective; ``penalty="l2"`` equals Ridge with Ridge's alpha = n * alpha).
    ``y`` may be 1-D (coef_ of shape (n_features,)) or 2-D (n_samples, n_targets).

    This is an iterative fit, not an exact least-squares solver: the result
    approaches the optimum (``numpy.linalg.lstsq``'s, for ``penalty=None``) as
    training converges. Training runs on the standardized target (y - mean) / std,
    with alpha adjusted so that the minimiser is the same, and on X centred by
    its mean when ``fit_intercept`` (the unpenalised bias absorbs the shift), so
    that the defaults converge whatever the scale of y and the offsets of X;
    standardizing X still helps with features of very different scales.
    ``loss_curve_`` and ``tol`` are in units of the standardized target.

    Stopping follows scikit-learn's SGD with ``learning_rate="adaptive"``: when
    the epoch loss has not improved on the best so far by more than ``tol`` for
    ``n_iter_no_change`` consecutive epochs, the learning rate is divided by 5;
    training stops once it falls below ``lr / 1000``, and a
    ``ConvergenceWarning`` is emitted if ``max_epochs`` run out first.
    """

    _estimator_type = "regressor"
    _plateau_lr_factor = 0.2
    _center_X = True

    def __init__(self, *, penalty=None, alpha=0.0001, fit_intercept=True, optimizer="adam", lr=0.05,
                 batch_size=64, max_epochs=200, tol=1e-4, n_iter_no_change=10, device="cpu", dtype="float32",
                 random_state=None):
        self._store_params(locals())

    def _encode_targets(self, y, first_fit, classes=None):
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D (n_samples, n_targets), got shape {y.shape}")
        if first_fit:
            self._y_ndim = y.ndim
            self._n_targets = 1 if y.ndim == 1 else y.shape[1]
        elif (1 if y.ndim == 1 else y.shape[1]) != self._n_targets:
            raise ValueError(f"y has {1 if y.ndim == 1 else y.shape[1]} target(s), the model was fitted with "
                             f"{self._n_targets}")
        if y.shape[0] and y.size == 0:
            raise ValueError("y has 0 targets per sample")
        y = _numeric(y, "y", np.dtype(self.dtype)).reshape(len(y), -1)
        if first_fit:
            self._y_mean = y.mean(axis=0) if self.fit_intercept else np.zeros(y.shape[1], y.dtype)
            scale = y.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1).astype(y.dtype)
        return (y - self._y_mean) / self._y_scale

    def _alpha(self):
        # With w = scale * w', alpha ||w||^2/2 on y's scale is alpha ||w'||^2/2 on the standardized
        # scale (both sides divide by scale^2); the l1 term divides by scale only.
        if self.penalty != "l1":
            return self.alpha
        return self._weight._backend.asarray((self.alpha / self._y_scale).reshape(-1, 1).astype(self._weight.dtype))

    def _n_outputs(self):
        return self._n_targets

    def _batch_loss(self, out, target):
        return F.mse_loss(out, target)

    def _loss_scale(self):
        return 0.5

    def predict(self, X) -> np.ndarray:
        out = self._raw_output(X) * self._y_scale + self._y_mean
        return out[:, 0] if self._y_ndim == 1 else out

    def score(self, X, y, sample_weight=None) -> float:
        """R^2, the coefficient of determination (averaged uniformly over targets)."""
        _no_sample_weight(sample_weight)
        prediction = self.predict(X)
        y = _numeric(np.asarray(y), "y", np.float64).reshape(prediction.shape)
        residual = ((y - prediction) ** 2).sum(axis=0)
        total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual > 0, 0.0, 1.0))
        return float(np.mean(r2))

    @property
    def coef_(self):
        coef = super().coef_ * self._y_scale[:, None]
        return coef[0] if self._y_ndim == 1 else coef

    @property
    def intercept_(self):
        intercept = super().intercept_ * self._y_scale + self._y_mean
        return float(intercept[0]) if self._y_ndim == 1 else intercept

    def _fitted_state(self):
        return {**super()._fitted_state(), "y_ndim": int(self._y_ndim), "y_mean": self._y_mean,
                "y_scale": self._y_scale}

    def _restore_fitted(self, state):
        super()._restore_fitted(state)
        self._y_ndim = int(state["y_ndim"])
        self._n_targets = self._weight.shape[0]
        self._y_mean = np.asarray(state["y_mean"], dtype=self._weight.dtype)
        self._y_scale = np.asarray(state["y_scale"], dtype=self._weight.dtype)
        if self._y_mean.shape != (self._n_targets,) or self._y_scale.shape != (self._n_targets,):
            raise ValueError("the saved model is inconsistent: target scaling does not match the weight")


class LogisticRegression(LinearEstimatorBase):
    """Binary (sigmoid) or multinomial (softmax) logistic regression for labels of any
    sortable type (ints, strings, ...). ``classes_`` are the sorted unique labels.

    Minimises the mean cross-entropy + alpha R(W) (l2 by default, as scikit-learn's
    SGDClassifier) by mini-batch gradient descent.
    """

    _estimator_type = "classifier"

    def __init__(self, *, penalty="l2", alpha=0.0001, fit_intercept=True, optimizer="adam", lr=0.01,
                 batch_size=64, max_epochs=200, tol=1e-3, n_iter_no_change=5, device="cpu", dtype="float32",
                 random_state=None):
        self._store_params(locals())

    def _encode_targets(self, y, first_fit, classes=None):
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]  # a column vector of labels, as scikit-learn accepts
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sample), got shape {y.shape}")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinity; every sample needs a label")
        if y.dtype.kind in "fc" and not np.all(np.mod(y.real, 1) == 0):
            # scikit-learn's type_of_target: floats that are not all integral are 'continuous'.
            raise ValueError("Unknown label type: continuous. y holds fractional values, so it is a "
                             "regression target, not class labels; use LinearRegression (or encode the "
                             "classes as integers or strings)")
        if first_fit:
            try:
                found = np.unique(y if classes is None else np.asarray(classes))
            except TypeError:
                raise TypeError("the labels in y cannot be sorted (mixed types such as numbers and "
                                "strings?); use labels of one type") from None
            if len(found) < 2:
                raise ValueError(f"y has a single class ({found[0].item()!r}); classification needs at least 2"
                                 if len(found) else "y is empty")
            self.classes_ = found
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(f"y contains labels not seen in the first fit (classes_ = {self.classes_.tolist()}): "
                             f"{np.unique(y[unknown]).tolist()[:5]}")
        if len(self.classes_) == 2:
            return index.astype(np.dtype(self.dtype)).reshape(-1, 1)
        return index.astype(np.int64)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); the first call needs ``classes`` unless y holds every class."""
        return super().partial_fit(X, y, classes=classes)

    def _n_outputs(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _batch_loss(self, out, target):
        if len(self.classes_) == 2:
            return F.binary_cross_entropy_with_logits(out, target)
        return F.cross_entropy(out, target)

    def decision_function(self, X) -> np.ndarray:
        out = self._raw_output(X)
        return out[:, 0] if len(self.classes_) == 2 else out

    def predict_proba(self, X) -> np.ndarray:
        scores = self.decision_function(X).astype(np.float64)
        if len(self.classes_) == 2:
            positive = 0.5 * (1 + np.tanh(0.5 * scores))
            return np.stack([1 - positive, positive], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if len(self.classes_) == 2 else scores.argmax(axis=1)
        return self.classes_[index]

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy."""
        _no_sample_weight(sample_weight)
        y = np.asarray(y)
        prediction = self.predict(X)
        if len(y) != len(prediction):
            raise ValueError(f"X and y have different numbers of samples: {len(prediction)} and {len(y)}")
        return float(np.mean(prediction == y.reshape(prediction.shape)))

    def _fitted_state(self):
        classes = self.classes_
        return {**super()._fitted_state(), "classes": classes.tolist(), "classes_dtype": classes.dtype.str}

    def _restore_fitted(self, state):
        super()._restore_fitted(state)
        dtype = np.dtype(state["classes_dtype"])
        if dtype.kind not in "biufUO":
            raise ValueError(f"the saved model's classes have an unsupported dtype {dtype}")
        self.classes_ = np.array(state["classes"], dtype=dtype)
        if self._n_outputs() != self._weight.shape[0]:
            raise ValueError("the saved model is inconsistent: the weight's rows do not match its classes")
