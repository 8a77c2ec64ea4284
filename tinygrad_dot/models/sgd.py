"""Stochastic gradient descent for linear models: ``SGDClassifier`` and ``SGDRegressor``.

The exact solvers (``linear.py``, ``logistic.py``) are the right choice for data
that fits in memory. These stay for data that does not, streamed chunk by
chunk through ``partial_fit`` (``dask_ml.wrappers.Incremental`` plugs in), and
for teaching: the parameters, losses, penalties and learning-rate schedules are
scikit-learn's, with the same meanings, objective and stopping rule::

    (1 / S) sum_i w_i loss(y_i, coef x_i + intercept) + alpha R(coef)

R = ||coef||^2 / 2 (``"l2"``), ||coef||_1 (``"l1"``) or the ``l1_ratio`` mix
(``"elasticnet"``); S is the sum of the sample weights (times class weights),
so integer weights train the same model as repeated rows. Multiclass
classification is one-vs-rest, all classes trained side by side as the columns
of one matrix product.

What differs from scikit-learn, and why:

* ``batch_size`` (ours, default 32): each update uses the mean gradient of a
  mini-batch rather than of one sample, because an update then costs two
  matrix products (one forward, one backward) on the estimator's device instead
  of a Python-level step per sample. ``t`` (the schedules' step count) counts
  updates. ``batch_size=None`` is full-batch gradient descent: deterministic,
  order-free (with it, integer weights equal repeated rows bit for bit up to
  summation order).
* ``optimizer="adam"`` (ours) replaces the plain step by Adam's; its step size
  is ``eta0`` times the schedule's decay (eta(t) / eta(1)).
* l1 and elastic net shrink by a proximal (soft-thresholding) step after each
  update instead of the cumulative-penalty truncation; it gives exact zeros too.
* ``loss_curve_`` (ours) keeps each epoch's mean training loss (the weighted
  mean of the per-sample losses met during the epoch, before each update) for
  plotting; ``partial_fit`` appends to it and keeps its shuffling stream, so one
  call per epoch trains like ``fit``.

The fit is fused arithmetic on the backend's arrays (no tape): per update one
``matmul`` forward, one backward, elementwise work, and nothing read back to
the host until the epoch ends (the epoch's loss, to check divergence and
stopping). Not implemented: ``average`` (averaged SGD) and ``n_jobs``.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit
from sklearn.utils import check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import _check_partial_fit_first_call, check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .base import ConvergenceWarning, DivergenceError, LinearModel, host_numpy

__all__ = ["SGDClassifier", "SGDRegressor"]


# ----------------------------------------------------------------- losses
# Each returns (loss, dloss/dp) elementwise for predictions p and targets y (+-1 for
# classification), scikit-learn's definitions (sklearn/linear_model/_sgd_fast).

def _hinge(threshold):
    def loss(xp, p, y, epsilon):
        margin = threshold - p * y
        return xp.maximum(margin, 0), xp.where(margin >= 0, -y, 0)
    return loss


def _squared_hinge(xp, p, y, epsilon):
    margin = xp.maximum(1 - p * y, 0)
    return margin * margin, -2 * y * margin


def _log_loss(xp, p, y, epsilon):
    z = p * y
    return xp.logaddexp(0, -z), -y * 0.5 * (1 - xp.tanh(0.5 * z))  # -y sigmoid(-z), without overflow


def _modified_huber(xp, p, y, epsilon):
    z = p * y
    quadratic = xp.maximum(1 - z, 0)
    return (xp.where(z >= -1, quadratic * quadratic, -4 * z),
            xp.where(z >= -1, -2 * y * quadratic, -4 * y))


def _squared_error(xp, p, y, epsilon):
    r = p - y
    return 0.5 * r * r, r


def _huber(xp, p, y, epsilon):
    r = p - y
    inside = xp.abs(r) <= epsilon
    return (xp.where(inside, 0.5 * r * r, epsilon * xp.abs(r) - 0.5 * epsilon * epsilon),
            xp.where(inside, r, epsilon * xp.sign(r)))


def _epsilon_insensitive(squared):
    def loss(xp, p, y, epsilon):
        r = p - y
        excess = xp.maximum(xp.abs(r) - epsilon, 0)
        return (excess * excess, 2 * xp.sign(r) * excess) if squared else (excess, xp.where(excess > 0, xp.sign(r), 0))
    return loss


REGRESSION_LOSSES = {"squared_error": _squared_error, "huber": _huber,
                     "epsilon_insensitive": _epsilon_insensitive(False),
                     "squared_epsilon_insensitive": _epsilon_insensitive(True)}
CLASSIFICATION_LOSSES = {"hinge": _hinge(1.0), "log_loss": _log_loss, "modified_huber": _modified_huber,
                         "squared_hinge": _squared_hinge, "perceptron": _hinge(0.0), **REGRESSION_LOSSES}
PENALTIES = ("l2", "l1", "elasticnet", None)
SCHEDULES = ("constant", "optimal", "invscaling", "adaptive")
OPTIMIZERS = ("sgd", "adam")
_ADAM = (0.9, 0.999, 1e-8)  # beta1, beta2, eps: PyTorch's and Kingma & Ba's defaults


class _SGD(LinearModel):
    """What both estimators share: parameter checks, the epoch loop, stopping, partial_fit."""

    _losses: dict = {}
    _fitted_attributes = ("coef_", "intercept_", "n_features_in_", "n_iter_", "t_", "loss_curve_")

    # ------------------------------------------------------------ parameters
    def _check_params(self):
        def number(name, low, integer=False, strict=False, high=None):
            value = getattr(self, name)
            kind = numbers.Integral if integer else numbers.Real
            if isinstance(value, bool) or not isinstance(value, kind) or not (value > low if strict else value >= low) \
                    or (high is not None and not value <= high) or not math.isfinite(value):
                bound = f"{'>' if strict else '>='} {low}" + (f" and <= {high}" if high is not None else "")
                raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {bound}, got {value!r}")

        for name, allowed in (("loss", tuple(self._losses)), ("penalty", PENALTIES),
                              ("learning_rate", SCHEDULES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        number("alpha", 0)
        number("l1_ratio", 0, high=1)
        number("epsilon", 0)
        number("power_t", -math.inf)
        number("max_iter", 1, integer=True)
        number("n_iter_no_change", 1, integer=True)
        number("validation_fraction", 0, strict=True, high=1)
        if self.validation_fraction >= 1:
            raise ValueError(f"validation_fraction must be below 1, got {self.validation_fraction!r}")
        if self.tol is not None:
            number("tol", -math.inf)
        if self.batch_size is not None:
            number("batch_size", 1, integer=True)
        if self.learning_rate == "optimal" and self.alpha == 0:
            raise ValueError("alpha must be > 0 since learning_rate is 'optimal'; alpha is used to compute the "
                             "optimal learning rate")
        if self.learning_rate != "optimal" or self.optimizer == "adam":
            number("eta0", 0, strict=True)

    def _penalties(self):
        """(l2, l1) strengths."""
        ratio = {"l2": 0.0, "l1": 1.0, None: 0.0, "elasticnet": self.l1_ratio}[self.penalty]
        alpha = 0.0 if self.penalty is None else self.alpha
        return alpha * (1 - ratio), alpha * ratio

    def _schedule(self):
        """eta(t) for the update counter t (1 for the first update), scikit-learn's rules;
        the adaptive division by 5 on plateaus is applied by the caller."""
        rule, eta0, power_t, alpha = self.learning_rate, self.eta0, self.power_t, self.alpha
        if rule == "optimal":
            # Bottou's heuristic, as scikit-learn: t0 makes the first step typw / max(1, dloss(-typw, 1)).
            typw = math.sqrt(1.0 / math.sqrt(alpha))
            dloss = float(self._losses[self.loss](np, np.float64(-typw), np.float64(1.0), self.epsilon)[1])
            t0 = 1.0 / (typw / max(1.0, dloss) * alpha)
            return lambda t: 1.0 / (alpha * (t0 + t - 1))
        if rule == "invscaling":
            return lambda t: eta0 / t ** power_t
        return lambda t: eta0

    # ------------------------------------------------------------ fitting
    def fit(self, X, y, coef_init=None, intercept_init=None, sample_weight=None):
        """Train for up to ``max_iter`` epochs, until the training loss (or, with
        ``early_stopping``, the validation score) stops improving by ``tol`` for
        ``n_iter_no_change`` epochs. Starts from ``coef_init``/``intercept_init``,
        the previous fit's coefficients if ``warm_start``, else zeros."""
        self._check_params()
        backend, X, y = self._validate_Xy(X, y, **self._y_checks)
        if self.warm_start and hasattr(self, "coef_"):
            coef_init = self.coef_ if coef_init is None else coef_init
            intercept_init = self.intercept_ if intercept_init is None else intercept_init
        self._reset()
        targets, weights = self._targets(y, np.unique(y) if self._classifier else None, sample_weight)
        validation = None
        if self.early_stopping:  # scikit-learn's split: stratified for classifiers, seeded by random_state
            raw = None if sample_weight is None else self._sample_weight(sample_weight, len(y))
            splitter = (StratifiedShuffleSplit if self._classifier else ShuffleSplit)(
                test_size=self.validation_fraction, random_state=self.random_state)
            train, held = next(splitter.split(np.zeros((len(y), 1)), y))
            if len(train) == 0 or len(held) == 0:
                raise ValueError(f"Splitting {len(y)} samples into a train set and a validation set with "
                                 f"validation_fraction={self.validation_fraction!r} led to an empty set "
                                 f"({len(train)} and {len(held)} samples). Please either change validation_fraction, "
                                 "increase number of samples, or disable early_stopping.")
            if raw is not None and not np.any(raw[held] > 0):
                raise ValueError("The sample weights for validation set are all zero, consider using a different "
                                 "random state.")
            validation = (X[backend.asarray(held)], y[held], None if raw is None else raw[held])
            X, targets, weights = X[backend.asarray(train)], targets[train], None if weights is None else weights[train]
        self._start(coef_init, intercept_init, X.shape[1], targets.shape[1], X.dtype)
        self._epochs(backend, X, targets, weights, self.max_iter, stop=True, validation=validation)
        return self

    def _reset(self):
        """Forget the previous fit: coefficients, optimizer state; restart the schedule and the shuffling stream."""
        for name in ("coef_", "intercept_", "_adam"):
            self.__dict__.pop(name, None)
        self.t_, self.loss_curve_ = 1.0, []
        self._rng = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _partial_fit(self, X, y, classes, sample_weight):
        """One epoch without stopping; the first call (no ``coef_`` yet) starts from zeros."""
        self._check_params()
        first = not hasattr(self, "coef_")
        backend, X, y = self._validate_Xy(X, y, **self._y_checks) if first else \
            self._validate(X, reset=False, y=y, **self._y_checks)
        if first:
            self._reset()
        elif not hasattr(self, "_rng"):  # loaded from a file: a fresh shuffling stream
            self._rng = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        targets, weights = self._targets(y, classes, sample_weight)
        if first:
            self._start(None, None, X.shape[1], targets.shape[1], X.dtype)
        self._epochs(backend, X, targets, weights, 1, stop=False, validation=None)
        return self

    def _start(self, coef_init, intercept_init, d, k, dtype):
        """Initial coefficients (k, d) and intercepts (k,) as host arrays of the working dtype."""
        coef = np.zeros((k, d), dtype) if coef_init is None else np.asarray(host_numpy(coef_init), dtype)
        intercept = np.zeros(k, dtype) if intercept_init is None else np.asarray(host_numpy(intercept_init), dtype)
        if coef.size != k * d:
            raise ValueError(f"Provided coef_init does not match dataset: expected {(k, d)}, got shape {coef.shape}")
        if intercept.size not in (1, k) or intercept.ndim > 1:
            raise ValueError(f"Provided intercept_init does not match dataset: expected {k} value(s), "
                             f"got shape {intercept.shape}")
        self._set_coef(coef.reshape(k, d), np.broadcast_to(intercept, (k,)).copy())

    def _epochs(self, backend, X, targets, weights, epochs, stop, validation):
        """Up to ``epochs`` passes over (X, targets (n, k) host, weights (n, k) host or None).

        The k outputs (one-vs-rest classes) are independent problems trained side by side:
        each has its own stopping state and, for "adaptive", its own step; a converged one
        stops moving (scikit-learn fits them separately, to the same effect)."""
        xp, mm = backend.xp, backend.matmul
        n, k = targets.shape
        dtype = X.dtype
        batch = n if self.batch_size is None else min(self.batch_size, n)
        eta_of = self._schedule()
        eta_first = eta_of(1.0)
        l2, l1 = self._penalties()
        loss_fn = self._losses[self.loss]
        adam = self.optimizer == "adam"
        tol = -math.inf if self.tol is None else self.tol
        # Weights scaled to mean 1 per output: a step's size then does not depend on their unit, and
        # the objective is the weighted mean loss (integer weights = repeated rows).
        weight_sum = np.full(k, float(n)) if weights is None else weights.sum(axis=0)
        if weights is not None and not np.all(weight_sum > 0):
            raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")
        with backend.scope():
            Y = backend.asarray(targets, dtype=dtype)
            C = None if weights is None else backend.asarray(weights * (n / weight_sum), dtype=dtype)
            W = backend.asarray(np.atleast_2d(self.coef_), dtype=dtype)
            b = backend.asarray(np.atleast_1d(self.intercept_), dtype=dtype)
            if adam and getattr(self, "_adam", None) is None:
                self._adam = [0, xp.zeros_like(W), xp.zeros_like(W), xp.zeros_like(b), xp.zeros_like(b)]
            scale = np.ones(k)  # "adaptive": eta0 divided by 5 per plateau, per output
            active = np.ones(k, dtype=bool)
            best, stale = np.full(k, math.inf), np.zeros(k, dtype=int)
            n_iter = 0
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                for epoch in range(epochs):
                    previous = (W.copy(), b.copy())
                    order = backend.asarray(self._rng.permutation(n)) if self.shuffle and batch < n else None
                    total = xp.zeros(k, dtype=dtype)
                    for start in range(0, n, batch):
                        rows = slice(start, start + batch) if order is None else order[start:start + batch]
                        xb, yb = (X, Y) if batch == n else (X[rows], Y[rows])
                        loss, grad = loss_fn(xp, mm(xb, W.T) + b, yb, self.epsilon)
                        grad = xp.clip(grad, -1e12, 1e12)  # scikit-learn's clip, against overflow
                        if C is not None:
                            cb = C if batch == n else C[rows]
                            loss, grad = loss * cb, grad * cb
                        total += loss.sum(axis=0)
                        grad /= xb.shape[0]
                        eta = eta_of(self.t_) * scale * active
                        # A Python float keeps float32 arrays float32 (a NumPy float64 would promote them).
                        step = float(eta[0]) if np.all(eta == eta[0]) else backend.asarray(eta, dtype=dtype)
                        step_col = step if np.ndim(step) == 0 else step[:, None]
                        W, b = self._update(xp, mm, W, b, grad, xb, step, step_col, l2, l1, eta_first, adam)
                        self.t_ += 1
                    # One read-back per epoch: the losses, and sums that are non-finite with any coefficient.
                    check = backend.to_numpy(xp.concatenate([total, W.sum(axis=1), b])).astype(np.float64)
                    epoch_loss = check[:k] / weight_sum
                    if not np.all(np.isfinite(check)):
                        self._set_coef(backend.to_numpy(previous[0]), backend.to_numpy(previous[1]))
                        self.n_iter_ = n_iter
                        raise DivergenceError(
                            f"{type(self).__name__}: training diverged in epoch {len(self.loss_curve_) + 1} (the "
                            f"loss became {epoch_loss.mean()}); try a smaller eta0 than {self.eta0} (or "
                            "learning_rate='invscaling'/'adaptive', or standardize X). The model keeps the "
                            "coefficients of the last finite epoch.")
                    n_iter += 1
                    self.loss_curve_.append(float(epoch_loss.mean()))
                    if self.verbose:
                        print(f"-- Epoch {len(self.loss_curve_)}: avg. loss {self.loss_curve_[-1]:.6g}, "
                              f"norm {float(xp.linalg.norm(W)):.6g}, bias {backend.to_numpy(b)}, T {self.t_:.0f}")
                    if not stop:
                        continue
                    criterion = epoch_loss if validation is None else \
                        np.full(k, -self._score_output(backend.to_numpy(mm(validation[0], W.T) + b), *validation[1:]))
                    worse = criterion > best - tol
                    stale = np.where(worse, stale + 1, 0)
                    best = np.minimum(best, criterion)
                    plateau = active & (stale >= self.n_iter_no_change)
                    # "adaptive": a plateau divides the step by 5 and carries on while eta > 1e-6.
                    shrink = plateau & (eta_of(self.t_) * scale > 1e-6) if self.learning_rate == "adaptive" else \
                        np.zeros(k, dtype=bool)
                    scale[shrink] /= 5
                    stale[shrink] = 0
                    active &= ~(plateau & ~shrink)
                    if not active.any():
                        break
            self._set_coef(backend.to_numpy(W), backend.to_numpy(b))
        self.n_iter_ = n_iter
        if stop and active.any() and self.tol is not None:
            warnings.warn(f"Maximum number of iteration reached before convergence ({type(self).__name__}: "
                          f"max_iter={self.max_iter}, tol={self.tol}). Consider increasing max_iter to improve the "
                          "fit.", ConvergenceWarning, stacklevel=3)

    def _update(self, xp, mm, W, b, grad, xb, step, step_col, l2, l1, eta_first, adam):
        """One step on the batch's loss gradient ``grad`` (B, k) w.r.t. the outputs."""
        gW, gb = mm(grad.T, xb), grad.sum(axis=0)
        if adam:
            beta1, beta2, eps = _ADAM
            self._adam[0] += 1
            t, mW, vW, mb, vb = self._adam
            shrink = step_col * (self.eta0 / eta_first)  # eta0 times the schedule's decay
            gW = gW + l2 * W if l2 else gW  # coupled weight decay: the penalty's gradient
            for m, v, g in ((mW, vW, gW), (mb, vb, gb)):  # moments updated in place
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
            c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
            W = W - shrink * (mW / c1) / (xp.sqrt(vW / c2) + eps)
            if self.fit_intercept:
                b = b - step * (self.eta0 / eta_first) * (mb / c1) / (xp.sqrt(vb / c2) + eps)
        else:
            if l2:  # scikit-learn's order: decay the old weights, then add the gradient step
                W = W * xp.maximum(1 - step_col * l2, 0)
            W = W - step_col * gW
            if self.fit_intercept:
                b = b - step * gb
            shrink = step_col
        if l1:  # proximal step of the l1 part: soft-thresholding, exact zeros
            W = xp.sign(W) * xp.maximum(xp.abs(W) - shrink * l1, 0)
        return W, b

    def _set_coef(self, W, b):
        self.coef_, self.intercept_ = self._shape_coef(W, b)

    def _sample_weights(self, sample_weight, n, class_weights=None):
        """(n, k) weights or None when all are 1 (the cheaper, bit-identical path)."""
        if sample_weight is None and class_weights is None:
            return None
        w = self._sample_weight(sample_weight, n)[:, None]
        w = w if class_weights is None else w * class_weights
        return None if np.all(w == 1) else w


