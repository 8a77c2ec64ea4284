"""Least squares, exactly: ``LinearRegression`` and ``Ridge`` by the Gram route (dense X),
or by LSQR (sparse X, or ``solver="lsqr"``).

One pass over X forms ``X^T X`` and ``X^T y`` with the backend's matmul (our
GEMM on the GPU); the d x d system is solved in float64 (see
``solvers.gram_least_squares``). Objective, as scikit-learn's::

    sum_i w_i ||y_i - coef x_i - intercept||^2 + alpha ||coef||^2

(``alpha = 0`` for LinearRegression), with the intercept unpenalised.

Sparse X (SciPy's formats, td sparse tensors, cupyx on a GPU) is never densified
nor centred: LSQR multiplies by X and X^T through ``backend.spmm`` with the
centring in its operator (``solvers.sparse_least_squares``); ``solver_`` is
``"lsqr"`` and ``n_iter_`` its iterations per target.
"""
from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from ..distributed._route import dask_predicts, dask_scores
from .base import LinearModel, host_numpy, is_dask
from ..sparse import CSR
from .solvers import column_moments, gram_least_squares, sparse_least_squares

SOLVERS = ("auto", "cholesky", "svd", "lsqr")


class _LeastSquares(RegressorMixin, LinearModel):
    _fitted_attributes = ("coef_", "intercept_", "n_features_in_", "solver_")

    def _alpha(self, n_targets: int):
        return 0.0

    def fit(self, X, y, sample_weight=None):
        """Fit on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_targets).
        Dask arrays fit on the cluster of the active dask.distributed Client (td.distributed)."""
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if is_dask(X):
            from ..distributed._models import least_squares_parts

            parts = least_squares_parts(self, X, y, sample_weight, self._alpha)
        else:
            parts = self._least_squares_parts(X, y, sample_weight)
        coef, self.solver_, y_mean, y_scale, x_mean, y_ndim, dtype = parts
        coef *= y_scale[:, None]
        intercept = y_mean - (coef @ x_mean if x_mean is not None else 0.0)
        single = y_ndim == 1
        self.coef_ = (coef[0] if single else coef).astype(dtype)
        self.intercept_ = (intercept[0] if single else intercept).astype(dtype)
        if single:
            self.intercept_ = self.intercept_[()]  # a NumPy scalar, as scikit-learn's
        return self

    def _least_squares_parts(self, X, y, sample_weight):
        """(coef of the standardized problem, solver, y_mean, y_scale, x_mean, y.ndim, dtype)."""
        backend, X, y = self._validate_Xy(X, y, multi_output=True, y_numeric=True)
        self.__dict__.pop("n_iter_", None)  # LSQR's iterations, set by the sparse route only
        n = X.shape[0]
        weights = self._sample_weight(sample_weight, n)
        share = weights / weights.sum()
        Y = y.reshape(n, -1).astype(np.float64)
        # Standardize the target in float64 before casting to the working dtype: targets of 1e20
        # (or 1e39, past float32) then neither overflow nor swamp the features' digits.
        y_mean = share @ Y if self.fit_intercept else np.zeros(Y.shape[1])
        y_scale = np.sqrt(share @ (Y - y_mean) ** 2)
        y_scale = np.where(y_scale > 0, y_scale, 1.0)
        x_mean, x_std = column_moments(backend, X, share) if self.fit_intercept else (None, None)
        if isinstance(X, CSR) or self.solver == "lsqr":
            # Sparse X (or solver="lsqr"): LSQR, products with X and X^T only; no Gram matrix, no centred copy.
            if self.solver not in ("auto", "lsqr"):
                raise ValueError(f"solver={self.solver!r} forms the Gram matrix of X, which sparse X never gets "
                                 f"(layout CSR, shape {X.shape}); use solver='auto' or 'lsqr'")
            coef, self.n_iter_ = sparse_least_squares(backend, X, (Y - y_mean) / y_scale, weights,
                                                      self._alpha(Y.shape[1]), x_mean)
            return coef, "lsqr", y_mean, y_scale, x_mean, y.ndim, X.dtype
        with backend.scope():
            T = backend.asarray((Y - y_mean) / y_scale, dtype=X.dtype)
            sqrt_w = None if np.all(weights == 1) else backend.asarray(np.sqrt(weights))
            # Dividing the objective by y_scale^2 leaves alpha as it is.
            coef, solver = gram_least_squares(backend, X, T, sqrt_w, self._alpha(Y.shape[1]), x_mean,
                                              x_std, solver="svd" if self.solver == "svd" else "auto")
        return coef, solver, y_mean, y_scale, x_mean, y.ndim, X.dtype

    @dask_predicts
    def predict(self, X):
        out, backend = self._linear_output(X)
        return out[:, 0] if np.ndim(self.coef_) == 1 else out

    @dask_scores(r2_score)
    def score(self, X, y, sample_weight=None) -> float:
        """R^2 of the prediction (uniformly averaged over targets), sample-weighted if given."""
        check_is_fitted(self)
        prediction = self.predict(X)
        return float(r2_score(host_numpy(y), host_numpy(prediction), sample_weight=host_numpy(sample_weight)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class LinearRegression(_LeastSquares):
    """Ordinary least squares, solved exactly (no iterations, no learning rate).

    Forms X^T X and X^T y in one pass (centred when ``fit_intercept``), then solves
    the normal equations by Cholesky in float64, refining float32 results against
    float64 residuals; rank-deficient or badly conditioned X falls back to an SVD
    least-squares solve (minimum-norm, like ``numpy.linalg.lstsq``) with an
    ``IllConditionedWarning``. ``solver="svd"`` asks for that solve directly.
    """

    def __init__(self, *, fit_intercept=True, solver="auto", device=None, dtype=None):
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.device = device
        self.dtype = dtype


class Ridge(_LeastSquares):
    """Least squares with an L2 penalty ``alpha ||coef||^2`` (scikit-learn's Ridge):
    ``alpha`` is a number >= 0 or one per target."""

    def __init__(self, alpha=1.0, *, fit_intercept=True, solver="auto", device=None, dtype=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.device = device
        self.dtype = dtype

    def _alpha(self, n_targets: int):
        alpha = np.asarray(self.alpha, dtype=np.float64) if not isinstance(self.alpha, numbers.Real) else \
            np.float64(self.alpha)
        if alpha.ndim > 1 or (alpha.ndim == 1 and alpha.shape[0] not in (1, n_targets)):
            raise ValueError(f"alpha must be a number or one value per target ({n_targets}), got shape {alpha.shape}")
        if not np.all(np.isfinite(alpha)) or np.any(alpha < 0):
            raise ValueError(f"alpha must be finite and >= 0, got {self.alpha!r}")
        return alpha
