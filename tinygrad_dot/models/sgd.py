"""Stochastic gradient descent for linear models: ``SGDClassifier`` and ``SGDRegressor``.

The exact solvers (``linear.py``, ``logistic.py``) are the right choice for data
that fits in memory. These stay for data that does not, streamed chunk by
chunk through ``partial_fit`` (``dask_ml.wrappers.Incremental`` plugs in; ``fit``
on a Dask array runs each epoch as ``partial_fit``'s pass over every chunk, on
the chunk's worker: ``td.distributed``), and
for teaching: the parameters, losses, penalties and learning-rate schedules are
scikit-learn's, with the same meanings, objective and stopping rule::

    (1 / S) sum_i w_i loss(y_i, coef x_i + intercept) + alpha R(coef)

R = ||coef||^2 / 2 (``"l2"``), ||coef||_1 (``"l1"``) or the ``l1_ratio`` mix
(``"elasticnet"``); S is the sum of the sample weights, and class weights
multiply the loss terms. Multiclass classification is one-vs-rest, all classes
trained side by side as the columns of one matrix product.

What differs from scikit-learn, and why:

* ``batch_size`` (ours, default 32): scikit-learn steps once per sample, a
  Python-speed loop here; we step once per mini-batch, two matrix products on
  the estimator's device. A mini-batch step is the *sum* of its samples'
  scikit-learn steps, all taken from the batch's starting coefficients, and the
  schedules' counter ``t`` advances by the batch's size. So ``eta0``, ``alpha``,
  the schedules and ``tol`` keep scikit-learn's meaning and scale, and
  ``batch_size=1`` is scikit-learn's algorithm. The price: steps within a batch
  do not see each other, so on smooth losses a large batch wants an ``eta0``
  smaller by about its size, and l1 leaves fewer exact zeros than per-sample
  steps would. ``batch_size=None`` is full-batch gradient descent, one step per
  epoch (deterministic; use a small constant ``eta0``).
* A sample weight w counts as w samples (in ``t`` and in the l2 decay), not only
  as a w times larger step: integer weights train the same model as repeated
  rows (exactly with ``batch_size=None, shuffle=False``, in distribution
  otherwise).
* ``optimizer="adam"`` (ours) replaces the plain step by Adam's, with step size
  eta(t): ``eta0``, decayed by "invscaling" or "adaptive"; "optimal" (Bottou's
  rule for plain SGD, from ``alpha``) means a constant ``eta0`` under Adam.
* ``loss_curve_`` (ours) keeps each epoch's mean training loss (weighted mean of
  the per-sample losses met during the epoch, each before its step) for
  plotting. ``partial_fit`` appends to it and continues one shuffling stream
  (scikit-learn reseeds per call), so one call per epoch trains like ``fit``.

l1 and elastic net use scikit-learn's cumulative-penalty truncation, which
gives exact zeros. The fit is fused arithmetic on the backend's arrays (no
tape): per step one ``matmul`` forward, one backward, elementwise work, and
nothing read back to the host until the epoch ends (its loss, to detect
divergence and decide stopping). Not implemented: ``average`` (averaged SGD)
and ``n_jobs``.
"""
from __future__ import annotations

import collections
import functools
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
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import check_is_fitted

from ..distributed._route import dask_predicts, dask_scores
from ..ops import stable_sigmoid
from ..sparse import product
from .base import ConvergenceWarning, DivergenceError, LinearModel, check_class_labels, host_numpy, is_dask

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
    return xp.logaddexp(0, -z), -y * stable_sigmoid(xp, -z)


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

# A block of rows ready for ``_SGD._pass``: X, the targets Y (n, k) and the loss weights C (n, k)
# or None on X's device; the per-sample step counts (n,) and each output's weight sum (k,) on the host.
_Rows = collections.namedtuple("_Rows", "X Y C counts weight_sum")


def _check_weight_sum(weight_sum):
    if not np.all(weight_sum > 0):
        raise ValueError("the sample weights sum to zero: at least one sample needs a positive weight")