class SGDClassifier(ClassifierMixin, _SGD):
    """scikit-learn's SGDClassifier (same parameters, defaults, losses, penalties, schedules and
    one-vs-rest multiclass), trained by mini-batch SGD or Adam on td's devices.

    ``coef_`` is (1, n_features) for two classes, (n_classes, n_features) otherwise;
    ``predict_proba`` exists for ``loss="log_loss"`` and ``"modified_huber"``. Ours:
    ``batch_size`` (mini-batch size; None: full batch), ``optimizer`` ("sgd" or "adam"),
    ``device``, ``dtype``; fitted ``loss_curve_`` (mean training loss per epoch). ``n_iter_``
    counts epochs of the last fit (1 after partial_fit), ``t_`` updates + 1, as scikit-learn's.
    """

    _losses = CLASSIFICATION_LOSSES
    _classifier = True
    _y_checks = {}
    _fitted_attributes = _SGD._fitted_attributes + ("classes_",)

    def __init__(self, loss="hinge", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1, random_state=None,
                 learning_rate="optimal", eta0=0.01, power_t=0.5, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, class_weight=None, warm_start=False, batch_size=32, optimizer="sgd",
                 device=None, dtype=None):
        self.loss, self.penalty, self.alpha, self.l1_ratio = loss, penalty, alpha, l1_ratio
        self.fit_intercept, self.max_iter, self.tol, self.shuffle = fit_intercept, max_iter, tol, shuffle
        self.verbose, self.epsilon, self.random_state = verbose, epsilon, random_state
        self.learning_rate, self.eta0, self.power_t = learning_rate, eta0, power_t
        self.early_stopping, self.validation_fraction = early_stopping, validation_fraction
        self.n_iter_no_change, self.class_weight, self.warm_start = n_iter_no_change, class_weight, warm_start
        self.batch_size, self.optimizer, self.device, self.dtype = batch_size, optimizer, device, dtype

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing from the current coefficients; the first call
        needs ``classes`` (every label the stream will hold)."""
        if not hasattr(self, "classes_") and self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit. In order to use 'balanced' "
                             "weights, use compute_class_weight('balanced', classes=classes, y=y). In place of y you "
                             "can use a large enough sample of the full training set target to properly estimate the "
                             "class frequency distributions. Pass the resulting weights as the class_weight parameter.")
        classes = self.classes_ if _check_partial_fit_first_call(self, classes) else None
        if classes is not None:  # the first call: start afresh with these classes
            self.__dict__.pop("coef_", None)
        return self._partial_fit(X, y, classes, sample_weight)

    def _targets(self, y, classes, sample_weight):
        """+-1 targets (n, k) of the one-vs-rest problems and their weights."""
        if not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.floor(y))):
            check_classification_targets(y)  # integral float labels are classes even past int64
        if classes is not None:
            self.classes_ = classes
            if len(classes) < 2:
                raise ValueError(f"The number of classes has to be greater than one; got {len(classes)} class")
        index = np.searchsorted(self.classes_, y)
        unknown = (index >= len(self.classes_)) | (self.classes_[np.minimum(index, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y holds labels {np.unique(y[unknown]).tolist()} that are not in classes_ "
                             f"{self.classes_.tolist()} (pass every label as classes= on the first partial_fit)")
        n_classes = len(self.classes_)
        k = 1 if n_classes == 2 else n_classes
        positive = index[:, None] == (np.arange(k) + (n_classes == 2))
        class_weights = None
        if self.class_weight is not None:
            cw = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
            # scikit-learn's one-vs-rest weights: binary, each class its own; multiclass, the
            # positive class's weight against 1 for the rest.
            class_weights = cw[index][:, None] if k == 1 else np.where(positive, cw[None, :], 1.0)
        return np.where(positive, 1.0, -1.0), self._sample_weights(sample_weight, len(y), class_weights)

    def _shape_coef(self, W, b):
        return W, b

    def _score_output(self, out, y, sample_weight):
        return accuracy_score(y, self._labels(out), sample_weight=sample_weight)

    def _labels(self, out):
        return self.classes_[(out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)]

    # ------------------------------------------------------------ prediction
    def decision_function(self, X):
        """Signed distances X coef^T + intercept: (n_samples,) for two classes, else (n_samples, n_classes)."""
        out, backend = self._linear_output(X)
        return self._to_caller(out[:, 0] if out.shape[1] == 1 else out, backend)

    def predict(self, X):
        out, backend = self._linear_output(X)
        return self._labels(backend.to_numpy(out))

    def _check_proba(self):
        if self.loss not in ("log_loss", "modified_huber"):
            raise AttributeError(f"probability estimates are not available for loss={self.loss!r}")
        return True

    def _proba(self, X):
        out, backend = self._linear_output(X)
        xp = backend.xp
        prob = 0.5 * (1 + xp.tanh(0.5 * out)) if self.loss == "log_loss" else (xp.clip(out, -1, 1) + 1) / 2
        if out.shape[1] == 1:
            return xp.concatenate([1 - prob, prob], axis=1), backend
        total = prob.sum(axis=1, keepdims=True)
        # modified_huber can give every class 0: uniform then, as scikit-learn.
        return xp.where(total > 0, prob / xp.where(total > 0, total, 1), 1.0 / out.shape[1]), backend

    @available_if(_check_proba)
    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), scikit-learn's: the sigmoid (log_loss) or
        (clip(score, -1, 1) + 1) / 2 (modified_huber) of each one-vs-rest score, normalised over
        the classes when there are more than two."""
        return self._to_caller(*self._proba(X))

    @available_if(_check_proba)
    def predict_log_proba(self, X):
        prob, backend = self._proba(X)
        with np.errstate(divide="ignore"):
            return self._to_caller(backend.xp.log(prob), backend)

    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy, sample-weighted if given."""
        check_is_fitted(self)
        return float(accuracy_score(host_numpy(y), self.predict(X), sample_weight=host_numpy(sample_weight)))


class SGDRegressor(RegressorMixin, _SGD):
    """scikit-learn's SGDRegressor (same parameters, defaults, losses, penalties and schedules),
    trained by mini-batch SGD or Adam on td's devices. ``coef_`` is (n_features,),
    ``intercept_`` (1,). Ours: ``batch_size``, ``optimizer``, ``device``, ``dtype``,
    ``loss_curve_`` (see SGDClassifier)."""

    _losses = REGRESSION_LOSSES
    _classifier = False
    _y_checks = {"y_numeric": True}

    def __init__(self, loss="squared_error", *, penalty="l2", alpha=0.0001, l1_ratio=0.15, fit_intercept=True,
                 max_iter=1000, tol=1e-3, shuffle=True, verbose=0, epsilon=0.1, random_state=None,
                 learning_rate="invscaling", eta0=0.01, power_t=0.25, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, warm_start=False, batch_size=32, optimizer="sgd",
                 device=None, dtype=None):
        self.loss, self.penalty, self.alpha, self.l1_ratio = loss, penalty, alpha, l1_ratio
        self.fit_intercept, self.max_iter, self.tol, self.shuffle = fit_intercept, max_iter, tol, shuffle
        self.verbose, self.epsilon, self.random_state = verbose, epsilon, random_state
        self.learning_rate, self.eta0, self.power_t = learning_rate, eta0, power_t
        self.early_stopping, self.validation_fraction = early_stopping, validation_fraction
        self.n_iter_no_change, self.warm_start = n_iter_no_change, warm_start
        self.batch_size, self.optimizer, self.device, self.dtype = batch_size, optimizer, device, dtype

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current coefficients."""
        return self._partial_fit(X, y, None, sample_weight)

    def _targets(self, y, classes, sample_weight):
        return y.reshape(-1, 1).astype(np.float64), self._sample_weights(sample_weight, len(y))

    def _shape_coef(self, W, b):
        return W.reshape(-1), b.reshape(1)

    def _score_output(self, out, y, sample_weight):
        return r2_score(y, out[:, 0], sample_weight=sample_weight)

    def predict(self, X):
        out, backend = self._linear_output(X)
        return self._to_caller(out[:, 0], backend)

    def score(self, X, y, sample_weight=None) -> float:
        """R^2 of the prediction, sample-weighted if given."""
        check_is_fitted(self)
        return float(r2_score(host_numpy(y), host_numpy(self.predict(X)), sample_weight=host_numpy(sample_weight)))
