"""Logistic regression, binary (sigmoid) and multinomial (softmax), to the optimum.

Objective, scikit-learn's (divided by ``C * sum(w)``, which moves no minimiser)::

    (1 / S) sum_i w_i loss(x_i, y_i) + (1 / (C S)) ((1 - r) / 2 ||coef||^2 + r ||coef||_1)

with S = sum of the sample weights (times class weights), r = 0 for
``penalty="l2"``, 1 for ``"l1"``, ``l1_ratio`` for ``"elasticnet"``; the
intercept is unpenalised. ``penalty=None`` drops the penalty.

Solvers: ``"lbfgs"`` (smooth penalties) minimises with td's L-BFGS on a fused
loss-and-gradient, one matrix product forward and one backward per evaluation;
``"fista"`` (any penalty; the default for l1 and elastic net) is accelerated
proximal gradient, whose soft-thresholding step gives exact zeros.

``cuda_graph=True`` (ours; devices "cuda" and "emu") captures the loss-and-gradient
evaluation in a CUDA graph after one eager evaluation and replays it for every
later one: the same coefficients, with one graph launch per evaluation instead of
the dozens of launches and their Python (see docs/cuda_graphs.md).
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.metrics import accuracy_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.validation import check_is_fitted

from ..distributed._route import dask_predicts, dask_scores
from ..ops import stable_sigmoid
from ..optim.lbfgs import minimize_lbfgs
from .base import ConvergenceWarning, LinearModel, check_class_labels, host_numpy, is_dask
from .solvers import LogisticObjective, column_moments, fista

PENALTIES = ("l2", "l1", "elasticnet", None)
SOLVERS = ("auto", "lbfgs", "fista")


class LogisticRegression(ClassifierMixin, LinearModel):
    """scikit-learn's LogisticRegression (same parameters, objective and optimum), fitted
    on td's devices. ``classes_`` are the sorted unique labels (numbers or strings);
    ``coef_`` is (1, n_features) for two classes, (n_classes, n_features) otherwise.

    ``tol`` bounds the largest gradient entry (L-BFGS) or the largest relative change
    of the parameters (FISTA), as in scikit-learn's lbfgs and saga, measured in the
    solvers' preconditioned coordinates (each feature scaled to unit spread): on
    standardized data that is scikit-learn's own measure. A ``ConvergenceWarning``
    says when a solver stopped short of it, and why.
    """

    _fitted_attributes = ("coef_", "intercept_", "n_features_in_", "n_iter_", "classes_")

    def __init__(self, penalty="l2", *, C=1.0, l1_ratio=None, fit_intercept=True, class_weight=None,
                 solver="auto", max_iter=100, tol=1e-4, warm_start=False, verbose=0, random_state=None,
                 device=None, dtype=None, cuda_graph=False):
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.verbose = verbose
        self.random_state = random_state  # the solvers are deterministic; kept for scikit-learn's API
        self.device = device
        self.dtype = dtype
        self.cuda_graph = cuda_graph

    # ------------------------------------------------------------ parameters
    def _penalty_split(self, total_weight: float):
        """(l2, l1) strengths of the objective above, and the solver to use."""
        if self.penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"C must be a positive number (np.inf for no penalty), got {self.C!r}")
        if not isinstance(self.max_iter, numbers.Integral) or self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if not isinstance(self.tol, numbers.Real) or not self.tol >= 0:
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")
        ratio = {"l2": 0.0, "l1": 1.0, None: 0.0}.get(self.penalty, self.l1_ratio)
        if self.penalty == "elasticnet" and (not isinstance(ratio, numbers.Real) or not 0 <= ratio <= 1):
            raise ValueError(f"penalty='elasticnet' needs l1_ratio between 0 and 1, got {self.l1_ratio!r}")
        strength = 0.0 if self.penalty is None else 1.0 / (self.C * total_weight)
        solver = self.solver if self.solver != "auto" else ("fista" if ratio > 0 else "lbfgs")
        if solver == "lbfgs" and ratio > 0:
            raise ValueError(f"solver='lbfgs' supports penalty 'l2' or None, got penalty={self.penalty!r}; "
                             "use solver='fista' (or 'auto') for l1 and elasticnet")
        return (1 - ratio) * strength, ratio * strength, solver

    # ------------------------------------------------------------ fitting
    def fit(self, X, y, sample_weight=None):
        """Fit to X (n_samples, n_features) and labels y (n_samples,). Dask arrays fit on the
        cluster of the active dask.distributed Client (td.distributed)."""
        if is_dask(X):
            if self.cuda_graph:
                raise ValueError("cuda_graph=True captures an in-memory fit's evaluation; a Dask array's fit runs "
                                 "on its cluster's workers: set cuda_graph=False")
            from ..distributed._models import logistic_parts

            parts = logistic_parts(self, X, y, sample_weight)
        else:
            parts = self._logistic_parts(X, y, sample_weight)
        backend, dtype, classes, priors, total_weight, mean, std, make_objective = parts
        l2, l1, solver = self._penalty_split(total_weight)
        # Preconditioning: u_j = coef_j * t_j with t_j^2 = spread_j^2 + 4 l2 makes every coordinate's
        # curvature about 1/4 at the start (the log-loss's is at most 1/4 times the spread squared).
        # The spread is the deviation around the mean where the intercept absorbs the mean, the
        # root mean square without an intercept; a constant column's rounding-level deviation
        # (1e-15 of its mean) is no spread, or coef = u / 1e-15 would blow the problem up.
        spread2 = std * std if self.fit_intercept else std * std + mean * mean
        negligible = spread2 <= (16 * np.finfo(dtype).eps * mean) ** 2
        scale = np.sqrt(np.where(negligible, 0.0, spread2) + 4 * l2)
        scale = np.where(scale > 0, scale, 1.0)
        with backend.scope():
            objective = make_objective(l2, l1, scale)
            if self.cuda_graph:
                objective.capture_evaluations()
            start = self._start(objective, classes, priors)
            if solver == "lbfgs":
                result = minimize_lbfgs(objective.value_and_grad, start, max_iter=self.max_iter, tol=self.tol)
                params, n_iter, converged, why = result.x, result.nit, result.converged, result.message
            else:
                params, n_iter, converged, why = fista(objective, start, self.max_iter, self.tol)
            coef, intercept = (backend.to_numpy(a) for a in objective.unpack(params))
        if not np.all(np.isfinite(coef)) or not np.all(np.isfinite(intercept)):
            raise FloatingPointError(f"{type(self).__name__}: the solver produced non-finite coefficients")
        if not converged:
            goal = "max|gradient|" if solver == "lbfgs" else "the relative change of the parameters"
            warnings.warn(f"{solver} stopped before {goal} <= tol={self.tol}: {why}; raise max_iter, or "
                          "standardize X if it is badly scaled", ConvergenceWarning, stacklevel=2)
        if self.verbose:
            print(f"{type(self).__name__}: {solver}, {n_iter} iterations, "
                  f"{objective.n_evaluations} loss evaluations, converged={converged}")
        self.classes_ = classes
        self.solver_ = solver  # what ran ("lbfgs" or "fista"), on dense and sparse X alike
        self.coef_ = coef.astype(dtype)
        self.intercept_ = intercept.astype(dtype)
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self

    def _logistic_parts(self, X, y, sample_weight):
        """(backend, dtype, classes, class priors, total weight, column mean, column std,
        make_objective(l2, l1, scale)) of in-memory data."""
        backend, X, y = self._validate_Xy(X, y)
        n = X.shape[0]
        check_class_labels(y)
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"This solver needs samples of at least 2 classes in the data, but the data contains "
                             f"only one class: {classes[0].tolist()!r}")
        class_weights = None
        if self.class_weight is not None:
            class_weights = compute_class_weight(self.class_weight, classes=classes, y=y)[index]
        weights = self._sample_weight(sample_weight, n, class_weights)
        self._penalty_split(float(weights.sum()))  # parameter errors before the moments pass
        share = weights / weights.sum()
        mean, std = column_moments(backend, X, share)
        k = 1 if len(classes) == 2 else len(classes)

        def make_objective(l2, l1, scale):
            if k == 1:
                targets = backend.asarray(index.reshape(-1, 1), dtype=X.dtype)
            else:
                targets = backend.xp.zeros((n, k), dtype=X.dtype)
                targets[backend.xp.arange(n), backend.asarray(index)] = 1
            return LogisticObjective(backend, X, targets, backend.asarray(share, dtype=X.dtype), l2, l1,
                                     mean, scale, self.fit_intercept)

        priors = np.bincount(index, weights=share, minlength=len(classes))
        return backend, X.dtype, classes, priors, float(weights.sum()), mean, std, make_objective

    def _start(self, objective, classes, priors):
        """The previous solution when warm_start and it fits this problem; else zero
        coefficients and the intercept of the class priors (the optimum of the
        intercept-only model, where the first iterations would otherwise go)."""
        k = objective.k
        previous = getattr(self, "coef_", None)
        if self.warm_start and previous is not None and previous.shape == (k, objective.d) and \
                np.array_equal(getattr(self, "classes_", None), classes):
            return objective.pack(previous, self.intercept_)
        intercept = np.zeros(k)
        if self.fit_intercept and np.all(priors > 0):
            # Multinomial: log-priors shifted to sum to zero, where scikit-learn's optimum lies too
            # (the softmax's gradient never changes the intercepts' sum).
            log_priors = np.log(priors)
            intercept = (log_priors[1] - log_priors[0])[None] if k == 1 else log_priors - log_priors.mean()
        return objective.pack(np.zeros((k, objective.d)), intercept)

    # ------------------------------------------------------------ prediction
    @dask_predicts
    def decision_function(self, X):
        """Scores X coef^T + intercept: (n_samples,) for two classes, else (n_samples, n_classes)."""
        out, backend = self._linear_output(X)
        return out[:, 0] if out.shape[1] == 1 else out

    @dask_predicts
    def predict_proba(self, X):
        """Class probabilities, (n_samples, n_classes), columns in the order of ``classes_``."""
        out, backend = self._linear_output(X)
        xp = backend.xp
        if out.shape[1] == 1:
            positive = stable_sigmoid(xp, out)
            return xp.concatenate([1 - positive, positive], axis=1)
        e = xp.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @dask_predicts
    def predict_log_proba(self, X):
        out, backend = self._linear_output(X)
        xp = backend.xp
        if out.shape[1] == 1:
            out = xp.concatenate([xp.zeros_like(out), out], axis=1)  # softmax of (0, z) is the sigmoid
        shifted = out - out.max(axis=1, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))

    @dask_predicts
    def predict(self, X):
        """The most probable class of each sample (labels from ``classes_``, on the host)."""
        out, backend = self._linear_output(X)
        index = (out[:, 0] > 0).astype(np.int64) if out.shape[1] == 1 else out.argmax(axis=1)
        return self.classes_[backend.to_numpy(index)]

    @dask_scores(accuracy_score)
    def score(self, X, y, sample_weight=None) -> float:
        """Mean accuracy, sample-weighted if given."""
        check_is_fitted(self)
        return float(accuracy_score(host_numpy(y), self.predict(X), sample_weight=host_numpy(sample_weight)))