class _Stopping:
    """fit's stopping rule, per output: an output stops once its criterion (the epoch's training
    loss, or minus the validation score) has not improved on its best by ``tol`` for
    ``n_iter_no_change`` epochs; under "adaptive" a plateau first divides its step by 5, as
    long as the step stays above 1e-6."""

    def __init__(self, estimator, k):
        self.estimator, self.eta_of = estimator, estimator._schedule()
        self.tol = -math.inf if estimator.tol is None else estimator.tol
        self.scale = np.ones(k)  # "adaptive": eta0 divided by 5 per plateau
        self.active = np.ones(k, dtype=bool)
        self.best, self.stale = np.full(k, math.inf), np.zeros(k, dtype=int)

    def factor(self):
        """This epoch's step-size factor: a float in the common case (all outputs alike), else
        one per output (0 for a stopped one)."""
        factor = self.scale * self.active
        return float(factor[0]) if np.all(factor == factor[0]) else factor

    def done(self, criterion) -> bool:
        """Take an epoch's criterion (k,); whether every output has stopped."""
        estimator = self.estimator
        worse = criterion > self.best - self.tol
        self.stale = np.where(worse, self.stale + 1, 0)
        self.best = np.minimum(self.best, criterion)
        plateau = self.active & (self.stale >= estimator.n_iter_no_change)
        shrink = plateau & (self.eta_of(estimator.t_) * self.scale > 1e-6) if estimator.learning_rate == "adaptive" \
            else np.zeros(len(plateau), dtype=bool)
        self.scale[shrink] /= 5
        self.stale[shrink] = 0
        self.active &= ~(plateau & ~shrink)
        return not self.active.any()


class _SGD(LinearModel):
    """What both estimators share: parameter checks, the epoch loop, stopping, partial_fit."""

    _losses: dict = {}
    _fitted_attributes = ("coef_", "intercept_", "n_features_in_", "n_iter_", "t_", "loss_curve_")
    # What a pass advances besides the coefficients (a Dask fit sends it from chunk to chunk).
    _stream_state = ("t_", "_rng", "_adam", "_l1_u", "_l1_q")

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
        if self.learning_rate == "optimal" and self.optimizer == "sgd" and self.alpha == 0:
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
        """eta(t), scikit-learn's rules, for t = 1 + the samples stepped over so far; the
        adaptive division by 5 on plateaus is applied by the caller."""
        rule, eta0, power_t, alpha = self.learning_rate, self.eta0, self.power_t, self.alpha
        if rule == "optimal" and self.optimizer == "sgd":
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
        the previous fit's coefficients if ``warm_start``, else zeros.

        A Dask array fits on the cluster of the active dask.distributed Client: each epoch is
        partial_fit's pass over every chunk, the chunks in a seeded order (td.distributed)."""
        self._check_params()
        if is_dask(X):
            from ..distributed._models import sgd_fit

            sgd_fit(self, X, y, coef_init, intercept_init, sample_weight)
            return self
        backend, X, y = self._validate_Xy(X, y, **self._y_checks)
        coef_init, intercept_init = self._fresh_start(coef_init, intercept_init)
        targets, class_weights = self._targets(y, np.unique(y) if self._classifier else None)
        sample_weight = self._weights(sample_weight, len(y))
        validation = None
        if self.early_stopping:  # scikit-learn's split: stratified for classifiers, seeded by random_state
            splitter = (StratifiedShuffleSplit if self._classifier else ShuffleSplit)(
                test_size=self.validation_fraction, random_state=self.random_state)
            train, held = next(splitter.split(np.zeros((len(y), 1)), y))
            if len(train) == 0 or len(held) == 0:
                raise ValueError(f"Splitting {len(y)} samples into a train set and a validation set with "
                                 f"validation_fraction={self.validation_fraction!r} led to an empty set "
                                 f"({len(train)} and {len(held)} samples). Please either change validation_fraction, "
                                 "increase number of samples, or disable early_stopping.")
            if sample_weight is not None and not np.any(sample_weight[held] > 0):
                raise ValueError("The sample weights for validation set are all zero, consider using a different "
                                 "random state.")
            validation = (X[backend.asarray(held)], y[held], None if sample_weight is None else sample_weight[held])
            X, targets = X[backend.asarray(train)], targets[train]
            sample_weight, class_weights = (None if w is None else w[train] for w in (sample_weight, class_weights))
        self._start(coef_init, intercept_init, X.shape[1], targets.shape[1], X.dtype)
        self._epochs(backend, X, targets, sample_weight, class_weights, self.max_iter, stop=True,
                     validation=validation)
        return self

    def _fresh_start(self, coef_init, intercept_init):
        """Where fit starts: the given coefficients, else the previous fit's under ``warm_start``
        (else zeros: None); the rest of the previous fit is forgotten (``_reset``)."""
        if self.warm_start and hasattr(self, "coef_"):
            coef_init = self.coef_ if coef_init is None else coef_init
            intercept_init = self.intercept_ if intercept_init is None else intercept_init
        self._reset()
        return coef_init, intercept_init

    def _reset(self):
        """Forget the previous fit: coefficients, optimizer state; restart the schedule and the shuffling stream."""
        for name in ("coef_", "intercept_", "_adam"):
            self.__dict__.pop(name, None)
        self.t_, self.loss_curve_ = 1.0, []
        self._restart_stream()

    def _restart_stream(self):
        """The shuffling stream (seeded by random_state) and the l1 truncation's running totals."""
        self._rng = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._l1_u, self._l1_q = 0.0, None

    def _partial_fit(self, X, y, classes, sample_weight):
        """One epoch without stopping; the first call (no ``coef_`` yet) starts from zeros."""
        self._check_params()
        first = not hasattr(self, "coef_")
        backend, X, y = self._validate_Xy(X, y, **self._y_checks) if first else \
            self._validate(X, reset=False, y=y, **self._y_checks)
        if first:
            self._reset()
        elif not hasattr(self, "_rng"):  # loaded from a file
            self._restart_stream()
        targets, class_weights = self._targets(y, classes)
        if first:
            self._start(None, None, X.shape[1], targets.shape[1], X.dtype)
        self._epochs(backend, X, targets, self._weights(sample_weight, len(y)), class_weights, 1, stop=False,
                     validation=None)
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

    def _epochs(self, backend, X, targets, sample_weight, class_weights, epochs, stop, validation):
        """Up to ``epochs`` passes over X (device) and the targets (n, k), with the sample
        weights (n,) and class weights (n, k) on the host (None: all ones); ``stop``: fit's
        stopping rule, on the training loss or on ``validation`` (X, y, weights)."""
        rows = self._rows(backend, X, targets, sample_weight, class_weights)
        _check_weight_sum(rows.weight_sum)

        def run_epoch(factor):
            with backend.scope():
                W, b, total = self._pass(backend, rows, factor)
                return backend.to_numpy(W), backend.to_numpy(b), backend.to_numpy(total)

        def minus_validation_score(W, b):
            with backend.scope():
                out = product(backend, validation[0], backend.asarray(W.T)) + backend.asarray(b)
                return np.full(len(b), -self._score_output(backend.to_numpy(out), *validation[1:]))

        self._train(run_epoch, rows.weight_sum, epochs, stop, None if validation is None else minus_validation_score)

    def _rows(self, backend, X, targets, sample_weight, class_weights):
        """What a pass over X needs (``_Rows``): the targets and the loss weights (sample times
        class weights; None where all are 1) on X's device, the per-sample step counts (the
        sample weights) and each output's weight sum on the host."""
        counts = np.ones(len(targets)) if sample_weight is None else sample_weight
        weights = counts[:, None] if class_weights is None else counts[:, None] * class_weights
        with backend.scope():
            Y = backend.asarray(targets, dtype=X.dtype)
            C = None if np.all(weights == 1) else backend.asarray(weights, dtype=X.dtype)
        return _Rows(X, Y, C, counts, np.broadcast_to(weights.sum(axis=0), Y.shape[1:]).copy())

    def _pass(self, backend, rows, factor):
        """One epoch over ``rows``: mini-batches in the shuffling stream's order, from ``coef_``
        and ``intercept_``, each step size times ``factor`` (a float, or one per output).
        Returns (W (k, d), b (k,), the per-output sums of the weighted losses) on the device;
        ``t_``, the shuffling stream, Adam's moments and the l1 totals advance. partial_fit
        is one pass; fit on a Dask array is one pass per chunk, on the chunk's worker."""
        xp = backend.xp
        mm = functools.partial(product, backend)  # X may be sparse (a CSR): its products go through backend.spmm
        X, Y, C, counts = rows.X, rows.Y, rows.C, rows.counts
        n, k = Y.shape
        dtype = X.dtype
        batch = n if self.batch_size is None else min(self.batch_size, n)
        eta_of = self._schedule()
        l2, l1 = self._penalties()
        loss_fn = self._losses[self.loss]
        with backend.scope(), np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            self._move_state(backend.asarray)  # where the last pass left it (the host, after a Dask task)
            W = backend.asarray(np.atleast_2d(self.coef_), dtype=dtype)
            b = backend.asarray(np.atleast_1d(self.intercept_), dtype=dtype)
            if self.optimizer == "adam" and getattr(self, "_adam", None) is None:
                self._adam = [0, xp.zeros_like(W), xp.zeros_like(W), xp.zeros_like(b), xp.zeros_like(b)]

            def per_output(v):
                """A step-size factor for W (k, d) and b (k,): Python floats stay floats (a NumPy
                float64 would promote float32 arrays); per-output values become device arrays."""
                if isinstance(v, float):
                    return float(v), float(v)
                column = backend.asarray(v, dtype=dtype)[:, None]
                return column, column[:, 0]

            order = self._rng.permutation(n) if self.shuffle and batch < n else np.arange(n)
            device_order = backend.asarray(order) if self.shuffle and batch < n else None
            starts = np.arange(0, n, batch)
            batch_counts = np.add.reduceat(counts[order], starts)
            total = xp.zeros(k, dtype=dtype)
            for start, count in zip(starts, batch_counts):
                batch_rows = slice(start, start + batch) if device_order is None else device_order[start:start + batch]
                xb, yb = (X, Y) if batch == n else (X[batch_rows], Y[batch_rows])
                loss, grad = loss_fn(xp, mm(xb, W.T) + b, yb, self.epsilon)
                grad = xp.clip(grad, -1e12, 1e12)  # scikit-learn's clip, against overflow
                if C is not None:
                    cb = C if batch == n else C[batch_rows]
                    loss, grad = loss * cb, grad * cb
                total += loss.sum(axis=0)
                eta = eta_of(self.t_) * factor
                W, b = self._update(xp, mm(grad.T, xb), grad.sum(axis=0), W, b, eta, float(count), l2, l1, per_output)
                self.t_ += float(count)
        return W, b, total

    def _train(self, run_epoch, weight_sum, epochs, stop, criterion=None):
        """The epoch loop, wherever the data is: ``run_epoch(factor)`` makes one pass (``_pass``
        over X, or over every chunk of a Dask array) and returns (W (k, d), b (k,), the
        per-output loss sums) on the host, which ``weight_sum`` (k,) turns into the epoch's
        mean loss. Then: divergence, ``loss_curve_``, and with ``stop`` fit's stopping rule
        (``_Stopping``) on that loss or on ``criterion(W, b)`` (minus the validation score).

        The k outputs (one-vs-rest classes) are independent problems trained side by side:
        each has its own stopping state and, for "adaptive", its own step; a converged one
        stops moving (scikit-learn fits them separately, to the same effect)."""
        stopping = _Stopping(self, len(weight_sum))
        self.n_iter_ = 0
        for _ in range(epochs):
            W, b, total = run_epoch(stopping.factor() if stop else 1.0)
            epoch_loss = total.astype(np.float64) / weight_sum
            if not (np.all(np.isfinite(total)) and np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise DivergenceError(
                    f"{type(self).__name__}: training diverged in epoch {len(self.loss_curve_) + 1} (the loss "
                    f"became {epoch_loss.mean()}); try a smaller eta0 than {self.eta0} (or "
                    "learning_rate='invscaling'/'adaptive', or standardize X). The model keeps the coefficients "
                    "of the last finite epoch.")
            self._set_coef(W, b)
            self.n_iter_ += 1
            self.loss_curve_.append(float(epoch_loss.mean()))
            if self.verbose:
                print(f"-- Epoch {len(self.loss_curve_)}: avg. loss {self.loss_curve_[-1]:.6g}, "
                      f"norm {float(np.linalg.norm(W)):.6g}, bias {b}, T {self.t_:.0f}")
            if stop and stopping.done(epoch_loss if criterion is None else criterion(W, b)):
                break
        if stop and stopping.active.any() and self.tol is not None:
            warnings.warn(f"Maximum number of iteration reached before convergence ({type(self).__name__}: "
                          f"max_iter={self.max_iter}, tol={self.tol}). Consider increasing max_iter to improve the "
                          "fit.", ConvergenceWarning, stacklevel=4)

    def _move_state(self, convert):
        """Adam's moments and the l1 truncation's totals through ``convert``: onto the device of
        a pass, or home to the host (a Dask task sends the state back to the client)."""
        if getattr(self, "_adam", None) is not None:
            self._adam = self._adam[:1] + [convert(a) for a in self._adam[1:]]
        if getattr(self, "_l1_q", None) is not None:
            self._l1_q = convert(self._l1_q)

    def _update(self, xp, gW, gb, W, b, eta, count, l2, l1, per_output):
        """One mini-batch step: the sum ``gW``, ``gb`` of its samples' loss gradients, standing for
        ``count`` per-sample steps at step size ``eta`` (host, per output)."""
        if self.optimizer == "adam":
            beta1, beta2, eps = _ADAM
            self._adam[0] += 1
            t, mW, vW, mb, vb = self._adam
            gW = gW + (l2 * count) * W if l2 else gW  # coupled weight decay: the penalty's gradient
            for m, v, g in ((mW, vW, gW), (mb, vb, gb)):  # moments updated in place
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
            c1, c2 = 1 - beta1 ** t, 1 - beta2 ** t
            step_W, step_b = per_output(eta)
            W = W - step_W * (mW / c1) / (xp.sqrt(vW / c2) + eps)
            if self.fit_intercept:
                b = b - step_b * (mb / c1) / (xp.sqrt(vb / c2) + eps)
            shrink = eta
        else:
            if l2:  # scikit-learn's order: decay the old weights (once per sample), then add the gradient step
                decay = np.maximum(1 - eta * l2, 0) ** count
                W = W * per_output(float(decay) if isinstance(eta, float) else decay)[0]
            step_W, step_b = per_output(eta)
            W = W - step_W * gW
            if self.fit_intercept:
                b = b - step_b * gb
            shrink = eta * count
        if l1:
            # Cumulative-penalty truncation (Tsuruoka et al. 2009, scikit-learn's): each weight may have
            # lost up to u, the l1 penalty summed over all steps so far; q is what it did lose. Unlike a
            # plain proximal step, a small weight that the gradient keeps nudging stays exactly at zero.
            u = self._l1_u = self._l1_u + shrink * l1
            q = self._l1_q if self._l1_q is not None else xp.zeros_like(W)
            before, u = W, per_output(u)[0]
            W = xp.where(before > 0, xp.maximum(before - (u + q), 0),
                         xp.where(before < 0, xp.minimum(before + (u - q), 0), before))
            self._l1_q = q + (W - before)
        return W, b

    def _set_coef(self, W, b):
        self.coef_, self.intercept_ = self._shape_coef(W, b)

    def _weights(self, sample_weight, n):
        """Checked sample weights (host float64), or None for none or all ones (the cheaper, identical path)."""
        return None if sample_weight is None else self._counts(self._sample_weight(sample_weight, n))

    @staticmethod
    def _counts(weights):
        """Checked sample weights (host float64) as a pass takes them: None for none or all ones."""
        return None if weights is None or np.all(weights == 1) else weights


class SGDClassifier(ClassifierMixin, _SGD):
    """scikit-learn's SGDClassifier (same parameters, defaults, losses, penalties, schedules and
    one-vs-rest multiclass), trained by mini-batch SGD or Adam on td's devices.

    ``coef_`` is (1, n_features) for two classes, (n_classes, n_features) otherwise;
    ``predict_proba`` exists for ``loss="log_loss"`` and ``"modified_huber"``. Ours:
    ``batch_size`` (mini-batch size, a batch's step being the sum of its samples' steps;
    None: full batch), ``optimizer`` ("sgd" or "adam"), ``device``, ``dtype``; fitted
    ``loss_curve_`` (mean training loss per epoch). ``n_iter_`` counts the epochs of the last
    fit (1 after partial_fit), ``t_`` is 1 + the samples stepped over, as scikit-learn's.
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
        """One epoch over (X, y), continuing from the current coefficients (no stopping rule:
        tol, n_iter_no_change and early_stopping belong to fit). The first call needs
        ``classes``, every label the stream will hold."""
        if not hasattr(self, "classes_") and self.class_weight == "balanced":
            raise ValueError("class_weight 'balanced' is not supported for partial_fit. In order to use 'balanced' "
                             "weights, use compute_class_weight('balanced', classes=classes, y=y). In place of y you "
                             "can use a large enough sample of the full training set target to properly estimate the "
                             "class frequency distributions. Pass the resulting weights as the class_weight parameter.")
        classes = self.classes_ if _check_partial_fit_first_call(self, classes) else None
        if classes is not None:  # the first call: start afresh with these classes
            self.__dict__.pop("coef_", None)
        return self._partial_fit(X, y, classes, sample_weight)

    def _targets(self, y, classes):
        """+-1 targets (n, k) of the one-vs-rest problems and their class weights (n, k) or None."""
        check_class_labels(y)
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
        return np.where(positive, 1.0, -1.0), class_weights

    def _shape_coef(self, W, b):
        return W, b

    def _score_output(self, out, y, sample_weight):
        return accuracy_score(y, self._labels(out), sample_weight=sample_weight)

    def _labels(self, out):
        return self.classes_[(out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)]

    # ------------------------------------------------------------ prediction
    # (On a Dask array: a lazy dask array computed on the workers, and score computes.)
    @dask_predicts
    def decision_function(self, X):
        """Signed distances X coef^T + intercept: (n_samples,) for two classes, else (n_samples, n_classes)."""
        out, backend = self._linear_output(X)
        return out[:, 0] if out.shape[1] == 1 else out

    @dask_predicts
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
        prob = stable_sigmoid(xp, out) if self.loss == "log_loss" else (xp.clip(out, -1, 1) + 1) / 2
        if out.shape[1] == 1:
            return xp.concatenate([1 - prob, prob], axis=1), backend
        total = prob.sum(axis=1, keepdims=True)
        # modified_huber can give every class 0: uniform then, as scikit-learn.
        return xp.where(total > 0, prob / xp.where(total > 0, total, 1), 1.0 / out.shape[1]), backend

    @available_if(_check_proba)
    @dask_predicts
    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes), scikit-learn's: the sigmoid (log_loss) or
        (clip(score, -1, 1) + 1) / 2 (modified_huber) of each one-vs-rest score, normalised over
        the classes when there are more than two."""
        return self._proba(X)[0]  # on the data's device, as the data came

    @available_if(_check_proba)
    @dask_predicts
    def predict_log_proba(self, X):
        prob, backend = self._proba(X)
        with np.errstate(divide="ignore"):
            return backend.xp.log(prob)

    @dask_scores(accuracy_score)
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
        """One epoch over (X, y), continuing from the current coefficients (no stopping rule:
        tol, n_iter_no_change and early_stopping belong to fit)."""
        return self._partial_fit(X, y, None, sample_weight)

    def _targets(self, y, classes):
        return y.reshape(-1, 1).astype(np.float64), None

    def _shape_coef(self, W, b):
        return W.reshape(-1), b.reshape(1)

    def _score_output(self, out, y, sample_weight):
        return r2_score(y, out[:, 0], sample_weight=sample_weight)

    @dask_predicts
    def predict(self, X):
        out, backend = self._linear_output(X)
        return out[:, 0]

    @dask_scores(r2_score)
    def score(self, X, y, sample_weight=None) -> float:
        """R^2 of the prediction, sample-weighted if given."""
        check_is_fitted(self)
        return float(r2_score(host_numpy(y), host_numpy(self.predict(X)), sample_weight=host_numpy(sample_weight)))
